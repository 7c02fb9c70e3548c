local hash = require('aegis.hash')
local json = require('aegis.json')
local provider = require('aegis.provider')

-- A resolved request with a system text, two stable blocks and a task.
local function resolved(over)
  local r = {
    model = 'gpt-5.4',
    system = 'You write TypeScript.',
    blocks = {
      { kind = 'requirements', stability = 'stable', content = 'REQ' },
      { kind = 'file_map', stability = 'stable', content = 'MAP' },
      { kind = 'task', stability = 'volatile', content = 'Write parser.ts' },
    },
    params = { temperature = 0.2, max_tokens = 500, seed = 7 },
    base_url = 'https://api.openai.com/v1',
    options = {},
  }
  for k, v in pairs(over or {}) do r[k] = v end
  return r
end

local PREFIX = 'You write TypeScript.\n\nREQ\n\nMAP'

describe('providers/openai', function()
  local a = assert(provider.load('openai'))

  describe('build_request (chat)', function()
    it('puts the stable prefix in the system message and the volatile blocks in a user message', function()
      local req = a.build_request(resolved())
      assert.equal('POST', req.method)
      assert.equal('/chat/completions', req.path)
      assert.same({
        model = 'gpt-5.4',
        messages = {
          { role = 'system', content = PREFIX },
          { role = 'user', content = 'Write parser.ts' },
        },
        max_completion_tokens = 500,
        temperature = 0.2,
        seed = 7,
        prompt_cache_key = hash.sha256(PREFIX),
      }, req.body)
    end)

    it('keeps the prefix bytes and the cache key when only the volatile part changes', function()
      local r2 = resolved()
      r2.blocks[3] = { kind = 'task', stability = 'volatile', content = 'Write lexer.ts' }
      local b1, b2 = a.build_request(resolved()).body, a.build_request(r2).body
      assert.equal(b1.messages[1].content, b2.messages[1].content)
      assert.equal(b1.prompt_cache_key, b2.prompt_cache_key)
      assert.not_equal(json.canonical(b1), json.canonical(b2))
    end)

    it('changes the cache key when the stable prefix changes', function()
      local r2 = resolved()
      r2.blocks[2] = { kind = 'file_map', stability = 'stable', content = 'MAP2' }
      assert.not_equal(a.build_request(resolved()).body.prompt_cache_key, a.build_request(r2).body.prompt_cache_key)
    end)

    it('asks for usage in streams', function()
      local body = a.build_request(resolved({ stream = true })).body
      assert.is_true(body.stream)
      assert.same({ include_usage = true }, body.stream_options)
    end)

    it('sends no system message and no cache key without a stable prefix', function()
      local r = resolved({ blocks = { { kind = 'task', stability = 'volatile', content = 'T' } } })
      r.system = nil
      local body = a.build_request(r).body
      assert.same({ { role = 'user', content = 'T' } }, body.messages)
      assert.is_nil(body.prompt_cache_key)
    end)

    it('appends messages after the blocks', function()
      local body = a.build_request(resolved({ messages = { { role = 'assistant', content = 'A' },
        { role = 'user', content = 'U' } } })).body
      assert.equal(4, #body.messages)
      assert.same({ role = 'assistant', content = 'A' }, body.messages[3])
    end)

    it('passes unknown parameters through and lets the caller set prompt_cache_key', function()
      local body = a.build_request(resolved({ params = { reasoning_effort = 'low', prompt_cache_key = 'mine' } })).body
      assert.equal('low', body.reasoning_effort)
      assert.equal('mine', body.prompt_cache_key)
    end)

    it('fails without a user turn', function()
      assert.error_matches(function()
        a.build_request(resolved({ blocks = { { kind = 'r', stability = 'stable', content = 'x' } } }))
      end, 'openai: the request has no user turn')
    end)

    it('rejects an unknown api option', function()
      assert.error_matches(function() a.build_request(resolved({ options = { api = 'completions' } })) end,
        "openai: options.api must be 'chat' or 'responses', got 'completions'")
    end)
  end)

  describe('build_request (responses)', function()
    it('puts the prefix in instructions, the task in input, max_tokens as max_output_tokens', function()
      local req = a.build_request(resolved({ options = { api = 'responses' }, stream = true }))
      assert.equal('/responses', req.path)
      assert.same({
        model = 'gpt-5.4',
        instructions = PREFIX,
        input = { { role = 'user', content = 'Write parser.ts' } },
        max_output_tokens = 500,
        temperature = 0.2,
        seed = 7,
        store = false,
        stream = true,
        prompt_cache_key = hash.sha256(PREFIX),
      }, req.body)
    end)
  end)

  describe('parse_response', function()
    local function res(t) return { status = 200, headers = {}, body = json.canonical(t), json = t } end

    it('reads text, finish and usage; prompt_tokens include the cached ones', function()
      local out = a.parse_response(res({
        object = 'chat.completion', model = 'gpt-5.4-2026-03-05',
        choices = { { index = 0, message = { role = 'assistant', content = 'hello' }, finish_reason = 'stop' } },
        usage = { prompt_tokens = 2006, completion_tokens = 300, total_tokens = 2306,
          prompt_tokens_details = { cached_tokens = 1920 } },
      }), resolved())
      assert.equal('hello', out.text)
      assert.equal('stop', out.finish)
      assert.equal('gpt-5.4-2026-03-05', out.model)
      assert.same({ input = 2006, cached_input = 1920, cache_write_5m = 0, cache_write_1h = 0, output = 300 },
        out.usage)
    end)

    it('gives cached_input nil, not 0, when the field is missing or null', function()
      local u = a.chat.usage({ prompt_tokens = 10, completion_tokens = 2 })
      assert.is_nil(u.cached_input)
      assert.equal(10, u.input)
      u = a.chat.usage({ prompt_tokens = 10, completion_tokens = 2, prompt_tokens_details = json.null })
      assert.is_nil(u.cached_input)
      assert.same({}, a.chat.usage(nil))
    end)

    it('reads a Responses object', function()
      local out = a.parse_response(res({
        object = 'response', status = 'completed', model = 'gpt-5.4',
        output = {
          { type = 'reasoning', summary = {} },
          { type = 'message', role = 'assistant', content = { { type = 'output_text', text = 'he' },
            { type = 'output_text', text = 'llo' } } },
        },
        usage = { input_tokens = 1500, input_tokens_details = { cached_tokens = 1024 }, output_tokens = 20 },
      }), resolved({ options = { api = 'responses' } }))
      assert.equal('hello', out.text)
      assert.equal('completed', out.finish)
      assert.same({ input = 1500, cached_input = 1024, cache_write_5m = 0, cache_write_1h = 0, output = 20 }, out.usage)
    end)

    it('reports an incomplete response with its reason', function()
      local out = a.parse_response(res({ object = 'response', status = 'incomplete',
        incomplete_details = { reason = 'max_output_tokens' }, output = {} }),
          resolved({ options = { api = 'responses' } }))
      assert.equal('max_output_tokens', out.finish)
      assert.equal('', out.text)
    end)

    it('returns nil and a reason for an answer without choices', function()
      local out, err = a.parse_response(res({ object = 'chat.completion' }), resolved())
      assert.is_nil(out)
      assert.equal('no choices in the answer', err)
    end)
  end)

  describe('parse_stream_event', function()
    local function run(events, r)
      local state, text, done = {}, {}, false
      for _, ev in ipairs(events) do
        local out = a.parse_stream_event(ev, state, r or resolved())
        if out and out.delta then text[#text + 1] = out.delta end
        if out and out.done then done = true end
        if out and out.error then return nil, out.error end
      end
      return table.concat(text), state, done
    end
    local function data(t) return { data = json.canonical(t) } end

    it('gathers deltas, finish and the usage chunk, and ends at [DONE]', function()
      local text, state, done = run({
        data({ choices = { { index = 0, delta = { role = 'assistant', content = '' } } }, model = 'gpt-5.4' }),
        data({ choices = { { index = 0, delta = { content = 'hel' } } } }),
        data({ choices = { { index = 0, delta = { content = 'lo' }, finish_reason = json.null } } }),
        data({ choices = { { index = 0, delta = {}, finish_reason = 'stop' } } }),
        data({ choices = json.array({}), usage = { prompt_tokens = 12, completion_tokens = 2,
          prompt_tokens_details = { cached_tokens = 0 } } }),
        { data = '[DONE]' },
      })
      assert.equal('hello', text)
      assert.is_true(done)
      assert.equal('stop', state.finish)
      assert.same({ input = 12, cached_input = 0, cache_write_5m = 0, cache_write_1h = 0, output = 2 }, state.usage)
    end)

    it('turns an error chunk into an error', function()
      local text, err = run({ data({ error = { message = 'overloaded', type = 'server_error' } }) })
      assert.is_nil(text)
      assert.equal('overloaded', err.message)
    end)

    it('reads the Responses event sequence', function()
      local r = resolved({ options = { api = 'responses' } })
      local text, state, done = run({
        { event = 'response.created', data = json.canonical({ type = 'response.created', response = {} }) },
        { event = 'response.output_text.delta', data = json.canonical({ type = 'response.output_text.delta',
          delta = 'hi' }) },
        { event = 'response.output_text.done', data = json.canonical({ type = 'response.output_text.done',
          text = 'hi' }) },
        { event = 'response.completed', data = json.canonical({ type = 'response.completed', response = {
          object = 'response', status = 'completed', usage = { input_tokens = 5, output_tokens = 1,
            input_tokens_details = { cached_tokens = 0 } } } }) },
      }, r)
      assert.equal('hi', text)
      assert.is_true(done)
      assert.equal('completed', state.finish)
      assert.equal(5, state.usage.input)
    end)

    it('turns response.failed and error events into errors', function()
      local r = resolved({ options = { api = 'responses' } })
      local _, err = run({ { event = 'response.failed', data = json.canonical({ type = 'response.failed',
        response = { error = { code = 'server_error', message = 'boom' } } }) } }, r)
      assert.equal('boom', err.message)
      _, err = run({ { event = 'error', data = json.canonical({ type = 'error', code = 'x', message = 'bad' }) } }, r)
      assert.equal('bad', err.message)
    end)
  end)

  describe('classify_error', function()
    local function res(status, headers, body)
      return { status = status, headers = headers or {}, body = body and json.canonical(body), json = body }
    end

    it('retries 408, 409, 429 and 5xx, not other 4xx', function()
      for _, s in ipairs({ 408, 409, 429, 500, 502, 503, 529 }) do
        assert.is_true(a.classify_error(res(s)).retryable, tostring(s))
      end
      for _, s in ipairs({ 400, 401, 403, 404, 422 }) do
        assert.is_false(a.classify_error(res(s)).retryable, tostring(s))
      end
    end)

    it('reads retry-after-ms before retry-after', function()
      assert.equal(1.5, a.classify_error(res(429, { ['retry-after-ms'] = '1500', ['retry-after'] = '9' })).wait)
      assert.equal(2, a.classify_error(res(429, { ['retry-after'] = '2' })).wait)
      assert.equal(0, a.classify_error(res(429, { ['retry-after'] = 'Wed, 21 Oct 2015 07:28:00 GMT' })).wait)  -- past
      assert.is_nil(a.classify_error(res(429, { ['retry-after'] = 'soon' })).wait)
    end)

    it('honours x-should-retry both ways', function()
      assert.is_false(a.classify_error(res(500, { ['x-should-retry'] = 'false' })).retryable)
      assert.is_true(a.classify_error(res(400, { ['x-should-retry'] = 'true' })).retryable)
    end)

    it('never retries an insufficient_quota 429', function()
      local c = a.classify_error(res(429, {}, { error = { type = 'insufficient_quota', code = 'insufficient_quota',
        message = 'You exceeded your current quota' } }))
      assert.is_false(c.retryable)
      assert.is_true(c.quota)
      assert.is_true(a.classify_error(res(429, {}, { error = { type = 'requests', code = 'rate_limit_exceeded',
        message = 'Rate limit reached' } })).retryable)
    end)
  end)
end)
