-- RELIABILITY.md F8: a PostgreSQL backend that stops answering (SIGSTOP)
-- is noticed by the store's client-side deadline (statement_timeout +
-- 5 s), reported as `timeout`, and the store reconnects afterwards.
--
-- The backend under test is stopped, so this runs on a throwaway server of
-- its own (never the shared $AEGIS_PG_URL one), and the scenario runs in a
-- child aegis-run under `timeout 60`: if the deadline did not work, the
-- child is killed and this spec fails instead of hanging.
local h = require('spec.helpers')

-- The child: a busted spec of its own, given the server's URL and a file
-- to note every pid it stops in (so the parent can wake them all up).
local CHILD = [=[
local store = require('aegis.store')
local url, pids = os.getenv('AEGIS_F8_URL'), os.getenv('AEGIS_F8_PIDS')

-- Runs fn with the backend `pid` stopped; wakes it whatever fn does.
local function stopped(pid, fn, ...)
  local f = assert(io.open(pids, 'a'))
  f:write(pid, '\n')
  f:close()
  assert(os.execute('kill -STOP ' .. pid))
  local r = table.pack(pcall(fn, ...))
  assert(os.execute('kill -CONT ' .. pid))
  assert(r[1], r[2])
  return table.unpack(r, 2, r.n)
end

describe('a stopped PostgreSQL backend', function()
  it('times a statement out, closes the connection and reconnects on the next call', function()
    local db <close> = assert(store.open(url, { statement_timeout = 0.5 }))
    local pid = db:first('SELECT pg_backend_pid() AS pid').pid
    local r, msg, code = stopped(pid, db.exec, db, 'SELECT 1')
    assert.is_nil(r)
    assert.equal('timeout', code)
    assert.equal("store: exec 'SELECT 1': no answer from the server within 5.5 s", msg)
    -- the same store, a new connection
    assert.equal(2, db:first('SELECT $1::int + 1 AS v', 1).v)
    assert.not_equal(pid, db:first('SELECT pg_backend_pid() AS pid').pid)
  end)

  it('fails the transaction it stops in, and nothing of it is committed', function()
    local db <close> = assert(store.open(url, { statement_timeout = 0.5 }))
    assert(db:exec('CREATE TABLE f8 (x INTEGER)'))
    local r, msg, code = db:tx(function(tx)
      assert(tx:exec('INSERT INTO f8 VALUES ($1)', 1))
      local pid = tx:first('SELECT pg_backend_pid() AS pid').pid
      local x, m, c = stopped(pid, tx.exec, tx, 'INSERT INTO f8 VALUES ($1)', 2)
      assert.is_nil(x)
      assert.equal('timeout', c)
      assert.equal("store: exec 'INSERT INTO f8 VALUES ($1)': no answer from the server within 5.5 s", m)
      -- the transaction is gone: nothing more runs as if it were not
      x, m, c = tx:exec('INSERT INTO f8 VALUES ($1)', 3)
      assert.is_nil(x)
      assert.equal('conn', c)
      assert.matches('the connection was lost inside a transaction', m)
      return true
    end)
    assert.is_nil(r)
    assert.equal('conn', code)
    assert.matches("^store: commit '.*': the connection was lost inside a transaction", msg)
    assert.equal(0, db:_depth())
    assert.equal(0, db:first('SELECT count(*) AS n FROM f8').n)  -- reconnected
  end)

  it('times a pipelined batch out, commits nothing of it, and reconnects', function()
    local db <close> = assert(store.open(url, { statement_timeout = 0.5 }))
    assert(db:exec('CREATE TABLE f8b (x INTEGER)'))
    local pid = db:first('SELECT pg_backend_pid() AS pid').pid
    local ins = 'INSERT INTO f8b VALUES ($1)'
    assert(db:batch({ { ins, 0 } }, { lock = 'f8b' }))  -- prepared: the stopped batch is one round trip
    assert(db:exec('DELETE FROM f8b'))
    local r, msg, code = stopped(pid, db.batch, db, { { ins, 1 }, { ins, 2 } }, { lock = 'f8b' })
    assert.is_nil(r)
    assert.equal('timeout', code)
    -- BEGIN, the lock, two inserts, COMMIT: 5 x statement_timeout + 5 s
    assert.matches("^store: batch '.*': no answer from the server within 7%.5 s$", msg)
    assert.equal(0, db:_depth())
    assert.not_equal(pid, db:first('SELECT pg_backend_pid() AS pid').pid)
    -- the whole pipeline, COMMIT too, was in the stopped backend's socket:
    -- woken, it may still commit it (an unknown outcome, as for a COMMIT
    -- whose answer was lost), but all or nothing
    local n = db:first('SELECT count(*) AS n FROM f8b').n
    assert.is_true(n == 0 or n == 2, n)
    local rows = assert(db:batch({ { ins, 3 }, { 'SELECT count(*) AS n FROM f8b' } }))
    assert.is_true(rows[2][1].n == 1 or rows[2][1].n == 3)
  end)
end)
]=]

local function server_binaries()
  local p = io.popen('ls -d /usr/lib/postgresql/*/bin 2>/dev/null')
  local found = p:read('l')
  p:close()
  return found ~= nil
end

describe('PostgreSQL store deadline (RELIABILITY.md F8)', function()
  local have = server_binaries()
  local dir, url, pids

  setup(function()
    if not have then return end
    local p = io.popen('tools/pg-temp.sh start')
    dir, url = p:read('l'), p:read('l')
    p:close()
    assert(dir and url, 'tools/pg-temp.sh start failed')
    pids = h.tmpdir() .. '/stopped-pids'
  end)

  teardown(function()
    if pids then  -- never leave a backend stopped, whatever happened
      local f = io.open(pids)
      if f then
        for pid in f:lines() do os.execute('kill -CONT ' .. tonumber(pid) .. ' 2>/dev/null') end
        f:close()
      end
    end
    if dir then os.execute('tools/pg-temp.sh stop ' .. h.shell_quote(dir)) end
  end)

  it('times out, reconnects, and fails a transaction, within an outer timeout', function()
    if not have then
      pending('needs the PostgreSQL server binaries (Debian package postgresql)')
      return
    end
    local child = h.write(h.tmpdir() .. '/deadline_spec.lua', CHILD)
    local r = h.run({ '-k', '5', '60', h.bin, 'test', child },
      { bin = 'timeout', env = { AEGIS_F8_URL = url, AEGIS_F8_PIDS = pids } })
    assert.not_equal(124, r.code, 'the child hung and was killed by timeout 60:\n' .. r.stdout .. r.stderr)
    assert.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches('3 passed, 0 failed', r.stdout)
  end)
end)
