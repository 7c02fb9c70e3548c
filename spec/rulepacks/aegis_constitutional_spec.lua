-- aegis-constitutional: the union of typescript-strict, ui-theme-tokens and
-- a11y (ids kept), plus no-secrets and provenance. Runs aegis-run enforce
-- as a process; an included pack this build lacks is stubbed on AEGIS_PATH
-- (so the union's mechanics are tested either way). Key-shaped canaries
-- are built at run time: no key-shaped literal is committed.
local h = require('spec.helpers')
local json = require('aegis.json')
local standards = require('aegis.standards')

local INCLUDED = { 'typescript-strict', 'ui-theme-tokens', 'a11y' }

local function mkdir(p) os.execute('mkdir -p ' .. h.shell_quote(p)) end

-- AEGIS_PATH with a stub for each included pack that is not built in.
local stubs
local function aegis_path()
  if stubs ~= nil then return stubs end
  stubs = h.tmpdir()
  mkdir(stubs .. '/rulepacks')
  for _, name in ipairs(INCLUDED) do
    if not standards.find(name) then
      h.write(stubs .. '/rulepacks/' .. name .. '.lua', ([[
return { name = '%s', rules = {
  { id = 'stub-rule', description = 'stub of a pack this build lacks', query = '(empty_statement) @e' } } }
]]):format(name))
    end
  end
  return stubs
end

local function project(files)
  local dir = h.tmpdir()
  mkdir(dir .. '/.git')
  -- the stubs are trusted: an untrusted include would send the whole pack
  -- to the locked-down worker, which gets no store (enforce_untrusted_spec)
  h.write(dir .. '/aegis.config.lua', ('return { standards = { trusted = { %q } } }'):format(aegis_path()))
  for name, text in pairs(files) do h.write(dir .. '/' .. name, text) end
  return dir
end

local function enforce(dir, args, env)
  env = env or {}
  env.AEGIS_PATH = aegis_path()
  local a = { 'enforce', '--format', 'json' }
  for _, x in ipairs(args) do a[#a + 1] = x end
  local r = h.run(a, { cwd = dir, env = env })
  local doc = json.decode(r.stdout)
  assert(doc, r.stderr)
  return doc, r
end

local function findings(doc, rule)
  local out = {}
  for _, f in ipairs(doc.findings) do
    if f.rule == rule then out[#out + 1] = ('%d:%d %s'):format(f.line, f.col, f.message) end
  end
  return out
end

describe('aegis-constitutional', function()
  it('is the union of typescript-strict, ui-theme-tokens and a11y with their ids, plus its own two', function()
    local dir = project({ ['e.ts'] = '' })
    local union = enforce(dir, { '--rulepacks', 'aegis-constitutional', 'e.ts' })
    local parts = enforce(dir, { '--rulepacks', table.concat(INCLUDED, ','), 'e.ts' })
    local ids = {}
    for _, r in ipairs(parts.rules) do ids[#ids + 1] = r.id end
    ids[#ids + 1] = 'aegis-constitutional/no-secrets'
    ids[#ids + 1] = 'aegis-constitutional/provenance'
    table.sort(ids)
    local got = {}
    for _, r in ipairs(union.rules) do got[#got + 1] = r.id end
    assert.same(ids, got)
    for _, id in ipairs(got) do
      local pack = id:match('^(.-)/')
      assert.is_true(pack == 'aegis-constitutional' or pack == 'typescript-strict' or pack == 'ui-theme-tokens'
        or pack == 'a11y', id)
    end
  end)

  describe('no-secrets', function()
    local R = 'aegis-constitutional/no-secrets'
    -- canaries: prefix and body assembled here, never written as one literal
    local function canary(prefix, n, alphabet)
      alphabet = alphabet or 'aB3dE5gH7jK9mN1pQ'
      local t = {}
      for i = 1, n do
        local k = (i * 7) % #alphabet + 1
        t[i] = alphabet:sub(k, k)
      end
      return prefix .. table.concat(t)
    end
    local KEYS = {
      { 'OpenAI API key', canary('s' .. 'k-', 48) },
      { 'OpenAI project API key', canary('s' .. 'k-' .. 'proj-', 64) },
      { 'Anthropic API key', canary('s' .. 'k-' .. 'ant-' .. 'api03-', 80) },
      { 'AWS access key id', canary('AK' .. 'IA', 16, 'ABCDEFGHIJ234567') },
      { 'GitHub token', canary('gh' .. 'p_', 36) },
      { 'Google API key', canary('AI' .. 'za', 35) },
      { 'Slack token', canary('xo' .. 'xb-', 24) },
      { 'Stripe secret key', canary('s' .. 'k_' .. 'live_', 24) },
    }

    for _, k in ipairs(KEYS) do
      it('finds a ' .. k[1] .. ' in strings, template literals and comments', function()
        local src = table.concat({
          ('const a = "%s";'):format(k[2]),
          ('const b = `Bearer ${x} %s`;'):format(k[2]),
          ('// key: %s'):format(k[2]),
          ("const c = { headers: { 'x-api-key': '%s' } };"):format(k[2]),
        }, '\n') .. '\n'
        local dir = project({ ['k.ts'] = src })
        local doc, r = enforce(dir, { '--rulepacks', R, 'k.ts' })
        assert.equal(1, r.code)
        local kind = ('Possible %s in '):format(k[1])
        assert.same({
          '1:12 ' .. kind .. 'a string literal; read secrets from the environment',
          '2:24 ' .. kind .. 'a string literal; read secrets from the environment',
          '3:9 ' .. kind .. 'a comment; read secrets from the environment',
          '4:38 ' .. kind .. 'a string literal; read secrets from the environment',
        }, findings(doc, R))
        -- the finding spans the key, not the literal
        assert.equal(#k[2], doc.findings[1].end_col - doc.findings[1].col)
      end)
    end

    it('passes placeholders, short strings, environment reads and look-alikes', function()
      local src = table.concat({
        'const a = process.env.OPENAI_API_KEY;',
        ('const b = "%s";'):format('s' .. 'k-' .. ('x'):rep(40)),            -- placeholder: no digit
        ('const c = "%s";'):format('s' .. 'k-' .. 'your-key-here'),          -- too short
        ('const d = "%s";'):format('ta' .. 's' .. 'k-' .. ('a1'):rep(20)),   -- not at a word start
        ('const e = "%s";'):format('AK' .. 'IA' .. 'SHORT12'),
        'const f = "sk-"; // sk- alone',
        ('let g = identifier_%s;'):format('s' .. 'k_1'),                      -- code, not a literal
      }, '\n') .. '\n'
      local dir = project({ ['ok.ts'] = src })
      local doc, r = enforce(dir, { '--rulepacks', R, 'ok.ts' })
      assert.same({}, findings(doc, R))
      assert.equal(0, r.code)
    end)

    it('is silenced by a suppression comment', function()
      local src = '// aegis-disable-next-line no-secrets\nconst a = "' .. KEYS[1][2] .. '";\n'
      local dir = project({ ['s.ts'] = src })
      local doc = enforce(dir, { '--rulepacks', R, 's.ts' })
      assert.same({}, findings(doc, R))
    end)
  end)

  describe('provenance', function()
    local R = 'aegis-constitutional/provenance'
    local GEN = '// @aegis-generated by pipeline x\nexport const a = 1;\n'

    it('flags a generated file without an artifact record, not one with a record', function()
      local dir = project({ ['gen.ts'] = GEN, ['hand.ts'] = '// written by hand\nexport const b = 2;\n',
        ['late.ts'] = ('\n'):rep(12) .. '// @aegis-generated\n' })
      local url = 'sqlite:' .. dir .. '/store.db'
      local doc, r = enforce(dir, { '--rulepacks', R, '.' }, { AEGIS_STORE = url })
      assert.equal(1, r.code)
      assert.equal(1, #doc.findings)
      assert.same({ 'gen.ts', 1, 1 }, { doc.findings[1].path, doc.findings[1].line, doc.findings[1].col })
      assert.matches('has no artifact record in the project store', doc.findings[1].message, 1, true)
      -- the pipeline stores the file: now it has provenance
      local store = require('aegis.store')
      local db = assert(store.open(url))
      assert(require('aegis.artifact').put(GEN, { db = db }))
      db:close()
      doc, r = enforce(dir, { '--rulepacks', R, '.' }, { AEGIS_STORE = url })
      assert.same({}, doc.findings)
      assert.equal(0, r.code)
      -- edited after generation: the bytes no longer match the record
      h.write(dir .. '/gen.ts', GEN .. 'export const extra = 3;\n')
      doc = enforce(dir, { '--rulepacks', R, '.' }, { AEGIS_STORE = url })
      assert.equal(1, #doc.findings)
    end)

    it('flags a generated file when there is no project store at all', function()
      local dir = project({ ['gen.ts'] = GEN })
      local doc = enforce(dir, { '--rulepacks', R, '.' }, { AEGIS_STORE = 'sqlite:' .. dir .. '/none.db' })
      assert.equal(1, #doc.findings)
      assert.is_nil(h.read(dir .. '/none.db'))  -- looking does not create a store
    end)
  end)
end)
