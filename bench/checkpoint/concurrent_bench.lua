-- luacheck: std +busted
-- Concurrent saves on one SQLite database (bench/checkpoint/run.sh, or alone:
-- `bin/aegis-run test bench/checkpoint/concurrent_bench.lua`): P processes
-- (1, 2, 4, 8) each make N small saves (200) to a thread of their own, at
-- synchronous FULL (each COMMIT syncs the WAL holding the write lock) and
-- GROUP (COMMIT at NORMAL, the WAL synced after the lock is released: one
-- device flush can cover the commits of several writers). The floor rows
-- make the same commits as raw one-row inserts. Runs alternate (full,
-- group, floor full, floor group for each P) so all see the same background
-- I/O. Device flushes are read from /proc/diskstats (the whole disk: other
-- processes' flushes count too).
-- Env: CB_DIR (a scratch directory; default a temporary one), CB_PROCS
-- ("1 2 4 8"), CB_N (200), CB_OUT (JSON results; default: print only).
local json = require('aegis.json')
local store = require('aegis.store')
local checkpoint = require('aegis.checkpoint')

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('a')
  f:close()
  return s
end

-- Device flush requests completed so far, all disks (field 16 of diskstats).
local FLUSHES = [[awk '{ s += $19 } END { print s + 0 }' /proc/diskstats]]

-- As bench/checkpoint/aegis_bench.lua: grow the WAL first, as a store in use
-- has it, so no measured commit is one that extends the file.
local function warm_wal(db)
  assert(db:exec('CREATE TABLE IF NOT EXISTS warm (k INTEGER PRIMARY KEY, v BLOB)'))
  for _ = 1, 600 do
    assert(db:tx(function(tx) return tx:exec('INSERT INTO warm (v) VALUES ($1)', store.blob(('y'):rep(3000))) end))
  end
  assert(db:exec('DELETE FROM warm'))
end

describe('concurrent saves bench', function()
  it('runs', function()
    local dir = os.getenv('CB_DIR')
    if not dir or dir == '' then
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute('mkdir -p ' .. q(dir)))
    end
    local procs = {}
    for p in (os.getenv('CB_PROCS') or '1 2 4 8'):gmatch('%d+') do procs[#procs + 1] = tonumber(p) end
    local n = tonumber(os.getenv('CB_N') or '') or 200
    local bin = os.getenv('AEGIS_BIN') or (os.getenv('PWD') .. '/bin/aegis-run')
    local worker = os.getenv('PWD') .. '/bench/checkpoint/concurrent_worker.lua'
    local url = 'sqlite:' .. dir .. '/concurrent.db'
    do
      -- the tables, the floor's table and a grown WAL, made once; this
      -- connection stays open so the WAL is never deleted between runs
      local db = assert(checkpoint.open(url))
      assert(db:exec('CREATE TABLE IF NOT EXISTS floor (k TEXT PRIMARY KEY, v BLOB)'))
      warm_wal(db)
      _G.concurrent_bench_holder = db
    end
    local results, run = {}, 0
    for _, p in ipairs(procs) do
      for _, cfg in ipairs({ { 'full', false }, { 'group', false }, { 'full', true }, { 'group', true } }) do
        local sync, floor = cfg[1], cfg[2]
        run = run + 1
        local rdir = ('%s/run%d'):format(dir, run)
        local sh = { 'set -e', 'mkdir -p ' .. q(rdir) }
        for w = 1, p do
          sh[#sh + 1] = ('env CW_URL=%s CW_SYNC=%s CW_N=%d CW_THREAD=%s CW_FLOOR=%s CW_READY=%s CW_GO=%s CW_OUT=%s'
            .. ' %s test %s > %s 2>&1 &'):format(q(url), sync, n, q(('c%d-w%d'):format(run, w)), floor and '1' or '0',
            q(rdir .. '/ready' .. w), q(rdir .. '/go'), q(rdir .. '/out' .. w), q(bin), q(worker),
            q(rdir .. '/log' .. w))
        end
        sh[#sh + 1] = ('while [ "$(ls %s/ready* 2>/dev/null | wc -l)" -lt %d ]; do sleep 0.005; done')
          :format(q(rdir), p)
        sh[#sh + 1] = FLUSHES .. ' > ' .. q(rdir .. '/flush0')
        sh[#sh + 1] = 'touch ' .. q(rdir .. '/go')
        sh[#sh + 1] = 'wait'
        sh[#sh + 1] = FLUSHES .. ' > ' .. q(rdir .. '/flush1')
        local ok = os.execute('bash -c ' .. q(table.concat(sh, '\n')))
        assert(ok, 'a worker failed: ' .. tostring(read(rdir .. '/log1')))
        local t0, t1, lat = math.huge, -math.huge, 0
        for w = 1, p do
          local a, b = assert(read(rdir .. '/out' .. w), 'worker ' .. w .. ': ' .. tostring(read(rdir .. '/log' .. w)))
            :match('(%S+) (%S+)')
          a, b = tonumber(a), tonumber(b)
          t0, t1 = math.min(t0, a), math.max(t1, b)
          lat = lat + (b - a) / n
        end
        local flushes = tonumber(read(rdir .. '/flush1')) - tonumber(read(rdir .. '/flush0'))
        results[#results + 1] = {
          procs = p, sync = sync, floor = floor, saves = p * n, seconds = t1 - t0,
          per_s = p * n / (t1 - t0), latency_us = lat / p * 1e6, flushes_per_save = flushes / (p * n),
        }
      end
    end
    _G.concurrent_bench_holder:close()
    -- the table
    local lines = { ('%-5s %-6s %-10s | %10s %12s %14s'):format('procs', 'sync', 'what', 'saves/s', 'latency',
      'flushes/save') }
    for _, r in ipairs(results) do
      lines[#lines + 1] = ('%-5d %-6s %-10s | %10.0f %10.0fus %14.2f'):format(r.procs, r.sync,
        r.floor and 'floor' or 'checkpoint', r.per_s, r.latency_us, r.flushes_per_save)
    end
    local byk = {}
    for _, r in ipairs(results) do byk[('%d/%s/%s'):format(r.procs, r.sync, tostring(r.floor))] = r end
    for _, p in ipairs(procs) do
      local f, g = byk[p .. '/full/false'], byk[p .. '/group/false']
      lines[#lines + 1] = ('%d process%s: group / full throughput %.2fx'):format(p, p == 1 and '' or 'es',
        g.per_s / f.per_s)
    end
    local text = table.concat(lines, '\n')
    print('\n' .. text)
    local out = os.getenv('CB_OUT')
    if out and out ~= '' then
      local f = assert(io.open(out, 'wb'))
      f:write(json.encode({ results = results, table = text }))
      f:close()
    end
  end)
end)
