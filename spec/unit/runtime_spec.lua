local errors = require('aegis.errors')
local json = require('aegis.json')
local runtime = require('aegis.runtime')

-- A getenv that answers from a table, so specs need no real environment.
local function fake_env(t)
  return function(name) return t[name] end
end

-- The error a call raises (must raise).
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, 'expected an error')
  return err
end

describe('aegis.runtime', function()
  describe('record and replay', function()
    local env = { HOME = '/home/u', LANG = 'C.UTF-8', CI = nil }

    -- Reads every kind of input, in a fixed order.
    local function session(rt)
      local out = {}
      out[#out + 1] = rt:time()
      out[#out + 1] = rt:getenv('HOME')
      out[#out + 1] = rt:getenv('CI') or 'unset'
      out[#out + 1] = rt:clock()
      for _ = 1, 5 do out[#out + 1] = rt:random(1, 100) end
      out[#out + 1] = rt:random()
      out[#out + 1] = rt:date('!%Y-%m-%d %H:%M:%S')
      out[#out + 1] = rt:random(0)
      return out
    end

    it('replays every recorded value in order', function()
      local rec = runtime.new({ mode = 'record', getenv = fake_env(env) })
      local values = session(rec)
      local rep = runtime.new({ mode = 'replay', entries = rec:entries() })
      assert.same(values, session(rep))
      assert.is_true(rep:finished())
    end)

    it('replays from a journal that went through JSON', function()
      local rec = runtime.new({ mode = 'record', getenv = fake_env(env) })
      local values = session(rec)
      local entries = json.decode(json.encode(rec:entries()))
      local rep = runtime.new({ mode = 'replay', entries = entries })
      assert.same(values, session(rep))
    end)

    it('journals plain entries: the seed once, not each draw', function()
      local rec = runtime.new({ mode = 'record', seed = 42, getenv = fake_env(env) })
      session(rec)
      local e = rec:entries()
      assert.same({ kind = 'getenv', key = 'HOME', value = '/home/u' }, e[2])
      assert.same({ kind = 'getenv', key = 'CI' }, e[3])
      assert.same({ kind = 'seed', value = 42 }, e[5])
      local kinds = {}
      for i, x in ipairs(e) do kinds[i] = x.kind end
      assert.same({ 'time', 'getenv', 'getenv', 'clock', 'seed', 'time' }, kinds)
    end)

    it('draws a fresh seed below 2^53 when none is given', function()
      local rec = runtime.new()
      rec:random()
      local seed = rec:entries()[1].value
      assert.equal('integer', math.type(seed))
      assert.is_true(seed >= 0 and seed < 1 << 53)
    end)

    it('reports a divergence with the position, expected and actual', function()
      local rec = runtime.new({ mode = 'record', getenv = fake_env(env) })
      rec:time(); rec:clock(); rec:getenv('HOME')
      local rep = runtime.new({ mode = 'replay', entries = rec:entries() })
      rep:time(); rep:clock()
      local err = raised(rep.time, rep)
      assert.is_true(errors.is(err))
      assert.equal('replay', err.code)
      assert.equal("runtime: replay diverged at entry 3: expected getenv 'HOME', got time", err.msg)
    end)

    it('reports a different variable at the same position', function()
      local rep = runtime.new({ mode = 'replay', entries = { { kind = 'getenv', key = 'HOME', value = '/x' } } })
      local err = raised(rep.getenv, rep, 'LANG')
      assert.equal("runtime: replay diverged at entry 1: expected getenv 'HOME', got getenv 'LANG'", err.msg)
    end)

    it('reports running past the end of the journal', function()
      local rep = runtime.new({ mode = 'replay', entries = { { kind = 'time', value = 5 } } })
      assert.equal(5, rep:time())
      assert.is_true(rep:finished())
      local err = raised(rep.random, rep)
      assert.equal('runtime: replay diverged at entry 2: expected end of journal, got seed', err.msg)
    end)

    it('knows when a replay has not used the whole journal', function()
      local rep = runtime.new({ mode = 'replay', entries = {
        { kind = 'time', value = 5 }, { kind = 'clock', value = 1 },
      } })
      rep:time()
      assert.is_false(rep:finished())
    end)
  end)

  describe('time and date', function()
    it('converts a table without journaling it', function()
      local rt = runtime.new()
      assert.equal(os.time({ year = 2020, month = 1, day = 1, hour = 12 }),
        rt:time({ year = 2020, month = 1, day = 1, hour = 12 }))
      assert.same({}, rt:entries())
    end)

    it('formats the journaled time when no time is given', function()
      local rep = runtime.new({ mode = 'replay', entries = { { kind = 'time', value = 86400 } } })
      assert.equal('1970-01-02', rep:date('!%Y-%m-%d'))
      assert.equal('1970-01-01', rep:date('!%Y-%m-%d', 0))
    end)

    it('raises on misuse', function()
      local rt = runtime.new()
      assert.error_matches(function() rt:date(3) end, "bad argument #1 to 'date' %(string expected, got number%)")
      assert.error_matches(function() rt:date('%Y', 'x') end, "bad argument #2 to 'date'")
    end)
  end)

  describe('getenv', function()
    local env = {
      HOME = '/home/u', PATH = '/bin', MYAPP_MODE = 'fast', MYAPP_API_KEY = 'sk-123',
      OPENAI_API_KEY = 'sk-canary', GITHUB_TOKEN = 'ghp_x', DB_PASSWORD = 'p', AWS_SECRET_ACCESS_KEY = 's',
      MYAPP_URL = 'postgres://user:pw@db/x', MYAPP_PLAIN_URL = 'https://example.com/x',
    }

    it('reads only allow-listed variables', function()
      local rt = runtime.new({ getenv = fake_env(env) })
      assert.equal('/home/u', rt:getenv('HOME'))
      assert.is_nil(rt:getenv('PATH'))
      assert.same({ { kind = 'getenv', key = 'HOME', value = '/home/u' } }, rt:entries())
    end)

    it('has a small default allow-list', function()
      assert.same({ 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'CI' }, runtime.default_env_allow)
    end)

    it('matches NAME_* prefixes', function()
      local rt = runtime.new({ env_allow = { 'MYAPP_*' }, getenv = fake_env(env) })
      assert.equal('fast', rt:getenv('MYAPP_MODE'))
      assert.equal('https://example.com/x', rt:getenv('MYAPP_PLAIN_URL'))
      assert.is_nil(rt:getenv('HOME'))
    end)

    it('never shows secrets, even when allowed, and does not journal them', function()
      local rt = runtime.new({
        env_allow = { 'MYAPP_*', 'OPENAI_API_KEY', 'GITHUB_TOKEN', 'DB_PASSWORD', 'AWS_SECRET_ACCESS_KEY' },
        getenv = fake_env(env),
      })
      local names = { 'MYAPP_API_KEY', 'OPENAI_API_KEY', 'GITHUB_TOKEN', 'DB_PASSWORD', 'AWS_SECRET_ACCESS_KEY' }
      for _, name in ipairs(names) do
        assert.is_nil(rt:getenv(name), name)
      end
      assert.same({}, rt:entries())
      assert.is_nil(rt:getenv('MYAPP_URL'))  -- a URL with a password
      assert.same({ { kind = 'getenv', key = 'MYAPP_URL' } }, rt:entries())
    end)

    it('tells secret-looking names', function()
      local names = { 'API_KEY', 'openai_api_key', 'X_TOKEN', 'CLIENT_SECRET', 'PGPASSWORD', 'MY_PASSWD',
        'GOOGLE_APPLICATION_CREDENTIALS' }
      for _, n in ipairs(names) do
        assert.is_true(runtime.is_secret(n), n)
      end
      for _, n in ipairs({ 'HOME', 'LANG', 'CI', 'PATH' }) do
        assert.is_false(runtime.is_secret(n), n)
      end
      assert.is_true(runtime.is_secret('DATABASE_URL', 'postgres://u:secret@h/db'))
      assert.is_false(runtime.is_secret('DATABASE_URL', 'postgres://h/db'))
    end)

    it('raises on misuse', function()
      assert.error_matches(function() runtime.new():getenv(1) end,
        "bad argument #1 to 'getenv' %(string expected, got number%)")
    end)
  end)

  describe('random', function()
    it('draws what math.random draws after the same seed', function()
      local rt = runtime.new({ seed = 12345 })
      local got, want = {}, {}
      for _ = 1, 20 do got[#got + 1] = rt:random(1, 1000) end
      for _ = 1, 5 do got[#got + 1] = rt:random(7) end
      got[#got + 1] = rt:random()
      got[#got + 1] = rt:random(0)
      got[#got + 1] = rt:random(-5, 5)
      got[#got + 1] = rt:random(math.mininteger, math.maxinteger)
      math.randomseed(12345)
      for _ = 1, 20 do want[#want + 1] = math.random(1, 1000) end
      for _ = 1, 5 do want[#want + 1] = math.random(7) end
      want[#want + 1] = math.random()
      want[#want + 1] = math.random(0)
      want[#want + 1] = math.random(-5, 5)
      want[#want + 1] = math.random(math.mininteger, math.maxinteger)
      math.randomseed()
      assert.same(want, got)
    end)

    it('reseeds deterministically with randomseed(x), journaling nothing', function()
      local rt = runtime.new()
      assert.equal(9, rt:randomseed(9))
      local a = { rt:random(100), rt:random(100), rt:random(100) }
      rt:randomseed(9)
      assert.same(a, { rt:random(100), rt:random(100), rt:random(100) })
      assert.same({}, rt:entries())
    end)

    it('journals the fresh seed of randomseed()', function()
      local rt = runtime.new()
      local seed = rt:randomseed()
      assert.same({ { kind = 'seed', value = seed } }, rt:entries())
    end)

    it('raises like math.random on bad arguments', function()
      local rt = runtime.new({ seed = 1 })
      assert.error_matches(function() rt:random(0, -1) end, "bad argument #2 to 'random' %(interval is empty%)")
      assert.error_matches(function() rt:random(-3) end, "bad argument #1 to 'random' %(interval is empty%)")
      assert.error_matches(function() rt:random(1.5) end, 'number has no integer representation')
      assert.error_matches(function() rt:randomseed(0.5) end, 'number has no integer representation')
    end)
  end)

  describe('new', function()
    it('raises on misuse', function()
      assert.error_matches(function() runtime.new({ mode = 'live' }) end,
        "bad argument #1 to 'new' %(mode must be 'record' or 'replay', got 'live'%)")
      assert.error_matches(function() runtime.new({ mode = 'replay' }) end, 'replay needs entries')
      assert.error_matches(function() runtime.new({ seed = 1.5 }) end, 'seed must be an integer')
      assert.error_matches(function() runtime.new({ env_allow = { 1 } }) end, 'env_allow must hold strings')
    end)
  end)
end)
