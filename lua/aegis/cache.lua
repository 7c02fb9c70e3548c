--- The prompt cache: never pay twice for the same answer.
---
--- ```lua
--- local cache = require('aegis.cache')
--- local c <close> = assert(cache.open())             -- config.cache.url, else the project store
--- local res, err = c:call({ provider = 'openai', model = 'gpt-5.4',
---   blocks = { { kind = 'task', stability = 'volatile', content = 'Write add.ts' } } })
--- print(res.cache, res.text)                          -- 'miss' the first time, 'hit' after
--- ```
---
--- A request key is the SHA-256 of the canonical request (RFC 8785):
--- provider, endpoint, model, system, blocks, messages, every parameter
--- (unknown ones too) over the adapter's documented `defaults`, adapter
--- options, `stream`, `sample_index` and `key_version`. Entries live in the
--- store (SQLite or PostgreSQL) in the `cache_*` tables; the response hash
--- is checked on every read. See docs/cache.md.
local clock = require('aegis.clock')
local core = require('aegis.core.cache')
local hash = require('aegis.hash')
local json = require('aegis.json')
local store = require('aegis.store')

local M = {}

--- Bumped when the way keys are built changes: every old entry then misses.
M.KEY_VERSION = 1

-- {====================================================== tables

--- The cache's tables (component `cache`). Times are integer milliseconds
--- since 1970 (UTC); `bytes` is the size of `request` + `response`.
M.MIGRATIONS = {
  store.ddl([[
CREATE TABLE cache_entries (
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  endpoint TEXT,
  bytes BIGINT NOT NULL,
  input_tokens BIGINT,
  output_tokens BIGINT,
  cost DOUBLE PRECISION,
  scaffold_id TEXT,
  prefix_hash TEXT,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT NOT NULL,
  hits BIGINT NOT NULL DEFAULT 0,
  response_hash TEXT NOT NULL,
  request TEXT,
  response {blob} NOT NULL,
  PRIMARY KEY (namespace, key));
CREATE INDEX cache_entries_lru ON cache_entries (last_used_at, bytes);
CREATE INDEX cache_entries_created ON cache_entries (created_at);
CREATE INDEX cache_entries_scaffold ON cache_entries (scaffold_id);
CREATE TABLE cache_leases (
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  holder TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (namespace, key));
CREATE TABLE cache_events (
  id {serial_pk},
  at BIGINT NOT NULL,
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  outcome TEXT NOT NULL,
  scaffold_id TEXT,
  provider TEXT,
  model TEXT,
  prefix_hash TEXT,
  block_hashes TEXT,
  input_tokens BIGINT,
  cached_input BIGINT,
  output_tokens BIGINT,
  cost DOUBLE PRECISION,
  saved_cost DOUBLE PRECISION,
  n BIGINT NOT NULL DEFAULT 1);
CREATE INDEX cache_events_at ON cache_events (at);
CREATE INDEX cache_events_scaffold ON cache_events (scaffold_id);
CREATE TABLE cache_quarantine (
  id {serial_pk},
  at BIGINT NOT NULL,
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  reason TEXT NOT NULL,
  response {blob},
  response_hash TEXT);
CREATE TABLE cache_counters (
  namespace TEXT NOT NULL,
  name TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (namespace, name))]]),
}

store.register('cache', M.MIGRATIONS)

-- }======================================================

-- {====================================================== configuration

local cfg_declared = false

--- Declares the `cache` section of aegis.config.lua: `cache = {url =,
--- namespace =, ttl =, max_entries =, max_bytes =, check =}`. Called when
--- this module loads.
function M.declare_config()
  if cfg_declared then return end
  cfg_declared = true
  local config = require('aegis.config')
  local s = require('aegis.schema')
  config.declare('cache', s.object({
    url = s.string({ min = 1 }):optional()
      :describe('Store URL of the cache (default: the project store); a local SQLite file is typical'),
    namespace = s.string({ min = 1 }):optional():describe("Namespace of entries (default 'default')"),
    ttl = s.union({ s.number({ min = 0 }), s.string({ pattern = '^%d+[smhd]?$' }) }):optional()
      :describe("Entry lifetime: seconds, or '30m', '12h', '7d' (default: none)"),
    max_entries = s.integer({ min = 1 }):optional():describe('Most entries kept (LRU eviction beyond)'),
    max_bytes = s.integer({ min = 1 }):optional():describe('Most bytes of requests + responses kept (LRU beyond)'),
    check = s.boolean():optional():describe('Run quick_check on open, refusing a damaged SQLite file (default true)'),
  }):default({}):describe('The prompt cache (docs/cache.md)'))
end

local function cache_config()
  local ok, cfg = pcall(function() return require('aegis.config').get() end)
  if not ok then error(cfg, 0) end
  return cfg.cache or {}
end

-- }======================================================

-- {====================================================== helpers

local function argerr(fname, n, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

local function now_ms()
  return math.floor(clock.now() * 1000)
end

local UNITS = { s = 1, m = 60, h = 3600, d = 86400 }

-- Seconds from a number or '30m'-style text; nil when not one.
local function seconds(v)
  if type(v) == 'number' then return v >= 0 and v or nil end
  if type(v) ~= 'string' then return nil end
  local n, u = v:match('^(%d+)([smhd]?)$')
  if not n then return nil end
  return tonumber(n) * UNITS[u == '' and 's' or u]
end

local function warn_default(msg)
  io.stderr:write('aegis-run: warning: cache: ', msg, '\n')
end

--- The hash an entry's response is checked against: SHA-256 (hex) of
--- `namespace .. "\0" .. key .. "\0" .. response` (the stored bytes). The
--- key is in it so that a row read for one key can only verify as that
--- key's answer: a damaged index that leads a lookup to another entry's
--- row (SQLite then reads the key columns from the index, the rest from
--- the row) fails the check instead of returning the other answer.
---@param namespace string
---@param key string 64 hex digits
---@param response string The stored response bytes
---@return string hex
function M.response_hash(namespace, key, response)
  if type(namespace) ~= 'string' or type(key) ~= 'string' or type(response) ~= 'string' then
    error("bad argument to 'response_hash' (namespace, key and response must be strings)", 2)
  end
  return hash.sha256(namespace .. '\0' .. key .. '\0' .. response)
end
local response_hash = M.response_hash

-- true when a stored row's response verifies (any column of a damaged row
-- may come back with another type: that row does not verify)
local function verifies(ns, key, resp, h)
  return type(ns) == 'string' and type(key) == 'string' and type(resp) == 'string' and type(h) == 'string'
    and response_hash(ns, key, resp) == h
end

local function is_key(k)
  return type(k) == 'string' and #k == 64 and not k:find('[^0-9a-f]')
end

local function shallow(t)
  local o = {}
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

-- Integer from a stored number (PostgreSQL DOUBLE PRECISION reads as a float).
local function int(v)
  if v == nil then return nil end
  return math.tointeger(v) or math.floor(v + 0.5)
end

-- }======================================================

-- {====================================================== keys

-- What cache.key needs from the adapter, per provider, model, stream,
-- options and base URL: the endpoint, the merged options and the
-- adapter's defaults. The endpoint an adapter picks depends on those, not
-- on the prompt or the parameters (the built-in adapters route on options
-- only), so one `provider.build` per signature suffices; a new signature
-- builds again.
local memo_by_sig = {}
local memo_count = 0

-- The validation `provider.call` would do, for the fields the key reads:
-- check_head for all but the blocks' contents, which check_request adds.
-- (The hit path checks the blocks in C as it hashes them, and runs
-- check_request only when C declines: so misuse raises the same way.)
local function check_head(o, fname)
  if type(o.provider) ~= 'string' or o.provider == '' then argerr(fname, 1, 'provider must be a non-empty string') end
  if type(o.model) ~= 'string' or o.model == '' then argerr(fname, 1, 'model must be a non-empty string') end
  if o.blocks ~= nil and type(o.blocks) ~= 'table' then argerr(fname, 1, 'blocks must be a list') end
  if o.system ~= nil and type(o.system) ~= 'string' then argerr(fname, 1, 'system must be a string') end
  if o.messages ~= nil and type(o.messages) ~= 'table' then argerr(fname, 1, 'messages must be a list') end
  if o.params ~= nil and type(o.params) ~= 'table' then argerr(fname, 1, 'params must be a table') end
  if o.options ~= nil and type(o.options) ~= 'table' then argerr(fname, 1, 'options must be a table') end
  local si = o.sample_index
  if si ~= nil and (math.type(si) ~= 'integer' or si < 0) then
    argerr(fname, 1, 'sample_index must be a non-negative integer')
  end
end

local function check_request(o, fname)
  check_head(o, fname)
  local seen_volatile = false
  for i, b in ipairs(o.blocks or {}) do
    if type(b) ~= 'table' or type(b.content) ~= 'string' then
      argerr(fname, 1, ('blocks[%d].content must be a string'):format(i))
    end
    if b.stability == 'volatile' then
      seen_volatile = true
    elseif b.stability ~= 'stable' then
      argerr(fname, 1, ("blocks[%d].stability must be 'stable' or 'volatile'"):format(i))
    elseif seen_volatile then
      argerr(fname, 1, ('blocks[%d] is stable after a volatile block (stable blocks come first)'):format(i))
    end
  end
end

-- Canonical JSON of a short string, remembered (kinds, roles, models).
local qmemo, qcount = {}, 0
local function q(v)
  local r = qmemo[v]
  if r then return r end
  r = json.canonical(v)
  if #v <= 128 then
    if qcount >= 1024 then qmemo, qcount = {}, 0 end
    qmemo[v], qcount = r, qcount + 1
  end
  return r
end

-- The common case (no options, no aegis_path) is looked up through nested
-- tables of short strings, without making a signature string.
local plain_memo = {}

local function plain_slot(o, create)
  local base = o.base_url or ''
  local bp = plain_memo[o.provider]
  if not bp then
    if not create then return nil end
    bp = {}
    plain_memo[o.provider] = bp
  end
  local bm = bp[base]
  if not bm then
    if not create then return nil end
    bm = {}
    bp[base] = bm
  end
  local pair = bm[o.model]
  if not pair and create then
    pair = {}
    bm[o.model] = pair
  end
  return pair
end

local function endpoint_info(o, fname)
  local plain = o.options == nil and o.aegis_path == nil
  if plain then
    local pair = plain_slot(o, false)
    local info = pair and pair[o.stream and 2 or 1]
    if info then return info end
  end
  local sig = ('%s\1%s\1%s\1%s\1%s'):format(o.provider, o.model, o.stream and 't' or 'f', o.base_url or '',
    o.aegis_path or '')
  if o.options ~= nil then sig = sig .. '\1' .. json.canonical(o.options) end
  local info = memo_by_sig[sig]
  if info then
    if plain then plain_slot(o, true)[o.stream and 2 or 1] = info end
    return info
  end
  local provider = require('aegis.provider')
  local req, err, adapter, resolved = provider._build({
    provider = o.provider, model = o.model, system = o.system, blocks = o.blocks, messages = o.messages,
    params = o.params, stream = o.stream, options = o.options, base_url = o.base_url, aegis_path = o.aegis_path,
    getenv = o.getenv,
  }, fname)
  if not req then return nil, err end
  local url, base = req.url, resolved.base_url
  local endpoint
  if base and url:sub(1, #base) == base then
    endpoint = url:sub(#base + 1)
    if endpoint:sub(1, 1) ~= '/' then endpoint = '/' .. endpoint end
  else
    endpoint = url:match('^https?://[^/]*(/[^?#]*)') or '/'
  end
  local defaults = type(adapter.defaults) == 'table' and shallow(adapter.defaults) or {}
  local options = next(resolved.options or {}) and resolved.options or nil
  info = { provider = adapter.name, endpoint = endpoint, options = options, defaults = defaults,
    -- the fixed parts of the canonical text, already encoded
    qhead = '"endpoint":' .. json.canonical(endpoint) .. ',"key_version":' .. tostring(M.KEY_VERSION),
    qmiddle = ',"model":' .. json.canonical(o.model) .. (options and (',"options":' .. json.canonical(options)) or ''),
    qdefaults = next(defaults) ~= nil and (',"params":' .. json.canonical(defaults)) or nil,
    qtail = ',"provider":' .. json.canonical(adapter.name) .. ',"sample_index":' }
  if memo_count >= 256 then memo_by_sig, memo_count, plain_memo = {}, 0, {} end
  memo_by_sig[sig] = info
  memo_count = memo_count + 1
  if plain then plain_slot(o, true)[o.stream and 2 or 1] = info end
  return info
end

--- Options of `cache.key`: those of `provider.call` (provider, model,
--- system, blocks, messages, params, stream, options, base_url) plus
--- `sample_index`. Callbacks, transports, retry and timeout settings and
--- the provider-cache hint `cache` do not change the answer and are not
--- part of the key.
---@class aegis.cache.KeyOpts: aegis.provider.CallOpts
---@field sample_index? integer Which sample of this request (default 0): repeats and n > 1 are separate entries

-- A block or message with its `content` replaced by `content_sha256`.
local function by_hash(t)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  if type(t.content) == 'string' then
    o.content, o.content_sha256 = nil, hash.sha256(t.content)
  end
  return o
end

-- The canonical request table of `o` (see M.key).
local function canonical_request(o, info)
  local params = shallow(info.defaults)
  for k, v in pairs(o.params or {}) do params[k] = v end
  local blocks, messages
  if o.blocks and #o.blocks > 0 then
    blocks = {}
    for i, b in ipairs(o.blocks) do blocks[i] = by_hash(b) end
  end
  if o.messages and #o.messages > 0 then
    messages = {}
    for i, m in ipairs(o.messages) do messages[i] = by_hash(m) end
  end
  local options = info.options
  return {
    key_version = M.KEY_VERSION,
    provider = info.provider,
    endpoint = info.endpoint,
    model = o.model,
    system_sha256 = o.system and hash.sha256(o.system) or nil,
    blocks = blocks,
    messages = messages,
    params = next(params) and params or nil,
    options = options,
    stream = o.stream and true or false,
    sample_index = o.sample_index or 0,
  }
end

local sha256 = require('aegis.core.hash').sha256

-- Blocks and messages with only these fields take the short way below.
local BLOCK_FIELDS = { kind = 'string', stability = 'string', content = 'string', breakpoint = 'boolean' }
local MESSAGE_FIELDS = { role = 'string', content = 'string' }

local function usual(t, fields)
  if type(t.content) ~= 'string' then return false end
  for k, v in pairs(t) do
    if fields[k] ~= type(v) then return false end
  end
  return true
end

-- The canonical text of canonical_request(o, info), built from its parts
-- (the key order of RFC 8785 written out: the fields are ASCII) instead of
-- encoding a fresh table: the same bytes (spec/unit/cache_key_spec.lua
-- checks it against json.canonical), in a fraction of the time, because a
-- cache hit pays for it.
local function canonical_text(o, info)
  local out, n = {}, 0
  local blocks = o.blocks
  if blocks and #blocks > 0 then
    for i, b in ipairs(blocks) do
      local piece
      if usual(b, BLOCK_FIELDS) then
        local kind, bp = b.kind, b.breakpoint
        piece = '{' .. (bp == nil and '' or bp and '"breakpoint":true,' or '"breakpoint":false,')
          .. '"content_sha256":"' .. sha256(b.content) .. '"'
          .. (kind and (',"kind":' .. q(kind)) or '')
          .. (b.stability and (',"stability":' .. q(b.stability)) or '') .. '}'
      else
        piece = json.canonical(by_hash(b))
      end
      n = n + 1
      out[n] = (i == 1 and '{"blocks":[' or ',') .. piece
    end
    n = n + 1
    out[n] = '],' .. info.qhead
  else
    n = n + 1
    out[n] = '{' .. info.qhead
  end
  local messages = o.messages
  if messages and #messages > 0 then
    for i, m in ipairs(messages) do
      local piece
      if m.role ~= nil and usual(m, MESSAGE_FIELDS) then
        piece = '{"content_sha256":"' .. sha256(m.content) .. '","role":' .. q(m.role) .. '}'
      else
        piece = json.canonical(by_hash(m))
      end
      n = n + 1
      out[n] = (i == 1 and ',"messages":[' or ',') .. piece
    end
    n = n + 1
    out[n] = ']'
  end
  n = n + 1
  out[n] = info.qmiddle
  local params = o.params
  if params and next(params) ~= nil then
    local merged = shallow(info.defaults)
    for k, v in pairs(params) do merged[k] = v end
    n = n + 1
    out[n] = ',"params":' .. json.canonical(merged)
  elseif info.qdefaults then
    n = n + 1
    out[n] = info.qdefaults
  end
  local si = o.sample_index or 0
  n = n + 1
  out[n] = info.qtail .. (si == 0 and '0' or tostring(si)) .. (o.stream and ',"stream":true' or ',"stream":false')
    .. (o.system ~= nil and (',"system_sha256":"' .. sha256(o.system) .. '"}') or '}')
  return table.concat(out, '', 1, n)
end

-- The key of `o` without making its text: aegis.core.cache.key builds and
-- hashes the same text in C for the usual shapes (nil for others).
local function key_of(o, info, fname, want_text)
  local params = o.params
  local ptext
  if params and next(params) ~= nil then
    ptext = core.params(info.defaults, params)
    if not ptext then
      local merged = shallow(info.defaults)
      for k, v in pairs(params) do merged[k] = v end
      ptext = ',"params":' .. json.canonical(merged)
    end
  else
    ptext = info.qdefaults
  end
  local k, text = core.key(o.blocks, o.messages, o.system, info.qhead, info.qmiddle, ptext, info.qtail,
    o.sample_index or 0, o.stream, want_text)
  if k then return k, text end
  check_request(o, fname)  -- raises on misuse; an unusual shape goes on in Lua
  local canon = canonical_text(o, info)
  return sha256(canon), canon
end

--- Builds the key of a request: the SHA-256 (hex) of its canonical form
--- (RFC 8785) `{key_version, provider, endpoint, model, system_sha256,
--- blocks, messages, params, options, stream, sample_index}`, where
--- `params` are the caller's over the adapter's `defaults` (an omitted
--- temperature is the provider's default, so omitting it and giving the
--- default are one key), unknown parameters included; `endpoint` is the
--- path the adapter sends to (from `provider.build`, below the base URL);
--- prompt texts enter by their SHA-256 (`system_sha256`, and
--- `content_sha256` in each block and message, every other field of theirs
--- as given), as blocks are stored by hash; empty `blocks`, `messages`,
--- `params` and `options` are left out. Misuse raises as `provider.call`
--- does; a provider that cannot be loaded returns nil, err.
---@param opts aegis.cache.KeyOpts
---@return string? key 64 hex digits
---@return string|aegis.Error canon The canonical request text the key hashes, or the error
function M.key(opts)
  if type(opts) ~= 'table' then argerr('key', 1, 'table expected, got ' .. type(opts)) end
  check_head(opts, 'key')
  local info, err = endpoint_info(opts, 'key')
  if not info then return nil, err end
  return key_of(opts, info, 'key', true)
end

-- For the specs: the canonical request as a table, as text built the
-- short way, and the key the C path makes (nil for shapes it leaves to Lua).
function M._canonical(opts)
  local info = assert(endpoint_info(opts, 'key'))
  local params = opts.params
  local ptext = info.qdefaults
  if params and next(params) ~= nil then
    local merged = shallow(info.defaults)
    for k, v in pairs(params) do merged[k] = v end
    ptext = ',"params":' .. json.canonical(merged)
  end
  return canonical_request(opts, info), canonical_text(opts, info),
    core.key(opts.blocks, opts.messages, opts.system, info.qhead, info.qmiddle, ptext, info.qtail,
      opts.sample_index or 0, opts.stream)
end

-- }======================================================

-- {====================================================== handle

---@class aegis.cache.Cache
---@field db aegis.store.Db The store the entries are in
---@field namespace string
---@field limits {ttl?: number, max_entries?: integer, max_bytes?: integer}
local Cache = {}
Cache.__index = Cache
Cache.__name = 'aegis.cache.Cache'
M.Cache = Cache

-- The process's identity for leases: host, boot, pid (so a lease of a
-- dead process on this host is taken over at once), and a random part.
local holder_prefix
local function holder_id()
  if not holder_prefix then
    local function read(p)
      local f = io.open(p, 'rb')
      if not f then return nil end
      local s = f:read('l')
      f:close()
      return s
    end
    local stat = read('/proc/self/stat')
    local pid = stat and stat:match('^(%d+)') or '0'
    local host = read('/proc/sys/kernel/hostname') or 'unknown'
    local boot = read('/proc/sys/kernel/random/boot_id') or 'unknown'
    holder_prefix = ('%s|%s|%s'):format(host, boot, pid)
  end
  return holder_prefix .. '|' .. require('aegis.uuid').v4()
end

-- true when `holder` is a process of this host (same boot) that has exited
local function holder_dead(holder)
  local host, boot, pid = tostring(holder):match('^([^|]*)|([^|]*)|(%d+)|')
  local mine_host, mine_boot = holder_prefix:match('^([^|]*)|([^|]*)|')
  if not pid or host ~= mine_host or boot ~= mine_boot or boot == 'unknown' then return false end
  local f = io.open('/proc/' .. pid .. '/stat', 'rb')
  if not f then return true end
  f:close()
  return false
end

local option_types = {
  namespace = 'string', limits = 'table', store = 'userdata', warn = 'function',
  flush_every = 'number', flush_interval = 'number', gc_every = 'number', lease = 'number', check = 'boolean',
  wait = 'number', events = 'boolean', busy_timeout = 'number',
}

---@class aegis.cache.Limits
---@field ttl? number|string Seconds an entry lives ('30m', '12h', '7d' also), from its creation
---@field max_entries? integer Most entries kept (all namespaces); least recently used go first
---@field max_bytes? integer Most bytes kept, least recently used going first: the file's size (pages in use) for a
--- cache alone in its SQLite file; else the entries' bytes (requests + responses)

---@class aegis.cache.OpenOpts
---@field namespace? string Namespace of this handle's entries (default: config, else 'default')
---@field limits? aegis.cache.Limits Default: the config's `cache` section
---@field store? aegis.store.Db Use this open store (not closed by `close`) instead of a URL
---@field warn? fun(msg: string) Where warnings go (default: stderr, `aegis-run: warning: cache: ...`)
---@field flush_every? integer Hit counters and events are written every this many operations (default 1024)
---@field flush_interval? number ... or when this many seconds have passed (default 1)
---@field gc_every? integer Limits are checked every this many puts (default 64)
---@field lease? number Seconds a single-flight lease lasts (SQLite; default 600, provider.call's total timeout)
---@field wait? number Most seconds to wait for another process's answer (default: the lease)
---@field check? boolean Run `PRAGMA quick_check` on open and refuse a damaged SQLite file (code 'corrupt');
--- default: the config's `cache.check`, else true (RELIABILITY.md S5; ~0.4 ms of CPU per MB of file)
---@field events? boolean Write `cache_events` rows (default true)
---@field busy_timeout? number SQLite busy timeout in seconds (default 10)

--- Opens the cache in a store: `url`, else `config.cache.url`, else the
--- project store (`store.default_url()`). SQLite is opened with
--- `synchronous=NORMAL` (the cache is re-derivable) and, unless `check =
--- false`, checked with `PRAGMA quick_check` first: a damaged file is
--- refused (code 'corrupt') and left where it is. The tables are migrated
--- on open.
---@param url? string
---@param opts? aegis.cache.OpenOpts
---@return aegis.cache.Cache? cache
---@return string? err `cache: open '<url>': <detail>`
---@return string? code The store's code ('io', 'busy', 'conn', 'corrupt', 'unsupported', ...)
function M.open(url, opts)
  if url ~= nil and type(url) ~= 'string' then argerr('open', 1, 'string expected, got ' .. type(url)) end
  if opts ~= nil and type(opts) ~= 'table' then argerr('open', 2, 'table expected, got ' .. type(opts)) end
  opts = opts or {}
  for k, v in pairs(opts) do
    local want = option_types[k]
    if not want then argerr('open', 2, ("unknown option '%s'"):format(tostring(k))) end
    if type(v) ~= want then argerr('open', 2, ("option '%s': %s expected, got %s"):format(k, want, type(v))) end
  end
  local cfg = cache_config()
  local limits = {}
  local lim = opts.limits or cfg
  for _, k in ipairs({ 'ttl', 'max_entries', 'max_bytes' }) do
    local v = lim[k]
    if v ~= nil then
      if k == 'ttl' then
        v = seconds(v)
        if not v then argerr('open', 2, "limits.ttl must be seconds or a duration such as '30m', '12h', '7d'") end
      elseif math.type(v) ~= 'integer' or v < 1 then
        argerr('open', 2, ('limits.%s must be a positive integer'):format(k))
      end
      limits[k] = v
    end
  end
  local namespace = opts.namespace or cfg.namespace or 'default'
  if namespace == '' then argerr('open', 2, 'namespace must not be empty') end

  local db, owned = opts.store, false
  if db == nil then
    url = url or cfg.url
    local msg, code
    db, msg, code = store.open(url, { synchronous = 'normal', busy_timeout = opts.busy_timeout })
    if not db then
      return nil, 'cache: ' .. tostring(msg):gsub('^store: ', ''), code
    end
    owned = true
  end
  local function fail(msg, code)
    if owned then db:close() end
    return nil, ("cache: open '%s': %s"):format(db.url, tostring(msg):gsub('^store: ', '')), code
  end
  local path = db.kind == 'sqlite' and db.url:match('^sqlite:(.+)$')
  if path == ':memory:' then path = nil end
  if path then
    local fresh = db:first('SELECT count(*) AS n FROM sqlite_master')
    if fresh and fresh.n == 0 then
      -- a new file: auto_vacuum=INCREMENTAL before the first table, so that
      -- rotation can give space back (best effort: a failure only costs that)
      core.prepare(path, math.floor((opts.busy_timeout or 10) * 1000))
    end
  end
  local check = opts.check
  if check == nil then check = cfg.check ~= false end
  if check and db.kind == 'sqlite' then
    -- a file from elsewhere (a restored CI cache): look before using it
    local rows, qmsg, qcode = db:query('PRAGMA quick_check')
    if not rows then return fail(qmsg, qcode) end
    local first = rows[1] and select(2, next(rows[1]))
    if #rows ~= 1 or first ~= 'ok' then
      return fail('quick_check: ' .. tostring(first), 'corrupt')
    end
  end
  if db.kind == 'sqlite' then
    -- plain SQL triggers run even with trusted_schema=OFF: a file that
    -- carries one on our tables (or a view in their place) is not ours
    local bad, bmsg, bcode = db:first([[SELECT type, name, tbl_name FROM sqlite_master
  WHERE type IN ('trigger', 'view') AND (tbl_name LIKE 'cache\_%' ESCAPE '\' OR tbl_name = 'aegis_migrations')
  LIMIT 1]])
    if bmsg then return fail(bmsg, bcode) end
    if bad then
      return fail(("%s '%s' on %s (refused: the cache's tables carry none)"):format(bad.type, bad.name, bad.tbl_name),
        'corrupt')
    end
  end
  local ok, msg, code = db:migrate('cache', M.MIGRATIONS)
  if not ok then return fail(msg, code) end
  -- the C hit path reads SQLite files through a connection of its own;
  -- the batched statistics go through another that waits at most 50 ms
  local fast, sdb
  if path then
    fast = core.open(path, math.floor((opts.busy_timeout or 10) * 1000))
    sdb = store.open(db.url, { synchronous = 'normal', busy_timeout = 0.05 })
  end
  local holder = holder_id()
  local self = setmetatable({
    db = db, owned = owned, namespace = namespace, limits = limits,
    warn = opts.warn or warn_default,
    flush_every = opts.flush_every or 1024, flush_interval = opts.flush_interval or 1,
    gc_every = opts.gc_every or 64, lease_seconds = opts.lease or 600,
    wait_seconds = opts.wait or opts.lease or 600, events = opts.events ~= false,
    -- in memory until the next flush (never one write per hit)
    pending = { touches = {}, events = {}, counters = {}, ops = 0, at = clock.monotonic() },
    puts = 0, closed = false, holder = holder, fast = fast, sdb = sdb, memo = { n = 0, bytes = 0, by = {} },
  }, Cache)
  return self
end

local function checkopen(self, fname, level)
  level = level or 3
  if getmetatable(self) ~= Cache then
    error(("bad argument #1 to '%s' (aegis.cache.Cache expected, got %s)"):format(fname, type(self)), level)
  end
  if self.closed then error('attempt to use a closed cache', level) end
end

-- }======================================================

-- {====================================================== batched writes

local function count(self, name, n, namespace)
  local c = self.pending.counters
  local ns = namespace or self.namespace
  local per = c[ns]
  if not per then per = {}; c[ns] = per end
  per[name] = (per[name] or 0) + (n or 1)
end

-- Writes the hit counters, last-used times, events and counters gathered
-- since the last flush, in one short transaction. Failing, it warns and
-- drops them: they are statistics, not data.
local MAX_PENDING_EVENTS = 100000

-- Puts back what a flush could not write (another process held the write
-- lock): it goes out with the next flush.
local function merge_back(self, touches, events, counters)
  local p = self.pending
  for ns, per in pairs(touches) do
    local mine = p.touches[ns] or {}
    p.touches[ns] = mine
    for key, t in pairs(per) do
      local c = mine[key]
      if c then
        c.n, c.calls = c.n + t.n, c.calls + t.calls
        if t.at > c.at then c.at = t.at end
        c.tmpl, c.provider, c.model = c.tmpl or t.tmpl, c.provider or t.provider, c.model or t.model
      else
        mine[key] = t
      end
    end
  end
  if #events > 0 then
    local all = {}
    table.move(events, math.max(1, #events + #p.events - MAX_PENDING_EVENTS + 1), #events, 1, all)
    table.move(p.events, 1, #p.events, #all + 1, all)
    p.events = all
  end
  for ns, per in pairs(counters) do
    local mine = p.counters[ns] or {}
    p.counters[ns] = mine
    for name, n in pairs(per) do mine[name] = (mine[name] or 0) + n end
  end
end

-- `wait`: through the main store handle, waiting for the write lock as
-- long as it takes (close, stats, gc). Otherwise (every N operations, in
-- the middle of a get or a call) through a second handle that gives up
-- after 50 ms and keeps everything for next time, so a lookup is never
-- held up by another process's write for long.
local function flush(self, wait)
  local p = self.pending
  p.ops, p.at = 0, clock.monotonic()
  if next(p.touches) == nil and #p.events == 0 and next(p.counters) == nil then return true end
  local touches, events, counters = p.touches, p.events, p.counters
  p.touches, p.events, p.counters = {}, {}, {}
  local sdb = (not wait and self.sdb) or self.db
  local ok, msg, code = sdb:tx(function(db)
    for _, e in ipairs(events) do
      local _, m, c = db:exec([[INSERT INTO cache_events (at, namespace, key, outcome, scaffold_id, provider,
  model, prefix_hash, block_hashes, input_tokens, cached_input, output_tokens, cost, saved_cost)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)]],
        e.at, e.namespace, e.key, e.outcome, e.scaffold_id, e.provider, e.model, e.prefix_hash, e.block_hashes,
        e.input_tokens, e.cached_input, e.output_tokens, e.cost, e.saved_cost)
      if m then return nil, m, c end
    end
    local extra = {}  -- the counters of c:call's hits (counters itself stays as it was, for merge_back)
    -- rows are updated in key order, so concurrent flushes of other
    -- processes take their row locks in the same order (no deadlock)
    local order = {}
    for ns, per in pairs(touches) do
      for key, t in pairs(per) do order[#order + 1] = { ns, key, t } end
    end
    table.sort(order, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
    for _, o in ipairs(order) do
      local ns, key, t = o[1], o[2], o[3]
      do
        local _, m, c = db:exec([[UPDATE cache_entries SET hits = hits + $1,
  last_used_at = CASE WHEN last_used_at < $2 THEN $2 ELSE last_used_at END
  WHERE namespace = $3 AND key = $4]], t.n, t.at, ns, key)
        if m then return nil, m, c end
        -- hits of c:call kept as a count: one event row each, and the counters
        if t.calls > 0 then
          local u, saved = t.tmpl.resp.usage, t.tmpl.resp.cost
          if self.events then  -- one row for the hits of this entry since the last flush
            _, m, c = db:exec([[INSERT INTO cache_events (at, namespace, key, outcome, provider, model,
  input_tokens, cached_input, output_tokens, cost, saved_cost, n)
  VALUES ($1, $2, $3, 'hit', $4, $5, $6, $7, $8, 0, $9, $10)]],
              t.at, ns, key, t.provider, t.model, u.input, u.cached_input, u.output, saved, t.calls)
            if m then return nil, m, c end
          end
          local cn = extra[ns] or {}
          extra[ns] = cn
          cn.hits = (cn.hits or 0) + t.calls
          cn.tokens_saved = (cn.tokens_saved or 0) + t.calls * t.tmpl.tokens
          if saved then cn.cost_saved = (cn.cost_saved or 0) + t.calls * saved end
        end
      end
    end
    local sum = {}
    for _, src in ipairs({ counters, extra }) do
      for ns, per in pairs(src) do
        local into = sum[ns] or {}
        sum[ns] = into
        for name, n in pairs(per) do into[name] = (into[name] or 0) + n end
      end
    end
    local cs = {}
    for ns, per in pairs(sum) do
      for name, n in pairs(per) do cs[#cs + 1] = { ns, name, n } end
    end
    table.sort(cs, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
    for _, x in ipairs(cs) do
      local _, m, c = db:exec([[INSERT INTO cache_counters (namespace, name, value) VALUES ($1, $2, $3)
  ON CONFLICT (namespace, name) DO UPDATE SET value = cache_counters.value + excluded.value]], x[1], x[2], x[3] + 0.0)
      if m then return nil, m, c end
    end
    return true
  end)
  if not ok then
    if code == 'busy' and not wait then
      merge_back(self, touches, events, counters)
      return nil
    end
    self.warn('statistics not written: ' .. tostring(msg):gsub('^store: ', ''))
    return nil
  end
  return true
end

local function tick(self)
  local p = self.pending
  p.ops = p.ops + 1
  if p.ops >= self.flush_every or clock.monotonic() - p.at >= self.flush_interval then flush(self) end
end

local function touch(self, ns, key, at)
  local per = self.pending.touches[ns]
  if not per then
    per = {}
    self.pending.touches[ns] = per
  end
  local t = per[key]
  if t then
    t.n, t.at = t.n + 1, at
  else
    t = { n = 1, at = at, calls = 0 }
    per[key] = t
  end
  return t
end

local function event(self, e)
  if not self.events then return end
  e.at = e.at or now_ms()
  e.namespace = e.namespace or self.namespace
  self.pending.events[#self.pending.events + 1] = e
end

--- Writes the hit counters, last-used times and events kept in memory now
--- (they are written every `flush_every` operations, every
--- `flush_interval` seconds and on close anyway).
---@return boolean? ok nil when the write failed (a warning says why)
function Cache:flush()
  checkopen(self, 'flush')
  return flush(self, true)
end

-- }======================================================

-- {====================================================== entries

local SELECT_ENTRY = [[SELECT response, response_hash, provider, model, endpoint, cost, scaffold_id, prefix_hash,
  created_at, bytes, namespace, key FROM cache_entries WHERE namespace = $1 AND key = $2]]

-- A private decoder for the entries' metadata (verified bytes we wrote).
local meta_decoder = require('cjson').new()
meta_decoder.decode_invalid_numbers(false)
meta_decoder.decode_max_depth(16)

-- Moves an entry that failed its check to cache_quarantine (one short
-- transaction), warns and counts it.
local function quarantine(self, ns, key, row, reason)
  local at = now_ms()
  if not row.response_hash then
    row = self.db:first(SELECT_ENTRY, ns, key) or row
  end
  local ok, msg = self.db:tx(function(db)
    local _, m, c = db:exec([[INSERT INTO cache_quarantine (at, namespace, key, reason, response, response_hash)
  VALUES ($1, $2, $3, $4, $5, $6)]], at, ns, key, reason, store.blob(tostring(row.response or '')),
    tostring(row.response_hash))
    if m then return nil, m, c end
    _, m, c = db:exec('DELETE FROM cache_entries WHERE namespace = $1 AND key = $2', ns, key)
    if m then return nil, m, c end
    return true
  end)
  self.warn(('entry %s failed its check (%s): %s'):format(key, reason,
    ok and 'moved to quarantine' or ('not quarantined: ' .. tostring(msg):gsub('^store: ', ''))))
  count(self, 'corrupt', 1, ns)
  event(self, { namespace = ns, key = key, outcome = 'corrupt', provider = row.provider, model = row.model })
end

-- Splits a stored response `<metadata JSON>\n<text>`: meta, text (nil
-- when there is no newline).
local function split(body)
  local nl = body:find('\n', 1, true)
  if not nl then return body, nil end
  return body:sub(1, nl - 1), body:sub(nl + 1)
end

-- Decodes the metadata and checks its shape: the response table, or nil.
local function response_of(meta, text)
  if type(meta) ~= 'string' or type(text) ~= 'string' then return nil end
  local ok, m = pcall(meta_decoder.decode, meta)
  if not ok or type(m) ~= 'table' then return nil end
  local usage = m.usage
  if usage ~= nil and type(usage) ~= 'table' then return nil end
  local lens = m.chunks
  if lens ~= nil then
    if type(lens) ~= 'table' then return nil end
    local total = 0
    for _, n in ipairs(lens) do
      if math.type(n) == nil or n < 0 then return nil end
      total = total + n
    end
    if total ~= #text then return nil end
  end
  return { text = text, usage = usage or {}, finish = m.finish, served_model = m.served_model, cost = m.cost,
    chunk_lengths = lens }
end

-- Reads and verifies one entry: entry, or false (absent, expired or
-- corrupt), or nil, msg, code (the store failed). On SQLite files the read
-- goes through the C hit path (aegis.core.cache): one prepared point read
-- that also checks the hash.
local function read(self, ns, key)
  local row, resp
  local fast = self.fast
  if fast then
    local _, ok, meta, text, cost, created_at, bytes, provider, model, endpoint, scaffold_id, prefix_hash =
      fast:get(ns, key)
    if ok == nil then return false end
    if ok == false and type(meta) == 'string' and text ~= nil then return nil, meta, text end
    row = { provider = provider, model = model, endpoint = endpoint, cost = cost, scaffold_id = scaffold_id,
      prefix_hash = prefix_hash, created_at = created_at, bytes = bytes }
    if not ok then
      quarantine(self, ns, key, row, 'response hash mismatch')
      return false
    end
    resp = response_of(meta, text)
  else
    local msg, code
    row, msg, code = self.db:first(SELECT_ENTRY, ns, key)
    if msg then return nil, msg, code end
    if not row then return false end
    local body = row.response
    if row.namespace ~= ns or row.key ~= key then
      -- a damaged index led to another entry's row: never its answer
      quarantine(self, ns, key, row, 'row of another key')
      return false
    end
    if not verifies(ns, key, body, row.response_hash) then
      quarantine(self, ns, key, row, 'response hash mismatch')
      return false
    end
    resp = response_of(split(body))
  end
  if not resp then
    quarantine(self, ns, key, row, 'response unreadable')
    return false
  end
  local ttl = self.limits.ttl
  if ttl and row.created_at < now_ms() - ttl * 1000 then return false end
  return {
    key = key, namespace = ns, response = resp, provider = row.provider, model = row.model,
    endpoint = row.endpoint, cost = row.cost, scaffold_id = row.scaffold_id, prefix_hash = row.prefix_hash,
    created_at = int(row.created_at), bytes = int(row.bytes),
  }
end

-- The chunks of a stored stream, as strings.
local function chunks_of(resp)
  local lens = resp.chunk_lengths
  if not lens then return nil end
  local out, at = {}, 1
  for i, n in ipairs(lens) do
    out[i] = resp.text:sub(at, at + n - 1)
    at = at + n
  end
  return out
end

---@class aegis.cache.Response
---@field text string
---@field usage table {input, cached_input, cache_write_5m, cache_write_1h, output}, as the provider reported
---@field finish? string
---@field chunks? string[] The streamed deltas, in order (replayed one by one)
---@field served_model? string
---@field cost? number What the answer cost when it was made (USD)

---@class aegis.cache.Entry
---@field key string
---@field namespace string
---@field response aegis.cache.Response
---@field provider string
---@field model string
---@field endpoint? string
---@field cost? number
---@field scaffold_id? string
---@field prefix_hash? string
---@field created_at integer Milliseconds since 1970
---@field bytes integer

-- The checks every keyed method starts with (errors blame the method's
-- caller); returns the namespace.
local function keyed(self, what, key, opts)
  checkopen(self, what, 4)
  if not is_key(key) then argerr(what, 1, 'key must be 64 lowercase hex digits', 4) end
  return opts and opts.namespace or self.namespace
end

-- A keyed method's failure: nil, "cache: <what> '<key>': <detail>", code.
local function failed(what, key, msg, code)
  return nil, ("cache: %s '%s': %s"):format(what, key, (tostring(msg):gsub('^store: ', ''))), code
end

--- Reads an entry and checks its response hash. A mismatch (or an
--- unreadable response) is a miss: the entry is moved to `cache_quarantine`,
--- a warning is printed (`aegis-run: warning: cache: entry <key> failed its
--- check ...`) and counted (`stats().corrupt`). An expired entry (past
--- `limits.ttl`) is a miss. Hits and misses are counted in memory and
--- written in batches (never one write per hit).
---@param key string 64 hex digits (from `cache.key`)
---@param opts? {namespace?: string}
---@return aegis.cache.Entry? entry nil on a miss
---@return string? err When the store failed: `cache: get '<key>': <detail>`
---@return string? code The store's code
function Cache:get(key, opts)
  local ns = keyed(self, 'get', key, opts)
  local e, msg, code = read(self, ns, key)
  if e == nil then
    tick(self)
    return failed('get', key, msg, code)
  end
  if e then
    e.response.chunks = chunks_of(e.response)
    e.response.chunk_lengths = nil
    count(self, 'hits', 1, ns)
    touch(self, ns, key, now_ms())
  else
    count(self, 'misses', 1, ns)
  end
  tick(self)
  return e or nil
end

---@class aegis.cache.PutMeta
---@field request? string The canonical request (from `cache.key`), kept for analysis
---@field provider? string Default: read from `request`
---@field model? string Default: read from `request`
---@field endpoint? string Default: read from `request`
---@field scaffold_id? string
---@field prefix_hash? string
---@field namespace? string Default: the handle's

-- The stored form of a response: `<canonical JSON of {usage, finish,
-- served_model, cost, chunks = [chunk lengths]}>\n<text>`. Canonical JSON
-- has no raw newline, so the first one ends the metadata; the text follows
-- as it is, and a hit returns it without decoding it. The chunk lengths
-- must add up to the text (otherwise, as when the text was redacted, the
-- text is one chunk).
local function encode_response(response)
  local usage = {}
  for k, v in pairs(type(response.usage) == 'table' and response.usage or {}) do
    if type(v) == 'number' then usage[k] = v end
  end
  local r = {
    usage = usage, finish = response.finish,
    served_model = response.served_model, cost = type(response.cost) == 'number' and response.cost or nil,
  }
  local chunks = response.chunks
  if chunks and #chunks > 0 then
    local lens, total = {}, 0
    for i, c in ipairs(chunks) do
      lens[i] = #c
      total = total + #c
    end
    r.chunks = total == #response.text and json.array(lens) or json.array({ #response.text })
  end
  return json.canonical(r) .. '\n' .. response.text, r
end

local maybe_gc, fast_hit

--- Stores an answer under `key` (replacing one already there). The response
--- is kept as `<canonical JSON of {usage, finish, served_model, cost, chunks
--- = [lengths]}>` + newline + the text, with its SHA-256, checked on every
--- read (docs/cache.md "Entries and integrity"). Limits are checked every
--- `gc_every` puts, and rotation runs (in bounded batches) when one is crossed.
---@param key string 64 hex digits
---@param response aegis.cache.Response
---@param meta? aegis.cache.PutMeta
---@return boolean? ok
---@return string? err `cache: put '<key>': <detail>`
---@return string? code The store's code
function Cache:put(key, response, meta)
  checkopen(self, 'put')
  if not is_key(key) then argerr('put', 1, 'key must be 64 lowercase hex digits') end
  if type(response) ~= 'table' or type(response.text) ~= 'string' then
    argerr('put', 2, 'response must be a table with a string text')
  end
  if response.chunks ~= nil and type(response.chunks) ~= 'table' then argerr('put', 2, 'chunks must be a list') end
  if meta ~= nil and type(meta) ~= 'table' then argerr('put', 3, 'table expected, got ' .. type(meta)) end
  meta = meta or {}
  local ns = meta.namespace or self.namespace
  local body, r = encode_response(response)
  local req = meta.request
  local provider, model, endpoint = meta.provider, meta.model, meta.endpoint
  if type(req) == 'string' and (provider == nil or model == nil or endpoint == nil) then
    local ok, t = pcall(json.decode, req)
    if ok and type(t) == 'table' then
      provider, model, endpoint = provider or t.provider, model or t.model, endpoint or t.endpoint
    end
  end
  local at = now_ms()
  local bytes = #body + (type(req) == 'string' and #req or 0)
  local _, msg, code = self.db:exec([[INSERT INTO cache_entries (namespace, key, provider, model, endpoint, request,
  response, response_hash, bytes, input_tokens, output_tokens, cost, scaffold_id, prefix_hash, created_at,
  last_used_at, hits)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, 0)
  ON CONFLICT (namespace, key) DO UPDATE SET provider = excluded.provider, model = excluded.model,
  endpoint = excluded.endpoint, request = excluded.request, response = excluded.response,
  response_hash = excluded.response_hash, bytes = excluded.bytes, input_tokens = excluded.input_tokens,
  output_tokens = excluded.output_tokens, cost = excluded.cost, scaffold_id = excluded.scaffold_id,
  prefix_hash = excluded.prefix_hash, created_at = excluded.created_at, last_used_at = excluded.last_used_at]],
    ns, key, tostring(provider or ''), tostring(model or ''), endpoint, req, store.blob(body),
    response_hash(ns, key, body),
    bytes, r.usage.input, r.usage.output, r.cost, meta.scaffold_id, meta.prefix_hash, at)
  if msg then
    return nil, ("cache: put '%s': %s"):format(key, tostring(msg):gsub('^store: ', '')), code
  end
  count(self, 'stores', 1, ns)
  self.puts = self.puts + 1
  tick(self)
  if self.puts % self.gc_every == 0 then maybe_gc(self) end
  return true
end

--- Removes an entry.
---@param key string 64 hex digits
---@param opts? {namespace?: string}
---@return boolean? removed true when there was one
---@return string? err
---@return string? code
function Cache:delete(key, opts)
  local ns = keyed(self, 'delete', key, opts)
  local n, msg, code = self.db:exec('DELETE FROM cache_entries WHERE namespace = $1 AND key = $2', ns, key)
  if not n then return failed('delete', key, msg, code) end
  return n > 0
end

--- Whether an entry is stored under `key` and not expired, without reading
--- or checking its response and without counting a hit or a miss (what
--- `aegis.scaffold.resolve` asks to say whether a request will hit).
---@param key string 64 hex digits
---@param opts? {namespace?: string}
---@return boolean? present
---@return string? err `cache: has '<key>': <detail>`
---@return string? code The store's code
function Cache:has(key, opts)
  local ns = keyed(self, 'has', key, opts)
  local row, msg, code = self.db:first('SELECT created_at FROM cache_entries WHERE namespace = $1 AND key = $2',
    ns, key)
  if msg then return failed('has', key, msg, code) end
  if not row then return false end
  local ttl = self.limits.ttl
  return not (ttl and row.created_at < now_ms() - ttl * 1000)
end

-- }======================================================

-- {====================================================== rotation

local BATCH = 500          -- rows per delete transaction
local AUTO_BATCHES = 8     -- batches one automatic pass may run
local SLACK = 0.05         -- a crossed limit is trimmed 5 % below it, so rotation does not run on every put
local EVENTS_MAX = 200000  -- cache_events rows kept
local QUARANTINE_MAX = 1000

-- Deletes the given rows in one short transaction; returns rows, bytes.
local function delete_rows(db, rows)
  local n, bytes = 0, 0
  -- in key order, as flush updates: concurrent transactions lock rows in one order
  table.sort(rows, function(a, b)
    return a.namespace < b.namespace or (a.namespace == b.namespace and a.key < b.key)
  end)
  local ok, msg, code = db:tx(function(tx)
    for _, r in ipairs(rows) do
      local d, m, c = tx:exec('DELETE FROM cache_entries WHERE namespace = $1 AND key = $2', r.namespace, r.key)
      if not d then return nil, m, c end
      if d > 0 then n, bytes = n + 1, bytes + int(r.bytes) end
    end
    return true
  end)
  if not ok then return nil, msg, code end
  return n, bytes
end

-- true when the SQLite file holds the cache's tables and nothing else
local function dedicated(db)
  local r = db:first([[SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'
  AND name NOT LIKE 'cache\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name <> 'aegis_migrations']])
  return r ~= nil and r.n == 0
end

-- Bytes of the SQLite file's pages in use (free pages left out).
local function used_bytes(db)
  local pc, ps, fl = db:first('PRAGMA page_count'), db:first('PRAGMA page_size'), db:first('PRAGMA freelist_count')
  if not (pc and ps and fl) then return nil end
  return (pc.page_count - fl.freelist_count) * ps.page_size
end

local function totals(db)
  return db:first('SELECT count(*) AS n, CAST(coalesce(sum(bytes), 0) AS BIGINT) AS b FROM cache_entries')
end

-- Trims rows in batches until `want(batch_rows)` says stop; `sql` selects
-- namespace, key, bytes of the next candidates ($1 = limit, $2 = extra).
local function trim(db, sql, extra, budget, out, field, pick)
  while budget.left > 0 do
    local rows, msg, code
    if extra ~= nil then rows, msg, code = db:query(sql, BATCH, extra) else rows, msg, code = db:query(sql, BATCH) end
    if not rows then return nil, msg, code end
    rows = pick and pick(rows) or rows
    if #rows == 0 then return true end
    local n, b = delete_rows(db, rows)
    if not n then return nil, b, code end
    -- rows selected that no delete finds (a damaged index): the next batch
    -- would select them again, without end
    if n == 0 then return true end
    out[field], out.bytes_freed = out[field] + n, out.bytes_freed + b
    budget.left = budget.left - 1
    if pick and #rows < BATCH then return true end
  end
  return true
end

---@class aegis.cache.GcResult
---@field expired integer Entries removed for their age (ttl)
---@field evicted integer Entries removed, least recently used first, for max_entries / max_bytes
---@field bytes_freed integer Their bytes
---@field events_trimmed integer Old cache_events rows removed
---@field leases_expired integer Expired lease rows removed
---@field pages_freed integer SQLite pages given back by incremental_vacuum
---@field done boolean false when the batch budget ran out before the limits were met

--- Applies the limits: removes entries older than `ttl`, then the least
--- recently used ones while there are more than `max_entries` or more bytes
--- than `max_bytes` (down to 5 % below the limit; for a cache alone in its
--- SQLite file, `max_bytes` bounds the file's pages in use, so entries go
--- until the file fits). Incremental: rows go in
--- batches of 500, each in its own short transaction, so readers and
--- writers of other processes are never held up for long; `max_batches`
--- bounds one pass. Also trims `cache_events` (newest 200,000 kept),
--- expired leases and old quarantine rows, and on SQLite gives free pages
--- back with `PRAGMA incremental_vacuum` when the file has
--- `auto_vacuum=INCREMENTAL` (otherwise freed pages are reused by later
--- entries). It never renames or deletes the database file. Limits span
--- all namespaces.
---@param opts? {ttl?: number|string, max_entries?: integer, max_bytes?: integer, max_batches?: integer}
---@return aegis.cache.GcResult? result
---@return string? err
---@return string? code
function Cache:gc(opts)
  checkopen(self, 'gc')
  if opts ~= nil and type(opts) ~= 'table' then argerr('gc', 1, 'table expected, got ' .. type(opts)) end
  opts = opts or {}
  local ttl = opts.ttl ~= nil and seconds(opts.ttl) or self.limits.ttl
  if opts.ttl ~= nil and not ttl then
    argerr('gc', 1, "ttl must be seconds or a duration such as '30m', '12h', '7d'")
  end
  local max_entries = opts.max_entries or self.limits.max_entries
  local max_bytes = opts.max_bytes or self.limits.max_bytes
  local budget = { left = opts.max_batches or math.huge }
  local db = self.db
  flush(self, true)  -- last-used times first, so LRU sees them
  local out = { expired = 0, evicted = 0, bytes_freed = 0, events_trimmed = 0, leases_expired = 0,
    pages_freed = 0, done = false }
  local function fail(msg, code)
    return nil, 'cache: gc: ' .. tostring(msg):gsub('^store: ', ''), code
  end
  local ok, msg, code
  if ttl then
    ok, msg, code = trim(db, [[SELECT namespace, key, bytes FROM cache_entries WHERE created_at < $2
  ORDER BY created_at LIMIT $1]], now_ms() - math.floor(ttl * 1000), budget, out, 'expired')
    if not ok then return fail(msg, code) end
  end
  if max_entries then
    local t
    t, msg, code = totals(db)
    if not t then return fail(msg, code) end
    if t.n > max_entries then
      local left = t.n - math.floor(max_entries * (1 - SLACK))
      ok, msg, code = trim(db, 'SELECT namespace, key, bytes FROM cache_entries ORDER BY last_used_at LIMIT $1',
        nil, budget, out, 'evicted', function(rows)
          local take = {}
          for i = 1, math.min(left, #rows) do take[i] = rows[i] end
          left = left - #take
          return take
        end)
      if not ok then return fail(msg, code) end
    end
  end
  -- least recently used entries out until they hold at most `want` bytes
  local function trim_bytes(want)
    local t, tmsg, tcode = totals(db)
    if not t then return nil, tmsg, tcode end
    if t.b <= want then return true end
    local need = t.b - want
    return trim(db, 'SELECT namespace, key, bytes FROM cache_entries ORDER BY last_used_at LIMIT $1',
      nil, budget, out, 'evicted', function(rows)
        local take = {}
        for _, r in ipairs(rows) do
          if need <= 0 then break end
          take[#take + 1] = r
          need = need - int(r.bytes)
        end
        return take
      end)
  end
  if max_bytes then
    local t
    t, msg, code = totals(db)
    if not t then return fail(msg, code) end
    if t.b > max_bytes then
      ok, msg, code = trim_bytes(math.floor(max_bytes * (1 - SLACK)))
      if not ok then return fail(msg, code) end
    end
  end
  -- the side tables, in bounded deletes too
  local n
  n, msg, code = db:exec('DELETE FROM cache_leases WHERE expires_at < $1', now_ms())
  if not n then return fail(msg, code) end
  out.leases_expired = n
  local row
  row, msg, code = db:first('SELECT max(id) AS top FROM cache_events')
  if msg then return fail(msg, code) end
  local floor = row and row.top and (row.top - EVENTS_MAX) or 0
  while floor > 0 and budget.left > 0 do
    n, msg, code = db:exec([[DELETE FROM cache_events WHERE id IN
  (SELECT id FROM cache_events WHERE id <= $1 ORDER BY id LIMIT $2)]], floor, BATCH * 10)
    if not n then return fail(msg, code) end
    out.events_trimmed = out.events_trimmed + n
    budget.left = budget.left - 1
    if n < BATCH * 10 then break end
  end
  row, msg, code = db:first('SELECT max(id) AS top FROM cache_quarantine')
  if msg then return fail(msg, code) end
  if row and row.top and row.top > QUARANTINE_MAX then
    n, msg, code = db:exec('DELETE FROM cache_quarantine WHERE id <= $1', row.top - QUARANTINE_MAX)
    if not n then return fail(msg, code) end
  end
  local function vacuum()
    local av = db:first('PRAGMA auto_vacuum')
    if not (av and av.auto_vacuum == 2) then return end
    while budget.left > 0 do
      local fl = db:first('PRAGMA freelist_count')
      local free = fl and fl.freelist_count or 0
      if free == 0 then break end
      local _, vmsg = db:exec('PRAGMA incremental_vacuum(2048)')
      if vmsg then break end  -- space is given back next time
      out.pages_freed = out.pages_freed + math.min(free, 2048)
      budget.left = budget.left - 1
    end
  end
  if db.kind == 'sqlite' then
    vacuum()
    -- A file that holds only the cache: max_bytes bounds the file itself
    -- (pages in use), indexes, page slack and the side tables included.
    -- Entries fill pages unevenly, so the entries' own bytes are trimmed to
    -- the limit scaled by what the file holds per byte of them, and again
    -- while the file is still over it.
    if max_bytes and dedicated(db) then
      for _ = 1, 6 do
        if budget.left <= 0 then break end
        local used = used_bytes(db)
        local t = totals(db)
        if not used or not t or used <= max_bytes or t.b == 0 then break end
        ok, msg, code = trim_bytes(math.floor(max_bytes * (1 - SLACK) * t.b / used))
        if not ok then return fail(msg, code) end
        vacuum()
      end
    end
  end
  out.done = budget.left > 0
  return out
end

-- Called every gc_every puts: a cheap look at the limits, and a bounded
-- rotation pass when one is crossed. Failures only warn.
maybe_gc = function(self)
  local l = self.limits
  if not (l.ttl or l.max_entries or l.max_bytes) then return end
  local over = false
  if l.max_entries or l.max_bytes then
    local t = totals(self.db)
    if t and ((l.max_entries and t.n > l.max_entries) or (l.max_bytes and t.b > l.max_bytes)) then over = true end
    if not over and l.max_bytes and self.db.kind == 'sqlite' and dedicated(self.db) then
      local used = used_bytes(self.db)
      if used and used > l.max_bytes then over = true end
    end
  end
  if not over and l.ttl then
    local r = self.db:first('SELECT min(created_at) AS oldest FROM cache_entries')
    if r and r.oldest and r.oldest < now_ms() - l.ttl * 1000 then over = true end
  end
  if not over then return end
  local ok, msg = self:gc({ max_batches = AUTO_BATCHES })
  if not ok then self.warn('rotation failed: ' .. tostring(msg):gsub('^cache: ', '')) end
end

-- }======================================================

-- {====================================================== single-flight

local function lock_name(ns, key) return ns .. '|' .. key end

-- Tries to become the one caller of (ns, key): true (ours), false
-- (another process has it), or nil, msg, code (the store failed).
-- SQLite: a lease row (INSERT ... ON CONFLICT DO NOTHING), taken over
-- when expired or when its holder is a dead process of this host.
-- PostgreSQL: a session advisory lock, which a crashed holder loses.
local function lease_try(self, ns, key)
  local db = self.db
  if db.kind == 'postgres' then
    local row, msg, code = db:first('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', lock_name(ns, key))
    if not row then return nil, msg, code end
    return row.ok == true
  end
  local now = now_ms()
  local expires = now + math.floor(self.lease_seconds * 1000)
  local n, msg, code = db:exec([[INSERT INTO cache_leases (namespace, key, holder, expires_at)
  VALUES ($1, $2, $3, $4) ON CONFLICT (namespace, key) DO NOTHING]], ns, key, self.holder, expires)
  if not n then return nil, msg, code end
  if n == 1 then return true end
  local row
  row, msg, code = db:first('SELECT holder, expires_at FROM cache_leases WHERE namespace = $1 AND key = $2', ns, key)
  if msg then return nil, msg, code end
  if row == nil then return false end  -- released just now: the next poll finds the entry or tries again
  if row.expires_at < now or holder_dead(row.holder) then
    n, msg, code = db:exec([[UPDATE cache_leases SET holder = $1, expires_at = $2
  WHERE namespace = $3 AND key = $4 AND holder = $5]], self.holder, expires, ns, key, row.holder)
    if not n then return nil, msg, code end
    return n == 1
  end
  return false
end

local function lease_release(self, ns, key)
  local db = self.db
  if db.kind == 'postgres' then
    db:first('SELECT pg_advisory_unlock(hashtextextended($1, 0)) AS ok', lock_name(ns, key))
  else
    db:exec('DELETE FROM cache_leases WHERE namespace = $1 AND key = $2 AND holder = $3', ns, key, self.holder)
  end
end

-- }======================================================

-- {====================================================== calls

local function msg_of(m) return (tostring(m):gsub('^store: ', '')) end

local USAGE_FIELDS = { 'input', 'cached_input', 'cache_write_5m', 'cache_write_1h', 'output' }
local COST_NOTE = { hit = 'cache hit', waited = 'cache waited', miss = 'cache miss', bypass = 'cache bypass' }

-- A result made from a stored (or in-process) response; on_delta gets the
-- chunks one by one as the provider sent them.
local function replay(resp, o, kind, key, provider, t0)
  if o.stream and o.on_delta then
    local lens, text = resp.chunk_lengths, resp.text
    if lens and #lens > 0 then
      local at = 1
      for _, n in ipairs(lens) do
        o.on_delta(text:sub(at, at + n - 1))
        at = at + n
      end
    elseif text ~= '' then
      o.on_delta(text)
    end
  end
  local u = resp.usage or {}
  return {
    text = resp.text, provider = provider, model = o.model, served_model = resp.served_model,
    usage = { input = int(u.input), cached_input = int(u.cached_input), cache_write_5m = int(u.cache_write_5m),
      cache_write_1h = int(u.cache_write_1h), output = int(u.output) },
    cost = 0, saved_cost = resp.cost, cost_note = COST_NOTE[kind],
    latency_ms = math.floor((clock.monotonic() - t0) * 1000 + 0.5), finish = resp.finish,
    attempts = 0, warnings = {}, cache = kind, key = key,
  }
end

local function scaffold_fields(s)
  if type(s) ~= 'table' then return {} end
  local bh
  if type(s.blocks) == 'table' and #s.blocks > 0 then
    local list = {}
    for i, b in ipairs(s.blocks) do
      list[i] = { kind = b.kind, stability = b.stability, hash = b.hash }
    end
    local ok, text = pcall(json.canonical, list)
    bh = ok and text or nil
  end
  return { scaffold_id = s.scaffold_id, prefix_hash = s.prefix_hash, block_hashes = bh }
end

local function record(self, item, o, kind, res, copts, idx)
  local u = res.usage or {}
  local sc = scaffold_fields(copts.scaffolds and copts.scaffolds[idx] or copts.scaffold)
  local outcome = (kind == 'hit' or kind == 'waited') and 'hit' or kind
  event(self, {
    namespace = item.ns, key = item.key, outcome = outcome, scaffold_id = sc.scaffold_id,
    provider = item.info.provider, model = o.model, prefix_hash = sc.prefix_hash, block_hashes = sc.block_hashes,
    input_tokens = u.input, cached_input = u.cached_input, output_tokens = u.output,
    cost = outcome == 'hit' and 0 or res.cost, saved_cost = outcome == 'hit' and res.saved_cost or nil,
  })
  if outcome == 'hit' then
    count(self, 'hits', 1, item.ns)
    count(self, 'tokens_saved', (u.input or 0) + (u.output or 0), item.ns)
    if res.saved_cost then count(self, 'cost_saved', res.saved_cost, item.ns) end
  elseif outcome == 'miss' then
    count(self, 'misses', 1, item.ns)
  else
    count(self, 'bypass', 1, item.ns)
  end
  tick(self)
end

local copt_types = {
  no_cache = 'boolean', no_store = 'boolean', namespace = 'string', sample_index = 'number',
  scaffold = 'table', scaffolds = 'table', concurrency = 'number', budget = 'table', retry = 'table', http = 'table',
}

local NO_COPTS = setmetatable({}, { __newindex = function() error('read-only', 2) end })

local function check_copts(copts, fname, n)
  if copts == nil then return NO_COPTS end
  if type(copts) ~= 'table' then argerr(fname, n, 'table expected, got ' .. type(copts)) end
  for k, v in pairs(copts) do
    local want = copt_types[k]
    if not want then argerr(fname, n, ("unknown option '%s'"):format(tostring(k))) end
    if type(v) ~= want and not (k == 'budget' and v == false) then
      argerr(fname, n, ("option '%s': %s expected, got %s"):format(k, want, type(v)))
    end
  end
  local si = copts.sample_index
  if si ~= nil and (math.type(si) ~= 'integer' or si < 0) then
    argerr(fname, n, 'sample_index must be a non-negative integer')
  end
  return copts
end

-- The options sent to the provider: the caller's, with an on_delta that
-- also keeps the chunks of a stream.
local function capture(item, o)
  if not o.stream then return o end
  local chunks = {}
  item.chunks = chunks
  local orig = o.on_delta
  return setmetatable({ on_delta = function(d)
    chunks[#chunks + 1] = d
    if orig then return orig(d) end
  end }, { __index = o })
end

-- Runs the distinct requests `items` (each {key, canon, info, ns, idx =
-- {indices into list}}) through the cache: lookups, single-flight, the
-- provider calls through `invoke(list of opts) -> {{res=, err=}...}`, puts.
-- Fills results[i] = {res=, err=} for every index.
local function drive(self, items, list, copts, invoke, t0)
  local results = {}
  local function hit(item, resp, kind)
    for n, i in ipairs(item.idx) do
      local o = list[i]
      local k = (kind == 'miss' and n > 1) and 'waited' or kind
      local r = replay(resp, o, k, item.key, item.info.provider, t0)
      results[i] = { res = r }
      record(self, item, o, k, r, copts, i)
    end
  end
  local function store_result(item, res)
    local chunks = item.chunks
    if chunks and table.concat(chunks) ~= res.text then chunks = { res.text } end  -- redacted: never replay raw
    local resp = { text = res.text, usage = res.usage, finish = res.finish, served_model = res.served_model,
      cost = res.cost, chunks = chunks }
    if not copts.no_store then
      local ok, msg = self:put(item.key, resp, { request = item.canon, provider = item.info.provider,
        model = list[item.idx[1]].model, endpoint = item.info.endpoint, namespace = item.ns,
        scaffold_id = scaffold_fields(copts.scaffolds and copts.scaffolds[item.idx[1]] or copts.scaffold).scaffold_id,
        prefix_hash = scaffold_fields(copts.scaffolds and copts.scaffolds[item.idx[1]] or copts.scaffold).prefix_hash })
      if not ok then self.warn('answer not stored: ' .. tostring(msg):gsub('^cache: ', '')) end
    end
    return resp
  end
  -- calls `batch` (items) at once; the first index of each gets the live answer
  local function call_batch(batch)
    if #batch == 0 then return end
    local sent = {}
    for n, item in ipairs(batch) do sent[n] = capture(item, list[item.idx[1]]) end
    local outs = invoke(sent)
    for n, item in ipairs(batch) do
      local out = outs[n]
      if out.res then
        out.res.cache, out.res.key = copts.no_cache and 'bypass' or 'miss', item.key
        local first = item.idx[1]
        results[first] = out
        record(self, item, list[first], copts.no_cache and 'bypass' or 'miss', out.res, copts, first)
        local resp = store_result(item, out.res)
        if item.lease then lease_release(self, item.ns, item.key) end
        if #item.idx > 1 then
          local rest = { key = item.key, info = item.info, ns = item.ns,
            idx = table.move(item.idx, 2, #item.idx, 1, {}) }
          local _, r = encode_response(resp)
          hit(rest, { text = resp.text, usage = r.usage, finish = r.finish, served_model = r.served_model,
            cost = r.cost, chunk_lengths = r.chunks }, 'waited')
        end
      else
        if item.lease then lease_release(self, item.ns, item.key) end  -- errors are never stored
        for _, i in ipairs(item.idx) do results[i] = out end
      end
    end
  end

  local now_batch, waiting = {}, {}
  for _, item in ipairs(items) do
    local e
    if not copts.no_cache then
      local msg
      e, msg = read(self, item.ns, item.key)
      if e == nil then self.warn('lookup failed, calling the provider: ' .. msg_of(msg)) end
      if e then touch(self, item.ns, item.key, now_ms()); hit(item, e.response, 'hit') end
    end
    if not e then
      if copts.no_cache or copts.no_store or e == nil then
        now_batch[#now_batch + 1] = item
      else
        local got, msg = lease_try(self, item.ns, item.key)
        if got == nil then
          self.warn('single-flight unavailable, calling the provider: ' .. msg_of(msg))
          now_batch[#now_batch + 1] = item
        elseif got then
          item.lease = true
          -- the holder may have finished between our lookup and the lease
          local again = read(self, item.ns, item.key)
          if again then
            lease_release(self, item.ns, item.key)
            item.lease = nil
            touch(self, item.ns, item.key, now_ms())
            hit(item, again.response, 'waited')
          else
            now_batch[#now_batch + 1] = item
          end
        else
          item.deadline = clock.monotonic() + self.wait_seconds
          waiting[#waiting + 1] = item
        end
      end
    end
  end
  call_batch(now_batch)

  -- the others' answers: poll with backoff until the entry appears, the
  -- lease comes to us (expired, released without an answer, holder dead),
  -- or the wait is over
  local delay = 0.005
  local sleep = self._sleep or require('aegis.core.http').sleep
  while #waiting > 0 do
    sleep(delay * (0.5 + math.random() * 0.5))
    delay = math.min(delay * 1.5, 0.25)
    local still, mine = {}, {}
    for _, item in ipairs(waiting) do
      local e, msg = read(self, item.ns, item.key)
      if e then
        touch(self, item.ns, item.key, now_ms())
        hit(item, e.response, 'waited')
      elseif e == nil then
        self.warn('lookup failed, calling the provider: ' .. msg_of(msg))
        mine[#mine + 1] = item
      else
        local got, lmsg = lease_try(self, item.ns, item.key)
        if got == nil then
          self.warn('single-flight unavailable, calling the provider: ' .. msg_of(lmsg))
          mine[#mine + 1] = item
        elseif got then
          item.lease = true
          local again = read(self, item.ns, item.key)
          if again then
            lease_release(self, item.ns, item.key)
            item.lease = nil
            touch(self, item.ns, item.key, now_ms())
            hit(item, again.response, 'waited')
          else
            mine[#mine + 1] = item
          end
        elseif clock.monotonic() >= item.deadline then
          self.warn(('waited %gs for another process to answer %s; calling the provider'):format(
            self.wait_seconds, item.key))
          mine[#mine + 1] = item
        else
          still[#still + 1] = item
        end
      end
    end
    call_batch(mine)
    waiting = still
  end
  return results
end

-- Responses already decoded, by namespace and key, with their hash: a hit
-- whose bytes verify against the same hash reuses the copy (the bytes are
-- still read and hashed every time; only copying and decoding are saved).
local MEMO_ENTRIES, MEMO_BYTES = 4096, 32 * 1024 * 1024

local function memo_put(self, ns, key, m)
  local memo = self.memo
  if memo.n >= MEMO_ENTRIES or memo.bytes >= MEMO_BYTES then
    memo = { n = 0, bytes = 0, by = {} }
    self.memo = memo
  end
  local per = memo.by[ns]
  if not per then
    per = {}
    memo.by[ns] = per
  end
  if not per[key] then memo.n = memo.n + 1 end
  per[key] = m
  memo.bytes = memo.bytes + #m.resp.text
end

-- A hit through the C path, or nil (a miss, a failed read, a bad entry:
-- `drive` reads again the slow way and deals with it).
fast_hit = function(self, ns, key, info, o, copts, t0)
  local per = self.memo.by[ns]
  local m = per and per[key]
  local ok, meta, text, cost, created_at, rhash = self.fast:check(ns, key, m and m.hash)
  if ok ~= true then return nil end
  local now = now_ms()
  local ttl = self.limits.ttl
  if ttl and created_at < now - ttl * 1000 then return nil end
  if meta ~= true then
    local resp = response_of(meta, text)
    if not resp then return nil end
    if resp.cost == nil then resp.cost = cost end
    local usage = {}
    for _, f in ipairs(USAGE_FIELDS) do
      local v = resp.usage[f]
      usage[f] = v and int(v) or nil
    end
    resp.usage = usage
    m = { hash = rhash, resp = resp, tokens = (usage.input or 0) + (usage.output or 0) }
    memo_put(self, ns, key, m)
  end
  local resp = m.resp
  local r = replay(resp, o, 'hit', key, info.provider, t0)
  local sc = copts.scaffold
  if sc then
    touch(self, ns, key, now)
    record(self, { ns = ns, key = key, info = info }, o, 'hit', r, copts, 1)
  else
    -- the event and the counters are written from the touch at the next flush
    local t = touch(self, ns, key, now)
    t.calls = t.calls + 1
    t.tmpl = m
    t.provider, t.model = info.provider, o.model
    tick(self)
  end
  return r
end

-- Groups `list` by namespace and key: the distinct requests.
local function distinct(self, list, copts, fname)
  local items, by = {}, {}
  for i, o in ipairs(list) do
    if type(o) ~= 'table' then argerr(fname, 1, ('request %d: table expected, got %s'):format(i, type(o))) end
    if o.on_delta ~= nil and type(o.on_delta) ~= 'function' then argerr(fname, 1, 'on_delta must be a function') end
    local ko = o
    if copts.sample_index and o.sample_index == nil then
      ko = setmetatable({ sample_index = copts.sample_index }, { __index = o })
    end
    check_head(ko, fname)
    local info, err = endpoint_info(ko, fname)
    local ns = copts.namespace or self.namespace
    if not info then
      check_request(ko, fname)
      items[#items + 1] = { failed = err, idx = { i } }
    else
      local key, canon = key_of(ko, info, fname, true)
      local id = ns .. '\0' .. key
      local item = by[id]
      if item then
        item.idx[#item.idx + 1] = i
      else
        item = { key = key, canon = canon, info = info, ns = ns, idx = { i } }
        by[id] = item
        items[#items + 1] = item
      end
    end
  end
  return items
end

--- Options of `c:call` and `c:call_all`.
---@class aegis.cache.CallOpts
---@field no_cache? boolean Do not read the cache (the answer is still stored unless no_store)
---@field no_store? boolean Do not write the answer
---@field namespace? string Instead of the handle's
---@field sample_index? integer For requests that do not set their own (default 0)
---@field scaffold? table The resolved scaffold (`scaffold.resolve`), linked to the cache events
---@field scaffolds? table<integer, table> call_all: the scaffold of request i
---@field concurrency? integer call_all: as provider.call_all
---@field budget? table|false call_all: as provider.call_all
---@field retry? table call_all: as provider.call_all
---@field http? table call_all: the transport (tests)

--- `provider.call` through the cache. A hit returns the stored answer
--- (`res.cache = 'hit'`, `on_delta` replayed chunk for chunk, usage as
--- stored, `cost = 0`, `saved_cost` = what it cost). A miss is single-flight:
--- when another process is already making the same call, this one waits
--- for its answer (`res.cache = 'waited'`); otherwise it calls the provider
--- (`res.cache = 'miss'`) and stores the answer. Errors are never stored.
--- A failing cache (store error, corrupt entry) is a miss with a warning:
--- the call still goes through. No transaction is held across the call.
---@param opts aegis.cache.KeyOpts The request, as for provider.call
---@param copts? aegis.cache.CallOpts
---@return table? result provider.call's result plus `cache` ('hit'|'miss'|'waited'|'bypass'), `key`, `saved_cost`
---@return aegis.Error? err
function Cache:call(opts, copts)
  checkopen(self, 'call')
  if type(opts) ~= 'table' then argerr('call', 1, 'table expected, got ' .. type(opts)) end
  copts = copts == nil and NO_COPTS or check_copts(copts, 'call', 2)
  local t0 = clock.monotonic()
  if opts.on_delta ~= nil and type(opts.on_delta) ~= 'function' then
    argerr('call', 1, 'on_delta must be a function')
  end
  local ko = opts
  if copts.sample_index and opts.sample_index == nil then
    ko = setmetatable({ sample_index = copts.sample_index }, { __index = opts })
  end
  check_head(ko, 'call')
  local info, err = endpoint_info(ko, 'call')
  if not info then return nil, err end
  local key, canon = key_of(ko, info, 'call')
  local ns = copts.namespace or self.namespace
  if self.fast and not copts.no_cache then
    -- the hit path: one C call reads and checks the entry
    local r = fast_hit(self, ns, key, info, opts, copts, t0)
    if r then return r end
  end
  local items = { { key = key, canon = canon or canonical_text(ko, info), info = info, ns = ns, idx = { 1 } } }
  local out = drive(self, items, { opts }, copts, function(sent)
    local r, e = require('aegis.provider').call(sent[1])
    return { { res = r, err = e } }
  end, t0)[1]
  return out.res, out.err
end

--- `provider.call_all` through the cache: identical requests in the list
--- are made once (the others get the same answer, `cache = 'waited'`),
--- hits are answered from the cache, requests another process is making
--- are waited for, and the rest go out together through
--- `provider.call_all`. Results in input order, as provider.call_all gives
--- them (`{err =, code =}` for a failed call).
---@param list aegis.cache.KeyOpts[]
---@param copts? aegis.cache.CallOpts
---@return table[] results
function Cache:call_all(list, copts)
  checkopen(self, 'call_all')
  if type(list) ~= 'table' then argerr('call_all', 1, 'table expected, got ' .. type(list)) end
  copts = check_copts(copts, 'call_all', 2)
  local t0 = clock.monotonic()
  local items = distinct(self, list, copts, 'call_all')
  local results, ok_items = {}, {}
  for _, item in ipairs(items) do
    if item.failed then results[item.idx[1]] = { err = item.failed, code = item.failed.code }
    else ok_items[#ok_items + 1] = item end
  end
  local pall = { concurrency = copts.concurrency, budget = copts.budget, retry = copts.retry, http = copts.http }
  local outs = drive(self, ok_items, list, copts, function(sent)
    local rs = require('aegis.provider').call_all(sent, pall)
    local o = {}
    for n, r in ipairs(rs) do
      if r.err then o[n] = { err = r.err } else o[n] = { res = r } end
    end
    return o
  end, t0)
  for i, out in pairs(outs) do
    results[i] = out.res or { err = out.err, code = out.err and out.err.code }
  end
  return results
end

-- }======================================================

-- {====================================================== statistics and maintenance

---@class aegis.cache.Stats
---@field entries integer
---@field bytes integer Requests + responses stored
---@field hits integer
---@field misses integer
---@field hit_rate number hits / (hits + misses), 0 when there was no lookup
---@field corrupt integer Entries that failed their check (quarantined)
---@field stores integer Answers stored
---@field bypass integer Calls made with no_cache
---@field tokens_saved integer Input + output tokens of the answers served from the cache
---@field cost_saved number USD those answers cost when made
---@field quarantined integer Rows in cache_quarantine
---@field oldest? integer created_at of the oldest entry (ms since 1970)
---@field newest? integer
---@field namespaces table<string, {entries: integer, bytes: integer, hits: integer, misses: integer}>
---@field backend string 'sqlite' or 'postgres'
---@field url string The store URL, password redacted
---@field limits table

--- Gives the cache's figures (after writing the pending counters), over
--- every namespace or one (`opts.namespace`).
---@param opts? {namespace?: string}
---@return aegis.cache.Stats? stats
---@return string? err
---@return string? code
function Cache:stats(opts)
  checkopen(self, 'stats')
  if opts ~= nil and type(opts) ~= 'table' then argerr('stats', 1, 'table expected, got ' .. type(opts)) end
  flush(self, true)
  local ns = opts and opts.namespace
  local db = self.db
  local function fail(msg, code) return nil, 'cache: stats: ' .. msg_of(msg), code end
  local where = ns and ' WHERE namespace = $1' or ''
  local function query(sql) if ns then return db:query(sql, ns) end return db:query(sql) end
  local rows, msg, code = query([[SELECT namespace, count(*) AS n, CAST(coalesce(sum(bytes), 0) AS BIGINT) AS b,
  min(created_at) AS oldest, max(created_at) AS newest FROM cache_entries]] .. where .. ' GROUP BY namespace')
  if not rows then return fail(msg, code) end
  local s = { entries = 0, bytes = 0, hits = 0, misses = 0, corrupt = 0, stores = 0, bypass = 0,
    tokens_saved = 0, cost_saved = 0.0, quarantined = 0, namespaces = {}, backend = db.kind, url = db.url,
    limits = shallow(self.limits) }
  local function nsrec(name)
    local r = s.namespaces[name]
    if not r then r = { entries = 0, bytes = 0, hits = 0, misses = 0 }; s.namespaces[name] = r end
    return r
  end
  for _, r in ipairs(rows) do
    local rec = nsrec(r.namespace)
    rec.entries, rec.bytes = r.n, int(r.b)
    s.entries, s.bytes = s.entries + r.n, s.bytes + int(r.b)
    if r.oldest and (not s.oldest or r.oldest < s.oldest) then s.oldest = int(r.oldest) end
    if r.newest and (not s.newest or r.newest > s.newest) then s.newest = int(r.newest) end
  end
  rows, msg, code = query('SELECT namespace, name, value FROM cache_counters' .. where)
  if not rows then return fail(msg, code) end
  for _, r in ipairs(rows) do
    if s[r.name] ~= nil then
      if r.name == 'cost_saved' then s.cost_saved = s.cost_saved + r.value
      else s[r.name] = s[r.name] + int(r.value) end
    end
    if r.name == 'hits' or r.name == 'misses' then
      local rec = nsrec(r.namespace)
      rec[r.name] = rec[r.name] + int(r.value)
    end
  end
  rows, msg, code = query('SELECT count(*) AS n FROM cache_quarantine' .. where)
  if not rows then return fail(msg, code) end
  local row = rows[1]
  s.quarantined = row and row.n or 0
  local lookups = s.hits + s.misses
  s.hit_rate = lookups > 0 and s.hits / lookups or 0
  return s
end

-- A guard for paging through cache_entries by (namespace, key) from
-- (ns, key): given each page's last row, whether to go on from it. A
-- damaged index can return rows out of order, and the pages then stop
-- moving or go round in a circle (a page ending where an earlier one did):
-- no, then, nor for a row whose namespace or key is not text.
local function page_guard(ns, key)
  local seen = { [string.pack('s4s4', ns, key)] = true }
  return function(last)
    if type(last.namespace) ~= 'string' or type(last.key) ~= 'string' then return false end
    local at = string.pack('s4s4', last.namespace, last.key)
    if seen[at] then return false end
    seen[at] = true
    return true
  end
end

---@class aegis.cache.VerifyResult
---@field ok boolean Integrity ok and every entry's hash matches
---@field integrity string 'ok', or what SQLite's integrity_check said (PostgreSQL: 'ok', the server checks pages)
---@field checked integer Entries re-hashed
---@field bad {namespace: string, key: string, reason: string}[]

--- Checks the cache: SQLite's `quick_check` (or `integrity_check` with
--- `opts.full`), then re-hashes every entry, page by page (no long read
--- transaction). Bad entries are listed; with `opts.quarantine` they are
--- also moved to quarantine.
---@param opts? {full?: boolean, quarantine?: boolean}
---@return aegis.cache.VerifyResult? result
---@return string? err
---@return string? code
function Cache:verify(opts)
  checkopen(self, 'verify')
  if opts ~= nil and type(opts) ~= 'table' then argerr('verify', 1, 'table expected, got ' .. type(opts)) end
  opts = opts or {}
  local db = self.db
  local out = { ok = true, integrity = 'ok', checked = 0, bad = {} }
  if db.kind == 'sqlite' then
    local rows, msg, code = db:query(opts.full and 'PRAGMA integrity_check' or 'PRAGMA quick_check')
    if not rows then
      out.ok, out.integrity = false, msg_of(msg)
      if code ~= 'corrupt' then return nil, 'cache: verify: ' .. msg_of(msg), code end
      return out
    end
    local lines = {}
    for _, r in ipairs(rows) do
      local _, v = next(r)
      lines[#lines + 1] = tostring(v)
    end
    out.integrity = table.concat(lines, '; ')
    if out.integrity ~= 'ok' then out.ok = false end
  end
  local last_ns, last_key = '', ''
  local moving = page_guard(last_ns, last_key)
  while true do
    local rows, msg, code = db:query([[SELECT namespace, key, response, response_hash, provider, model
  FROM cache_entries WHERE namespace > $1 OR (namespace = $1 AND key > $2) ORDER BY namespace, key LIMIT 200]],
      last_ns, last_key)
    if not rows then
      out.ok = false
      out.bad[#out.bad + 1] = { namespace = last_ns, key = last_key, reason = msg_of(msg) }
      if code ~= 'corrupt' then return nil, 'cache: verify: ' .. msg_of(msg), code end
      break
    end
    if #rows == 0 then break end
    for _, r in ipairs(rows) do
      out.checked = out.checked + 1
      local reason
      if not verifies(r.namespace, r.key, r.response, r.response_hash) then
        reason = 'response hash mismatch'
      elseif not response_of(split(r.response)) then
        reason = 'response unreadable'
      end
      if reason then
        out.ok = false
        out.bad[#out.bad + 1] = { namespace = r.namespace, key = r.key, reason = reason }
        if opts.quarantine then quarantine(self, r.namespace, r.key, r, reason) end
      end
    end
    local last = rows[#rows]
    if not moving(last) then  -- a damaged index
      out.ok = false
      break
    end
    last_ns, last_key = last.namespace, last.key
  end
  return out
end

local EXPORT_FIELDS = { 'namespace', 'key', 'provider', 'model', 'endpoint', 'bytes', 'input_tokens',
  'output_tokens', 'cost', 'scaffold_id', 'prefix_hash', 'created_at', 'last_used_at', 'hits', 'response_hash',
  'request', 'response' }

--- Writes every verified entry (or one namespace's) to `path` as JSON
--- lines: a header `{"aegis_cache_export": 1, "key_version": N}`, then one
--- entry per line with its `response` (canonical JSON text) and
--- `response_hash`. Entries that fail their check are skipped and counted.
---@param path string
---@param opts? {namespace?: string}
---@return {exported: integer, skipped: integer}? result
---@return string? err `cache: export '<path>': <detail>`
---@return string? code 'io' or the store's
function Cache:export(path, opts)
  checkopen(self, 'export')
  if type(path) ~= 'string' then argerr('export', 1, 'string expected, got ' .. type(path)) end
  local ns = opts and opts.namespace
  local f, ferr = io.open(path, 'wb')
  if not f then return nil, ("cache: export '%s': %s"):format(path, ferr), 'io' end
  local function fail(msg, code)
    f:close()
    return nil, ("cache: export '%s': %s"):format(path, msg_of(msg)), code
  end
  f:write(json.canonical({ aegis_cache_export = 1, key_version = M.KEY_VERSION }), '\n')
  local out = { exported = 0, skipped = 0 }
  local last_ns, last_key = ns or '', ''
  local moving = page_guard(last_ns, last_key)
  local sel = 'SELECT ' .. table.concat(EXPORT_FIELDS, ', ') .. [[ FROM cache_entries
  WHERE (namespace > $1 OR (namespace = $1 AND key > $2))]] .. (ns and ' AND namespace = $3' or '')
    .. ' ORDER BY namespace, key LIMIT 200'
  while true do
    local rows, msg, code
    if ns then rows, msg, code = self.db:query(sel, last_ns, last_key, ns)
    else rows, msg, code = self.db:query(sel, last_ns, last_key) end
    if not rows then return fail(msg, code) end
    if #rows == 0 then break end
    local last = rows[#rows]
    if not moving(last) then break end  -- a damaged index
    last_ns, last_key = last.namespace, last.key
    for _, r in ipairs(rows) do
      if verifies(r.namespace, r.key, r.response, r.response_hash)
        and response_of(split(r.response)) then
        local ok, line = pcall(json.canonical, r)
        if ok then
          local w, werr = f:write(line, '\n')
          if not w then return fail(werr, 'io') end
          out.exported = out.exported + 1
        else
          out.skipped = out.skipped + 1
        end
      else
        out.skipped = out.skipped + 1
      end
    end
  end
  local ok, cerr = f:close()
  if not ok then return nil, ("cache: export '%s': %s"):format(path, cerr), 'io' end
  return out
end

--- Reads a file written by `export` and stores its entries, re-checking
--- each response against its hash (a mismatch, an unreadable line or a key
--- of another `key_version` is skipped and counted as bad). An entry
--- already present is kept. Written in batches of 200 per transaction.
---@param path string
---@param opts? {namespace?: string} Put every entry in this namespace instead of its own
---@return {imported: integer, present: integer, bad: integer}? result
---@return string? err `cache: import '<path>': <detail>`
---@return string? code 'io', 'parse' or the store's
function Cache:import(path, opts)
  checkopen(self, 'import')
  if type(path) ~= 'string' then argerr('import', 1, 'string expected, got ' .. type(path)) end
  local ns = opts and opts.namespace
  local f, ferr = io.open(path, 'rb')
  if not f then return nil, ("cache: import '%s': %s"):format(path, ferr), 'io' end
  local header = f:read('l')
  local okh, h = pcall(json.decode, header or '')
  if not okh or type(h) ~= 'table' or h.aegis_cache_export ~= 1 then
    f:close()
    return nil, ("cache: import '%s': not an aegis cache export (no header line)"):format(path), 'parse'
  end
  local out = { imported = 0, present = 0, bad = 0 }
  if h.key_version ~= M.KEY_VERSION then
    for _ in f:lines() do out.bad = out.bad + 1 end
    f:close()
    return out
  end
  local batch = {}
  local function write()
    if #batch == 0 then return true end
    local ok, msg, code = self.db:tx(function(db)
      for _, r in ipairs(batch) do
        local n, m, c = db:exec([[INSERT INTO cache_entries (namespace, key, provider, model, endpoint, bytes,
  input_tokens, output_tokens, cost, scaffold_id, prefix_hash, created_at, last_used_at, hits, response_hash,
  request, response) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, $15, $16)
  ON CONFLICT (namespace, key) DO NOTHING]], r.namespace, r.key, r.provider, r.model, r.endpoint,
          math.tointeger(r.bytes) or #r.response, math.tointeger(r.input_tokens), math.tointeger(r.output_tokens),
          r.cost, r.scaffold_id, r.prefix_hash, math.tointeger(r.created_at) or now_ms(),
          math.tointeger(r.last_used_at) or now_ms(), r.response_hash, r.request, store.blob(r.response))
        if not n then return nil, m, c end
        if n > 0 then out.imported = out.imported + 1 else out.present = out.present + 1 end
      end
      return true
    end)
    batch = {}
    return ok, msg, code
  end
  for line in f:lines() do
    local ok, r = pcall(json.decode, line)
    local good = ok and type(r) == 'table' and is_key(r.key) and type(r.response) == 'string'
      and type(r.namespace) == 'string' and type(r.provider) == 'string' and type(r.model) == 'string'
      and verifies(r.namespace, r.key, r.response, r.response_hash)
    if good then good = response_of(split(r.response)) ~= nil end
    if good then
      if ns and ns ~= r.namespace then  -- verified as written; hashed again for its new namespace
        r.namespace = ns
        r.response_hash = response_hash(ns, r.key, r.response)
      end
      batch[#batch + 1] = r
      if #batch >= 200 then
        local wok, msg, code = write()
        if not wok then f:close(); return nil, ("cache: import '%s': %s"):format(path, msg_of(msg)), code end
      end
    else
      out.bad = out.bad + 1
    end
  end
  f:close()
  local wok, msg, code = write()
  if not wok then return nil, ("cache: import '%s': %s"):format(path, msg_of(msg)), code end
  return out
end

--- Removes every entry (or one namespace's), with its events, counters,
--- quarantine rows and leases, in batches of short transactions. The
--- database file stays where it is.
---@param opts? {namespace?: string}
---@return integer? removed Entries removed
---@return string? err
---@return string? code
function Cache:clear(opts)
  checkopen(self, 'clear')
  if opts ~= nil and type(opts) ~= 'table' then argerr('clear', 1, 'table expected, got ' .. type(opts)) end
  flush(self, true)
  local ns = opts and opts.namespace
  local db = self.db
  local removed = 0
  local function fail(msg, code) return nil, 'cache: clear: ' .. msg_of(msg), code end
  while true do
    local rows, msg, code
    if ns then
      rows, msg, code = db:query('SELECT namespace, key, bytes FROM cache_entries WHERE namespace = $2 LIMIT $1',
        BATCH, ns)
    else
      rows, msg, code = db:query('SELECT namespace, key, bytes FROM cache_entries LIMIT $1', BATCH)
    end
    if not rows then return fail(msg, code) end
    if #rows == 0 then break end
    local n, m, c = delete_rows(db, rows)
    if not n then return fail(m, c) end
    removed = removed + n
  end
  for _, t in ipairs({ 'cache_events', 'cache_counters', 'cache_quarantine', 'cache_leases' }) do
    local n, msg, code
    if ns then n, msg, code = db:exec('DELETE FROM ' .. t .. ' WHERE namespace = $1', ns)
    else n, msg, code = db:exec('DELETE FROM ' .. t) end
    if not n then return fail(msg, code) end
  end
  return removed
end

--- Writes what is pending (hit counters, events) and closes the store if
--- the cache opened it. Idempotent; also `__close` and `__gc`.
---@return boolean ok
function Cache:close()
  if getmetatable(self) ~= Cache then argerr('close', 1, 'aegis.cache.Cache expected, got ' .. type(self)) end
  if self.closed then return true end
  pcall(flush, self, true)
  self.closed = true
  if self.fast then self.fast:close() end
  if self.sdb then self.sdb:close() end
  if self.owned then self.db:close() end
  return true
end

Cache.__close = Cache.close
Cache.__gc = function(self) if not self.closed then pcall(Cache.close, self) end end

function Cache:__tostring()
  return ('aegis.cache.Cache (%s, %s%s)'):format(self.db.url or '?', self.namespace, self.closed and ', closed' or '')
end

-- }======================================================

M.declare_config()

return M
