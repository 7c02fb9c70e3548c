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

-- provider.call_all with a scripted multi transport (opts.http.all) and a
-- virtual clock: rounds, order, the shared budget, spread-out waits.

-- A transport whose `all` answers each request from `answer(content, k)`,
-- k being how many times that prompt was sent; records the rounds.
local function multi(answer)
  local t = { rounds = {}, seen = {}, sent = 0 }
  function t.all(reqs, o)
    t.rounds[#t.rounds + 1] = { n = #reqs, concurrency = o.concurrency }
    local outs = {}
    for i, req in ipairs(reqs) do
      t.sent = t.sent + 1
      local b = json.decode(req.body)
      local content = b.messages[#b.messages].content
      t.seen[content] = (t.seen[content] or 0) + 1
      local a = answer(content, t.seen[content], req)
      if a.fail then
        outs[i] = { err = a.fail, code = a.code }
      elseif a.events then
        for _, ev in ipairs(a.events) do
          if req.on_event(ev) == false then break end
        end
        outs[i] = { status = 200, headers = {}, body = '' }
      else
        outs[i] = { status = a.status or 200, headers = a.headers or {}, body = a.body and json.encode(a.body) or '' }
      end
    end
    return outs
  end
  return t
end

-- A virtual clock for the batch: `now` and `sleep` move it.
local function vclock()
  local c = { t = 100, sleeps = {} }
  c.retry = {
    now = function() return c.t end,
    sleep = function(s) c.sleeps[#c.sleeps + 1] = s; c.t = c.t + s end,
  }
  return c
end

local function items(k, t, extra)
  local list = {}
  for i = 1, k do
    list[i] = opts(t, { blocks = { { kind = 'task', stability = 'volatile', content = 'task ' .. i } } })
    for key, v in pairs(extra or {}) do list[i][key] = v end
  end
  return list
end

describe('aegis.provider.call_all', function()
  it('gives results in input order, and a 400 does not disturb the others', function()
    local t = multi(function(content)
      if content == 'task 3' then
        return { status = 400, body = { error = { message = 'bad request', type = 'invalid_request_error' } } }
      end
      local ok = json.decode(json.encode(CHAT_OK.body))
      ok.choices[1].message.content = 'answer to ' .. content
      return { body = ok }
    end)
    local c = vclock()
    local res = provider.call_all(items(5, t), { http = t, retry = c.retry, concurrency = 7 })
    assert.equal(5, #res)
    for i = 1, 5 do
      if i == 3 then
        assert.equal('http_400', res[i].code)
        assert.equal('http_400', res[i].err.code)
        assert.equal("provider: openai POST 'http://127.0.0.1:1/v1/chat/completions': 400 bad request", res[i].err.msg)
        assert.equal(1, res[i].err.attempts)
      else
        assert.equal('answer to task ' .. i, res[i].text)
        assert.equal(1, res[i].attempts)
        assert.equal(10, res[i].usage.output)
      end
    end
    assert.same({ { n = 5, concurrency = 7 } }, t.rounds)
    assert.same({}, c.sleeps)
  end)

  it('retries each call at its own time, honouring retry-after', function()
    local t = multi(function(content, k)
      if content == 'task 1' and k == 1 then return { status = 429, headers = { ['retry-after'] = '3' } } end
      if content == 'task 2' and k <= 2 then return { status = 503 } end
      return CHAT_OK
    end)
    local c = vclock()
    local waits = {}
    local list = items(3, t)
    for _, o in ipairs(list) do
      o.retry.on_retry = function(k, w) waits[#waits + 1] = { k, w } end
    end
    local res = provider.call_all(list, { http = t, retry = c.retry, budget = false })
    assert.equal(2, res[1].attempts)
    assert.equal(3, res[2].attempts)
    assert.equal(1, res[3].attempts)
    -- round 1: three; then task 2 (wait < 0.5 s), task 2 again (< 1 s), task 1 (3 s + < 0.5 s)
    assert.same({ 3, 1, 1, 1 }, { t.rounds[1].n, t.rounds[2].n, t.rounds[3].n, t.rounds[4].n })
    assert.equal(4, #t.rounds)
    local w1 = waits[1][1] == 1 and waits[1][2] >= 3 and waits[1] or waits[2]
    assert.is_true(w1[2] >= 3 and w1[2] <= 3.5)
    assert.is_true(c.t - 100 >= 3 and c.t - 100 <= 3.5)
  end)

  it('shares one retry budget: at most 1.2 x the calls are sent', function()
    local t = multi(function() return { status = 503 } end)
    local c = vclock()
    local res = provider.call_all(items(20, t), { http = t, retry = c.retry })
    assert.equal(24, t.sent)  -- 20 calls + 0.2 x 20 retries
    for i = 1, 20 do assert.equal('http_503', res[i].code) end
    -- a budget of its own
    t = multi(function() return { status = 503 } end)
    provider.call_all(items(20, t), { http = t, retry = c.retry, budget = retry.budget({ ratio = 0.5, min = 0 }) })
    assert.equal(30, t.sent)
  end)

  it('spreads the waits of one round: one in each slice of the backoff range', function()
    local t = multi(function(_, k) return k == 1 and { status = 429 } or CHAT_OK end)
    local c = vclock()
    local waits = {}
    local k = 40
    local list = items(k, t)
    for _, o in ipairs(list) do o.retry.on_retry = function(_, w) waits[#waits + 1] = w end end
    local res = provider.call_all(list, { http = t, retry = c.retry, budget = false })
    for i = 1, k do assert.equal(2, res[i].attempts, res[i].code and res[i].err.msg) end
    assert.equal(k, #waits)
    table.sort(waits)
    for i = 1, k do
      assert.is_true(waits[i] >= (i - 1) * 0.5 / k and waits[i] <= i * 0.5 / k, 'wait ' .. i .. ': ' .. waits[i])
    end
  end)

  it('does not retry a quota 429, and refuses without sending when the breaker is open', function()
    local t = multi(function(content)
      if content == 'task 1' then
        return { status = 429, body = { error = { code = 'insufficient_quota', message = 'quota' } } }
      end
      return { status = 503 }
    end)
    local c = vclock()
    local br = retry.breaker('provider_call_spec all open', { threshold = 2 })
    local list = items(3, t)
    list[2].retry.breaker, list[3].retry.breaker = br, br
    local res = provider.call_all(list, { http = t, retry = c.retry, budget = false })
    assert.equal('quota', res[1].code)
    assert.equal(1, res[1].err.attempts)
    -- tasks 2 and 3 fail together: their breaker opens, their retries are refused unsent
    for i = 2, 3 do
      assert.equal('circuit_open', res[i].code)
      assert.equal("provider: openai POST 'http://127.0.0.1:1/v1/chat/completions': retry: circuit "
        .. "'provider_call_spec all open' is open", res[i].err.msg)
      assert.equal(1, res[i].err.attempts)
    end
    assert.equal(3, t.sent)
  end)

  it('streams each call to its own on_delta', function()
    local function chunk(x) return { data = json.encode(x) } end
    local t = multi(function(content)
      return { events = {
        chunk({ choices = { { delta = { content = content } } } }),
        chunk({ choices = { { delta = { content = '!' }, finish_reason = 'stop' } } }),
        chunk({ choices = json.array({}), usage = { prompt_tokens = 5, completion_tokens = 2,
          prompt_tokens_details = { cached_tokens = 0 } } }),
        { data = '[DONE]' },
      } }
    end)
    local got = { {}, {} }
    local list = items(2, t, { stream = true })
    for i = 1, 2 do list[i].on_delta = function(d) table.insert(got[i], d) end end
    local res = provider.call_all(list, { http = t, retry = vclock().retry })
    assert.equal('task 1!', res[1].text)
    assert.equal('task 2!', res[2].text)
    assert.same({ { 'task 1', '!' }, { 'task 2', '!' } }, got)
  end)

  it('fails one call without a key and makes the others', function()
    local t = multi(function() return CHAT_OK end)
    local list = items(2, t)
    list[1].getenv = function() return nil end
    local res = provider.call_all(list, { http = t, retry = vclock().retry })
    assert.equal('config', res[1].code)
    assert.equal('provider: openai: no API key (set OPENAI_API_KEY)', res[1].err.msg)
    assert.equal('done', res[2].text)
    assert.equal(1, t.sent)
  end)

  it('refuses misuse before sending anything', function()
    local t = multi(function() return CHAT_OK end)
    local list = items(2, t)
    list[2].model = ''
    assert.has_error(function() provider.call_all(list, { http = t }) end,
      "bad argument #1 to 'call_all' (request 2: model must be a non-empty string)")
    assert.equal(0, t.sent)
    assert.has_error(function() provider.call_all('x') end,
      "bad argument #1 to 'call_all' (table expected, got string)")
    assert.has_error(function() provider.call_all({ 'x' }) end,
      "bad argument #1 to 'call_all' (request 1: table expected, got string)")
    assert.has_error(function() provider.call_all({}, { concurrency = 0 }) end,
      "bad argument #2 to 'call_all' (concurrency must be a positive integer)")
    assert.has_error(function() provider.call_all({}, { budget = {} }) end,
      "bad argument #2 to 'call_all' (budget must come from retry.budget or be false)")
    assert.same({}, provider.call_all({}))
  end)
end)
