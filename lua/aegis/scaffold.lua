--- Scaffolds: a prompt as an ordered list of blocks (`requirements`,
--- `file_map`, `style_guide`, `context`, `task` or a custom kind), each
--- `stable` or `volatile`, plus provider, model and parameters.
---
--- `scaffold.resolve` turns one into the request `provider.call` and
--- `cache:call` take: stable blocks first (their relative order kept), the
--- block hashes (SHA-256 of the content), the scaffold id, the stable
--- prefix hash, the HTTP request the adapter builds for it (its
--- breakpoints, `prompt_cache_key`, slot), a token and cost estimate,
--- whether the response cache holds the answer and whether the provider's
--- prefix cache is predicted to hit, and warnings about prefix breakers.
---
--- ```lua
--- local r = assert(scaffold.resolve({ provider = 'anthropic', model = 'claude-sonnet-4-5',
---   blocks = { { kind = 'requirements', stability = 'stable', content = reqs },
---              { kind = 'task', stability = 'volatile', content = 'Write src/parser.ts' } } },
---   { store = db, cache = c }))
--- local res = c:call(r.request, { scaffold = r })
--- ```
---
--- **The scaffold id names the scaffold, not one request**: it is the
--- SHA-256 of the canonical JSON of `{provider, model, params, system
--- (hash), blocks = [{kind, stability, hash}]}`, where volatile blocks keep
--- their kind and place but not their hash. So every request that fills the
--- same scaffold with another task shares its id, and a change to a stable
--- block (or to the model or a parameter) makes another scaffold. Scaffolds
--- of the same *family* (the `name` given, else the provider, the model and
--- the sequence of kinds and stabilities) are the versions of one scaffold:
--- `aegis-run cache analyze --performance` compares them to name stable
--- blocks whose content keeps changing.
---
--- With a store, blocks go to table `blocks` and scaffolds to `scaffolds`,
--- both deduplicated by hash (component `scaffold`). See docs/cache.md.
local analyze = require('aegis.cache.analyze')
local clock = require('aegis.clock')
local hash = require('aegis.hash')
local json = require('aegis.json')
local s = require('aegis.schema')
local store = require('aegis.store')

local M = {}

--- The kinds of block Aegis knows; any other kind is allowed (custom).
M.KINDS = { 'requirements', 'file_map', 'style_guide', 'context', 'task' }

--- Migration steps of the `scaffold` component: `blocks(hash, kind,
--- content, bytes, created_at)` and `scaffolds(id, family, name, provider,
--- model, params, blocks, prefix_hash, prefix_bytes, prefix_tokens,
--- warnings, created_at)`.
M.STEPS = {
  store.ddl([[
CREATE TABLE blocks (
  hash TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  content TEXT NOT NULL,
  bytes BIGINT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE scaffolds (
  id TEXT PRIMARY KEY,
  family TEXT NOT NULL,
  name TEXT,
  provider TEXT NOT NULL,
  model TEXT NOT NULL,
  params TEXT NOT NULL,
  blocks TEXT NOT NULL,
  prefix_hash TEXT,
  prefix_bytes BIGINT NOT NULL,
  prefix_tokens BIGINT NOT NULL,
  warnings TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX scaffolds_family ON scaffolds (family);
CREATE INDEX scaffolds_prefix ON scaffolds (prefix_hash);
]]),
}
store.register('scaffold', M.STEPS)

local Hash = s.string({ pattern = '^%x+$', min = 64, max = 64, description = 'SHA-256, 64 lowercase hex digits' })
local Kind = s.string({ pattern = '^[%a_][%w_%.%-]*$',
  description = "requirements, file_map, style_guide, context, task, or a custom kind ('system' for the system text)" })
local Stability = s.enum({ 'stable', 'volatile' })

--- The data models of this module, for `aegis-run schema export`.
---@type table<string, aegis.schema.Schema>
M.schemas = {
  block = s.register('block', s.object({
    kind = Kind,
    stability = Stability,
    content = s.string(),
    breakpoint = s.boolean():optional():describe('Ask for a provider cache breakpoint after this stable block'),
  }, { name = 'block', description = 'A piece of a prompt (scaffold.resolve input)' })),
  scaffold = s.register('scaffold', s.object({
    id = Hash:describe('SHA-256 of the canonical form: provider, model, params, system hash, blocks'),
    family = s.string():describe("'name:<name>', or a hash of provider, model and block kinds"),
    name = s.string():optional(),
    provider = s.string({ min = 1 }),
    model = s.string({ min = 1 }),
    params = s.record(s.string(), s.any()),
    blocks = s.array(s.object({ kind = Kind, stability = Stability, hash = Hash,
      content = s.string():optional() })):describe('In the order sent, stable first'),
    prefix_hash = Hash:optional():describe('SHA-256 of the stable prefix'),
    prefix_bytes = s.integer({ min = 0 }),
    prefix_tokens = s.integer({ min = 0 }),
    warnings = s.array(s.string()),
    created_at = s.string({ format = 'date-time' }),
  }, { name = 'scaffold', description = 'A stored scaffold (scaffold.load)' })),
}

-- Keys of the input that belong to the scaffold rather than the request.
local OWN = { name = true }

local function argerr(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function copy(v)
  if type(v) ~= 'table' then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return setmetatable(t, getmetatable(v))
end

--- Estimated tokens of a text: ceil(bytes / 4), the rule of thumb the
--- emulator also counts by (docs/emulator.md).
---@param bytes integer
---@return integer
function M.tokens(bytes)
  return (bytes + 3) // 4
end

-- Validates the input (raises bad argument #1 to 'resolve').
local function check(input, fname)
  if type(input) ~= 'table' then argerr(1, fname, 'table expected, got ' .. type(input)) end
  if type(input.provider) ~= 'string' or input.provider == '' then
    argerr(1, fname, 'provider must be a non-empty string')
  end
  if type(input.model) ~= 'string' or input.model == '' then argerr(1, fname, 'model must be a non-empty string') end
  if type(input.blocks) ~= 'table' then argerr(1, fname, 'blocks must be a list') end
  local n = #input.blocks
  for k in pairs(input.blocks) do
    if math.type(k) ~= 'integer' or k < 1 or k > n then argerr(1, fname, 'blocks must be a list') end
  end
  for i, b in ipairs(input.blocks) do
    if type(b) ~= 'table' then argerr(1, fname, ('blocks[%d] must be a table'):format(i)) end
    if type(b.kind) ~= 'string' or not b.kind:find('^[%a_][%w_%.%-]*$') then
      argerr(1, fname, ('blocks[%d].kind must be a name (letters, digits, _ . -)'):format(i))
    end
    if b.stability ~= 'stable' and b.stability ~= 'volatile' then
      argerr(1, fname, ("blocks[%d].stability must be 'stable' or 'volatile'"):format(i))
    end
    if type(b.content) ~= 'string' then argerr(1, fname, ('blocks[%d].content must be a string'):format(i)) end
  end
  if input.system ~= nil and type(input.system) ~= 'string' then argerr(1, fname, 'system must be a string') end
  if input.params ~= nil and type(input.params) ~= 'table' then argerr(1, fname, 'params must be a table') end
  if input.name ~= nil and (type(input.name) ~= 'string' or input.name == '') then
    argerr(1, fname, 'name must be a non-empty string')
  end
end

-- Stable blocks first, each group in its given order; warnings for the
-- volatile blocks that stood before a stable one.
local function order(blocks, warnings)
  local stable, volatile = {}, {}
  local first_volatile
  for i, b in ipairs(blocks) do
    if b.stability == 'stable' then
      stable[#stable + 1] = b
      if first_volatile then
        warnings[#warnings + 1] = ("prefix breaker: volatile block '%s' (#%d) comes before stable block '%s' (#%d);"
          .. ' stable blocks were moved first'):format(blocks[first_volatile].kind, first_volatile, b.kind, i)
        first_volatile = nil  -- one warning per run of volatile blocks
      end
    else
      volatile[#volatile + 1] = b
      first_volatile = first_volatile or i
    end
  end
  local out = {}
  for _, b in ipairs(stable) do out[#out + 1] = b end
  for _, b in ipairs(volatile) do out[#out + 1] = b end
  return out
end

-- The stable prefix as adapters render it (provider.util.render): the
-- system text and the stable blocks joined by a blank line.
local function prefix_of(system, blocks)
  local parts = {}
  if type(system) == 'string' and system ~= '' then parts[1] = system end
  for _, b in ipairs(blocks) do
    if b.stability == 'stable' then parts[#parts + 1] = b.content end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, '\n\n')
end

-- Bytes of the whole prompt text: system, blocks, messages.
local function prompt_bytes(input)
  local n, parts = 0, 0
  if type(input.system) == 'string' and input.system ~= '' then n, parts = n + #input.system, parts + 1 end
  for _, b in ipairs(input.blocks) do n, parts = n + #b.content, parts + 1 end
  for _, m in ipairs(type(input.messages) == 'table' and input.messages or {}) do
    if type(m) == 'table' and type(m.content) == 'string' then n, parts = n + #m.content, parts + 1 end
  end
  return n + 2 * math.max(parts - 1, 0)
end

--- The canonical form of a scaffold, whose SHA-256 is its id: provider,
--- model, params, the system text's hash, and per block its kind,
--- stability and (for stable blocks) content hash.
---@param input table A scaffold input as for `resolve` (blocks already ordered or not)
---@return string canonical JSON text
function M.canonical(input)
  check(input, 'canonical')
  local list = {}
  for _, b in ipairs(order(input.blocks, {})) do
    list[#list + 1] = {
      kind = b.kind, stability = b.stability,
      hash = b.stability == 'stable' and hash.sha256(b.content) or nil,
    }
  end
  return json.canonical({
    provider = input.provider, model = input.model,
    params = input.params or {},
    system = (input.system and input.system ~= '') and hash.sha256(input.system) or nil,
    blocks = json.array(list),
    name = input.name,
  })
end

-- The family of a scaffold: its name, else its provider, model and shape.
local function family_of(input, ordered)
  if input.name then return 'name:' .. input.name end
  local shape = {}
  for _, b in ipairs(ordered) do shape[#shape + 1] = b.kind .. '/' .. b.stability end
  return hash.sha256(json.canonical({ provider = input.provider, model = input.model, shape = json.array(shape) }))
end

local function iso(t)
  local secs = math.floor(t)
  return os.date('!%Y-%m-%dT%H:%M:%S', secs) .. ('.%03dZ'):format(math.floor((t - secs) * 1000))
end

local save, load_row

-- A store failure as this module reports it: `scaffold: save '<id>': ...`.
local function failed(action, id, msg, code)
  return nil, ("scaffold: %s '%s': %s"):format(action, id:sub(1, 12), (tostring(msg):gsub('^store: ', ''))), code
end

--- Stores a resolved scaffold and its blocks, deduplicated by hash (a
--- block or scaffold already there is left as it is). Migrates the
--- `scaffold` component first.
---@param db aegis.store.Db
---@param r aegis.scaffold.Resolved What `resolve` returned
---@param contents? table<string, string> Block contents by hash (default: from `r.request`)
---@return true? ok
---@return string? err
---@return string? code
function M.save(db, r, contents)
  if type(db) ~= 'userdata' and type(db) ~= 'table' then argerr(1, 'save', 'store expected') end
  if type(r) ~= 'table' or type(r.scaffold_id) ~= 'string' then argerr(2, 'save', 'resolved scaffold expected') end
  local ok, msg, code = save(db, r, contents)
  if not ok then return failed('save', r.scaffold_id, msg, code) end
  return true
end

save = function(db, r, contents)
  local v, msg, code = db:migrate('scaffold', M.STEPS)
  if not v then return nil, msg, code end
  if contents == nil then
    contents = {}
    local req = r.request or {}
    if type(req.system) == 'string' and req.system ~= '' then contents[hash.sha256(req.system)] = req.system end
    for _, b in ipairs(req.blocks or {}) do contents[hash.sha256(b.content)] = b.content end
  end
  local now = iso(clock.now())
  return db:tx(function(tx)
    local list = {}
    for _, b in ipairs(r.blocks) do
      list[#list + 1] = { kind = b.kind, stability = b.stability, hash = b.hash }
      local content = contents[b.hash]
      if content then
        local ok, m, c = tx:exec('INSERT INTO blocks (hash, kind, content, bytes, created_at)'
          .. ' VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING', b.hash, b.kind, content, #content, now)
        if not ok then return nil, m, c end
      end
    end
    local ok, m, c = tx:exec('INSERT INTO scaffolds (id, family, name, provider, model, params, blocks, prefix_hash,'
      .. ' prefix_bytes, prefix_tokens, warnings, created_at)'
      .. ' VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)'
      .. ' ON CONFLICT (id) DO NOTHING',
      r.scaffold_id, r.family, r.name, r.provider, r.model, json.canonical(r.request.params or {}),
      json.canonical(json.array(list)), r.prefix_hash, r.tokens.prefix_bytes, r.tokens.prefix_estimate,
      json.canonical(json.array(copy(r.warnings))), now)
    if not ok then return nil, m, c end
    return true
  end)
end

--- Loads a stored scaffold: its row with `params`, `blocks` (each with its
--- `content` when the block is stored) and `warnings` decoded; nil when
--- there is no such scaffold.
---@param db aegis.store.Db
---@param id string Scaffold id (hex)
---@return table? scaffold
---@return string? err
---@return string? code
function M.load(db, id)
  if type(id) ~= 'string' then argerr(2, 'load', 'string expected, got ' .. type(id)) end
  local row, msg, code = load_row(db, id)
  if row == nil and msg then return failed('load', id, msg, code) end
  return row
end

load_row = function(db, id)
  local v, msg, code = db:migrate('scaffold', M.STEPS)
  if not v then return nil, msg, code end
  local row
  row, msg, code = db:first('SELECT * FROM scaffolds WHERE id = $1', id)
  if not row then return nil, msg, code end
  row.params = json.decode(row.params)
  row.blocks = json.decode(row.blocks)
  row.warnings = json.decode(row.warnings)
  for _, b in ipairs(row.blocks) do
    if b.hash then
      local br = db:first('SELECT content FROM blocks WHERE hash = $1', b.hash)
      b.content = br and br.content or nil
    end
  end
  return row
end

--- A resolved scaffold.
---@class aegis.scaffold.Resolved
---@field request table Options for `provider.call` / `cache:call` (stable blocks first)
---@field scaffold_id string SHA-256 of the scaffold's canonical form
---@field family string The scaffold's family (its name, or a hash of provider, model and shape)
---@field name? string
---@field provider string
---@field model string
---@field blocks {kind: string, stability: string, hash: string}[] As sent; the system text first (kind 'system')
---@field prefix_hash? string SHA-256 of the stable prefix (nil without one)
---@field http? table The HTTP request the adapter builds (method, url, headers, body), without credentials
---@field tokens {input_estimate: integer, prefix_estimate: integer, prefix_bytes: integer, output_estimate?: integer}
---@field cost_estimate? number USD for the estimated input (cached when a hit is predicted) and `max_tokens` of output
---@field cost_note? string Why the cost is unknown, or what it leaves out
---@field cache {response: boolean, prefix: boolean, prefix_reason: string}
---@field warnings string[]

--- Resolves a scaffold into a provider request with its estimates.
---
--- `input`: `provider`, `model`, `blocks` (any order), and optionally
--- `name` (the scaffold's family name), `system`, `messages`, `params`,
--- `stream`, `cache = {ttl = '5m'|'1h'}`, `base_url`, `options` and any other
--- option of `provider.call` (`on_delta`, `retry`, ...), which pass into the
--- request. `opts.store` saves blocks and scaffold (deduplicated) and is
--- where the prefix-cache history is read (table `cache_events`);
--- `opts.cache` (an `aegis.cache` handle) tells whether the response is
--- cached, and its store serves when `opts.store` is not given.
---
--- Misuse raises (`bad argument #1 to 'resolve' (blocks[2].stability must be
--- 'stable' or 'volatile')`); an adapter that cannot build the request
--- (unknown provider, no user turn) returns `nil, err` (an `aegis.errors`
--- object, code 'config' or 'adapter'). `opts.now` (seconds since 1970) is
--- the time the prefix prediction uses; `opts.build = false` skips the
--- adapter (no `http`); `opts.save = false` does not store the scaffold.
---@param input table
---@param opts? {store?: aegis.store.Db, cache?: table, now?: number, build?: boolean, save?: boolean}
---@return aegis.scaffold.Resolved? resolved
---@return aegis.Error? err
function M.resolve(input, opts)
  check(input, 'resolve')
  if opts ~= nil and type(opts) ~= 'table' then argerr(2, 'resolve', 'table expected, got ' .. type(opts)) end
  opts = opts or {}
  local warnings = {}
  local ordered = order(input.blocks, warnings)

  -- the request: every input field but the scaffold's own, blocks ordered
  local request = {}
  for k, v in pairs(input) do
    if not OWN[k] then request[k] = v end
  end
  local blocks, list = {}, {}
  if type(input.system) == 'string' and input.system ~= '' then
    list[1] = { kind = 'system', stability = 'stable', hash = hash.sha256(input.system) }
  end
  for i, b in ipairs(ordered) do
    blocks[i] = copy(b)
    list[#list + 1] = { kind = b.kind, stability = b.stability, hash = hash.sha256(b.content) }
  end
  request.blocks = blocks

  -- prefix breakers inside stable content
  if list[1] and list[1].kind == 'system' then
    for _, m in ipairs(analyze.volatile_markers(input.system)) do
      warnings[#warnings + 1] = ("prefix breaker: the system text contains %s '%s'"):format(m.what, m.sample)
    end
  end
  for _, b in ipairs(ordered) do
    if b.stability == 'stable' then
      for _, m in ipairs(analyze.volatile_markers(b.content)) do
        warnings[#warnings + 1] = ("prefix breaker: stable block '%s' contains %s '%s'")
          :format(b.kind, m.what, m.sample)
      end
    end
  end

  local prefix = prefix_of(input.system, ordered)
  local prefix_hash = prefix and hash.sha256(prefix) or nil
  local prefix_bytes = prefix and #prefix or 0
  local r = {
    request = request,
    scaffold_id = hash.sha256(M.canonical(input)),
    family = family_of(input, ordered),
    name = input.name,
    provider = input.provider,
    model = input.model,
    blocks = list,
    prefix_hash = prefix_hash,
    tokens = {
      input_estimate = M.tokens(prompt_bytes(input)),
      prefix_estimate = M.tokens(prefix_bytes),
      prefix_bytes = prefix_bytes,
      output_estimate = math.tointeger(input.params and input.params.max_tokens) or nil,
    },
    warnings = warnings,
  }

  -- the adapter's formatting (breakpoints, prompt_cache_key, slot)
  if opts.build ~= false then
    local provider = require('aegis.provider')
    local req, err = provider.build(request)
    if not req then return nil, err end
    r.http = req
    for _, w in ipairs(req.warnings or {}) do warnings[#warnings + 1] = w end
  end

  -- will it hit?
  local db = opts.store or (opts.cache and opts.cache.db) or nil
  local c = opts.cache
  local response = false
  if c then
    -- a look that counts neither a hit nor a miss
    local key = require('aegis.cache').key(request)
    response = c:has(key) == true
  end
  local predicted = analyze.predict_prefix({
    provider = input.provider, model = input.model, prefix_hash = prefix_hash,
    prefix_tokens = r.tokens.prefix_estimate, ttl = input.cache and input.cache.ttl,
    options = input.options, has_breakpoint = r.http and analyze.has_breakpoint(r.http.body) or nil,
  }, db, opts.now)
  r.cache = { response = response, prefix = predicted.hit, prefix_reason = predicted.reason }

  -- cost: input with the predicted cached part, and max_tokens of output
  local cached = predicted.hit and predicted.cached_tokens or 0
  local write5, write1 = 0, 0
  if not predicted.hit and predicted.writes then
    if input.cache and input.cache.ttl == '1h' then write1 = predicted.writes else write5 = predicted.writes end
  end
  local usage = {
    input = r.tokens.input_estimate, cached_input = cached,
    cache_write_5m = write5, cache_write_1h = write1,
    output = r.tokens.output_estimate or 0,
  }
  local ok, cfg = pcall(function() return require('aegis.config').get() end)
  local cost, note = require('aegis.prices').cost(input.provider, input.model, usage,
    { overrides = ok and cfg.prices or nil })
  r.cost_estimate = cost
  r.cost_note = note or (r.tokens.output_estimate == nil and 'input only (no max_tokens)' or nil)

  if db and opts.save ~= false then
    local contents = {}
    if type(input.system) == 'string' and input.system ~= '' then contents[list[1].hash] = input.system end
    for _, b in ipairs(ordered) do contents[hash.sha256(b.content)] = b.content end
    local saved, msg, code = M.save(db, r, contents)
    if not saved then return nil, require('aegis.errors').new(code or 'io', msg) end
  end
  return r
end

return M
