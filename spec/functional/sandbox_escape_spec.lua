-- Scripts trying to get out of the sandbox, run as aegis-run processes with
-- a small budget. Each must fail with exactly one line on stderr and exit 1,
-- and the process must end normally (no crash, no hang).
local h = require('spec.helpers')

local FIX = os.getenv('PWD') .. '/spec/fixtures/sandbox/'

local CONFIG = [[
return {
  sandbox = { instructions = 200000, seconds = 20, memory_mb = 16 },
  env_allow = { 'HOME', 'AEGIS_*', 'AEGIS_CANARY_KEY' },
}]]

local function project()
  local dir = h.tmpdir()
  os.execute('mkdir ' .. h.shell_quote(dir .. '/.git'))
  h.write(dir .. '/aegis.config.lua', CONFIG)
  return dir
end

local dir  -- one project for the whole file

-- Runs -e code (or a fixture, given as a file name ending in .lua).
local function run(what, env)
  dir = dir or project()
  local args = { '-e', what }
  if what:find('^[%w_]+%.lua$') then
    h.write(dir .. '/' .. what, assert(h.read(FIX .. what)))
    args = { what }
  end
  return h.run(args, { cwd = dir, env = env or { AEGIS_DEBUG = false } })
end

-- The script must fail with exactly this line.
local function refused(what, line)
  local r = run(what)
  assert.equal('aegis-run: ' .. line .. '\n', r.stderr)
  assert.equal(1, r.code)
  return r
end

local BUDGET = '(command line):%d: sandbox: instruction budget exceeded (200000 instructions)'

describe('sandbox escapes', function()
  describe('missing libraries', function()
    for _, name in ipairs({ 'io', 'package', 'require', 'debug', 'load', 'loadstring', 'dofile', 'loadfile',
      'collectgarbage', '_G' }) do
      it('has no ' .. name, function()
        refused(('local x = %s'):format(name), ("(command line):1: sandbox: undefined global '%s'"):format(name))
      end)
    end

    it('has no os.execute, os.exit, os.remove', function()
      refused('os.execute("true")', "(command line):1: attempt to call a nil value (field 'execute')")
      refused('os.exit(0)', "(command line):1: attempt to call a nil value (field 'exit')")
      refused('os.remove("aegis.config.lua")', "(command line):1: attempt to call a nil value (field 'remove')")
      assert.is_not_nil(h.read(dir .. '/aegis.config.lua'))
    end)
  end)

  describe('string.dump', function()
    it('is not in string', function()
      refused('string.dump(print)', "(command line):1: attempt to call a nil value (field 'dump')")
    end)

    it('is not reachable through a string', function()
      refused('("").dump(print)', "(command line):1: attempt to call a nil value (field 'dump')")
      refused('local s = "" s:dump()', "(command line):1: attempt to call a nil value (method 'dump')")
    end)

    it('is not reachable through the string metatable', function()
      refused('local mt = getmetatable("") return mt.__index.dump',
        "(command line):1: attempt to index a nil value (local 'mt')")
    end)
  end)

  describe('shared tables', function()
    it('cannot modify the string table', function()
      refused('string.upper = function() end', "(command line):1: sandbox: cannot modify read-only table 'string'")
      local r = run('rawset(string, "upper", function() return "pwned" end) print(("a"):upper(), string.upper("a"))')
      assert.equal('A\tpwned\n', r.stdout)  -- only its own view changed
    end)

    it('cannot modify the string metatable', function()
      refused('setmetatable("", {})',
        "(command line):1: bad argument #1 to 'setmetatable' (table expected, got string)")
      refused('getmetatable("").__index = {}', "(command line):1: attempt to index a nil value")
    end)

    it('cannot modify aegis or reach the host _G through it', function()
      refused('aegis.x = 1', "(command line):1: sandbox: cannot modify read-only table 'aegis'")
      refused('aegis.errors.new = print', "(command line):1: sandbox: cannot modify read-only table 'aegis.errors'")
      local r = run('print(aegis._G, aegis.package, aegis.io, rawget(aegis, "errors"))')
      assert.equal('nil\tnil\tnil\tnil\n', r.stdout)
    end)

    it('cannot set the metatable of a proxy', function()
      refused('setmetatable(aegis, {})', '(command line):1: cannot change a protected metatable')
      refused('setmetatable(string, nil)', '(command line):1: cannot change a protected metatable')
      refused('setmetatable(_ENV, nil)', '(command line):1: cannot change a protected metatable')
    end)
  end)

  describe('loading', function()
    it('refuses bytecode', function()
      dir = dir or project()
      h.write(dir .. '/bytecode.lua', string.dump(function() print('ran') end))
      local r = h.run({ 'bytecode.lua' }, { cwd = dir })
      assert.equal("aegis-run: sandbox: 'bytecode.lua': binary chunks are not allowed\n", r.stderr)
      assert.equal('', r.stdout)
      assert.equal(1, r.code)
    end)
  end)

  describe('budget', function()
    it('stops while true do end', function()
      refused('while true do end', BUDGET:format(1))
    end)

    it('stops a pcall-wrapped loop', function()
      refused('while true do pcall(function() while true do end end) end', BUDGET:format(1))
      refused('pcall_loop.lua', 'pcall_loop.lua:3: sandbox: instruction budget exceeded (200000 instructions)')
    end)

    it('stops a loop inside a coroutine', function()
      refused('coroutine.wrap(function() while true do end end)()', BUDGET:format(1))
    end)

    it('stops a loop that resumes many coroutines', function()
      local r = run('coroutine_many.lua')
      assert.equal(1, r.code)
      assert.matches('^aegis%-run: coroutine_many%.lua:%d: sandbox: instruction budget exceeded'
        .. ' %(200000 instructions%)\n$', r.stderr)
    end)

    it('stops a looping xpcall handler', function()
      refused('xpcall(function() error("x") end, function() while true do end end)', BUDGET:format(1))
    end)

    it('refuses a looping __gc finalizer', function()
      refused('setmetatable({}, {__gc = function() while true do end end})',
        '(command line):1: sandbox: __gc metamethods are not allowed')
    end)

    it('stops work hidden in one C call', function()
      refused('table.move({}, 1, math.maxinteger - 1, 2)', BUDGET:format(1))
      local r = run('print(#("").rep("", math.maxinteger))')
      assert.equal('0\n', r.stdout)
    end)

    it('stops a memory bomb', function()
      refused('memory_bomb.lua', 'memory_bomb.lua: sandbox: memory budget exceeded (16 MiB)')
      refused('local s = ("x"):rep(1 << 30)', '(command line): sandbox: memory budget exceeded (16 MiB)')
    end)
  end)

  describe('environment', function()
    local canary = ('sk-test-canary-%d-%d'):format(os.time(), math.random(1 << 30))

    it('cannot read a secret-looking variable, even when allowed', function()
      local code = [[
        print(os.getenv('AEGIS_CANARY_KEY'), os.getenv('AEGIS_CANARY_PLAIN'))
        for _, n in ipairs({'OPENAI_API_KEY', 'AEGIS_CANARY_TOKEN', 'PATH'}) do local v = os.getenv(n) print(n, v) end]]
      local r = run(code, {
        AEGIS_CANARY_KEY = canary, AEGIS_CANARY_PLAIN = 'visible', AEGIS_CANARY_TOKEN = canary,
        OPENAI_API_KEY = canary,
      })
      assert.equal(0, r.code, r.stderr)
      assert.equal('nil\tvisible\nOPENAI_API_KEY\tnil\nAEGIS_CANARY_TOKEN\tnil\nPATH\tnil\n', r.stdout)
      assert.is_nil(r.stdout:find(canary, 1, true))
      assert.is_nil(r.stderr:find(canary, 1, true))
    end)
  end)
end)

describe('the aegis table scripts see', function()
  local cases = {
    { 'aegis.config', 'config is the host\'s own' },
    { 'aegis.path', 'path reads files outside the journal' },
    { 'aegis.hash.sha256_file', 'hashing a file reads it outside the journal' },
    { 'aegis.schema.export', 'export writes files' },
    { 'aegis.fs', 'fs reads and writes files' },
    { 'aegis.runtime', 'a second runtime would bypass the journal' },
  }
  for _, c in ipairs(cases) do
    it('has no ' .. c[1] .. ' (' .. c[2] .. ')', function()
      local r = h.run({ '-e', 'print(' .. c[1] .. ' == nil)' })
      assert.equal(0, r.code, r.stderr)
      assert.equal('true\n', r.stdout)
    end)
  end

  it('keeps the rest of those modules', function()
    local r = h.run({ '-e', "print(aegis.hash.sha256('abc'):sub(1, 8), type(aegis.schema.object))" })
    assert.equal(0, r.code, r.stderr)
    assert.equal('ba7816bf\tfunction\n', r.stdout)
  end)
end)
