-- OpenAI: Chat Completions (`options.api = 'chat'`, the default) and
-- Responses (`options.api = 'responses'`). See docs/providers.md.
--
-- The system text and the stable blocks form the first message (Chat) or
-- `instructions` (Responses), byte for byte the same across calls, so
-- OpenAI's automatic prefix cache can reuse it; `prompt_cache_key` is the
-- SHA-256 of that prefix, which routes calls sharing it to the same cache.
-- Usage: `prompt_tokens` / `input_tokens` include the cached tokens.
-- The chat helpers are exported (`M.chat`) for the OpenAI-compatible
-- servers (vllm, sglang, llamacpp) to build on.
local ctx = ...
local util = ctx.util
local json = aegis.json
local hash = aegis.hash

local M = {
  name = 'openai',
  base_url = 'https://api.openai.com/v1',
  base_url_env = 'OPENAI_BASE_URL',
  auth = { header = 'authorization', scheme = 'Bearer', env = 'OPENAI_API_KEY', required = true },
  endpoints = { chat = '/chat/completions', responses = '/responses' },
  -- The API's documented defaults (Chat Completions and Responses): an
  -- omitted parameter means this value, so the cache key (aegis.cache) merges
  -- these under the caller's params. Never sent: the request stays as given.
  defaults = { temperature = 1, top_p = 1, n = 1, presence_penalty = 0, frequency_penalty = 0 },
}

-- Copies params into body, renaming max_tokens to `max_field` and skipping
-- names in `skip`. Unknown parameters pass through untouched.
local function add_params(body, params, max_field, skip)
  for k, v in pairs(params or {}) do
    if k == 'max_tokens' then
      body[max_field] = v
    elseif not (skip and skip[k]) then
      body[k] = v
    end
  end
end

-- The user turn(s): the volatile blocks, then the extra messages.
local function turns(r, resolved)
  local list = {}
  if r.volatile then list[#list + 1] = { role = 'user', content = r.volatile } end
  for _, m in ipairs(resolved.messages or {}) do
    list[#list + 1] = { role = m.role, content = m.content }
  end
  if #list == 0 then error('openai: the request has no user turn (no volatile block and no messages)', 0) end
  return list
end

--- SHA-256 (hex) of the rendered stable prefix, or nil when there is none.
function M.prefix_hash(resolved)
  local r = util.render(resolved)
  return r.prefix and hash.sha256(r.prefix) or nil
end

-- {=================================================== Chat Completions
local chat = {}
M.chat = chat

--- The Chat Completions body. opts: max_field ('max_completion_tokens' for
--- OpenAI, 'max_tokens' for compatible servers), cache_key (add
--- prompt_cache_key), include_usage (stream_options).
function chat.body(resolved, opts)
  local r = util.render(resolved)
  local messages = {}
  if r.prefix then messages[1] = { role = opts.system_role or 'system', content = r.prefix } end
  for _, m in ipairs(turns(r, resolved)) do messages[#messages + 1] = m end
  local body = { model = resolved.model, messages = messages }
  add_params(body, resolved.params, opts.max_field or 'max_tokens')
  if resolved.stream then
    body.stream = true
    if opts.include_usage ~= false then
      local so = {}
      for k, v in pairs(body.stream_options or {}) do so[k] = v end
      so.include_usage = true
      body.stream_options = so
    end
  end
  if opts.cache_key and r.prefix and body.prompt_cache_key == nil then
    body.prompt_cache_key = hash.sha256(r.prefix)
  end
  return body
end

--- Usage of an OpenAI-style object (`prompt_tokens` including
--- `prompt_tokens_details.cached_tokens`). A missing cached count is nil
--- (unknown): vLLM and SGLang omit it unless asked. Writes are 0: these
--- APIs have no cache-write class.
function chat.usage(u)
  if type(u) ~= 'table' then return {} end
  return {
    input = util.count(u.prompt_tokens),
    cached_input = util.count(util.get(u, 'prompt_tokens_details', 'cached_tokens')),
    cache_write_5m = 0,
    cache_write_1h = 0,
    output = util.count(u.completion_tokens),
  }
end

local function message_text(content)
  if type(content) == 'string' then return content end
  if type(content) == 'table' then  -- a list of parts
    local out = {}
    for _, p in ipairs(content) do
      if type(p) == 'table' and type(p.text) == 'string' then out[#out + 1] = p.text end
    end
    return table.concat(out)
  end
  return ''
end

--- Parses a Chat Completions answer.
function chat.parse(res)
  local j = res.json
  if type(j) ~= 'table' or type(j.choices) ~= 'table' then return nil, 'no choices in the answer' end
  local choice = j.choices[1]
  if type(choice) ~= 'table' then return nil, 'no choices in the answer' end
  local finish = choice.finish_reason
  return {
    text = message_text(util.get(choice, 'message', 'content')),
    usage = chat.usage(j.usage),
    finish = type(finish) == 'string' and finish or nil,
    model = type(j.model) == 'string' and j.model or nil,
  }
end

--- One Chat Completions stream event: `data: {chunk}` or `data: [DONE]`.
function chat.stream_event(ev, state)
  local data = ev.data
  if data == '[DONE]' then return { done = true } end
  if type(data) ~= 'string' or data == '' then return nil end
  local j = json.decode(data)
  if type(j) ~= 'table' then return { error = { message = 'unreadable stream chunk' } } end
  if type(j.error) == 'table' then
    return { error = { message = j.error.message, type = j.error.type, retryable = false } }
  end
  if type(j.model) == 'string' then state.model = j.model end
  if type(j.usage) == 'table' then state.usage = chat.usage(j.usage) end
  local choice = type(j.choices) == 'table' and j.choices[1] or nil
  if type(choice) ~= 'table' then return nil end
  if type(choice.finish_reason) == 'string' then state.finish = choice.finish_reason end
  local delta = util.get(choice, 'delta', 'content')
  if type(delta) == 'string' and delta ~= '' then return { delta = delta } end
  return nil
end
-- }===================================================

-- {=================================================== Responses
local responses = {}
M.responses = responses

function responses.body(resolved)
  local r = util.render(resolved)
  local body = { model = resolved.model, input = turns(r, resolved), store = false }
  if r.prefix then body.instructions = r.prefix end
  add_params(body, resolved.params, 'max_output_tokens')
  if resolved.stream then body.stream = true end
  if r.prefix and body.prompt_cache_key == nil then body.prompt_cache_key = hash.sha256(r.prefix) end
  return body
end

function responses.usage(u)
  if type(u) ~= 'table' then return {} end
  return {
    input = util.count(u.input_tokens),
    cached_input = util.count(util.get(u, 'input_tokens_details', 'cached_tokens')),
    cache_write_5m = 0,
    cache_write_1h = 0,
    output = util.count(u.output_tokens),
  }
end

-- Text of a Response object: every output_text part of every message.
local function response_text(resp)
  local out = {}
  for _, item in ipairs(type(resp.output) == 'table' and resp.output or {}) do
    if type(item) == 'table' and item.type == 'message' and type(item.content) == 'table' then
      for _, part in ipairs(item.content) do
        if type(part) == 'table' and part.type == 'output_text' and type(part.text) == 'string' then
          out[#out + 1] = part.text
        end
      end
    end
  end
  return table.concat(out)
end

local function response_finish(resp)
  if resp.status == 'incomplete' then
    local reason = util.get(resp, 'incomplete_details', 'reason')
    return type(reason) == 'string' and reason or 'incomplete'
  end
  return type(resp.status) == 'string' and resp.status or nil
end

function responses.parse(res)
  local j = res.json
  if type(j) ~= 'table' or j.object ~= 'response' then return nil, 'not a response object' end
  return {
    text = response_text(j),
    usage = responses.usage(j.usage),
    finish = response_finish(j),
    model = type(j.model) == 'string' and j.model or nil,
  }
end

function responses.stream_event(ev, state)
  local data = ev.data
  if type(data) ~= 'string' or data == '' or data == '[DONE]' then return nil end
  local j = json.decode(data)
  if type(j) ~= 'table' then return { error = { message = 'unreadable stream event' } } end
  local kind = ev.event or j.type
  if kind == 'response.output_text.delta' then
    if type(j.delta) == 'string' and j.delta ~= '' then return { delta = j.delta } end
  elseif kind == 'response.completed' or kind == 'response.incomplete' then
    local resp = type(j.response) == 'table' and j.response or {}
    state.usage = responses.usage(resp.usage)
    state.finish = response_finish(resp)
    if type(resp.model) == 'string' then state.model = resp.model end
    return { done = true }
  elseif kind == 'response.failed' then
    local e = util.get(j, 'response', 'error') or {}
    return { error = { message = e.message or 'response failed', type = e.code } }
  elseif kind == 'error' then
    return { error = { message = j.message or util.get(j, 'error', 'message') or 'error event', type = j.code } }
  end
  return nil
end
-- }===================================================

local function api(resolved)
  local a = resolved.options and resolved.options.api or 'chat'
  if a ~= 'chat' and a ~= 'responses' then
    error(("openai: options.api must be 'chat' or 'responses', got '%s'"):format(tostring(a)), 0)
  end
  return a
end

function M.build_request(resolved)
  local a = api(resolved)
  local body
  if a == 'responses' then
    body = responses.body(resolved)
  else
    body = chat.body(resolved, { max_field = 'max_completion_tokens', cache_key = true })
  end
  return { method = 'POST', path = M.endpoints[a], headers = { ['content-type'] = 'application/json' }, body = body }
end

function M.parse_response(res, resolved)
  if api(resolved) == 'responses' then return responses.parse(res) end
  return chat.parse(res)
end

function M.parse_stream_event(ev, state, resolved)
  if api(resolved) == 'responses' then return responses.stream_event(ev, state) end
  return chat.stream_event(ev, state)
end

--- OpenAI's quota 429 (`insufficient_quota`) is never retried; the rest
--- follows the status, `x-should-retry` and `retry-after`.
function M.classify_error(res)
  local e = util.get(res, 'json', 'error')
  local code = type(e) == 'table' and (e.code or e.type) or nil
  local quota = res.status == 429 and (code == 'insufficient_quota' or code == 'billing_hard_limit_reached'
    or util.is_quota_message(type(e) == 'table' and e.message or nil))
  return util.classify_http(res, quota)
end

return M
