-- db:batch: several statements as one transaction; on PostgreSQL, outside a
-- transaction, in one round trip (libpq pipeline mode).
local h = require('spec.helpers')
local store = require('aegis.store')

local counter = 0
local function uniq(prefix)
  counter = counter + 1
  return ('%s_%d_%d'):format(prefix, counter, math.random(1, 999999999))
end

local function count(db, t)
  return db:first(('SELECT count(*) AS n FROM %s'):format(t)).n
end

describe('db:batch', function()
  for _, b in ipairs(h.store_backends()) do
    describe(b.name, function()
      local function open(opts)
        return assert(store.open(b.url, opts))
      end

      it("returns each statement's rows and commits them together", function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('batch')
        assert(db:exec(('CREATE TABLE %s (id INTEGER PRIMARY KEY, v TEXT)'):format(t)))
        local ins = ('INSERT INTO %s (id, v) VALUES ($1, $2)'):format(t)
        local r, msg, code = db:batch({
          { ins, 1, 'a' },
          { ins .. ' RETURNING id, v', 2, 'b' },
          { ('SELECT id FROM %s ORDER BY id'):format(t) },
          { b.name == 'sqlite' and 'SELECT $1 AS a, $2 AS b, $3 AS c'
            or 'SELECT $1 AS a, $2 AS b, CAST($3 AS BYTEA) AS c', 'x', nil, store.blob('\0y'), n = 3 },
        }, { lock = uniq('key') })
        assert.is_nil(msg, msg)
        assert.is_nil(code)
        assert.same({ {}, { { id = 2, v = 'b' } }, { { id = 1 }, { id = 2 } }, { { a = 'x', c = '\0y' } } }, r)
        assert.equal(0, db:_depth())
        assert.equal(2, count(db, t))
        -- the same statements again: prepared ones come from the cache
        r = assert(db:batch({ { ins, 3, 'c' }, { ('SELECT count(*) AS n FROM %s'):format(t) } }))
        assert.equal(3, r[2][1].n)
      end)

      it('rolls everything back when a statement fails, names it, and stays usable', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('batchf')
        assert(db:exec(('CREATE TABLE %s (id INTEGER PRIMARY KEY)'):format(t)))
        local ins = ('INSERT INTO %s (id) VALUES ($1)'):format(t)
        local r, msg, code = db:batch({ { ins, 1 }, { ins, 1 }, { ins, 2 } })
        assert.is_nil(r)
        assert.equal('constraint', code)
        assert.matches("^store: batch #2 'INSERT INTO " .. t .. " %(id%) VALUES %(%$1%)': ", msg)
        assert.equal(0, db:_depth())
        assert.equal(0, count(db, t))
        -- a SQL error while preparing, before anything is sent
        r, msg, code = db:batch({ { ins, 5 }, { 'SELEC 1' } })
        assert.is_nil(r)
        assert.equal('sql', code)
        assert.matches("^store: batch #2 'SELEC 1': .*syntax error", msg)
        assert.equal(0, count(db, t))
        -- a wrong number of values
        r, msg, code = db:batch({ { ins, 1, 2 } })
        assert.is_nil(r)
        assert.matches("^store: batch #1 'INSERT INTO ", msg)
        assert.is_truthy(code == 'invalid' or code == 'sql', code)
        -- usable afterwards, and the batch again goes through
        assert(db:batch({ { ins, 1 }, { ins, 2 } }))
        assert.equal(2, count(db, t))
        assert.equal(1, db:exec(ins, 3))
      end)

      it('runs inside a transaction as part of it (a savepoint)', function()
        if not h.needs(b) then return end
        local db <close> = open()
        local t = uniq('batchtx')
        assert(db:exec(('CREATE TABLE %s (id INTEGER PRIMARY KEY)'):format(t)))
        local ins = ('INSERT INTO %s (id) VALUES ($1)'):format(t)
        assert(db:tx(function(tx)
          assert(tx:exec(ins, 1))
          local r, msg, code = tx:batch({ { ins, 2 }, { ins, 1 } })
          assert.is_nil(r)
          assert.equal('constraint', code)
          assert.matches("^store: batch #2 'INSERT INTO ", msg)
          assert.same({ { { id = 3 } } }, tx:batch({ { ins .. ' RETURNING id', 3 } }))
          return true
        end))
        assert.same({ { id = 1 }, { id = 3 } }, db:query(('SELECT id FROM %s ORDER BY id'):format(t)))
      end)

      it('reports busy when another connection holds the lock', function()
        if not h.needs(b) then return end
        if b.name == 'sqlite' then return end  -- BEGIN IMMEDIATE serialises writers there
        local db <close> = open()
        local db2 <close> = open({ lock_timeout = 0.05 })
        local key = uniq('lock')
        assert(db:tx(function()
          local r, msg, code = db2:batch({ { 'SELECT 1 AS x' } }, { lock = key })
          assert.is_nil(r)
          assert.equal('busy', code)
          assert.matches("^store: batch begin '", msg)
          return true
        end, { lock = key }))
        assert.same({ { { x = 1 } } }, db2:batch({ { 'SELECT 1 AS x' } }, { lock = key }))
      end)

      it('raises on misuse', function()
        if not h.needs(b) then return end
        local db <close> = open()
        assert.error_matches(function() db:batch('SELECT 1') end,
          "bad argument #1 to 'batch' %(table expected, got string%)")
        assert.error_matches(function() db:batch({}) end, '1 to 32 statements expected, got 0')
        local many = {}
        for i = 1, 33 do many[i] = { 'SELECT 1' } end
        assert.error_matches(function() db:batch(many) end, '1 to 32 statements expected, got 33')
        assert.error_matches(function() db:batch({ { 1 } }) end, 'statement 1: {sql, values...} expected')
        assert.error_matches(function() db:batch({ { 'SELECT $1', {} } }) end,
          'statement 1: cannot bind a table as value 1')
        assert.error_matches(function() db:batch({ { 'SELECT 1', n = 'x' } }) end,
          'statement 1: field n must be an integer')
        assert.error_matches(function() db:batch({ { 'SELECT 1' } }, { lock = 1 }) end,
          "option 'lock' must be a string")
      end)
    end)
  end

  describe('postgres', function()
    local pg = { name = 'postgres', url = os.getenv('AEGIS_PG_URL') }

    it('fails at COMMIT as a batch commit, with nothing committed', function()
      if not h.needs(pg) then return end
      local db <close> = assert(store.open(pg.url))
      local t = uniq('batchc')
      assert(db:exec(('CREATE TABLE %s (x INTEGER UNIQUE DEFERRABLE INITIALLY DEFERRED)'):format(t)))
      local ins = ('INSERT INTO %s VALUES ($1)'):format(t)
      local r, msg, code = db:batch({ { ins, 1 }, { ins, 1 } })
      assert.is_nil(r)
      assert.equal('constraint', code)
      assert.matches("^store: batch commit '.*': duplicate key", msg)
      assert.equal(0, count(db, t))
      assert.same({ {} }, db:batch({ { ins, 1 } }))
    end)

    it('fails with timeout past statement_timeout, names the statement, commits nothing', function()
      if not h.needs(pg) then return end
      local db <close> = assert(store.open(pg.url, { statement_timeout = 0.05 }))
      local t = uniq('batcht')
      assert(db:exec(('CREATE TABLE %s (x INTEGER)'):format(t)))
      local r, msg, code = db:batch({ { ('INSERT INTO %s VALUES ($1)'):format(t), 1 }, { 'SELECT pg_sleep(5)' } })
      assert.is_nil(r)
      assert.equal('timeout', code)
      assert.matches("^store: batch #2 'SELECT pg_sleep%(5%)': canceling statement due to statement timeout", msg)
      assert.equal(0, count(db, t))
    end)

    it('reconnects when an idle connection was ended, before sending anything', function()
      if not h.needs(pg) then return end
      local db <close> = assert(store.open(pg.url))
      local killer <close> = assert(store.open(pg.url))
      local t = uniq('batchi')
      assert(db:exec(('CREATE TABLE %s (x INTEGER)'):format(t)))
      local pid = db:first('SELECT pg_backend_pid() AS pid').pid
      assert.is_true(killer:first('SELECT pg_terminate_backend($1, 5000) AS ok', pid).ok)
      -- a statement not prepared yet: its prepare finds the connection gone
      local r = assert(db:batch({ { ('INSERT INTO %s VALUES ($1) RETURNING x'):format(t), 1 } }))
      assert.same({ { { x = 1 } } }, r)
      assert.not_equal(pid, db:first('SELECT pg_backend_pid() AS pid').pid)
      assert.equal(1, count(db, t))
    end)

    it('reports conn when the backend is terminated mid-batch, and reconnects', function()
      if not h.needs(pg) then return end
      local db <close> = assert(store.open(pg.url))
      local t = uniq('batchk')
      assert(db:exec(('CREATE TABLE %s (x INTEGER)'):format(t)))
      local ins = ('INSERT INTO %s VALUES ($1)'):format(t)
      local pid = db:first('SELECT pg_backend_pid() AS pid').pid
      local r, msg, code = db:batch({ { ins, 1 }, { 'SELECT pg_terminate_backend(pg_backend_pid())' }, { ins, 2 } })
      assert.is_nil(r)
      assert.equal('conn', code)
      assert.matches("^store: batch #2 'SELECT pg_terminate_backend%(pg_backend_pid%(%)%)': terminating connection",
        msg)
      assert.equal(0, db:_depth())
      -- a new connection, not in pipeline mode; nothing was committed
      assert.not_equal(pid, db:first('SELECT pg_backend_pid() AS pid').pid)
      assert.equal(0, count(db, t))
      assert.same({ {}, { { n = 1 } } }, db:batch({ { ins, 3 }, { ('SELECT count(*) AS n FROM %s'):format(t) } }))
    end)
  end)
end)
