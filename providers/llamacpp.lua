-- llama.cpp's server (llama-server): the native /completion
-- (`options.route = 'native'`, the default) and its OpenAI-compatible
-- /v1/chat/completions (`options.route = 'openai'`). See docs/providers.md.
--
-- Native: `cache_prompt = true` keeps the slot's KV cache for the next
-- request, and `id_slot` pins requests that share a stable prefix to one
-- slot: slot = (first 8 hex digits of SHA-256(prefix), as an integer)
-- mod `options.slots` (the server's --parallel). Without `options.slots`,
-- or without a stable prefix, no id_slot is sent and the server picks.
-- Usage: input = tokens_evaluated, cached_input = timings.cache_n (the
-- prompt tokens reused; nil when the server does not report it), output =
-- tokens_predicted. `tokens_cached` is the slot's whole KV length after the
-- call (prompt and output), not a cache hit count: kept in `extra`.
local ctx = ...
local util = ctx.util
local json = aegis.json
local hash = aegis.hash
local openai = ctx.require('openai')

local M = {
  name = 'llamacpp',
  base_url = 'http://127.0.0.1:8080',
  base_url_env = 'LLAMACPP_BASE_URL',
  auth = { header = 'authorization', scheme = 'Bearer', env = 'LLAMACPP_API_KEY', required = false },
  endpoints = { native = '/completion', openai = '/v1/chat/completions' },
  -- llama-server's built-in sampling defaults, the same on both routes (for
  -- cache keys, aegis.cache; never sent). A server started with --temp,
  -- --top-k, ... answers otherwise: pass those values explicitly then.
  defaults = { temperature = 0.8, top_k = 40, top_p = 0.95, min_p = 0.05 },
}

local function route(resolved)
  local r = resolved.options and resolved.options.route or 'native'
  if r ~= 'openai' and r ~= 'native' then
    error(("llamacpp: options.route must be 'native' or 'openai', got '%s'"):format(tostring(r)), 0)
  end
  return r
end

-- Native parameter names.
local NATIVE = { max_tokens = 'n_predict' }

--- The slot for a stable prefix with `slots` slots, or nil.
function M.slot(prefix, slots)
  slots = math.tointeger(slots)
  if prefix == nil or slots == nil or slots < 1 then return nil end
  return tonumber(hash.sha256(prefix):sub(1, 8), 16) % slots
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
  local r = util.render(resolved)
  local parts = {}
  if r.prefix then parts[#parts + 1] = r.prefix end
  if r.volatile then parts[#parts + 1] = r.volatile end
  for _, m in ipairs(resolved.messages or {}) do parts[#parts + 1] = m.content end
  if #parts == 0 then error('llamacpp: the request has no prompt', 0) end
  local body = { prompt = table.concat(parts, '\n\n'), cache_prompt = true }
  for k, v in pairs(resolved.params or {}) do body[NATIVE[k] or k] = v end
  local slot = M.slot(r.prefix, resolved.options and resolved.options.slots)
  if slot and body.id_slot == nil then body.id_slot = slot end
  if resolved.stream then body.stream = true end
  return {
    method = 'POST', path = M.endpoints.native, headers = { ['content-type'] = 'application/json' }, body = body,
  }
end

--- Usage of a native /completion answer (or its last stream event).
function M.native_usage(j)
  if type(j) ~= 'table' then return {} end
  return {
    input = util.count(j.tokens_evaluated),
    cached_input = util.count(util.get(j, 'timings', 'cache_n')),
    cache_write_5m = 0,
    cache_write_1h = 0,
    output = util.count(j.tokens_predicted),
  }
end

local function native_finish(j)
  if type(j.stop_type) == 'string' then return j.stop_type end
  if j.stopped_limit == true then return 'limit' end
  if j.stopped_eos == true then return 'eos' end
  if j.stopped_word == true then return 'word' end
  return nil
end

local function extra(j)
  return { tokens_cached = util.count(j.tokens_cached), id_slot = util.count(j.id_slot), timings = j.timings }
end

function M.parse_response(res, resolved)
  if route(resolved) == 'openai' then return openai.chat.parse(res) end
  local j = res.json
  if type(j) ~= 'table' or type(j.content) ~= 'string' then return nil, 'no content in the answer' end
  return { text = j.content, usage = M.native_usage(j), finish = native_finish(j), extra = extra(j) }
end

-- Native stream: `data: {content, stop}` events; the last has stop = true
-- and the counts.
function M.parse_stream_event(ev, state, resolved)
  if route(resolved) == 'openai' then return openai.chat.stream_event(ev, state) end
  local data = ev.data
  if type(data) ~= 'string' or data == '' then return nil end
  local j = json.decode(data)
  if type(j) ~= 'table' then return { error = { message = 'unreadable stream event' } } end
  if type(j.error) == 'table' then return { error = { message = j.error.message, type = j.error.type } } end
  local out = {}
  if type(j.content) == 'string' and j.content ~= '' then out.delta = j.content end
  if j.stop == true then
    state.usage = M.native_usage(j)
    state.finish = native_finish(j)
    state.extra = extra(j)
    out.done = true
  end
  if next(out) == nil then return nil end
  return out
end

function M.classify_error(res)
  return util.classify_http(res)
end

return M
