local errors = require('aegis.errors')
local runtime = require('aegis.runtime')
local sandbox = require('aegis.sandbox')

local MiB = 1024 * 1024
local SMALL = { instructions = 20000, memory = 8 * MiB }

-- Runs `code` as x.lua in a fresh env (or opts.env) under a small budget.
local function run(code, opts)
  opts = opts or {}
  return sandbox.run({
    source = code, name = opts.name or 'x.lua', env = opts.env, args = opts.args,
    budget = opts.budget or SMALL,
  })
end

-- The error of a run that must fail.
local function fails(code, opts)
  local ok, err = run(code, opts)
  assert.is_nil(ok, 'expected the run to fail')
  assert.is_true(errors.is(err))
  return err
end

-- The results of a run that must succeed, packed.
local function succeeds(code, opts)
  local r = table.pack(run(code, opts))
  if not r[1] then error('run failed: ' .. tostring(r[2] and r[2].msg), 2) end
  return table.unpack(r, 2, r.n)
end

describe('aegis.sandbox', function()
  describe('env', function()
    local allowed = {
      'string', 'table', 'math', 'utf8', 'coroutine', 'pairs', 'ipairs', 'next', 'select', 'type',
      'tostring', 'tonumber', 'error', 'assert', 'pcall', 'xpcall', 'setmetatable', 'getmetatable',
      'rawequal', 'rawlen', 'rawget', 'rawset', 'print', 'os', 'aegis',
    }
    local absent = {
      'load', 'loadfile', 'dofile', 'require', 'package', 'io', 'debug', 'collectgarbage',
      'loadstring', '_G', 'module', 'setfenv', 'getfenv', 'unpack',
    }

    it('has every allow-listed global', function()
      local env = sandbox.env()
      for _, name in ipairs(allowed) do
        assert.is_not_nil(env[name], name)
      end
    end)

    it('has none of the others: reading one raises', function()
      for _, name in ipairs(absent) do
        local err = fails(('return %s'):format(name))
        assert.equal('runtime', err.code)
        assert.equal(("x.lua:1: sandbox: undefined global '%s'"):format(name), err.msg)
      end
    end)

    it('gives os only time, clock, date and getenv', function()
      local keys = succeeds(
        'local t = {} for k in pairs(os) do t[#t + 1] = k end table.sort(t) return table.concat(t, " ")')
      assert.equal('clock date getenv time', keys)
      assert.is_nil(succeeds('return os.execute'))
      assert.is_nil(succeeds('return os.exit'))
      assert.is_nil(succeeds('return os.remove'))
    end)

    it('adds opts.globals, writable by the script', function()
      local env = sandbox.env({ globals = { arg = { [0] = 'x.lua', 'a' } } })
      assert.equal('a!', succeeds('arg[1] = arg[1] .. "!" return arg[1]', { env = env }))
    end)

    it('leaves aegis out when opts.aegis is false', function()
      local err = fails('return aegis', { env = sandbox.env({ aegis = false }) })
      assert.equal("x.lua:1: sandbox: undefined global 'aegis'", err.msg)
    end)

    it('raises on misuse', function()
      assert.error_matches(function() sandbox.env({ globals = 3 }) end,
        "bad argument #1 to 'env' %(globals must be a table%)")
      assert.error_matches(function() sandbox.env({ globals = { [1] = true } }) end, 'globals must have string keys')
    end)
  end)

  describe('globals', function()
    it('lets the top level declare globals, functions too', function()
      assert.equal(3, succeeds('function helper(a) return a + 1 end x = 2 return helper(x)'))
    end)

    it('lets functions assign globals the chunk declared', function()
      assert.equal(5, succeeds('count = 0 local function bump() count = count + 5 end bump() return count'))
    end)

    it('reads a declared global that was set to nil as nil', function()
      assert.is_nil(succeeds('x = 1 x = nil return x'))
    end)

    it('refuses a new global from inside a function', function()
      local err = fails('local function f()\n  y = 2\nend\nf()')
      assert.equal("x.lua:2: sandbox: assignment to undeclared global 'y'", err.msg)
    end)

    it('refuses assigning a built-in name', function()
      assert.equal("x.lua:1: sandbox: assignment to read-only global 'print'", fails('print = nil').msg)
      assert.equal("x.lua:1: sandbox: assignment to read-only global 'string'",
        fails('function string() end').msg)
    end)

    it('keeps each environment to itself', function()
      local a, b = sandbox.env(), sandbox.env()
      succeeds('shared = 1', { env = a })
      assert.equal("x.lua:1: sandbox: undefined global 'shared'", fails('return shared', { env = b }).msg)
    end)
  end)

  describe('strings', function()
    it('has no string.dump and no ("").dump', function()
      assert.is_nil(succeeds('return string.dump'))
      assert.is_nil(succeeds('return ("").dump'))
      local err = fails('return ("").dump(print)')
      assert.matches("^x%.lua:1: attempt to call a nil value %(field 'dump'%)", err.msg)
    end)

    it('hides the string metatable from scripts and the host', function()
      assert.is_nil(succeeds('return getmetatable("")'))
      assert.is_false(getmetatable(''))
      assert.is_nil(debug.getmetatable('').__index.dump)
    end)

    it('keeps string.dump for the host', function()
      assert.is_function(string.dump)
      assert.equal('string', type(string.dump(function() end)))
    end)

    it('cannot change the string table the host sees', function()
      assert.equal("x.lua:1: sandbox: cannot modify read-only table 'string'", fails('string.upper = nil').msg)
      succeeds('rawset(string, "upper", function() return "pwned" end) return ("a"):upper()')
      assert.equal('A', ('a'):upper())
      assert.equal('A', string.upper('a'))
      assert.equal('x.lua:1: cannot change a protected metatable', fails('setmetatable(string, {})').msg)
    end)

    it('returns an empty rep at once, however many copies', function()
      assert.equal('', succeeds('return ("").rep("", math.maxinteger)'))
      assert.equal('', succeeds('return string.rep("", math.maxinteger, "")'))
      assert.equal('a,a,a', succeeds('return ("a"):rep(3, ",")'))
      assert.equal('', ('x'):rep(0))
    end)
  end)

  describe('read-only proxies', function()
    it('refuses writes to aegis and tables under it', function()
      assert.equal("x.lua:1: sandbox: cannot modify read-only table 'aegis'", fails('aegis.x = 1').msg)
      assert.equal("x.lua:1: sandbox: cannot modify read-only table 'aegis.errors'",
        fails('local e = aegis.errors e.new = nil').msg)
      assert.is_function(require('aegis.errors').new)
    end)

    it('refuses setmetatable on proxies and hides their metatables', function()
      assert.matches('cannot change a protected metatable$', fails('setmetatable(aegis, nil)').msg)
      assert.is_false(succeeds('return getmetatable(aegis)'))
      assert.is_false(succeeds('return getmetatable(math)'))
    end)

    it('reads through: values, length, pairs', function()
      assert.equal(require('aegis').version, succeeds('return aegis.version'))
      assert.equal(math.pi, succeeds('return math.pi'))
      assert.equal('table', succeeds('return type(aegis.errors)'))
      assert.is_true(succeeds('local n = 0 for k, v in pairs(aegis) do n = n + 1 end return n > 0'))
    end)

    it('hides aegis.runtime: the run has one already', function()
      assert.is_table(require('aegis').runtime)  -- loaded, so pairs would meet it
      assert.is_nil(succeeds('return aegis.runtime'))
      assert.is_false(succeeds('for k in pairs(aegis) do if k == "runtime" then return true end end return false'))
      assert.is_true(succeeds('for k in pairs(aegis) do if k == "version" then return true end end return false'))
    end)

    it('gives scripts a cache whose provider calls go where the config says', function()
      local big = { instructions = 5e6, memory = 64 * MiB }
      assert.equal(0, succeeds([[
        local c <close> = assert(aegis.cache.open('sqlite::memory:'))
        assert(c.db == nil and c.export == nil and c.import == nil and c.__index == nil)
        assert(getmetatable(c) == false)
        return c:stats().entries]], { budget = big }))
      for _, opt in ipairs({ 'base_url = "http://127.0.0.1:1"', 'api_key_env = "HOME"', 'http = {}',
                             'getenv = os.getenv' }) do
        local err = fails(([[
          local c <close> = assert(aegis.cache.open('sqlite::memory:'))
          c:call({ provider = 'openai', model = 'm', %s,
                   blocks = { { kind = 'task', stability = 'volatile', content = 'hi' } } })]]):format(opt),
          { budget = big })
        local name = opt:match('^[%w_]+')
        assert.matches("bad argument #1 to 'call' %(option '" .. name .. "' is not available to scripts", err.msg)
      end
      local err = fails([[
        local c <close> = assert(aegis.cache.open('sqlite::memory:'))
        c:call_all({ { provider = 'openai', model = 'm', blocks = {} }, { provider = 'openai', base_url = 'x' } })]],
        { budget = big })
      assert.matches("'call_all' %(request 2: option 'base_url' is not available to scripts", err.msg)
      err = fails([[
        local c <close> = assert(aegis.cache.open('sqlite::memory:'))
        local other = assert(aegis.cache.open('sqlite::memory:'))
        c.get(other, 'k')]], { budget = big })
      assert.matches("bad argument #1 to 'get' %(a cache expected%)", err.msg)
    end)

    it('never hands out the host modules themselves', function()
      assert.is_false(succeeds('return rawequal(aegis.errors, nil) or rawget(aegis, "errors") ~= nil'))
      local got = succeeds('return aegis.errors')
      assert.are_not.equal(require('aegis.errors'), got)
    end)
  end)

  describe('metatables', function()
    it('gives scripts the metatables they set', function()
      assert.is_true(succeeds('local mt = {} local t = setmetatable({}, mt) return getmetatable(t) == mt'))
      assert.equal('p', succeeds('return getmetatable(setmetatable({}, {__metatable = "p"}))'))
    end)

    it('hides host metatables and those of non-tables', function()
      assert.is_nil(succeeds('return getmetatable(aegis.errors.new("x", "y"))'))
      assert.is_nil(succeeds('return getmetatable(print)'))
      assert.is_nil(succeeds('return getmetatable(1)'))
    end)

    it('refuses __gc, which would run outside the budget', function()
      assert.equal('x.lua:1: sandbox: __gc metamethods are not allowed',
        fails('setmetatable({}, {__gc = function() while true do end end})').msg)
    end)

    it('checks setmetatable arguments like the stock one', function()
      assert.equal("x.lua:1: bad argument #1 to 'setmetatable' (table expected, got number)",
        fails('setmetatable(1, {})').msg)
      assert.equal("x.lua:1: bad argument #2 to 'setmetatable' (nil or table expected)",
        fails('setmetatable({}, 1)').msg)
      assert.equal("x.lua:1: bad argument #2 to 'xpcall' (function expected, got nil)", fails('xpcall(print)').msg)
    end)
  end)

  describe('run', function()
    it('returns the results and passes args as ...', function()
      assert.same({ 'b', 'a', 2 },
        { succeeds('local a, b = ... return b, a, select("#", ...)', { args = { 'a', 'b' } }) })
    end)

    it('reports a syntax error with file and line', function()
      local err = fails('local x =\n= 2')
      assert.equal('syntax', err.code)
      assert.equal("x.lua:2: unexpected symbol near '='", err.msg)
      assert.equal(1, err.exit)
    end)

    it('refuses bytecode', function()
      local err = fails(string.dump(function() return 1 end), { name = 'b.lua' })
      assert.equal('syntax', err.code)
      assert.equal("sandbox: 'b.lua': binary chunks are not allowed", err.msg)
    end)

    it('reports a runtime error with file, line and traceback', function()
      local err = fails('local x = 1\nerror("boom")', { name = 'pipeline.lua' })
      assert.equal('runtime', err.code)
      assert.equal('pipeline.lua:2: boom', err.msg)
      assert.matches('^pipeline%.lua:2: boom\nstack traceback:', err.traceback)
      assert.matches('pipeline%.lua:2: in main chunk', err.traceback)
      -- a message with NUL bytes, whole in both
      err = fails('error("a\\0b", 0)', { name = 'nul.lua' })
      assert.equal('a\0b', err.msg)
      assert.equal('a\0b\nstack traceback:', err.traceback:sub(1, #'a\0b\nstack traceback:'))
    end)

    it('keeps the chunk name of inline code', function()
      assert.equal('(command line):1: x', fails('error("x")', { name = '=(command line)' }).msg)
    end)

    it('gives error values without a message a position and a sane text', function()
      assert.equal('x.lua:1: (error object is a table value)', fails('error({})').msg)
      assert.equal('x.lua:2: (error object is a nil value)', fails('\nerror()').msg)
      assert.equal('x.lua:1: 42', fails('error(42)').msg)
      assert.equal('x.lua:1: (error object is a boolean value)', fails('error(false)').msg)
    end)

    it('honours __tostring on error values', function()
      local err = fails('error(setmetatable({}, {__tostring = function() return "custom" end}))')
      assert.equal('x.lua:1: custom', err.msg)
    end)

    it('survives a __tostring that fails', function()
      local err = fails('error(setmetatable({}, {__tostring = function() error("again") end}))')
      assert.equal('x.lua:1: (error object is a table value)', err.msg)
    end)

    it('keeps an aegis error raised by the script as err.cause', function()
      local err = fails('local e = aegis.errors.new("replay", "runtime: diverged") error(e)')
      assert.equal('runtime', err.code)
      assert.equal('x.lua:1: runtime: diverged', err.msg)
      assert.equal('replay', err.cause.code)
    end)

    it('raises on misuse', function()
      assert.error_matches(function() sandbox.run('x') end, "bad argument #1 to 'run' %(table expected, got string%)")
      assert.error_matches(function() sandbox.run({ name = 'x' }) end, 'source must be a string')
      assert.error_matches(function() sandbox.run({ source = '' }) end, 'name must be a string')
      assert.error_matches(function() sandbox.run({ source = '', name = 'x', budget = { seconds = -1 } }) end,
        'budget.seconds must be a non%-negative number')
      assert.error_matches(function() sandbox.run({ source = '', name = 'x', budget = { memory = 0 / 0 } }) end,
        'budget.memory must be a non%-negative number')
      assert.error_matches(function() sandbox.run({ source = '', name = 'x', budget = { instructions = 1e300 } }) end,
        'budget.instructions is too large')
      assert.is_true(sandbox.run({ source = '', name = 'x', budget = { instructions = 1e6 + 0.5, seconds = 1 / 0 } }))
    end)
  end)

  describe('budget', function()
    local function budget_error(code, opts)
      local err = fails(code, opts)
      assert.equal('budget', err.code)
      assert.equal(1, err.exit)
      return err.msg
    end
    local MSG = 'x.lua:%d: sandbox: instruction budget exceeded (20000 instructions)'

    it('stops an endless loop', function()
      assert.equal(MSG:format(1), budget_error('while true do end'))
    end)

    it('cannot be swallowed by pcall', function()
      assert.equal(MSG:format(1), budget_error('while true do pcall(function() while true do end end) end'))
      assert.equal(MSG:format(2), budget_error('for i = 1, 1e9 do\n  pcall(error, "x")\nend'))
    end)

    it('cannot be swallowed by an xpcall handler, even one that loops', function()
      budget_error('while true do xpcall(function() while true do end end, function(m) return m end) end')
      budget_error('xpcall(function() while true do end end, function() while true do end end)')
      budget_error('xpcall(function() error("x") end, function() while true do end end)')
    end)

    it('counts every coroutine against one budget', function()
      assert.equal(MSG:format(1), budget_error('coroutine.wrap(function() while true do end end)()'))
      budget_error([[
        while true do
          local co = coroutine.create(function() for i = 1, 100 do coroutine.yield(i) end end)
          while coroutine.resume(co) do end
        end]])
    end)

    it('stops a script that ignores a failed coroutine', function()
      budget_error('local co = coroutine.create(function() while true do end end) coroutine.resume(co) return 1')
    end)

    it('runs no __close handler of a stopped coroutine without the hook', function()
      budget_error([[
        coroutine.wrap(function()
          local x <close> = setmetatable({}, {__close = function() while true do end end})
          while true do end
        end)()]])
      budget_error([[
        local co = coroutine.create(function()
          local x <close> = setmetatable({}, {__close = function() while true do end end})
          while true do end
        end)
        coroutine.resume(co)
        coroutine.close(co)]])
    end)

    it('counts table.move work, and moves like the stock table.move', function()
      budget_error('table.move({}, 1, math.maxinteger - 1, 2)')
      local n = 10000  -- more than one slice
      for _, c in ipairs({ { 1, n, 3 }, { 3, n, 1 }, { 1, n, n + 5 }, { 1, n, 1 }, { 2, n - 1, 1 } }) do
        local f, e, t = c[1], c[2], c[3]
        local code = ([[
          local t = {} for i = 1, %d do t[i] = i end
          table.move(t, %d, %d, %d)
          local u = table.move(t, %d, %d, %d, {})
          return t, u]]):format(n, f, e, t, f, e, t)
        local got_t, got_u = succeeds(code, { budget = { instructions = 0, memory = 64 * MiB } })
        local want_t = {}
        for i = 1, n do want_t[i] = i end
        table.move(want_t, f, e, t)
        local want_u = table.move(want_t, f, e, t, {})
        assert.same(want_t, got_t)
        assert.same(want_u, got_u)
      end
    end)

    it('stops at the deadline', function()
      local msg = budget_error('while true do end', { budget = { instructions = 0, seconds = 0.05 } })
      assert.equal('x.lua:1: sandbox: time budget exceeded (0.05 s)', msg)
    end)

    it('stops a memory bomb with code memory', function()
      local err = fails('local t = {} while true do t[#t + 1] = ("x"):rep(1e6) end')
      assert.equal('memory', err.code)
      assert.equal('x.lua: sandbox: memory budget exceeded (8 MiB)', err.msg)
    end)

    it('puts the memory limit and the hook back after each run', function()
      local hook = { debug.gethook() }
      fails('local t = {} while true do t[#t + 1] = ("x"):rep(1e6) end')
      fails('while true do end')
      fails('error("x")')
      succeeds('return 1')
      assert.same(hook, { debug.gethook() })
      local s = ('x'):rep(16 * MiB)  -- over the 8 MiB the runs had
      assert.equal(16 * MiB, #s)
    end)

    it('runs without a hook when there is no limit', function()
      assert.is_nil(succeeds('return nil', { budget = { instructions = 0, seconds = 0, memory = 0 } }))
    end)

    it('nests: an inner run has its own budget and the outer one goes on', function()
      local inner = function()
        local ok, err = sandbox.run({ source = 'while true do end', name = 'in.lua', budget = { instructions = 5000 } })
        return ok, err.msg
      end
      local env = sandbox.env({ globals = { inner = inner } })
      local ok, msg = succeeds('return inner()', { env = env })
      assert.is_nil(ok)
      assert.equal('in.lua:1: sandbox: instruction budget exceeded (5000 instructions)', msg)
      env = sandbox.env({ globals = { inner = inner } })
      assert.equal(MSG:format(1), budget_error('inner() while true do end', { env = env }))
    end)

    it('counts instructions', function()
      local env = sandbox.env({ globals = { count = sandbox.instructions } })
      local n = succeeds('for i = 1, 5000 do end return count()', { env = env })
      assert.is_true(n >= 5000)
      assert.is_nil(sandbox.instructions())
    end)

    it('has documented defaults', function()
      assert.same({ instructions = 10000000000, seconds = 0, memory = 1024 * MiB }, sandbox.defaults.script)
      assert.same({ instructions = 10000000, seconds = 2, memory = 64 * MiB }, sandbox.defaults.config)
    end)
  end)

  describe('determinism hooks', function()
    it('sends os.time, os.clock, os.getenv and math.random through the runtime', function()
      local rt = runtime.new({ mode = 'record', seed = 7, getenv = function(n) return 'v-' .. n end })
      local code = 'return os.time(), os.clock(), os.getenv("HOME"), math.random(1, 1000), os.date("!%Y", 0)'
      local rec = { succeeds(code, { env = sandbox.env({ runtime = rt }) }) }
      assert.equal('v-HOME', rec[3])
      assert.equal('1970', rec[5])
      local kinds = {}
      for i, e in ipairs(rt:entries()) do kinds[i] = e.kind end
      assert.same({ 'time', 'clock', 'getenv', 'seed' }, kinds)
      local replay = runtime.new({ mode = 'replay', entries = rt:entries() })
      assert.same(rec, { succeeds(code, { env = sandbox.env({ runtime = replay }) }) })
    end)

    it('reports a divergence as a runtime error naming the script line', function()
      local rt = runtime.new({ mode = 'replay', entries = { { kind = 'time', value = 1 } } })
      local err = fails('local t = os.time()\nlocal c = os.clock()', { env = sandbox.env({ runtime = rt }) })
      assert.equal('x.lua:2: runtime: replay diverged at entry 2: expected end of journal, got clock', err.msg)
      assert.equal('replay', err.cause.code)
    end)
  end)
end)

describe('aegis.core.sandbox call', function()
  local core = require('aegis.core.sandbox')
  local bomb = function()
    local t = {}
    while true do t[#t + 1] = ('x'):rep(1000) .. #t end
  end

  -- the message used to name the inner run's budget whatever limit stopped it
  it('names the budget whose limit stopped the run', function()
    local r = table.pack(core.call(0, 0, 2 * MiB, '@outer', function()
      return core.call(0, 0, 100 * MiB, '@inner', bomb)
    end))
    assert.same({ true, false, 'memory', 'sandbox: memory budget exceeded (2 MiB)' },
      { r[1], r[2], r[3], r[4] })
    r = table.pack(core.call(0, 0, 100 * MiB, '@outer', function()
      return core.call(0, 0, 2 * MiB, '@inner', bomb)
    end))
    assert.same({ true, false, 'memory', 'sandbox: memory budget exceeded (2 MiB)' },
      { r[1], r[2], r[3], r[4] })
    r = table.pack(core.call(0, 0, 2 * MiB, '@outer', function()
      return core.call(0, 0, 0, '@inner', bomb)  -- no cap of its own
    end))
    assert.same({ true, false, 'memory', 'sandbox: memory budget exceeded (2 MiB)' },
      { r[1], r[2], r[3], r[4] })
    -- the same, the error arriving through a coroutine as a plain runtime error
    r = table.pack(core.call(0, 0, 2 * MiB, '@outer', function()
      return core.call(0, 0, 0, '@inner', function() coroutine.wrap(bomb)() end)
    end))
    assert.same({ true, false, 'memory', 'sandbox: memory budget exceeded (2 MiB)' },
      { r[1], r[2], r[3], r[4] })
  end)
end)
