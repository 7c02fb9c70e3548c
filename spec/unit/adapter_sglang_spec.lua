local json = require('aegis.json')
local provider = require('aegis.provider')

local function resolved(over)
  local r = {
    model = 'default',
    system = 'SYS',
    blocks = { { kind = 'requirements', stability = 'stable', content = 'REQ' },
      { kind = 'task', stability = 'volatile', content = 'TASK' } },
    params = { temperature = 0.5, max_tokens = 32, top_k = 20 },
    base_url = 'http://127.0.0.1:30000',
    options = {},
  }
  for k, v in pairs(over or {}) do r[k] = v end
  return r
end

describe('providers/sglang', function()
  local a = assert(provider.load('sglang'))
  local native = { route = 'native' }

  it('uses the OpenAI route by default', function()
    local req = a.build_request(resolved())
    assert.equal('/v1/chat/completions', req.path)
    assert.same({ { role = 'system', content = 'SYS\n\nREQ' }, { role = 'user', content = 'TASK' } }, req.body.messages)
    assert.equal(32, req.body.max_tokens)
  end)

  it('builds a native /generate request with the raw prompt and sampling_params', function()
    local req = a.build_request(resolved({ options = native, stream = true }))
    assert.equal('/generate', req.path)
    assert.same({
      text = 'SYS\n\nREQ\n\nTASK',
      sampling_params = { temperature = 0.5, max_new_tokens = 32, top_k = 20 },
      stream = true,
    }, req.body)
  end)

  it('reads meta_info, cached_tokens included; a missing cached_tokens is nil', function()
    local body = { text = 'out', meta_info = { prompt_tokens = 100, completion_tokens = 3, cached_tokens = 64,
      finish_reason = { type = 'length', length = 3 } } }
    local out = a.parse_response({ status = 200, json = body }, resolved({ options = native }))
    assert.equal('out', out.text)
    assert.equal('length', out.finish)
    assert.same({ input = 100, cached_input = 64, cache_write_5m = 0, cache_write_1h = 0, output = 3 }, out.usage)
    body.meta_info.cached_tokens = nil
    out = a.parse_response({ status = 200, json = body }, resolved({ options = native }))
    assert.is_nil(out.usage.cached_input)
  end)

  it('treats a missing prompt_tokens_details on the OpenAI route as unknown', function()
    local body = { choices = { { message = { content = 'x' }, finish_reason = 'stop' } },
      usage = { prompt_tokens = 9, completion_tokens = 1 } }
    local out = a.parse_response({ status = 200, json = body }, resolved())
    assert.is_nil(out.usage.cached_input)
  end)

  it('turns the cumulative native stream into deltas', function()
    local r = resolved({ options = native })
    local state, text = {}, {}
    for _, t in ipairs({ 'He', 'Hello', 'Hello!' }) do
      local out = a.parse_stream_event({ data = json.canonical({ text = t, meta_info = { prompt_tokens = 5,
        completion_tokens = #t, cached_tokens = 0,
          finish_reason = t == 'Hello!' and { type = 'stop' } or json.null } }) },
        state, r)
      if out and out.delta then text[#text + 1] = out.delta end
    end
    assert.equal('Hello!', table.concat(text))
    assert.is_true(a.parse_stream_event({ data = '[DONE]' }, state, r).done)
    assert.equal('stop', state.finish)
    assert.same({ input = 5, cached_input = 0, cache_write_5m = 0, cache_write_1h = 0, output = 6 }, state.usage)
  end)

  it('rejects an unknown route', function()
    assert.error_matches(function() a.build_request(resolved({ options = { route = 'grpc' } })) end,
      "sglang: options.route must be 'openai' or 'native', got 'grpc'")
  end)
end)
