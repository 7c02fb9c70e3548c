-- Anthropic Messages API. See docs/providers.md.
--
-- The system text and each stable block become `system` text blocks, in
-- order; volatile blocks form the first user message. Cache breakpoints
-- (`cache_control = {type = 'ephemeral', ttl = '5m'|'1h'}`) go on the last
-- stable block and on stable blocks marked `breakpoint = true`, at most 4
-- in all (the API's limit): when more are asked for, the last 4 are kept.
-- The API version is `options.version` (default 2023-06-01); from
-- 2026-10-21 the API rejects temperature, top_p and top_k, so they are left
-- out there (with a warning). Usage: `input_tokens` exclude cache reads and
-- writes, which come in `cache_read_input_tokens` and `cache_creation`.
local ctx = ...
local util = ctx.util
local json = aegis.json

local M = {
  name = 'anthropic',
  base_url = 'https://api.anthropic.com',
  base_url_env = 'ANTHROPIC_BASE_URL',
  auth = { header = 'x-api-key', env = 'ANTHROPIC_API_KEY', required = true },
  endpoints = { messages = '/v1/messages' },
  default_version = '2023-06-01',
  default_max_tokens = 4096,
  max_breakpoints = 4,
  -- What an omitted parameter means (for cache keys, aegis.cache; never
  -- sent): the API's temperature default, and the max_tokens this adapter
  -- sends when none is given.
  defaults = { temperature = 1, max_tokens = 4096 },
}

--- The first API version that rejects sampling parameters.
M.no_sampling_from = '2026-10-21'
local SAMPLING = { 'temperature', 'top_p', 'top_k' }

local function version(resolved)
  local v = resolved.options and resolved.options.version or M.default_version
  if type(v) ~= 'string' or not v:find('^%d%d%d%d%-%d%d%-%d%d$') then
    error(("anthropic: options.version must be a date YYYY-MM-DD, got '%s'"):format(tostring(v)), 0)
  end
  return v
end

--- Whether `v` (an anthropic-version date) rejects sampling parameters.
function M.rejects_sampling(v)
  return v >= M.no_sampling_from
end

--- The system blocks with their breakpoints: a list of
--- `{type = 'text', text = ..., cache_control? = {...}}` and the number
--- of breakpoints placed.
function M.system_blocks(resolved)
  local ttl = resolved.cache and resolved.cache.ttl or '5m'
  local blocks, marks = {}, {}
  if type(resolved.system) == 'string' and resolved.system ~= '' then
    blocks[1] = { type = 'text', text = resolved.system }
  end
  local last_stable
  for _, b in ipairs(resolved.blocks or {}) do
    if b.stability == 'stable' then
      blocks[#blocks + 1] = { type = 'text', text = b.content }
      last_stable = #blocks
      if b.breakpoint then marks[#marks + 1] = #blocks end
    end
  end
  -- the end of the stable prefix: the last stable block, or the system
  -- text alone when there are no stable blocks
  local final = last_stable or (#blocks > 0 and #blocks or nil)
  if final and marks[#marks] ~= final then marks[#marks + 1] = final end
  local first = math.max(1, #marks - M.max_breakpoints + 1)
  local placed = 0
  for i = first, #marks do
    blocks[marks[i]].cache_control = { type = 'ephemeral', ttl = ttl }
    placed = placed + 1
  end
  return blocks, placed, #marks - placed
end

function M.build_request(resolved)
  local v = version(resolved)
  local warnings = {}
  local system, _, dropped = M.system_blocks(resolved)
  if dropped > 0 then
    warnings[#warnings + 1] = ('anthropic: %d cache breakpoint(s) dropped (at most %d per request)')
      :format(dropped, M.max_breakpoints)
  end
  local messages = {}
  local vol = {}
  for _, b in ipairs(resolved.blocks or {}) do
    if b.stability == 'volatile' then vol[#vol + 1] = { type = 'text', text = b.content } end
  end
  if #vol > 0 then messages[1] = { role = 'user', content = vol } end
  for _, m in ipairs(resolved.messages or {}) do
    messages[#messages + 1] = { role = m.role, content = m.content }
  end
  if #messages == 0 then error('anthropic: the request has no user turn (no volatile block and no messages)', 0) end

  local body = { model = resolved.model, messages = messages, max_tokens = M.default_max_tokens }
  if #system > 0 then body.system = system end
  for k, p in pairs(resolved.params or {}) do body[k] = p end
  if M.rejects_sampling(v) then
    local gone = {}
    for _, k in ipairs(SAMPLING) do
      if body[k] ~= nil then
        body[k] = nil
        gone[#gone + 1] = k
      end
    end
    if #gone > 0 then
      warnings[#warnings + 1] = ('anthropic: %s left out (anthropic-version %s rejects sampling parameters)')
        :format(table.concat(gone, ', '), v)
    end
  end
  if resolved.stream then body.stream = true end
  return {
    method = 'POST',
    path = M.endpoints.messages,
    headers = { ['content-type'] = 'application/json', ['anthropic-version'] = v },
    body = body,
    warnings = #warnings > 0 and warnings or nil,
  }
end

--- Normalises an Anthropic usage object. `input` = input_tokens + cache
--- reads + cache writes; the write split comes from `cache_creation`, or,
--- when only the total is given, all of it goes to the request's TTL.
--- A missing field is unknown (nil), and so is any total built on it.
function M.usage(u, resolved)
  if type(u) ~= 'table' then return {} end
  local base = util.count(u.input_tokens)
  local read = util.count(u.cache_read_input_tokens)
  local written = util.count(u.cache_creation_input_tokens)
  local cc = u.cache_creation
  local w5, w1
  if type(cc) == 'table' then
    w5 = util.count(cc.ephemeral_5m_input_tokens)
    w1 = util.count(cc.ephemeral_1h_input_tokens)
    if written == nil then written = util.sum(w5, w1) end
  elseif written ~= nil then
    if written == 0 then
      w5, w1 = 0, 0
    elseif (resolved and resolved.cache and resolved.cache.ttl) == '1h' then
      w5, w1 = 0, written
    else
      w5, w1 = written, 0
    end
  end
  return {
    input = util.sum(base, read, written),
    cached_input = read,
    cache_write_5m = w5,
    cache_write_1h = w1,
    output = util.count(u.output_tokens),
  }
end

local function content_text(content)
  local out = {}
  for _, part in ipairs(type(content) == 'table' and content or {}) do
    if type(part) == 'table' and part.type == 'text' and type(part.text) == 'string' then out[#out + 1] = part.text end
  end
  return table.concat(out)
end

function M.parse_response(res, resolved)
  local j = res.json
  if type(j) ~= 'table' or j.type ~= 'message' then return nil, 'not a message object' end
  return {
    text = content_text(j.content),
    usage = M.usage(j.usage, resolved),
    finish = type(j.stop_reason) == 'string' and j.stop_reason or nil,
    model = type(j.model) == 'string' and j.model or nil,
  }
end

-- Retryable error types of a mid-stream `error` event.
local RETRY_TYPES = { overloaded_error = true, api_error = true, rate_limit_error = true, timeout_error = true }

--- One event of the Messages stream: message_start, content_block_start,
--- ping, content_block_delta, content_block_stop, message_delta,
--- message_stop, error. `state.raw_usage` gathers the usage of
--- message_start and message_delta.
function M.parse_stream_event(ev, state, resolved)
  local data = ev.data
  if type(data) ~= 'string' or data == '' then return nil end
  local j = json.decode(data)
  if type(j) ~= 'table' then return { error = { message = 'unreadable stream event' } } end
  local kind = ev.event or j.type
  if kind == 'ping' or kind == 'content_block_stop' then
    return nil
  elseif kind == 'message_start' then
    local msg = type(j.message) == 'table' and j.message or {}
    if type(msg.model) == 'string' then state.model = msg.model end
    local raw = {}
    for k, v in pairs(type(msg.usage) == 'table' and msg.usage or {}) do raw[k] = v end
    state.raw_usage = raw
    return nil
  elseif kind == 'content_block_start' then
    local cb = j.content_block
    if type(cb) == 'table' and cb.type == 'text' and type(cb.text) == 'string' and cb.text ~= '' then
      return { delta = cb.text }
    end
    return nil
  elseif kind == 'content_block_delta' then
    local d = j.delta
    if type(d) == 'table' and d.type == 'text_delta' and type(d.text) == 'string' and d.text ~= '' then
      return { delta = d.text }
    end
    return nil
  elseif kind == 'message_delta' then
    local stop = util.get(j, 'delta', 'stop_reason')
    if type(stop) == 'string' then state.finish = stop end
    state.raw_usage = state.raw_usage or {}
    for k, v in pairs(type(j.usage) == 'table' and j.usage or {}) do
      if v ~= json.null then state.raw_usage[k] = v end  -- later counts are cumulative
    end
    return nil
  elseif kind == 'message_stop' then
    state.usage = M.usage(state.raw_usage, resolved)
    return { done = true }
  elseif kind == 'error' then
    local e = type(j.error) == 'table' and j.error or {}
    return { error = { message = e.message or 'error event', type = e.type, retryable = RETRY_TYPES[e.type] or false } }
  end
  return nil
end

--- 429 and 529 (overloaded) are retried, with retry-after; a 429 or 400
--- about spend limits or credit balance is a quota error, never retried.
function M.classify_error(res)
  local e = util.get(res, 'json', 'error')
  local msg = type(e) == 'table' and e.message or nil
  local quota = (res.status == 429 or res.status == 400 or res.status == 403) and util.is_quota_message(msg)
  return util.classify_http(res, quota)
end

return M
