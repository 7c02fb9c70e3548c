--- Provider calls: loads an adapter (`providers/<name>.lua`) and makes one
--- request through it, `aegis.http` and `aegis.retry`.
---
--- An adapter is user-level Lua found with `aegis.path.find('providers',
--- name)` (the directories of AEGIS_PATH first, then the copies built into
--- the binary) and run in the sandbox. It turns a provider-neutral request
--- (`aegis.provider.Resolved`, see docs/providers.md) into an HTTP request
--- and a response into `{text, usage, finish}`. It never sees an API key:
--- this module adds the authentication header after `build_request`, reads
--- the key from the environment, and removes it from every message it
--- returns.
local clock = require('aegis.clock')
local errors = require('aegis.errors')
local path = require('aegis.path')
local prices = require('aegis.prices')
local sandbox = require('aegis.sandbox')
local sbcore = require('aegis.core.sandbox')

local M = {}

--- Budget of each call into an adapter (build_request, parse_response, one
--- stream event, classify_error): generous for a pure function, small
--- enough to stop a runaway loop.
M.budget = { instructions = 50000000, seconds = 10, memory = 256 * 1024 * 1024 }

-- {====================================================== helpers for adapters

--- Pure helpers every adapter receives as `ctx.util` (the chunk's `...`).
local util = {}
M.util = util

--- A token count from a provider's usage object: a non-negative integer
--- (an integral float is converted), or nil when the field is missing,
--- null or not a count. Nil means unknown, never 0.
---@param v any
---@return integer?
function util.count(v)
  if type(v) ~= 'number' then return nil end
  local n = math.tointeger(v)
  if n == nil or n < 0 then return nil end
  return n
end

--- The field at `t.a.b.c` for `util.get(t, 'a', 'b', 'c')`, or nil when a
--- step is missing or not a table.
---@param t any
---@return any
function util.get(t, ...)
  for i = 1, select('#', ...) do
    if type(t) ~= 'table' then return nil end
    t = t[select(i, ...)]
  end
  return t
end

--- Sum of counts, nil when any of them is unknown.
---@return integer?
function util.sum(...)
  local total = 0
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    if v == nil then return nil end
    total = total + v
  end
  return total
end

--- Renders a resolved request's prompt: `prefix` is the system text and the
--- stable blocks joined with a blank line (the bytes a prefix cache keys
--- on), `volatile` the volatile blocks joined the same way (nil when there
--- are none). `stable` and `volatile_blocks` are the blocks themselves.
---@param resolved aegis.provider.Resolved
---@return {prefix: string?, prefix_parts: string[], stable: table[], volatile: string?, volatile_blocks: table[]}
function util.render(resolved)
  local parts, stable, vol_parts, vol = {}, {}, {}, {}
  if type(resolved.system) == 'string' and resolved.system ~= '' then parts[1] = resolved.system end
  for _, b in ipairs(resolved.blocks or {}) do
    if b.stability == 'stable' then
      stable[#stable + 1] = b
      parts[#parts + 1] = b.content
    else
      vol[#vol + 1] = b
      vol_parts[#vol_parts + 1] = b.content
    end
  end
  return {
    prefix = #parts > 0 and table.concat(parts, '\n\n') or nil,
    prefix_parts = parts,
    stable = stable,
    volatile = #vol_parts > 0 and table.concat(vol_parts, '\n\n') or nil,
    volatile_blocks = vol,
  }
end

--- A response header (names are lowercase in `res.headers`).
---@param res {headers?: table<string, string>}
---@param name string Lowercase name
---@return string?
function util.header(res, name)
  local h = res and res.headers
  return type(h) == 'table' and h[name] or nil
end

--- Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an
--- HTTP date), or nil (`aegis.retry.retry_after`).
---@param res {headers?: table<string, string>}
---@return number?
function util.retry_after(res)
  local h = res and res.headers
  return require('aegis.retry').retry_after(type(h) == 'table' and h or {})
end

-- Status codes worth another attempt (RELIABILITY.md "HTTP").
local RETRY_STATUS = { [408] = true, [409] = true, [429] = true }

--- The generic classification of a failed HTTP response: 408, 409, 429,
--- 5xx (529 included) are retryable, `x-should-retry` overrides, `wait`
--- from `retry-after-ms`/`retry-after`; `quota` when `quota` is true
--- (a quota or spend-limit 429 is never retried).
---@param res {status: integer, headers?: table<string, string>}
---@param quota? boolean
---@return {retryable: boolean, wait?: number, quota?: boolean}
function util.classify_http(res, quota)
  local status = res.status or 0
  local retryable = RETRY_STATUS[status] or (status >= 500 and status <= 599) or false
  local should = util.header(res, 'x-should-retry')
  if should == 'true' then retryable = true elseif should == 'false' then retryable = false end
  if quota then retryable = false end
  return { retryable = retryable, wait = util.retry_after(res), quota = quota or nil }
end

--- Whether an error message speaks of a quota, a spend limit or billing.
---@param msg any
---@return boolean
function util.is_quota_message(msg)
  if type(msg) ~= 'string' then return false end
  local m = msg:lower()
  return m:find('quota', 1, true) ~= nil or m:find('spend limit', 1, true) ~= nil
    or m:find('spending limit', 1, true) ~= nil or m:find('credit balance', 1, true) ~= nil
    or m:find('billing', 1, true) ~= nil
end

--- Joins a base URL and a path with exactly one '/'.
---@param base string
---@param p string
---@return string
function util.join_url(base, p)
  return (base:gsub('/+$', '')) .. '/' .. (p:gsub('^/+', ''))
end

-- }======================================================

-- {====================================================== checking requests

local function argerr(fname, n, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

--- The provider-neutral request an adapter's `build_request` receives
--- (docs/providers.md "The resolved request").
---@class aegis.provider.Resolved
---@field model string Model name as the provider spells it
---@field blocks aegis.provider.Block[] Prompt blocks, stable ones first
---@field system? string System text, before the stable blocks
---@field messages? {role: string, content: string}[] Turns after the blocks
---@field params table Sampling and other parameters (temperature, max_tokens, ...; unknown ones pass through)
---@field stream? boolean Ask for Server-Sent Events
---@field cache? {ttl?: '5m'|'1h'} Prompt-cache hints
---@field base_url string Where the provider is
---@field options table Adapter options (api, version, route, slots, ...)

---@class aegis.provider.Block
---@field kind string 'requirements', 'file_map', 'style_guide', 'context', 'task', ...
---@field stability 'stable'|'volatile'
---@field content string
---@field breakpoint? boolean Ask for a cache breakpoint after this stable block (Anthropic)

-- Validates the neutral parts of a request (raises on misuse).
local function check_resolved(r, fname)
  if type(r.model) ~= 'string' or r.model == '' then argerr(fname, 1, 'model must be a non-empty string') end
  if r.blocks ~= nil and type(r.blocks) ~= 'table' then argerr(fname, 1, 'blocks must be a list') end
  local seen_volatile = false
  for i, b in ipairs(r.blocks or {}) do
    if type(b) ~= 'table' then argerr(fname, 1, ('blocks[%d] must be a table'):format(i)) end
    if type(b.content) ~= 'string' then argerr(fname, 1, ('blocks[%d].content must be a string'):format(i)) end
    if b.kind ~= nil and type(b.kind) ~= 'string' then
      argerr(fname, 1, ('blocks[%d].kind must be a string'):format(i))
    end
    if b.stability == 'volatile' then
      seen_volatile = true
    elseif b.stability == 'stable' then
      if seen_volatile then
        argerr(fname, 1, ('blocks[%d] is stable after a volatile block (stable blocks come first)'):format(i))
      end
    else
      argerr(fname, 1, ("blocks[%d].stability must be 'stable' or 'volatile'"):format(i))
    end
  end
  if r.system ~= nil and type(r.system) ~= 'string' then argerr(fname, 1, 'system must be a string') end
  if r.messages ~= nil then
    if type(r.messages) ~= 'table' then argerr(fname, 1, 'messages must be a list') end
    for i, m in ipairs(r.messages) do
      if type(m) ~= 'table' or type(m.role) ~= 'string' or type(m.content) ~= 'string' then
        argerr(fname, 1, ('messages[%d] must be {role = string, content = string}'):format(i))
      end
    end
  end
  if r.params ~= nil and type(r.params) ~= 'table' then argerr(fname, 1, 'params must be a table') end
  if r.cache ~= nil then
    if type(r.cache) ~= 'table' then argerr(fname, 1, 'cache must be a table') end
    if r.cache.ttl ~= nil and r.cache.ttl ~= '5m' and r.cache.ttl ~= '1h' then
      argerr(fname, 1, "cache.ttl must be '5m' or '1h'")
    end
  end
  if r.options ~= nil and type(r.options) ~= 'table' then argerr(fname, 1, 'options must be a table') end
end

-- }======================================================

-- {====================================================== loading adapters

local REQUIRED = { 'build_request', 'parse_response', 'parse_stream_event', 'classify_error' }

-- Runs `fn(...)` of an adapter under M.budget; returns true, results or
-- false, msg.
local function guarded(adapter_name, fname, fn, ...)
  local b = M.budget
  local function finish(ok, ...)
    if ok then return true, ... end
    local kind, msg = ...
    if kind ~= 'runtime' then msg = ('%s (%s)'):format(msg, kind) end
    return false, ("provider: adapter '%s' %s: %s"):format(adapter_name, fname, tostring(msg))
  end
  return finish(sbcore.call(b.instructions, b.seconds, b.memory, '@providers/' .. adapter_name .. '.lua', fn, ...))
end

local load_adapter

-- The `ctx` an adapter chunk receives as `...`: helpers, and `require`
-- for building on another adapter (a fresh copy, so nothing is shared).
local readonly_util = setmetatable({}, {
  __index = util,
  __newindex = function() error('provider: ctx.util is read-only', 2) end,
  __metatable = false,
})

local function make_ctx(aegis_path, depth)
  return {
    util = readonly_util,
    require = function(name)
      if type(name) ~= 'string' then error("bad argument #1 to 'require' (string expected)", 2) end
      if depth >= 8 then error("provider: adapters require each other too deeply ('" .. name .. "')", 2) end
      local a, err = load_adapter(name, aegis_path, depth + 1)
      if not a then error(err, 2) end
      return a
    end,
  }
end

load_adapter = function(name, aegis_path, depth)
  local found, err, code = path.find('providers', name, aegis_path)
  if not found then return nil, err, code end
  local env = sandbox.env()
  local ok, res = sandbox.run({
    source = found.source, name = found.name, env = env,
    args = { make_ctx(aegis_path, depth or 0) },
    budget = M.budget,
  })
  if not ok then
    return nil, ("provider: load '%s': %s"):format(found.path, res.msg), 'adapter'
  end
  if type(res) ~= 'table' then
    return nil, ("provider: load '%s': must return a table, got %s"):format(found.path, type(res)), 'adapter'
  end
  for _, f in ipairs(REQUIRED) do
    if type(res[f]) ~= 'function' then
      return nil, ("provider: load '%s': %s must be a function"):format(found.path, f), 'adapter'
    end
  end
  if res.name ~= nil and type(res.name) ~= 'string' then
    return nil, ("provider: load '%s': name must be a string"):format(found.path), 'adapter'
  end
  res.name = res.name or name
  return res
end

--- Loads an adapter by name: `providers/<name>.lua` (or
--- `providers/<name>/init.lua`) from the config's `paths`, then AEGIS_PATH,
--- then the built-in one, run in the sandbox. Each call loads a fresh copy.
---@param name string
---@param aegis_path? string Instead of `$AEGIS_PATH`
---@return table? adapter
---@return string? err `path: no provider 'x' in AEGIS_PATH (...) or built-ins`, or why it did not load
---@return string? code 'not_found', 'invalid', 'io' or 'adapter'
function M.load(name, aegis_path)
  if type(name) ~= 'string' then argerr('load', 1, 'string expected, got ' .. type(name)) end
  if aegis_path == nil then
    -- the config's `paths` come before $AEGIS_PATH
    local ok, cfg = pcall(function() return require('aegis.config').get() end)
    if ok and type(cfg.paths) == 'table' and #cfg.paths > 0 then
      aegis_path = table.concat(cfg.paths, ':') .. ':' .. (os.getenv('AEGIS_PATH') or '')
    end
  end
  return load_adapter(name, aegis_path, 0)
end

--- Names of the adapters that `load` can find.
---@return string[]
function M.list()
  return path.list('providers')
end

-- }======================================================

-- {====================================================== configuration

local cfg_declared = false

--- Declares the `providers` and `prices` sections of aegis.config.lua:
--- `providers = {openai = {base_url =, api_key_env =, options = {...}}}`
--- and `prices = {openai = {['gpt-x'] = {input =, output =, ...}}}`.
--- Called when this module loads.
function M.declare_config()
  if cfg_declared then return end
  cfg_declared = true
  local config = require('aegis.config')
  local s = require('aegis.schema')
  local entry = s.object({
    base_url = s.string({ min = 1 }):optional():describe('Base URL of the provider (see docs/providers.md)'),
    api_key_env = s.string({ min = 1 }):optional()
      :describe('Environment variable holding the API key (default per adapter: OPENAI_API_KEY, ...)'),
    options = s.record(s.string(), s.any()):optional():describe('Adapter options (api, version, route, slots, ...)'),
  })
  config.declare('providers', s.record(s.string(), entry):default({})
    :describe('Per-provider settings: base_url, api_key_env, adapter options'))
  config.declare('prices', prices.schema(s):default({})
    :describe('Prices per provider and model, over providers/prices.json (USD per 1M tokens)'))
end

local function provider_config(name)
  local ok, cfg = pcall(function() return require('aegis.config').get() end)
  if not ok then error(cfg, 0) end
  local p = cfg.providers and cfg.providers[name]
  return p or {}, cfg.prices
end

-- }======================================================

-- {====================================================== secrets

-- Forms of a key that could show up in text: literal, URL-encoded,
-- JSON-escaped, and base64 (with or without its padding).
local function b64(s)
  local chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  return ((s:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#s % 3 + 1])
end

--- Removes every occurrence of `secret` (and its URL-encoded, JSON-escaped
--- and base64 forms) from `text`, replacing it with `[redacted]`.
---@param text any Non-strings are returned as they are
---@param secret? string
---@return any
function M.redact(text, secret)
  if type(text) ~= 'string' or type(secret) ~= 'string' or #secret < 4 then return text end
  local forms = {
    secret,
    (secret:gsub('[^%w%-%._~]', function(c) return ('%%%02X'):format(c:byte()) end)),
    (secret:gsub('[\\"/]', '\\%0')),
    (b64(secret):gsub('=+$', '')),
  }
  for i, f in ipairs(forms) do
    local pat = f:gsub('%p', '%%%0')
    if i == #forms then pat = pat .. '=*' end  -- base64 padding
    if #f >= 4 then text = text:gsub(pat, '[redacted]') end
  end
  return text
end

-- }======================================================

-- {====================================================== calls

--- Options of `provider.call`, on top of the `Resolved` fields.
---@class aegis.provider.CallOpts: aegis.provider.Resolved
---@field provider string Adapter name ('openai', 'anthropic', 'vllm', 'sglang', 'llamacpp', or one on AEGIS_PATH)
---@field base_url? string Overrides env and config
---@field api_key_env? string Environment variable with the key (overrides the config and the adapter's default)
---@field on_delta? fun(text: string) Called with each piece of a streamed answer as it arrives
---@field timeout? {connect?: number, total?: number, low_speed_bytes?: integer, low_speed_seconds?: number}
---@field max_bytes? integer Response byte cap (default 32 MiB)
---@field retry? table Overrides of the retry policy (`aegis.retry.policy`)
---@field http? table The HTTP module to use (default `aegis.http`; for tests)
---@field aegis_path? string Instead of `$AEGIS_PATH`
---@field getenv? fun(name: string): string? Where keys and base URLs are read (default os.getenv)
---@field on_warning? fun(msg: string) Receives warnings (parameters left out, cost unknown); default: stderr

--- The result of a call.
---@class aegis.provider.Result
---@field text string
---@field provider string
---@field model string
---@field usage aegis.provider.Usage
---@field cost? number USD, nil when unknown (no price for the model, or usage unknown)
---@field cost_note? string Why the cost is unknown
---@field latency_ms integer Wall time of the whole call, retries included
---@field finish? string Why generation stopped ('stop', 'length', 'end_turn', ...)
---@field attempts integer HTTP attempts made
---@field warnings string[] Things the adapter changed or dropped

---@class aegis.provider.Usage
---@field input? integer Every input token, cached and written ones included (as OpenTelemetry counts)
---@field cached_input? integer Input tokens read from the provider's prefix cache
---@field cache_write_5m? integer Input tokens written to a 5-minute cache
---@field cache_write_1h? integer Input tokens written to a 1-hour cache
---@field output? integer

local DEFAULT_TIMEOUT = { connect = 5, total = 600, low_speed_bytes = 1, low_speed_seconds = 60 }
M.MAX_BYTES = 32 * 1024 * 1024

-- Warnings go to stderr unless the caller takes them (`on_warning`).
local function default_warning(msg)
  io.stderr:write('aegis-run: warning: ', msg, '\n')
end

local function fail(code, msg, fields)
  return nil, errors.new(code, msg, fields)
end

-- Which base URL: argument, environment, config, adapter default.
local function base_url_for(adapter, opts, pcfg, getenv)
  if opts.base_url then return opts.base_url, 'argument' end
  local envname = adapter.base_url_env
  if type(envname) == 'string' then
    local v = getenv(envname)
    if v and v ~= '' then return v, envname end
  end
  if pcfg.base_url then return pcfg.base_url, 'config' end
  if type(adapter.base_url) == 'string' then return adapter.base_url, 'default' end
  return nil
end

local function merge(a, b)
  local t = {}
  for k, v in pairs(a or {}) do t[k] = v end
  for k, v in pairs(b or {}) do t[k] = v end
  return t
end

local function deepcopy(v)
  if type(v) ~= 'table' then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deepcopy(x) end
  return setmetatable(t, getmetatable(v))
end

-- Checks and completes what build_request returned.
local function check_request(aname, req, base)
  if type(req) ~= 'table' then
    return nil, ("provider: adapter '%s' build_request: must return a table, got %s"):format(aname, type(req))
  end
  local url = req.url
  if url == nil then
    if type(req.path) ~= 'string' then
      return nil, ("provider: adapter '%s' build_request: needs url or path"):format(aname)
    end
    if not base then return nil, ("provider: no base URL for '%s'"):format(aname) end
    url = util.join_url(base, req.path)
  end
  if type(url) ~= 'string' or not url:find('^https?://') then
    return nil, ("provider: adapter '%s' build_request: url must be http(s), got '%s'"):format(aname, tostring(url))
  end
  local headers = {}
  for k, v in pairs(req.headers or {}) do
    if type(k) == 'string' and type(v) == 'string' then headers[k:lower()] = v end
  end
  return { method = req.method or 'POST', url = url, headers = headers, body = req.body, warnings = req.warnings }
end

--- Builds the HTTP request an adapter makes for `opts`, without sending it
--- and without credentials (for `--dry-run`, tests and docs).
---@param opts aegis.provider.CallOpts
---@return {method: string, url: string, headers: table<string, string>, body: any, warnings?: string[]}? req
---@return aegis.Error? err
---@return table? adapter
function M.build(opts)
  return M._build(opts, 'build')
end

-- build, with the name of the public function for argument errors
function M._build(opts, fname)
  if type(opts) ~= 'table' then argerr(fname, 1, 'table expected, got ' .. type(opts)) end
  if type(opts.provider) ~= 'string' then argerr(fname, 1, 'provider must be a string') end
  check_resolved(opts, fname)
  local adapter, lerr, lcode = M.load(opts.provider, opts.aegis_path)
  if not adapter then return fail(lcode == 'not_found' and 'config' or lcode or 'adapter', lerr) end
  local pcfg = provider_config(adapter.name)
  local getenv = opts.getenv or os.getenv
  local base = base_url_for(adapter, opts, pcfg, getenv)
  local resolved = {
    model = opts.model,
    blocks = deepcopy(opts.blocks or {}),
    system = opts.system,
    messages = deepcopy(opts.messages),
    params = deepcopy(opts.params or {}),
    stream = opts.stream and true or false,
    cache = deepcopy(opts.cache or {}),
    base_url = base,
    options = merge(pcfg.options, opts.options),
  }
  local ok, req = guarded(adapter.name, 'build_request', adapter.build_request, resolved)
  if not ok then return fail('adapter', req) end
  local checked, err = check_request(adapter.name, req, base)
  if not checked then return fail('adapter', err) end
  return checked, nil, adapter, resolved, pcfg
end

-- Decodes a JSON body, or nil.
local function decode(body)
  if type(body) ~= 'string' or body == '' then return nil end
  local v = require('aegis.json').decode(body)
  return v
end

-- {====================================================== one request's pipeline

-- The retry settings of RELIABILITY.md "HTTP", under opts.retry.
local DEFAULT_POLICY = { max_retries = 2, base = 0.5, cap = 8, max_wait = 60 }

-- A call on its way: what `prepare` made of the options (adapter, request
-- with credentials, policy) and the state of its current attempt. `call`
-- drives one through `aegis.retry.run`; `call_all` drives many through
-- rounds of `http.all`. Both use `attempt_request`, `classify` and
-- `finish` below, so a request goes through the same steps either way.
---@class aegis.provider.Job
---@field adapter table
---@field aname string
---@field req {method: string, url: string, headers: table<string, string>, body: any, warnings?: string[]}
---@field body? string The body as sent
---@field resolved aegis.provider.Resolved
---@field key? string The API key (redacted from every message)
---@field opts aegis.provider.CallOpts
---@field warn fun(msg: string)
---@field policy table Retry policy options (breaker resolved)
---@field t0 number When the call started (monotonic seconds)
---@field attempts integer HTTP attempts made
---@field st? table The current attempt's stream state

-- Builds the request, adds the key and the default headers, and makes the
-- retry policy: everything before the first attempt. Raises on misuse;
-- returns nil, err for a failure of the adapter or the configuration.
local function prepare(opts, fname, t0)
  if type(opts) ~= 'table' then argerr(fname, 1, 'table expected, got ' .. type(opts)) end
  if opts.on_delta ~= nil and type(opts.on_delta) ~= 'function' then
    argerr(fname, 1, 'on_delta must be a function')
  end
  local req, berr, adapter, resolved, pcfg = M._build(opts, fname)
  if not req then return nil, berr end
  local aname = adapter.name
  local getenv = opts.getenv or os.getenv
  local warn = opts.on_warning or default_warning
  for _, w in ipairs(req.warnings or {}) do warn(w) end

  -- credentials: added here, never seen by the adapter
  local auth = type(adapter.auth) == 'table' and adapter.auth or nil
  local key
  if auth then
    local envname = opts.api_key_env or pcfg.api_key_env or auth.env
    key = type(envname) == 'string' and getenv(envname) or nil
    if key == '' then key = nil end
    if key == nil and auth.required then
      return fail('config', ("provider: %s: no API key (set %s)"):format(aname, tostring(envname)))
    end
    if key then
      local hname = (type(auth.header) == 'string' and auth.header or 'authorization'):lower()
      req.headers[hname] = type(auth.scheme) == 'string' and (auth.scheme .. ' ' .. key) or key
    end
  end

  local retry = require('aegis.retry')
  local body = req.body
  if type(body) == 'table' then body = require('aegis.json').canonical(body) end
  if body ~= nil and req.headers['content-type'] == nil then req.headers['content-type'] = 'application/json' end
  req.headers['accept'] = req.headers['accept'] or (resolved.stream and 'text/event-stream' or 'application/json')

  local policy = merge(DEFAULT_POLICY, opts.retry)
  if policy.breaker == nil then
    policy.breaker = retry.breaker(aname .. ' ' .. (req.url:match('^(https?://[^/]+)') or req.url))
  elseif policy.breaker == false then
    policy.breaker = nil
  end
  return {
    adapter = adapter, aname = aname, req = req, body = body, resolved = resolved, key = key,
    opts = opts, warn = warn, policy = policy, t0 = t0 or clock.monotonic(), attempts = 0,
  }
end

local function clean(job, s)
  return M.redact(s, job.key)
end

-- The SSE callback of one job: feeds each event to the adapter and keeps
-- the text, the adapter's state and the first error in job.st.
local function stream_handler(job)
  local aname, adapter, resolved, opts = job.aname, job.adapter, job.resolved, job.opts
  return function(ev)
    local st = job.st
    local ok, out = guarded(aname, 'parse_stream_event', adapter.parse_stream_event, ev, st.state, resolved)
    if not ok then
      st.err = { code = 'adapter', msg = out }
      return false
    end
    if type(out) ~= 'table' then return nil end
    if out.error then
      local e = out.error
      st.err = {
        code = 'stream',
        msg = ('provider: %s stream error: %s'):format(aname,
          tostring(type(e) == 'table' and (e.message or e.type) or e)),
        retryable = type(e) == 'table' and e.retryable == true,
      }
      return false
    end
    if type(out.delta) == 'string' and out.delta ~= '' then
      st.parts[#st.parts + 1] = out.delta
      st.delivered = true
      if opts.on_delta then opts.on_delta(out.delta) end
    end
    if out.done then
      st.done = true
      return false  -- nothing after the last event matters
    end
    return nil
  end
end

-- Starts the next attempt of a job: counts it, resets its stream state and
-- gives the `aegis.http` request to send.
local function attempt_request(job)
  job.attempts = job.attempts + 1
  job.st = { state = {}, parts = {}, delivered = false, done = false }
  if job.resolved.stream and not job.on_event then job.on_event = stream_handler(job) end
  local req, opts = job.req, job.opts
  return {
    method = req.method, url = req.url, headers = req.headers, body = job.body,
    timeout = merge(DEFAULT_TIMEOUT, opts.timeout), max_bytes = opts.max_bytes or M.MAX_BYTES,
    on_event = job.on_event,
  }
end

-- What the adapter says of a refusal (nil when it failed).
local function adapter_verdict(job, res)
  local ok, c = guarded(job.aname, 'classify_error', job.adapter.classify_error,
    { status = res.status, headers = res.headers, body = res.body, json = decode(res.body) }, job.resolved)
  if ok and type(c) == 'table' then return c end
  return nil
end

-- One attempt's outcome for the retry policy (subject: a response or
-- {err, code}).
local function classify(job, subject)
  local retry = require('aegis.retry')
  local st = job.st
  if subject.status == nil then
    if st and st.delivered then return { retryable = false, reason = 'transport' } end
    return retry.classify_http(subject)
  end
  if subject.status >= 400 then
    local c = adapter_verdict(job, subject) or retry.classify_http(subject)
    local quota = c.quota or retry.is_quota(subject)
    return { retryable = (c.retryable and not quota) and true or false, wait = c.wait,
      reason = quota and 'quota' or 'status' }
  end
  if st.err then
    return { retryable = st.err.retryable == true and not st.delivered, reason = 'stream' }
  end
  return { retryable = false }
end

-- Turns the last attempt's outcome (a response, or nil, msg, code) into the
-- call's result or error.
local function finish(job, res, msg, code)
  local aname, req, resolved, st, attempts = job.aname, job.req, job.resolved, job.st, job.attempts
  local adapter = job.adapter
  local latency_ms = math.floor((clock.monotonic() - job.t0) * 1000 + 0.5)

  if res == nil then
    if st and st.err then
      return fail(st.err.code, clean(job, st.err.msg), { attempts = attempts })
    end
    return fail(code or 'http', clean(job, ("provider: %s %s '%s': %s"):format(aname, req.method, req.url,
      tostring(msg):gsub('^http: [A-Z]+ \'[^\']*\': ', ''))), { attempts = attempts })
  end
  if res.status >= 400 then
    local j = decode(res.body)
    local detail = util.get(j, 'error', 'message') or util.get(j, 'message') or util.get(j, 'error')
    if type(detail) ~= 'string' then detail = (res.body or ''):sub(1, 200) end
    local c = adapter_verdict(job, res) or {}
    local quota = c.quota or require('aegis.retry').is_quota(res)
    return fail(quota and 'quota' or ('http_' .. res.status),
      clean(job, ("provider: %s %s '%s': %d %s"):format(aname, req.method, req.url, res.status,
        (detail:gsub('%s+', ' ')))),
      { status = res.status, attempts = attempts, retryable = (c.retryable and not quota) or false })
  end

  local text, usage, finish_reason, model, extra
  if resolved.stream then
    if st.err then return fail(st.err.code, clean(job, st.err.msg), { attempts = attempts }) end
    if not st.done then
      return fail('truncated', ("provider: %s %s '%s': stream ended before its last event"):format(
        aname, req.method, req.url), { attempts = attempts })
    end
    text = table.concat(st.parts)
    usage, finish_reason, model, extra = st.state.usage, st.state.finish, st.state.model, st.state.extra
  else
    local j = decode(res.body)
    local ok, out, perr = guarded(aname, 'parse_response', adapter.parse_response,
      { status = res.status, headers = res.headers, body = res.body, json = j }, resolved)
    if not ok then return fail('adapter', clean(job, out), { attempts = attempts }) end
    if type(out) ~= 'table' then
      return fail('parse', clean(job, ("provider: %s %s '%s': unreadable answer: %s"):format(
        aname, req.method, req.url, tostring(j == nil and 'not JSON' or perr or 'unexpected shape'))),
        { attempts = attempts })
    end
    text, usage, finish_reason, model, extra = out.text, out.usage, out.finish, out.model, out.extra
  end
  if type(text) ~= 'string' then text = '' end
  usage = M.normalize_usage(usage)
  local _, prices_cfg = provider_config(aname)
  local cost, note = prices.cost(aname, resolved.model, usage, { overrides = prices_cfg })
  if cost == nil then job.warn('cost unknown: ' .. note) end
  return {
    text = clean(job, text),
    provider = aname,
    model = resolved.model,
    served_model = type(model) == 'string' and model or nil,
    usage = usage,
    cost = cost,
    cost_note = note,
    latency_ms = latency_ms,
    finish = type(finish_reason) == 'string' and finish_reason or nil,
    extra = type(extra) == 'table' and extra or nil,
    attempts = attempts,
    warnings = req.warnings or {},
  }
end

-- }======================================================

--- Makes one call: builds the request with the adapter, adds the key from
--- the environment, sends it with retries, parses the answer (streamed or
--- not), normalises usage and prices it.
---
--- Errors come back as `nil, err`, an `aegis.errors` object: code 'config'
--- (exit 2: no such provider, no key, no base URL), 'adapter' (the adapter
--- failed), 'http_<status>' (the provider refused, after retries; `err.status`),
--- 'quota' (a quota or spend-limit refusal, never retried), 'stream' (an
--- error event mid-stream), 'truncated' (the stream ended before its last
--- event), 'parse' (an unreadable answer), or the transport's code
--- ('timeout', 'conn', 'too_large', ...). No message contains the key.
---@param opts aegis.provider.CallOpts
---@return aegis.provider.Result? result
---@return aegis.Error? err
function M.call(opts)
  local job, err = prepare(opts, 'call', clock.monotonic())
  if not job then return nil, err end
  local http = opts.http or require('aegis.http')
  local res, msg, code = require('aegis.retry').run(job.policy,
    function() return http.request(attempt_request(job)) end,
    function(subject) return classify(job, subject) end)
  return finish(job, res, msg, code)
end

--- Options of `provider.call_all`.
---@class aegis.provider.CallAllOpts
---@field concurrency? integer Requests in flight at once (default 16)
---@field budget? aegis.retry.Budget|false Retries shared by the calls (default `retry.budget{ratio = 0.2, min = 0}`)
---@field retry? table Retry policy options for every call (each call's own `retry` goes over them)
---@field http? table The HTTP module to use (default `aegis.http`; needs `all`; for tests)

-- Spreads the waits of the retries one round schedules: retry i of k gets
-- slice perm[i] of k equal slices of [0, 1), at a uniform place in it.
-- Each value is still uniform on [0, 1) (full jitter), but k retries
-- scheduled at once do not bunch up (RELIABILITY.md L4).
local function stratified(k, random)
  local perm = {}
  for i = 1, k do perm[i] = i end
  for i = k, 2, -1 do
    local j = math.min(i, math.floor(random(0, 1) * i) + 1)
    perm[i], perm[j] = perm[j], perm[i]
  end
  local u = {}
  for i = 1, k do u[i] = math.min((perm[i] - 1 + random(0, 1)) / k, 1) end
  return u
end

--- Makes many calls at once through one curl multi handle
--- (`aegis.http.all`), each through the same steps as `provider.call`
--- (adapter, key, retries, parsing, usage, cost). Rounds: every attempt
--- that is due is sent in one `http.all`; each outcome is classified; a
--- retryable one is scheduled at its own jittered time (full jitter, or the
--- server's `retry-after` plus jitter; the waits of one round are spread
--- over their range); the loop sleeps until the next is due. Retries
--- follow each call's policy (at most 2, fail fast past `max_wait`, one
--- breaker per endpoint) and take from one shared budget, so a batch sends
--- at most `1.2 ×` its calls by default. Streams work as in `call`
--- (`stream = true`, `on_delta` per call).
---
--- Results come in input order: a result as `provider.call` gives it, or
--- `{err = aegis.Error, code = string}` when that call failed (the others
--- go on). Misuse of any call raises before anything is sent.
---@param list aegis.provider.CallOpts[] The calls (their `http` field is ignored: see opts.http)
---@param opts? aegis.provider.CallAllOpts
---@return (aegis.provider.Result|{err: aegis.Error, code: string})[] results
function M.call_all(list, opts)
  if type(list) ~= 'table' then argerr('call_all', 1, 'table expected, got ' .. type(list)) end
  if opts ~= nil and type(opts) ~= 'table' then argerr('call_all', 2, 'table expected, got ' .. type(opts)) end
  opts = opts or {}
  local conc = opts.concurrency or 16
  if math.type(conc) ~= 'integer' or conc < 1 then argerr('call_all', 2, 'concurrency must be a positive integer') end
  if opts.retry ~= nil and type(opts.retry) ~= 'table' then argerr('call_all', 2, 'retry must be a table') end
  local retry = require('aegis.retry')
  local budget = opts.budget
  if budget == nil then
    budget = retry.budget({ ratio = 0.2, min = 0 })
  elseif budget == false then
    budget = nil
  elseif getmetatable(budget) ~= retry._Budget then
    argerr('call_all', 2, 'budget must come from retry.budget or be false')
  end
  local http = opts.http or require('aegis.http')
  local sched = retry.policy(merge(DEFAULT_POLICY, opts.retry))
  local t0 = sched.now()

  -- everything is checked and built before anything is sent
  local results, jobs = {}, {}
  for i = 1, #list do
    local item = list[i]
    if type(item) ~= 'table' then
      argerr('call_all', 1, ('request %d: table expected, got %s'):format(i, type(item)))
    end
    local o = setmetatable({ retry = merge(opts.retry, item.retry) }, { __index = item })
    local ok, job, err = pcall(prepare, o, 'call_all', clock.monotonic())
    if not ok then
      -- name the call in argument errors; anything else goes on as it was
      local fixed, hit
      if type(job) == 'string' then
        fixed, hit = job:gsub("^.-bad argument #1 to 'call_all' %(",
          ("bad argument #1 to 'call_all' (request %d: "):format(i), 1)
      end
      if hit == 1 then error(fixed, 2) end
      error(job, 0)
    end
    if job then
      local p = job.policy
      p.budget = nil  -- the batch's budget, below
      job.policy = retry.policy(p)
      job.index, job.at = i, t0
      jobs[#jobs + 1] = job
    else
      results[i] = { err = err, code = err.code }
    end
  end
  if budget then
    for _ = 1, #jobs do budget:deposit() end
  end

  local function done(job, ...)
    local res, err = finish(job, ...)
    results[job.index] = res or { err = err, code = err.code }
    job.finished = true
  end

  local pending = jobs
  while #pending > 0 do
    local now = sched.now()
    local due, next_at = {}, math.huge
    for _, job in ipairs(pending) do
      if job.at <= now then due[#due + 1] = job elseif job.at < next_at then next_at = job.at end
    end
    if #due == 0 then
      sched.sleep(next_at - now)
    else
      -- the breaker is asked before every attempt, as retry.run does
      local send, reqs = {}, {}
      for _, job in ipairs(due) do
        local br = job.policy.breaker
        local ok, msg = true, nil
        if br then ok, msg = br:allow() end
        if ok then
          send[#send + 1] = job
          reqs[#reqs + 1] = attempt_request(job)
        else
          done(job, nil, msg, 'circuit_open')
        end
      end
      local outs = #reqs > 0 and http.all(reqs, { concurrency = conc }) or {}
      local verdicts = {}
      for i, job in ipairs(send) do
        verdicts[i] = classify(job, outs[i])
      end
      -- Answers of one round come back together, in no order: the breakers
      -- hear the failures first, then the successes, so an endpoint that
      -- answered part of a round is not counted as down.
      for i, job in ipairs(send) do
        if verdicts[i].retryable and job.policy.breaker then job.policy.breaker:failure() end
      end
      for i, job in ipairs(send) do
        if not verdicts[i].retryable and job.policy.breaker then job.policy.breaker:success() end
      end
      local again = {}
      for i, job in ipairs(send) do
        local v, out, p = verdicts[i], outs[i], job.policy
        local function last()
          if out.status == nil then return done(job, nil, out.err, out.code) end
          return done(job, out)
        end
        if not v.retryable or job.attempts > p.max_retries then
          last()
        elseif v.wait ~= nil and v.wait > p.max_wait then
          last()  -- fail fast
        elseif budget and not budget:withdraw() then
          last()
        else
          again[#again + 1] = i
        end
      end
      local u = stratified(#again, sched.random)
      local t = sched.now()
      for k, i in ipairs(again) do
        local job, v, p = send[i], verdicts[i], send[i].policy
        local backoff = math.min(p.cap, p.base * 2 ^ (job.attempts - 1))
        local wait
        if v.wait ~= nil then
          wait = v.wait + u[k] * math.min(p.retry_after_jitter, backoff)
        else
          wait = u[k] * backoff
        end
        if p.on_retry then p.on_retry(job.attempts, wait, outs[i]) end
        job.at = t + wait
      end
      local left = {}
      for _, job in ipairs(pending) do
        if not job.finished then left[#left + 1] = job end
      end
      pending = left
    end
  end
  return results
end

--- Keeps only the five usage fields, each a count or nil.
---@param u any
---@return aegis.provider.Usage
function M.normalize_usage(u)
  u = type(u) == 'table' and u or {}
  return {
    input = util.count(u.input),
    cached_input = util.count(u.cached_input),
    cache_write_5m = util.count(u.cache_write_5m),
    cache_write_1h = util.count(u.cache_write_1h),
    output = util.count(u.output),
  }
end

-- }======================================================

M.declare_config()

return M
