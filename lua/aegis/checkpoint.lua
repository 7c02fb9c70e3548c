--- Layered checkpoints in LangGraph's own storage.
---
--- ```lua
--- local checkpoint = require('aegis.checkpoint')
--- local db <close> = assert(checkpoint.open('sqlite:.aegis/aegis.db'))
--- local plan = assert(checkpoint.save{db = db, thread = 'run-1', layer = 'plan', state = {goal = 'todo app'}})
--- local mod = assert(checkpoint.save{db = db, thread = 'run-1', layer = 'module', module = 'api',
---                                    state = {files = json.array{}}, name = 'api-start'})
--- local fork = assert(checkpoint.branch{db = db, from = 'api-start', name = 'api-alt', state = {files = {'a.ts'}}})
--- print(checkpoint.load('api-alt', {db = db}).state.files[1])
--- ```
---
--- The tables, columns, keys and serialisation are those LangGraph.js's
--- `SqliteSaver` (`checkpoints`, `writes`) and `PostgresSaver`
--- (`checkpoint_migrations` v0-v4, `checkpoints`, `checkpoint_blobs`,
--- `checkpoint_writes`) create: a LangGraph application lists, loads and
--- continues what aegis writes, and aegis loads what LangGraph writes.
--- Namespaces: plan `""`, module `module:<id>`, file `module:<id>|file:<id>`.
--- Every write runs in one transaction serialised per thread (`BEGIN
--- IMMEDIATE` on SQLite, `pg_advisory_xact_lock` on PostgreSQL) and is an
--- upsert on its natural key, so retrying a write whose outcome is unknown is
--- safe. See docs/checkpoints.md.
local json = require('aegis.json')
local store = require('aegis.store')
local blob = require('aegis.core.store').blob  -- store.blob without its argument check (always a string here)
local uuid = require('aegis.uuid')
local clock = require('aegis.clock')

local M = {}

--- LangGraph's channel of pending sends (`TASKS`).
M.TASKS = '__pregel_tasks'

--- LangGraph's special channels of pending writes and their fixed negative
--- indices (`WRITES_IDX_MAP`): a write to one of them replaces the previous.
M.WRITES_IDX = { __error__ = -1, __scheduled__ = -2, __interrupt__ = -3, __resume__ = -4 }

--- The checkpoint format version written (`v` of the checkpoint object).
M.FORMAT_VERSION = 4

local canonical, decode = json.canonical, json.decode
local quoted  -- a channel name as JSON (defined with put_rows)
local new_meta  -- a save's metadata (defined with write_child)
local NULL = json.null
local EMPTY = setmetatable({}, { __newindex = function() error('checkpoint: EMPTY is read-only', 2) end })

-- {======================================================================
-- Schema: exactly what SqliteSaver 1.0.4 and PostgresSaver 1.0.5 create
-- ======================================================================

local SQLITE_SCHEMA = [[
CREATE TABLE IF NOT EXISTS checkpoints (
  thread_id TEXT NOT NULL,
  checkpoint_ns TEXT NOT NULL DEFAULT '',
  checkpoint_id TEXT NOT NULL,
  parent_checkpoint_id TEXT,
  type TEXT,
  checkpoint BLOB,
  metadata BLOB,
  PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE TABLE IF NOT EXISTS writes (
  thread_id TEXT NOT NULL,
  checkpoint_ns TEXT NOT NULL DEFAULT '',
  checkpoint_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  channel TEXT NOT NULL,
  type TEXT,
  value BLOB,
  PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);]]

-- PostgresSaver's migrations v0..v4, each idempotent, and their record rows:
-- whichever of aegis and PostgresSaver.setup() runs first, the other finds
-- the schema at v4 and changes nothing.
local POSTGRES_SCHEMA = [[
CREATE TABLE IF NOT EXISTS checkpoint_migrations (
    v INTEGER PRIMARY KEY
  );
CREATE TABLE IF NOT EXISTS checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    type TEXT,
    checkpoint JSONB NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
  );
CREATE TABLE IF NOT EXISTS checkpoint_blobs (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
  );
CREATE TABLE IF NOT EXISTS checkpoint_writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    blob BYTEA NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
  );
ALTER TABLE checkpoint_blobs ALTER COLUMN blob DROP not null;
INSERT INTO checkpoint_migrations (v) VALUES (0), (1), (2), (3), (4) ON CONFLICT (v) DO NOTHING;]]

--- Migration steps of the `checkpoint` component (for `store.register`).
M.MIGRATIONS = { { sqlite = SQLITE_SCHEMA, postgres = POSTGRES_SCHEMA } }

store.register('checkpoint', M.MIGRATIONS)

-- }======================================================================

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function checkfield(t, key, want, fname, optional)
  local v = t[key]
  if v == nil and optional then return v end
  if type(v) ~= want then
    argerror(1, fname, ("field '%s': %s expected, got %s"):format(key, want, v == nil and 'no value' or type(v)))
  end
  return v
end

local function fail(action, name, msg, code)
  return nil, ("checkpoint: %s '%s': %s"):format(action, name, (tostring(msg):gsub('^store: ', ''))), code
end

-- {======================================================================
-- Lost connections: retried with capped backoff (RELIABILITY.md F6, F7)
-- ======================================================================

--- How writes retry when the connection is lost (code 'conn') or a lock
--- was not had in time ('busy'): once at once (the store reconnects and
--- prepares again), then after `base` seconds, doubling up to `cap`, until
--- `deadline` seconds have passed.
M.RETRY = { base = 0.5, cap = 8, deadline = 30 }

-- nanosleep from aegis.core.http (loading it does not load libcurl)
local function sleep(s)
  require('aegis.core.http').sleep(s)
end

-- Runs db:tx(fn, {lock = thread}) until it succeeds, fails for another
-- reason than a lost connection, or the retry deadline would pass. Every
-- write is an upsert on its natural key, so running it again after an
-- unknown outcome (a connection lost during COMMIT) is safe.
local serializable = setmetatable({}, { __mode = 'k' })

-- SERIALIZABLE: a serialisation failure is retried after a random wait;
-- after ESCALATE_AFTER of them the save runs alone. Every SERIALIZABLE
-- write holds SERIAL_LOCK in shared mode for its transaction (taken at
-- session level before BEGIN, so its snapshot is taken after any writer
-- that ran alone has committed); a save that runs alone takes it
-- exclusively, so no other SERIALIZABLE transaction is concurrent with it
-- and SSI has nothing to cancel it for. This bounds the retries of one
-- save (RELIABILITY.md L3: at most 5) however the predicate locks fall:
-- SSI locks index pages, and keys of different threads share pages, so
-- transactions on different threads conflict too, most while the tables
-- are small.
local SERIAL_RETRIES = 20
local ESCALATE_AFTER = 4
local SERIAL_LOCK = "hashtextextended('aegis.checkpoint.serializable', 0)"
local SERIAL_TAKE = { [false] = 'SELECT pg_advisory_lock_shared(' .. SERIAL_LOCK .. ')',
  [true] = 'SELECT pg_advisory_lock(' .. SERIAL_LOCK .. ')' }
local SERIAL_GIVE = { [false] = 'SELECT pg_advisory_unlock_shared(' .. SERIAL_LOCK .. ')',
  [true] = 'SELECT pg_advisory_unlock(' .. SERIAL_LOCK .. ')' }

local function run_tx(db, fn, thread, alone)
  -- SQLite's BEGIN IMMEDIATE already serialises writers: no lock key
  if not serializable[db] then return db:tx(fn, db.kind ~= 'sqlite' and { lock = thread } or nil) end
  alone = alone and true or false
  local _, m, c = db:exec(SERIAL_TAKE[alone])
  if m then return nil, m, c end
  local r = table.pack(db:tx(function(tx)
    -- index scans only: a sequential scan takes a predicate lock on the
    -- whole table, and every concurrent writer would conflict with it
    -- SELECT 1 takes the transaction's snapshot now: a save mints its id
    -- after it (see save_in), in this round trip
    _, m, c = tx:exec('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SET LOCAL enable_seqscan = off; SELECT 1')
    if m then return nil, m, c end
    return fn(tx)
  end))
  -- a session lock goes with a lost connection; otherwise give it back
  db:exec(SERIAL_GIVE[alone])
  return table.unpack(r, 1, r.n)
end

-- `stmts` in one round trip (store db:batch): BEGIN, the thread's lock,
-- the statements, COMMIT; in SERIALIZABLE mode as run_tx does it (`stmts`
-- then gets the two SETs in front). Returns the batch's results.
local function run_batch(db, stmts, thread)
  if not serializable[db] then return db:batch(stmts, { lock = thread }) end
  local _, m, c = db:exec(SERIAL_TAKE[false])
  if m then return nil, m, c end
  table.insert(stmts, 1, { 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE' })
  table.insert(stmts, 2, { 'SET LOCAL enable_seqscan = off' })
  local r = table.pack(db:batch(stmts))
  db:exec(SERIAL_GIVE[false])  -- a session lock goes with a lost connection
  return table.unpack(r, 1, r.n)
end

local function write_tx(db, fn, thread, fast)
  local t0 = clock.monotonic()
  local delay, attempt, lost_tries, conflicts = M.RETRY.base, 1, 0, 0
  local serial = serializable[db]
  while true do
    local t1 = serial and clock.monotonic()
    -- every function run here returns a value or nil, msg, code; `fast`
    -- (first attempt only) may also return false: go the usual way now
    local r1, r2, r3
    if fast then r1, r2, r3 = fast(db) end
    fast = nil
    if not r1 and r2 == nil then r1, r2, r3 = run_tx(db, fn, thread, conflicts >= ESCALATE_AFTER) end
    if r1 ~= nil then
      if type(r1) == 'table' then r1.attempts = attempt end
      return r1, r2, r3
    end
    local lost = r3 == 'conn'
    local waited = clock.monotonic() - t0
    local function give_up()
      return nil, ('%s (gave up after %d attempts in %.1f s)'):format(r2, attempt, waited), r3 or 'conn'
    end
    if serial and r3 == 'busy' then
      -- a serialisation failure: the other writer has committed, go again
      if conflicts >= SERIAL_RETRIES then return give_up() end
      conflicts = conflicts + 1
      -- Full jitter over a window that starts at the length of the failed
      -- attempt and doubles: the writers that conflicted were running for
      -- about as long, so waiting a random part of that spreads the
      -- retries over the time the others need to finish, and a second
      -- conflict spreads them wider (capped at 1 s).
      local span = math.max(0.002, clock.monotonic() - t1)
      if conflicts < ESCALATE_AFTER then sleep(math.random() * math.min(1, span * 2 ^ conflicts)) end
    elseif lost or r3 == 'busy' then
      -- a lost connection (or a lock not had in time): once at once, then
      -- with capped backoff until the deadline
      lost_tries = lost_tries + 1
      if lost_tries > 1 then
        if waited + delay > M.RETRY.deadline then return give_up() end
        sleep(delay)
        delay = math.min(delay * 2, M.RETRY.cap)
      end
    else
      return r1, r2, r3
    end
    attempt = attempt + 1
  end
end

-- }======================================================================

-- {======================================================================
-- Stores
-- ======================================================================

local migrated = setmetatable({}, { __mode = 'k' })

-- Brings the checkpoint tables forward once per connection.
local function ready(db)
  if migrated[db] then return true end
  local ok, msg, code = db:migrate('checkpoint', M.MIGRATIONS)
  if not ok then return nil, msg, code end
  migrated[db] = true
  return true
end

---@class aegis.checkpoint.OpenOpts: aegis.store.OpenOpts
---@field isolation? 'lock'|'serializable' PostgreSQL: how writes to a thread are serialised (default 'lock')

--- Opens a store for checkpoints: `store.open(url)` with
--- `synchronous = 'group'` on SQLite (group commit: an acknowledged
--- checkpoint survives a power loss, as with FULL, while concurrent writers
--- share flushes), and the checkpoint tables created or brought forward.
--- On PostgreSQL, writes to one thread are serialised by an advisory lock;
--- `isolation = 'serializable'` runs them as SERIALIZABLE transactions
--- instead, retrying a serialisation failure up to 4 times with a growing random wait, then running
--- the save alone (it takes exclusively the lock every SERIALIZABLE save holds shared).
---@param url? string Store URL (default: `store.default_url()`)
---@param opts? aegis.checkpoint.OpenOpts
---@return aegis.store.Db? db
---@return string? err
---@return string? code
function M.open(url, opts)
  if url ~= nil and type(url) ~= 'string' then argerror(1, 'open', 'string expected, got ' .. type(url)) end
  if opts ~= nil and type(opts) ~= 'table' then argerror(2, 'open', 'table expected, got ' .. type(opts)) end
  local o = { synchronous = 'group' }
  for k, v in pairs(opts or {}) do o[k] = v end
  local isolation = o.isolation
  o.isolation = nil
  if isolation ~= nil and isolation ~= 'lock' and isolation ~= 'serializable' then
    argerror(2, 'open', "option 'isolation' must be 'lock' or 'serializable'")
  end
  local db, msg, code = store.open(url, o)
  if not db then return nil, msg, code end
  if isolation == 'serializable' and db.kind == 'postgres' then serializable[db] = true end
  local ok
  ok, msg, code = ready(db)
  if not ok then
    db:close()
    return nil, msg, code
  end
  return db
end

local default_db

-- The db of a call: opts.db, else one opened on the default store for the
-- life of the process.
local function db_of(opts, fname)
  local db = opts and opts.db
  if db ~= nil then
    if type(db) ~= 'userdata' then argerror(1, fname, "field 'db': store expected, got " .. type(db)) end
    local ok, msg, code = ready(db)
    if not ok then return nil, msg, code end
    return db
  end
  if default_db == nil then
    local msg, code
    default_db, msg, code = M.open()
    if not default_db then return nil, msg, code end
  end
  return default_db
end

-- }======================================================================

-- {======================================================================
-- Namespaces and layers
-- ======================================================================

local function check_id(v, what, fname)
  if type(v) ~= 'string' or v == '' then
    argerror(1, fname, ("field '%s': non-empty string expected, got %s"):format(what, type(v)))
  end
  if v:find('[|:]') then
    argerror(1, fname, ("field '%s': '%s' may not contain '|' or ':' (namespace separators)"):format(what, v))
  end
  return v
end

--- Gives the namespace of a layer: plan `""`, module `module:<id>`, file
--- `module:<id>|file:<id>`. Raises on an unknown layer or a missing id.
---@param layer 'plan'|'module'|'file'
---@param module_id? string
---@param file_id? string
---@return string ns
function M.namespace(layer, module_id, file_id)
  if layer == 'plan' then return '' end
  if layer == 'module' then return 'module:' .. check_id(module_id, 'module', 'namespace') end
  if layer == 'file' then
    return 'module:' .. check_id(module_id, 'module', 'namespace') .. '|file:' .. check_id(file_id, 'file', 'namespace')
  end
  argerror(1, 'namespace', ("layer must be 'plan', 'module' or 'file', got %s"):format(tostring(layer)))
end

--- Tells the layer of a namespace and its ids: `'plan'`, `'module', id`,
--- `'file', module_id, file_id`, or nil for a namespace of another shape
--- (a LangGraph subgraph's, say).
---@param ns string
---@return string? layer
---@return string? module_id
---@return string? file_id
function M.layer_of(ns)
  if ns == '' then return 'plan' end
  local m = ns:match('^module:([^|:]+)$')
  if m then return 'module', m end
  local fm, f = ns:match('^module:([^|:]+)|file:([^|:]+)$')
  if fm then return 'file', fm, f end
  return nil
end

-- Namespaces above `ns`, outermost first: "" and "module:m" for a file.
local function ancestors(ns)
  local layer, m = M.layer_of(ns)
  if layer == 'module' then return { '' } end
  if layer == 'file' then return { '', 'module:' .. m } end
  if layer == nil and ns ~= '' then
    -- a LangGraph namespace "a:1|b:2": its prefixes
    local out, acc = { '' }, nil
    for part in ns:gmatch('[^|]+') do
      acc = acc and (acc .. '|' .. part) or part
      if acc ~= ns then out[#out + 1] = acc end
    end
    return out
  end
  return EMPTY
end

-- }======================================================================

-- {======================================================================
-- Rows <-> records
-- ======================================================================

local now_s, now_text  -- the last second formatted, and its text
local function iso_now()
  local t = clock.now()
  local s = math.floor(t)
  if s ~= now_s then now_s, now_text = s, os.date('!%Y-%m-%dT%H:%M:%S', s) end
  return ('%s.%03dZ'):format(now_text, math.floor((t - s) * 1000))
end

local function version_text(v)
  if math.type(v) == 'integer' then return ('%d'):format(v) end
  if math.type(v) == 'float' and v == math.floor(v) and v > -2^53 and v < 2^53 then
    return ('%d'):format(math.tointeger(v))
  end
  return tostring(v)
end

-- Decodes a stored value of a serialisation type; 'bytes' stays a string.
local function load_typed(typ, data, what)
  typ = typ or 'json'
  if typ == 'json' then
    local v, msg = decode(data or '')
    if v == nil and msg then return nil, ('%s: %s'):format(what, msg), 'corrupt' end
    return v
  elseif typ == 'bytes' then
    return data or ''
  end
  return nil, ("%s: unknown serialisation type '%s'"):format(what, tostring(typ)), 'unsupported'
end

-- JSON text of a value; raises on values that are not JSON.
local function dump(v, what)
  local ok, s = pcall(canonical, v)
  if not ok then error(("%s: %s"):format(what, tostring(s):gsub('^json: ', '')), 4) end
  return s
end

local CKPT_COLS = 'thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata'
-- Statements of the hot paths, built once (a statement is cached by its text).
local SEL_CKPT = 'SELECT ' .. CKPT_COLS .. ' FROM checkpoints'
local SEL_LATEST = SEL_CKPT .. ' WHERE thread_id = $1 AND checkpoint_ns = $2 ORDER BY checkpoint_id DESC LIMIT 1'
local SEL_BY_KEY = SEL_CKPT .. ' WHERE thread_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3'
-- The same, with whether the checkpoint has pending writes (a load then
-- skips the query of its writes when it has none, the common case).
local HAS_WRITES = {
  sqlite = ', EXISTS (SELECT 1 FROM writes w WHERE w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns'
    .. ' AND w.checkpoint_id = c.checkpoint_id) AS has_writes FROM checkpoints c',
  postgres = ', EXISTS (SELECT 1 FROM checkpoint_writes w WHERE w.thread_id = c.thread_id'
    .. ' AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id) AS has_writes FROM checkpoints c',
}
local SEL_LATEST_W, SEL_BY_KEY_W = {}, {}
for kind, hw in pairs(HAS_WRITES) do
  local sel = 'SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.type, c.checkpoint,'
    .. ' c.metadata' .. hw
  SEL_LATEST_W[kind] = sel .. ' WHERE c.thread_id = $1 AND c.checkpoint_ns = $2 ORDER BY c.checkpoint_id DESC LIMIT 1'
  SEL_BY_KEY_W[kind] = sel .. ' WHERE c.thread_id = $1 AND c.checkpoint_ns = $2 AND c.checkpoint_id = $3'
end
-- A save's parent: only the columns it needs when the parent's versions and
-- texts are remembered (the checkpoint column holds every value on SQLite).
local SEL_LATEST_HEAD = 'SELECT thread_id, checkpoint_ns, checkpoint_id, type, metadata FROM checkpoints'
  .. ' WHERE thread_id = $1 AND checkpoint_ns = $2 ORDER BY checkpoint_id DESC LIMIT 1'
local INSERT_SQLITE = 'INSERT OR REPLACE INTO checkpoints (' .. CKPT_COLS .. ') VALUES ($1, $2, $3, $4, $5, $6, $7)'
local SEL_WRITES = {
  sqlite = 'SELECT task_id, channel, type, value FROM writes'
    .. ' WHERE thread_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3 ORDER BY task_id, idx',
  postgres = 'SELECT task_id, channel, type, blob AS value FROM checkpoint_writes'
    .. ' WHERE thread_id = $1 AND checkpoint_ns = $2 AND checkpoint_id = $3 ORDER BY task_id, idx',
}

-- Reads the pending writes of one checkpoint, ordered by task and index.
local function read_writes(db, thread, ns, id)
  local rows, msg, code = db:query(SEL_WRITES[db.kind], thread, ns, id)
  if not rows then return nil, msg, code end
  local out = {}
  for i, r in ipairs(rows) do
    local v, m, c = load_typed(r.type, r.value, 'write ' .. r.channel)
    if m then return nil, m, c end
    out[i] = { task_id = r.task_id, channel = r.channel, value = v }
  end
  return out
end

-- Pending sends of a checkpoint before format 4 lived as writes to TASKS
-- on its parent: move them into channel_values, as LangGraph does.
local function migrate_sends(db, rec)
  local rows, msg, code
  if db.kind == 'sqlite' then
    rows, msg, code = db:query('SELECT type, value FROM writes WHERE thread_id = $1 AND checkpoint_ns = $2'
      .. ' AND checkpoint_id = $3 AND channel = $4 ORDER BY task_id, idx', rec.thread, rec.ns, rec.parent, M.TASKS)
  else
    rows, msg, code = db:query('SELECT type, blob AS value FROM checkpoint_writes WHERE thread_id = $1'
      .. ' AND checkpoint_id = $2 AND channel = $3 ORDER BY task_id, idx', rec.thread, rec.parent, M.TASKS)
  end
  if not rows then return nil, msg, code end
  local sends = json.array({})
  for i, r in ipairs(rows) do
    local v, m, c = load_typed(r.type, r.value, 'pending send')
    if m then return nil, m, c end
    sends[i] = v
  end
  local cp = rec.checkpoint
  cp.channel_values[M.TASKS] = sends
  local maxv
  for _, v in pairs(cp.channel_versions) do
    if maxv == nil or (type(v) == type(maxv) and v > maxv) then maxv = v end
  end
  cp.channel_versions[M.TASKS] = maxv or 1
  return true
end

-- Channel values of a PostgreSQL checkpoint: its blobs at its versions,
-- each found by a point lookup on the full primary key. (A plain join lets
-- the planner scan every blob of the thread and hash them: a load then
-- grows with the thread's history, and under SERIALIZABLE the predicate
-- locks on all those rows are promoted to a lock on the whole table, which
-- every concurrent writer then conflicts with. OFFSET 0 keeps the lateral
-- subquery from being flattened into such a join.)
local function read_blobs(db, thread, ns, id)
  local rows, msg, code = db:query([[SELECT bl.channel, bl.type, bl.blob FROM checkpoints cp
  CROSS JOIN LATERAL jsonb_each_text(cp.checkpoint -> 'channel_versions') cv
  CROSS JOIN LATERAL (SELECT b.channel, b.type, b.blob FROM checkpoint_blobs b
    WHERE b.thread_id = cp.thread_id AND b.checkpoint_ns = cp.checkpoint_ns AND b.channel = cv.key
      AND b.version = cv.value OFFSET 0) bl
  WHERE cp.thread_id = $1 AND cp.checkpoint_ns = $2 AND cp.checkpoint_id = $3]], thread, ns, id)
  if not rows then return nil, msg, code end
  return rows
end

-- Builds a record from a checkpoints row (values decoded, writes read).
-- `raw` keeps the per-channel JSON texts for the save path.
local function record(db, row, opts)
  local cp, msg, code = load_typed(row.type, row.checkpoint, 'checkpoint ' .. row.checkpoint_id)
  if msg then return nil, msg, code end
  local meta
  meta, msg, code = load_typed(row.type, row.metadata or '{}', 'metadata of ' .. row.checkpoint_id)
  if msg then return nil, msg, code end
  if type(cp) ~= 'table' then return nil, ('checkpoint %s: not an object'):format(row.checkpoint_id), 'corrupt' end
  cp.channel_versions = cp.channel_versions or {}
  cp.versions_seen = cp.versions_seen or {}
  if db.kind == 'postgres' then
    local values = {}
    if not (opts and opts.state == false) then
      local rows
      rows, msg, code = read_blobs(db, row.thread_id, row.checkpoint_ns, row.checkpoint_id)
      if not rows then return nil, msg, code end
      for _, b in ipairs(rows) do
        if b.type ~= 'empty' then
          local v
          v, msg, code = load_typed(b.type, b.blob, 'channel ' .. b.channel)
          if msg then return nil, msg, code end
          values[b.channel] = v
        end
      end
    end
    cp.channel_values = values
  else
    cp.channel_values = cp.channel_values or {}
  end
  local rec = {
    id = row.checkpoint_id, thread = row.thread_id, ns = row.checkpoint_ns,
    parent = row.parent_checkpoint_id, checkpoint = cp, metadata = meta,
  }
  if type(meta) == 'table' then
    rec.layer, rec.name = meta.layer, meta.name
  end
  if (cp.v or 0) < 4 and rec.parent then
    local ok
    ok, msg, code = migrate_sends(db, rec)
    if not ok then return nil, msg, code end
  end
  rec.state = cp.channel_values
  if not (opts and opts.writes == false) then
    local w
    if row.has_writes == false or row.has_writes == 0 then
      w = {}
    else
      w, msg, code = read_writes(db, rec.thread, rec.ns, rec.id)
      if not w then return nil, msg, code end
    end
    rec.pending_writes = w
  end
  return rec
end

-- }======================================================================

-- {======================================================================
-- Finding checkpoints
-- ======================================================================

local UUID = '^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$'

-- The checkpoints row of a reference (id, name, 'latest'), or nil when none;
-- nil, msg, code on failure (an ambiguous name included).
local function find_row(db, ref, opts)
  local thread, ns = opts.thread, opts.ns
  local rows, msg, code
  local sel = SEL_CKPT
  if ref == 'latest' then
    if thread == nil then return nil, "'latest' needs a thread", 'invalid' end
    return db:first(opts.writes == false and SEL_LATEST or SEL_LATEST_W[db.kind], thread, ns or '')
  elseif ref:match(UUID) then
    if thread and ns then
      return db:first(opts.writes == false and SEL_BY_KEY or SEL_BY_KEY_W[db.kind], thread, ns, ref)
    elseif thread then
      rows, msg, code = db:query(sel .. ' WHERE thread_id = $1 AND checkpoint_id = $2', thread, ref)
    else
      rows, msg, code = db:query(sel .. ' WHERE checkpoint_id = $1', ref)
    end
  else
    local by_name = db.kind == 'sqlite' and "json_extract(CAST(metadata AS TEXT), '$.name') = $1"
      or "metadata ->> 'name' = $1"
    if thread then
      rows, msg, code = db:query(sel .. ' WHERE ' .. by_name .. ' AND thread_id = $2', ref, thread)
    else
      rows, msg, code = db:query(sel .. ' WHERE ' .. by_name, ref)
    end
  end
  if not rows then return nil, msg, code end
  if #rows > 1 then
    local threads = {}
    for i, r in ipairs(rows) do
      threads[i] = r.thread_id .. (r.checkpoint_ns ~= '' and ('/' .. r.checkpoint_ns) or '')
    end
    return nil, ('ambiguous: %d checkpoints match (%s); give a thread'):format(#rows, table.concat(threads, ', ')),
      'invalid'
  end
  return rows[1]
end

---@class aegis.checkpoint.Record
---@field id string Checkpoint id (uuid6)
---@field thread string Thread id
---@field ns string Namespace: "" (plan), "module:<id>", "module:<id>|file:<id>"
---@field parent? string Parent checkpoint id
---@field checkpoint table LangGraph's checkpoint object `{v, id, ts, channel_values, channel_versions, versions_seen}`
---@field metadata table `{source, step, parents, layer?, name?, scaffold_id?, span_key?, run_id?}`
---@field state table The channel values (the same table as checkpoint.channel_values)
---@field pending_writes? {task_id: string, channel: string, value: any}[] Ordered by task and index
---@field layer? string
---@field name? string

--- Loads a checkpoint by id, by name (`metadata.name`) or `'latest'` (the
--- newest of `opts.thread` in `opts.ns`, default the plan namespace).
--- A name or id found in several threads needs `opts.thread`.
---@param ref string Checkpoint id, name or 'latest'
---@param opts? {db?: aegis.store.Db, thread?: string, ns?: string, state?: boolean, writes?: boolean}
---@return aegis.checkpoint.Record? rec nil alone when there is no such checkpoint
---@return string? err `checkpoint: load '<ref>': ...`
---@return string? code 'invalid' (ambiguous, 'latest' without thread), 'corrupt', or the store's code
function M.load(ref, opts)
  if type(ref) ~= 'string' or ref == '' then argerror(1, 'load', 'non-empty string expected, got ' .. type(ref)) end
  if opts ~= nil and type(opts) ~= 'table' then argerror(2, 'load', 'table expected, got ' .. type(opts)) end
  opts = opts or {}
  local db, msg, code = db_of(opts, 'load')
  if not db then return fail('load', ref, msg, code) end
  local row
  row, msg, code = find_row(db, ref, opts)
  if msg then return fail('load', ref, msg, code) end
  if not row then return nil end
  local rec
  rec, msg, code = record(db, row, opts)
  if not rec then return fail('load', ref, msg, code) end
  return rec
end

-- Filter on metadata: SQL and values, with params numbered from `n`.
local function filter_sql(db, filter, n)
  local keys = {}
  for k in pairs(filter) do
    if type(k) ~= 'string' then argerror(1, 'list', 'filter keys must be strings') end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  if #keys == 0 then return {}, {} end
  local where, vals = {}, {}
  if db.kind == 'postgres' then
    where[1] = ('metadata @> CAST($%d AS JSONB)'):format(n)
    vals[1] = dump(filter, 'filter')
    return where, vals
  end
  for _, k in ipairs(keys) do
    local v = filter[k]
    local path = '$."' .. k:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
    local m = "CAST(metadata AS TEXT)"
    if type(v) == 'table' then
      where[#where + 1] = ("json_extract(%s, $%d) = json($%d)"):format(m, n, n + 1)
      vals[#vals + 1] = path
      vals[#vals + 1] = dump(v, 'filter')
      n = n + 2
    elseif v == NULL then
      where[#where + 1] = ("json_type(%s, $%d) = 'null'"):format(m, n)
      vals[#vals + 1] = path
      n = n + 1
    elseif type(v) == 'boolean' then
      where[#where + 1] = ("json_type(%s, $%d) = $%d"):format(m, n, n + 1)
      vals[#vals + 1] = path
      vals[#vals + 1] = v and 'true' or 'false'
      n = n + 2
    elseif type(v) == 'number' then
      where[#where + 1] = ("(json_type(%s, $%d) IN ('integer', 'real') AND json_extract(%s, $%d) = $%d)")
        :format(m, n, m, n, n + 1)
      vals[#vals + 1] = path
      vals[#vals + 1] = v
      n = n + 2
    elseif type(v) == 'string' then
      where[#where + 1] = ("(json_type(%s, $%d) = 'text' AND json_extract(%s, $%d) = $%d)"):format(m, n, m, n, n + 1)
      vals[#vals + 1] = path
      vals[#vals + 1] = v
      n = n + 2
    else
      argerror(1, 'list', ("filter '%s': %s is not JSON"):format(k, type(v)))
    end
  end
  return where, vals
end

---@class aegis.checkpoint.ListOpts
---@field db? aegis.store.Db
---@field thread? string Only this thread (default: all)
---@field ns? string Only this namespace (default: all)
---@field filter? table Metadata keys and the values they must have
---@field before? string Only checkpoints older than this id
---@field limit? integer At most this many
---@field state? boolean false: leave out the channel values (PostgreSQL reads no blobs)
---@field writes? boolean false: leave out the pending writes

--- Lists checkpoints newest first (by id), as LangGraph's `list` does:
--- of one thread or all, of one namespace or all, whose metadata has the
--- keys and values of `filter`, older than `before` (an id), at most
--- `limit`. Each is a full record unless `state = false` or
--- `writes = false` leave out values or pending writes.
---@param opts aegis.checkpoint.ListOpts
---@return aegis.checkpoint.Record[]? recs
---@return string? err
---@return string? code
function M.list(opts)
  if opts ~= nil and type(opts) ~= 'table' then argerror(1, 'list', 'table expected, got ' .. type(opts)) end
  opts = opts or {}
  checkfield(opts, 'thread', 'string', 'list', true)
  checkfield(opts, 'ns', 'string', 'list', true)
  checkfield(opts, 'before', 'string', 'list', true)
  checkfield(opts, 'filter', 'table', 'list', true)
  local limit = opts.limit
  if limit ~= nil and (math.type(limit) ~= 'integer' or limit < 0) then
    argerror(1, 'list', "field 'limit': non-negative integer expected")
  end
  local db, msg, code = db_of(opts, 'list')
  if not db then return fail('list', opts.thread or '*', msg, code) end
  local where, vals = {}, {}
  local function add(cond, v)
    vals[#vals + 1] = v
    where[#where + 1] = cond:format(#vals)
  end
  if opts.thread then add('thread_id = $%d', opts.thread) end
  if opts.ns then add('checkpoint_ns = $%d', opts.ns) end
  if opts.before then add('checkpoint_id < $%d', opts.before) end
  if opts.filter then
    local w, v = filter_sql(db, opts.filter, #vals + 1)
    table.move(w, 1, #w, #where + 1, where)
    table.move(v, 1, #v, #vals + 1, vals)
  end
  local sql = 'SELECT ' .. CKPT_COLS .. ' FROM checkpoints'
  if #where > 0 then sql = sql .. ' WHERE ' .. table.concat(where, ' AND ') end
  sql = sql .. ' ORDER BY checkpoint_id DESC'
  if limit and limit > 0 then sql = sql .. (' LIMIT %d'):format(limit) end
  local rows
  rows, msg, code = db:query(sql, table.unpack(vals, 1, #vals))
  if not rows then return fail('list', opts.thread or '*', msg, code) end
  local out = {}
  for i, row in ipairs(rows) do
    local rec
    rec, msg, code = record(db, row, opts)
    if not rec then return fail('list', opts.thread or '*', msg, code) end
    out[i] = rec
  end
  return out
end

-- }======================================================================

-- {======================================================================
-- Writing
-- ======================================================================

-- Per-checkpoint facts a later save compares against: channel -> version
-- and channel -> canonical JSON. Checkpoints do not change once written,
-- so this is keyed by id; a few recent ones are kept.
local facts, facts_order, FACTS_MAX = {}, {}, 16

local function remember(id, versions, texts, versions_seen, step)
  if facts[id] == nil then
    facts_order[#facts_order + 1] = id
    if #facts_order > FACTS_MAX then facts[table.remove(facts_order, 1)] = nil end
  end
  local f = { versions = versions, texts = texts, versions_seen = versions_seen, step = step }
  facts[id] = f
  return f
end

local BLOBS_PER_STMT = 8
local write_sqls = {}

-- PostgreSQL: the statement that inserts `k` blobs ($1 thread, $2 ns, then
-- channel, version, type, blob for each) and, when `row`, the checkpoint
-- row after them. The texts are fixed per (k, row), so each is prepared once.
local function write_sql(k, row)
  local key = k * 2 + (row and 1 or 0)
  if write_sqls[key] then return write_sqls[key] end
  local vals = {}
  for j = 0, k - 1 do
    local b = 3 + 4 * j
    vals[#vals + 1] = ('($1, $2, $%d, $%d, $%d, $%d)'):format(b, b + 1, b + 2, b + 3)
  end
  local blobs = k > 0 and ('INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)'
    .. ' VALUES ' .. table.concat(vals, ', ') .. ' ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING')
  local sql
  if row then
    local b = 3 + 4 * k
    sql = ('INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint,'
      .. ' metadata) VALUES ($1, $2, $%d, $%d, $%d, $%d) ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)'
      .. ' DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata'):format(b, b + 1, b + 2, b + 3)
    if blobs then sql = 'WITH blobs AS (' .. blobs .. ') ' .. sql end
  else
    sql = blobs
  end
  write_sqls[key] = sql
  return sql
end

-- Channel names as JSON strings, with the ':' after them: the same few
-- names come in every save. Bounded: cleared past 1,024 names.
local quoted_names, quoted_n = {}, 0
function quoted(c)
  local q = quoted_names[c]
  if q then return q end
  if quoted_n >= 1024 then quoted_names, quoted_n = {}, 0 end
  q = canonical(c)
  quoted_names[c], quoted_n = q, quoted_n + 1
  return q
end

-- The checkpoint object without its values, as canonical JSON. (Built by
-- hand in Lua it took 1.7x the encoder's time.)
local function head_json(cp)
  return canonical({ v = cp.v, id = cp.id, ts = cp.ts, channel_versions = cp.channel_versions,
    versions_seen = cp.versions_seen })
end

-- Writes one checkpoint row (and, on PostgreSQL, its changed blobs) inside
-- the caller's transaction. `texts[c]` is channel c's JSON text.
local function put_rows(db, thread, ns, parent, cp, texts, meta_text, new_versions)
  local msg, code, _
  if db.kind == 'sqlite' then
    -- The checkpoint object with its channel values inline, assembled from
    -- the per-channel texts so no value is encoded twice.
    local names = {}
    for c in pairs(texts) do names[#names + 1] = c end
    table.sort(names)
    local parts = {}
    for i, c in ipairs(names) do parts[i] = quoted(c) .. ':' .. texts[c] end
    local rest = head_json(cp)
    local body = '{"channel_values":{' .. table.concat(parts, ',') .. '},' .. rest:sub(2)
    _, msg, code = db:exec(INSERT_SQLITE, thread, ns, cp.id, parent or NULL, 'json', blob(body), blob(meta_text))
    if msg then return nil, msg, code end
    return true
  end
  -- The blobs and the checkpoint row go in one statement (blobs in a
  -- data-modifying WITH) when at most BLOBS_PER_STMT channels changed, in
  -- statements of that many blobs each before it otherwise: one round trip
  -- for a typical save instead of one per changed channel.
  local names = {}
  for c in pairs(new_versions) do names[#names + 1] = c end
  table.sort(names)
  local body = head_json(cp)
  local i = 1
  repeat
    local k = math.min(BLOBS_PER_STMT, #names - i + 1)
    local last = i + k > #names
    local args = { thread, ns }
    for j = i, i + k - 1 do
      local c = names[j]
      local text = texts[c]
      args[#args + 1] = c
      args[#args + 1] = version_text(new_versions[c])
      args[#args + 1] = text and 'json' or 'empty'
      args[#args + 1] = text and blob(text) or NULL
    end
    if last then
      args[#args + 1] = cp.id
      args[#args + 1] = parent or NULL
      args[#args + 1] = body
      args[#args + 1] = meta_text
    end
    _, msg, code = db:exec(write_sql(k, last), table.unpack(args, 1, 2 + 4 * k + (last and 4 or 0)))
    if msg then return nil, msg, code end
    i = i + k
  until last
  return true
end

local function channel_texts(values, what)
  local texts = {}
  for c, v in pairs(values or EMPTY) do
    if type(c) ~= 'string' then error(('%s: channel names must be strings, got %s'):format(what, type(c)), 3) end
    local ok, text = pcall(canonical, v)
    if not ok then
      error(('%s channel %s: %s'):format(what, c, tostring(text):gsub('^json: ', '')), 3)
    end
    texts[c] = text
  end
  return texts
end

--- Stores a LangGraph checkpoint exactly as given, as a saver's `put`
--- does: `config` names the thread, namespace and parent; `new_versions`
--- (channel -> version) says which channels changed, whose values are
--- written as blobs on PostgreSQL (SQLite keeps every value inline).
--- Idempotent: putting the same id again replaces it.
---@param config {db?: aegis.store.Db, thread: string, ns?: string, parent?: string}
---@param cp table `{v, id, ts, channel_values, channel_versions, versions_seen}`
---@param metadata table
---@param new_versions? table<string, integer|string>
---@return {thread: string, ns: string, id: string}? config of the stored checkpoint
---@return string? err
---@return string? code
function M.put(config, cp, metadata, new_versions)
  if type(config) ~= 'table' then argerror(1, 'put', 'table expected, got ' .. type(config)) end
  local thread = checkfield(config, 'thread', 'string', 'put')
  local ns = checkfield(config, 'ns', 'string', 'put', true) or ''
  local parent = checkfield(config, 'parent', 'string', 'put', true)
  if type(cp) ~= 'table' then argerror(2, 'put', 'table expected, got ' .. type(cp)) end
  if type(cp.id) ~= 'string' or cp.id == '' then argerror(2, 'put', "checkpoint needs an 'id'") end
  if type(metadata) ~= 'table' then argerror(3, 'put', 'table expected, got ' .. type(metadata)) end
  if new_versions ~= nil and type(new_versions) ~= 'table' then
    argerror(4, 'put', 'table expected, got ' .. type(new_versions))
  end
  local texts = channel_texts(cp.channel_values, 'checkpoint')
  local meta_text = dump(metadata, 'metadata')
  local db, msg, code = db_of(config, 'put')
  if not db then return fail('put', thread, msg, code) end
  local body = {
    v = cp.v or M.FORMAT_VERSION, id = cp.id, ts = cp.ts or iso_now(),
    channel_versions = cp.channel_versions or {}, versions_seen = cp.versions_seen or {},
  }
  facts[cp.id] = nil  -- a put may replace a checkpoint: forget what was known of it
  local ok
  ok, msg, code = write_tx(db, function(tx)
    return put_rows(tx, thread, ns, parent, body, texts, meta_text, new_versions or {})
  end, thread)
  if not ok then return fail('put', thread, msg, code) end
  return { thread = thread, ns = ns, id = cp.id }
end

--- Stores pending writes of a task against a checkpoint, as a saver's
--- `putWrites` does: write i gets index i-1, or its channel's fixed
--- negative index (`WRITES_IDX`). Writes to special channels only replace
--- earlier ones; others are kept if already there.
---@param config {db?: aegis.store.Db, thread: string, ns?: string, id: string}
---@param writes {[1]: string, [2]: any}[] `{channel, value}` pairs
---@param task_id string
---@return true? ok
---@return string? err
---@return string? code
function M.put_writes(config, writes, task_id)
  if type(config) ~= 'table' then argerror(1, 'put_writes', 'table expected, got ' .. type(config)) end
  local thread = checkfield(config, 'thread', 'string', 'put_writes')
  local ns = checkfield(config, 'ns', 'string', 'put_writes', true) or ''
  local id = checkfield(config, 'id', 'string', 'put_writes')
  if type(writes) ~= 'table' then argerror(2, 'put_writes', 'table expected, got ' .. type(writes)) end
  if type(task_id) ~= 'string' then argerror(3, 'put_writes', 'string expected, got ' .. type(task_id)) end
  local rows, all_special = {}, true
  for i, w in ipairs(writes) do
    if type(w) ~= 'table' or type(w[1]) ~= 'string' then
      argerror(2, 'put_writes', ('write %d: {channel, value} expected'):format(i))
    end
    local special = M.WRITES_IDX[w[1]]
    if not special then all_special = false end
    rows[i] = { idx = special or (i - 1), channel = w[1], text = dump(w[2], 'write ' .. w[1]) }
  end
  local db, msg, code = db_of(config, 'put_writes')
  if not db then return fail('put_writes', id, msg, code) end
  local sql
  if db.kind == 'sqlite' then
    sql = 'INSERT ' .. (all_special and 'OR REPLACE' or 'OR IGNORE') .. ' INTO writes (thread_id, checkpoint_ns,'
      .. ' checkpoint_id, task_id, idx, channel, type, value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)'
  else
    sql = 'INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob)'
      .. ' VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) '
      .. (all_special and 'DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob'
        or 'DO NOTHING')
  end
  -- PostgreSQL: the inserts in one round trip (run_batch) on the first
  -- attempt; the upserts make a retry after an unknown outcome harmless
  local fast = db.kind == 'postgres' and #rows > 0 and #rows <= 30 and function(d)
    local stmts = {}
    for i, r in ipairs(rows) do
      stmts[i] = { sql, thread, ns, id, task_id, r.idx, r.channel, 'json', store.blob(r.text) }
    end
    local res, m, c = run_batch(d, stmts, thread)
    if not res then return nil, m, c end
    return true
  end or nil
  local ok
  ok, msg, code = write_tx(db, function(tx)
    for _, r in ipairs(rows) do
      local _, m, c = tx:exec(sql, thread, ns, id, task_id, r.idx, r.channel, 'json', store.blob(r.text))
      if m then return nil, m, c end
    end
    return true
  end, thread, fast)
  if not ok then return fail('put_writes', id, msg, code) end
  return true
end

-- Versions and texts of a parent, from memory or the store.
local function parent_facts(db, row)
  local f = facts[row.checkpoint_id]
  if f then return f end
  local msg, code
  if row.checkpoint == nil then  -- a head row (SEL_LATEST_HEAD): read the whole row
    row, msg, code = db:first(SEL_BY_KEY, row.thread_id, row.checkpoint_ns, row.checkpoint_id)
    if not row then return nil, msg or 'the parent checkpoint vanished', code or 'notfound' end
  end
  local rec
  rec, msg, code = record(db, row, { writes = false })
  if not rec then return nil, msg, code end
  local texts = channel_texts(rec.checkpoint.channel_values, 'parent')
  local meta = rec.metadata
  local step = type(meta) == 'table' and math.type(meta.step) == 'integer' and meta.step or nil
  return remember(row.checkpoint_id, rec.checkpoint.channel_versions, texts, rec.checkpoint.versions_seen, step)
end

-- Highest integer version of each channel already used in a thread and
-- namespace (PostgreSQL blobs are keyed by it).
local function used_versions(db, thread, ns)
  local rows, msg, code = db:query([[SELECT channel, max(CAST(version AS BIGINT)) AS v FROM checkpoint_blobs
  WHERE thread_id = $1 AND checkpoint_ns = $2 AND version ~ '^[0-9]{1,18}$' GROUP BY channel]], thread, ns)
  if not rows then return nil, msg, code end
  local out = {}
  for _, r in ipairs(rows) do out[r.channel] = math.tointeger(tonumber(r.v)) end
  return out
end

local bump

-- New versions of the channels whose text differs from the parent's (or
-- that were added or removed): into versions and new_versions. Raises on
-- a parent version that is not an integer (run under pcall).
local function mint(texts, ptexts, pver, versions, new_versions, used, ns)
  for c, text in pairs(texts) do
    if ptexts[c] ~= text or pver[c] == nil then
      local nv = bump(pver[c], used and used[c], c, ns)
      versions[c], new_versions[c] = nv, nv
    end
  end
  for c in pairs(pver) do
    if texts[c] == nil and ptexts[c] ~= nil then
      local nv = bump(pver[c], used and used[c], c, ns)
      versions[c], new_versions[c] = nv, nv
    end
  end
end

function bump(v, used, channel, ns)
  local base = v
  if base ~= nil and math.type(base) ~= 'integer' then
    base = math.tointeger(base) or tonumber(base)
    base = base and math.tointeger(base)
    if base == nil then
      error(("channel '%s' in '%s' has a version that is not an integer (%s)"):format(channel, ns, tostring(v)), 0)
    end
  end
  base = base or 0
  if used and used > base then base = used end
  return base + 1
end

-- Metadata keys a save sets itself: the caller's `metadata` cannot override them.
local OWN_META = { source = true, step = true, layer = true, name = true, scaffold_id = true, span_key = true,
  run_id = true, parents = true }

-- A save's metadata (`parents` still to fill): built by one constructor, so
-- the table is sized once.
function new_meta(a, step)
  local meta = { source = a.source, step = step, layer = a.layer, name = a.name, scaffold_id = a.scaffold_id,
    span_key = a.span_key, run_id = a.run_id, branch_of = a.branch_of, parents = false }
  if a.metadata then
    for k, v in pairs(a.metadata) do
      if not OWN_META[k] and (k ~= 'branch_of' or meta.branch_of == nil) then meta[k] = v end
    end
  end
  return meta
end

-- The common part of save and branch, inside the thread's transaction.
local function write_child(db, a, parent_row)
  local thread, ns = a.thread, a.ns
  local pf, msg, code
  if parent_row then
    pf, msg, code = parent_facts(db, parent_row)
    if not pf then return nil, msg, code end
  end
  local pver = pf and pf.versions or EMPTY
  local ptexts = pf and pf.texts or EMPTY
  local texts = a.texts or ptexts
  local versions, new_versions = {}, {}
  for c, v in pairs(pver) do versions[c] = v end
  local ok, err = pcall(mint, texts, ptexts, pver, versions, new_versions, nil, ns)
  if not ok then return nil, err, 'unsupported' end
  if db.kind == 'postgres' and next(new_versions) then
    -- every changed channel goes above the highest version used in the
    -- thread and namespace (LangGraph numbers a channel's versions from the
    -- highest of all channels, so they have gaps: the parent's + 1 being
    -- free does not mean nothing higher is used)
    local used
    used, msg, code = used_versions(db, thread, ns)
    if not used then return nil, msg, code end
    ok, err = pcall(mint, texts, ptexts, pver, versions, new_versions, used, ns)
    if not ok then return nil, err, 'unsupported' end
  end
  local step = -1
  if pf and pf.step then
    step = pf.step
  elseif parent_row then
    local pmeta = decode(parent_row.metadata or '{}')
    if type(pmeta) == 'table' and math.type(pmeta.step) == 'integer' then step = pmeta.step end
  end
  local meta = new_meta(a, step + 1)
  -- metadata.parents: the newest checkpoint of each enclosing namespace
  local parents = {}
  for _, up in ipairs(ancestors(ns)) do
    local r
    r, msg, code = db:first('SELECT checkpoint_id FROM checkpoints WHERE thread_id = $1 AND checkpoint_ns = $2'
      .. ' ORDER BY checkpoint_id DESC LIMIT 1', thread, up)
    if msg then return nil, msg, code end
    if r then parents[up] = r.checkpoint_id end
  end
  for k, v in pairs(a.parents or EMPTY) do parents[k] = v end
  meta.parents = parents
  local cp = {
    v = M.FORMAT_VERSION, id = a.id or uuid.v6(), ts = iso_now(),
    channel_versions = versions, versions_seen = pf and pf.versions_seen or {},
  }
  local meta_text = dump(meta, 'metadata')
  ok, msg, code = put_rows(db, thread, ns, parent_row and parent_row.checkpoint_id, cp, texts, meta_text, new_versions)
  if not ok then return nil, msg, code end
  remember(cp.id, versions, texts, cp.versions_seen, meta.step)
  cp.channel_values = a.state
  return {
    id = cp.id, thread = thread, ns = ns, parent = parent_row and parent_row.checkpoint_id,
    checkpoint = cp, metadata = meta, state = a.state, layer = a.layer, name = a.name,
    attempts = 1,  -- set by write_tx: a slot now, so setting it does not grow the table
  }
end

-- {======================================================================
-- PostgreSQL: a save in one statement
-- ======================================================================

-- The newest checkpoint this process saved in each (thread, namespace) and
-- the highest version it knows used there per channel: a save's predicted
-- parent and versions, checked by the statement that writes it. A few
-- hundred per store are kept; a wrong or missing prediction costs one more
-- statement. db -> {map = {thread .. '\0' .. ns -> {id, used}}, n = #map}.
local heads, HEADS_MAX = setmetatable({}, { __mode = 'k' }), 256

local save_sqls = {}

-- `sql` with each `@name` replaced by $1, $2, ... in order of first
-- appearance, and the names in that order.
local function numbered(sql)
  local names, index = {}, {}
  sql = sql:gsub('@([%w_]+)', function(name)
    if not index[name] then
      names[#names + 1] = name
      index[name] = #names
    end
    return '$' .. index[name]
  end)
  return { sql = sql, names = names }
end

-- The statement of a PostgreSQL save with `k` blobs, a name to check when
-- `named`, the enclosing namespaces' newest checkpoints to look up when
-- `nested`. It writes the blobs and the row only when the newest checkpoint
-- of the namespace is the predicted parent (@parent, NULL: none), no changed
-- channel has a version at or above its new one (@v1, ...), and the name is
-- free; the thread's lock, held to COMMIT, keeps that true.
-- `parents` (@ancestors: JSON array of namespaces) is filled in here. Either
-- way it returns whether it wrote, whether the name is taken, the newest
-- checkpoint before the write and the parents. Each part is left out when it
-- has nothing to do: the statement is planned and run on every save.
local function save_sql(k, named, nested)
  local key = ('%d/%s/%s'):format(k, named, nested)
  if save_sqls[key] then return save_sqls[key] end
  local parts = { [[WITH head AS (SELECT checkpoint_id, type, metadata FROM checkpoints
  WHERE thread_id = @thread AND checkpoint_ns = @ns ORDER BY checkpoint_id DESC LIMIT 1)]] }
  local conds = { '(SELECT checkpoint_id FROM head) IS NOT DISTINCT FROM CAST(@parent AS TEXT)' }
  local taken = 'false'
  if named then
    taken = [[EXISTS (SELECT 1 FROM checkpoints WHERE thread_id = @thread
    AND metadata ->> 'name' = CAST(@name AS TEXT) AND checkpoint_id <> CAST(@id AS TEXT))]]
    conds[#conds + 1] = 'NOT n.taken'
  end
  if k > 0 then
    local vals = {}
    for j = 1, k do vals[j] = ('(@c%d, @v%d, @t%d, CAST(@b%d AS BYTEA))'):format(j, j, j, j) end
    parts[#parts + 1] = 'v (channel, version, type, blob) AS (VALUES ' .. table.concat(vals, ', ') .. ')'
    conds[#conds + 1] = [[NOT EXISTS (SELECT 1 FROM v JOIN checkpoint_blobs b ON b.thread_id = @thread
    AND b.checkpoint_ns = @ns AND b.channel = v.channel
    WHERE CASE WHEN b.version ~ '^[0-9]{1,18}$' THEN CAST(b.version AS BIGINT) END >= CAST(v.version AS BIGINT))]]
  end
  parts[#parts + 1] = ('ok AS (SELECT %s AS ok, n.taken FROM (SELECT %s AS taken) AS n)')
    :format(table.concat(conds, '\n  AND '), taken)
  local parents = "CAST('{}' AS JSONB)"
  if nested then
    parts[#parts + 1] = [[parents AS (SELECT COALESCE(jsonb_object_agg(a.ns, p.checkpoint_id), '{}') AS parents
  FROM jsonb_array_elements_text(CAST(@ancestors AS JSONB)) AS a (ns)
  CROSS JOIN LATERAL (SELECT c.checkpoint_id FROM checkpoints c WHERE c.thread_id = @thread
    AND c.checkpoint_ns = a.ns ORDER BY c.checkpoint_id DESC LIMIT 1) AS p)]]
    parents = '(SELECT parents FROM parents)'
  end
  if k > 0 then
    parts[#parts + 1] = [[blobs AS (INSERT INTO checkpoint_blobs
  (thread_id, checkpoint_ns, channel, version, type, blob)
  SELECT @thread, @ns, v.channel, v.version, v.type, v.blob FROM v
  WHERE (SELECT ok FROM ok)
  ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING)]]
  end
  parts[#parts + 1] = [[row AS (INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
  checkpoint, metadata)
  SELECT @thread, @ns, @id, CAST(@parent AS TEXT), CAST(@body AS JSONB),
    CAST(@meta AS JSONB) || jsonb_build_object('parents', ]] .. parents .. [[)
  WHERE (SELECT ok FROM ok)
  ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
  DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata)]]
  local st = numbered(table.concat(parts, ',\n') .. [[

SELECT ok.ok, ok.taken, h.checkpoint_id, h.type, h.metadata, ]] .. parents .. [[ AS parents
FROM ok LEFT JOIN head AS h ON true]])
  save_sqls[key] = st
  return st
end

-- JSON array of the namespaces above `ns`.
local function ancestors_json(ns)
  local list = ancestors(ns)
  if #list == 0 then return '[]' end
  return canonical(json.array(list))
end

-- The statement and values of one PostgreSQL save attempt with the parent
-- `parent_id` (facts `pf`, nil: none) and the versions `used` in the thread
-- and namespace: st, args, ctx; nil when too many channels changed for one
-- statement; nil, msg, 'unsupported' when a version cannot be minted.
local function pg_attempt(a, parent_id, used, pf, anc)
  local pver = pf and pf.versions or EMPTY
  local ptexts = pf and pf.texts or EMPTY
  local texts = a.texts or ptexts
  local versions, new_versions = {}, {}
  for c, v in pairs(pver) do versions[c] = v end
  local ok, err = pcall(mint, texts, ptexts, pver, versions, new_versions, used, a.ns)
  if not ok then return nil, err, 'unsupported' end
  local names = {}
  for c in pairs(new_versions) do names[#names + 1] = c end
  if #names > 64 then return nil end  -- too many for one statement: the general path
  table.sort(names)
  local meta = new_meta(a, (pf and pf.step or -1) + 1)
  meta.parents = nil  -- filled in by the statement
  local cp = {
    v = M.FORMAT_VERSION, id = a.id, ts = iso_now(),
    channel_versions = versions, versions_seen = pf and pf.versions_seen or {},
  }
  local st = save_sql(#names, a.name ~= nil, anc ~= '[]')
  local vals = {
    thread = a.thread, ns = a.ns, parent = parent_id or NULL, ancestors = anc, id = cp.id, body = head_json(cp),
    meta = dump(meta, 'metadata'), name = a.name,
  }
  for j, c in ipairs(names) do
    local text = texts[c]
    vals['c' .. j], vals['v' .. j] = c, version_text(new_versions[c])
    vals['t' .. j], vals['b' .. j] = text and 'json' or 'empty', text and blob(text) or NULL
  end
  local args = {}
  for j, name in ipairs(st.names) do args[j] = vals[name] end
  return st, args, {
    parent_id = parent_id, used = used, texts = texts, versions = versions, new_versions = new_versions,
    meta = meta, cp = cp,
  }
end

-- The heads this process predicts on `db`, created on first use.
local function heads_of(db)
  local hs = heads[db]
  if not hs then
    hs = { map = {}, n = 0 }
    heads[db] = hs
  end
  return hs
end

-- After a save statement that wrote (`row.ok`): remembers the new head and
-- gives the record.
local function pg_done(db, a, ctx, row)
  local hs, key, cp, meta = heads_of(db), a.thread .. '\0' .. a.ns, ctx.cp, ctx.meta
  meta.parents = decode(row.parents)
  remember(cp.id, ctx.versions, ctx.texts, cp.versions_seen, meta.step)
  local u = {}
  for c, v in pairs(ctx.used) do u[c] = v end
  for c, v in pairs(ctx.new_versions) do if math.type(v) == 'integer' then u[c] = v end end
  if hs.map[key] == nil then
    hs.n = hs.n + 1
    if hs.n > HEADS_MAX then hs.map, hs.n = {}, 1 end
  end
  hs.map[key] = { id = cp.id, used = u }
  cp.channel_values = a.state
  return {
    id = cp.id, thread = a.thread, ns = a.ns, parent = ctx.parent_id,
    checkpoint = cp, metadata = meta, state = a.state, layer = a.layer, name = a.name, attempts = 1,
  }
end

local function name_taken_msg(a)
  return ("a checkpoint named '%s' already exists in thread '%s'"):format(a.name, a.thread)
end

-- The prediction of the parent and the versions used: this process's last
-- save in the thread and namespace, or "none" for one it has not saved in.
local function predicted(db, a)
  local pred = heads_of(db).map[a.thread .. '\0' .. a.ns]
  if pred and facts[pred.id] then return pred.id, pred.used, facts[pred.id] end
  return nil, EMPTY, nil
end

-- A PostgreSQL save whose parent is the newest checkpoint of its namespace:
-- one statement (see save_sql) with the parent and versions predicted;
-- if the prediction was wrong, the statement said what is there, and the
-- save runs again with that.
-- After a wrong prediction: the versions used and the parent the save
-- statement's `row` names as the newest (nil: none) with its facts.
local function learn(db, thread, ns, row)
  local used, msg, code = used_versions(db, thread, ns)
  if not used then return nil, msg, code end
  local parent_id, pf = row.checkpoint_id, nil
  if parent_id then
    pf, msg, code = parent_facts(db, { thread_id = thread, checkpoint_ns = ns, checkpoint_id = parent_id,
      type = row.type, metadata = row.metadata })
    if not pf then return nil, msg, code end
    if pf.step == nil then
      local pmeta = decode(row.metadata or '{}')
      if type(pmeta) == 'table' and math.type(pmeta.step) == 'integer' then pf.step = pmeta.step end
    end
  end
  return used, parent_id, pf
end

-- `hint`: the row of a pipelined save that found its prediction wrong
-- (save_fast), read before this transaction's lock: a better guess than
-- the prediction, checked by the statement like any.
local function save_pg(db, a, hint)
  local thread, ns = a.thread, a.ns
  local parent_id, used, pf
  if hint then
    local m, c
    used, m, c = learn(db, thread, ns, hint)
    if not used then return nil, m, c end
    parent_id, pf = m, c
  else
    parent_id, used, pf = predicted(db, a)
  end
  local anc = ancestors_json(ns)
  for _ = 1, 3 do
    local st, args, ctx = pg_attempt(a, parent_id, used, pf, anc)
    if not st then return nil, args, ctx end
    local row, msg, code = db:first(st.sql, table.unpack(args, 1, #st.names))
    if not row then return nil, msg or 'the save statement returned nothing', code or 'sql' end
    if row.taken then return nil, name_taken_msg(a), 'constraint' end
    if row.ok then return pg_done(db, a, ctx, row) end
    -- the prediction was wrong: what is there
    used, msg, code = learn(db, thread, ns, row)
    if not used then return nil, msg, code end
    parent_id, pf = msg, code
  end
  return nil, 'the newest checkpoint kept changing under the lock', 'busy'
end

-- A PostgreSQL save (parent: the newest, id not given) in ONE round trip
-- when the prediction holds: save_sql's statement pipelined between BEGIN
-- with the thread's lock and COMMIT (store db:batch). The id is minted
-- before the lock: the statement writes only when the newest checkpoint is
-- the predicted parent, which this process saved before minting, so the
-- id sorts after it. Returns the record; false when the statement wrote
-- nothing (a wrong prediction: the empty transaction committed, the caller
-- goes the usual way); nil, msg, code on failure (p.minted is set: a retry
-- finds the save if its COMMIT went through).
local function save_fast(db, p)
  local a = p.args
  a.id = uuid.v6()
  p.minted = a.id
  local parent_id, used, pf = predicted(db, a)
  local st, args, ctx = pg_attempt(a, parent_id, used, pf, ancestors_json(a.ns))
  if not st then
    p.minted = nil
    if args then return nil, args, ctx end
    return false
  end
  args[0], args.n = st.sql, #st.names
  local stmt = table.move(args, 0, #st.names, 1, { n = #st.names })
  local res, msg, code = run_batch(db, { stmt }, p.thread)
  if not res then return nil, msg, code end
  local row = res[#res][1]
  if not row then return nil, 'the save statement returned nothing', 'sql' end
  if row.taken then return nil, name_taken_msg(a), 'constraint' end
  if row.ok then return pg_done(db, a, ctx, row) end
  p.minted, p.hint = nil, row  -- committed nothing; what it found is the next guess
  return false
end

-- }======================================================================

local function existing(db, thread, ns, id)
  return db:first(SEL_BY_KEY, thread, ns, id)
end

local function name_taken(db, thread, name, id)
  local by_name = db.kind == 'sqlite' and "json_extract(CAST(metadata AS TEXT), '$.name') = $2"
    or "metadata ->> 'name' = $2"
  local r, msg, code = db:first('SELECT checkpoint_id FROM checkpoints WHERE thread_id = $1 AND ' .. by_name
    .. ' LIMIT 1', thread, name)
  if msg then return nil, msg, code end
  return r ~= nil and r.checkpoint_id ~= id
end

local function layer_args(a, fname)
  local ns, layer = a.ns, a.layer
  if ns ~= nil and type(ns) ~= 'string' then argerror(1, fname, "field 'ns': string expected, got " .. type(ns)) end
  if layer ~= nil then
    if layer ~= 'plan' and layer ~= 'module' and layer ~= 'file' then
      argerror(1, fname, ("field 'layer': 'plan', 'module' or 'file' expected, got %s"):format(tostring(layer)))
    end
    local want = M.namespace(layer, a.module, a.file)
    if ns ~= nil and ns ~= want then
      argerror(1, fname, ("fields 'ns' ('%s') and 'layer' ('%s') disagree"):format(ns, want))
    end
    return want, layer
  end
  ns = ns or ''
  return ns, M.layer_of(ns)
end

---@class aegis.checkpoint.SaveArgs
---@field db? aegis.store.Db The store (default: the default store, opened once)
---@field thread string Thread (run) id
---@field ns? string Namespace; or give layer (and module, file)
---@field layer? 'plan'|'module'|'file'
---@field module? string Module id (module and file layers)
---@field file? string File id (file layer)
---@field state table Channel name -> JSON value: the whole state
---@field parent? string|false Parent id or name (default: the newest in the namespace; false: none)
---@field name? string Unique in the thread
---@field scaffold_id? string
---@field span_key? string
---@field run_id? string
---@field metadata? table Further metadata keys
---@field id? string The id to use (a retried save passes the same one)

local SAVE_STRINGS = { 'name', 'scaffold_id', 'span_key', 'run_id', 'id' }

-- Checks save's arguments; gives what the transaction needs.
local function prepare_save(a, fname, n)
  if type(a) ~= 'table' then argerror(n, fname, 'table expected, got ' .. type(a)) end
  local thread = checkfield(a, 'thread', 'string', fname)
  local state = checkfield(a, 'state', 'table', fname)
  for _, k in ipairs(SAVE_STRINGS) do checkfield(a, k, 'string', fname, true) end
  checkfield(a, 'metadata', 'table', fname, true)
  if a.parent ~= nil and a.parent ~= false and type(a.parent) ~= 'string' then
    argerror(n, fname, "field 'parent': string or false expected, got " .. type(a.parent))
  end
  if a.name and (a.name == 'latest' or a.name:match(UUID)) then
    argerror(n, fname, ("field 'name': '%s' would be read as an id or 'latest'"):format(a.name))
  end
  local ns, layer = layer_args(a, fname)
  return {
    a = a, thread = thread, ns = ns,
    args = {
      thread = thread, ns = ns, layer = layer, state = state, texts = channel_texts(state, 'state'), source = 'loop',
      name = a.name, scaffold_id = a.scaffold_id, span_key = a.span_key, run_id = a.run_id, metadata = a.metadata,
    },
  }
end

-- One save inside the caller's transaction (which holds the thread's lock).
-- A retried save finds itself if an earlier attempt committed; if not, it
-- takes a fresh id, so ids keep growing along the lineage.
local function save_in(tx, p)
  local a, thread, ns, args = p.a, p.thread, p.ns, p.args
  local tried = a.id or p.minted
  if tried then
    local row, m, c = existing(tx, thread, ns, tried)
    if m then return nil, m, c end
    if row then return record(tx, row, { writes = false }) end
  end
  local prow, m, c
  if a.parent == nil and tx.kind == 'postgres' then
    -- minted after the transaction's snapshot (under the thread's lock, or
    -- SERIALIZABLE's taken by run_tx), so after any parent it can read
    args.id = a.id or uuid.v6()
    p.minted = args.id
    local rec
    rec, m, c = save_pg(tx, args, p.hint)
    p.hint = nil
    if rec or m then return rec, m, c end
  end
  if a.parent then
    prow, m, c = find_row(tx, a.parent, { thread = thread })
    if m then return nil, m, c end
    if not prow then return nil, ("no parent checkpoint '%s' in thread '%s'"):format(a.parent, thread), 'notfound' end
    if prow.checkpoint_ns ~= ns then
      return nil, ("parent '%s' is in namespace '%s', not '%s'"):format(a.parent, prow.checkpoint_ns, ns), 'invalid'
    end
  elseif a.parent == nil then
    prow, m, c = tx:first(SEL_LATEST_HEAD, thread, ns)
    if m then return nil, m, c end
  end
  -- The id is minted after the parent was read, so after the snapshot of
  -- a SERIALIZABLE transaction: a checkpoint committed before that read
  -- (which may be our parent) was minted earlier, and ours sorts after it.
  -- Minted before, a slow writer could take an id below its own parent's
  -- and 'latest' (the highest id) would no longer be the chain's head.
  args.id = a.id or uuid.v6()
  p.minted = args.id
  if a.name then
    local taken
    taken, m, c = name_taken(tx, thread, a.name, args.id)
    if taken == nil then return nil, m, c end
    if taken then
      return nil, ("a checkpoint named '%s' already exists in thread '%s'"):format(a.name, thread), 'constraint'
    end
  end
  return write_child(tx, args, prow)
end

--- Saves a state as a new checkpoint. `state` is the whole set of channel
--- values; a channel whose value differs from the parent's gets a new
--- version (on PostgreSQL above every version already used in the thread
--- and namespace), the others keep theirs. The parent is `parent` (id or
--- name), else the newest checkpoint of the thread in that namespace
--- (`parent = false`: none). `metadata` gets `source = 'loop'`, `step`
--- (the parent's + 1), `parents` (the newest checkpoint of each enclosing
--- layer), `layer` and the optional keys. Passing the `id` of a checkpoint
--- already stored returns it unchanged, so a save retried after a lost
--- connection is not written twice.
---@param a aegis.checkpoint.SaveArgs
---@return aegis.checkpoint.Record? rec The stored checkpoint (no pending writes)
---@return string? err `checkpoint: save '<thread>': ...`
---@return string? code 'notfound' (no such parent), 'constraint' (name taken), or the store's code
function M.save(a)
  local p = prepare_save(a, 'save', 1)
  local db, msg, code = db_of(a, 'save')
  if not db then return fail('save', p.thread, msg, code) end
  local rec
  -- PostgreSQL, parent the newest, no id given: one round trip when this
  -- process predicts the parent right (save_fast)
  local fast = db.kind == 'postgres' and a.parent == nil and a.id == nil
    and function(d) return save_fast(d, p) end or nil
  rec, msg, code = write_tx(db, function(tx) return save_in(tx, p) end, p.thread, fast)
  if not rec then return fail('save', p.thread, msg, code) end
  return rec
end

--- Saves several checkpoints in one transaction, so they share one commit
--- (one sync of the WAL): all are stored or none. Each item
--- is what `save` takes (its `db` is ignored); items of one thread chain in
--- order. The threads' locks are taken in sorted order.
---@param list aegis.checkpoint.SaveArgs[]
---@param opts? {db?: aegis.store.Db}
---@return aegis.checkpoint.Record[]? recs In the order given
---@return string? err `checkpoint: save '<thread>': ...` for the first that failed
---@return string? code
function M.save_all(list, opts)
  if type(list) ~= 'table' then argerror(1, 'save_all', 'table expected, got ' .. type(list)) end
  if opts ~= nil and type(opts) ~= 'table' then argerror(2, 'save_all', 'table expected, got ' .. type(opts)) end
  local ps, threads, seen = {}, {}, {}
  for i, a in ipairs(list) do
    ps[i] = prepare_save(a, 'save_all', 1)
    if not seen[ps[i].thread] then
      seen[ps[i].thread] = true
      threads[#threads + 1] = ps[i].thread
    end
  end
  if #ps == 0 then return json.array({}) end
  table.sort(threads)
  local db, msg, code = db_of(opts, 'save_all')
  if not db then return fail('save', threads[1], msg, code) end
  local failed
  local recs
  recs, msg, code = write_tx(db, function(tx)
    if tx.kind == 'postgres' and not serializable[tx] then
      for i = 2, #threads do  -- the first is the transaction's own lock
        local _, m, c = tx:exec('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', threads[i])
        if m then return nil, m, c end
      end
    end
    local out = json.array({})
    for i, p in ipairs(ps) do
      local r, m, c = save_in(tx, p)
      if not r then
        failed = p.thread
        return nil, m, c
      end
      out[i] = r
    end
    return out
  end, threads[1])
  if not recs then return fail('save', failed or threads[1], msg, code) end
  return recs
end

---@class aegis.checkpoint.BranchArgs
---@field db? aegis.store.Db
---@field from string The checkpoint forked: id or name
---@field name string The branch's name, unique in the thread
---@field state? table The branch's whole state (default: from's)
---@field thread? string Needed when `from` names checkpoints in several threads
---@field metadata? table Further metadata keys
---@field id? string The id to use

--- Forks a checkpoint without replay: a new checkpoint in the same thread
--- and namespace whose parent is `from` (id or name), named `name`, with
--- `from`'s values (nothing is copied on PostgreSQL: the new checkpoint
--- points at the same blobs) or with `state` in their place, where only
--- the channels that differ get new versions, minted above every version
--- used in the thread and namespace so sibling branches never share a blob.
---@param a aegis.checkpoint.BranchArgs
---@return aegis.checkpoint.Record? rec
---@return string? err `checkpoint: branch '<from>': ...`
---@return string? code 'notfound', 'constraint' (name taken), 'invalid' (ambiguous), or the store's code
function M.branch(a)
  if type(a) ~= 'table' then argerror(1, 'branch', 'table expected, got ' .. type(a)) end
  local from = checkfield(a, 'from', 'string', 'branch')
  local name = checkfield(a, 'name', 'string', 'branch')
  checkfield(a, 'state', 'table', 'branch', true)
  checkfield(a, 'thread', 'string', 'branch', true)
  checkfield(a, 'metadata', 'table', 'branch', true)
  checkfield(a, 'id', 'string', 'branch', true)
  if name == '' or name == 'latest' or name:match(UUID) then
    argerror(1, 'branch', ("field 'name': '%s' would be read as an id or 'latest'"):format(name))
  end
  local texts = a.state and channel_texts(a.state, 'state')
  local db, msg, code = db_of(a, 'branch')
  if not db then return fail('branch', from, msg, code) end
  -- find the thread first (outside the lock: a checkpoint never moves)
  local prow
  prow, msg, code = find_row(db, from, { thread = a.thread })
  if msg then return fail('branch', from, msg, code) end
  if not prow then return fail('branch', from, 'no such checkpoint', 'notfound') end
  local thread, ns = prow.thread_id, prow.checkpoint_ns
  local pmeta = decode(prow.metadata or '{}') or {}
  local rec, minted
  rec, msg, code = write_tx(db, function(tx)
    local tried = a.id or minted
    if tried then
      local row, m, c = existing(tx, thread, ns, tried)
      if m then return nil, m, c end
      if row then return record(tx, row, { writes = false }) end
    end
    local taken, m, c = name_taken(tx, thread, name, a.id)
    if taken == nil then return nil, m, c end
    if taken then
      return nil, ("a checkpoint named '%s' already exists in thread '%s'"):format(name, thread), 'constraint'
    end
    local id = a.id or uuid.v6()  -- after the first read: see save_in
    minted = id
    local state = a.state
    if not state then
      local pf
      pf, m, c = parent_facts(tx, prow)
      if not pf then return nil, m, c end
      texts = pf.texts
      state = {}
      for ch, t in pairs(texts) do state[ch] = decode(t) end
    end
    return write_child(tx, {
      thread = thread, ns = ns, layer = M.layer_of(ns), state = state, texts = texts, source = 'fork', name = name,
      scaffold_id = type(pmeta) == 'table' and pmeta.scaffold_id or nil,
      run_id = type(pmeta) == 'table' and pmeta.run_id or nil,
      metadata = a.metadata, id = id, branch_of = prow.checkpoint_id,
      parents = type(pmeta) == 'table' and type(pmeta.parents) == 'table' and pmeta.parents or nil,
    }, prow)
  end, thread)
  if not rec then return fail('branch', from, msg, code) end
  return rec
end

--- Deletes every checkpoint, blob and pending write of a thread.
---@param thread string
---@param opts? {db?: aegis.store.Db}
---@return true? ok
---@return string? err
---@return string? code
function M.delete_thread(thread, opts)
  if type(thread) ~= 'string' then argerror(1, 'delete_thread', 'string expected, got ' .. type(thread)) end
  local db, msg, code = db_of(opts, 'delete_thread')
  if not db then return fail('delete', thread, msg, code) end
  facts, facts_order = {}, {}  -- ids may be put again with other contents
  heads = setmetatable({}, { __mode = 'k' })
  local tables = db.kind == 'sqlite' and { 'checkpoints', 'writes' }
    or { 'checkpoint_blobs', 'checkpoints', 'checkpoint_writes' }
  local ok
  ok, msg, code = write_tx(db, function(tx)
    for _, t in ipairs(tables) do
      local _, m, c = tx:exec('DELETE FROM ' .. t .. ' WHERE thread_id = $1', thread)
      if m then return nil, m, c end
    end
    return true
  end, thread)
  if not ok then return fail('delete', thread, msg, code) end
  return true
end

-- }======================================================================

-- {======================================================================
-- Reading the history
-- ======================================================================

---@class aegis.checkpoint.Node
---@field id string
---@field ns string
---@field parent? string
---@field name? string
---@field layer? string
---@field source? string
---@field step? integer
---@field children aegis.checkpoint.Node[] Oldest first; more than one is a branch point

--- Gives the lineage of a thread as a tree: every checkpoint (all
--- namespaces) with its children, oldest first. Roots are checkpoints
--- without a parent (one per namespace, unless history was forked from
--- nothing).
---@param thread string
---@param opts? {db?: aegis.store.Db}
---@return aegis.checkpoint.Node[]? roots
---@return string? err
---@return string? code
function M.log(thread, opts)
  if type(thread) ~= 'string' then argerror(1, 'log', 'string expected, got ' .. type(thread)) end
  local db, msg, code = db_of(opts, 'log')
  if not db then return fail('log', thread, msg, code) end
  local rows
  rows, msg, code = db:query('SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, metadata'
    .. ' FROM checkpoints WHERE thread_id = $1 ORDER BY checkpoint_id', thread)
  if not rows then return fail('log', thread, msg, code) end
  local nodes, roots = {}, json.array({})
  for _, r in ipairs(rows) do
    local meta = load_typed(r.type, r.metadata or '{}', 'metadata') or {}
    if type(meta) ~= 'table' then meta = {} end
    nodes[r.checkpoint_ns .. '\0' .. r.checkpoint_id] = {
      id = r.checkpoint_id, ns = r.checkpoint_ns, parent = r.parent_checkpoint_id, name = meta.name,
      layer = meta.layer, source = meta.source, step = math.type(meta.step) == 'integer' and meta.step or nil,
      children = json.array({}),
    }
  end
  for _, r in ipairs(rows) do
    local n = nodes[r.checkpoint_ns .. '\0' .. r.checkpoint_id]
    local p = n.parent and nodes[n.ns .. '\0' .. n.parent]
    if p then p.children[#p.children + 1] = n else roots[#roots + 1] = n end
  end
  return roots
end

--- Tells which channels differ between two checkpoints (ids or names):
--- those only in `b` (added), only in `a` (removed), and in both with
--- different values (changed), each sorted.
---@param a string
---@param b string
---@param opts? {db?: aegis.store.Db, thread?: string}
---@return {added: string[], removed: string[], changed: string[], same: string[]}? diff
---@return string? err
---@return string? code 'notfound' when either is missing
function M.diff(a, b, opts)
  if type(a) ~= 'string' then argerror(1, 'diff', 'string expected, got ' .. type(a)) end
  if type(b) ~= 'string' then argerror(2, 'diff', 'string expected, got ' .. type(b)) end
  opts = opts or {}
  local o = { db = opts.db, thread = opts.thread, writes = false }
  local ra, msg, code = M.load(a, o)
  if not ra then return nil, msg or ("checkpoint: diff '%s': no such checkpoint"):format(a), code or 'notfound' end
  local rb
  rb, msg, code = M.load(b, o)
  if not rb then return nil, msg or ("checkpoint: diff '%s': no such checkpoint"):format(b), code or 'notfound' end
  local out = { added = json.array({}), removed = json.array({}), changed = json.array({}), same = json.array({}) }
  for c, v in pairs(rb.state) do
    local va = ra.state[c]
    if va == nil then out.added[#out.added + 1] = c
    elseif canonical(va) ~= canonical(v) then out.changed[#out.changed + 1] = c
    else out.same[#out.same + 1] = c end
  end
  for c in pairs(ra.state) do
    if rb.state[c] == nil then out.removed[#out.removed + 1] = c end
  end
  for _, l in pairs(out) do table.sort(l) end
  return out
end

-- }======================================================================

-- Schemas of the records (aegis-run schema export).
do
  local s = require('aegis.schema')
  local Metadata = s.object({
    source = s.string():describe("'loop', 'fork', 'input' or 'update'"),
    step = s.integer():describe("the parent's step + 1 (-1 for LangGraph's input checkpoint)"),
    parents = s.record(s.string(), s.string()):describe('namespace -> newest checkpoint id of each enclosing layer'),
    layer = s.enum({ 'plan', 'module', 'file' }):optional(),
    name = s.string():optional(),
    scaffold_id = s.string():optional(),
    span_key = s.string():optional(),
    run_id = s.string():optional(),
    branch_of = s.string():optional():describe('the checkpoint a branch was forked from'),
  }, { strict = false, name = 'checkpoint_metadata' })
  local Checkpoint = s.object({
    v = s.integer(),
    id = s.string(),
    ts = s.string(),
    channel_values = s.record(s.string(), s.any()),
    channel_versions = s.record(s.string(), s.union({ s.integer(), s.string() })),
    versions_seen = s.record(s.string(), s.record(s.string(), s.union({ s.integer(), s.string() }))),
  }, { name = 'checkpoint', description = "LangGraph's checkpoint object (format 4)" })
  M.schemas = { metadata = Metadata, checkpoint = Checkpoint }
  s.register('checkpoint_metadata', Metadata)
  s.register('checkpoint', Checkpoint)
end

return M
