--- One storage interface over SQLite and PostgreSQL.
---
--- ```lua
--- local store = require('aegis.store')
--- local db <close> = assert(store.open('sqlite:.aegis/aegis.db'))
--- assert(db:migrate('notes', { 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)' }))
--- db:exec('INSERT INTO notes (id, body) VALUES ($1, $2)', 1, 'hello')
--- for _, row in ipairs(assert(db:query('SELECT id, body FROM notes'))) do print(row.id, row.body) end
--- ```
---
--- Parameters are `$1, $2, ...` on both backends; results are tables keyed by
--- column name, with NULL columns absent. Expected failures return
--- `nil, msg, code` (codes: invalid, io, busy, timeout, conn, constraint, sql,
--- corrupt, unsupported, nomem); misuse raises. See docs/store.md.
local core = require('aegis.core.store')

local M = {}

--- The URL used when none is given and $AEGIS_STORE is unset.
M.DEFAULT_URL = core.DEFAULT_URL

--- Binds as SQL NULL where a plain `nil` would be awkward (in the middle of
--- a table.unpack, say). The same value as `cjson.null`. Result rows never
--- contain it: NULL columns are simply absent.
M.null = core.null

local Db = core.Db

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function checktype(v, n, fname, want, optional)
  if (v == nil and optional) or type(v) == want then return end
  argerror(n, fname, ('%s expected, got %s'):format(want, type(v) == 'nil' and 'no value' or type(v)))
end

--- Marks a string as bytes: it binds as BLOB on SQLite and bytea on
--- PostgreSQL, and reads back as the same Lua string.
---@param s string
---@return aegis.store.Blob
function M.blob(s)
  checktype(s, 1, 'blob', 'string')
  return core.blob(s)
end

--- Gives the URL `open` uses when called without one: $AEGIS_STORE when set
--- and non-empty; else the configuration's `store` (a relative `sqlite:` path
--- is taken from the directory of `aegis.config.lua`); else `.aegis/aegis.db`
--- in the project root, the directory of `aegis.config.lua` or, without
--- one, the current directory.
---@return string url
---@return boolean builtin True for the built-in default, whose directory `open` may create
function M.default_url()
  local env = os.getenv('AEGIS_STORE')
  if env and env ~= '' then return env, false end
  local config = require('aegis.config')
  local url, file = config.get().store, config.file()
  local root = file and file:match('^(.*)/[^/]*$')
  if url == nil then
    if root then return 'sqlite:' .. root .. '/.aegis/aegis.db', true end
    return M.DEFAULT_URL, true
  end
  local path = url:match('^sqlite:(.*)$')
  if root and path and path ~= ':memory:' and path:sub(1, 1) ~= '/' then
    return 'sqlite:' .. root .. '/' .. path, false
  end
  return url, false
end

--- Replaces the password of a store URL or conninfo string with `***`.
---@param url string
---@return string
function M.redact(url)
  checktype(url, 1, 'redact', 'string')
  return core.redact(url)
end

local option_types = {
  synchronous = 'string', busy_timeout = 'number', connect_timeout = 'number',
  statement_timeout = 'number', lock_timeout = 'number',
}

---@class aegis.store.OpenOpts
---@field synchronous? 'normal'|'full'|'group' SQLite durability (default 'normal', which may lose the last
--- commits on power loss). 'full' and 'group' keep every acknowledged commit: 'full' syncs the WAL inside
--- COMMIT, holding the write lock; 'group' commits at NORMAL and syncs the WAL after the lock is released,
--- before the call returns, so concurrent writers share flushes (docs/store.md, "Group commit")
---@field busy_timeout? number SQLite: seconds to wait for another writer's lock (default 10)
---@field connect_timeout? number PostgreSQL: seconds to connect (default 5; libpq's minimum is 2)
---@field statement_timeout? number PostgreSQL: seconds a statement may run (default 25; 0: no limit)
---@field lock_timeout? number PostgreSQL: seconds to wait for a lock (default 10; 0: no limit)

--- Opens a store. `url` is `sqlite:PATH` (`sqlite::memory:` for memory),
--- `postgres://...`/`postgresql://...`, or a libpq conninfo string
--- (`host=/run/pg dbname=aegis`); without one, `store.default_url()`. Only the
--- built-in default (`.aegis/aegis.db`) creates its directory (mode 0700).
--- A failed open leaves nothing behind: a SQLite file it created is removed.
---@param url? string
---@param opts? aegis.store.OpenOpts
---@return aegis.store.Db? db
---@return string? err `store: open '<url, password redacted>': <detail>`
---@return string? code 'invalid' (unknown URL), 'io', 'corrupt', 'busy' or 'conn'
function M.open(url, opts)
  checktype(url, 1, 'open', 'string', true)
  checktype(opts, 2, 'open', 'table', true)
  for k, v in pairs(opts or {}) do
    local want = option_types[k]
    if not want then argerror(2, 'open', ("unknown option '%s'"):format(tostring(k))) end
    if type(v) ~= want then argerror(2, 'open', ("option '%s': %s expected, got %s"):format(k, want, type(v))) end
    if want == 'number' and (v ~= v or v < 0) then argerror(2, 'open', ("option '%s' must be >= 0"):format(k)) end
  end
  local sync = opts and opts.synchronous
  if sync and sync ~= 'normal' and sync ~= 'full' and sync ~= 'group' then
    argerror(2, 'open', "option 'synchronous' must be 'normal', 'full' or 'group'")
  end
  local create_dir = false
  if url == nil then url, create_dir = M.default_url() end
  return core.open(url, opts, create_dir)
end

-- Messages of nested calls lose their own "store: " so they read as one line.
local function inner(msg)
  return (tostring(msg):gsub('^store: ', ''))
end

-- Closes a transaction's level on every way out but a commit (a raise in
-- fn, a memory error between two lines): the to-be-closed guard of Db:tx.
local Guard = { __close = function(g)
  if g.level then pcall(g.db._rollback, g.db, g.level) end  -- a closed store needs no rollback
end }

-- The end of Db:tx, given pcall's results as arguments (no table for them).
local function tx_end(db, guard, ok, first, ...)
  if not ok then error(first, 0) end
  if first == nil then
    local msg, code = ...
    if msg ~= nil then return nil, msg, code end  -- the failure convention: rolled back by the guard
  end
  local cok, cmsg, ccode = db:_commit(guard.level)
  guard.level = nil  -- closed either way
  if not cok then return nil, cmsg, ccode end
  return first, ...
end

--- Runs `fn(db)` in a transaction: `BEGIN IMMEDIATE` on SQLite, `BEGIN` on
--- PostgreSQL, a SAVEPOINT when already inside one. It commits when `fn`
--- returns and rolls back when `fn` raises (the error is raised again) or
--- returns `nil, msg[, code]` (those are returned). `opts.lock` serialises
--- on a key: `pg_advisory_xact_lock(hashtextextended(key, 0))` on PostgreSQL,
--- held to the end of the outermost transaction; SQLite's BEGIN IMMEDIATE
--- already serialises writers. No transaction is ever left open.
---@param fn fun(db: aegis.store.Db): ...
---@param opts? {lock?: string}
---@return any ... the results of fn, or nil, msg, code ('busy' when the lock or write lock was not had in time)
function Db:tx(fn, opts)
  if type(fn) ~= 'function' then
    local mt = getmetatable(fn)
    if not (mt and mt.__call) then argerror(1, 'tx', 'function expected, got ' .. type(fn)) end
  end
  local key
  if opts ~= nil then
    checktype(opts, 2, 'tx', 'table', true)
    key = opts.lock
    if key ~= nil and type(key) ~= 'string' then argerror(2, 'tx', "option 'lock' must be a string") end
  end
  local guard <close> = setmetatable({ db = self }, Guard)
  local level, msg, code = self:_begin(key)
  if not level then return nil, msg, code end
  guard.level = level
  return tx_end(self, guard, pcall(fn, self))
end

local BLOB_MT = getmetatable(core.blob(''))

-- Can `v` be bound? (the C side raises on the others)
local function bindable(v)
  local t = type(v)
  if t == 'nil' or t == 'boolean' or t == 'number' or t == 'string' then return true end
  if t == 'userdata' then return v == M.null end
  return t == 'table' and getmetatable(v) == BLOB_MT
end

-- db:batch's fallback: the statements one by one in a transaction (a
-- savepoint inside one), with the messages the pipelined path gives.
local function batch_tx(db, stmts, key)
  return db:tx(function()
    local out = {}
    for i, st in ipairs(stmts) do
      local rows, msg, code = db:query(st[1], table.unpack(st, 2, (st.n or #st - 1) + 1))
      if not rows then return nil, (tostring(msg):gsub('^store: query ', ('store: batch #%d '):format(i))), code end
      out[i] = rows
    end
    return out
  end, key and { lock = key } or nil)
end

--- Runs several statements as one transaction and returns each one's rows.
--- `stmts[i]` is `{sql, v1, v2, ...}` with the values bound to $1, $2, ...
--- (as for `exec`; give `n = count` when a value is nil). On PostgreSQL,
--- outside a transaction, it is one round trip (libpq pipeline mode): BEGIN,
--- `pg_advisory_xact_lock(hashtextextended(opts.lock, 0))` when `opts.lock`
--- is given, the statements, COMMIT. Elsewhere (SQLite, or inside `db:tx`)
--- the statements run one by one in a transaction (a SAVEPOINT inside one),
--- with the same results. All or nothing: when a statement fails, nothing of
--- the batch is committed and the message names it. Each statement is one
--- SQL statement; rows as `query` returns them (an empty list for a statement
--- without rows: use RETURNING to see what a write did). A failure with
--- code 'conn' or 'timeout' has an unknown outcome, as a lost COMMIT has.
---@param stmts table[] 1 to 32 statements `{sql, ...}`
---@param opts? {lock?: string}
---@return table[][]? results `results[i]` is the list of rows of `stmts[i]`
---@return string? err `store: batch #<i> '<first line of sql>': <detail>`, or `store: batch begin|commit '<url>': ...`
---@return string? code as for `exec`; 'busy' when the lock was not had in time
function Db:batch(stmts, opts)
  checktype(stmts, 1, 'batch', 'table')
  if #stmts < 1 or #stmts > 32 then argerror(1, 'batch', ('1 to 32 statements expected, got %d'):format(#stmts)) end
  for i, st in ipairs(stmts) do
    if type(st) ~= 'table' or type(st[1]) ~= 'string' then
      argerror(1, 'batch', ('statement %d: {sql, values...} expected'):format(i))
    end
    local n = st.n
    if n ~= nil and math.type(n) ~= 'integer' then
      argerror(1, 'batch', ('statement %d: field n must be an integer'):format(i))
    end
    for j = 2, (n or #st - 1) + 1 do
      if not bindable(st[j]) then
        argerror(1, 'batch', ('statement %d: cannot bind a %s as value %d'):format(i, type(st[j]), j - 1))
      end
    end
  end
  local key
  if opts ~= nil then
    checktype(opts, 2, 'batch', 'table')
    key = opts.lock
    if key ~= nil and type(key) ~= 'string' then argerror(2, 'batch', "option 'lock' must be a string") end
  end
  if self.kind == 'postgres' and self:_depth() == 0 then return self:_batch(stmts, key) end
  return batch_tx(self, stmts, key)
end

local MIGRATIONS = {
  sqlite = [[CREATE TABLE IF NOT EXISTS aegis_migrations (
  component TEXT NOT NULL,
  version INTEGER NOT NULL,
  applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  PRIMARY KEY (component, version))]],
  postgres = [[CREATE TABLE IF NOT EXISTS aegis_migrations (
  component TEXT NOT NULL,
  version INTEGER NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (component, version))]],
}

-- Advisory lock key that serialises migrations across processes (PostgreSQL).
local MIGRATION_LOCK = 'aegis_migrations'

-- true when aegis_migrations exists; nil, msg, code on failure
local function has_migrations(db)
  local row, msg, code
  if db.kind == 'sqlite' then
    row, msg, code = db:first("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'aegis_migrations'")
  else
    row, msg, code = db:first("SELECT 1 AS x WHERE to_regclass('aegis_migrations') IS NOT NULL")
  end
  if msg then return nil, msg, code end
  return row ~= nil
end

--- Gives the schema version recorded for `component` (0 when none).
---@param component string
---@return integer? version
---@return string? err
---@return string? code
function Db:version(component)
  checktype(component, 1, 'version', 'string')
  local exists, msg, code = has_migrations(self)
  if exists == nil then return nil, msg, code end
  if not exists then return 0 end
  local row
  row, msg, code = self:first('SELECT max(version) AS v FROM aegis_migrations WHERE component = $1', component)
  if msg then return nil, msg, code end
  return row and row.v or 0
end

--- Gives every migrated component with its version: `{component = version}`.
---@return table<string, integer>? versions
---@return string? err
---@return string? code
function Db:versions()
  local exists, msg, code = has_migrations(self)
  if exists == nil then return nil, msg, code end
  local out = {}
  if not exists then return out end
  local rows
  rows, msg, code = self:query('SELECT component, max(version) AS v FROM aegis_migrations GROUP BY component')
  if not rows then return nil, msg, code end
  for _, r in ipairs(rows) do out[r.component] = r.v end
  return out
end

local function step_sql(step, kind)
  if type(step) == 'string' then return step end
  return step[kind]
end

--- Brings `component`'s schema forward. `steps[v]` is the SQL of version v:
--- a string for both backends, or `{sqlite = '...', postgres = '...'}`;
--- several statements are allowed. Versions above the recorded one are
--- applied in order, each in its own transaction with its record in
--- `aegis_migrations`, serialised across processes (BEGIN IMMEDIATE, or an
--- advisory lock), so each runs exactly once. A failed step leaves nothing
--- of itself behind. Forward-only: a store already past `#steps` is refused.
---@param component string
---@param steps (string|{sqlite?: string, postgres?: string})[]
---@return integer? version the version reached (#steps)
---@return string? err `store: migrate '<component>': ...`
---@return string? code 'unsupported' when the store is newer than the code, else the failing statement's code
function Db:migrate(component, steps)
  checktype(component, 1, 'migrate', 'string')
  if component == '' then argerror(1, 'migrate', 'component name is empty') end
  checktype(steps, 2, 'migrate', 'table')
  for v, step in ipairs(steps) do
    local sql = type(step) == 'table' and step[self.kind] or step
    if type(sql) ~= 'string' then
      argerror(2, 'migrate', ('step %d has no SQL for %s'):format(v, self.kind))
    end
  end
  local target = #steps
  local function fail(msg, code)
    return nil, ("store: migrate '%s': %s"):format(component, inner(msg)), code
  end
  local function too_new(v)
    return ('database is at version %d, this aegis-run knows up to %d'):format(v, target)
  end

  local current, msg, code = self:version(component)
  if not current then return fail(msg, code) end
  if current > target then return fail(too_new(current), 'unsupported') end
  if current == target then return current end

  local ok
  ok, msg, code = self:tx(function(db)
    return db:exec(MIGRATIONS[db.kind])
  end, { lock = MIGRATION_LOCK })
  if not ok then return fail(msg, code) end

  for v = current + 1, target do
    ok, msg, code = self:tx(function(db)
      local now, m, c = db:version(component)  -- again, under the lock
      if not now then return nil, m, c end
      if now > target then return nil, too_new(now), 'unsupported' end
      if now >= v then return now end  -- another process applied it
      local _, em, ec = db:exec(step_sql(steps[v], db.kind))
      if em then return nil, ('version %d: %s'):format(v, inner(em)), ec end
      _, em, ec = db:exec('INSERT INTO aegis_migrations (component, version) VALUES ($1, $2)', component, v)
      if em then return nil, em, ec end
      return v
    end, { lock = MIGRATION_LOCK })
    if not ok then return fail(msg, code) end
  end
  return target
end

-- The words in which the two dialects' DDL differ.
local DIALECT_WORDS = {
  sqlite = { blob = 'BLOB', serial_pk = 'INTEGER PRIMARY KEY AUTOINCREMENT' },
  postgres = { blob = 'BYTEA', serial_pk = 'BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY' },
}

--- Makes a migration step for both backends from one DDL text: `{blob}`
--- becomes BLOB or BYTEA, `{serial_pk}` an auto-numbered primary key
--- (`INTEGER PRIMARY KEY AUTOINCREMENT` or an identity column).
---@param sql string
---@return {sqlite: string, postgres: string} step
function M.ddl(sql)
  checktype(sql, 1, 'ddl', 'string')
  local step = {}
  for kind, words in pairs(DIALECT_WORDS) do
    step[kind] = sql:gsub('{(%w[%w_]*)}', function(w)
      return words[w] or error(("bad argument #1 to 'ddl' (unknown word '{%s}')"):format(w), 3)
    end)
  end
  return step
end

local registry = {}

--- Registers `component`'s migration steps, for `aegis-run store migrate`
--- and `store.migrate_all`. A module that owns tables calls this when loaded.
---@param component string
---@param steps (string|{sqlite?: string, postgres?: string})[]
function M.register(component, steps)
  checktype(component, 1, 'register', 'string')
  checktype(steps, 2, 'register', 'table')
  registry[component] = steps
end

--- Gives the registered components, sorted by name.
---@return {component: string, steps: table}[]
function M.registered()
  local out = {}
  for name, steps in pairs(registry) do out[#out + 1] = { component = name, steps = steps } end
  table.sort(out, function(a, b) return a.component < b.component end)
  return out
end

--- Applies every registered component's migrations, in name order.
---@param db aegis.store.Db
---@return {component: string, from: integer, to: integer}[]? done
---@return string? err
---@return string? code
function M.migrate_all(db)
  local done = {}
  for _, r in ipairs(M.registered()) do
    local from, msg, code = db:version(r.component)
    if not from then return nil, msg, code end
    local to
    to, msg, code = db:migrate(r.component, r.steps)
    if not to then return nil, msg, code end
    done[#done + 1] = { component = r.component, from = from, to = to }
  end
  return done
end

return M
