-- luacheck: std +busted
-- The aegis side of bench/cache/run.sh, run as `aegis-run test` (specs run
-- unsandboxed inside the binary). For each prompt size it fills a cache
-- with one entry per request, then times hits three ways:
--   key+get  cache.key(opts) then c:get(key)  (hash of the canonical
--            request, point read, response hash check, decode)
--   call     c:call(opts) answered from the cache (the same, plus the
--            result table, on_delta replay and the batched event)
-- Env: BENCH_DB (SQLite file), BENCH_OUT (JSON results), BENCH_N (hits per size),
-- BENCH_FILL=0 to measure an existing BENCH_DB without filling it again.
local cache = require('aegis.cache')
local json = require('aegis.json')

local N = tonumber(os.getenv('BENCH_N') or '') or 2000
local SIZES = { { name = '1KB', bytes = 1024 }, { name = '8KB', bytes = 8192 }, { name = '64KB', bytes = 65536 } }
local REQUESTS = 64  -- distinct requests per size, cycled

-- Deterministic filler text of n bytes.
local function text(n, seed)
  local words = { 'export', 'function', 'const', 'return', 'interface', 'type', 'import', 'from', 'async',
    'await', 'string', 'number', 'parser', 'token', 'module', 'file' }
  local out, len, i = {}, 0, seed
  while len < n do
    i = (i * 1103515245 + 12345) % 2147483648
    local w = words[i % #words + 1]
    out[#out + 1] = w
    len = len + #w + 1
  end
  return table.concat(out, ' '):sub(1, n)
end

local function request(size, i)
  return {
    provider = 'openai', model = 'gpt-5.4', base_url = 'http://127.0.0.1:1/v1',
    system = 'You write TypeScript.',
    blocks = {
      { kind = 'requirements', stability = 'stable', content = text(size - 200, 7) },
      { kind = 'task', stability = 'volatile', content = ('Write src/file%d.ts'):format(i) },
    },
    params = { max_tokens = 2000, temperature = 0 },
  }
end

-- CPU microseconds per call of fn(i): the median of 9 rounds of n/9 calls,
-- in process CPU time (os.clock), not wall time: other processes share
-- the machine, and CPU time is what they do not inflate. floor.c measures
-- the same way (CLOCK_PROCESS_CPUTIME_ID). Rounds are long enough to
-- include the garbage collector's share.
local function time(n, fn)
  for i = 1, 50 do fn(i) end
  local rounds = {}
  local per = math.max(1, n // 9)
  for r = 1, 9 do
    local t0 = os.clock()
    for i = 1, per do fn(i + r) end
    rounds[r] = (os.clock() - t0) * 1e6 / per
  end
  table.sort(rounds)
  return rounds[5]
end

it('measures cache hits', function()
  local db = assert(os.getenv('BENCH_DB'), 'BENCH_DB')
  local fill = os.getenv('BENCH_FILL') ~= '0'
  local c = assert(cache.open('sqlite:' .. db, { events = true }))
  if fill then assert(c:clear()) end
  local out = { n = N, sizes = {} }
  local response = text(1024, 3)  -- a 1 KB answer
  for _, s in ipairs(SIZES) do
    local reqs, keys = {}, {}
    for i = 1, REQUESTS do
      reqs[i] = request(s.bytes, i)
      local k, canon = assert(cache.key(reqs[i]))
      keys[i] = k
      if fill then
        assert(c:put(k, { text = response, usage = { input = 2000, output = 300 }, finish = 'stop', cost = 0.01 },
          { request = canon }))
      end
      -- the floor program hashes the whole request (prompt texts
      -- included, as the provider would receive them) and reads the entry
      local f = assert(io.open(('%s.req.%s.%d'):format(db, s.name, i), 'wb'))
      f:write(json.canonical(reqs[i]))
      f:close()
      f = assert(io.open(('%s.key.%s.%d'):format(db, s.name, i), 'wb'))
      f:write(k)
      f:close()
    end
    local full1 = json.canonical(reqs[1])
    local keyget = time(N, function(i)
      local r = reqs[i % REQUESTS + 1]
      local e = c:get((cache.key(r)))
      assert(e)
    end)
    local call = time(N, function(i)
      local res = c:call(reqs[i % REQUESTS + 1])
      assert(res.cache == 'hit')
    end)
    local keyonly = time(N, function(i) cache.key(reqs[i % REQUESTS + 1]) end)
    local getonly = time(N, function(i) assert(c:get(keys[i % REQUESTS + 1])) end)
    out.sizes[#out.sizes + 1] = { size = s.name, request_bytes = #full1, keyget_us = keyget, call_us = call,
      key_us = keyonly, get_us = getonly }
  end
  c:close()
  local f = assert(io.open(assert(os.getenv('BENCH_OUT')), 'wb'))
  f:write(json.encode(out))
  f:close()
end)
