--- Anthropic Messages wire format for the emulator (`/anthropic/v1/messages`),
--- with its prompt cache: `cache_control` breakpoints (at most 4) on tools,
--- system blocks and message blocks, in that order; a minimum cacheable
--- length per model; TTLs of 5 minutes or 1 hour per breakpoint; reads
--- found at a breakpoint or up to 20 blocks before it.
local common = require('aegis.emulator.common')
local hash = require('aegis.hash')

local M = {}

local null = common.null
local array = common.array

local LOOKBACK = 20     -- blocks before a breakpoint where a hit is looked for
local MAX_BREAKPOINTS = 4
local TTL = { ['5m'] = 300, ['1h'] = 3600 }

local ERROR_TYPES = {
  [400] = 'invalid_request_error', [401] = 'authentication_error', [403] = 'permission_error',
  [404] = 'not_found_error', [405] = 'invalid_request_error', [413] = 'request_too_large',
  [429] = 'rate_limit_error', [500] = 'api_error', [502] = 'api_error', [503] = 'api_error',
  [504] = 'timeout_error', [529] = 'overloaded_error',
}

local MESSAGES = {
  invalid_request_error = 'Invalid request', authentication_error = 'invalid x-api-key',
  permission_error = 'Your API key does not have permission to use the specified resource.',
  not_found_error = 'Not found', request_too_large = 'Request exceeds the maximum allowed number of bytes.',
  rate_limit_error = 'Number of requests has exceeded your rate limit. Please try again later.',
  api_error = 'Internal server error', timeout_error = 'Request timed out', overloaded_error = 'Overloaded',
}

local function request_id(em)
  return 'req_' .. hash.sha256('anthropic' .. tostring(em.seq + 1)):sub(1, 24)
end

local function error_object(status, opts)
  local etype = opts.error_type or ERROR_TYPES[status] or (status >= 500 and 'api_error' or 'invalid_request_error')
  local message = opts.message
  if opts.invalid_json then message = 'There was an issue with the JSON body of your request: ' ..
    tostring(opts.detail or 'invalid JSON') end
  return { type = 'error', error = { type = etype, message = message or MESSAGES[etype] or 'Error' } }
end

--- The error response for a status: `{type: "error", error: {type,
--- message}}`; `opts` may carry `message`, `error_type`, `headers`,
--- `body` (replaces the whole body), `invalid_json`.
---@param em table
---@param route string
---@param status integer
---@param opts table
---@return table plan
function M.error(em, route, status, opts)
  local _ = route
  local headers = { ['content-type'] = 'application/json', ['request-id'] = request_id(em) }
  if status == 529 or status == 500 then headers['x-should-retry'] = 'true' end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local body = opts.body
  if body ~= nil and type(body) ~= 'string' then body = common.encode(body) end
  return { status = status, headers = headers, body = body or (common.encode(error_object(status, opts)) .. '\n') }
end

--- Checks `x-api-key` (or a Bearer token) and `anthropic-version`, as the
--- real API does, before the body is read. Only their presence is looked at.
---@param em table
---@param route string
---@param req table
---@return table? plan
function M.check_headers(em, route, req)
  local h = req.headers
  local key, auth = h['x-api-key'], h.authorization
  if (key == nil or key == '') and (auth == nil or not auth:match('^[Bb]earer%s+%S')) then
    return M.error(em, route, 401, { message = 'x-api-key header is required' })
  end
  local version = h['anthropic-version']
  if version == nil or version == '' then
    return M.error(em, route, 400, { message = 'anthropic-version: header is required' })
  end
  if not version:match('^%d%d%d%d%-%d%d%-%d%d$') then
    return M.error(em, route, 400, { message = ('anthropic-version: invalid version %q'):format(version) })
  end
  return nil
end

-- Minimum cacheable prompt length of a model, in tokens.
local function min_cacheable(model)
  if model:find('haiku%-4') or model:find('opus%-4%-5') then return 4096 end
  if model:find('haiku') then return 2048 end
  return 1024
end

-- A block as it enters the prompt text: its JSON without cache_control.
local function block_text(kind, b)
  if type(b) == 'string' then return kind .. ': ' .. b .. '\n' end
  local copy = {}
  for k, v in pairs(b) do
    if k ~= 'cache_control' then copy[k] = v end
  end
  if copy.type == 'text' and type(copy.text) == 'string' then return kind .. ': ' .. copy.text .. '\n' end
  return kind .. ': ' .. common.encode(copy) .. '\n'
end

-- Flattens tools, system and messages into blocks: {text, end (byte
-- offset), bp = ttl or nil}. Raises a message string on a bad request.
local function flatten(body)
  local blocks, text, pos = {}, {}, 0
  local function add(kind, b)
    local s = block_text(kind, b)
    pos = pos + #s
    text[#text + 1] = s
    local bp
    if type(b) == 'table' and b.cache_control ~= nil then
      local cc = b.cache_control
      if type(cc) ~= 'table' or cc.type ~= 'ephemeral' then
        error("cache_control.type: Input should be 'ephemeral'", 0)
      end
      bp = cc.ttl or '5m'
      if not TTL[bp] then error(("cache_control.ttl: Input should be '5m' or '1h'"), 0) end
    end
    blocks[#blocks + 1] = { stop = pos, bp = bp }
  end
  if type(body.tools) == 'table' then
    for _, t in ipairs(body.tools) do add('tool', t) end
  end
  if type(body.system) == 'string' then add('system', body.system)
  elseif type(body.system) == 'table' then
    for _, b in ipairs(body.system) do add('system', b) end
  end
  for i, m in ipairs(body.messages) do
    if type(m) ~= 'table' or (m.role ~= 'user' and m.role ~= 'assistant') then
      error(('messages.%d.role: Input should be \'user\' or \'assistant\''):format(i - 1), 0)
    end
    if type(m.content) == 'string' then add(m.role, m.content)
    elseif common.is_array(m.content) then
      for _, b in ipairs(m.content) do add(m.role, b) end
    else
      error(('messages.%d.content: Input should be a valid list'):format(i - 1), 0)
    end
  end
  return blocks, table.concat(text)
end

--- Usage of a prompt under the cache, and the cache update: reads at the
--- longest live prefix found at a breakpoint or within 20 blocks before
--- one; writes from there up to the last breakpoint, split by TTL.
---@param em table
---@param model string
---@param blocks table[]
---@param prompt string
---@return table usage fields (input_tokens, cache_*)
function M.account(em, model, blocks, prompt)
  local emulator = require('aegis.emulator')
  local state = emulator.cache(em, 'anthropic')
  state.entries = state.entries or {}
  local now = emulator.now(em)
  local minimum = min_cacheable(model)
  local total = common.tokens(prompt)
  local function key(stop) return model .. '\0' .. hash.sha256(prompt:sub(1, stop)) end
  -- candidate read positions: each breakpoint and the blocks before it
  local read_stop = 0
  for i, b in ipairs(blocks) do
    if b.bp then
      for j = i, math.max(1, i - LOOKBACK), -1 do
        local stop = blocks[j].stop
        if stop > read_stop then
          local e = state.entries[key(stop)]
          if e and e.expires > now then
            read_stop = stop
            e.expires = now + e.ttl  -- a read refreshes the entry
            break
          end
        end
      end
    end
  end
  local read = read_stop > 0 and common.tokens(prompt:sub(1, read_stop)) or 0
  local w5, w1h, last = 0, 0, read
  for _, b in ipairs(blocks) do
    if b.bp and b.stop > read_stop then
      local t = common.tokens(prompt:sub(1, b.stop))
      if t >= minimum then
        if b.bp == '1h' then w1h = w1h + (t - last) else w5 = w5 + (t - last) end
        last = t
        state.entries[key(b.stop)] = { expires = now + TTL[b.bp], ttl = TTL[b.bp] }
      end
    end
  end
  return {
    input_tokens = total - read - w5 - w1h,
    cache_creation_input_tokens = w5 + w1h,
    cache_read_input_tokens = read,
    cache_creation = { ephemeral_5m_input_tokens = w5, ephemeral_1h_input_tokens = w1h },
  }
end

local SAMPLING = { 'temperature', 'top_p', 'top_k' }

-- Checks the body; an error message or nil.
local function check(body, version)
  if type(body.model) ~= 'string' then return 'model: Field required' end
  if math.type(body.max_tokens) ~= 'integer' then return 'max_tokens: Field required' end
  if body.max_tokens < 1 then return 'max_tokens: Input should be greater than or equal to 1' end
  if not common.is_array(body.messages) then return 'messages: Field required' end
  if #body.messages == 0 then return 'messages: at least one message is required' end
  if version >= '2026-10-21' then
    for _, k in ipairs(SAMPLING) do
      if body[k] ~= nil then
        return ('%s: sampling parameters are not supported with anthropic-version %s'):format(k, version)
      end
    end
  end
  return nil
end

--- Serves a Messages request.
---@param em table
---@param call table
---@return table reply
function M.handle(em, call)
  local body = call.json
  local version = call.headers['anthropic-version']
  local msg = check(body, version)
  if msg then return M.error(em, 'anthropic', 400, { message = msg }) end
  local ok, blocks, prompt = pcall(flatten, body)
  if not ok then return M.error(em, 'anthropic', 400, { message = tostring(blocks) }) end
  local nbp, seen5m = 0, false
  for _, b in ipairs(blocks) do
    if b.bp then
      nbp = nbp + 1
      if b.bp == '5m' then seen5m = true
      elseif seen5m then
        return M.error(em, 'anthropic', 400, { message = "a ttl='1h' cache_control block must not come after a"
          .. " ttl='5m' cache_control block" })
      end
    end
  end
  if nbp > MAX_BREAKPOINTS then
    return M.error(em, 'anthropic', 400, {
      message = ('A maximum of %d blocks with cache_control may be provided. Found %d.'):format(MAX_BREAKPOINTS, nbp) })
  end
  local usage = M.account(em, body.model, blocks, prompt)
  local pieces, truncated
  if call.text then pieces, truncated = common.split(call.text), false
  else pieces, truncated = common.reply(call.seed, body.max_tokens) end
  if call.text and #pieces > body.max_tokens then
    pieces, truncated = table.move(pieces, 1, body.max_tokens, 1, {}), true
  end
  local text = table.concat(pieces)
  local stop_reason = truncated and 'max_tokens' or 'end_turn'
  usage.output_tokens = #pieces
  usage.service_tier = 'standard'
  local id = common.id('msg_', hash.sha256(call.seed))
  local headers = { ['request-id'] = request_id(em) }
  if not call.stream then
    headers['content-type'] = 'application/json'
    local obj = { id = id, type = 'message', role = 'assistant', model = body.model,
                  content = array({ { type = 'text', text = text } }), stop_reason = stop_reason,
                  stop_sequence = null, usage = usage }
    return { status = 200, headers = headers, body = common.encode(obj) .. '\n' }
  end
  headers['content-type'] = 'text/event-stream; charset=utf-8'
  headers['cache-control'] = 'no-cache'
  local events = {}
  local function ev(obj) events[#events + 1] = common.sse(common.encode(obj), obj.type) end
  local start_usage = {}
  for k, v in pairs(usage) do start_usage[k] = v end
  start_usage.output_tokens = 1
  ev({ type = 'message_start', message = { id = id, type = 'message', role = 'assistant', model = body.model,
       content = array({}), stop_reason = null, stop_sequence = null, usage = start_usage } })
  ev({ type = 'content_block_start', index = 0, content_block = { type = 'text', text = '' } })
  ev({ type = 'ping' })
  for _, p in ipairs(pieces) do
    ev({ type = 'content_block_delta', index = 0, delta = { type = 'text_delta', text = p } })
  end
  ev({ type = 'content_block_stop', index = 0 })
  ev({ type = 'message_delta', delta = { stop_reason = stop_reason, stop_sequence = null },
       usage = { output_tokens = #pieces, input_tokens = usage.input_tokens,
                 cache_creation_input_tokens = usage.cache_creation_input_tokens,
                 cache_read_input_tokens = usage.cache_read_input_tokens } })
  ev({ type = 'message_stop' })
  return {
    status = 200, headers = headers, events = events,
    error_event = function(f)
      local e = error_object(f.status or 529, f)
      return common.sse(common.encode(e), 'error')
    end,
  }
end

return M
