local h = require('spec.helpers')
local store = require('aegis.store')

-- Names unique within a run: the PostgreSQL server is shared by every spec.
local counter = 0
local function uniq(prefix)
  counter = counter + 1
  return ('%s_%d_%d'):format(prefix, counter, math.random(1, 999999999))
end

local function pick(b, sqlite, postgres)
  return b.name == 'sqlite' and sqlite or postgres
end

local function table_exists(db, name)
  if db.kind == 'sqlite' then
    return db:first("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = $1", name) ~= nil
  end
  return db:first('SELECT 1 AS x WHERE to_regclass($1) IS NOT NULL', name) ~= nil
end

-- Polls `cond` for up to 5 s: for effects another process completes on
-- its own time (a server ending a backend).
local function eventually(cond)
  for _ = 1, 100 do
    if cond() then return true end
    os.execute('sleep 0.05')
  end
  return cond()
end

describe('aegis.store', function()
  describe('open', function()
    it('refuses an unknown URL with a message and code invalid', function()
      local db, msg, code = store.open('mysql://u:pw@host/db')
      assert.is_nil(db)
      assert.equal("store: open 'mysql://u:***@host/db': unknown store URL"
        .. ' (expected sqlite:PATH or postgres://...)', msg)
      assert.equal('invalid', code)
      db, msg, code = store.open('aegis.db')
      assert.is_nil(db)
      assert.equal("store: open 'aegis.db': unknown store URL (expected sqlite:PATH or postgres://...)", msg)
      assert.equal('invalid', code)
    end)

    it('refuses an empty SQLite path', function()
      local db, msg, code = store.open('sqlite:')
      assert.is_nil(db)
      assert.equal("store: open 'sqlite:': empty path (write sqlite:PATH or sqlite::memory:)", msg)
      assert.equal('invalid', code)
    end)

    it('raises on misuse', function()
      assert.error_matches(function() store.open(42) end, "bad argument #1 to 'open' %(string expected, got number%)")
      assert.error_matches(function() store.open('sqlite::memory:', 'x') end,
        "bad argument #2 to 'open' %(table expected, got string%)")
      assert.error_matches(function() store.open('sqlite::memory:', { synchronus = 'full' }) end,
        "bad argument #2 to 'open' %(unknown option 'synchronus'%)")
      assert.error_matches(function() store.open('sqlite::memory:', { synchronous = 'off' }) end,
        "option 'synchronous' must be 'normal', 'full' or 'group'")
      assert.error_matches(function() store.open('sqlite::memory:', { busy_timeout = -1 }) end,
        "option 'busy_timeout' must be >= 0")
      assert.error_matches(function() store.blob(1) end, "bad argument #1 to 'blob' %(string expected, got number%)")
    end)

    it('shows a blob with its size', function()
      assert.equal('aegis.store.Blob (3 bytes)', tostring(store.blob('abc')))
    end)

    it('defaults to $AEGIS_STORE, else sqlite:.aegis/aegis.db', function()
      -- make test unsets AEGIS_STORE; a developer's shell may not
      local env = os.getenv('AEGIS_STORE')
      if env and env ~= '' then
        assert.equal(env, store.default_url())
      else
        assert.equal('sqlite:.aegis/aegis.db', store.default_url())
      end
      assert.equal('sqlite:.aegis/aegis.db', store.DEFAULT_URL)
    end)

    it('redacts passwords in URLs and conninfo strings', function()
      assert.equal('postgres://u:***@h:5432/db', store.redact('postgres://u:s3cret@h:5432/db'))
      assert.equal('postgresql://u@h/db?sslmode=require&password=***&x=1',
        store.redact('postgresql://u@h/db?sslmode=require&password=s3cret&x=1'))
      assert.equal('postgresql://h/db', store.redact('postgresql://h/db'))
      assert.equal("host=/tmp password=*** dbname=x", store.redact("host=/tmp password='s3 \\'cret' dbname=x"))
      assert.equal('host=h password = *** user=u', store.redact('host=h password = s3cret user=u'))
      assert.equal('sqlite:/x/y.db', store.redact('sqlite:/x/y.db'))
    end)

    it('makes store.null the same value as cjson.null', function()
      assert.equal(require('cjson').null, store.null)
    end)
  end)

  for _, b in ipairs(h.store_backends()) do
    describe(b.name, function()
      local function open(opts)
        return assert(store.open(b.url, opts))
      end

      it('opens with kind and url, and closes', function()
        if not h.needs(b) then return end
        local db = open()
        assert.equal(b.name, db.kind)
        assert.equal(store.redact(b.url), db.url)
        assert.equal('aegis.store.Db (' .. db.url .. ')', tostring(db))
        assert.is_true(db:close())
        assert.equal('aegis.store.Db (closed)', tostring(db))
      end)

      it('raises on a closed store', function()
        if not h.needs(b) then return end
        local db = open()
        db:close()
        assert.error_matches(function() db:exec('SELECT 1') end, 'attempt to use a closed store')
        assert.error_matches(function() db:query('SELECT 1') end, 'attempt to use a closed store')
        assert.error_matches(function() db:tx(function() end) end, 'attempt to use a closed store')
        assert.error_matches(function() db:close() end, 'attempt to use a closed store')
      end)

      it('closes on scope exit and on garbage collection', function()
        if not h.needs(b) then return end
        if b.name == 'sqlite' then
          -- the last connection to close removes the WAL file
          local url = 'sqlite:' .. h.tmpdir() .. '/gc.db'
          local path = url:sub(8)
          do
            local db <close> = assert(store.open(url))
            db:exec('CREATE TABLE t (x INTEGER)')
            assert.is_not_nil(h.read(path .. '-wal'))
          end
          assert.is_nil(h.read(path .. '-wal'))
          local db = assert(store.open(url))
          db:exec('INSERT INTO t VALUES (1)')
          assert.is_not_nil(h.read(path .. '-wal'))
          db = nil  -- luacheck: ignore 311
          collectgarbage()
          collectgarbage()
          assert.is_nil(h.read(path .. '-wal'))
        else
          local app = uniq('spec_gc')
          local url = b.url .. (b.url:find('?', 1, true) and '&' or '?') .. 'application_name=' .. app
          local watch = open()
          local function count()
            return watch:first('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', app).n
          end
          do
            local db <close> = assert(store.open(url))
            assert.equal('postgres', db.kind)
            assert.equal(1, count())
          end
          assert.is_true(eventually(function() return count() == 0 end))
          local db = assert(store.open(url))
          assert.equal(1, count())
          assert.equal('postgres', db.kind)
          db = nil  -- luacheck: ignore 311
          collectgarbage()
          collectgarbage()
          assert.is_true(eventually(function() return count() == 0 end))
          watch:close()
        end
      end)

      it('round-trips every value type', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('types')
        db:exec(('CREATE TABLE %s (id INTEGER PRIMARY KEY, i BIGINT, f DOUBLE PRECISION, s TEXT, b %s, o BOOLEAN)')
          :format(t, pick(b, 'BLOB', 'BYTEA')))
        local bytes = {}
        for k = 0, 4095 do bytes[#bytes + 1] = string.char((k * 7 + 3) % 256) end
        local rows = {
          { i = 0, f = 0.0, s = '', b = '', o = false },
          { i = math.maxinteger, f = 0.1, s = 'héllo wörld', b = '\0\1\2\0', o = true },
          { i = math.mininteger, f = -1e300, s = ('x'):rep(100000), b = '\255\254\0invalid\192utf8' },
          { i = 1 << 62, f = 1 / 3, b = table.concat(bytes) },
          { i = -1, f = 2.0 ^ 53 + 2, s = "quote ' and \\ backslash" },
          {},
        }
        for id, r in ipairs(rows) do
          assert.equal(1, db:exec(('INSERT INTO %s (id, i, f, s, b, o) VALUES ($1, $2, $3, $4, $5, $6)'):format(t),
            id, r.i, r.f, r.s, r.b and store.blob(r.b), r.o))
        end
        for id, r in ipairs(rows) do
          local got = assert(db:first(('SELECT i, f, s, b, o FROM %s WHERE id = $1'):format(t), id))
          assert.equal(r.i, got.i)
          if r.i then assert.equal('integer', math.type(got.i)) end
          assert.equal(r.f, got.f)
          if r.f then assert.equal('float', math.type(got.f)) end
          assert.equal(r.s, got.s)
          assert.equal(r.b, got.b)
          if b.name == 'sqlite' then
            local want  -- booleans are 0/1 in SQLite
            if r.o ~= nil then want = r.o and 1 or 0 end
            assert.equal(want, got.o)
          else
            assert.equal(r.o, got.o)
          end
        end
        assert.same({}, db:first(('SELECT i, f, s, b, o FROM %s WHERE id = $1'):format(t), #rows))
      end)

      it('binds NULL from nil, store.null and trailing nils', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('nulls')
        db:exec(('CREATE TABLE %s (id INTEGER, a TEXT, c INTEGER)'):format(t))
        local ins = ('INSERT INTO %s (id, a, c) VALUES ($1, $2, $3)'):format(t)
        assert.equal(1, db:exec(ins, 1, nil, 5))
        assert.equal(1, db:exec(ins, 2, store.null, store.null))
        assert.equal(1, db:exec(ins, 3, 'x', nil))
        local rows = db:query(('SELECT id, a, c FROM %s ORDER BY id'):format(t))
        assert.same({ { id = 1, c = 5 }, { id = 2 }, { id = 3, a = 'x' } }, rows)
        assert.equal(1, db:first(('SELECT count(*) AS n FROM %s WHERE a IS NULL AND c IS NULL'):format(t)).n)
      end)

      it('counts changed rows, and none for other statements', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('changes')
        assert.equal(0, db:exec(('CREATE TABLE %s (x INTEGER)'):format(t)))
        assert.equal(1, db:exec(('INSERT INTO %s VALUES (1)'):format(t)))
        assert.equal(2, db:exec(('INSERT INTO %s VALUES ($1), ($2)'):format(t), 2, 3))
        assert.equal(0, db:exec(('CREATE INDEX %s_x ON %s (x)'):format(t, t)))
        assert.equal(2, db:exec(('UPDATE %s SET x = x + 10 WHERE x > $1'):format(t), 1))
        assert.equal(0, db:exec(('SELECT * FROM %s'):format(t)))
        assert.equal(3, db:exec(('DELETE FROM %s'):format(t)))
      end)

      it('runs several statements in one exec without values', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('multi')
        assert.equal(2, db:exec(('CREATE TABLE %s (x INTEGER);\n-- a comment\nINSERT INTO %s VALUES (1);'
          .. ' INSERT INTO %s VALUES (2), (3);'):format(t, t, t)))
        assert.equal(3, db:first(('SELECT count(*) AS n FROM %s'):format(t)).n)
        assert.equal(0, db:exec('  -- nothing but a comment\n'))
      end)

      it('refuses several statements with values, or in a query', function()
        if not h.needs(b) then return end
        local db <close> = open()
        -- SQLite finds the second statement itself; PostgreSQL refuses to prepare it
        local r, msg, code = db:exec('SELECT $1; SELECT 2', 1)
        assert.is_nil(r)
        assert.equal(pick(b, 'invalid', 'sql'), code)
        assert.matches("^store: exec 'SELECT %$1; SELECT 2': ", msg)
        r, msg, code = db:query('SELECT 1; SELECT 2')
        assert.is_nil(r)
        assert.matches("^store: query 'SELECT 1; SELECT 2': ", msg)
        assert.equal(pick(b, 'invalid', 'sql'), code)
      end)

      it('refuses a wrong number of values', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local r, msg, code = db:query('SELECT $1 AS a, $2 AS b', 1)
        assert.is_nil(r)
        assert.equal("store: query 'SELECT $1 AS a, $2 AS b': the statement takes 2 parameters, got 1 value", msg)
        assert.equal('invalid', code)
        r, msg, code = db:first('SELECT 1 AS a', 1, 2)
        assert.is_nil(r)
        assert.equal("store: first 'SELECT 1 AS a': the statement takes 0 parameters, got 2 values", msg)
        assert.equal('invalid', code)
      end)

      it('refuses parameters not written $n', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local r, msg, code = db:query('SELECT :name AS a', 1)
        assert.is_nil(r)
        assert.matches("^store: query 'SELECT :name AS a': ", msg)
        assert.equal(pick(b, 'invalid', 'sql'), code)
        if b.name == 'sqlite' then
          assert.matches("parameter ':name': write parameters as %$1, %$2, %.%.%.$", msg)
        end
      end)

      it('refuses text with a NUL byte, and takes it as a blob', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('nul')
        db:exec(('CREATE TABLE %s (s TEXT, b %s)'):format(t, pick(b, 'BLOB', 'BYTEA')))
        local r, msg, code = db:exec(('INSERT INTO %s (s) VALUES ($1)'):format(t), 'a\0b')
        assert.is_nil(r)
        assert.equal('invalid', code)
        assert.matches('value %$1 is text with a NUL byte %(pass bytes as a blob%)$', msg)
        assert.equal(1, db:exec(('INSERT INTO %s (b) VALUES ($1)'):format(t), store.blob('a\0b')))
        assert.equal('a\0b', db:first(('SELECT b FROM %s'):format(t)).b)
      end)

      it('raises on values that cannot be bound and on a bad statement argument', function()
        if not h.needs(b) then return end
        local db <close> = open()
        assert.error_matches(function() db:exec('SELECT $1', {}) end,
          "bad argument #2 to 'exec' %(cannot bind a table")
        assert.error_matches(function() db:query('SELECT $1, $2', 1, print) end,
          "bad argument #3 to 'query' %(cannot bind a function")
        assert.error_matches(function() db:exec({}) end, "bad argument #1 to 'exec' %(string expected, got table%)")
        assert.error_matches(function() db:exec('SELECT 1\0') end,
          "bad argument #1 to 'exec' %(SQL contains a NUL byte%)")
      end)

      it('returns SQL errors with the first line of the statement', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local r, msg, code = db:query('\n  SELECT nope FROM nowhere_at_all\n  WHERE 1 = 1')
        assert.is_nil(r)
        assert.equal('sql', code)
        assert.matches("^store: query 'SELECT nope FROM nowhere_at_all': .*nowhere_at_all", msg)
        r, msg = db:exec('INSERT INTO a_table_that_does_not_exist_and_has_a_long_name (x) VALUES (1), (2), (3)')
        assert.is_nil(r)
        assert.equal("store: exec 'INSERT INTO a_table_that_does_not_exist_and_has_a_long_na...': ",
          msg:sub(1, 76))
      end)

      it('returns constraint violations as constraint', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('uniq')
        db:exec(('CREATE TABLE %s (k TEXT PRIMARY KEY)'):format(t))
        assert.equal(1, db:exec(('INSERT INTO %s VALUES ($1)'):format(t), 'a'))
        local r, msg, code = db:exec(('INSERT INTO %s VALUES ($1)'):format(t), 'a')
        assert.is_nil(r)
        assert.equal('constraint', code)
        assert.matches('^store: exec .*[Uu][Nn][Ii][Qq][Uu][Ee]', msg)
      end)

      it('returns the first row or nil', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('first')
        db:exec(('CREATE TABLE %s (x INTEGER)'):format(t))
        assert.is_nil(db:first(('SELECT x FROM %s'):format(t)))
        assert.same({}, db:query(('SELECT x FROM %s'):format(t)))
        db:exec(('INSERT INTO %s VALUES (1), (2)'):format(t))
        assert.same({ x = 1 }, db:first(('SELECT x FROM %s ORDER BY x'):format(t)))
        -- the statement was reset: a write from another connection is not blocked
        local db2 <close> = open()
        assert.equal(1, db2:exec(('INSERT INTO %s VALUES (3)'):format(t)))
      end)

      it('reuses prepared statements and bounds their cache', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local sql = 'SELECT $1 + 1 AS v -- ' .. uniq('reuse')
        for k = 1, 5 do assert.equal(k + 1, db:first(sql, k).v) end
        if b.name == 'sqlite' then
          local row = db:first('SELECT count(*) AS n, sum(run) AS runs FROM sqlite_stmt WHERE sql = $1', sql)
          assert.same({ n = 1, runs = 5 }, row)
        else
          local row = db:first('SELECT count(*) AS n, sum(generic_plans + custom_plans)::int AS runs'
            .. ' FROM pg_prepared_statements WHERE statement = $1', sql)
          assert.same({ n = 1, runs = 5 }, row)
        end
        for k = 1, 100 do assert.equal(k, db:first(('SELECT %d AS v'):format(k)).v) end
        local n = db:first(pick(b, 'SELECT count(*) AS n FROM sqlite_stmt',
          'SELECT count(*) AS n FROM pg_prepared_statements')).n
        assert.is_true(n <= 64, 'prepared statements: ' .. n)
        assert.equal(2, db:first(sql, 1).v)  -- evicted, prepared again
      end)

      it('commits a transaction and returns what fn returns', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('txc')
        db:exec(('CREATE TABLE %s (x INTEGER)'):format(t))
        local a, c = db:tx(function(tx)
          assert.equal(db, tx)
          assert.equal(1, tx:_depth())
          tx:exec(('INSERT INTO %s VALUES (1)'):format(t))
          return 'a', nil, 'c'
        end)
        assert.equal('a', a)
        assert.is_nil(c)
        assert.equal(0, db:_depth())
        local db2 <close> = open()
        assert.equal(1, db2:first(('SELECT count(*) AS n FROM %s'):format(t)).n)
      end)

      it('rolls back and raises again when fn raises, leaving no transaction open', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('txr')
        db:exec(('CREATE TABLE %s (x INTEGER)'):format(t))
        local e = setmetatable({ msg = 'boom' }, { __tostring = function(s) return s.msg end })
        local ok, err = pcall(db.tx, db, function(tx)
          tx:exec(('INSERT INTO %s VALUES (1)'):format(t))
          error(e)
        end)
        assert.is_false(ok)
        assert.equal(e, err)  -- the same error object
        assert.equal(0, db:_depth())
        assert.equal(0, db:first(('SELECT count(*) AS n FROM %s'):format(t)).n)
        -- no transaction is open: another connection can write at once
        local db2 <close> = assert(store.open(b.url, { busy_timeout = 0, lock_timeout = 1 }))
        assert.equal(1, db2:exec(('INSERT INTO %s VALUES (2)'):format(t)))
        assert.equal(1, db:tx(function(tx) return tx:first(('SELECT count(*) AS n FROM %s'):format(t)).n end))
      end)

      it('rolls back when fn returns nil, msg, code', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('txn')
        db:exec(('CREATE TABLE %s (x INTEGER PRIMARY KEY)'):format(t))
        local r, msg, code = db:tx(function(tx)
          tx:exec(('INSERT INTO %s VALUES (1)'):format(t))
          return tx:exec(('INSERT INTO %s VALUES (1)'):format(t))  -- duplicate key
        end)
        assert.is_nil(r)
        assert.equal('constraint', code)
        assert.matches('^store: exec ', msg)
        assert.equal(0, db:_depth())
        assert.equal(0, db:first(('SELECT count(*) AS n FROM %s'):format(t)).n)
      end)

      it('nests transactions as savepoints', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('txs')
        db:exec(('CREATE TABLE %s (x INTEGER)'):format(t))
        local ins = ('INSERT INTO %s VALUES ($1)'):format(t)
        db:tx(function(tx)
          tx:exec(ins, 1)
          local ok = pcall(tx.tx, tx, function(inner)
            assert.equal(2, inner:_depth())
            inner:exec(ins, 2)
            error('inner fails')
          end)
          assert.is_false(ok)
          assert.equal(1, tx:_depth())
          assert.equal('kept', tx:tx(function(inner)
            inner:exec(ins, 3)
            return 'kept'
          end))
          local r, _, code = tx:tx(function(inner)
            inner:exec(ins, 4)
            return nil, 'changed my mind', 'custom'
          end)
          assert.is_nil(r)
          assert.equal('custom', code)
        end)
        local rows = db:query(('SELECT x FROM %s ORDER BY x'):format(t))
        assert.same({ { x = 1 }, { x = 3 } }, rows)
      end)

      it('recovers from a failed statement inside a transaction', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('txf')
        db:exec(('CREATE TABLE %s (x INTEGER)'):format(t))
        local r, msg, code = db:tx(function(tx)
          tx:exec(('INSERT INTO %s VALUES (1)'):format(t))
          local _, m, c = tx:exec('SELECT * FROM no_such_table_here')
          assert.equal('sql', c)
          return nil, m, c
        end)
        assert.is_nil(r)
        assert.equal('sql', code)
        assert.matches('no_such_table_here', msg)
        assert.equal(0, db:_depth())
        assert.equal(0, db:first(('SELECT count(*) AS n FROM %s'):format(t)).n)
        assert.equal(1, db:tx(function(tx) return tx:exec(('INSERT INTO %s VALUES (2)'):format(t)) end))
      end)

      it('takes a lock key, and reports busy when another connection holds the lock', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local db2 <close> = assert(store.open(b.url, { busy_timeout = 0.05, lock_timeout = 0.05 }))
        local t = uniq('busy')
        db:exec(('CREATE TABLE %s (x INTEGER)'):format(t))
        local key = uniq('lock')
        db:tx(function(tx)
          tx:exec(('INSERT INTO %s VALUES (1)'):format(t))
          local r, msg, code = db2:tx(function(tx2)
            return tx2:exec(('INSERT INTO %s VALUES (2)'):format(t))
          end, { lock = key })
          assert.is_nil(r)
          assert.equal('busy', code)
          assert.matches("^store: begin '" .. db2.url:gsub('%p', '%%%0') .. "': ", msg)
          assert.equal(0, db2:_depth())
        end, { lock = key })
        -- free again: the same transaction now goes through
        assert.equal(1, db2:tx(function(tx2)
          return tx2:exec(('INSERT INTO %s VALUES (2)'):format(t))
        end, { lock = key }))
        assert.equal(2, db:first(('SELECT count(*) AS n FROM %s'):format(t)).n)
        assert.error_matches(function() db:tx(function() end, { lock = 1 }) end, "option 'lock' must be a string")
        assert.error_matches(function() db:tx('x') end, "bad argument #1 to 'tx' %(function expected, got string%)")
      end)

      it('applies migrations once and re-runs as a no-op', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local comp, t = uniq('comp'), uniq('mig')
        local steps = {
          ('CREATE TABLE %s (x INTEGER)'):format(t),
          { sqlite = ('INSERT INTO %s VALUES (1); INSERT INTO %s VALUES (2)'):format(t, t),
            postgres = ('INSERT INTO %s VALUES (1), (2)'):format(t) },
        }
        assert.equal(0, db:version(comp))
        assert.equal(1, db:migrate(comp, { steps[1] }))
        assert.equal(1, db:version(comp))
        assert.equal(2, db:migrate(comp, steps))
        assert.equal(2, db:migrate(comp, steps))
        assert.equal(2, db:version(comp))
        assert.equal(2, db:versions()[comp])
        assert.equal(2, db:first(('SELECT count(*) AS n FROM %s'):format(t)).n)
        local rec = db:query('SELECT version FROM aegis_migrations WHERE component = $1 ORDER BY version', comp)
        assert.same({ { version = 1 }, { version = 2 } }, rec)
        assert.error_matches(function() db:migrate(comp, { { postgres = 1, sqlite = 1 } }) end,
          "bad argument #2 to 'migrate'")
        assert.error_matches(function() db:migrate('', {}) end, 'component name is empty')
      end)

      it('refuses a store migrated past what the code knows', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local comp = uniq('newer')
        assert.equal(1, db:migrate(comp, { 'SELECT 1' }))
        db:exec('INSERT INTO aegis_migrations (component, version) VALUES ($1, 5)', comp)
        local r, msg, code = db:migrate(comp, { 'SELECT 1', 'SELECT 2' })
        assert.is_nil(r)
        assert.equal("store: migrate '" .. comp .. "': database is at version 5, this aegis-run knows up to 2", msg)
        assert.equal('unsupported', code)
      end)

      it('rolls back a failed migration step entirely', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local comp, t1, t2, t3 = uniq('fail'), uniq('m1'), uniq('m2'), uniq('m3')
        local steps = {
          ('CREATE TABLE %s (x INTEGER)'):format(t1),
          ('CREATE TABLE %s (x INTEGER);\nCREATE TABLE %s (x INTEGER);\nINSERT INTO no_such_table_at_all VALUES (1)')
            :format(t2, t3),
        }
        local r, msg, code = db:migrate(comp, steps)
        assert.is_nil(r)
        assert.equal('sql', code)
        assert.matches("^store: migrate '" .. comp .. "': version 2: exec 'CREATE TABLE " .. t2
          .. " %(x INTEGER%);': ", msg)
        assert.matches('no_such_table_at_all', msg)
        assert.equal(1, db:version(comp))
        assert.is_true(table_exists(db, t1))
        assert.is_false(table_exists(db, t2))
        assert.is_false(table_exists(db, t3))
        assert.equal(0, db:_depth())
      end)

      it('applies each step once when three processes migrate at once', function()
        if not h.needs(b) then return end
        local dir = h.tmpdir()
        local comp, t = uniq('race'), uniq('race_log')
        local go = dir .. '/go'
        h.write(dir .. '/race_spec.lua', ([[
local store = require('aegis.store')
describe('race', function()
  it('migrates', function()
    local function ready()
      local f = io.open(%q)
      if f then f:close() end
      return f ~= nil
    end
    for _ = 1, 200 do
      if ready() then break end
      os.execute('sleep 0.02')
    end
    local db = assert(store.open(%q))
    local steps = {
      'CREATE TABLE %s (step INTEGER); INSERT INTO %s VALUES (1)',
      'INSERT INTO %s VALUES (2)',
      'INSERT INTO %s VALUES (3)',
    }
    assert.equal(3, assert(db:migrate(%q, steps)))
    db:close()
  end)
end)
]]):format(go, b.url, t, t, t, t, comp))
        local q = h.shell_quote
        os.execute(('cd %s && for i in 1 2 3; do (%s test race_spec.lua >out$i 2>&1; echo $? >rc$i) & done;'
          .. ' sleep 0.2; touch go; wait'):format(q(dir), q(h.bin)))
        for i = 1, 3 do
          assert.equal('0', (h.read(dir .. '/rc' .. i) or ''):match('%d+'), h.read(dir .. '/out' .. i))
        end
        local db <close> = open()
        local rows = db:query(('SELECT step, count(*) AS n FROM %s GROUP BY step ORDER BY step'):format(t))
        assert.same({ { step = 1, n = 1 }, { step = 2, n = 1 }, { step = 3, n = 1 } }, rows)
        assert.equal(3, db:version(comp))
      end)
    end)
  end

  describe('sqlite', function()
    local function pragma(db, name)
      local _, v = next(assert(db:first('PRAGMA ' .. name)))
      return v
    end

    it('has the settings of RELIABILITY.md in effect', function()
      local db <close> = assert(store.open('sqlite:' .. h.tmpdir() .. '/s.db'))
      assert.equal('wal', pragma(db, 'journal_mode'))
      assert.equal(1, pragma(db, 'synchronous'))  -- NORMAL
      assert.equal(10000, pragma(db, 'busy_timeout'))
      assert.equal(67108864, pragma(db, 'journal_size_limit'))
      assert.equal(1000, pragma(db, 'wal_autocheckpoint'))
      assert.equal(0, pragma(db, 'trusted_schema'))
      assert.equal(1, pragma(db, 'cell_size_check'))
      assert.equal(0, pragma(db, 'mmap_size'))
      assert.equal(1, pragma(db, 'foreign_keys'))
      -- SQLITE_DBCONFIG_DEFENSIVE: writable_schema cannot alter the schema
      db:exec('CREATE TABLE t (x INTEGER)')
      db:exec('PRAGMA writable_schema=ON')
      local r, msg, code = db:exec('UPDATE sqlite_master SET sql = sql')
      assert.is_nil(r)
      assert.equal('sql', code)
      assert.matches('sqlite_master may not be modified', msg)
    end)

    it('uses synchronous=FULL when asked, and the busy timeout given', function()
      local url = 'sqlite:' .. h.tmpdir() .. '/f.db'
      local db <close> = assert(store.open(url, { synchronous = 'full', busy_timeout = 2.5 }))
      assert.equal(2, pragma(db, 'synchronous'))
      assert.equal(2500, pragma(db, 'busy_timeout'))
    end)

    it('reports the durability in effect as db.synchronous', function()
      local dir = h.tmpdir()
      for _, mode in ipairs({ 'normal', 'full', 'group' }) do
        local db <close> = assert(store.open('sqlite:' .. dir .. '/' .. mode .. '.db', { synchronous = mode }))
        assert.equal(mode, db.synchronous)
        -- group commits at NORMAL and syncs the WAL itself, after the lock
        assert.equal(mode == 'full' and 2 or 1, pragma(db, 'synchronous'))
      end
      local def <close> = assert(store.open('sqlite:' .. dir .. '/d.db'))
      assert.equal('normal', def.synchronous)
      local mem <close> = assert(store.open('sqlite::memory:', { synchronous = 'group' }))
      assert.equal('normal', mem.synchronous)  -- nothing to sync
    end)

    -- Group commit (docs/store.md): COMMIT at NORMAL, then the WAL synced
    -- after the write lock is released, before the call returns. Counted
    -- and failed through tools/faultinj.c in a child process, while this
    -- process keeps the WAL open (no WAL header to write, no checkpoint on
    -- the child's close): each commit is one fdatasync of its own.
    describe('group commit', function()
      local q = h.shell_quote
      local dir, so
      local CHILD = [[
describe('child', function() it('commits', function()
  local store = require('aegis.store')
  local json = require('aegis.json')
  local db = assert(store.open(os.getenv('G_URL'), { synchronous = os.getenv('G_MODE') }))
  local out = {}
  local function rec(name, ok, msg, code) out[#out + 1] = { name = name, ok = ok ~= nil, msg = msg, code = code } end
  rec('tx', db:tx(function(tx) return tx:exec('INSERT INTO t (v) VALUES ($1)', 'tx') end))
  rec('exec', db:exec('INSERT INTO t (v) VALUES ($1)', 'exec'))
  rec('first', db:first('INSERT INTO t (v) VALUES ($1) RETURNING k', 'first'))
  rec('query', db:query('INSERT INTO t (v) VALUES ($1) RETURNING k', 'query'))
  rec('read', db:first('SELECT count(*) AS n FROM t'))
  rec('readtx', db:tx(function(tx) return tx:first('SELECT count(*) AS n FROM t') end))
  local f = assert(io.open(os.getenv('G_OUT'), 'w'))
  f:write(json.encode(out))
  f:close()
end) end)
]]

      -- Runs the child's commits with the shim; gives its results by name,
      -- the shim's counts, and the rows of t.
      local function child(mode, fault)
        local work = h.tmpdir()
        local url = 'sqlite:' .. work .. '/g.db'
        local holder <close> = assert(store.open(url))
        assert(holder:exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)'))
        assert(holder:exec("INSERT INTO t (v) VALUES ('setup')"))
        local log, out = dir .. '/' .. mode .. '.log', dir .. '/' .. mode .. '.json'
        os.remove(log)
        os.remove(out)
        local cmd = ('env LD_PRELOAD=%s AEGIS_FAULT=%s AEGIS_FAULT_PATH=%s AEGIS_FAULT_LOG=%s G_URL=%s G_MODE=%s'
          .. ' G_OUT=%s ASAN_OPTIONS=%s %s test %s > %s 2>&1'):format(q(so), q(fault), q(work), q(log), q(url),
          mode, q(out), q((os.getenv('ASAN_OPTIONS') or '') .. ':verify_asan_link_order=0'), q(h.bin),
          q(dir .. '/child_spec.lua'), q(dir .. '/child.out'))
        assert(os.execute(cmd), h.read(dir .. '/child.out'))
        local res = {}
        for _, r in ipairs(require('aegis.json').decode(assert(h.read(out)))) do res[r.name] = r end
        local counts = {}
        for k, v in (h.read(log) or ''):gmatch('(%w+)=(%d+)') do counts[k] = tonumber(v) end
        local rows = {}
        for _, r in ipairs(assert(holder:query('SELECT v FROM t'))) do rows[r.v] = true end
        return res, counts, rows
      end

      setup(function()
        dir = h.tmpdir()
        so = dir .. '/faultinj.so'
        assert(os.execute(('cc -shared -fPIC -O1 -o %s tools/faultinj.c -ldl'):format(q(so))),
          'cannot build tools/faultinj.c')
        h.write(dir .. '/child_spec.lua', CHILD)
      end)

      it('syncs the WAL once per commit and never for reads', function()
        local res, counts = child('group', 'count')
        for _, name in ipairs({ 'tx', 'exec', 'first', 'query', 'read', 'readtx' }) do
          assert.is_true(res[name].ok, name .. ': ' .. tostring(res[name].msg))
        end
        -- tx, exec, first, query; and SQLite syncs the directory after a
        -- connection's first sync of the WAL (so FULL makes the same count)
        assert.equal(4 + 1, counts.fdatasync)
        res, counts = child('normal', 'count')
        assert.is_true(res.query.ok)
        assert.equal(0, counts.fdatasync)
        res, counts = child('full', 'count')
        assert.is_true(res.query.ok)
        assert.equal(4 + 1, counts.fdatasync)
      end)

      -- A sync that fails after COMMIT leaves the row committed (which is how
      -- the spec sees that the sync came after it: under FULL the failed sync
      -- fails the COMMIT and the row is not there), and the call fails.
      it('fails the call whose sync fails, with its row committed but not acknowledged', function()
        -- the 3rd sync: 1 is tx's, 2 the directory's, 3 exec's
        local res, counts, rows = child('group', 'fdatasync:3')
        assert.equal(1, counts.injected)
        assert.is_true(res.tx.ok)
        assert.is_false(res.exec.ok)
        assert.equal('io', res.exec.code)
        assert.matches("^store: exec 'INSERT INTO t %(v%) VALUES %(%$1%)': committed, but not known to be on disk:"
          .. " sync of the WAL failed %(Input/output error%)$", res.exec.msg)
        assert.is_true(rows.exec)
        -- the connection checkpointed everything into the database file and
        -- goes on: later commits are synced and acknowledged
        assert.is_true(res.first.ok, res.first.msg)
        assert.is_true(res.query.ok, res.query.msg)
        assert.is_true(rows.query)
        -- the same fault under FULL: the COMMIT itself fails, nothing is stored
        res, counts, rows = child('full', 'fdatasync:3')
        assert.equal(1, counts.injected)
        assert.is_false(res.exec.ok)
        assert.equal('io', res.exec.code)
        assert.is_nil(rows.exec)
      end)

      it('keeps failing commits while the WAL cannot be synced or checkpointed', function()
        local res, _, rows = child('group', 'fdatasync:3:forever')
        assert.is_true(res.tx.ok)
        assert.equal('io', res.exec.code)
        for _, name in ipairs({ 'first', 'query' }) do
          assert.is_false(res[name].ok, name)
          assert.equal('io', res[name].code)
          assert.matches(": committed, but not known to be on disk: an earlier sync of the WAL failed, and"
            .. " checkpointing it into the database file failed too %(disk I/O error%)$", res[name].msg)
          assert.is_true(rows[name])
        end
        assert.is_true(res.read.ok)  -- reads go on
      end)
    end)

    it('opens in memory and relative paths', function()
      local db <close> = assert(store.open('sqlite::memory:'))
      assert.equal('memory', pragma(db, 'journal_mode'))
      assert.equal(1, db:exec('CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)'))
      local dir = h.tmpdir()
      local r = h.run({ 'store', 'info', '--store', 'sqlite:rel.db' }, { cwd = dir })
      assert.equal(0, r.code, r.stderr)
      assert.is_not_nil(h.read(dir .. '/rel.db'))
    end)

    it('refuses a path in a missing directory and creates nothing', function()
      local dir = h.tmpdir()
      local url = 'sqlite:' .. dir .. '/missing/x.db'
      local db, msg, code = store.open(url)
      assert.is_nil(db)
      assert.equal(("store: open '%s': directory '%s/missing' does not exist"):format(url, dir), msg)
      assert.equal('io', code)
      assert.is_true(os.execute('test ! -e ' .. h.shell_quote(dir .. '/missing')))
    end)

    -- both used to read "directory '...' does not exist"
    it('says why a directory cannot be used or made', function()
      local dir = h.tmpdir()
      h.write(dir .. '/file', 'x')
      local url = 'sqlite:' .. dir .. '/file/sub/x.db'
      local db, msg, code = store.open(url)
      assert.is_nil(db)
      assert.equal(("store: open '%s': directory '%s/file/sub': Not a directory"):format(url, dir), msg)
      assert.equal('io', code)
      -- creating the directory, as the default store does: a dangling link is in the way
      os.execute('ln -s ' .. h.shell_quote(dir .. '/nowhere') .. ' ' .. h.shell_quote(dir .. '/link'))
      url = 'sqlite:' .. dir .. '/link/x.db'
      db, msg, code = require('aegis.core.store').open(url, nil, true)
      assert.is_nil(db)
      assert.equal(("store: open '%s': cannot create directory '%s/link': File exists"):format(url, dir), msg)
      assert.equal('io', code)
    end)

    it('removes a file it created when initialisation fails', function()
      local dir = h.tmpdir()
      os.execute('mkdir ' .. h.shell_quote(dir .. '/x.db-wal'))  -- WAL cannot be opened
      local db, msg, code = store.open('sqlite:' .. dir .. '/x.db')
      assert.is_nil(db)
      assert.equal('io', code)
      assert.matches("^store: open 'sqlite:.*/x%.db': ", msg)
      assert.is_nil(h.read(dir .. '/x.db'))
    end)

    it('keeps a file it did not create, and says when it is not a database', function()
      local dir = h.tmpdir()
      local path = h.write(dir .. '/junk.db', ('not a database\n'):rep(100))
      local db, msg, code = store.open('sqlite:' .. path)
      assert.is_nil(db)
      assert.equal(("store: open 'sqlite:%s': file is not a database"):format(path), msg)
      assert.equal('corrupt', code)
      assert.equal(('not a database\n'):rep(100), h.read(path))
    end)

    it('refuses a symbolic link', function()
      local dir = h.tmpdir()
      assert.is_not_nil(store.open('sqlite:' .. dir .. '/real.db'))
      os.execute(('ln -s real.db %s'):format(h.shell_quote(dir .. '/link.db')))
      local db, msg, code = store.open('sqlite:' .. dir .. '/link.db')
      assert.is_nil(db)
      assert.equal(("store: open 'sqlite:%s/link.db': is a symbolic link (refused)"):format(dir), msg)
      assert.equal('io', code)
    end)

    it('treats a path starting with file: as a file name, not a URI', function()
      local dir = h.tmpdir()
      local r = h.run({ 'store', 'info', '--store', 'sqlite:file:x.db?mode=ro' }, { cwd = dir })
      assert.equal(0, r.code, r.stderr)
      assert.is_not_nil(h.read(dir .. '/file:x.db?mode=ro'))
    end)
  end)

  describe('postgres', function()
    it('fails with conn, password hidden, when nothing listens', function()
      local url = 'postgresql://spec:s3cr3t@127.0.0.1:1/db'
      local db, msg, code = store.open(url, { connect_timeout = 2 })
      assert.is_nil(db)
      assert.equal('conn', code)
      assert.matches("^store: open 'postgresql://spec:%*%*%*@127%.0%.0%.1:1/db': connection to server at", msg)
      assert.is_nil(msg:find('s3cr3t', 1, true))
      assert.is_nil(msg:find('\n', 1, true))
    end)

    it('fails with conn for a socket directory that does not exist', function()
      local dir = h.tmpdir() .. '/no-such-dir'
      local url = ('host=%s port=5 dbname=x password=s3cr3t'):format(dir)
      local db, msg, code = store.open(url)
      assert.is_nil(db)
      assert.equal('conn', code)
      assert.equal(("store: open 'host=%s port=5 dbname=x password=***': connection to server on socket"
        .. ' "%s/.s.PGSQL.5" failed: No such file or directory'):format(dir, dir), msg)
    end)

    local pg = { name = 'postgres', url = os.getenv('AEGIS_PG_URL') }

    it('hides the password in db.url and in tostring', function()
      if not h.needs(pg) then return end
      local url = pg.url:gsub('^postgresql://aegis@', 'postgresql://aegis:s3cr3t@')
      local db <close> = assert(store.open(url))
      assert.equal(pg.url:gsub('^postgresql://aegis@', 'postgresql://aegis:***@'), db.url)
      assert.is_nil(tostring(db):find('s3cr3t', 1, true))
    end)

    it('sets the session up: timeouts, application_name', function()
      if not h.needs(pg) then return end
      local db <close> = assert(store.open(pg.url, { statement_timeout = 12, lock_timeout = 3 }))
      assert.equal('12s', db:first('SHOW statement_timeout').statement_timeout)
      assert.equal('3s', db:first('SHOW lock_timeout').lock_timeout)
      assert.equal('aegis-run', db:first('SHOW application_name').application_name)
      assert.equal('hex', db:first('SHOW bytea_output').bytea_output)
    end)

    it('returns timeout when a statement runs past statement_timeout', function()
      if not h.needs(pg) then return end
      local db <close> = assert(store.open(pg.url, { statement_timeout = 0.05 }))
      local r, msg, code = db:exec('SELECT pg_sleep(5)')
      assert.is_nil(r)
      assert.equal('timeout', code)
      assert.matches("^store: exec 'SELECT pg_sleep%(5%)': canceling statement due to statement timeout", msg)
    end)

    it('reports a transaction aborted by an ignored error instead of committing', function()
      if not h.needs(pg) then return end
      local db <close> = assert(store.open(pg.url))
      local t = uniq('aborted')
      db:exec(('CREATE TABLE %s (x INTEGER)'):format(t))
      local r, msg, code = db:tx(function(tx)
        tx:exec(('INSERT INTO %s VALUES (1)'):format(t))
        tx:exec('SELECT 1 / 0')  -- failure ignored
        return true
      end)
      assert.is_nil(r)
      assert.equal('sql', code)
      assert.matches('^store: commit .*aborted by an earlier error', msg)
      assert.equal(0, db:first(('SELECT count(*) AS n FROM %s'):format(t)).n)
    end)

    it('prepares a statement again when a schema change invalidates it', function()
      if not h.needs(pg) then return end
      local db <close> = assert(store.open(pg.url))
      local t = uniq('stale')
      db:exec(('CREATE TABLE %s (a INTEGER); INSERT INTO %s VALUES (1)'):format(t, t))
      local sql = ('SELECT * FROM %s WHERE a = $1'):format(t)
      assert.same({ { a = 1 } }, db:query(sql, 1))
      db:exec(('ALTER TABLE %s ADD COLUMN b TEXT'):format(t))
      assert.same({ { a = 1 } }, db:query(sql, 1))  -- outside a transaction: retried
      local r, msg, code = db:tx(function(tx)
        tx:exec(('ALTER TABLE %s ADD COLUMN c TEXT'):format(t))
        return tx:query(sql, 1)
      end)
      assert.is_nil(r)
      assert.equal('sql', code)
      assert.matches('cached plan must not change result type', msg)
      assert.same({ { a = 1 } }, db:query(sql, 1))
    end)

    it('reconnects and prepares again after losing an idle connection', function()
      if not h.needs(pg) then return end
      local db <close> = assert(store.open(pg.url))
      local killer <close> = assert(store.open(pg.url))
      local sql = 'SELECT $1::int + 1 AS v'
      assert.equal(2, db:first(sql, 1).v)
      local pid = db:first('SELECT pg_backend_pid() AS pid').pid
      assert.is_true(killer:first('SELECT pg_terminate_backend($1, 5000) AS ok', pid).ok)
      assert.equal(3, db:first(sql, 2).v)
      assert.not_equal(pid, db:first('SELECT pg_backend_pid() AS pid').pid)
    end)

    it('reports conn, and rolls back, when the connection is lost inside a transaction', function()
      if not h.needs(pg) then return end
      local db <close> = assert(store.open(pg.url))
      local killer <close> = assert(store.open(pg.url))
      local t = uniq('lost')
      db:exec(('CREATE TABLE %s (x INTEGER)'):format(t))
      local r, msg, code = db:tx(function(tx)
        tx:exec(('INSERT INTO %s VALUES (1)'):format(t))
        local pid = tx:first('SELECT pg_backend_pid() AS pid').pid
        assert.is_true(killer:first('SELECT pg_terminate_backend($1, 5000) AS ok', pid).ok)
        local x, m, c = tx:exec(('INSERT INTO %s VALUES (2)'):format(t))
        assert.is_nil(x)
        assert.equal('conn', c)
        assert.matches('^store: exec ', m)
        -- the transaction is gone: nothing more runs as if it were not
        x, m, c = tx:exec(('INSERT INTO %s VALUES (3)'):format(t))
        assert.is_nil(x)
        assert.equal('conn', c)
        assert.matches('the connection was lost inside a transaction', m)
        return true
      end)
      assert.is_nil(r)
      assert.equal('conn', code)
      assert.matches("^store: commit '.*': the connection was lost inside a transaction", msg)
      assert.equal(0, db:_depth())
      assert.equal(0, db:first(('SELECT count(*) AS n FROM %s'):format(t)).n)
    end)
  end)
end)

describe('aegis.store on SQLite', function()
  it('refuses ATTACH, so SQL cannot open or create other files', function()
    local dir = h.tmpdir()
    local db <close> = assert(require('aegis.store').open('sqlite:' .. dir .. '/a.db'))
    local ok, msg, code = db:exec("ATTACH DATABASE '" .. dir .. "/other.db' AS other")
    assert.is_nil(ok)
    assert.equal('sql', code)
    assert.matches('too many attached databases', msg)
    assert.is_nil(h.read(dir .. '/other.db'))
  end)
end)

describe('store.ddl', function()
  it('writes one DDL text in both dialects', function()
    local step = store.ddl('CREATE TABLE t (id {serial_pk}, b {blob} NOT NULL)')
    assert.equal('CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB NOT NULL)', step.sqlite)
    assert.equal('CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, b BYTEA NOT NULL)',
      step.postgres)
  end)
  it('refuses a word it does not know', function()
    assert.has_error(function() store.ddl('CREATE TABLE t (x {text})') end,
      "bad argument #1 to 'ddl' (unknown word '{text}')")
  end)
end)
