local h = require('spec.helpers')
local errors = require('aegis.errors')
local json = require('aegis.json')
local s = require('aegis.schema')

-- An output sink for running the command in this process.
local function sink()
  local buf = {}
  return { write = function(self, ...) for _, x in ipairs({ ... }) do buf[#buf + 1] = x end return self end,
           text = function() return table.concat(buf) end }
end

describe('aegis-run schema', function()
  describe('as a process', function()
    it('prints its usage on --help', function()
      local r = h.run({ 'schema', '--help' })
      assert.equal(0, r.code)
      assert.matches('^usage: aegis%-run schema export DIR %[%-%-json%]', r.stdout)
      assert.matches('aegis%-run schema list', r.stdout)
    end)

    it('is listed in aegis-run --help', function()
      local r = h.run({ '--help' })
      assert.matches('\n  schema +export data models as JSON Schema\n', r.stdout)
    end)

    it('exports every registered model into a new directory', function()
      local dir = h.tmpdir() .. '/schemas'
      local r = h.run({ 'schema', 'export', dir })
      assert.equal('', r.stderr)
      assert.equal(0, r.code)
      for line in r.stdout:gmatch('[^\n]+') do
        assert.matches('^' .. dir:gsub('%p', '%%%0') .. '/[%w_%-%.]+%.schema%.json$', line)
        local doc = json.decode(assert(h.read(line)))
        assert.equal('https://json-schema.org/draft/2020-12/schema', doc['$schema'])
      end
      assert.equal(0, h.run({ 'schema', 'export', dir }).code)  -- the directory exists now
    end)

    it('prints a JSON list with --json', function()
      local dir = h.tmpdir()
      local r = h.run({ 'schema', 'export', '--json', dir })
      assert.equal(0, r.code)
      assert.matches('^%[.*%]\n$', r.stdout)
      assert.equal('table', type(json.decode(r.stdout)))
      r = h.run({ 'schema', 'list', '--json' })
      assert.equal(0, r.code)
      assert.matches('^%[.*%]\n$', r.stdout)
    end)

    it('fails with exit 1 when the parent directory is missing', function()
      local dir = h.tmpdir()
      local r = h.run({ 'schema', 'export', dir .. '/a/b' })
      assert.equal(1, r.code)
      assert.equal(("aegis-run: schema: export '%s/a/b': parent directory '%s/a' does not exist\n"):format(dir, dir),
        r.stderr)
    end)

    it('refuses bad usage with exit 2', function()
      local cases = {
        { {}, "schema: expected 'export DIR' or 'list' (see aegis-run schema --help)" },
        { { 'frob' }, "schema: unknown command 'frob' (expected 'export' or 'list')" },
        { { 'export' }, 'schema: export needs a directory (see aegis-run schema --help)' },
        { { 'export', 'a', 'b' }, "schema: unexpected argument 'b'" },
        { { 'list', 'x' }, "schema: unexpected argument 'x'" },
        { { 'export', '--yaml', 'a' }, "schema: unknown option '--yaml' (see aegis-run schema --help)" },
      }
      for _, c in ipairs(cases) do
        local r = h.run({ 'schema', table.unpack(c[1]) })
        assert.equal(2, r.code)
        assert.equal('aegis-run: ' .. c[2] .. '\n', r.stderr)
        assert.equal('', r.stdout)
      end
    end)
  end)

  describe('in this process', function()
    local cmd = require('aegis.cli.schema')
    local Spec = s.object({
      id = s.string({ format = 'uuid' }),
      steps = s.array(s.integer({ min = 0 })):default({}),
    }, { name = 'spec_model', description = 'a model registered by the spec' })

    before_each(function() s.register('spec_model', Spec) end)
    after_each(function() s.unregister('spec_model') end)

    it('exports a model registered here and prints its path', function()
      local dir = h.tmpdir()
      local out = sink()
      assert.equal(0, cmd.run({ 'export', dir }, out))
      local file = dir .. '/spec_model.schema.json'
      assert.matches('\n?' .. file:gsub('%p', '%%%0') .. '\n', out.text())
      local doc = json.decode(h.read(file))
      assert.same({
        ['$schema'] = 'https://json-schema.org/draft/2020-12/schema',
        title = 'spec_model',
        description = 'a model registered by the spec',
        type = 'object',
        additionalProperties = false,
        required = { 'id' },
        properties = {
          id = { type = 'string', format = 'uuid' },
          steps = { type = 'array', items = { type = 'integer', minimum = 0 }, default = {} },
        },
      }, doc)
      assert.matches('"default": %[%]', h.read(file))
    end)

    it('lists registered names, one per line or as JSON', function()
      local out = sink()
      assert.equal(0, cmd.run({ 'list' }, out))
      assert.matches('^spec_model$', out.text():match('spec_model[^\n]*'))
      local names = {}
      for line in out.text():gmatch('[^\n]+') do names[#names + 1] = line end
      assert.same(s.names(), names)
      out = sink()
      cmd.run({ 'list', '--json' }, out)
      assert.same(s.names(), json.decode(out.text()))
    end)

    it('skips a model module that is not there and still exports the rest', function()
      local modules = require('aegis.modules').owners
      local n = #modules
      modules[n + 1] = 'aegis.spec_missing_module'
      local ok, err = pcall(cmd.run, { 'export', h.tmpdir() }, sink())
      modules[n + 1] = nil
      assert.is_true(ok, tostring(err))
    end)

    it('lets a model module that fails to load raise', function()
      local modules = require('aegis.modules').owners
      local n = #modules
      modules[n + 1] = 'spec_broken_module'
      package.preload.spec_broken_module = function() error('spec: broken module', 0) end
      local ok, err = pcall(cmd.run, { 'list' }, sink())
      modules[n + 1] = nil
      package.preload.spec_broken_module = nil
      assert.is_false(ok)
      assert.equal('spec: broken module', err)
    end)

    it('raises an io error object for an unwritable directory', function()
      local dir = h.tmpdir()
      h.write(dir .. '/f', '')
      local ok, err = pcall(cmd.run, { 'export', dir .. '/f' }, sink())
      assert.is_false(ok)
      assert.is_true(errors.is(err))
      assert.equal('io', err.code)
      assert.equal(1, err.exit)
      assert.matches(': not a directory$', err.msg)
    end)
  end)
end)
