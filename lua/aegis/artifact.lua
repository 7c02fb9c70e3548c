--- Artifacts: produced files and blobs, stored content-addressed by
--- SHA-256 in the store, deduplicated, verified on every read, and linked
--- to the spans, checkpoints, threads and tool traces they belong to.
---
--- ```lua
--- local artifact = require('aegis.artifact')
--- local h = assert(artifact.put(src, { db = db, path = 'src/parser.ts', checkpoint = ckpt_id,
---   span = span_key, scaffold_id = scaffold, blocks = { b1, b2 } }))
--- local bytes = assert(artifact.get(h, db))     -- nil, msg, 'corrupt' if the stored bytes changed
--- ```
---
--- Every function takes a store (`db`, an `aegis.store` handle); without one
--- it opens the default store (`store.open()`) for the call. Tables are
--- created on first use (`store.register('artifact', ...)`). See docs/traces.md.
local hash = require('aegis.hash')
local json = require('aegis.json')
local s = require('aegis.schema')
local store = require('aegis.store')

local M = {}

--- Migration steps of the `artifact` component (tables `artifacts` and
--- `artifact_links`).
M.STEPS = {
  store.ddl([[
CREATE TABLE artifacts (
  hash TEXT PRIMARY KEY,
  size BIGINT NOT NULL,
  content {blob} NOT NULL,
  media_type TEXT,
  created_at TEXT NOT NULL
);
CREATE TABLE artifact_links (
  id {serial_pk},
  hash TEXT NOT NULL REFERENCES artifacts (hash),
  role TEXT NOT NULL,
  span TEXT,
  checkpoint TEXT,
  thread TEXT,
  path TEXT,
  scaffold_id TEXT,
  blocks TEXT,
  trace TEXT,
  created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX artifact_links_natural ON artifact_links (hash, role, COALESCE(span, ''),
  COALESCE(checkpoint, ''), COALESCE(thread, ''), COALESCE(path, ''), COALESCE(scaffold_id, ''),
  COALESCE(trace, ''));
CREATE INDEX artifact_links_checkpoint ON artifact_links (checkpoint);
CREATE INDEX artifact_links_thread ON artifact_links (thread);
CREATE INDEX artifact_links_span ON artifact_links (span);
]]),
}
store.register('artifact', M.STEPS)

local Hash = s.string({ pattern = '^%x+$', min = 64, max = 64, description = 'SHA-256, 64 lowercase hex digits' })

--- The data models of this module, for `aegis-run schema export`.
---@type table<string, aegis.schema.Schema>
M.schemas = {
  artifact = s.register('artifact', s.object({
    hash = Hash,
    size = s.integer({ min = 0 }),
    media_type = s.string():optional(),
    created_at = s.string({ format = 'date-time' }),
  }, { name = 'artifact', description = 'A stored artifact (its bytes are read with artifact.get)' })),
  artifact_link = s.register('artifact_link', s.object({
    hash = Hash,
    role = s.enum({ 'output', 'input' }),
    span = s.string():optional(),
    checkpoint = s.string():optional(),
    thread = s.string():optional(),
    path = s.string():optional(),
    scaffold_id = s.string():optional(),
    blocks = s.array(s.string()):optional():describe('Hashes of the prompt blocks that produced it, in order'),
    trace = s.string():optional():describe('Id of the tool trace that produced or read it'),
    created_at = s.string({ format = 'date-time' }),
  }, { name = 'artifact_link', description = 'Where an artifact came from or went to' })),
}

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function checkhash(h, n, fname)
  if type(h) ~= 'string' or #h ~= 64 or h:find('[^0-9a-f]') then
    local got = type(h) == 'string' and ("'" .. h:sub(1, 70) .. "'") or type(h)
    argerror(n, fname, 'SHA-256 hex expected, got ' .. got)
  end
end

local function checkdb(db, n, fname)
  if db ~= nil and (type(db) ~= 'userdata' and type(db) ~= 'table' or db.kind == nil) then
    argerror(n, fname, 'db must be an aegis.store handle')
  end
end

--- The current time as an ISO 8601 UTC string with milliseconds.
---@return string
function M._now()
  local t = require('aegis.clock').now()
  local sec = math.floor(t)
  return os.date('!%Y-%m-%dT%H:%M:%S', sec) .. ('.%03dZ'):format(math.floor((t - sec) * 1000))
end

local ready = setmetatable({}, { __mode = 'k' })

--- Runs `fn(db)` on `db` (or on the default store, opened and closed
--- around it) once `components` are migrated. Shared with aegis.trace.
---@param db? aegis.store.Db
---@param components string[]
---@param fn fun(db: aegis.store.Db): ...
---@return any ...
function M._with(db, components, fn)
  local own
  if db == nil then
    local d, msg, code = store.open()
    if not d then return nil, msg, code end
    db, own = d, d
  end
  ready[db] = ready[db] or {}
  for _, c in ipairs(components) do
    if not ready[db][c] then
      local steps
      for _, r in ipairs(store.registered()) do
        if r.component == c then steps = r.steps end
      end
      local v, msg, code = db:migrate(c, steps)
      if not v then
        if own then own:close() end
        return nil, msg, code
      end
      ready[db][c] = true
    end
  end
  local res = table.pack(pcall(fn, db))
  if own then own:close() end
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

local LINK_FIELDS = { 'span', 'checkpoint', 'thread', 'path', 'scaffold_id', 'trace' }

-- Checks the fields of a link (from `link` or `put`) and returns them as
-- SQL values, blocks as JSON.
local function link_values(o, n, fname)
  local role = o.role or 'output'
  if role ~= 'output' and role ~= 'input' then
    argerror(n, fname, ("role must be 'output' or 'input', got '%s'"):format(tostring(role)))
  end
  for _, k in ipairs(LINK_FIELDS) do
    if o[k] ~= nil and (type(o[k]) ~= 'string' or o[k] == '') then
      argerror(n, fname, k .. ' must be a non-empty string')
    end
  end
  local blocks = store.null
  if o.blocks ~= nil then
    if type(o.blocks) ~= 'table' then argerror(n, fname, 'blocks must be a list of block hashes') end
    for i, b in ipairs(o.blocks) do
      if type(b) ~= 'string' then argerror(n, fname, ('blocks[%d] must be a string'):format(i)) end
    end
    blocks = json.encode(json.array(o.blocks))
  end
  local v = { role }
  for _, k in ipairs(LINK_FIELDS) do
    if o[k] == nil then v[#v + 1] = store.null else v[#v + 1] = o[k] end
  end
  v[#v + 1] = blocks
  return v
end

local INSERT_LINK = [[
INSERT INTO artifact_links (hash, role, span, checkpoint, thread, path, scaffold_id, trace, blocks, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING]]

local function insert_link(db, h, v)
  local exists, msg, code = db:first('SELECT 1 AS x FROM artifacts WHERE hash = $1', h)
  if msg then return nil, msg, code end
  if not exists then
    return nil, ("artifact: link '%s': no such artifact"):format(h), 'not_found'
  end
  local _
  _, msg, code = db:exec(INSERT_LINK, h, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], M._now())
  if msg then return nil, msg, code end
  return true
end

--- Options of `artifact.put`: where the bytes are stored, what they are,
--- and (optionally) a link recorded with them.
---@class aegis.artifact.PutOpts
---@field db? aegis.store.Db Store (default: the default store, opened for the call)
---@field media_type? string MIME type, kept with the first copy stored
---@field role? 'output'|'input' Role of the link (default 'output')
---@field path? string File path the bytes were produced at
---@field span? string Span key
---@field checkpoint? string Checkpoint id
---@field thread? string Thread id
---@field scaffold_id? string Scaffold that produced it
---@field blocks? string[] Hashes of the prompt blocks that produced it
---@field trace? string Id of the tool trace that produced it

--- Stores bytes under their SHA-256. Storing the same bytes again adds no
--- copy; if the stored copy was damaged, it is repaired. When `opts` names a
--- path, span, checkpoint, thread or trace, a link is recorded too (in the
--- same transaction).
---@param bytes string
---@param opts? aegis.artifact.PutOpts
---@return string? hash 64 lowercase hex digits
---@return string|boolean|nil new_or_err true when these bytes were not stored before; else the message
---@return string? code store codes ('io', 'busy', 'conn', ...)
function M.put(bytes, opts)
  if type(bytes) ~= 'string' then argerror(1, 'put', 'string expected, got ' .. type(bytes)) end
  opts = opts or {}
  if type(opts) ~= 'table' then argerror(2, 'put', 'table expected, got ' .. type(opts)) end
  checkdb(opts.db, 2, 'put')
  if opts.media_type ~= nil and type(opts.media_type) ~= 'string' then
    argerror(2, 'put', 'media_type must be a string')
  end
  if opts.blocks ~= nil and type(opts.blocks) ~= 'table' then
    argerror(2, 'put', 'blocks must be a list of block hashes')
  end
  local linked = false
  for _, k in ipairs(LINK_FIELDS) do
    if opts[k] ~= nil then linked = true end
  end
  local lv = linked and link_values(opts, 2, 'put') or nil
  local h = hash.sha256(bytes)
  return M._with(opts.db, { 'artifact' }, function(db)
    return db:tx(function(tx)
      local n, msg, code = tx:exec(
        'INSERT INTO artifacts (hash, size, content, media_type, created_at) VALUES ($1, $2, $3, $4, $5) '
          .. 'ON CONFLICT (hash) DO NOTHING',
        h, #bytes, store.blob(bytes), opts.media_type or store.null, M._now())
      if not n then return nil, msg, code end
      if n == 0 then
        -- Already there: repair a damaged copy (compared in the database).
        local _, m, c = tx:exec('UPDATE artifacts SET content = $2, size = $3 WHERE hash = $1 '
          .. 'AND (size <> $3 OR content <> $2)', h, store.blob(bytes), #bytes)
        if m then return nil, m, c end
      end
      if lv then
        local ok, m, c = insert_link(tx, h, lv)
        if not ok then return nil, m, c end
      end
      return h, n > 0
    end)
  end)
end

-- Verifies a stored row: nil, msg, 'corrupt' when its bytes are not the ones
-- its hash names.
local function verified(h, row)
  local content = row.content or ''
  if #content ~= row.size or hash.sha256(content) ~= h then
    return nil, ("artifact: get '%s': stored bytes do not match their hash (%d bytes stored, %d recorded)")
      :format(h, #content, row.size), 'corrupt'
  end
  return content
end

--- Reads an artifact's bytes, checking them against their hash: damaged
--- bytes are never returned (`nil, msg, 'corrupt'`; `put` of the right
--- bytes repairs them).
---@param h string SHA-256 hex
---@param db? aegis.store.Db
---@return string? bytes nil without a message when there is no such artifact
---@return string? err
---@return string? code 'corrupt', or a store code
function M.get(h, db)
  checkhash(h, 1, 'get')
  checkdb(db, 2, 'get')
  return M._with(db, { 'artifact' }, function(d)
    local row, msg, code = d:first('SELECT size, content FROM artifacts WHERE hash = $1', h)
    if msg then return nil, msg, code end
    if not row then return nil end
    return verified(h, row)
  end)
end

--- Reads an artifact's record (hash, size, media type, creation time)
--- without its bytes.
---@param h string SHA-256 hex
---@param db? aegis.store.Db
---@return {hash: string, size: integer, media_type?: string, created_at: string}? info nil when absent
---@return string? err
---@return string? code
function M.info(h, db)
  checkhash(h, 1, 'info')
  checkdb(db, 2, 'info')
  return M._with(db, { 'artifact' }, function(d)
    local row, msg, code = d:first('SELECT hash, size, media_type, created_at FROM artifacts WHERE hash = $1', h)
    if msg then return nil, msg, code end
    return row
  end)
end

--- Options of `artifact.link`.
---@class aegis.artifact.LinkOpts
---@field hash string The artifact
---@field role? 'output'|'input' Default 'output'
---@field db? aegis.store.Db
---@field span? string
---@field checkpoint? string
---@field thread? string
---@field path? string
---@field scaffold_id? string
---@field blocks? string[] Prompt block hashes, in order
---@field trace? string Tool trace id

--- Links a stored artifact to a span, checkpoint, thread, path or tool
--- trace. Linking the same thing twice records it once.
---@param opts aegis.artifact.LinkOpts
---@return true? ok
---@return string? err `artifact: link '<hash>': no such artifact` (code 'not_found')
---@return string? code
function M.link(opts)
  if type(opts) ~= 'table' then argerror(1, 'link', 'table expected, got ' .. type(opts)) end
  checkhash(opts.hash, 1, 'link')
  checkdb(opts.db, 1, 'link')
  local lv = link_values(opts, 1, 'link')
  return M._with(opts.db, { 'artifact' }, function(db)
    return insert_link(db, opts.hash, lv)
  end)
end

local function decode_link(r)
  r.id = nil
  if r.blocks then r.blocks = json.decode(r.blocks) end
  return r
end

local LINK_COLS = 'id, hash, role, span, checkpoint, thread, path, scaffold_id, blocks, trace, created_at'

--- The links of an artifact, oldest first.
---@param h string SHA-256 hex
---@param db? aegis.store.Db
---@return table[]? links `artifact_link` records
---@return string? err
---@return string? code
function M.links(h, db)
  checkhash(h, 1, 'links')
  checkdb(db, 2, 'links')
  return M._with(db, { 'artifact' }, function(d)
    local rows, msg, code = d:query('SELECT ' .. LINK_COLS .. ' FROM artifact_links WHERE hash = $1 ORDER BY id', h)
    if not rows then return nil, msg, code end
    for _, r in ipairs(rows) do decode_link(r) end
    return json.array(rows)
  end)
end

--- The links that name a checkpoint, thread, span or trace (all given
--- filters must match), oldest first, each with the artifact's `size` and
--- `media_type`.
---@param opts {db?: aegis.store.Db, checkpoint?: string, thread?: string, span?: string, trace?: string}
---@return table[]? links
---@return string? err
---@return string? code
function M.linked(opts)
  if type(opts) ~= 'table' then argerror(1, 'linked', 'table expected, got ' .. type(opts)) end
  checkdb(opts.db, 1, 'linked')
  local where, args = {}, {}
  for _, k in ipairs({ 'checkpoint', 'thread', 'span', 'trace' }) do
    if opts[k] ~= nil then
      if type(opts[k]) ~= 'string' then argerror(1, 'linked', k .. ' must be a string') end
      args[#args + 1] = opts[k]
      where[#where + 1] = ('l.%s = $%d'):format(k, #args)
    end
  end
  if #where == 0 then argerror(1, 'linked', 'give checkpoint, thread, span or trace') end
  return M._with(opts.db, { 'artifact' }, function(d)
    local rows, msg, code = d:query('SELECT l.id, l.hash, l.role, l.span, l.checkpoint, l.thread, l.path, '
      .. 'l.scaffold_id, l.blocks, l.trace, l.created_at, a.size, a.media_type '
      .. 'FROM artifact_links l JOIN artifacts a ON a.hash = l.hash WHERE '
      .. table.concat(where, ' AND ') .. ' ORDER BY l.id', table.unpack(args))
    if not rows then return nil, msg, code end
    for _, r in ipairs(rows) do decode_link(r) end
    return json.array(rows)
  end)
end

return M
