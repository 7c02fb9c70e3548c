-- S7 and S2 for rulepacks: a rulepack that is neither built in nor under a
-- trusted path runs only in a worker process with rlimits, a kill watchdog
-- and no secrets in its environment, and its SHA-256 is logged; a pattern
-- bomb there is killed within 1.5 x the wall budget; runaway Lua is stopped
-- by the budget; escapes fail.
local h = require('spec.helpers')
local json = require('aegis.json')
local hash = require('aegis.hash')

local GOOD = [[
return { name = 'prpack', rules = {
  { id = 'no-debugger', severity = 'error', description = 'no debugger', query = '(debugger_statement) @d' } } }
]]

local function project(packs, config)
  local dir = h.tmpdir()
  h.mkdir(dir .. '/.git')
  h.mkdir(dir .. '/rulepacks')
  h.mkdir(dir .. '/trusted/rulepacks')
  h.write(dir .. '/a.ts', 'debugger;\nlet x = 1;\n')
  h.write(dir .. '/trusted/rulepacks/base.lua', [[
return { name = 'base', rules = {
  { id = 'no-let', severity = 'warning', description = 'let seen', query = '(lexical_declaration "let" @report)' } } }
]])
  for name, src in pairs(packs) do h.write(dir .. '/rulepacks/' .. name .. '.lua', src) end
  h.write(dir .. '/aegis.config.lua', config or "return { standards = { trusted = { 'trusted' } } }")
  return dir
end

-- Secrets in the parent's environment; none may reach an untrusted worker.
local SECRETS = {
  CANARY_API_KEY = 'canary-' .. ('x'):rep(8),
  GITHUB_TOKEN = 'canary-token',
  AWS_SECRET_ACCESS_KEY = 'canary-aws',
  AWS_ACCESS_KEY_ID = 'canary-aws-id',
  OPENAI_API_KEY = 'canary-openai',
  AEGIS_STORE = 'sqlite:/tmp/never-used.db',
}

local function enforce(dir, args)
  local a = { 'enforce' }
  for _, x in ipairs(args) do a[#a + 1] = x end
  return h.run(a, { cwd = dir, env = SECRETS })
end

describe('untrusted rulepacks (S7)', function()
  it('runs a project rulepack without a trust entry in a worker, logs its SHA-256, strips secrets', function()
    local dir = project({ prpack = GOOD })
    local r = enforce(dir, { '--rulepacks', 'prpack,trusted/rulepacks/base.lua', '--format', 'json', '.' })
    assert.equal(1, r.code)
    local sha = hash.sha256(GOOD)
    assert.matches("aegis-run: enforce: rulepack './rulepacks/prpack.lua' is not trusted (sha256 " .. sha
      .. '): running it in a worker process', r.stderr, 1, true)
    local envline = r.stderr:match('environment: ([^\n]*)')
    assert.truthy(envline)
    for name in pairs(SECRETS) do assert.is_nil(envline:find(name, 1, true), name) end
    assert.matches('PATH', envline, 1, true)
    local cpu = r.stderr:match('ran with limits: CPU (%S+) s')
    assert.equal('121', cpu)   -- a second over the wall budget: the watchdog acts first
    local doc = json.decode(r.stdout)
    assert.same({ 'prpack/no-debugger', 'base/no-let' }, { doc.findings[1].rule, doc.findings[2].rule })
  end)

  it('runs a rulepack under a trusted entry in process, without the notice', function()
    local dir = project({ prpack = GOOD }, "return { standards = { trusted = { 'rulepacks/prpack.lua' } } }")
    local r = enforce(dir, { '--rulepacks', 'prpack', '.' })
    assert.equal(1, r.code)
    assert.equal('', r.stderr)
    assert.matches('a.ts:1:1 error prpack/no-debugger', r.stdout, 1, true)
  end)

  it('runs a trusted rulepack that includes an untrusted one in the worker, as a whole', function()
    local dir = project({ prpack = GOOD })
    h.write(dir .. '/trusted/rulepacks/wrap.lua', [[
return { name = 'wrap', include = { 'prpack' }, rules = {} }
]])
    local r = enforce(dir, { '--rulepacks', 'trusted/rulepacks/wrap.lua', '--format', 'json', '.' })
    assert.matches("rulepack 'trusted/rulepacks/wrap.lua' is not trusted"
      .. " (it includes rulepack './rulepacks/prpack.lua')",
      r.stderr, 1, true)
    assert.equal('prpack/no-debugger', json.decode(r.stdout).findings[1].rule)
  end)

  it('sets the configured rlimits on the worker', function()
    local dir = project({ prpack = GOOD },
      "return { standards = { untrusted = { seconds = 30, cpu_seconds = 7, memory_mb = 700 } } }")
    local r = enforce(dir, { '--rulepacks', 'prpack', '.' })
    assert.matches('(address space 700 MiB, CPU 7 s, killed after 30 s', r.stderr, 1, true)
    assert.matches('ran with limits: CPU 7 s, address space ', r.stderr, 1, true)
    local as = r.stderr:match('address space (%S+);')
    -- AddressSanitizer builds cannot run under RLIMIT_AS (ag_proc.h)
    if as ~= 'unlimited' then assert.equal(tostring(700 * 1024 * 1024), as) end
  end)

  -- S2: a pattern bomb is one C call no hook stops: the watchdog kills the
  -- worker within 1.5 x the wall budget; the trusted rules still report.
  it('kills a worker stuck in a pattern bomb within 1.5 x the wall budget (S2)', function()
    local dir = project({ bomb = [[
return { name = 'bomb', rules = {
  { id = 'b', description = 'd', query = '(program) @p',
    check = function() return string.find(("a"):rep(40), ("a*"):rep(40) .. "b") end } } }
]] }, "return { standards = { trusted = { 'trusted' }, untrusted = { seconds = 2 } } }")
    local r = enforce(dir, { '--rulepacks', 'bomb,trusted/rulepacks/base.lua', '--format', 'json', '.' })
    assert.equal(1, r.code)
    local doc = json.decode(r.stdout)
    assert.equal('base/no-let', doc.findings[1].rule)
    local p = doc.problems[1]
    assert.equal('worker', p.kind)
    assert.matches("enforce: untrusted rulepack '%./rulepacks/bomb%.lua': killed after [%d.]+ s %(wall budget 2 s%)",
      p.message)
    assert.is_true(p.seconds <= 3.0, ('killed after %.2f s'):format(p.seconds))
  end)

  it('stops runaway Lua in the worker at the rule budget, and refuses __gc (S2)', function()
    local dir = project({ spin = [[
return { name = 'spin', rules = {
  { id = 'loop', description = 'd', query = '(program) @p',
    check = function() while true do pcall(function() while true do end end) end end },
  { id = 'gc', description = 'd', query = '(program) @p',
    check = function() setmetatable({}, { __gc = function() while true do end end }) end },
  { id = 'ok', description = 'fine', query = '(debugger_statement) @d' } } }
]] }, "return { standards = { budget = { seconds = 0.3 } } }")
    local r = enforce(dir, { '--rulepacks', 'spin', '--format', 'json', '.' })
    local doc = json.decode(r.stdout)
    assert.equal('spin/ok', doc.findings[1].rule)
    local by = {}
    for _, p in ipairs(doc.problems) do if p.rule then by[p.rule] = p end end
    assert.matches('time budget exceeded %(0.3 s%)', by['spin/loop'].message)
    assert.matches('sandbox: __gc metamethods are not allowed', by['spin/gc'].message, 1, true)
    assert.equal(1, r.code)
  end)

  it('refuses escapes from an untrusted rulepack (S1)', function()
    local dir = project({ esc = [[
return { name = 'esc', rules = {
  { id = 'io', description = 'd', query = '(program) @p', check = function() return io.open('/etc/passwd') end },
  { id = 'dump', description = 'd', query = '(program) @p', check = function(ctx) return ("").dump(ctx.text) end },
  { id = 'load', description = 'd', query = '(program) @p', check = function() return load('\27Lua') end },
  { id = 'debug', description = 'd', query = '(program) @p', check = function() return debug.getinfo(1) end },
  { id = 'env', description = 'd', query = '(program) @p',
    check = function() return os.getenv('CANARY_API_KEY') or os.getenv('GITHUB_TOKEN') end } } }
]] })
    local r = enforce(dir, { '--rulepacks', 'esc', '--format', 'json', '.' })
    local doc = json.decode(r.stdout)
    assert.same({}, doc.findings)
    local by = {}
    for _, p in ipairs(doc.problems) do if p.rule then by[p.rule] = p.message end end
    assert.matches("undefined global 'io'", by['esc/io'], 1, true)
    assert.matches("attempt to call a nil value (field 'dump')", by['esc/dump'], 1, true)
    assert.matches("undefined global 'load'", by['esc/load'], 1, true)
    assert.matches("undefined global 'debug'", by['esc/debug'], 1, true)
    assert.is_nil(by['esc/env'])  -- ran, found nothing: the variables are not there
  end)

  it('reports an untrusted rulepack that fails to load as a usage error', function()
    local dir = project({ broken = "os.execute('touch pwned'); return { name = 'broken', rules = {} }" })
    local r = enforce(dir, { '--rulepacks', 'broken', '.' })
    assert.equal(2, r.code)
    assert.matches("rulepacks/broken.lua:1: attempt to call a nil value (field 'execute')", r.stderr, 1, true)
    assert.is_nil(h.read(dir .. '/pwned'))
  end)
end)

describe('aegis.standards.run.worker_env', function()
  local run = require('aegis.standards.run')
  local env = {
    PATH = '/bin', HOME = '/h', OPENAI_API_KEY = 'k', GITHUB_TOKEN = 't', AWS_SECRET_ACCESS_KEY = 's',
    AEGIS_STORE = 'postgres://u:pw@h/db', AEGIS_PATH = '/p', AEGIS_LUA_DIR = '/l',
  }
  local function get(n) return env[n] end
  it('passes only the base list to untrusted workers: no store, no API keys', function()
    local e = run.worker_env(get)
    table.sort(e)
    assert.same({ 'AEGIS_LUA_DIR=/l', 'AEGIS_PATH=/p', 'HOME=/h', 'PATH=/bin' }, e)
  end)
end)
