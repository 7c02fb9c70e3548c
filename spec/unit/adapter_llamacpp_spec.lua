local hash = require('aegis.hash')
local json = require('aegis.json')
local provider = require('aegis.provider')

local function resolved(over)
  local r = {
    model = 'local',
    system = 'SYS',
    blocks = { { kind = 'requirements', stability = 'stable', content = 'REQ' },
      { kind = 'task', stability = 'volatile', content = 'TASK' } },
    params = { temperature = 0.1, max_tokens = 16 },
    base_url = 'http://127.0.0.1:8080',
    options = { slots = 4 },
  }
  for k, v in pairs(over or {}) do r[k] = v end
  return r
end

describe('providers/llamacpp', function()
  local a = assert(provider.load('llamacpp'))

  it('builds a native /completion request with cache_prompt and the prefix slot', function()
    local req = a.build_request(resolved())
    assert.equal('/completion', req.path)
    local want_slot = tonumber(hash.sha256('SYS\n\nREQ'):sub(1, 8), 16) % 4
    assert.same({ prompt = 'SYS\n\nREQ\n\nTASK', cache_prompt = true, id_slot = want_slot, n_predict = 16,
      temperature = 0.1 }, req.body)
  end)

  it('maps a prefix to the same slot every time, and prefixes spread over the slots', function()
    assert.equal(a.slot('P', 4), a.slot('P', 4))
    local seen = {}
    for i = 1, 40 do seen[a.slot('prefix ' .. i, 4)] = true end
    assert.same({ [0] = true, true, true, true }, seen)
    assert.equal(0, a.slot('anything', 1))
  end)

  it('sends no id_slot without options.slots or without a stable prefix', function()
    assert.is_nil(a.build_request(resolved({ options = {} })).body.id_slot)
    local r = resolved({ blocks = { { kind = 'task', stability = 'volatile', content = 'T' } } })
    r.system = nil
    assert.is_nil(a.build_request(r).body.id_slot)
  end)

  it('reads usage: tokens_evaluated, timings.cache_n, tokens_predicted; tokens_cached goes to extra', function()
    local body = { content = 'ok', stop = true, stop_type = 'eos', tokens_evaluated = 120, tokens_predicted = 4,
      tokens_cached = 124, id_slot = 2, timings = { prompt_n = 8, cache_n = 112, predicted_n = 4 } }
    local out = a.parse_response({ status = 200, json = body }, resolved())
    assert.equal('ok', out.text)
    assert.equal('eos', out.finish)
    assert.same({ input = 120, cached_input = 112, cache_write_5m = 0, cache_write_1h = 0, output = 4 }, out.usage)
    assert.equal(124, out.extra.tokens_cached)
    body.timings = { prompt_n = 8 }  -- an older server
    assert.is_nil(a.parse_response({ status = 200, json = body }, resolved()).usage.cached_input)
  end)

  it('parses the native stream to its stop event', function()
    local state, text = {}, {}
    local events = {
      { content = 'a', stop = false }, { content = 'b', stop = false },
      { content = '', stop = true, stop_type = 'limit', tokens_evaluated = 10, tokens_predicted = 2,
        timings = { cache_n = 0 } },
    }
    local done
    for _, e in ipairs(events) do
      local out = a.parse_stream_event({ data = json.canonical(e) }, state, resolved())
      if out and out.delta then text[#text + 1] = out.delta end
      if out and out.done then done = true end
    end
    assert.equal('ab', table.concat(text))
    assert.is_true(done)
    assert.equal('limit', state.finish)
    assert.same({ input = 10, cached_input = 0, cache_write_5m = 0, cache_write_1h = 0, output = 2 }, state.usage)
  end)

  it('has an OpenAI route', function()
    local req = a.build_request(resolved({ options = { route = 'openai' } }))
    assert.equal('/v1/chat/completions', req.path)
    assert.equal('SYS\n\nREQ', req.body.messages[1].content)
  end)
end)
