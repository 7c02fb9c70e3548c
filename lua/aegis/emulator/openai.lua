--- OpenAI wire formats for the emulator: Chat Completions (also the
--- OpenAI-compatible routes of vLLM, SGLang and llama.cpp, as "flavours")
--- and the Responses API. Prefix caching: OpenAI caches prompts of at least
--- 1024 tokens in 128-token steps (namespaced by `prompt_cache_key`); vLLM
--- in 16-token blocks, SGLang per token, both reported only with
--- `--report-cached`.
local common = require('aegis.emulator.common')
local hash = require('aegis.hash')

local M = {}

local null = common.null
local array = common.array

local OPENAI_CACHE_TTL = 600  -- seconds of inactivity before a prefix is evicted

local REASONS = {
  [400] = 'Bad Request', [401] = 'Unauthorized', [403] = 'Forbidden', [404] = 'Not Found',
  [405] = 'Method Not Allowed', [408] = 'Request Timeout', [409] = 'Conflict', [413] = 'Payload Too Large',
  [422] = 'Unprocessable Entity', [429] = 'Too Many Requests', [500] = 'Internal Server Error',
  [502] = 'Bad Gateway', [503] = 'Service Unavailable', [504] = 'Gateway Timeout', [529] = 'Overloaded',
}

local function request_id(em)
  return 'req_' .. hash.sha256(tostring(em.seq + 1)):sub(1, 24)
end

local function body_override(opts)
  local b = opts.body
  if b == nil then return nil end
  if type(b) == 'string' then return b end
  return common.encode(b)
end

-- OpenAI's own error object for a status.
local function openai_error(status, opts)
  local message, etype, code, param = opts.message, 'invalid_request_error', null, null
  if opts.invalid_json then
    message = 'We could not parse the JSON body of your request. (HINT: This likely means you aren\'t using your'
      .. ' HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.'
      .. ' If you have trouble figuring out how to fix this, please contact us through our help center at'
      .. ' help.openai.com.)'
  elseif status == 401 then
    message = message or 'You didn\'t provide an API key. You need to provide your API key in an Authorization'
      .. ' header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with'
      .. ' blank username) if you\'re accessing the API from your browser and are prompted for a username and'
      .. ' password. You can obtain an API key from https://platform.openai.com/account/api-keys.'
  elseif status == 404 then
    code = 'unknown_url'
  elseif status == 413 then
    message = message or 'Request body too large.'
  elseif status == 429 then
    if opts.error_type == 'insufficient_quota' then
      etype, code = 'insufficient_quota', 'insufficient_quota'
      message = message or 'You exceeded your current quota, please check your plan and billing details. For'
        .. ' more information on this error, read the docs:'
        .. ' https://platform.openai.com/docs/guides/error-codes/api-errors.'
    else
      etype, code = 'requests', 'rate_limit_exceeded'
      message = message or 'Rate limit reached for requests. Please try again later.'
    end
  elseif status >= 500 then
    etype = 'server_error'
    message = message or 'The server had an error while processing your request. Sorry about that!'
  end
  if opts.error_type and status ~= 429 then etype = opts.error_type end
  if opts.param then param = opts.param end
  if opts.code then code = opts.code end
  return { error = { message = message or REASONS[status] or 'Error', type = etype, param = param, code = code } }
end

-- vLLM's and SGLang's error object (FastAPI style).
local function compat_error(status, opts)
  local message = opts.message
  if opts.invalid_json then message = 'Invalid JSON: ' .. tostring(opts.detail or 'the body is not JSON') end
  local name = (REASONS[status] or 'Error'):gsub(' ', '')
  return { object = 'error', message = message or REASONS[status] or 'Error', type = name .. 'Error',
           param = null, code = status }
end

-- llama.cpp's error object.
local function llamacpp_error(status, opts)
  local message = opts.message
  if opts.invalid_json then message = 'Invalid JSON: ' .. tostring(opts.detail or 'the body is not JSON') end
  local etype = status == 401 and 'authentication_error' or status == 404 and 'not_found_error'
    or status >= 500 and 'server_error' or status == 503 and 'unavailable_error' or 'invalid_request_error'
  return { error = { code = status, message = message or REASONS[status] or 'Error', type = etype } }
end

--- The error response of a route for a status; `opts` may carry
--- `message`, `error_type`, `headers`, `body` (replaces the whole body),
--- `invalid_json`.
---@param em table
---@param route string 'openai', 'vllm', 'sglang' or 'llamacpp'
---@param status integer
---@param opts table
---@return table plan
function M.error(em, route, status, opts)
  local obj
  if route == 'openai' then obj = openai_error(status, opts)
  elseif route == 'llamacpp' then obj = llamacpp_error(status, opts)
  else obj = compat_error(status, opts) end
  local headers = { ['content-type'] = 'application/json' }
  if route == 'openai' then headers['x-request-id'] = request_id(em) end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  return { status = status, headers = headers, body = body_override(opts) or (common.encode(obj) .. '\n') }
end

--- Checks auth headers before the body is read: OpenAI needs a Bearer key
--- (presence only); the self-hosted servers need none.
---@param em table
---@param route string
---@param req table
---@return table? plan An error plan, or nil when the request may go on
function M.check_headers(em, route, req)
  if route ~= 'openai' then return nil end
  local auth = req.headers.authorization
  if auth == nil or not auth:match('^[Bb]earer%s+%S') then return M.error(em, route, 401, {}) end
  return nil
end

--- Prompt text of a chat request, the text tokens are counted on.
---@param body table
---@return string
function M.chat_prompt(body)
  local out = {}
  if type(body.tools) == 'table' then out[#out + 1] = 'tools: ' .. common.encode(body.tools) .. '\n' end
  for _, m in ipairs(body.messages) do
    local role = type(m) == 'table' and m.role or '?'
    local text = type(m) == 'table' and common.content_text(m.content) or ''
    out[#out + 1] = tostring(role) .. ': ' .. text .. '\n'
    if type(m) == 'table' and m.tool_calls ~= nil then out[#out + 1] = common.encode(m.tool_calls) .. '\n' end
  end
  return table.concat(out)
end

local function max_tokens_of(body, ...)
  for _, k in ipairs({ ... }) do
    local v = body[k]
    if math.type(v) == 'integer' then return v end
  end
  return nil
end

-- Cached prompt tokens of the automatic caches, and the cache update.
local function openai_cached(em, cache, ns, prompt, tokens, ttl)
  local now = require('aegis.emulator').now(em)
  local cached = 0
  if tokens >= 1024 then
    local lcp = cache:lookup(ns, prompt, now) // 4
    cached = (math.min(lcp, tokens) // 128) * 128
    if cached < 1024 then cached = 0 end
    cache:add(ns, prompt, now, ttl)
  end
  return cached
end

local function block_cached(em, cache, ns, prompt, tokens, block)
  local now = require('aegis.emulator').now(em)
  local lcp = cache:lookup(ns, prompt, now) // 4
  cache:add(ns, prompt, now)
  -- the last prompt token is always computed again
  return (math.max(math.min(lcp, tokens - 1), 0) // block) * block
end

--- Cached prompt tokens for a prompt under a route's cache model, and the
--- cache update. Returns the count (always computed) and whether the route
--- reports it.
---@param em table
---@param route string
---@param ns string Cache namespace (model, cache key)
---@param prompt string
---@param ttl? number Seconds a new entry lives after its last use (OpenAI: 600)
---@return integer cached
---@return boolean reported
function M.cached_tokens(em, route, ns, prompt, ttl)
  local state = require('aegis.emulator').cache(em, route)
  local tokens = common.tokens(prompt)
  if route == 'openai' then
    state.prefix = state.prefix or common.prefix_cache({ ttl = OPENAI_CACHE_TTL })
    return openai_cached(em, state.prefix, ns, prompt, tokens, ttl), true
  end
  state.prefix = state.prefix or common.prefix_cache()
  local block = route == 'vllm' and 16 or 1
  return block_cached(em, state.prefix, ns, prompt, tokens, block), em.report_cached
end

-- `prompt_cache_retention: "24h"` keeps OpenAI prefixes a day.
local function retention(body)
  return body.prompt_cache_retention == '24h' and 86400 or nil
end

local function bad_request(em, route, message, param, code)
  return M.error(em, route, 400, { message = message, param = param, code = code })
end

-- Checks a chat request; an error plan or nil.
local function check_chat(em, route, body)
  if type(body.model) ~= 'string' and route == 'openai' then
    return bad_request(em, route, "Missing required parameter: 'model'.", 'model', 'missing_required_parameter')
  end
  if not common.is_array(body.messages) then
    return bad_request(em, route, "Missing required parameter: 'messages'.", 'messages', 'missing_required_parameter')
  end
  if #body.messages == 0 then
    return bad_request(em, route, "Invalid 'messages': empty array. Expected an array with minimum length 1,"
      .. ' but got an empty array instead.', 'messages', 'empty_array')
  end
  return nil
end

local function usage_object(route, prompt_tokens, completion_tokens, cached, reported)
  local u = {
    prompt_tokens = prompt_tokens,
    completion_tokens = completion_tokens,
    total_tokens = prompt_tokens + completion_tokens,
  }
  if route == 'openai' then
    u.prompt_tokens_details = { cached_tokens = cached, audio_tokens = 0 }
    u.completion_tokens_details = { reasoning_tokens = 0, audio_tokens = 0, accepted_prediction_tokens = 0,
                                    rejected_prediction_tokens = 0 }
  elseif route == 'vllm' or route == 'sglang' then
    u.prompt_tokens_details = reported and { cached_tokens = cached } or null
  end
  return u
end

--- Serves a Chat Completions request. `flavor` (for llama.cpp) may give
--- `usage(prompt) -> prompt_tokens, cached, extra_fields`.
---@param em table
---@param call table The request (route, json, stream, seed, text)
---@param flavor? {usage: fun(prompt: string, body: table): integer, integer, table?, table?}
---@return table reply
function M.chat(em, call, flavor)
  local route, body = call.route, call.json
  local bad = check_chat(em, route, body)
  if bad then return bad end
  local prompt = M.chat_prompt(body)
  local max_tokens = max_tokens_of(body, 'max_completion_tokens', 'max_tokens')
  local pieces, truncated
  if call.text then pieces, truncated = common.split(call.text), false
  else pieces, truncated = common.reply(call.seed, max_tokens) end
  local text = table.concat(pieces)
  local prompt_tokens, cached, reported, extra
  if flavor then
    prompt_tokens, cached, extra = flavor.usage(prompt, body, text)
    reported = false
  else
    prompt_tokens = common.tokens(prompt)
    local ns = tostring(body.model) .. '\0' .. (type(body.prompt_cache_key) == 'string' and body.prompt_cache_key or '')
    cached, reported = M.cached_tokens(em, route, ns, prompt, retention(body))
  end
  local usage = usage_object(route, prompt_tokens, #pieces, cached, reported)
  local digest = hash.sha256(call.seed)
  local id = common.id('chatcmpl-', digest)
  local model = body.model or 'emulated'
  local finish = truncated and 'length' or 'stop'
  local fingerprint = route == 'openai' and 'fp_emulator' or nil
  if not call.stream then
    local obj = {
      id = id, object = 'chat.completion', created = common.CREATED, model = model,
      choices = array({ {
        index = 0,
        message = { role = 'assistant', content = text, refusal = route == 'openai' and null or nil,
                    annotations = route == 'openai' and array({}) or nil },
        logprobs = null, finish_reason = finish,
      } }),
      usage = usage, system_fingerprint = fingerprint,
      service_tier = route == 'openai' and 'default' or nil,
    }
    for k, v in pairs(extra or {}) do obj[k] = v end
    return { status = 200, headers = { ['content-type'] = 'application/json' }, body = common.encode(obj) .. '\n' }
  end
  local include_usage = type(body.stream_options) == 'table' and body.stream_options.include_usage == true
  local events = {}
  local function chunk(delta, finish_reason)
    local obj = {
      id = id, object = 'chat.completion.chunk', created = common.CREATED, model = model,
      system_fingerprint = fingerprint,
      choices = array({ { index = 0, delta = delta, logprobs = null, finish_reason = finish_reason or null } }),
    }
    if include_usage then obj.usage = null end
    events[#events + 1] = common.sse(common.encode(obj))
  end
  chunk({ role = 'assistant', content = '', refusal = route == 'openai' and null or nil })
  for _, p in ipairs(pieces) do chunk({ content = p }) end
  chunk({}, finish)
  if include_usage then
    local obj = { id = id, object = 'chat.completion.chunk', created = common.CREATED, model = model,
                  system_fingerprint = fingerprint, choices = array({}), usage = usage }
    for k, v in pairs(extra or {}) do obj[k] = v end
    events[#events + 1] = common.sse(common.encode(obj))
  end
  events[#events + 1] = 'data: [DONE]\n\n'
  return {
    status = 200,
    headers = { ['content-type'] = 'text/event-stream; charset=utf-8', ['cache-control'] = 'no-cache' },
    events = events,
    error_event = function(f)
      local e = route == 'llamacpp' and llamacpp_error(f.status or 500, f)
        or route == 'openai' and openai_error(f.status or 500, f) or compat_error(f.status or 500, f)
      return common.sse(common.encode(e))
    end,
  }
end

-- Prompt text of a Responses request.
local function responses_prompt(body)
  local out = {}
  if type(body.tools) == 'table' then out[#out + 1] = 'tools: ' .. common.encode(body.tools) .. '\n' end
  if type(body.instructions) == 'string' then out[#out + 1] = 'developer: ' .. body.instructions .. '\n' end
  if type(body.input) == 'string' then
    out[#out + 1] = 'user: ' .. body.input .. '\n'
  else
    for _, item in ipairs(body.input) do
      if type(item) == 'table' then
        out[#out + 1] = tostring(item.role or item.type or '?') .. ': ' .. common.content_text(item.content) .. '\n'
      end
    end
  end
  return table.concat(out)
end

--- Serves a Responses API request (`/v1/responses`).
---@param em table
---@param call table
---@return table reply
function M.responses(em, call)
  local body = call.json
  if type(body.model) ~= 'string' then
    return bad_request(em, 'openai', "Missing required parameter: 'model'.", 'model', 'missing_required_parameter')
  end
  if type(body.input) ~= 'string' and not common.is_array(body.input) then
    return bad_request(em, 'openai', "Missing required parameter: 'input'.", 'input', 'missing_required_parameter')
  end
  local prompt = responses_prompt(body)
  local max_tokens = max_tokens_of(body, 'max_output_tokens')
  local pieces, truncated
  if call.text then pieces, truncated = common.split(call.text), false
  else pieces, truncated = common.reply(call.seed, max_tokens) end
  local text = table.concat(pieces)
  local input_tokens = common.tokens(prompt)
  local ns = body.model .. '\0' .. (type(body.prompt_cache_key) == 'string' and body.prompt_cache_key or '')
  local cached = M.cached_tokens(em, 'openai', ns, prompt, retention(body))
  local digest = hash.sha256(call.seed)
  local rid, mid = common.id('resp_', digest), common.id('msg_', digest)
  local usage = {
    input_tokens = input_tokens, input_tokens_details = { cached_tokens = cached },
    output_tokens = #pieces, output_tokens_details = { reasoning_tokens = 0 },
    total_tokens = input_tokens + #pieces,
  }
  local part = { type = 'output_text', text = text, annotations = array({}), logprobs = array({}) }
  local item = { type = 'message', id = mid, status = truncated and 'incomplete' or 'completed', role = 'assistant',
                 content = array({ part }) }
  local function response(status, with_output)
    return {
      id = rid, object = 'response', created_at = common.CREATED, status = status, error = null,
      incomplete_details = (status == 'incomplete') and { reason = 'max_output_tokens' } or null,
      instructions = body.instructions or null, max_output_tokens = max_tokens or null, model = body.model,
      output = array(with_output and { item } or {}), parallel_tool_calls = true,
      previous_response_id = body.previous_response_id or null, prompt_cache_key = body.prompt_cache_key or null,
      reasoning = { effort = null, summary = null }, store = body.store ~= false, temperature = 1, top_p = 1,
      text = { format = { type = 'text' } }, tool_choice = 'auto', tools = array({}), truncation = 'disabled',
      usage = with_output and usage or null, user = null, metadata = {},
    }
  end
  local final = truncated and 'incomplete' or 'completed'
  if not call.stream then
    return { status = 200, headers = { ['content-type'] = 'application/json' },
             body = common.encode(response(final, true)) .. '\n' }
  end
  local events, seq = {}, 0
  local function ev(obj)
    obj.sequence_number = seq
    seq = seq + 1
    events[#events + 1] = common.sse(common.encode(obj), obj.type)
  end
  ev({ type = 'response.created', response = response('in_progress', false) })
  ev({ type = 'response.in_progress', response = response('in_progress', false) })
  ev({ type = 'response.output_item.added', output_index = 0,
       item = { type = 'message', id = mid, status = 'in_progress', role = 'assistant', content = array({}) } })
  ev({ type = 'response.content_part.added', item_id = mid, output_index = 0, content_index = 0,
       part = { type = 'output_text', text = '', annotations = array({}), logprobs = array({}) } })
  for _, p in ipairs(pieces) do
    ev({ type = 'response.output_text.delta', item_id = mid, output_index = 0, content_index = 0, delta = p,
         logprobs = array({}) })
  end
  ev({ type = 'response.output_text.done', item_id = mid, output_index = 0, content_index = 0, text = text,
       logprobs = array({}) })
  ev({ type = 'response.content_part.done', item_id = mid, output_index = 0, content_index = 0, part = part })
  ev({ type = 'response.output_item.done', output_index = 0, item = item })
  ev({ type = 'response.' .. final, response = response(final, true) })
  return {
    status = 200,
    headers = { ['content-type'] = 'text/event-stream; charset=utf-8', ['cache-control'] = 'no-cache' },
    events = events,
    error_event = function(f)
      local e = openai_error(f.status or 500, f).error
      return common.sse(common.encode({ type = 'error', code = e.code, message = e.message, param = e.param,
                                        sequence_number = seq }), 'error')
    end,
  }
end

--- Serves a request on an OpenAI-shaped route (openai, vllm).
---@param em table
---@param call table
---@return table reply
function M.handle(em, call)
  if call.path == '/v1/responses' then return M.responses(em, call) end
  return M.chat(em, call)
end

return M
