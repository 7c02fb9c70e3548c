-- luacheck: std +busted
-- The aegis side of bench/checkpoint/run.sh, run as `aegis-run test` (specs
-- run unsandboxed inside the binary). Env: BENCH_STATES (JSON file of the
-- states), BENCH_OUT (JSON results), BENCH_SQLITE_DIR, BENCH_PG_URL.
local json = require('aegis.json')
local clock = require('aegis.clock')
local store = require('aegis.store')
local checkpoint = require('aegis.checkpoint')

local function read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end

local function median(t)
  table.sort(t)
  return t[math.ceil(#t / 2)]
end

-- Median microseconds of fn(i) over n calls (after 2 warm-up calls).
local function time(n, fn)
  for i = 1, 2 do fn(-i) end
  local ts = {}
  for i = 1, n do
    local t0 = clock.monotonic_ns()
    fn(i)
    ts[i] = (clock.monotonic_ns() - t0) / 1e3
  end
  return median(ts)
end

describe('checkpoint bench', function()
  it('runs', function()
    local states = assert(json.decode(read(os.getenv('BENCH_STATES'))))
    local results = {}
    local targets = {
      { name = 'sqlite-full', url = 'sqlite:' .. os.getenv('BENCH_SQLITE_DIR') .. '/aegis-full.db', sync = 'full' },
      { name = 'sqlite-normal', url = 'sqlite:' .. os.getenv('BENCH_SQLITE_DIR') .. '/aegis-normal.db',
        sync = 'normal' },
    }
    if (os.getenv('BENCH_PG_URL') or '') ~= '' then
      targets[#targets + 1] = { name = 'postgres', url = os.getenv('BENCH_PG_URL') }
    end
    for _, tg in ipairs(targets) do
      local db <close> = assert(checkpoint.open(tg.url, tg.sync and { synchronous = tg.sync } or nil))
      if db.kind == 'sqlite' then
        assert(db:exec('CREATE TABLE IF NOT EXISTS floor (k TEXT PRIMARY KEY, v BLOB)'))
      else
        assert(db:exec('CREATE TABLE IF NOT EXISTS floor (k TEXT PRIMARY KEY, v BYTEA)'))
      end
      for _, st in ipairs(states) do
        local n = st.n
        local run = tostring(clock.monotonic_ns())
        local ids = {}
        local r = { target = tg.name, size = st.name, bytes = #json.canonical(st.state) }
        r.save_us = time(n, function(i)
          local rec = assert(checkpoint.save({ db = db, thread = ('b-%s-%s-%d'):format(st.name, run, i),
            state = st.state }))
          if i > 0 then ids[i] = rec end
        end)
        r.load_us = time(n, function(i)
          local rec = ids[i > 0 and i or 1]
          local got = assert(checkpoint.load(rec.id, { db = db, thread = rec.thread, ns = '' }))
          assert(got.state)
        end)
        -- ten saves sharing one transaction (one commit, one fsync)
        if st.name ~= '1MB' then
          local batch = math.max(3, n // 10)
          r.save_all10_us = time(batch, function(i)
            local items = {}
            for k = 1, 10 do items[k] = { thread = ('ba-%s-%s-%d-%d'):format(st.name, run, i, k), state = st.state } end
            assert(checkpoint.save_all(items, { db = db }))
          end) / 10
        end
        -- the floor: the same bytes, one row, one transaction, no codec
        local bytes = read(os.getenv('BENCH_STATES') .. '.' .. st.name)
        r.floor_save_us = time(n, function(i)
          assert(db:tx(function(tx)
            return tx:exec('INSERT INTO floor (k, v) VALUES ($1, $2)', ('f-%s-%s-%d'):format(st.name, run, i),
              store.blob(bytes))
          end))
        end)
        r.floor_load_us = time(n, function(i)
          assert(db:first('SELECT v FROM floor WHERE k = $1', ('f-%s-%s-%d'):format(st.name, run, i > 0 and i or 1)))
        end)
        results[#results + 1] = r
      end
    end
    local f = assert(io.open(os.getenv('BENCH_OUT'), 'wb'))
    f:write(json.encode(results))
    f:close()
  end)
end)
