local common = require('aegis.emulator.common')
local emulator = require('aegis.emulator')
local faults = require('aegis.emulator.faults')
local json = require('aegis.json')

describe('aegis.emulator.common', function()
  it('counts tokens as ceil(bytes / 4)', function()
    assert.equal(0, common.tokens(''))
    assert.equal(1, common.tokens('a'))
    assert.equal(1, common.tokens('abcd'))
    assert.equal(2, common.tokens('abcde'))
  end)

  it('finds the longest common prefix in bytes', function()
    assert.equal(0, common.common_prefix('abc', 'xbc'))
    assert.equal(2, common.common_prefix('abc', 'abd'))
    assert.equal(3, common.common_prefix('abc', 'abcdef'))
    assert.equal(0, common.common_prefix('', 'abc'))
  end)

  it('gives the same reply for the same seed, within max_tokens', function()
    local a, ta = common.reply('seed one')
    local b = common.reply('seed one')
    assert.same(a, b)
    assert.is_false(ta)
    assert.is_true(#a >= 8 and #a <= 24)
    assert.matches('%.$', a[#a])
    local c, tc = common.reply('seed one', 3)
    assert.same({ a[1], a[2], a[3] }, c)
    assert.is_true(tc)
    assert.are_not.same(a, common.reply('seed two'))
    assert.same({}, (common.reply('x', 0)))
  end)

  it('splits a scripted text into tokens that concatenate back', function()
    assert.same({ 'Abra', ' cadabra.' }, common.split('Abra cadabra.'))
    assert.same({ ' a', ' b ' }, common.split(' a b '))
    assert.same({}, common.split(''))
  end)

  it('keeps prefixes per namespace, with a TTL', function()
    local c = common.prefix_cache({ ttl = 10 })
    assert.equal(0, c:lookup('m', 'hello world', 0))
    c:add('m', 'hello world', 0)
    assert.equal(6, c:lookup('m', 'hello there', 5))
    assert.equal(0, c:lookup('other', 'hello there', 5))
    assert.equal(6, c:lookup('m', 'hello there', 14))  -- refreshed at 5
    assert.equal(0, c:lookup('m', 'hello there', 30))
    c:add('m', 'hello world', 30, 100)  -- its own TTL
    assert.equal(6, c:lookup('m', 'hello there', 120))
  end)

  it('frames SSE events', function()
    assert.equal('data: {}\n\n', common.sse('{}'))
    assert.equal('event: ping\ndata: {}\n\n', common.sse('{}', 'ping'))
  end)
end)

describe('aegis.emulator.faults', function()
  it('checks fault objects', function()
    assert.same({ status = 429, headers = { ['retry-after'] = '2' } },
      faults.check({ status = 429, headers = { ['retry-after'] = '2' } }))
    assert.same({ trickle = 1 }, faults.check({ trickle = true }))
    local f, err = faults.check({ boom = 1 })
    assert.is_nil(f)
    assert.equal("unknown fault key 'boom'", err)
    assert.equal('fault status must be 100..599', select(2, faults.check({ status = 99 })))
    assert.equal("fault key 'reset' must be a boolean", select(2, faults.check({ reset = 'yes' })))
    assert.equal("fault ending must be 'close' or 'reset'", select(2, faults.check({ ending = 'later' })))
    assert.equal('a fault must say what to do', select(2, faults.check({})))
    assert.equal('a fault must be a JSON object', select(2, faults.check(json.array({ 1 }))))
  end)

  it('parses the short forms of the x-emulator-fault header', function()
    assert.same({ status = 529 }, faults.parse_header('529'))
    assert.same({ reset = true }, faults.parse_header('reset'))
    assert.same({ reset_after_bytes = 100 }, faults.parse_header('reset:100'))
    assert.same({ truncate_after_events = 3 }, faults.parse_header('truncate:3'))
    assert.same({ error_after_events = 2 }, faults.parse_header('error:2'))
    assert.same({ trickle = 1 }, faults.parse_header('trickle'))
    assert.same({ status = 429, headers = { ['retry-after'] = '300' } },
      faults.parse_header('{"status":429,"headers":{"retry-after":"300"}}'))
    assert.is_nil(faults.parse_header('sometimes'))
  end)

  it('parses --fault-rate and draws the same faults for the same seed', function()
    local rates = faults.parse_rates('429:0.2,529:0.05,reset:0.01')
    assert.same({ { kind = '429', p = 0.2 }, { kind = '529', p = 0.05 }, { kind = 'reset', p = 0.01 } }, rates)
    assert.error_matches(function() faults.parse_rates('429:0.7,500:0.5') end, 'add up to more than 1')
    assert.error_matches(function() faults.parse_rates('teapot:0.1') end, "bad fault kind 'teapot'")
    local function draws(seed)
      local rand, out = faults.random(seed), {}
      for i = 1, 200 do out[i] = faults.describe(faults.draw(rates, rand)) or '-' end
      return out
    end
    local a = draws(42)
    assert.same(a, draws(42))
    assert.are_not.same(a, draws(43))
    local n429 = 0
    for _, d in ipairs(a) do if d == 'status:429' then n429 = n429 + 1 end end
    assert.is_true(n429 > 10 and n429 < 80)  -- about 40 expected of 200
  end)

  it('cuts a stream after N events and appends an error event', function()
    local reply = { status = 200, headers = {}, events = { 'a', 'b', 'c', 'd' },
                    error_event = function(f) return 'E' .. f.error_after_events end }
    local p = faults.plan(reply, { truncate_after_events = 2, ending = 'close' })
    assert.same({ { data = 'a' }, { data = 'b' } }, p.chunks)
    assert.equal('close', p.ending)
    p = faults.plan(reply, { error_after_events = 3, event_delay = 0.5 })
    assert.same({ { data = 'a' }, { data = 'b', delay = 0.5 }, { data = 'c', delay = 0.5 },
                  { data = 'E3', delay = 0.5 } }, p.chunks)
    p = faults.plan({ status = 200, headers = {}, body = '0123456789' }, { truncate_after_events = 1 })
    assert.same({ { data = '01234' } }, p.chunks)
    assert.equal('close', p.ending)
  end)
end)

describe('aegis.emulator', function()
  local ANTHROPIC = { ['x-api-key'] = 'k', ['anthropic-version'] = '2023-06-01' }

  local function post(em, path, body, headers)
    local plan = emulator.handle(em, { method = 'POST', path = path, headers = headers or {},
                                       body = json.encode(body) })
    return plan, plan.body and json.decode(plan.body)
  end

  it('answers the control API and logs without header values', function()
    local em = emulator.new()
    local plan = emulator.handle(em, { method = 'GET', path = '/_emulator/health', headers = {} })
    assert.equal(200, plan.status)
    assert.same(emulator.ROUTES, json.decode(plan.body).routes)
    post(em, '/anthropic/v1/messages', { model = 'claude-x', max_tokens = 5,
      messages = { { role = 'user', content = 'hi' } } }, ANTHROPIC)
    local entry = em.log[1]
    assert.is_true(entry.auth)
    for _, v in pairs(entry) do assert.are_not.equal('k', v) end
    plan = emulator.handle(em, { method = 'PUT', path = '/_emulator/log', headers = {} })
    assert.equal(405, plan.status)
    plan = emulator.handle(em, { method = 'GET', path = '/_emulator/nothing', headers = {} })
    assert.equal(404, plan.status)
  end)

  it('accounts an Anthropic prompt: creation, then read, split by TTL', function()
    local em = emulator.new()
    local body = {
      model = 'claude-haiku-3-5', max_tokens = 5,
      system = { { type = 'text', text = string.rep('s', 9000), cache_control = { type = 'ephemeral', ttl = '1h' } } },
      messages = { { role = 'user',
                     content = { { type = 'text', text = 'q', cache_control = { type = 'ephemeral' } } } } },
    }
    local _, v = post(em, '/anthropic/v1/messages', body, ANTHROPIC)
    -- "system: " + 9000 + "\n" = 9009 bytes = 2253 tokens (haiku minimum 2048); "user: q\n" adds 2
    assert.same({ ephemeral_5m_input_tokens = 2, ephemeral_1h_input_tokens = 2253 }, v.usage.cache_creation)
    assert.equal(0, v.usage.input_tokens)
    _, v = post(em, '/anthropic/v1/messages', body, ANTHROPIC)
    assert.equal(2255, v.usage.cache_read_input_tokens)
    assert.equal(0, v.usage.cache_creation_input_tokens)
  end)

  it('applies a one-shot header fault before the queue', function()
    local em = emulator.new()
    emulator.handle(em, { method = 'POST', path = '/_emulator/faults/vllm', headers = {}, body = '[{"status":503}]' })
    local plan = emulator.handle(em, { method = 'POST', path = '/vllm/v1/chat/completions',
      headers = { ['x-emulator-fault'] = 'reset' }, body = '{"model":"m","messages":[{"role":"user","content":"x"}]}' })
    assert.is_true(plan.reset)
    plan = emulator.handle(em, { method = 'POST', path = '/vllm/v1/chat/completions', headers = {},
      body = '{"model":"m","messages":[{"role":"user","content":"x"}]}' })
    assert.equal(503, plan.status)
    assert.same({ object = 'error', message = 'Service Unavailable', type = 'ServiceUnavailableError',
                  param = json.null, code = 503 }, json.decode(plan.body))
  end)

  it('loads scripted rules in the sandbox and refuses bad ones', function()
    assert.is_table(emulator.load_rules('spec/fixtures/emulator/rules.lua'))
    local rules, err = emulator.load_rules('/nonexistent.lua')
    assert.is_nil(rules)
    assert.matches('^emulate: script /nonexistent.lua', err)
    local dir = require('spec.helpers').tmpdir()
    local f = io.open(dir .. '/bad.lua', 'w')
    f:write('return { { match = {} } }')
    f:close()
    rules, err = emulator.load_rules(dir .. '/bad.lua')
    assert.is_nil(rules)
    assert.matches('rule 1 needs respond or fault$', err)
    f = io.open(dir .. '/io.lua', 'w')
    f:write('return io.open("/etc/passwd")')
    f:close()
    rules, err = emulator.load_rules(dir .. '/io.lua')
    assert.is_nil(rules)
    assert.matches("undefined global 'io'", err)
  end)
end)

describe('aegis.core.httpd', function()
  local httpd = require('aegis.core.httpd')

  it('refuses a host that is not an IP address and a bad port', function()
    local s, err, code = httpd.listen('localhost', 0, function() end)
    assert.is_nil(s)
    assert.equal("httpd: listen 'localhost': not an IP address", err)
    assert.equal('invalid', code)
    assert.error_matches(function() httpd.listen('127.0.0.1', 70000, function() end) end, 'port must be 0%.%.65535')
  end)

  it('fails with nil, msg, code on a port already taken', function()
    local a = assert(httpd.listen('127.0.0.1', 0, function() end))
    finally(function() a:close() end)
    local b, err, code = httpd.listen('127.0.0.1', a:port(), function() end)
    assert.is_nil(b)
    assert.equal(("httpd: listen '127.0.0.1' port %d: Address already in use"):format(a:port()), err)
    assert.equal('io', code)
  end)

  it('serves a plan, reports its port, times out, and closes', function()
    local s = assert(httpd.listen('127.0.0.1', 0, function(req)
      return { status = 201, headers = { ['x-seen'] = req.headers['x-test'] or '-' }, body = req.method .. req.path }
    end))
    assert.is_true(s:port() > 0)
    local out = os.tmpname()
    os.execute(('(curl -s -i -H "X-Test: yes" http://127.0.0.1:%d/p > %s) &'):format(s:port(), out))
    local text = ''
    for _ = 1, 100 do
      assert.equal('timeout', s:run({ seconds = 0.05 }))
      local fh = io.open(out)
      text = fh:read('a')
      fh:close()
      if text:find('GET/p', 1, true) then break end
    end
    os.remove(out)
    assert.matches('^HTTP/1%.1 201', text)
    assert.matches('x%-seen: yes', text)
    assert.matches('aegis.httpd.Server %(port %d+%)', tostring(s))
    assert.is_true(s:close())
    assert.error_matches(function() s:port() end, 'attempt to use a closed server')
  end)
end)
