-- provider.call with a scripted transport (opts.http): the wiring of keys,
-- retries, the breaker, streams and warnings, without a server. The same
-- paths run against the emulator in spec/functional/call_spec.lua.
local json = require('aegis.json')
local provider = require('aegis.provider')
local retry = require('aegis.retry')

local KEY = 'sk-proj-' .. ('Z'):rep(20) .. 'T3BlbkFJ' .. ('Q'):rep(20)

-- A transport that answers from a list; records what it was sent.
local function transport(answers)
  local t = { sent = {} }
  function t.request(req)
    t.sent[#t.sent + 1] = req
    local a = table.remove(answers, 1)
    assert(a, 'no answer left')
    if a.fail then return nil, a.fail, a.code end
    if a.events then
      for _, ev in ipairs(a.events) do
        if req.on_event(ev) == false then break end
      end
      return { status = 200, headers = {}, body = '' }
    end
    return { status = a.status or 200, headers = a.headers or {}, body = a.body and json.encode(a.body) or '' }
  end
  return t
end

local CHAT_OK = { body = { object = 'chat.completion', model = 'gpt-5.4',
  choices = { { message = { content = 'done' }, finish_reason = 'stop' } },
  usage = { prompt_tokens = 100, completion_tokens = 10, prompt_tokens_details = { cached_tokens = 0 } } } }

local n = 0
local function opts(t, extra)
  n = n + 1
  local o = {
    provider = 'openai', model = 'gpt-5.4', base_url = 'http://127.0.0.1:1/v1',
    blocks = { { kind = 'task', stability = 'volatile', content = 'hi' } },
    http = t, getenv = function(name) return name == 'OPENAI_API_KEY' and KEY or nil end,
    retry = { sleep = function() end, breaker = retry.breaker('provider_call_spec ' .. n) },
    on_warning = function() end,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

describe('aegis.provider.call', function()
  it('adds the key to the request only, and gives a priced result', function()
    local t = transport({ CHAT_OK })
    local warnings = {}
    local res, err = provider.call(opts(t, { on_warning = function(w) warnings[#warnings + 1] = w end }))
    assert.is_nil(err)
    assert.equal('Bearer ' .. KEY, t.sent[1].headers.authorization)
    assert.equal('done', res.text)
    assert.equal('stop', res.finish)
    assert.equal(1, res.attempts)
    assert.same({ input = 100, cached_input = 0, cache_write_5m = 0, cache_write_1h = 0, output = 10 }, res.usage)
    assert.is_true(math.abs(res.cost - (100 * 2.5 + 10 * 15) / 1e6) < 1e-15)
    assert.same({}, warnings)
    assert.is_nil(json.encode(res):find(KEY, 1, true))
  end)

  it('retries a 500 twice and returns the last refusal, key redacted', function()
    local echo = { error = { message = 'Incorrect API key provided: ' .. KEY, type = 'server_error' } }
    local t = transport({ { status = 500, body = echo }, { status = 500, body = echo }, { status = 500, body = echo } })
    local res, err = provider.call(opts(t))
    assert.is_nil(res)
    assert.equal('http_500', err.code)
    assert.equal(3, #t.sent)
    assert.equal(3, err.attempts)
    assert.equal("provider: openai POST 'http://127.0.0.1:1/v1/chat/completions': 500 Incorrect API key provided: "
      .. '[redacted]', err.msg)
  end)

  it('does not retry a quota 429', function()
    local t = transport({ { status = 429, body = { error = { code = 'insufficient_quota', message = 'quota' } } } })
    local _, err = provider.call(opts(t))
    assert.equal('quota', err.code)
    assert.equal(1, #t.sent)
  end)

  it('opens the breaker after 5 failed attempts and then fails without sending', function()
    local answers = {}
    for i = 1, 6 do answers[i] = { status = 503 } end
    local t = transport(answers)
    local o = opts(t)
    local _, e1 = provider.call(o)
    assert.equal('http_503', e1.code)
    local _, e2 = provider.call(o)  -- attempts 4 and 5 fail, the breaker opens
    assert.equal(5, #t.sent)
    local _, e3 = provider.call(o)
    assert.equal('circuit_open', e3.code)
    assert.equal(5, #t.sent)
    assert.matches("retry: circuit 'provider_call_spec %d+' is open", e3.msg)
    assert.is_not_nil(e2)
  end)

  it('retries a refused connection, not a body past the cap', function()
    local t = transport({ { fail = "http: POST 'x': connection refused", code = 'conn' }, CHAT_OK })
    assert.is_not_nil(provider.call(opts(t)))
    assert.equal(2, #t.sent)
    t = transport({ { fail = "http: POST 'x': response larger than 10 bytes", code = 'too_large' } })
    local _, err = provider.call(opts(t))
    assert.equal('too_large', err.code)
    assert.equal("provider: openai POST 'http://127.0.0.1:1/v1/chat/completions': response larger than 10 bytes",
      err.msg)
  end)

  it('streams deltas to on_delta and stops at the last event', function()
    local function chunk(t) return { data = json.encode(t) } end
    local t = transport({ { events = {
      chunk({ choices = { { delta = { content = 'a' } } } }),
      chunk({ choices = { { delta = { content = 'b' }, finish_reason = 'stop' } } }),
      chunk({ choices = json.array({}), usage = { prompt_tokens = 5, completion_tokens = 2,
        prompt_tokens_details = { cached_tokens = 0 } } }),
      { data = '[DONE]' },
      { data = 'never read' },
    } } })
    local got = {}
    local res = assert(provider.call(opts(t, { stream = true, on_delta = function(d) got[#got + 1] = d end })))
    assert.same({ 'a', 'b' }, got)
    assert.equal('ab', res.text)
    assert.equal(5, res.usage.input)
    assert.equal('text/event-stream', t.sent[1].headers.accept)
  end)

  it('fails a stream that ends before its last event, without retrying it', function()
    local t = transport({ { events = { { data = json.encode({ choices = { { delta = { content = 'a' } } } }) } } } })
    local res, err = provider.call(opts(t, { stream = true }))
    assert.is_nil(res)
    assert.equal('truncated', err.code)
    assert.equal(1, #t.sent)
  end)

  it('warns when the cost is unknown, and passes on adapter warnings', function()
    local t = transport({ CHAT_OK })
    local warnings = {}
    local res = provider.call(opts(t, { model = 'my-finetune',
      on_warning = function(w) warnings[#warnings + 1] = w end }))
    assert.is_nil(res.cost)
    assert.same({ "cost unknown: no price for openai model 'my-finetune' (add it to prices in aegis.config.lua)" },
      warnings)
  end)

  it('needs the key of a provider that requires one', function()
    local o = opts(transport({}), { getenv = function() return nil end })
    local res, err = provider.call(o)
    assert.is_nil(res)
    assert.equal('config', err.code)
    assert.equal('provider: openai: no API key (set OPENAI_API_KEY)', err.msg)
  end)
end)
