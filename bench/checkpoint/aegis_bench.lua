-- luacheck: std +busted
-- The aegis side of bench/checkpoint/run.sh, run as `aegis-run test` (specs
-- run unsandboxed inside the binary). Env: BENCH_STATES (JSON file of the
-- states), BENCH_OUT (JSON results), BENCH_SQLITE_DIR, BENCH_PG_URL,
-- BENCH_ONLY (a target's name: run that one alone, e.g. postgres),
-- BENCH_CFLOOR (floor.c's binary: its operations alternate with aegis's too).
local json = require('aegis.json')
local clock = require('aegis.clock')
local store = require('aegis.store')
local checkpoint = require('aegis.checkpoint')
local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]+$')
local rows_sql = dofile(here .. '/rows_floor.lua')

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

-- Median microseconds of each of fns[k](i) over n rounds (after 2 warm-up
-- rounds), the calls alternating so all see the same background I/O (the
-- machine is shared: a device flush takes ~0.2 ms or ~4 ms depending on
-- what else is being written). A function that returns a number has
-- measured itself (the C floor, in its own process): that is its time.
local function timen(n, ...)
  local fns, ts = { ... }, {}
  for k = 1, #fns do ts[k] = {} end
  for i = -2, n do
    for k, fn in ipairs(fns) do
      local t0 = clock.monotonic_ns()
      local us = fn(i)
      if i > 0 then ts[k][i] = type(us) == 'number' and us or (clock.monotonic_ns() - t0) / 1e3 end
    end
  end
  local out = {}
  for k = 1, #fns do out[k] = median(ts[k]) end
  return table.unpack(out)
end

-- A fresh WAL file grows with each commit, and a commit that extends it
-- costs the file system a journal commit (~4 ms here against ~0.2 ms for
-- one that overwrites): so grow the WAL past the autocheckpoint size
-- (1000 pages) and past one 1 MB commit first, as a store in use has.
local function warm_wal(db)
  assert(db:exec('CREATE TABLE IF NOT EXISTS warm (k INTEGER PRIMARY KEY, v BLOB)'))
  local big = store.blob(('x'):rep(1100000))
  for _ = 1, 6 do assert(db:tx(function(tx) return tx:exec('INSERT INTO warm (v) VALUES ($1)', big) end)) end
  for _ = 1, 600 do
    assert(db:tx(function(tx) return tx:exec('INSERT INTO warm (v) VALUES ($1)', store.blob(('y'):rep(3000))) end))
  end
  assert(db:exec('DELETE FROM warm'))
end

-- The C floor (floor.c serve) as a co-process driven through two FIFOs: each
-- call sends one command and waits for its one-line answer, so its
-- operations alternate with aegis's; save and load return the microseconds
-- it measured itself (the FIFO round trip is outside them).
local function cfloor_start(bin, dir)
  local cmd, reply = dir .. '/cfloor.cmd', dir .. '/cfloor.reply'
  assert(os.execute(('mkfifo %q %q'):format(cmd, reply)))
  assert(os.execute(('%q serve %q %q &'):format(bin, cmd, reply)))
  local w = assert(io.open(cmd, 'w'))
  local r = assert(io.open(reply, 'r'))
  local cf = {}
  function cf.call(line)
    assert(w:write(line, '\n'))
    assert(w:flush())
    return assert(r:read('l'), 'floor.c serve: no answer to ' .. line)
  end
  function cf.op(line) return assert(math.tointeger(cf.call(line)), line) / 1e3 end
  function cf.close()
    w:write('quit\n')
    w:close()
    r:close()
  end
  return cf
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
      { name = 'sqlite-group', url = 'sqlite:' .. os.getenv('BENCH_SQLITE_DIR') .. '/aegis-group.db', sync = 'group' },
      { name = 'sqlite-normal', url = 'sqlite:' .. os.getenv('BENCH_SQLITE_DIR') .. '/aegis-normal.db',
        sync = 'normal' },
    }
    if (os.getenv('BENCH_PG_URL') or '') ~= '' then
      targets[#targets + 1] = { name = 'postgres', url = os.getenv('BENCH_PG_URL') }
    end
    local only = os.getenv('BENCH_ONLY')
    local cbin = os.getenv('BENCH_CFLOOR')
    local cf = cbin and cbin ~= '' and cfloor_start(cbin, os.getenv('BENCH_SQLITE_DIR'))
    if cf then
      for _, st in ipairs(states) do
        assert(cf.call(('state %s %s'):format(st.name, os.getenv('BENCH_STATES') .. '.' .. st.name)))
      end
    end
    for _, tg in ipairs(targets) do
      if only and only ~= '' and tg.name ~= only then goto next end
      if cf then
        -- GROUP has FULL's durability: its C floor is at FULL
        assert(cf.call(tg.sync and ('sqlite %s/cfloor-%s.db %s'):format(os.getenv('BENCH_SQLITE_DIR'), tg.name,
          tg.sync == 'normal' and 'normal' or 'full') or 'pg ' .. tg.url) == 'ok')
      end
      local db <close> = assert(checkpoint.open(tg.url, tg.sync and { synchronous = tg.sync } or nil))
      if db.kind == 'sqlite' then
        assert(db:exec('CREATE TABLE IF NOT EXISTS floor (k TEXT PRIMARY KEY, v BLOB)'))
        warm_wal(db)
      else
        assert(db:exec('CREATE TABLE IF NOT EXISTS floor (k TEXT PRIMARY KEY, v BYTEA)'))
      end
      for _, st in ipairs(states) do
        local n = st.n
        local run = tostring(clock.monotonic_ns())
        local ids = {}
        local r = { target = tg.name, size = st.name, bytes = #json.canonical(st.state) }
        local bytes = read(os.getenv('BENCH_STATES') .. '.' .. st.name)
        -- each aegis save alternates with the floor (the same bytes, one
        -- row, one transaction, no codec) and, on SQLite, with the rows
        -- floor: raw SQL doing what an aegis save does to the database (the
        -- parent lookup, then the row aegis wrote: LangGraph's checkpoint
        -- object and metadata around the same bytes), without the codec
        local row
        local rows_floor = db.kind == 'sqlite' and function(i)
          row = row or assert(db:first('SELECT checkpoint, metadata FROM checkpoints WHERE thread_id = $1',
            ('b-%s-%s-%d'):format(st.name, run, -2)))
          assert(db:tx(function(tx) return rows_sql(tx, ('r-%s-%s-%d'):format(st.name, run, i), i + 10, row) end))
        end or function() end
        local csave = cf and function(i) return cf.op(('save %s c-%s-%s-%d'):format(st.name, st.name, run, i)) end
          or function() end
        local cload = cf and function(i)
          return cf.op(('load %s c-%s-%s-%d'):format(st.name, st.name, run, i > 0 and i or 1))
        end or function() end
        r.save_us, r.floor_save_us, r.rows_floor_save_us, r.cfloor_save_us = timen(n, function(i)
          local rec = assert(checkpoint.save({ db = db, thread = ('b-%s-%s-%d'):format(st.name, run, i),
            state = st.state }))
          if i > 0 then ids[i] = rec end
        end, function(i)
          assert(db:tx(function(tx)
            return tx:exec('INSERT INTO floor (k, v) VALUES ($1, $2)', ('f-%s-%s-%d'):format(st.name, run, i),
              store.blob(bytes))
          end))
        end, rows_floor, csave)
        if db.kind ~= 'sqlite' then r.rows_floor_save_us = nil end
        r.load_us, r.floor_load_us, r.cfloor_load_us = timen(n, function(i)
          local rec = ids[i > 0 and i or 1]
          local got = assert(checkpoint.load(rec.id, { db = db, thread = rec.thread, ns = '' }))
          assert(got.state)
        end, function(i)
          assert(db:first('SELECT v FROM floor WHERE k = $1', ('f-%s-%s-%d'):format(st.name, run, i > 0 and i or 1)))
        end, cload)
        if not cf then r.cfloor_save_us, r.cfloor_load_us = nil, nil end
        -- ten saves sharing one transaction (one commit, one fsync)
        if st.name ~= '1MB' then
          local batch = math.max(3, n // 10)
          r.save_all10_us = time(batch, function(i)
            local items = {}
            for k = 1, 10 do items[k] = { thread = ('ba-%s-%s-%d-%d'):format(st.name, run, i, k), state = st.state } end
            assert(checkpoint.save_all(items, { db = db }))
          end) / 10
        end
        results[#results + 1] = r
      end
      ::next::
    end
    if cf then cf.close() end
    local f = assert(io.open(os.getenv('BENCH_OUT'), 'wb'))
    f:write(json.encode(results))
    f:close()
  end)
end)
