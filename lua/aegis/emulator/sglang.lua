--- SGLang wire formats for the emulator: its OpenAI-compatible chat route
--- (shared with openai.lua) and its native `POST /generate`, whose
--- `meta_info` always carries `cached_tokens` (the radix cache, per token)
--- and whose stream sends the whole text so far in each event.
local common = require('aegis.emulator.common')
local hash = require('aegis.hash')
local openai = require('aegis.emulator.openai')

local M = {}

local null = common.null

--- The error response for a status (FastAPI style, as SGLang sends it).
---@param em table
---@param route string
---@param status integer
---@param opts table
---@return table plan
function M.error(em, route, status, opts)
  return openai.error(em, route, status, opts)
end

--- Serves `/generate` (native) or `/v1/chat/completions` (OpenAI shape).
---@param em table
---@param call table
---@return table reply
function M.handle(em, call)
  if call.path ~= '/generate' then return openai.chat(em, call) end
  local body = call.json
  if type(body.text) ~= 'string' then
    return M.error(em, 'sglang', 400, { message = 'Either text, input_ids or input_embeds should be provided.' })
  end
  local sp = type(body.sampling_params) == 'table' and body.sampling_params or {}
  local max_new = math.type(sp.max_new_tokens) == 'integer' and sp.max_new_tokens or 128
  local pieces, truncated
  if call.text then pieces, truncated = common.split(call.text), false
  else pieces, truncated = common.reply(call.seed, max_new) end
  local prompt_tokens = common.tokens(body.text)
  local cached = openai.cached_tokens(em, 'sglang', 'generate\0' .. tostring(body.model or ''), body.text)
  local id = hash.sha256(call.seed):sub(1, 32)
  local finish = truncated and { type = 'length', length = #pieces } or { type = 'stop', matched = 151645 }
  local function meta(n, done)
    return { id = id, finish_reason = done and finish or null, prompt_tokens = prompt_tokens,
             completion_tokens = n, cached_tokens = cached, e2e_latency = 0.0 }
  end
  if not call.stream then
    return { status = 200, headers = { ['content-type'] = 'application/json' },
             body = common.encode({ text = table.concat(pieces), meta_info = meta(#pieces, true) }) .. '\n' }
  end
  local events, sofar = {}, ''
  for i, p in ipairs(pieces) do
    sofar = sofar .. p
    events[#events + 1] = common.sse(common.encode({ text = sofar, meta_info = meta(i, i == #pieces) }))
  end
  if #pieces == 0 then events[1] = common.sse(common.encode({ text = '', meta_info = meta(0, true) })) end
  events[#events + 1] = 'data: [DONE]\n\n'
  return {
    status = 200, headers = { ['content-type'] = 'text/event-stream' }, events = events,
    error_event = function(f)
      return common.sse(common.encode({ error = { message = f.message or 'Internal server error',
                                                  code = f.status or 500 } }))
    end,
  }
end

return M
