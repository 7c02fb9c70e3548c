-- Single-flight across processes (issue 4's acceptance): 8 aegis-run
-- processes make the same 50 requests through one SQLite cache against the
-- provider emulator, which answers each after a delay so the calls overlap;
-- the emulator's own request log must show exactly 50 provider calls. And a
-- lease whose holder was killed (-9) does not hold the others up. Workers:
-- spec/support/cache/calls.lua (they need `aegis.cache` reachable from scripts).
local h = require('spec.helpers')
local cc = require('spec.support.cache.common')
local emu = require('spec.fixtures.emulator.client')
local json = require('aegis.json')
local cache = require('aegis.cache')
local store = require('aegis.store')
local clock = require('aegis.clock')

local q = h.shell_quote

-- Results of calls.lua by request number.
local function results(text)
  local by = {}
  for line in (text or ''):gmatch('[^\n]+') do
    local ok, r = pcall(json.decode, line)
    if ok and type(r) == 'table' and r.i then by[r.i] = r end
  end
  return by
end

-- The emulator's log entries for the OpenAI chat route.
local function provider_calls(e)
  local list = {}
  for _, entry in ipairs(e:log()) do
    if entry.path == '/openai/v1/chat/completions' then list[#list + 1] = entry end
  end
  return list
end

describe('cache single-flight across processes', function()
  local e, dir
  setup(function()
    cc.require_public()
    dir = h.tmpdir()
    -- every answer comes 0.1 s late (so the processes overlap), the
    -- "crash" ones 3 s late (so a holder can be killed mid-call)
    h.write(dir .. '/rules.lua', [[
      return {
        { match = { route = 'openai', contains = 'crash request' }, fault = { delay = 3 } },
        { match = { route = 'openai' }, fault = { delay = 0.1 } },
      }]])
    e = emu.start({ '--script', dir .. '/rules.lua' })
  end)
  teardown(function() if e then e:stop() end end)

  -- three rounds, each on a fresh cache with requests of its own
  for round = 1, 3 do
    it('8 processes x the same 50 requests make exactly 50 provider calls (round ' .. round .. ')', function()
      e:reset()
      local path = dir .. '/sf' .. round .. '.db'
      local url = 'sqlite:' .. path
      assert(cache.open(url, { limits = {} })):close()
      -- two one by one upwards, two downwards, four with call_all: every
      -- request is asked for by all 8 at about the same time
      local modes = { { '1', '50', 'seq' }, { '1', '50', 'seq' }, { '50', '1', 'seq' }, { '50', '1', 'seq' },
        { '1', '50', 'all' }, { '1', '50', 'all' }, { '1', '50', 'all' }, { '1', '50', 'all' } }
      local lines = {}
      for p, m in ipairs(modes) do
        lines[#lines + 1] = ('%s > %s/out%d 2> %s/err%d &'):format(cc.cmd('calls.lua',
          { url, e.base.openai, m[1], m[2], m[3], 'single-flight ' .. round }, { OPENAI_API_KEY = 'sk-test-sf' }, 300),
          q(dir), p, q(dir), p)
      end
      lines[#lines + 1] = 'wait'
      local t0 = clock.monotonic()
      assert.is_true(cc.bash(table.concat(lines, '\n')))
      local elapsed = clock.monotonic() - t0
      local texts, misses, outcomes = {}, {}, {}
      for p = 1, #modes do
        local err = h.read(('%s/err%d'):format(dir, p))
        assert.equal('', err, 'process ' .. p .. ' warned or failed')
        local by = results(h.read(('%s/out%d'):format(dir, p)))
        for i = 1, 50 do
          local r = by[i]
          assert.truthy(r and r.text, ('process %d, request %d: %s'):format(p, i, tostring(r and r.err)))
          texts[i] = texts[i] or r.text
          assert.equal(texts[i], r.text, ('process %d, request %d: a different answer'):format(p, i))
          outcomes[r.cache] = (outcomes[r.cache] or 0) + 1
          if r.cache == 'miss' then misses[i] = (misses[i] or 0) + 1 end
        end
      end
      -- counted by the provider, not by us
      local calls = provider_calls(e)
      local bodies, distinct = {}, 0
      for _, entry in ipairs(calls) do
        if not bodies[entry.body_sha256] then distinct = distinct + 1 end
        bodies[entry.body_sha256] = true
        assert.equal(200, entry.status)
      end
      print(('\nsingle-flight: %d provider calls for 8 x 50 requests in %.1f s; outcomes: %s'):format(#calls, elapsed,
        json.canonical(outcomes)))
      assert.equal(50, #calls, 'provider calls (from the emulator log)')
      assert.equal(50, distinct)
      for i = 1, 50 do
        assert.equal(1, misses[i], ('request %d was made by %d processes'):format(i, misses[i] or 0))
      end
      assert.is_true((outcomes.waited or 0) > 0, 'no process ever waited for another: the calls did not overlap')
    end)
  end

  it('does not wait on a lease whose holder was killed', function()
    e:reset()
    local path = dir .. '/crash.db'
    local url = 'sqlite:' .. path
    assert(cache.open(url, { limits = {} })):close()
    local env = { OPENAI_API_KEY = 'sk-test-sf' }
    -- the holder: takes the lease, then waits 3 s for the provider; killed
    local p = io.popen(('(exec %s > /dev/null 2>&1) & echo $!'):format(
      cc.cmd('calls.lua', { url, e.base.openai, '1', '1', 'seq', 'crash' }, env)))
    local pid = p:read('l')
    p:close()
    -- kill it once its request is at the provider (the emulator logs a
    -- request when it arrives), its lease taken
    local arrived = false
    for _ = 1, 500 do
      if #provider_calls(e) > 0 then arrived = true break end
      os.execute('sleep 0.01')
    end
    assert.is_true(arrived, 'the first process never called the provider')
    local db <close> = assert(store.open(url))
    assert.equal(1, db:first('SELECT count(*) AS n FROM cache_leases').n, 'the first process holds no lease')
    assert(os.execute('kill -9 ' .. pid))
    os.execute(('while kill -0 %s 2>/dev/null; do sleep 0.01; done'):format(pid))
    -- the lease is still there, its holder dead
    assert.equal(1, db:first('SELECT count(*) AS n FROM cache_leases').n)
    local t0 = clock.monotonic()
    local out = io.popen(cc.cmd('calls.lua', { url, e.base.openai, '1', '1', 'seq', 'crash' }, env) .. ' 2>&1')
    local text = out:read('a')
    out:close()
    local elapsed = clock.monotonic() - t0
    local r = results(text)[1]
    assert.truthy(r and r.text, text)
    assert.equal('miss', r.cache)
    -- the lease lasts 120 s; a dead holder's is taken over at once (the
    -- answer itself takes 3 s): asserted with slack
    assert.is_true(elapsed < 30, ('the second process waited %.1f s on a dead holder'):format(elapsed))
    -- both asked the provider: the killed one and the one that took over
    assert.equal(2, #provider_calls(e))
  end)
end)
