-- SGLang: its OpenAI-compatible route /v1/chat/completions
-- (`options.route = 'openai'`, the default) and its native /generate
-- (`options.route = 'native'`). See docs/providers.md.
--
-- RadixAttention reuses any shared prefix, so the system text and stable
-- blocks come first, byte for byte the same across calls. /generate takes
-- raw text (no chat template): the prompt is the prefix, a blank line and
-- the volatile text, then each message's content. Cached tokens come from
-- `prompt_tokens_details.cached_tokens` (OpenAI route; SGLang omits it when
-- it is zero or without --enable-cache-report) or `meta_info.cached_tokens`
-- (native); a missing field is unknown (nil), never 0.
local ctx = ...
local util = ctx.util
local json = aegis.json
local openai = ctx.require('openai')

local M = {
  name = 'sglang',
  base_url = 'http://127.0.0.1:30000',
  base_url_env = 'SGLANG_BASE_URL',
  auth = { header = 'authorization', scheme = 'Bearer', env = 'SGLANG_API_KEY', required = false },
  endpoints = { openai = '/v1/chat/completions', native = '/generate' },
  -- Only what does not depend on the model (for cache keys, aegis.cache;
  -- never sent): SGLang takes temperature, top_p, top_k from the model's
  -- generation config by default, so an omitted one is not assumed equal
  -- to any value.
  defaults = { n = 1, presence_penalty = 0, frequency_penalty = 0 },
}

local function route(resolved)
  local r = resolved.options and resolved.options.route or 'openai'
  if r ~= 'openai' and r ~= 'native' then
    error(("sglang: options.route must be 'openai' or 'native', got '%s'"):format(tostring(r)), 0)
  end
  return r
end

-- Native sampling parameter names.
local NATIVE = { max_tokens = 'max_new_tokens' }

--- The raw prompt of the native route.
function M.prompt(resolved)
  local r = util.render(resolved)
  local parts = {}
  if r.prefix then parts[#parts + 1] = r.prefix end
  if r.volatile then parts[#parts + 1] = r.volatile end
  for _, m in ipairs(resolved.messages or {}) do parts[#parts + 1] = m.content end
  if #parts == 0 then error('sglang: the request has no prompt', 0) end
  return table.concat(parts, '\n\n')
end

function M.build_request(resolved)
  if route(resolved) == 'openai' then
    return {
      method = 'POST',
      path = M.endpoints.openai,
      headers = { ['content-type'] = 'application/json' },
      body = openai.chat.body(resolved, { max_field = 'max_tokens', cache_key = false }),
    }
  end
  local sp = {}
  for k, v in pairs(resolved.params or {}) do sp[NATIVE[k] or k] = v end
  local body = { text = M.prompt(resolved), sampling_params = sp }
  if resolved.stream then body.stream = true end
  return {
    method = 'POST', path = M.endpoints.native, headers = { ['content-type'] = 'application/json' }, body = body,
  }
end

--- Usage from /generate's meta_info.
function M.native_usage(mi)
  if type(mi) ~= 'table' then return {} end
  return {
    input = util.count(mi.prompt_tokens),
    cached_input = util.count(mi.cached_tokens),
    cache_write_5m = 0,
    cache_write_1h = 0,
    output = util.count(mi.completion_tokens),
  }
end

local function native_finish(mi)
  local f = util.get(mi, 'finish_reason')
  if type(f) == 'table' then f = f.type end
  return type(f) == 'string' and f or nil
end

function M.parse_response(res, resolved)
  if route(resolved) == 'openai' then return openai.chat.parse(res) end
  local j = res.json
  if type(j) == 'table' and j[1] ~= nil then j = j[1] end  -- a batch of one
  if type(j) ~= 'table' or type(j.text) ~= 'string' then return nil, 'no text in the answer' end
  return { text = j.text, usage = M.native_usage(j.meta_info), finish = native_finish(j.meta_info) }
end

-- Native streaming sends the whole text so far in each event.
function M.parse_stream_event(ev, state, resolved)
  if route(resolved) == 'openai' then return openai.chat.stream_event(ev, state) end
  local data = ev.data
  if data == '[DONE]' then return { done = true } end
  if type(data) ~= 'string' or data == '' then return nil end
  local j = json.decode(data)
  if type(j) ~= 'table' then return { error = { message = 'unreadable stream event' } } end
  if type(j.error) == 'table' or type(j.error) == 'string' then
    return { error = { message = type(j.error) == 'table' and j.error.message or j.error } }
  end
  if type(j.meta_info) == 'table' then
    state.usage = M.native_usage(j.meta_info)
    state.finish = native_finish(j.meta_info) or state.finish
  end
  local text = type(j.text) == 'string' and j.text or ''
  local seen = state.seen or 0
  state.seen = #text
  if #text > seen then return { delta = text:sub(seen + 1) } end
  return nil
end

function M.classify_error(res)
  return util.classify_http(res)
end

return M
