local h = require('spec.helpers')
local config = require('aegis.config')
local errors = require('aegis.errors')
local runtime = require('aegis.runtime')
local s = require('aegis.schema')

local MiB = 1024 * 1024

-- A fresh project directory (it holds .git, so the search stops there).
local function project()
  local dir = h.tmpdir()
  os.execute('mkdir -p ' .. h.shell_quote(dir .. '/.git'))
  return dir
end

-- The error config.load raises (must raise).
local function load_error(opts)
  local ok, err = pcall(config.load, opts)
  assert.is_false(ok, 'expected config.load to fail')
  assert.is_true(errors.is(err), tostring(err))
  assert.equal('config', err.code)
  assert.equal(2, err.exit)
  return err.msg
end

local DEFAULTS = {
  sandbox = { instructions = 10000000000, seconds = 0, memory_mb = 1024 },
  env_allow = { 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'CI' },
  paths = {},
}

describe('aegis.config', function()
  before_each(function() config.reset() end)
  after_each(function() config.reset() end)

  describe('find', function()
    it('finds the file in the directory itself', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return {}')
      assert.equal(dir .. '/aegis.config.lua', config.find(dir))
    end)

    it('finds the nearest parent', function()
      local dir = project()
      os.execute('mkdir -p ' .. h.shell_quote(dir .. '/a/b/c'))
      h.write(dir .. '/aegis.config.lua', 'return {}')
      h.write(dir .. '/a/aegis.config.lua', 'return {}')
      assert.equal(dir .. '/a/aegis.config.lua', config.find(dir .. '/a/b/c'))
      assert.equal(dir .. '/a/aegis.config.lua', config.find(dir .. '/a/b/c/'))
    end)

    it('stops at the directory holding .git', function()
      local dir = h.tmpdir()
      os.execute('mkdir -p ' .. h.shell_quote(dir .. '/repo/.git') .. ' ' .. h.shell_quote(dir .. '/repo/src'))
      h.write(dir .. '/aegis.config.lua', 'return {}')  -- above the repository: not used
      assert.is_nil(config.find(dir .. '/repo/src'))
      h.write(dir .. '/repo/aegis.config.lua', 'return {}')
      assert.equal(dir .. '/repo/aegis.config.lua', config.find(dir .. '/repo/src'))
    end)

    it('stops at a .git file (a worktree)', function()
      local dir = h.tmpdir()
      os.execute('mkdir -p ' .. h.shell_quote(dir .. '/wt/src'))
      h.write(dir .. '/wt/.git', 'gitdir: /elsewhere\n')
      h.write(dir .. '/aegis.config.lua', 'return {}')
      assert.is_nil(config.find(dir .. '/wt/src'))
    end)
  end)

  describe('load', function()
    it('gives the defaults when there is no file', function()
      local cfg = config.load({ dir = project() })
      assert.same(DEFAULTS, cfg)
      assert.is_nil(config.file())
    end)

    it('loads the file, fills defaults and remembers it', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', [[
        local mb = 256
        return { store = 'sqlite:x.db', sandbox = { seconds = 1.5, memory_mb = mb }, paths = { 'lib' } }]])
      local cfg = config.load({ dir = dir })
      assert.same({
        store = 'sqlite:x.db',
        sandbox = { instructions = 10000000000, seconds = 1.5, memory_mb = 256 },
        env_allow = DEFAULTS.env_allow,
        paths = { 'lib' },
      }, cfg)
      assert.equal(dir .. '/aegis.config.lua', config.file())
      assert.equal(cfg, config.get())
    end)

    it('turns integral floats into integers', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return { sandbox = { instructions = 1e9 } }')
      local cfg = config.load({ dir = dir })
      assert.equal(1000000000, cfg.sandbox.instructions)
      assert.equal('integer', math.type(cfg.sandbox.instructions))
    end)

    it('loads an explicit path', function()
      local dir = h.tmpdir()
      h.write(dir .. '/other.lua', 'return { env_allow = { "MYAPP_*" } }')
      assert.same({ 'MYAPP_*' }, config.load({ path = dir .. '/other.lua' }).env_allow)
      assert.equal(dir .. '/other.lua', config.file())
    end)

    it('runs the file in the sandbox, without aegis or io', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return { store = io.read() }')
      assert.equal(dir .. "/aegis.config.lua:1: sandbox: undefined global 'io'", load_error({ dir = dir }))
      h.write(dir .. '/aegis.config.lua', 'return { store = aegis.version }')
      assert.equal(dir .. "/aegis.config.lua:1: sandbox: undefined global 'aegis'", load_error({ dir = dir }))
    end)

    it('lets the file read allowed environment variables', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return { paths = { os.getenv("HOME") or "none" } }')
      assert.same({ os.getenv('HOME') or 'none' }, config.load({ dir = dir }).paths)
    end)

    it('requires a table', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return "x"')
      assert.equal(("config '%s/aegis.config.lua': must return a table, got string"):format(dir),
        load_error({ dir = dir }))
      h.write(dir .. '/aegis.config.lua', '-- nothing')
      assert.equal(("config '%s/aegis.config.lua': must return a table, got nil"):format(dir),
        load_error({ dir = dir }))
    end)

    it('reports a syntax error with file and line', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return {\n  store = = 1 }')
      assert.equal(dir .. "/aegis.config.lua:2: unexpected symbol near '='", load_error({ dir = dir }))
    end)

    it('reports a runtime error with file and line', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'local x = nil\nreturn { store = x.y }')
      assert.equal(dir .. "/aegis.config.lua:2: attempt to index a nil value (local 'x')", load_error({ dir = dir }))
    end)

    it('stops a config file that loops', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'while true do end')
      assert.equal(dir .. '/aegis.config.lua:1: sandbox: instruction budget exceeded (10000000 instructions)',
        load_error({ dir = dir }))
    end)

    it('refuses an unknown top-level key, naming it', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return { stroe = "sqlite:x.db" }')
      -- modules loaded earlier in this process may have declared more sections
      local msg = load_error({ dir = dir })
      assert.equal(("config '%s/aegis.config.lua': stroe: unknown key (known keys: "):format(dir),
        msg:sub(1, #dir + 60))
      for _, k in ipairs({ 'env_allow', 'paths', 'sandbox', 'store' }) do
        assert.truthy(msg:match('known keys: [^)]*%f[%w_]' .. k .. '%f[^%w_]'), k)
      end
    end)

    it('refuses an unknown nested key', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return { sandbox = { instrucions = 5 } }')
      assert.equal(("config '%s/aegis.config.lua': sandbox.instrucions: unknown key"):format(dir),
        load_error({ dir = dir }))
    end)

    it('names the path of a value of the wrong type', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return { sandbox = { seconds = "2" }, env_allow = { "HOME", 3 } }')
      assert.equal(("config '%s/aegis.config.lua': env_allow[2]: expected string, got number; "
        .. 'sandbox.seconds: expected number, got string'):format(dir), load_error({ dir = dir }))
    end)

    it('refuses negative budgets', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return { sandbox = { memory_mb = -1 } }')
      assert.matches("^config '.*': sandbox%.memory_mb: ", load_error({ dir = dir }))
    end)

    it('reads the returned table raw: its metamethods never run', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua',
        'return setmetatable({}, { __index = function() while true do end end,\n'
        .. '  __pairs = function() while true do end end })')
      assert.same(DEFAULTS, config.load({ dir = dir }))
    end)

    it('refuses a table that contains itself', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'local t = {} t.x = t return { paths = t }')
      assert.equal(("config '%s/aegis.config.lua': paths.x: a table may not contain itself"):format(dir),
        load_error({ dir = dir }))
    end)

    it('reports a file it cannot read', function()
      local dir = project()
      os.execute('mkdir ' .. h.shell_quote(dir .. '/aegis.config.lua'))
      assert.equal(("config '%s/aegis.config.lua': cannot read: Is a directory"):format(dir), load_error({ dir = dir }))
    end)

    it('raises on misuse', function()
      assert.error_matches(function() config.load({ path = 3 }) end,
        "bad argument #1 to 'load' %(path must be a string%)")
    end)
  end)

  describe('validate', function()
    it('fills defaults and never returns the table it was given', function()
      local t = { store = 'sqlite:a.db' }
      local cfg = assert(config.validate(t, 'f.lua'))
      assert.are_not.equal(t, cfg)
      assert.equal('sqlite:a.db', cfg.store)
      assert.equal(1024, cfg.sandbox.memory_mb)
    end)

    it('returns nil and an error for a bad table', function()
      local cfg, err = config.validate({ store = 5 }, 'f.lua')
      assert.is_nil(cfg)
      assert.equal('config', err.code)
      assert.equal("config 'f.lua': store: expected string, got number", err.msg)
    end)
  end)

  describe('get', function()
    it('loads once and caches', function()
      local a = config.get()
      assert.equal(a, config.get())
      config.reset()
      assert.are_not.equal(a, config.get())
    end)
  end)

  describe('declare', function()
    after_each(function()
      config.undeclare('demo')
    end)

    it('adds a section that files may then use', function()
      local dir = project()
      h.write(dir .. '/aegis.config.lua', 'return { demo = { level = 3 } }')
      assert.matches('demo: unknown key', load_error({ dir = dir }))
      config.declare('demo', s.object({ level = s.integer({ min = 1 }), name = s.string():default('d') }):optional())
      assert.same({ level = 3, name = 'd' }, config.load({ dir = dir }).demo)
      h.write(dir .. '/aegis.config.lua', 'return { demo = { level = 0 } }')
      assert.matches('demo%.level: ', load_error({ dir = dir }))
      config.undeclare('demo')
      h.write(dir .. '/aegis.config.lua', 'return { demo = { level = 3 } }')
      assert.matches('demo: unknown key', load_error({ dir = dir }))
    end)

    it('raises on misuse', function()
      assert.error_matches(function() config.declare('a b', s.any()) end, 'section name expected')
      assert.error_matches(function() config.declare('x', {}) end, 'aegis.schema schema expected')
    end)
  end)

  describe('without a file', function()
    it('gives the schema defaults without loading aegis.schema', function()
      local saved = { config = package.loaded['aegis.config'], schema = package.loaded['aegis.schema'] }
      package.loaded['aegis.config'], package.loaded['aegis.schema'] = nil, nil
      local ok, err = pcall(function()
        local fresh = require('aegis.config')
        local cfg = fresh.validate({})
        assert.is_nil(package.loaded['aegis.schema'])
        local parsed = fresh.schemas.config:parse({}, 'config')
        assert.is_not_nil(package.loaded['aegis.schema'])
        assert.same(parsed, cfg)
        assert.same(DEFAULTS, cfg)
      end)
      package.loaded['aegis.config'], package.loaded['aegis.schema'] = saved.config, saved.schema
      s.register('config', config.schemas.config)
      assert(ok, err)
    end)
  end)

  describe('schemas', function()
    it('registers the config model for aegis-run schema export', function()
      assert.equal(config.schemas.config, s.registered().config)
      local doc = config.schemas.config:json_schema()
      assert.equal('object', doc.type)
      assert.is_table(doc.properties.sandbox)
      assert.is_table(doc.properties.store)
    end)
  end)

  it('defaults the sandbox to the script budget', function()
    assert.equal(runtime.default_env_allow[1], DEFAULTS.env_allow[1])
    assert.equal(require('aegis.sandbox').defaults.script.memory, DEFAULTS.sandbox.memory_mb * MiB)
  end)
end)
