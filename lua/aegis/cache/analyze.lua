--- Statistics and analysis of the prompt cache, read from its tables
--- (`cache_entries`, `cache_events`, written by `aegis.cache`) and the
--- scaffold tables (`blocks`, `scaffolds`, written by `aegis.scaffold`).
---
--- `stats` counts hits, misses and hit rates overall, per block kind and per
--- scaffold, with the bytes, tokens and cost the hits saved; `performance`
--- gives the hit rate of stable scaffolds (requests whose stable prefix was
--- sent before), names prefix breakers, lists the top missed requests with
--- the fields that differed from the nearest stored request, and predicts
--- the provider prefix-cache hits from each provider's rules (`rules`).
--- `aegis-run cache analyze [--performance]` prints them. See docs/cache.md.
local hash = require('aegis.hash')
local json = require('aegis.json')

local M = {}

local function argerr(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

-- {====================================================== provider rules

local MINUTE = 60

--- The prefix-cache rules of a provider and model, as Aegis predicts them
--- (docs/cache.md "Analysis" gives the sources):
--- `mode` 'breakpoint' (Anthropic: only prefixes ending at a
--- `cache_control` breakpoint are cached), 'automatic' (OpenAI, vLLM,
--- SGLang: any byte-identical prefix) or 'slot' (llama.cpp: the prefix
--- must still be in the slot the request goes to, with `cache_prompt`);
--- `min_tokens`, the smallest cacheable prefix; `step`, the granularity of
--- the cached count; `ttl`, seconds an entry lives after its last use
--- (nil: until evicted).
---@param provider string
---@param model string
---@param ttl? '5m'|'1h' The TTL asked for (Anthropic)
---@return {mode: string, min_tokens: integer, step: integer, ttl?: number}
function M.rules(provider, model, ttl)
  if type(provider) ~= 'string' then argerr(1, 'rules', 'string expected, got ' .. type(provider)) end
  if type(model) ~= 'string' then argerr(2, 'rules', 'string expected, got ' .. type(model)) end
  local m = model:lower()
  if provider == 'anthropic' then
    local min = 1024
    if m:find('haiku%-4') or m:find('opus%-4%-5') or m:find('opus%-4%-6') then
      min = 4096
    elseif m:find('sonnet%-4%-6') then
      min = 2048
    elseif m:find('haiku') then
      min = 2048
    end
    return { mode = 'breakpoint', min_tokens = min, step = 1, ttl = (ttl == '1h' and 60 or 5) * MINUTE }
  elseif provider == 'openai' then
    return { mode = 'automatic', min_tokens = 1024, step = 128, ttl = 5 * MINUTE }
  elseif provider == 'vllm' then
    return { mode = 'automatic', min_tokens = 16, step = 16 }
  elseif provider == 'sglang' then
    return { mode = 'automatic', min_tokens = 1, step = 1 }
  elseif provider == 'llamacpp' then
    return { mode = 'slot', min_tokens = 1, step = 1 }
  end
  return { mode = 'unknown', min_tokens = math.maxinteger, step = 1 }
end

--- Tokens of a prefix the provider would serve from its cache, by `rules`:
--- 0 below the minimum, else rounded down to the step.
---@param rules table From `rules`
---@param tokens integer Prefix tokens
---@return integer
function M.cacheable(rules, tokens)
  if tokens < rules.min_tokens then return 0 end
  return tokens - tokens % rules.step
end

--- Whether a request body carries an Anthropic `cache_control` breakpoint.
---@param body any The body an adapter built (a table)
---@return boolean
function M.has_breakpoint(body)
  if type(body) ~= 'table' then return false end
  if body.cache_control ~= nil then return true end
  for _, v in pairs(body) do
    if type(v) == 'table' and M.has_breakpoint(v) then return true end
  end
  return false
end

-- Lua patterns of values that change from one request to the next.
local MARKERS = {
  { what = 'a uuid', pat = '%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x' },
  { what = 'a timestamp', pat = '%d%d%d%d%-%d%d%-%d%d[T ]%d%d:%d%d[%d:%.]*Z?' },
  { what = 'a date', pat = '%f[%d]%d%d%d%d%-[01]%d%-[0-3]%d%f[%D]' },
  { what = 'a time of day', pat = '%f[%d][0-2]%d:[0-5]%d:[0-5]%d%f[%D]' },
  { what = 'a unix time', pat = '%f[%d]1[5-9]%d%d%d%d%d%d%d%d%f[%D]' },
}

--- Strings in `text` that look like they change per request (a uuid, an
--- ISO timestamp or date, a time of day, a unix time in seconds): prefix
--- breakers when they sit in a stable block. At most one per kind.
---@param text string
---@return {what: string, sample: string}[]
function M.volatile_markers(text)
  if type(text) ~= 'string' then argerr(1, 'volatile_markers', 'string expected, got ' .. type(text)) end
  local out, covered = {}, {}
  for _, m in ipairs(MARKERS) do
    local s, e = text:find(m.pat)
    if s and not covered[s] then
      out[#out + 1] = { what = m.what, sample = text:sub(s, e) }
      -- a timestamp also contains a date and a time: name it once
      for i = s, e do covered[i] = true end
    end
  end
  return out
end

-- }======================================================

-- {====================================================== reading the tables

-- Seconds since the epoch of a stored time: a number (seconds, or
-- milliseconds when it is that large) or an ISO 8601 UTC text.
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Seconds since 1970 of a time as the cache tables store it: a number
--- (seconds; milliseconds above 1e11) or ISO 8601 text in UTC
--- (`2026-11-28T19:55:29.123Z`, `2026-11-28 19:55:29`). Nil when unreadable.
---@param at any
---@return number?
function M.seconds(at)
  if type(at) == 'number' then return at > 1e11 and at / 1000 or at end
  if type(at) ~= 'string' then return nil end
  local n = tonumber(at)
  if n then return M.seconds(n) end
  local y, mo, d, hh, mi, ss, frac = at:match('^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d)(%.?%d*)')
  if not y then return nil end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(hh) * 3600 + tonumber(mi) * 60 + tonumber(ss)
  if frac ~= '' and frac ~= '.' then t = t + tonumber('0' .. frac) end
  return t
end

local function has_table(db, name)
  local row
  if db.kind == 'postgres' then
    row = db:first('SELECT 1 AS x FROM information_schema.tables WHERE table_name = $1'
      .. ' AND table_schema = current_schema() LIMIT 1', name)
  else
    row = db:first("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = $1", name)
  end
  return row ~= nil
end

-- Outcomes of a request that the response cache answered / did not.
local HIT = { hit = true, waited = true }
local MISS = { miss = true }

local function rate(h, n)
  if n == 0 then return json.null end
  return h / n
end

local function decode_list(s)
  if type(s) ~= 'string' or s == '' then return {} end
  local v = json.decode(s)
  return type(v) == 'table' and v or {}
end

local function num(v)
  return type(v) == 'number' and v or 0
end

-- The request events in order, with their block lists decoded.
local function events(db, opts)
  local sql = 'SELECT * FROM cache_events'
  local args = {}
  if opts.namespace then
    sql = sql .. ' WHERE namespace = $1'
    args[1] = opts.namespace
  end
  sql = sql .. ' ORDER BY id'
  local rows, msg, code = db:query(sql, table.unpack(args))
  if not rows then return nil, msg, code end
  for _, r in ipairs(rows) do r.blocks = decode_list(r.block_hashes) end
  return rows
end

-- Scaffold rows by id (empty when the table is not there).
local function scaffolds(db)
  local out = {}
  if not has_table(db, 'scaffolds') then return out end
  local rows = db:query('SELECT id, family, name, provider, model, prefix_tokens, warnings FROM scaffolds') or {}
  for _, r in ipairs(rows) do
    r.warnings = decode_list(r.warnings)
    out[r.id] = r
  end
  return out
end

-- }======================================================

-- {====================================================== statistics

local stats, performance

-- A store failure as this module reports it.
local function failed(db, msg, code)
  return nil, ("cache: analyze '%s': %s"):format(tostring(db.url), (tostring(msg):gsub('^store: ', ''))), code
end

--- Options of `stats` and `performance`.
---@class aegis.cache.analyze.Opts
---@field namespace? string Only this namespace (default: all)
---@field top? integer How many missed requests to list (default 10)
---@field candidates? integer How many stored requests to compare each miss with (default 500)

--- Cache statistics: `entries`, `bytes` (stored), `hits`, `misses`,
--- `hit_rate` (null when there was no request), `corrupt`, `bypass`,
--- `bytes_saved` (stored bytes of the answers served from the cache),
--- `tokens_saved` (input and output tokens of those answers), `cost_saved`
--- (USD), `provider` (`calls`, `input_tokens`, `cached_input` and
--- `cached_rate`: what the providers reported for the calls made), and
--- `by_kind` / `by_scaffold` (requests, hits, misses, hit_rate; for a kind
--- also `reused`: requests whose block of that kind was sent before).
--- Tables that do not exist yet count as empty.
---@param db aegis.store.Db The store the cache lives in
---@param opts? aegis.cache.analyze.Opts
---@return table? stats
---@return string? err
---@return string? code
function M.stats(db, opts)
  if type(db) ~= 'userdata' and type(db) ~= 'table' then argerr(1, 'stats', 'store expected, got ' .. type(db)) end
  local st, msg, code = stats(db, opts or {})
  if not st then return failed(db, msg, code) end
  return st
end

stats = function(db, opts)
  local st = {
    entries = 0, bytes = 0, hits = 0, misses = 0, hit_rate = json.null, corrupt = 0, bypass = 0,
    bytes_saved = 0, tokens_saved = 0, cost_saved = 0,
    provider = { calls = 0, input_tokens = 0, cached_input = 0, cached_rate = json.null },
    by_kind = {}, by_scaffold = {},
  }
  if has_table(db, 'cache_entries') then
    local sql = 'SELECT count(*) AS n, sum(bytes) AS b FROM cache_entries'
    local row, msg, code
    if opts.namespace then
      row, msg, code = db:first(sql .. ' WHERE namespace = $1', opts.namespace)
    else
      row, msg, code = db:first(sql)
    end
    if not row then return nil, msg, code end
    st.entries = math.tointeger(tonumber(row.n)) or 0
    st.bytes = math.tointeger(tonumber(row.b)) or 0
  end
  if not has_table(db, 'cache_events') then return st end
  local evs, msg, code = events(db, opts)
  if not evs then return nil, msg, code end

  local sizes = {}
  if has_table(db, 'cache_entries') then
    for _, r in ipairs(db:query('SELECT key, bytes FROM cache_entries') or {}) do sizes[r.key] = r.bytes end
  end
  local sc = scaffolds(db)
  local kinds, per_scaffold = {}, {}
  local seen_block = {}
  local sent_input, sent_cached = 0, 0
  for _, ev in ipairs(evs) do
    local o = ev.outcome
    if o == 'corrupt' then st.corrupt = st.corrupt + 1 end
    if o == 'bypass' then st.bypass = st.bypass + 1 end
    if HIT[o] or MISS[o] then
      local hit = HIT[o] and 1 or 0
      -- a row may stand for several hits of one entry (`n`: aegis.cache
      -- keeps the hits between two flushes as one row), each saving as much
      local w = math.tointeger(tonumber(ev.n)) or 1
      st.hits, st.misses = st.hits + hit * w, st.misses + (1 - hit) * w
      if hit == 1 then
        st.bytes_saved = st.bytes_saved + w * num(sizes[ev.key])
        st.tokens_saved = st.tokens_saved + w * (num(ev.input_tokens) + num(ev.output_tokens))
        st.cost_saved = st.cost_saved + w * num(ev.saved_cost)
      else
        st.provider.calls = st.provider.calls + 1
        sent_input = sent_input + num(ev.input_tokens)
        sent_cached = sent_cached + num(ev.cached_input)
      end
      local counted = {}
      for _, b in ipairs(ev.blocks) do
        local kind = type(b) == 'table' and b.kind or nil
        if type(kind) == 'string' and not counted[kind] then
          counted[kind] = true
          local k = kinds[kind] or { requests = 0, hits = 0, misses = 0, reused = 0 }
          kinds[kind] = k
          k.requests, k.hits, k.misses = k.requests + w, k.hits + hit * w, k.misses + (1 - hit) * w
          if b.hash and seen_block[b.hash] then k.reused = k.reused + 1 end
        end
        if type(b) == 'table' and b.hash then seen_block[b.hash] = true end
      end
      if ev.scaffold_id then
        local s = per_scaffold[ev.scaffold_id]
        if not s then
          local row = sc[ev.scaffold_id]
          s = { scaffold_id = ev.scaffold_id, name = row and row.name or nil, provider = ev.provider,
            model = ev.model, requests = 0, hits = 0, misses = 0 }
          per_scaffold[ev.scaffold_id] = s
        end
        s.requests, s.hits, s.misses = s.requests + w, s.hits + hit * w, s.misses + (1 - hit) * w
      end
    end
  end
  st.hit_rate = rate(st.hits, st.hits + st.misses)
  st.provider.input_tokens, st.provider.cached_input = sent_input, sent_cached
  st.provider.cached_rate = rate(sent_cached, sent_input)
  for _, k in pairs(kinds) do k.hit_rate = rate(k.hits, k.requests) end
  st.by_kind = kinds
  local list = {}
  for _, s in pairs(per_scaffold) do
    s.hit_rate = rate(s.hits, s.requests)
    list[#list + 1] = s
  end
  table.sort(list, function(a, b)
    if a.requests ~= b.requests then return a.requests > b.requests end
    return a.scaffold_id < b.scaffold_id
  end)
  st.by_scaffold = json.array(list)
  return st
end

-- }======================================================

-- {====================================================== comparing requests

-- Empty containers as leaves (distinct from any string).
local EMPTY_ARRAY, EMPTY_OBJECT = {}, {}

-- Flattens a decoded JSON value into path -> leaf (strings, numbers,
-- booleans and json.null as they are; empty containers as sentinels), so
-- two requests compare leaf by leaf without encoding anything.
local function flatten(v, path, out)
  if type(v) == 'table' then
    local n = 0
    if json.is_array(v) then
      for i, x in ipairs(v) do
        n = n + 1
        flatten(x, ('%s[%d]'):format(path, i), out)
      end
    else
      for k, x in pairs(v) do
        n = n + 1
        flatten(x, path == '' and tostring(k) or (path .. '.' .. tostring(k)), out)
      end
    end
    if n == 0 then out[path] = json.is_array(v) and EMPTY_ARRAY or EMPTY_OBJECT end
  else
    -- prompt texts enter the canonical request by their hash
    -- (`content_sha256`, `system_sha256`): name the text, not its hash
    out[(path:gsub('_sha256$', ''))] = v
  end
  return out
end

-- The sorted paths in which two flattened requests differ.
local function differ(fa, fb)
  local out = {}
  for k, v in pairs(fa) do
    if fb[k] ~= v then out[#out + 1] = k end
  end
  for k in pairs(fb) do
    if fa[k] == nil then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

--- The fields in which two canonical requests differ: paths such as
--- `model`, `params.temperature`, `blocks[3].content`, sorted. A text the
--- request holds by its hash (`content_sha256`) is named without the
--- suffix.
---@param a string|table A canonical request (JSON text) or its decoded value
---@param b string|table
---@return string[] fields
function M.diff(a, b)
  if type(a) == 'string' then a = json.decode(a) end
  if type(b) == 'string' then b = json.decode(b) end
  return differ(flatten(a, '', {}), flatten(b, '', {}))
end

-- What a differing field is, for people: a block's kind and stability.
local function describe(field, req)
  local i = field:match('^blocks%[(%d+)%]')
  local b = i and type(req) == 'table' and type(req.blocks) == 'table' and req.blocks[tonumber(i)]
  if type(b) == 'table' and b.kind then
    return ('%s block %s'):format(tostring(b.stability or '?'), tostring(b.kind))
  end
  return nil
end

-- }======================================================

-- {====================================================== performance

-- Prefix tokens of an event: from its scaffold row, else from the stored
-- stable blocks' sizes, else nil.
local function prefix_tokens(ev, sc, block_bytes)
  local row = ev.scaffold_id and sc[ev.scaffold_id]
  if row and row.prefix_tokens then return math.tointeger(tonumber(row.prefix_tokens)) end
  local n, parts = 0, 0
  for _, b in ipairs(ev.blocks) do
    if type(b) == 'table' and b.stability == 'stable' then
      local bytes = block_bytes[b.hash]
      if bytes == nil then return nil end
      n, parts = n + bytes, parts + 1
    end
  end
  if parts == 0 then return 0 end
  return (n + 2 * (parts - 1) + 3) // 4
end

--- Predicts whether one request's stable prefix will be served from the
--- provider's prefix cache, from the history in table `cache_events`
--- (the provider calls made with the same provider, model and prefix
--- hash) and `rules`. `info`: `provider`, `model`, `prefix_hash`,
--- `prefix_tokens`, `ttl` ('5m'|'1h'), `has_breakpoint` (Anthropic).
--- Returns `hit`, a `reason`, the `cached_tokens` expected on a hit and the
--- `writes` expected otherwise (Anthropic cache writes).
---@param info table
---@param db? aegis.store.Db Without one there is no history: no hit
---@param now? number Seconds since 1970 (default: the clock)
---@return {hit: boolean, reason: string, cached_tokens: integer, writes?: integer}
function M.predict_prefix(info, db, now)
  if type(info) ~= 'table' then argerr(1, 'predict_prefix', 'table expected, got ' .. type(info)) end
  local rules = M.rules(info.provider, info.model, info.ttl)
  local tokens = info.prefix_tokens or 0
  local cacheable = M.cacheable(rules, tokens)
  local out = { hit = false, cached_tokens = 0 }
  if rules.mode == 'unknown' then
    out.reason = ("no prefix-cache rules for provider '%s'"):format(info.provider)
    return out
  end
  if info.prefix_hash == nil then
    out.reason = 'no stable prefix'
    return out
  end
  if rules.mode == 'breakpoint' and info.has_breakpoint == false then
    out.reason = 'no cache_control breakpoint in the request'
    return out
  end
  if cacheable == 0 then
    out.reason = ('stable prefix of ~%d tokens is under the minimum of %d'):format(tokens, rules.min_tokens)
    return out
  end
  if rules.mode == 'breakpoint' then out.writes = cacheable end
  local last
  if db and has_table(db, 'cache_events') then
    local sql = "SELECT at, prefix_hash FROM cache_events WHERE provider = $1 AND model = $2"
      .. " AND outcome NOT IN ('hit', 'waited')"
    if rules.mode == 'slot' then
      -- llama.cpp: the prefix must still be what its slot holds
      last = db:first(sql .. ' ORDER BY id DESC LIMIT 1', info.provider, info.model)
      if last and last.prefix_hash ~= info.prefix_hash then
        out.reason = 'the slot last held another prefix'
        return out
      end
    else
      last = db:first(sql .. ' AND prefix_hash = $3 ORDER BY id DESC LIMIT 1', info.provider, info.model,
        info.prefix_hash)
    end
  end
  if not last then
    out.reason = 'stable prefix not sent before'
    return out
  end
  local at = M.seconds(last.at)
  now = now or require('aegis.clock').now()
  if rules.ttl and at and now - at > rules.ttl then
    out.reason = ('stable prefix last sent %ds ago, past the %ds TTL'):format(math.floor(now - at), rules.ttl)
    return out
  end
  out.hit, out.writes = true, nil
  out.cached_tokens = cacheable
  out.reason = 'stable prefix sent before, within the TTL'
  return out
end

--- Performance analysis: `stable_scaffold` (`requests` with a stable
--- prefix, `prefix_seen` of them whose provider, model and stable prefix
--- had been requested before, `hit_rate`), `breakers` (a list of
--- `{type, scaffold_id?, family?, kind?, detail}`: 'volatile_before_stable',
--- 'volatile_content', 'changing_stable_block'), `top_missed` (misses,
--- nearest-first, each with `fields` that differ from the nearest stored
--- request and the first one as `field`), and `provider_prefix`
--- (`calls`, `predicted_hits`, `observed_hits` and `by_provider`, from
--- `rules` replayed over the provider calls in order).
---@param db aegis.store.Db
---@param opts? aegis.cache.analyze.Opts
---@return table? performance
---@return string? err
---@return string? code
function M.performance(db, opts)
  if type(db) ~= 'userdata' and type(db) ~= 'table' then
    argerr(1, 'performance', 'store expected, got ' .. type(db))
  end
  local perf, msg, code = performance(db, opts or {})
  if not perf then return failed(db, msg, code) end
  return perf
end

performance = function(db, opts)
  local perf = {
    stable_scaffold = { requests = 0, prefix_seen = 0, hit_rate = json.null },
    breakers = json.array({}),
    top_missed = json.array({}),
    provider_prefix = { calls = 0, predicted_hits = 0, observed_hits = 0, by_provider = {} },
  }
  if not has_table(db, 'cache_events') then return perf end
  local evs, msg, code = events(db, opts)
  if not evs then return nil, msg, code end
  local sc = scaffolds(db)
  local block_bytes = {}
  local have_blocks = has_table(db, 'blocks')

  -- stable-scaffold hit rate: the prefix was requested before
  local seen = {}
  local ss = perf.stable_scaffold
  for _, ev in ipairs(evs) do
    if (HIT[ev.outcome] or MISS[ev.outcome] or ev.outcome == 'bypass') and ev.prefix_hash then
      local k = ('%s\0%s\0%s'):format(ev.provider or '', ev.model or '', ev.prefix_hash)
      ss.requests = ss.requests + 1
      if seen[k] then ss.prefix_seen = ss.prefix_seen + 1 end
      seen[k] = true
    end
  end
  ss.hit_rate = rate(ss.prefix_seen, ss.requests)

  -- prefix breakers
  local breakers = perf.breakers
  local used_scaffolds, stable_hashes = {}, {}
  local families = {}
  for _, ev in ipairs(evs) do
    if ev.scaffold_id then used_scaffolds[ev.scaffold_id] = true end
    local shape, stable = {}, {}
    for _, b in ipairs(ev.blocks) do
      if type(b) == 'table' then
        shape[#shape + 1] = tostring(b.kind) .. '/' .. tostring(b.stability)
        if b.stability == 'stable' and b.hash then
          stable_hashes[b.hash] = b.kind
          stable[#stable + 1] = b
        end
      end
    end
    if #stable > 0 then
      local row = ev.scaffold_id and sc[ev.scaffold_id]
      local fam = row and row.name and ('name:' .. row.name)
        or hash.sha256(json.canonical({ provider = ev.provider or '', model = ev.model or '',
          shape = json.array(shape) }))
      local f = families[fam]
      if not f then
        f = { name = row and row.name or nil, provider = ev.provider, model = ev.model, slots = {}, requests = 0 }
        families[fam] = f
      end
      f.requests = f.requests + 1
      for i, b in ipairs(stable) do
        local slot = f.slots[i] or { kind = b.kind, hashes = {}, n = 0 }
        f.slots[i] = slot
        if not slot.hashes[b.hash] then
          slot.hashes[b.hash] = true
          slot.n = slot.n + 1
        end
      end
    end
  end
  local ids = {}
  for id in pairs(used_scaffolds) do ids[#ids + 1] = id end
  table.sort(ids)
  for _, id in ipairs(ids) do
    local row = sc[id]
    for _, w in ipairs(row and row.warnings or {}) do
      if type(w) == 'string' and w:find('comes before stable block', 1, true) then
        breakers[#breakers + 1] = { type = 'volatile_before_stable', scaffold_id = id,
          detail = (w:gsub('^prefix breaker: ', '')) }
      end
    end
  end
  if have_blocks then
    local hashes = {}
    for h in pairs(stable_hashes) do hashes[#hashes + 1] = h end
    table.sort(hashes)
    for _, h in ipairs(hashes) do
      local row = db:first('SELECT kind, content, bytes FROM blocks WHERE hash = $1', h)
      if row then
        block_bytes[h] = math.tointeger(tonumber(row.bytes))
        for _, m in ipairs(M.volatile_markers(row.content)) do
          breakers[#breakers + 1] = { type = 'volatile_content', kind = row.kind, block = h,
            detail = ("stable block '%s' (%s) contains %s '%s'"):format(row.kind, h:sub(1, 12), m.what, m.sample) }
        end
      end
    end
  end
  local fams = {}
  for id, f in pairs(families) do fams[#fams + 1] = { id = id, f = f } end
  table.sort(fams, function(a, b) return a.id < b.id end)
  for _, x in ipairs(fams) do
    for _, slot in ipairs(x.f.slots) do
      if slot.n > 1 then
        breakers[#breakers + 1] = { type = 'changing_stable_block', family = x.f.name or x.id:sub(1, 12),
          kind = slot.kind, versions = slot.n, requests = x.f.requests,
          detail = ("stable block '%s' of scaffold %s had %d different contents over %d requests"):format(
            slot.kind, x.f.name and ("'" .. x.f.name .. "'") or (x.f.provider .. '/' .. x.f.model), slot.n,
            x.f.requests) }
      end
    end
  end

  -- top missed requests, with the field that differed from the nearest entry
  if has_table(db, 'cache_entries') then
    local top = opts.top or 10
    local limit = opts.candidates or 500
    local misses, done = {}, {}
    for i = #evs, 1, -1 do
      local ev = evs[i]
      if MISS[ev.outcome] and not done[ev.key] then
        done[ev.key] = true
        misses[#misses + 1] = ev
      end
    end
    local found = {}
    local flats = {}  -- key -> flattened request, each decoded once
    local function flat(key, text)
      local f = flats[key]
      if f == nil then
        local v = type(text) == 'string' and json.decode(text) or nil
        f = flatten(v == nil and {} or v, '', {})
        flats[key] = f
      end
      return f
    end
    for _, ev in ipairs(misses) do
      if #found >= top * 5 then break end
      local own = db:first('SELECT request, provider, model FROM cache_entries WHERE key = $1', ev.key)
      if own and own.request then
        local cands = db:query('SELECT key, request FROM cache_entries WHERE provider = $1 AND model = $2'
          .. ' AND key <> $3 ORDER BY created_at DESC LIMIT ' .. math.tointeger(limit),
          own.provider or ev.provider, own.model or ev.model, ev.key) or {}
        local mine = json.decode(own.request)
        local fmine = flat(ev.key, own.request)
        local best, best_fields
        for _, c in ipairs(cands) do
          local fields = differ(fmine, flat(c.key, c.request))
          if best == nil or #fields < #best_fields then best, best_fields = c.key, fields end
        end
        local item = { key = ev.key, provider = ev.provider, model = ev.model, scaffold_id = ev.scaffold_id,
          cost = ev.cost, at = ev.at }
        if best then
          item.nearest = best
          item.fields = json.array(best_fields)
          item.field = best_fields[1]
          item.field_is = best_fields[1] and describe(best_fields[1], mine) or nil
        else
          item.note = 'no other stored request for this provider and model'
        end
        found[#found + 1] = item
      end
    end
    table.sort(found, function(a, b)
      local fa, fb = a.fields and #a.fields or math.maxinteger, b.fields and #b.fields or math.maxinteger
      if fa ~= fb then return fa < fb end
      if num(a.cost) ~= num(b.cost) then return num(a.cost) > num(b.cost) end
      return a.key < b.key
    end)
    for i = 1, math.min(top, #found) do perf.top_missed[i] = found[i] end
  end

  -- provider prefix-cache hits, predicted by the rules and observed
  local pp = perf.provider_prefix
  local last_sent, slot_last = {}, {}
  for _, ev in ipairs(evs) do
    local sent = not HIT[ev.outcome] and (MISS[ev.outcome] or ev.outcome == 'bypass')
    if sent and ev.provider and ev.model then
      local rules = M.rules(ev.provider, ev.model)
      local bp = pp.by_provider[ev.provider] or { calls = 0, predicted_hits = 0, observed_hits = 0,
        mode = rules.mode, min_tokens = rules.min_tokens }
      pp.by_provider[ev.provider] = bp
      pp.calls, bp.calls = pp.calls + 1, bp.calls + 1
      if num(ev.cached_input) > 0 then
        pp.observed_hits, bp.observed_hits = pp.observed_hits + 1, bp.observed_hits + 1
      end
      local tokens = ev.prefix_hash and prefix_tokens(ev, sc, block_bytes) or 0
      local at = M.seconds(ev.at)
      local k = ev.provider .. '\0' .. ev.model .. '\0' .. tostring(ev.prefix_hash)
      local hit = false
      if ev.prefix_hash and tokens and M.cacheable(rules, tokens) > 0 then
        if rules.mode == 'slot' then
          hit = slot_last[ev.provider .. '\0' .. ev.model] == ev.prefix_hash
        elseif last_sent[k] then
          hit = rules.ttl == nil or at == nil or last_sent[k] == true or at - last_sent[k] <= rules.ttl
        end
      end
      if hit then pp.predicted_hits, bp.predicted_hits = pp.predicted_hits + 1, bp.predicted_hits + 1 end
      if ev.prefix_hash then last_sent[k] = at or true end
      slot_last[ev.provider .. '\0' .. ev.model] = ev.prefix_hash
    end
  end
  return perf
end

--- Everything `aegis-run cache analyze` prints: `stats`, and with
--- `performance = true` the `performance` analysis under that name.
---@param db aegis.store.Db
---@param opts? {performance?: boolean, namespace?: string, top?: integer}
---@return table? report
---@return string? err
---@return string? code
function M.report(db, opts)
  opts = opts or {}
  local st, msg, code = M.stats(db, opts)
  if not st then return nil, msg, code end
  local out = { stats = st }
  if opts.performance then
    local perf
    perf, msg, code = M.performance(db, opts)
    if not perf then return nil, msg, code end
    out.performance = perf
  end
  return out
end

return M
