--- llama.cpp server wire formats for the emulator: native `POST /completion`
--- and `/v1/chat/completions`. Each of N slots (default 4) keeps the text
--- it last processed (prompt and reply); with `cache_prompt` (on by
--- default) a request reuses its slot's common prefix, except the last
--- prompt token, which is always evaluated again. The slot is `id_slot`
--- when given, else the idle slot sharing most of the prompt (at least
--- half), else the least recently used one.
local common = require('aegis.emulator.common')
local openai = require('aegis.emulator.openai')

local M = {}

--- The error response for a status (`{error: {code, message, type}}`).
---@param em table
---@param route string
---@param status integer
---@param opts table
---@return table plan
function M.error(em, route, status, opts)
  return openai.error(em, route, status, opts)
end

local function slots_of(em)
  local state = require('aegis.emulator').cache(em, 'llamacpp')
  if not state.slots then
    state.slots, state.tick = {}, 0
    for i = 1, em.slots do state.slots[i] = { text = '', used = 0, id = i - 1 } end
  end
  return state
end

-- Picks the slot for a prompt; nil and a message for a bad id_slot.
local function pick_slot(state, prompt, id_slot)
  local slots = state.slots
  if math.type(id_slot) == 'integer' and id_slot >= 0 then
    if id_slot >= #slots then return nil, ('Invalid id_slot: %d'):format(id_slot) end
    return slots[id_slot + 1]
  end
  local best, best_lcp = nil, 0
  for _, s in ipairs(slots) do
    local lcp = common.common_prefix(s.text, prompt)
    if lcp > best_lcp then best, best_lcp = s, lcp end
  end
  if best and best_lcp * 2 >= #prompt then return best end
  local lru = slots[1]
  for _, s in ipairs(slots) do
    if s.used < lru.used then lru = s end
  end
  return lru
end

-- Runs a prompt through a slot: tokens reused and evaluated, and the
-- slot's new text.
local function evaluate(em, prompt, body, reply)
  local state = slots_of(em)
  local slot, err = pick_slot(state, prompt, body.id_slot)
  if not slot then return nil, err end
  local n_prompt = common.tokens(prompt)
  local reused = 0
  if body.cache_prompt ~= false then
    reused = math.max(0, math.min(common.common_prefix(slot.text, prompt) // 4, n_prompt - 1))
  end
  state.tick = state.tick + 1
  slot.used = state.tick
  slot.text = prompt .. reply
  return { slot = slot.id, n_prompt = n_prompt, reused = reused }
end

local function timings(ev, n_predicted)
  local prompt_n = ev.n_prompt - ev.reused
  local prompt_ms = prompt_n * 0.5
  local predicted_ms = n_predicted * 10.0
  return {
    cache_n = ev.reused,
    prompt_n = prompt_n, prompt_ms = prompt_ms,
    prompt_per_token_ms = prompt_n > 0 and prompt_ms / prompt_n or 0,
    prompt_per_second = prompt_n > 0 and prompt_n * 1000 / prompt_ms or 0,
    predicted_n = n_predicted, predicted_ms = predicted_ms,
    predicted_per_token_ms = n_predicted > 0 and 10.0 or 0,
    predicted_per_second = n_predicted > 0 and 100.0 or 0,
  }
end

local function completion(em, call)
  local body = call.json
  local prompt = body.prompt
  if common.is_array(prompt) then
    local parts = {}
    for i, t in ipairs(prompt) do parts[i] = tostring(t) end
    prompt = table.concat(parts, ' ')
  end
  if type(prompt) ~= 'string' then
    return M.error(em, 'llamacpp', 400, { message = '"prompt" must be provided' })
  end
  local n_predict = math.type(body.n_predict) == 'integer' and body.n_predict >= 0 and body.n_predict or nil
  local pieces, truncated
  if call.text then pieces, truncated = common.split(call.text), false
  else pieces, truncated = common.reply(call.seed, n_predict) end
  local text = table.concat(pieces)
  local ev, err = evaluate(em, prompt, body, text)
  if not ev then return M.error(em, 'llamacpp', 400, { message = err }) end
  local model = type(body.model) == 'string' and body.model or 'emulated.gguf'
  local final = {
    index = 0, content = call.stream and '' or text, tokens = common.array({}), id_slot = ev.slot, stop = true,
    model = model, tokens_predicted = #pieces, tokens_evaluated = ev.n_prompt,
    generation_settings = { n_predict = n_predict or -1, temperature = body.temperature or 0.8,
                            cache_prompt = body.cache_prompt ~= false },
    prompt = prompt, has_new_line = text:find('\n', 1, true) ~= nil, truncated = false,
    stop_type = truncated and 'limit' or 'eos', stopping_word = '',
    -- as llama.cpp sends it: the slot's n_past (prompt and reply, less the last token)
    tokens_cached = ev.n_prompt + math.max(#pieces - 1, 0),
    timings = timings(ev, #pieces),
  }
  if not call.stream then
    return { status = 200, headers = { ['content-type'] = 'application/json; charset=utf-8' },
             body = common.encode(final) .. '\n' }
  end
  local events = {}
  for i, p in ipairs(pieces) do
    events[#events + 1] = common.sse(common.encode({ index = 0, content = p, tokens = common.array({}), stop = false,
      id_slot = ev.slot, tokens_predicted = i, tokens_evaluated = ev.n_prompt }))
  end
  events[#events + 1] = common.sse(common.encode(final))
  return {
    status = 200, headers = { ['content-type'] = 'text/event-stream' }, events = events,
    error_event = function(f)
      return common.sse(common.encode({ error = { code = f.status or 500, message = f.message or 'Internal error',
                                                  type = 'server_error' } }))
    end,
  }
end

--- Serves `/completion` (native) or `/v1/chat/completions` (OpenAI shape,
--- with `timings` added, as llama.cpp does).
---@param em table
---@param call table
---@return table reply
function M.handle(em, call)
  if call.path == '/completion' then return completion(em, call) end
  local failure
  local result = openai.chat(em, call, {
    usage = function(prompt, body, reply)
      local ev, err = evaluate(em, prompt, body, reply)
      if not ev then
        failure = err
        return 0, 0, nil
      end
      return ev.n_prompt, ev.reused, { timings = timings(ev, #common.split(reply)) }
    end,
  })
  if failure then return M.error(em, 'llamacpp', 400, { message = failure }) end
  return result
end

return M
