local json = require('aegis.json')
local provider = require('aegis.provider')

local function resolved(over)
  local r = {
    model = 'Qwen/Qwen3-8B',
    system = 'SYS',
    blocks = { { kind = 'requirements', stability = 'stable', content = 'REQ' },
      { kind = 'task', stability = 'volatile', content = 'TASK' } },
    params = { temperature = 0, max_tokens = 64, repetition_penalty = 1.1 },
    base_url = 'http://127.0.0.1:8000',
    options = {},
  }
  for k, v in pairs(over or {}) do r[k] = v end
  return r
end

describe('providers/vllm', function()
  local a = assert(provider.load('vllm'))

  it('builds an OpenAI-compatible chat request with the stable prefix first, no cache key', function()
    local req = a.build_request(resolved({ stream = true }))
    assert.equal('/v1/chat/completions', req.path)
    assert.same({
      model = 'Qwen/Qwen3-8B',
      messages = { { role = 'system', content = 'SYS\n\nREQ' }, { role = 'user', content = 'TASK' } },
      max_tokens = 64,
      temperature = 0,
      repetition_penalty = 1.1,
      stream = true,
      stream_options = { include_usage = true },
    }, req.body)
  end)

  it('keeps the prefix byte-identical across tasks', function()
    local r2 = resolved()
    r2.blocks[2] = { kind = 'task', stability = 'volatile', content = 'OTHER' }
    local c1 = json.canonical(a.build_request(resolved()).body.messages[1])
    assert.equal(c1, json.canonical(a.build_request(r2).body.messages[1]))
  end)

  it('reads cached tokens when the server reports them, and nil when it does not', function()
    local body = { object = 'chat.completion', choices = { { message = { content = 'ok' }, finish_reason = 'stop' } },
      usage = { prompt_tokens = 40, completion_tokens = 2, prompt_tokens_details = { cached_tokens = 32 } } }
    local out = a.parse_response({ status = 200, json = body }, resolved())
    assert.same({ input = 40, cached_input = 32, cache_write_5m = 0, cache_write_1h = 0, output = 2 }, out.usage)
    body.usage.prompt_tokens_details = json.null  -- without --enable-prompt-tokens-details
    out = a.parse_response({ status = 200, json = body }, resolved())
    assert.is_nil(out.usage.cached_input)
    assert.equal(40, out.usage.input)
  end)

  it('parses the stream like OpenAI', function()
    local state = {}
    local out = a.parse_stream_event({ data = json.canonical({ choices = { { delta = { content = 'x' } } } }) }, state)
    assert.equal('x', out.delta)
    assert.is_true(a.parse_stream_event({ data = '[DONE]' }, state).done)
  end)

  it('classifies errors by status', function()
    assert.is_true(a.classify_error({ status = 503, headers = {} }).retryable)
    assert.is_false(a.classify_error({ status = 400, headers = {} }).retryable)
  end)

  it('does not require a key', function()
    assert.is_false(a.auth.required)
    assert.equal('VLLM_API_KEY', a.auth.env)
  end)
end)
