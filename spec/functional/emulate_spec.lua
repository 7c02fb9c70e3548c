local h = require('spec.helpers')
local json = require('aegis.json')
local emu = require('spec.fixtures.emulator.client')

local OPENAI = { authorization = 'Bearer sk-test' }
local EPHEMERAL = { type = 'ephemeral' }
local ANTHROPIC = { ['x-api-key'] = 'sk-test', ['anthropic-version'] = '2023-06-01' }

local function decode(s) return assert(json.decode(s)) end

local function base64(s)
  local abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  local out = (s:gsub('.', function(c)
    local b, bits = c:byte(), ''
    for i = 8, 1, -1 do bits = bits .. ((b >> (i - 1)) & 1) end
    return bits
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local n = tonumber(x, 2)
    return abc:sub(n + 1, n + 1)
  end)
  return out
end

local function chat(extra)
  local b = { model = 'gpt-4o-mini', messages = { { role = 'user', content = 'Write a function.' } } }
  for k, v in pairs(extra or {}) do b[k] = v end
  return b
end

local function messages(extra)
  local b = { model = 'claude-sonnet-4-5', max_tokens = 64, messages = { { role = 'user', content = 'Hello' } } }
  for k, v in pairs(extra or {}) do b[k] = v end
  return b
end

-- data payloads of an SSE body, decoded (except [DONE])
local function datas(body)
  local out = {}
  for _, ev in ipairs(emu.sse(body)) do
    out[#out + 1] = ev.data == '[DONE]' and '[DONE]' or decode(ev.data)
  end
  return out
end

describe('aegis-run emulate', function()
  local e
  setup(function() e = emu.start() end)
  teardown(function() e:stop() end)
  before_each(function() e:reset() end)

  describe('OpenAI Chat Completions', function()
    it('answers with a chat.completion, usage and a deterministic text', function()
      local r = e:post('/openai/v1/chat/completions', chat({ max_tokens = 5 }), OPENAI)
      assert.equal(200, r.status)
      assert.matches('^application/json', r.headers['content-type'])
      local v = decode(r.body)
      assert.equal('chat.completion', v.object)
      assert.matches('^chatcmpl%-', v.id)
      assert.equal('assistant', v.choices[1].message.role)
      assert.equal('length', v.choices[1].finish_reason)
      assert.equal(5, v.usage.completion_tokens)
      -- "user: Write a function.\n" is 24 bytes: 6 tokens
      assert.equal(6, v.usage.prompt_tokens)
      assert.equal(11, v.usage.total_tokens)
      assert.equal(0, v.usage.prompt_tokens_details.cached_tokens)
      local again = e:post('/openai/v1/chat/completions', chat({ max_tokens = 5 }), OPENAI)
      assert.equal(r.body, again.body)
      local other = e:post('/openai/v1/chat/completions', chat({ max_tokens = 5, model = 'gpt-4o' }), OPENAI)
      assert.are_not.equal(decode(other.body).choices[1].message.content, v.choices[1].message.content)
    end)

    it('streams chunks, a usage chunk with include_usage, and [DONE]', function()
      local plain = decode(e:post('/openai/v1/chat/completions', chat(), OPENAI).body)
      local r = e:post('/openai/v1/chat/completions',
        chat({ stream = true, stream_options = { include_usage = true } }), OPENAI)
      assert.equal(200, r.status)
      assert.matches('^text/event%-stream', r.headers['content-type'])
      local d = datas(r.body)
      assert.equal('[DONE]', d[#d])
      assert.equal('assistant', d[1].choices[1].delta.role)
      local text = {}
      for i = 2, #d - 3 do text[#text + 1] = d[i].choices[1].delta.content end
      assert.equal(plain.choices[1].message.content, table.concat(text))
      assert.equal('stop', d[#d - 2].choices[1].finish_reason)
      assert.equal(0, #d[#d - 1].choices)
      assert.same(plain.usage, d[#d - 1].usage)
      assert.equal(json.null, d[1].usage)
      local bare = datas(e:post('/openai/v1/chat/completions', chat({ stream = true }), OPENAI).body)
      assert.is_nil(bare[1].usage)
      assert.equal('stop', bare[#bare - 1].choices[1].finish_reason)
    end)

    it('reports cached_tokens in 128-token steps from 1024 tokens, per prompt_cache_key', function()
      local system = string.rep('You are careful. ', 400)  -- 6800 bytes
      local function ask(q, key)
        return decode(e:post('/openai/v1/chat/completions', {
          model = 'gpt-4o-mini', prompt_cache_key = key,
          messages = { { role = 'system', content = system }, { role = 'user', content = q } } }, OPENAI).body).usage
      end
      local u1 = ask('first question', 'k1')
      assert.equal(0, u1.prompt_tokens_details.cached_tokens)
      local u2 = ask('second question', 'k1')
      -- common prefix: "system: " + 6800 + "\nuser: " = 6815 bytes = 1703 tokens -> 1664
      assert.equal(1664, u2.prompt_tokens_details.cached_tokens)
      assert.equal(u1.prompt_tokens, u2.prompt_tokens)
      assert.equal(0, ask('second question', 'k2').prompt_tokens_details.cached_tokens)
      -- evicted after 10 idle minutes
      assert.equal(200, e:post('/_emulator/clock', { advance = 601 }).status)
      assert.equal(0, ask('third question', 'k1').prompt_tokens_details.cached_tokens)
      -- unless kept for 24 hours
      local function keep(q)
        return decode(e:post('/openai/v1/chat/completions', { model = 'gpt-5.1', prompt_cache_retention = '24h',
          messages = { { role = 'system', content = system }, { role = 'user', content = q } } }, OPENAI).body)
          .usage.prompt_tokens_details.cached_tokens
      end
      keep('a')
      assert.equal(200, e:post('/_emulator/clock', { advance = 3600 }).status)
      assert.equal(1664, keep('b'))
      -- under 1024 tokens: never cached
      local short = function()
        return decode(e:post('/openai/v1/chat/completions', chat(), OPENAI).body).usage.prompt_tokens_details
      end
      short()
      assert.equal(0, short().cached_tokens)
    end)

    it('needs a Bearer key (presence only) and answers 401 in the OpenAI error shape', function()
      local r = e:post('/openai/v1/chat/completions', chat())
      assert.equal(401, r.status)
      local err = decode(r.body).error
      assert.equal('invalid_request_error', err.type)
      assert.matches("You didn't provide an API key", err.message)
      assert.equal(json.null, err.param)
      assert.equal(false, e:log()[1].auth)
    end)

    it('answers 400 to invalid JSON and to a missing messages list', function()
      local r = e:post('/openai/v1/chat/completions', '{"model": ', OPENAI)
      assert.equal(400, r.status)
      assert.matches('could not parse the JSON body', decode(r.body).error.message)
      r = e:post('/openai/v1/chat/completions', { model = 'gpt-4o-mini' }, OPENAI)
      assert.equal(400, r.status)
      local err = decode(r.body).error
      assert.equal('messages', err.param)
      assert.equal('missing_required_parameter', err.code)
    end)
  end)

  describe('OpenAI Responses', function()
    it('answers with a response object and streams its typed events', function()
      local body = { model = 'gpt-5-mini', input = 'Say hi', max_output_tokens = 3 }
      local v = decode(e:post('/openai/v1/responses', body, OPENAI).body)
      assert.equal('response', v.object)
      assert.equal('incomplete', v.status)
      assert.equal('max_output_tokens', v.incomplete_details.reason)
      assert.equal(3, v.usage.output_tokens)
      assert.equal(0, v.usage.input_tokens_details.cached_tokens)
      body.stream = true
      local evs = emu.sse(e:post('/openai/v1/responses', body, OPENAI).body)
      local types, text = {}, {}
      for i, ev in ipairs(evs) do
        local d = decode(ev.data)
        assert.equal(ev.event, d.type)
        assert.equal(i - 1, d.sequence_number)
        types[#types + 1] = d.type
        if d.type == 'response.output_text.delta' then text[#text + 1] = d.delta end
      end
      assert.same({ 'response.created', 'response.in_progress', 'response.output_item.added',
        'response.content_part.added', 'response.output_text.delta', 'response.output_text.delta',
        'response.output_text.delta', 'response.output_text.done', 'response.content_part.done',
        'response.output_item.done', 'response.incomplete' }, types)
      assert.equal(v.output[1].content[1].text, table.concat(text))
    end)

    it('reports input_tokens_details.cached_tokens on a second call with the same prefix', function()
      local instructions = string.rep('Follow the style guide. ', 300)
      local function ask(q)
        return decode(e:post('/openai/v1/responses', { model = 'gpt-5', instructions = instructions, input = q },
          OPENAI).body).usage
      end
      assert.equal(0, ask('one').input_tokens_details.cached_tokens)
      local u = ask('two')
      assert.is_true(u.input_tokens_details.cached_tokens >= 1024)
      assert.equal(0, u.input_tokens_details.cached_tokens % 128)
    end)
  end)

  describe('Anthropic Messages', function()
    it('answers with a message and its usage', function()
      local r = e:post('/anthropic/v1/messages', messages(), ANTHROPIC)
      assert.equal(200, r.status)
      assert.truthy(r.headers['request-id'])
      local v = decode(r.body)
      assert.equal('message', v.type)
      assert.equal('text', v.content[1].type)
      assert.equal('end_turn', v.stop_reason)
      assert.same({ input_tokens = 3, output_tokens = v.usage.output_tokens, cache_creation_input_tokens = 0,
        cache_read_input_tokens = 0, service_tier = 'standard',
        cache_creation = { ephemeral_5m_input_tokens = 0, ephemeral_1h_input_tokens = 0 } }, v.usage)
    end)

    it('streams the full event sequence with ping and usage', function()
      local plain = decode(e:post('/anthropic/v1/messages', messages(), ANTHROPIC).body)
      local evs = emu.sse(e:post('/anthropic/v1/messages', messages({ stream = true }), ANTHROPIC).body)
      local names, text = {}, {}
      for _, ev in ipairs(evs) do
        local d = decode(ev.data)
        assert.equal(ev.event, d.type)
        if names[#names] ~= ev.event then names[#names + 1] = ev.event end
        if d.type == 'content_block_delta' then
          assert.equal('text_delta', d.delta.type)
          text[#text + 1] = d.delta.text
        end
      end
      assert.same({ 'message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_stop',
        'message_delta', 'message_stop' }, names)
      assert.equal(plain.content[1].text, table.concat(text))
      local start, delta = decode(evs[1].data), decode(evs[#evs - 1].data)
      assert.equal(plain.usage.input_tokens, start.message.usage.input_tokens)
      assert.equal(plain.usage.output_tokens, delta.usage.output_tokens)
      assert.equal('end_turn', delta.delta.stop_reason)
    end)

    it('writes the cache at a breakpoint, then reads it, with the 5m/1h split', function()
      local tools = { { name = 'read', description = string.rep('reads a file. ', 400),
                        input_schema = { type = 'object' },
                        cache_control = { type = 'ephemeral', ttl = '1h' } } }
      local system = { { type = 'text', text = string.rep('Style rules. ', 400), cache_control = EPHEMERAL } }
      local function ask(q)
        return decode(e:post('/anthropic/v1/messages', messages({ tools = tools, system = system,
          messages = { { role = 'user', content = q } } }), ANTHROPIC).body).usage
      end
      local u1 = ask('first')
      assert.equal(0, u1.cache_read_input_tokens)
      assert.is_true(u1.cache_creation.ephemeral_1h_input_tokens > 0)
      assert.is_true(u1.cache_creation.ephemeral_5m_input_tokens > 0)
      assert.equal(u1.cache_creation_input_tokens,
        u1.cache_creation.ephemeral_1h_input_tokens + u1.cache_creation.ephemeral_5m_input_tokens)
      local u2 = ask('second')
      assert.equal(u1.cache_creation_input_tokens, u2.cache_read_input_tokens)
      assert.equal(0, u2.cache_creation_input_tokens)
      assert.equal(u1.input_tokens, u2.input_tokens)
      -- after 5 minutes the 5m part is gone, the 1h part is still read
      assert.equal(200, e:post('/_emulator/clock', { advance = 301 }).status)
      local u3 = ask('third')
      assert.equal(u1.cache_creation.ephemeral_1h_input_tokens, u3.cache_read_input_tokens)
      assert.equal(u1.cache_creation.ephemeral_5m_input_tokens, u3.cache_creation_input_tokens)
    end)

    it('finds an earlier breakpoint within 20 blocks before a moved one', function()
      local long = string.rep('Context line. ', 400)
      local turns = { { role = 'user', content = { { type = 'text', text = long, cache_control = EPHEMERAL } } } }
      local u1 = decode(e:post('/anthropic/v1/messages', messages({ messages = turns }), ANTHROPIC).body).usage
      turns[1].content[1].cache_control = nil
      turns[2] = { role = 'assistant', content = 'ok' }
      turns[3] = { role = 'user', content = { { type = 'text', text = 'next', cache_control = EPHEMERAL } } }
      local u2 = decode(e:post('/anthropic/v1/messages', messages({ messages = turns }), ANTHROPIC).body).usage
      assert.equal(u1.cache_creation_input_tokens, u2.cache_read_input_tokens)
      assert.is_true(u2.cache_creation_input_tokens > 0)
    end)

    it('does not cache a prefix under the minimum length', function()
      local system = { { type = 'text', text = 'short', cache_control = { type = 'ephemeral' } } }
      for _ = 1, 2 do
        local u = decode(e:post('/anthropic/v1/messages', messages({ system = system }), ANTHROPIC).body).usage
        assert.equal(0, u.cache_creation_input_tokens)
        assert.equal(0, u.cache_read_input_tokens)
      end
    end)

    it('refuses more than 4 breakpoints and a 1h breakpoint after a 5m one', function()
      local system = {}
      for i = 1, 5 do system[i] = { type = 'text', text = 'b' .. i, cache_control = { type = 'ephemeral' } } end
      local r = e:post('/anthropic/v1/messages', messages({ system = system }), ANTHROPIC)
      assert.equal(400, r.status)
      assert.same({ type = 'error', error = { type = 'invalid_request_error',
        message = 'A maximum of 4 blocks with cache_control may be provided. Found 5.' } }, decode(r.body))
      system = { { type = 'text', text = 'a', cache_control = { type = 'ephemeral' } },
                 { type = 'text', text = 'b', cache_control = { type = 'ephemeral', ttl = '1h' } } }
      r = e:post('/anthropic/v1/messages', messages({ system = system }), ANTHROPIC)
      assert.equal(400, r.status)
      assert.matches("ttl='1h'", decode(r.body).error.message)
    end)

    it('needs x-api-key and anthropic-version, checked for presence only', function()
      local r = e:post('/anthropic/v1/messages', messages(), { ['anthropic-version'] = '2023-06-01' })
      assert.equal(401, r.status)
      assert.same({ type = 'error',
                    error = { type = 'authentication_error', message = 'x-api-key header is required' } },
        decode(r.body))
      r = e:post('/anthropic/v1/messages', messages(), { ['x-api-key'] = 'k' })
      assert.equal(400, r.status)
      assert.equal('anthropic-version: header is required', decode(r.body).error.message)
      r = e:post('/anthropic/v1/messages', messages(),
        { authorization = 'Bearer tok', ['anthropic-version'] = '2023-06-01' })
      assert.equal(200, r.status)
    end)

    it('rejects sampling parameters under anthropic-version 2026-10-21', function()
      local hdr = { ['x-api-key'] = 'k', ['anthropic-version'] = '2026-10-21' }
      local r = e:post('/anthropic/v1/messages', messages({ temperature = 0.2 }), hdr)
      assert.equal(400, r.status)
      assert.matches('^temperature: sampling parameters are not supported', decode(r.body).error.message)
      assert.equal(200, e:post('/anthropic/v1/messages', messages(), hdr).status)
      assert.equal(200, e:post('/anthropic/v1/messages', messages({ temperature = 0.2 }), ANTHROPIC).status)
    end)

    it('answers invalid JSON and a missing max_tokens with 400 invalid_request_error', function()
      local r = e:post('/anthropic/v1/messages', '{nope', ANTHROPIC)
      assert.equal(400, r.status)
      assert.equal('invalid_request_error', decode(r.body).error.type)
      r = e:post('/anthropic/v1/messages',
        { model = 'claude-sonnet-4-5', messages = { { role = 'user', content = 'x' } } },
        ANTHROPIC)
      assert.equal(400, r.status)
      assert.equal('max_tokens: Field required', decode(r.body).error.message)
    end)
  end)

  describe('vLLM and SGLang', function()
    it('omit cached tokens without --report-cached', function()
      local body = chat({ model = 'qwen', messages = { { role = 'user', content = string.rep('x', 400) } } })
      for _, route in ipairs({ '/vllm/v1/chat/completions', '/sglang/v1/chat/completions' }) do
        e:post(route, body)
        local v = decode(e:post(route, body).body)
        assert.equal('chat.completion', v.object)
        assert.equal(json.null, v.usage.prompt_tokens_details)
      end
    end)

    it('serve SGLang /generate with meta_info.cached_tokens and a cumulative stream', function()
      local body = { text = string.rep('prefix ', 50) .. 'question one', sampling_params = { max_new_tokens = 4 } }
      local v1 = decode(e:post('/sglang/generate', body).body)
      assert.equal(0, v1.meta_info.cached_tokens)
      assert.same({ type = 'length', length = 4 }, v1.meta_info.finish_reason)
      assert.equal(4, v1.meta_info.completion_tokens)
      body.text = string.rep('prefix ', 50) .. 'question two'
      local v2 = decode(e:post('/sglang/generate', body).body)
      -- 350 + 9 common bytes ("question ") = 89 tokens
      assert.equal(89, v2.meta_info.cached_tokens)
      body.stream = true
      local d = datas(e:post('/sglang/generate', body).body)
      assert.equal('[DONE]', d[#d])
      assert.equal(v2.text, d[#d - 1].text)
      assert.equal(d[1].text, v2.text:sub(1, #d[1].text))
      assert.equal(json.null, d[1].meta_info.finish_reason)
    end)
  end)

  describe('llama.cpp', function()
    it('reuses a slot prefix with cache_prompt and id_slot', function()
      local prompt = string.rep('int x; ', 40)  -- 280 bytes: 70 tokens
      local v1 = decode(e:post('/llamacpp/completion', { prompt = prompt, n_predict = 3, id_slot = 1 }).body)
      assert.equal(1, v1.id_slot)
      assert.equal(0, v1.timings.cache_n)
      assert.equal(70, v1.timings.prompt_n)
      assert.equal(70, v1.tokens_evaluated)
      assert.equal('limit', v1.stop_type)
      assert.equal(3, v1.timings.predicted_n)
      local v2 = decode(e:post('/llamacpp/completion', { prompt = prompt, n_predict = 3, id_slot = 1 }).body)
      assert.equal(69, v2.timings.cache_n)  -- the last prompt token is evaluated again
      assert.equal(1, v2.timings.prompt_n)
      local v3 = decode(e:post('/llamacpp/completion', { prompt = prompt, n_predict = 3, id_slot = 2 }).body)
      assert.equal(0, v3.timings.cache_n)
      local v4 = decode(e:post('/llamacpp/completion',
        { prompt = prompt, n_predict = 3, id_slot = 1, cache_prompt = false }).body)
      assert.equal(70, v4.timings.prompt_n)
      local r = e:post('/llamacpp/completion', { prompt = prompt, id_slot = 9 })
      assert.equal(400, r.status)
      assert.same({ code = 400, message = 'Invalid id_slot: 9', type = 'invalid_request_error' }, decode(r.body).error)
    end)

    it('streams /completion token by token, ending with stop and timings', function()
      local d = datas(e:post('/llamacpp/completion', { prompt = 'hello', n_predict = 4, stream = true }).body)
      assert.equal(5, #d)
      assert.is_false(d[1].stop)
      assert.is_true(d[5].stop)
      assert.equal(4, d[5].timings.predicted_n)
    end)

    it('serves its OpenAI route with timings', function()
      local v = decode(e:post('/llamacpp/v1/chat/completions', chat()).body)
      assert.equal('chat.completion', v.object)
      assert.equal(v.usage.prompt_tokens, v.timings.prompt_n + v.timings.cache_n)
    end)
  end)

  describe('faults', function()
    it('applies queued faults in order, per route, and logs each attempt', function()
      e:faults({ { status = 429, headers = { ['retry-after'] = '2' } }, { status = 529 }, { reset = true } },
        'anthropic')
      local r1 = e:post('/anthropic/v1/messages', messages(), ANTHROPIC)
      assert.equal(429, r1.status)
      assert.equal('2', r1.headers['retry-after'])
      assert.equal('rate_limit_error', decode(r1.body).error.type)
      -- another route is not affected by the anthropic queue
      assert.equal(200, e:post('/openai/v1/chat/completions', chat(), OPENAI).status)
      local r2 = e:post('/anthropic/v1/messages', messages(), ANTHROPIC)
      assert.equal(529, r2.status)
      assert.same({ type = 'error', error = { type = 'overloaded_error', message = 'Overloaded' } }, decode(r2.body))
      local r3 = e:post('/anthropic/v1/messages', messages(), ANTHROPIC)
      assert.equal(56, r3.exit)  -- curl: connection reset by peer
      assert.equal(200, e:post('/anthropic/v1/messages', messages(), ANTHROPIC).status)
      local log = e:log()
      assert.equal(5, #log)
      local seen = {}
      for i, entry in ipairs(log) do
        assert.equal(i, entry.seq)
        seen[i] = { entry.route, entry.fault, entry.status }
      end
      assert.same({ { 'anthropic', 'status:429', 429 }, { 'openai', json.null, 200 },
        { 'anthropic', 'status:529', 529 },
        { 'anthropic', 'reset', json.null }, { 'anthropic', json.null, 200 } }, seen)
    end)

    it('takes a fault body as given (a quota 429) and applies the global queue to any route', function()
      local quota = { error = { message = 'You exceeded your current quota', type = 'insufficient_quota',
                                param = json.null, code = 'insufficient_quota' } }
      e:faults({ { status = 429, body = quota } })
      local r = e:post('/vllm/v1/chat/completions', chat())
      assert.equal(429, r.status)
      assert.same(quota, decode(r.body))
      local q = e:post('/openai/v1/chat/completions', chat(), OPENAI)
      assert.equal(200, q.status)
    end)

    it('takes a one-shot fault from the x-emulator-fault header', function()
      local r = e:post('/openai/v1/chat/completions', chat(),
        { authorization = 'Bearer k', ['x-emulator-fault'] = '500' })
      assert.equal(500, r.status)
      assert.equal('server_error', decode(r.body).error.type)
      r = e:post('/openai/v1/chat/completions', chat(),
        { authorization = 'Bearer k', ['x-emulator-fault'] = '{"status":429,"error_type":"insufficient_quota"}' })
      assert.equal('insufficient_quota', decode(r.body).error.code)
      r = e:post('/openai/v1/chat/completions', chat(), { authorization = 'Bearer k', ['x-emulator-fault'] = 'bogus' })
      assert.equal(400, r.status)
      assert.equal('x-emulator-fault: not a fault (see docs/emulator.md)', decode(r.body).error)
      assert.equal(200, e:post('/openai/v1/chat/completions', chat(), OPENAI).status)
    end)

    it('truncates a stream after N events, cleanly or with a reset', function()
      e:faults({ { truncate_after_events = 3 }, { truncate_after_events = 2, ending = 'reset' } }, 'anthropic')
      local r = e:post('/anthropic/v1/messages', messages({ stream = true }), ANTHROPIC)
      assert.equal(0, r.exit)
      local evs = emu.sse(r.body)
      assert.equal(3, #evs)
      assert.same({ 'message_start', 'content_block_start', 'ping' }, { evs[1].event, evs[2].event, evs[3].event })
      r = e:post('/anthropic/v1/messages', messages({ stream = true }), ANTHROPIC)
      assert.equal(56, r.exit)
      assert.equal(2, #emu.sse(r.body))
    end)

    it('sends a mid-stream error event', function()
      e:faults({ { error_after_events = 4 } }, 'anthropic')
      local evs = emu.sse(e:post('/anthropic/v1/messages', messages({ stream = true }), ANTHROPIC).body)
      assert.equal(5, #evs)
      assert.equal('error', evs[5].event)
      assert.same({ type = 'error', error = { type = 'overloaded_error', message = 'Overloaded' } },
        decode(evs[5].data))
      e:faults({ { error_after_events = 2 } }, 'openai')
      local d = datas(e:post('/openai/v1/chat/completions', chat({ stream = true }), OPENAI).body)
      assert.equal(3, #d)
      assert.equal('server_error', d[3].error.type)
    end)

    it('delays the status line without blocking others, and lists the faults left', function()
      e:faults({ { delay = 1 }, { status = 500 }, { status = 503 } }, 'sglang')
      local dir = h.tmpdir()
      -- the delayed request runs in the background while another is served
      os.execute(('curl -s -o %s -d %s %s/sglang/generate &'):format(h.shell_quote(dir .. '/slow'),
        h.shell_quote('{"text":"slow"}'), e.url))
      for _ = 1, 200 do  -- until the slow one is in (logged on arrival)
        if #e:log() == 1 then break end
        os.execute('sleep 0.01')
      end
      assert.equal(200, e:post('/llamacpp/completion', { prompt = 'fast' }).status)
      assert.equal('', h.read(dir .. '/slow') or '')  -- still waiting
      for _ = 1, 200 do
        if (h.read(dir .. '/slow') or '') ~= '' then break end
        os.execute('sleep 0.025')
      end
      assert.equal(1, decode(h.read(dir .. '/slow')).meta_info.prompt_tokens)  -- "slow"
      local left = e:get_json('/_emulator/faults')
      assert.same({ sglang = { { status = 500 }, { status = 503 } } }, left)
      local log = e:log()
      assert.equal('delay:1', log[1].fault)
      assert.equal(200, log[1].status)
      assert.equal('/llamacpp/completion', log[2].path)
      assert.equal(200, e:request('DELETE', '/_emulator/faults').status)
      assert.same({}, (e:get_json('/_emulator/faults')))
    end)

    it('resets after N bytes of body', function()
      e:faults({ { reset_after_bytes = 10 } }, 'openai')
      local r = e:post('/openai/v1/chat/completions', chat(), OPENAI)
      assert.equal(56, r.exit)
      assert.equal(10, #r.body)
    end)

    it('trickles a body byte by byte, and a low-speed limit aborts it', function()
      e:faults({ { trickle = 0.001 } }, 'llamacpp')
      local fast = decode(e:post('/llamacpp/completion', { prompt = 'x', n_predict = 2 }).body)
      assert.equal(2, fast.tokens_predicted)
      e:faults({ { trickle = 1 } }, 'llamacpp')
      local r = e:post('/llamacpp/completion', { prompt = 'x', n_predict = 2 }, nil,
        { curl = { '--speed-limit', '5', '--speed-time', '1' } })
      assert.equal(28, r.exit)  -- curl: operation too slow
      assert.equal('trickle:1', e:log()[2].fault)
    end)

    it('sends an oversized body and a malformed one', function()
      e:faults({ { oversize = 4 * 1048576 }, { malformed = true } }, 'openai')
      local r = e:post('/openai/v1/chat/completions', chat(), OPENAI, { curl = { '--max-filesize', '1000000' } })
      assert.equal(63, r.exit)  -- curl: maximum file size exceeded
      r = e:post('/openai/v1/chat/completions', chat(), OPENAI)
      assert.equal(200, r.status)
      assert.is_nil(json.decode(r.body))
    end)

    it('sends a 1 MB line in a stream and in a plain body, and fields of the wrong types', function()
      e:faults({ { long_line = 1048576 }, { long_line = 1048576 }, { wrong_types = true } }, 'openai')
      local r = e:post('/openai/v1/chat/completions', chat({ stream = true }), OPENAI)
      local evs = emu.sse(r.body)
      assert.equal(1048576 - 6, #evs[2].data)  -- the line, newline aside, is 1 MiB with its "data: "
      assert.equal('[DONE]', evs[#evs].data)
      r = e:post('/openai/v1/chat/completions', chat(), OPENAI)
      assert.equal(1048576, #r.body)
      assert.equal('string', type(decode(r.body).padding))
      r = e:post('/openai/v1/chat/completions', chat(), OPENAI)
      assert.equal('none', decode(r.body).choices)
    end)

    it('refuses a bad fault list with 400 and queues nothing', function()
      local r = e:post('/_emulator/faults/openai', '[{"status":429},{"explode":true}]')
      assert.equal(400, r.status)
      assert.equal("fault 2: unknown fault key 'explode'", decode(r.body).error)
      r = e:post('/_emulator/faults/nowhere', '[]')
      assert.equal(400, r.status)
      assert.same({}, (e:get_json('/_emulator/faults')))
    end)
  end)

  it('serves 64 concurrent streams', function()
    local list = {}
    for i = 1, 64 do list[i] = { event_delay = 0.01 } end
    e:faults(list, 'openai')
    local dir = h.tmpdir()
    h.write(dir .. '/req', json.encode(chat({ stream = true })))
    local args = { 'curl', '-s', '--no-progress-meter', '-N', '--parallel', '--parallel-immediate',
                   '--parallel-max', '64', '-H', h.shell_quote('authorization: Bearer k'),
                   '--data-binary', h.shell_quote('@' .. dir .. '/req') }
    for i = 1, 64 do
      for _, a in ipairs({ '-o', dir .. '/out' .. i, e.url .. '/openai/v1/chat/completions' }) do
        args[#args + 1] = h.shell_quote(a)
      end
    end
    assert.is_true(os.execute(table.concat(args, ' ') .. ' 2>/dev/null'))
    local first
    for i = 1, 64 do
      local body = h.read(dir .. '/out' .. i)
      assert.matches('data: %[DONE%]\n\n$', body)
      first = first or body
      assert.equal(first, body)
    end
    local log = e:log()
    assert.equal(64, #log)
    for _, entry in ipairs(log) do assert.equal('event_delay:0.01', entry.fault) end
  end)

  it('answers 413 over 32 MiB and 404 on unknown paths', function()
    local dir = h.tmpdir()
    assert.is_true(os.execute('head -c 33554433 /dev/zero > ' .. h.shell_quote(dir .. '/big')))
    local r = e:post('/anthropic/v1/messages', nil, ANTHROPIC, { curl = { '--data-binary', '@' .. dir .. '/big' } })
    assert.equal(413, r.status)
    assert.equal('request_too_large', decode(r.body).error.type)
    r = e:post('/openai/v1/nothing', chat(), OPENAI)
    assert.equal(404, r.status)
    assert.equal('unknown_url', decode(r.body).error.code)
    r = e:post('/nowhere/v1/x', '{}')
    assert.equal(404, r.status)
    r = e:request('GET', '/openai/v1/chat/completions', nil, OPENAI)
    assert.equal(405, r.status)
  end)

  it('logs requests without header values and clears the log', function()
    e:post('/anthropic/v1/messages', messages(), ANTHROPIC)
    local log = e:log()
    assert.equal(1, #log)
    local entry = log[1]
    assert.equal('POST', entry.method)
    assert.equal('/anthropic/v1/messages', entry.path)
    assert.equal('claude-sonnet-4-5', entry.model)
    assert.is_false(entry.stream)
    assert.is_true(entry.auth)
    assert.equal(64, #entry.body_sha256)
    assert.equal(200, e:request('DELETE', '/_emulator/log').status)
    assert.same({}, e:log())
  end)
end)

describe('aegis-run emulate options', function()
  it('reports cached tokens for vLLM (16-token blocks) and SGLang with --report-cached', function()
    local e = emu.start({ '--report-cached' })
    finally(function() e:stop() end)
    local body = chat({ model = 'qwen', messages = { { role = 'user', content = string.rep('y', 400) } } })
    e:post('/vllm/v1/chat/completions', body)
    local u = decode(e:post('/vllm/v1/chat/completions', body).body).usage
    -- 407 bytes = 102 tokens; 101 may be reused, in blocks of 16
    assert.equal(96, u.prompt_tokens_details.cached_tokens)
    e:post('/sglang/v1/chat/completions', body)
    u = decode(e:post('/sglang/v1/chat/completions', body).body).usage
    assert.equal(101, u.prompt_tokens_details.cached_tokens)
  end)

  it('draws random faults from --fault-rate, the same ones for the same --seed', function()
    local function statuses()
      local e = emu.start({ '--fault-rate', '429:0.3,529:0.2', '--seed', '7' })
      finally(function() e:stop() end)
      local out = {}
      for i = 1, 12 do out[i] = e:post('/anthropic/v1/messages', messages(), ANTHROPIC).status end
      e:stop()
      return out
    end
    local a, b = statuses(), statuses()
    assert.same(a, b)
    local count = {}
    for _, s in ipairs(a) do count[s] = (count[s] or 0) + 1 end
    assert.truthy(count[200])
    assert.truthy((count[429] or 0) + (count[529] or 0) > 0)
  end)

  it('answers from a --script and turns a failing plan into a 500 on stderr', function()
    local e = emu.start({ '--script', 'spec/fixtures/emulator/rules.lua' })
    finally(function() e:stop() end)
    local v = decode(e:post('/openai/v1/chat/completions',
      chat({ messages = { { role = 'user', content = 'say the magic words' } } }), OPENAI).body)
    assert.equal('Abra cadabra.', v.choices[1].message.content)
    assert.equal(2, v.usage.completion_tokens)
    local r = e:post('/anthropic/v1/messages', messages({ model = 'claude-raw' }), ANTHROPIC)
    assert.equal(418, r.status)
    assert.same({ teapot = true }, decode(r.body))
    r = e:post('/sglang/generate', { text = 'once' })
    assert.equal(503, r.status)
    assert.equal(200, e:post('/sglang/generate', { text = 'once' }).status)
    r = e:post('/llamacpp/completion', { prompt = 'broken plan' })
    assert.equal(500, r.status)
    local _, err = e:output()
    assert.matches('emulator: POST /llamacpp/completion: handler error: httpd: plan%.status must be 100%.%.999', err)
  end)

  it('refuses a bad option, a bad fault rate and a bad script with exit 2', function()
    local r = h.run({ 'emulate', '--bogus' })
    assert.equal(2, r.code)
    assert.equal("aegis-run: emulate: unknown option '--bogus' (see aegis-run emulate --help)\n", r.stderr)
    r = h.run({ 'emulate', '--fault-rate', '429:2' })
    assert.equal(2, r.code)
    assert.matches("bad fault rate '429:2'", r.stderr)
    r = h.run({ 'emulate', '--script', '/nonexistent/rules.lua' })
    assert.equal(2, r.code)
    assert.matches('emulate: script /nonexistent/rules.lua', r.stderr)
    r = h.run({ 'emulate', '--host', 'example.com' })
    assert.equal(1, r.code)
    assert.equal("aegis-run: httpd: listen 'example.com': not an IP address\n", r.stderr)
  end)

  it('prints its usage on --help', function()
    local r = h.run({ 'emulate', '--help' })
    assert.equal(0, r.code)
    assert.matches('http://127%.0%.0%.1:PORT/openai/v1', r.stdout)
  end)

  it('exits 0 on SIGTERM and on SIGINT', function()
    for _, sig in ipairs({ 'TERM', 'INT' }) do
      local dir = h.tmpdir()
      local script = ([[
        %s emulate --port 0 > %s/out 2>&1 &
        pid=$!
        i=0; while ! grep -qs listening %s/out && [ $i -lt 200 ]; do sleep 0.025; i=$((i+1)); done
        kill -%s $pid; wait $pid; echo "rc=$?"
      ]]):format(h.shell_quote(h.bin), dir, dir, sig)
      local p = io.popen(script)
      local out = p:read('a')
      p:close()
      assert.equal('rc=0\n', out)
    end
  end)

  it('never writes a key sent in headers to its log, stdout or stderr (S3)', function()
    local dir = h.tmpdir()
    local e = emu.start({ '--log', dir .. '/log.jsonl', '--script', 'spec/fixtures/emulator/rules.lua' })
    finally(function() e:stop() end)
    -- built at run time, so no key-shaped literal sits in the repository
    local canaries = { 'sk-' .. 'ant-api03-' .. ('CANARYcanary0123456789'):rep(2) .. '-AA',
                       'sk-' .. 'proj-' .. 'CANARY0123456789' .. 'T3BlbkFJ' .. 'canary0123456789' }
    local hdrs = { authorization = 'Bearer ' .. canaries[2], ['x-api-key'] = canaries[1],
                   ['anthropic-version'] = '2023-06-01' }
    e:post('/openai/v1/chat/completions', chat(), hdrs)
    e:post('/openai/v1/chat/completions', chat({ stream = true }), hdrs)
    e:post('/anthropic/v1/messages', messages(), hdrs)
    e:post('/anthropic/v1/messages', '{bad json', hdrs)
    e:post('/anthropic/v1/messages', messages(), { ['x-api-key'] = canaries[1] })
    e:post('/openai/v1/chat/completions', chat(), { authorization = 'Basic ' .. canaries[2] })
    e:post('/llamacpp/completion', { prompt = 'broken plan' }, hdrs)
    e:post('/openai/v1/chat/completions', chat(), { authorization = 'Bearer k', ['x-emulator-fault'] = canaries[2] })
    local log = e:request('GET', '/_emulator/log').body
    e:stop()
    local out, err = e:output()
    local sinks = { log = log, file = h.read(dir .. '/log.jsonl'), stdout = out, stderr = err }
    assert.matches('handler error', err)  -- the failing plan was reached
    for _, c in ipairs(canaries) do
      for name, text in pairs(sinks) do
        for _, f in ipairs({ c, c:sub(8, 30), base64(c), base64(c:sub(4)), base64(c:sub(3)) }) do
          assert.is_nil(text:find(f:sub(1, 24), 1, true), name .. ' holds a canary')
        end
      end
    end
  end)
end)
