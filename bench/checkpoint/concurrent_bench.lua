-- luacheck: std +busted
-- Concurrent saves on one SQLite database (bench/checkpoint/run.sh, or alone:
-- `bin/aegis-run test bench/checkpoint/concurrent_bench.lua`): P processes
-- (1, 2, 4, 8) each make N small saves (200) to a thread of their own, at
-- synchronous FULL (each COMMIT syncs the WAL holding the write lock) and
-- GROUP (COMMIT at NORMAL, the WAL synced after the lock is released: one
-- device flush can cover the commits of several writers). The floor rows
-- make the same commits as raw one-row inserts. Runs alternate (full,
-- group, floor full, floor group for each P, CB_REPEAT times) so all see the
-- same background I/O; the median run of each is reported, with the range.
-- Device flushes are read from /proc/diskstats (the whole disk: other
-- processes' flushes count too).
-- With CB_PG_URL (a server with fsync=on, synchronous_commit=on: run.sh
-- starts one), the same against PostgreSQL: aegis, the floor and, with
-- CB_NODE_DIR (where langgraph_concurrent.mjs and its packages are),
-- LangGraph.js's PostgresSaver.
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

-- One run: p writers of one kind; gives the result row.
local function run_one(ctx, p, cfg)
  ctx.run = ctx.run + 1
  local rdir = ('%s/run%d'):format(ctx.dir, ctx.run)
  local sh = { 'set -e', 'mkdir -p ' .. q(rdir) }
  for w = 1, p do
    local thread = ('c%d-%d-w%d'):format(ctx.stamp, ctx.run, w)
    local ready, go, out, log = rdir .. '/ready' .. w, rdir .. '/go', rdir .. '/out' .. w, rdir .. '/log' .. w
    if cfg.what == 'PostgresSaver' then
      sh[#sh + 1] = ('(cd %s && node langgraph_concurrent.mjs %s %s %d %s %s %s) > %s 2>&1 &'):format(q(ctx.node_dir),
        q(cfg.url), q(thread), ctx.n, q(ready), q(go), q(out), q(log))
    else
      sh[#sh + 1] = ('env CW_URL=%s CW_SYNC=%s CW_N=%d CW_THREAD=%s CW_FLOOR=%s CW_READY=%s CW_GO=%s CW_OUT=%s'
        .. ' %s test %s > %s 2>&1 &'):format(q(cfg.url), cfg.sync or 'normal', ctx.n, q(thread),
        cfg.what == 'floor' and '1' or '0', q(ready), q(go), q(out), q(ctx.bin), q(ctx.worker), q(log))
    end
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
    lat = lat + (b - a) / ctx.n
  end
  local flushes = tonumber(read(rdir .. '/flush1')) - tonumber(read(rdir .. '/flush0'))
  return {
    store = cfg.store, sync = cfg.label, what = cfg.what, procs = p, saves = p * ctx.n, seconds = t1 - t0,
    per_s = p * ctx.n / (t1 - t0), latency_us = lat / p * 1e6, flushes_per_save = flushes / (p * ctx.n),
  }
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
    local ctx = {
      dir = dir, n = tonumber(os.getenv('CB_N') or '') or 200, run = 0, stamp = os.time(),
      bin = os.getenv('AEGIS_BIN') or (os.getenv('PWD') .. '/bin/aegis-run'),
      worker = os.getenv('PWD') .. '/bench/checkpoint/concurrent_worker.lua', node_dir = os.getenv('CB_NODE_DIR'),
    }
    local url = 'sqlite:' .. dir .. '/concurrent.db'
    local holders = {}
    do
      -- the tables, the floor's table and a grown WAL, made once; this
      -- connection stays open so the WAL is never deleted between runs
      local db = assert(checkpoint.open(url))
      assert(db:exec('CREATE TABLE IF NOT EXISTS floor (k TEXT PRIMARY KEY, v BLOB)'))
      warm_wal(db)
      holders[#holders + 1] = db
    end
    local cfgs = {
      { store = 'sqlite', url = url, sync = 'full', label = 'full', what = 'aegis' },
      { store = 'sqlite', url = url, sync = 'group', label = 'group', what = 'aegis' },
      { store = 'sqlite', url = url, sync = 'full', label = 'full', what = 'floor' },
      { store = 'sqlite', url = url, sync = 'group', label = 'group', what = 'floor' },
    }
    local pg = os.getenv('CB_PG_URL')
    if pg and pg ~= '' then
      -- a server with fsync=on and synchronous_commit=on: its own group
      -- commit (commit_delay 0: concurrent commits share the WAL flush)
      local db = assert(checkpoint.open(pg))
      assert(db:exec('CREATE TABLE IF NOT EXISTS floor (k TEXT PRIMARY KEY, v TEXT)'))
      holders[#holders + 1] = db
      cfgs[#cfgs + 1] = { store = 'postgres', url = pg, label = 'fsync=on', what = 'aegis' }
      if ctx.node_dir and ctx.node_dir ~= '' then
        cfgs[#cfgs + 1] = { store = 'postgres', url = pg, label = 'fsync=on', what = 'PostgresSaver' }
      end
      cfgs[#cfgs + 1] = { store = 'postgres', url = pg, label = 'fsync=on', what = 'floor' }
    end
    -- each configuration CB_REPEAT times (3), the configurations of one P
    -- alternating; the run with the median throughput is reported
    local repeat_n = tonumber(os.getenv('CB_REPEAT') or '') or 3
    local results = {}
    for _, p in ipairs(procs) do
      local runs = {}
      for _ = 1, repeat_n do
        for k, cfg in ipairs(cfgs) do
          runs[k] = runs[k] or {}
          table.insert(runs[k], run_one(ctx, p, cfg))
        end
      end
      for _, list in ipairs(runs) do
        table.sort(list, function(a, b) return a.per_s < b.per_s end)
        local r = list[(#list + 1) // 2]
        r.runs = #list
        r.min_per_s, r.max_per_s = list[1].per_s, list[#list].per_s
        results[#results + 1] = r
      end
    end
    for _, db in ipairs(holders) do db:close() end
    -- the table
    local lines = { ('%-8s %-8s %-13s %5s | %9s %15s %11s %13s'):format('store', 'sync', 'what', 'procs', 'saves/s',
      '(min-max)', 'latency', 'flushes/save') }
    table.sort(results, function(a, b)
      if a.store ~= b.store then return a.store > b.store end
      if a.what ~= b.what then return a.what < b.what end
      if a.sync ~= b.sync then return a.sync < b.sync end
      return a.procs < b.procs
    end)
    for _, r in ipairs(results) do
      lines[#lines + 1] = ('%-8s %-8s %-13s %5d | %9.0f %15s %9.0fus %13.2f'):format(r.store, r.sync, r.what,
        r.procs, r.per_s, ('(%.0f-%.0f)'):format(r.min_per_s, r.max_per_s), r.latency_us, r.flushes_per_save)
    end
    local byk = {}
    for _, r in ipairs(results) do byk[('%s/%s/%s/%d'):format(r.store, r.sync, r.what, r.procs)] = r end
    for _, p in ipairs(procs) do
      local f, g = byk['sqlite/full/aegis/' .. p], byk['sqlite/group/aegis/' .. p]
      local line = ('%d process%s: sqlite group / full %.2fx'):format(p, p == 1 and '' or 'es', g.per_s / f.per_s)
      local a, l = byk['postgres/fsync=on/aegis/' .. p], byk['postgres/fsync=on/PostgresSaver/' .. p]
      if a and l then line = line .. ('; postgres aegis / PostgresSaver %.2fx'):format(a.per_s / l.per_s) end
      lines[#lines + 1] = line
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
