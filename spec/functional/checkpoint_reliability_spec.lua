-- RELIABILITY.md rows for the checkpoint store: L3 (concurrent writers on
-- PostgreSQL), F1 (kill -9 loop on SQLite), F6 (pg_terminate_backend during
-- writes), F7 (server stopped and restarted). Writers are
-- `aegis-run checkpoint serve` processes doing aegis saves; a reply line is
-- the acknowledgement, printed only after COMMIT.
-- Counts can be scaled with AEGIS_L3_WRITERS, AEGIS_L3_PER_WRITER,
-- AEGIS_F1_ITERATIONS, AEGIS_F6_WRITES.
local h = require('spec.helpers')
local json = require('aegis.json')
local uuid = require('aegis.uuid')
local store = require('aegis.store')
local checkpoint = require('aegis.checkpoint')

local function env_int(name, default)
  return math.tointeger(tonumber(os.getenv(name) or '')) or default
end

local q = h.shell_quote

-- Requests of one writer: `n` saves, thread chosen by `thread_of(i)`.
local function requests(path, n, thread_of, w)
  local lines = {}
  for i = 1, n do
    lines[i] = json.canonical({ op = 'save', seq = i, thread = thread_of(i), state = { w = w, i = i } })
  end
  h.write(path, table.concat(lines, '\n') .. '\n')
end

-- Acknowledged saves in a writer's output: {id = reply}; a killed writer may
-- leave a cut last line, which acknowledges nothing.
local function acks(path, into, failures)
  for line in (h.read(path) or ''):gmatch('[^\n]+') do
    local r = json.decode(line)
    if type(r) == 'table' then
      if r.ok then into[r.result.id] = r.result
      elseif failures then failures[#failures + 1] = r.error end
    end
  end
  return into
end

-- Every thread's checkpoints form one chain: steps 0..n-1, each the
-- child of the one before; every (w, i) is stored once.
local function check_chains(db, prefix, expect_rows)
  local rows = assert(db:query('SELECT thread_id, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata'
    .. ' FROM checkpoints WHERE thread_id LIKE $1', prefix .. '%'))
  local by_thread, seen, ids = {}, {}, {}
  for _, r in ipairs(rows) do
    local meta = assert(json.decode(r.metadata))
    by_thread[r.thread_id] = by_thread[r.thread_id] or {}
    table.insert(by_thread[r.thread_id], { id = r.checkpoint_id, parent = r.parent_checkpoint_id, step = meta.step })
    ids[r.checkpoint_id] = true
  end
  for thread, list in pairs(by_thread) do
    table.sort(list, function(a, b) return a.step < b.step end)
    for i, c in ipairs(list) do
      assert.equal(i - 1, c.step, ('thread %s: steps not contiguous at %d'):format(thread, i - 1))
      assert.equal(i > 1 and list[i - 1].id or nil, c.parent,
        ('thread %s: step %d has the wrong parent'):format(thread, i - 1))
    end
  end
  -- values: every logical write once
  for _, r in ipairs(assert(checkpoint.list({ db = db, writes = false }))) do
    if r.thread:sub(1, #prefix) == prefix then
      local key = r.state.w .. ':' .. r.state.i
      assert.is_nil(seen[key], 'duplicate write ' .. key)
      seen[key] = true
    end
  end
  if expect_rows then assert.equal(expect_rows, #rows) end
  return ids, #rows
end

-- Runs `writers` serve processes of `per` saves each over 50 threads and
-- checks the L3 invariants; gives the most transactions one save took.
local function l3(url, writers, per, isolation)
  local nthreads = 50
  local dir = h.tmpdir()
  local prefix = 'l3-' .. uuid.v4():sub(1, 8) .. '-'
  assert(checkpoint.open(url)):close()  -- migrate once, before the crowd
  local cmd = {}
  for w = 1, writers do
    requests(('%s/in%d'):format(dir, w), per, function(i) return prefix .. ((w * 7 + i) % nthreads) end, w)
    cmd[#cmd + 1] = ('%s checkpoint serve --store %s --isolation %s < %s/in%d > %s/out%d 2> %s/err%d &'):format(
      q(h.bin), q(url), isolation, q(dir), w, q(dir), w, q(dir), w)
  end
  cmd[#cmd + 1] = 'wait'
  assert(os.execute(table.concat(cmd, '\n')))
  local acked, failures = {}, {}
  for w = 1, writers do acks(('%s/out%d'):format(dir, w), acked, failures) end
  assert.same({}, failures)  -- 0 aborts
  local n, most, hist = 0, 0, {}
  for _, r in pairs(acked) do
    n = n + 1
    most = math.max(most, r.attempts or 1)
    hist[r.attempts or 1] = (hist[r.attempts or 1] or 0) + 1
  end
  assert.equal(writers * per, n)
  local db <close> = assert(checkpoint.open(url))
  local ids = check_chains(db, prefix, writers * per)
  for id in pairs(acked) do assert.is_true(ids[id], 'acknowledged checkpoint lost: ' .. id) end
  return most, hist
end

describe('RELIABILITY L3: concurrent writers on PostgreSQL', function()
  local backend = { name = 'postgres', url = os.getenv('AEGIS_PG_URL') }
  -- full scale (16 x 500) normally; under ASan 16 sanitised processes on
  -- two cores starve the server past its statement timeout: 8 x 100 there
  local asan = h.bin:find('/asan/', 1, true) ~= nil
  local writers = env_int('AEGIS_L3_WRITERS', asan and 8 or 16)
  local per = env_int('AEGIS_L3_PER_WRITER', asan and 100 or 500)

  it('advisory-lock mode loses nothing, duplicates nothing, keeps steps contiguous, aborts nothing', function()
    if not h.needs(backend) then return end
    assert.equal(1, l3(backend.url, writers, per, 'lock'))  -- the lock queues writers: no retries
  end)

  -- SERIALIZABLE (no per-thread lock; a serialisation failure is retried
  -- after a random wait, and after 4 of them the save runs alone), at the
  -- same scale. SSI's predicate locks cover index pages, which the keys of
  -- neighbouring threads share, so saves to different threads conflict too
  -- (most while the tables are small); running alone bounds the retries.
  it('SERIALIZABLE mode keeps the same invariants with at most 5 retries per save', function()
    if not h.needs(backend) then return end
    local most, hist = l3(backend.url, env_int('AEGIS_L3_SERIAL_WRITERS', writers),
      env_int('AEGIS_L3_SERIAL_PER_WRITER', per), 'serializable')
    local parts = {}
    for k = 1, most do parts[#parts + 1] = ('%d:%d'):format(k - 1, hist[k] or 0) end
    print(('\nL3 SERIALIZABLE: at most %d retries for one save (retries:saves %s)'):format(most - 1,
      table.concat(parts, ' ')))
    assert.is_true(most - 1 <= 5, ('a save took %d retries'):format(most - 1))
  end)
end)

describe('RELIABILITY F1: kill -9 loop on the SQLite checkpoint store', function()
  it('keeps the file intact and every acknowledged checkpoint, with 3 writers killed at random points', function()
    local iterations = env_int('AEGIS_F1_ITERATIONS', 200)
    local dir = h.tmpdir()
    local url = 'sqlite:' .. dir .. '/ck.db'
    assert(checkpoint.open(url)):close()
    local prefix = 'f1-'
    local acked = {}
    math.randomseed(os.time())
    for w = 1, 3 do
      requests(('%s/in%d'):format(dir, w), 400, function(i) return prefix .. (i % 4) end, w)
    end
    for it = 1, iterations do
      local cmd = {}
      for w = 1, 3 do
        -- killed somewhere between start-up and its 400th save
        local delay = 0.005 + math.random() * 0.12
        cmd[#cmd + 1] = ('timeout -s KILL %.3f %s checkpoint serve --store %s < %s/in%d > %s/out%d 2>/dev/null &')
          :format(delay, q(h.bin), q(url), q(dir), w, q(dir), w)
      end
      cmd[#cmd + 1] = 'wait'
      os.execute(table.concat(cmd, '\n'))
      -- each writer re-sends its requests: the same (w, i) with a new id, so
      -- count per iteration rather than per (w, i)
      local now = {}
      for w = 1, 3 do acks(('%s/out%d'):format(dir, w), now) end
      local db <close> = assert(store.open(url, { synchronous = 'full' }))
      assert.equal('ok', assert(db:first('PRAGMA integrity_check')).integrity_check, 'iteration ' .. it)
      for id, r in pairs(now) do
        local row = db:first('SELECT checkpoint FROM checkpoints WHERE thread_id = $1 AND checkpoint_id = $2',
          r.thread, id)
        assert.truthy(row, ('iteration %d: acknowledged checkpoint %s lost'):format(it, id))
        assert.truthy(json.decode(row.checkpoint), 'iteration ' .. it .. ': checkpoint not whole')
        acked[id] = r
      end
    end
    -- and every one acknowledged in any iteration is still there, chains whole
    local db <close> = assert(checkpoint.open(url))
    local n = 0
    for id, r in pairs(acked) do
      n = n + 1
      assert.truthy(checkpoint.load(id, { db = db, thread = r.thread, ns = '', writes = false }), 'lost ' .. id)
    end
    assert.is_true(n > 0, 'no save was acknowledged: the writers never got going')
    local rows = assert(db:query('SELECT thread_id, checkpoint_id, parent_checkpoint_id, metadata FROM checkpoints'))
    local steps = {}
    for _, r in ipairs(rows) do
      steps[r.thread_id] = steps[r.thread_id] or {}
      local s = assert(json.decode(r.metadata)).step
      assert.is_nil(steps[r.thread_id][s], 'two checkpoints at one step in ' .. r.thread_id)
      steps[r.thread_id][s] = true
    end
    for t, s in pairs(steps) do
      for i = 0, #s do assert.is_true(s[i], ('%s: step %d missing'):format(t, i)) end
    end
  end)
end)

-- Group commit (docs/store.md): a save commits at NORMAL and syncs the WAL
-- after the write lock is released, before it is acknowledged. Counted and
-- failed with tools/faultinj.c in a `checkpoint serve` writer, while this
-- process keeps the WAL open (no header to write, no checkpoint at the
-- writer's exit): each save is one fdatasync of its own.
describe('group commit of the SQLite checkpoint store', function()
  local dir, so
  setup(function()
    dir = h.tmpdir()
    so = dir .. '/faultinj.so'
    assert(os.execute(('cc -shared -fPIC -O1 -o %s tools/faultinj.c -ldl'):format(q(so))),
      'cannot build tools/faultinj.c')
  end)

  -- n saves to one thread through `checkpoint serve` under the shim: the
  -- replies, the shim's counts and the thread's rows (step -> parent, id).
  local function serve(n, fault)
    local work = h.tmpdir()
    local url = 'sqlite:' .. work .. '/ck.db'
    local holder <close> = assert(checkpoint.open(url))
    assert(checkpoint.save({ db = holder, thread = 'g', state = { i = 0 } }))
    local lines = {}
    for i = 1, n do lines[i] = json.canonical({ op = 'save', seq = i, thread = 'g', state = { i = i } }) end
    h.write(dir .. '/in', table.concat(lines, '\n') .. '\n')
    local log = dir .. '/faults.log'
    os.remove(log)
    local cmd = ('env LD_PRELOAD=%s AEGIS_FAULT=%s AEGIS_FAULT_PATH=%s AEGIS_FAULT_LOG=%s ASAN_OPTIONS=%s'
      .. ' %s checkpoint serve --store %s < %s > %s 2> %s'):format(q(so), q(fault), q(work), q(log),
      q((os.getenv('ASAN_OPTIONS') or '') .. ':verify_asan_link_order=0'), q(h.bin), q(url), q(dir .. '/in'),
      q(dir .. '/out'), q(dir .. '/err'))
    os.execute(cmd)
    local replies = {}
    for line in (h.read(dir .. '/out') or ''):gmatch('[^\n]+') do
      local r = assert(json.decode(line))
      replies[r.seq] = r
    end
    local counts = {}
    for k, v in (h.read(log) or ''):gmatch('(%w+)=(%d+)') do counts[k] = tonumber(v) end
    local rows = {}
    for _, r in ipairs(assert(holder:query("SELECT checkpoint_id, parent_checkpoint_id, metadata FROM checkpoints"
      .. " WHERE thread_id = 'g'"))) do
      rows[assert(json.decode(r.metadata)).step] = { id = r.checkpoint_id, parent = r.parent_checkpoint_id }
    end
    return replies, counts, rows, h.read(dir .. '/err') or ''
  end

  it('syncs the WAL once for each acknowledged save', function()
    local replies, counts, rows, err = serve(20, 'count')
    for i = 1, 20 do assert.is_true(replies[i] and replies[i].ok, 'save ' .. i .. ': ' .. err) end
    -- and SQLite syncs the directory after a connection's first sync of the WAL
    assert.equal(20 + 1, counts.fdatasync)
    for step = 1, 20 do assert.equal(rows[step - 1].id, rows[step].parent) end
  end)

  it('fails the save whose sync fails: its row is committed, not acknowledged, and the chain goes on', function()
    -- the 4th sync: 1 is save 1's, 2 the directory's, 3 save 2's, 4 save 3's
    local replies, counts, rows = serve(6, 'fdatasync:4')
    assert.equal(1, counts.injected)
    assert.is_false(replies[3].ok)
    assert.equal('io', replies[3].code)
    assert.matches("^checkpoint: save 'g': commit 'sqlite:.-': committed, but not known to be on disk: sync of the"
      .. " WAL failed %(Input/output error%)$", replies[3].error)
    for _, i in ipairs({ 1, 2, 4, 5, 6 }) do assert.is_true(replies[i].ok, 'save ' .. i) end
    -- six rows, one chain: save 3's row is there (committed before the sync)
    -- and save 4 is its child; what was acknowledged is what it said
    for step = 1, 6 do
      assert.truthy(rows[step], 'step ' .. step)
      assert.equal(rows[step - 1].id, rows[step].parent)
    end
    for _, i in ipairs({ 1, 2, 4, 5, 6 }) do assert.equal(rows[i].id, replies[i].result.id) end
  end)
end)

describe('RELIABILITY F6: pg_terminate_backend during checkpoint writes', function()
  local backend = { name = 'postgres', url = os.getenv('AEGIS_PG_URL') }
  it('acknowledges every write once, losing and duplicating none', function()
    if not h.needs(backend) then return end
    local n = env_int('AEGIS_F6_WRITES', 200)
    local dir = h.tmpdir()
    local prefix = 'f6-' .. uuid.v4():sub(1, 8) .. '-'
    local app = 'aegis-f6-' .. uuid.v4():sub(1, 8)
    local url = backend.url .. (backend.url:find('?', 1, true) and '&' or '?') .. 'application_name=' .. app
    assert(checkpoint.open(backend.url)):close()
    -- a paced writer, so the killer finds it at every point of a save
    local lines = {}
    for i = 1, n do
      lines[i] = json.canonical({ op = 'save', seq = i, thread = prefix .. (i % 5), state = { w = 1, i = i } })
    end
    h.write(dir .. '/in', table.concat(lines, '\n') .. '\n')
    local kill_sql = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '%s'")
      :format(app)
    local script = ([[
      (while read -r l; do echo "$l"; sleep 0.005; done < %s) | %s checkpoint serve --store %s > %s/out 2> %s/err &
      writer=$!
      kills=0
      while kill -0 $writer 2>/dev/null; do
        k=$(psql %s -qAtc %s 2>/dev/null || echo 0)
        kills=$((kills + k))
        sleep 0.0$(( (RANDOM %% 9) + 1 ))
      done
      wait $writer
      echo $kills > %s/kills
    ]]):format(q(dir .. '/in'), q(h.bin), q(url), q(dir), q(dir), q(backend.url), q(kill_sql), q(dir))
    assert(os.execute('bash -c ' .. q(script)))
    local kills = math.tointeger(tonumber(h.read(dir .. '/kills'))) or 0
    assert.is_true(kills > 0, 'no backend was terminated: the test proved nothing')
    local acked, failures = {}, {}
    acks(dir .. '/out', acked, failures)
    assert.same({}, failures)
    local count, most = 0, 0
    for _, r in pairs(acked) do
      count = count + 1
      most = math.max(most, r.attempts or 1)
    end
    print(('\nF6: %d backends terminated, at most %d attempts for one save'):format(kills, most))
    assert.is_true(most <= 3, ('a save took %d attempts (reconnect and prepare again: at most 3)'):format(most))
    assert.equal(n, count, 'writer stderr: ' .. tostring(h.read(dir .. '/err')))
    local db <close> = assert(checkpoint.open(backend.url))
    local ids = check_chains(db, prefix, n)
    for id in pairs(acked) do assert.is_true(ids[id], 'acknowledged checkpoint lost: ' .. id) end
  end)
end)

describe('RELIABILITY F7: PostgreSQL stopped (immediate) and restarted after 5 s', function()
  local backend = { name = 'postgres', url = os.getenv('AEGIS_PG_URL') }
  it('recovers within 30 s with capped backoff and loses nothing', function()
    if not h.needs(backend) then return end  -- a server of its own, but only where PostgreSQL runs
    local p = assert(io.popen('tools/pg-temp.sh start'))
    local out = p:read('a')
    assert(p:close(), 'cannot start a throwaway PostgreSQL: ' .. out)
    local pgdir, url = out:match('^([^\n]+)\n([^\n]+)')
    -- the throwaway server runs with synchronous_commit=off, which may lose
    -- the last acknowledged commits on an immediate stop: the writer's
    -- session turns it on, as a checkpoint store's server must have it
    url = url .. '&options=-c%20synchronous_commit%3Don'
    local ok, err = pcall(function()
      local port = url:match('port=(%d+)')
      local dir = h.tmpdir()
      local prefix = 'f7-'
      assert(checkpoint.open(url)):close()
      local n = 150
      local lines = {}
      for i = 1, n do
        lines[i] = json.canonical({ op = 'save', seq = i, thread = prefix .. (i % 3), state = { w = 1, i = i } })
      end
      h.write(dir .. '/in', table.concat(lines, '\n') .. '\n')
      local as_pg = io.popen('id -u'):read('l') == '0' and 'runuser -u postgres -- ' or ''
      local pgctl = io.popen('ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1'):read('l') .. '/pg_ctl'
      local script = ([[
        set -e
        (while read -r l; do echo "$l"; sleep 0.04; done < %s) | %s checkpoint serve --store %s > %s/out 2> %s/err &
        writer=$!
        sleep 1
        %s%s -D %s/data -m immediate -w stop > /dev/null
        sleep 5
        %s%s -D %s/data -l %s/server.log -w -t 60 -o "-k %s -p %s -c listen_addresses= -c fsync=off" start > /dev/null
        wait $writer
      ]]):format(q(dir .. '/in'), q(h.bin), q(url), q(dir), q(dir), as_pg, q(pgctl), q(pgdir), as_pg, q(pgctl),
        q(pgdir),
        q(pgdir), pgdir, port)
      assert(os.execute('bash -c ' .. q(script)))
      local acked, failures = {}, {}
      acks(dir .. '/out', acked, failures)
      assert.same({}, failures)
      local count = 0
      for _ in pairs(acked) do count = count + 1 end
      assert.equal(n, count, 'writer stderr: ' .. tostring(h.read(dir .. '/err')))
      -- no save failed: each that met the outage was retried (0.5 -> 8 s
      -- backoff) and got through before its 30 s deadline
      local db <close> = assert(checkpoint.open(url))
      check_chains(db, prefix, n)
      -- a server that stays away: a clear error before the deadline
      os.execute(('%s%s -D %s/data -m immediate -w stop > /dev/null'):format(as_pg, q(pgctl), q(pgdir)))
      local saved = checkpoint.RETRY.deadline
      checkpoint.RETRY.deadline = 2
      local r, msg, code = checkpoint.save({ db = db, thread = prefix .. 'gone', state = {} })
      checkpoint.RETRY.deadline = saved
      assert.is_nil(r)
      assert.equal('conn', code)
      assert.truthy(msg:find('gave up after %d+ attempts'), msg)
    end)
    os.execute('tools/pg-temp.sh stop ' .. q(pgdir))
    assert(ok, err)
  end)
end)
