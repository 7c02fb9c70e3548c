-- `aegis-run call` against the provider emulator: every adapter, plain and
-- streamed; cached tokens on the second call with the same stable prefix;
-- each error class with the attempts counted in the emulator's log; and a
-- canary key that must appear nowhere.
local h = require('spec.helpers')
local http = require('aegis.http')
local json = require('aegis.json')

-- Starts `aegis-run emulate --port 0 ARGS...`; returns its URL and a stop function.
local function start_emulator(args)
  local cmd = "sh -c 'echo $$; exec " .. h.shell_quote(h.bin) .. ' emulate --port 0'
  for _, a in ipairs(args or {}) do cmd = cmd .. ' ' .. h.shell_quote(a):gsub("'", "'\\''") end
  local p = io.popen(cmd .. "' 2>&1")
  local pid = p:read('l')
  local line = p:read('l') or ''
  local function stop()
    if math.tointeger(tonumber(pid)) then os.execute('kill ' .. math.tointeger(tonumber(pid)) .. ' 2>/dev/null') end
    p:close()
  end
  local url = line:match('emulator listening on (http://127%.0%.0%.1:%d+)')
  if not url then
    stop()
    error('emulator did not start: ' .. line, 2)
  end
  return url, stop
end

local function control(base, method, path, body)
  local res, err = http.request({ method = method, url = base .. path, body = body and json.encode(body),
    headers = { ['content-type'] = 'application/json' } })
  assert(res, err)
  assert(res.status == 200, res.body)
  return json.decode(res.body)
end

-- Requests the emulator saw on a route prefix ('/openai/', ...).
local function attempts(base, prefix)
  local n = 0
  for _, e in ipairs(control(base, 'GET', '/_emulator/log')) do
    if e.path:sub(1, #prefix) == prefix then n = n + 1 end
  end
  return n
end

local KEYS = { OPENAI_API_KEY = 'sk-test-openai', ANTHROPIC_API_KEY = 'sk-test-anthropic' }

local function call(args, env, stdin)
  local e = {}
  for k, v in pairs(KEYS) do e[k] = v end
  for k, v in pairs(env or {}) do e[k] = v end
  e.OPENAI_BASE_URL, e.ANTHROPIC_BASE_URL = false, false
  return h.run(args, { env = e, stdin = stdin, cwd = h.tmpdir() })
end

-- Each adapter and route: the base URL path on the emulator and the
-- options that pick the route.
local ROUTES = {
  { name = 'openai chat', provider = 'openai', model = 'gpt-5.4', path = '/openai/v1', log = '/openai/' },
  { name = 'openai responses', provider = 'openai', model = 'gpt-5.4', path = '/openai/v1', log = '/openai/',
    opts = { '--option', 'api=responses' } },
  { name = 'anthropic', provider = 'anthropic', model = 'claude-sonnet-4-6', path = '/anthropic', log = '/anthropic/' },
  { name = 'vllm', provider = 'vllm', model = 'Qwen/Qwen3-8B', path = '/vllm', log = '/vllm/' },
  { name = 'sglang openai', provider = 'sglang', model = 'default', path = '/sglang', log = '/sglang/' },
  { name = 'sglang native', provider = 'sglang', model = 'default', path = '/sglang', log = '/sglang/',
    opts = { '--option', 'route=native' } },
  { name = 'llamacpp native', provider = 'llamacpp', model = 'local', path = '/llamacpp', log = '/llamacpp/',
    opts = { '--option', 'slots=4' } },
  { name = 'llamacpp openai', provider = 'llamacpp', model = 'local', path = '/llamacpp', log = '/llamacpp/',
    opts = { '--option', 'route=openai' }, unreported = true },
}

local function args_for(r, base, extra)
  local a = { 'call', '--provider', r.provider, '--model', r.model, '--base-url', base .. r.path }
  for _, x in ipairs(r.opts or {}) do a[#a + 1] = x end
  for _, x in ipairs(extra or {}) do a[#a + 1] = x end
  return a
end

-- A system prompt long enough for every cache minimum (OpenAI 1024
-- tokens, Anthropic 1024 or 2048): the emulator counts 4 bytes a token.
local LONG = ('You write careful, tested TypeScript for the parser team. '):rep(200)

describe('aegis-run call', function()
  local base, stop
  setup(function() base, stop = start_emulator({ '--report-cached' }) end)
  teardown(function() stop() end)
  before_each(function() control(base, 'POST', '/_emulator/reset') end)

  it('prints its usage with --help and refuses bad usage with exit 2', function()
    local r = call({ 'call', '--help' })
    assert.equal(0, r.code)
    assert.matches('usage: aegis%-run call %-%-provider NAME %-%-model MODEL', r.stdout)
    r = call({ 'call', '--provider', 'openai', 'hi' })
    assert.equal(2, r.code)
    assert.equal('aegis-run: call: --model is required (see aegis-run call --help)\n', r.stderr)
    r = call({ 'call', '--provider', 'openai', '--model', 'm', '--frobnicate', 'hi' })
    assert.equal(2, r.code)
    assert.equal("aegis-run: call: unknown option '--frobnicate' (see aegis-run call --help)\n", r.stderr)
    r = call({ 'call', '--provider', 'nope', '--model', 'm', 'hi' })
    assert.equal(2, r.code)
    assert.matches("^aegis%-run: path: no provider 'nope' in AEGIS_PATH", r.stderr)
  end)

  it('reads the prompt from standard input with -, and the system text from a file', function()
    local sys = h.write(h.tmpdir() .. '/system.txt', 'SYSTEM TEXT')
    local a = call(args_for(ROUTES[1], base, { '--system', sys, '-' }), nil, 'the prompt')
    local b = call(args_for(ROUTES[1], base, { '--system', sys, 'the prompt' }))
    assert.equal(0, a.code, a.stderr)
    assert.equal(b.stdout, a.stdout)
    local r = call(args_for(ROUTES[1], base, { '--system', '/nonexistent/s.txt', 'hi' }))
    assert.equal(2, r.code)
    assert.equal("aegis-run: call: cannot read system file '/nonexistent/s.txt': No such file or directory\n", r.stderr)
  end)

  it('refuses to call without the key, exit 2', function()
    local r = call({ 'call', '--provider', 'anthropic', '--model', 'm', '--base-url', base .. '/anthropic', 'hi' },
      { ANTHROPIC_API_KEY = false })
    assert.equal(2, r.code)
    assert.equal('aegis-run: provider: anthropic: no API key (set ANTHROPIC_API_KEY)\n', r.stderr)
    assert.equal(0, attempts(base, '/anthropic/'))
  end)

  for _, route in ipairs(ROUTES) do
    describe(route.name, function()
      it('answers plainly, with --json usage', function()
        local r = call(args_for(route, base, { '--json', 'Write add.ts' }))
        assert.equal(0, r.code, r.stderr)
        local out = json.decode(r.stdout)
        assert.equal(route.provider, out.provider)
        assert.equal(route.model, out.model)
        assert.is_true(#out.text > 0)
        assert.is_true(math.type(out.usage.input) == 'integer' and out.usage.input > 0)
        assert.is_true(math.type(out.usage.output) == 'integer' and out.usage.output > 0)
        assert.is_true(math.type(out.latency_ms) == 'integer')
        assert.equal(1, attempts(base, route.log))
      end)

      it('streams the same text as the plain answer', function()
        local plain = call(args_for(route, base, { 'Write add.ts' }))
        local streamed = call(args_for(route, base, { '--stream', 'Write add.ts' }))
        assert.equal(0, streamed.code, streamed.stderr)
        assert.equal(plain.stdout, streamed.stdout)
        local j = json.decode(call(args_for(route, base, { '--stream', '--json', 'Write add.ts' })).stdout)
        assert.is_true(math.type(j.usage.output) == 'integer' and j.usage.output > 0)
      end)

      it('counts cached tokens on the second call with the same stable prefix', function()
        local sys = h.write(h.tmpdir() .. '/system.txt', LONG)
        local first = json.decode(call(args_for(route, base, { '--json', '--system', sys, 'task one' })).stdout)
        local second = json.decode(call(args_for(route, base, { '--json', '--system', sys, 'task two' })).stdout)
        if route.unreported then
          -- the server does not say: unknown, never 0
          assert.equal(json.null, first.usage.cached_input)
          assert.equal(json.null, second.usage.cached_input)
          return
        end
        assert.equal(0, first.usage.cached_input)
        assert.is_true(second.usage.cached_input > 1000, json.encode(second.usage))
        assert.is_true(second.usage.input > second.usage.cached_input)
      end)
    end)
  end

  it('prices a known model and reports the cost of an unknown one as null with a warning', function()
    local r = call(args_for(ROUTES[1], base, { '--json', 'hi' }))
    local out = json.decode(r.stdout)
    local want = (out.usage.input * 2.5 + out.usage.output * 15) / 1e6
    assert.is_true(math.abs(out.cost - want) < 1e-12)
    assert.equal('', r.stderr)
    r = call(args_for(ROUTES[4], base, { '--json', 'hi' }))
    out = json.decode(r.stdout)
    assert.equal(json.null, out.cost)
    assert.equal("aegis-run: warning: cost unknown: no price for vllm model 'Qwen/Qwen3-8B' "
      .. '(add it to prices in aegis.config.lua)\n', r.stderr)
  end)

  it('splits Anthropic cache writes by TTL and reads them back', function()
    local sys = h.write(h.tmpdir() .. '/system.txt', LONG)
    local a = args_for(ROUTES[3], base, { '--json', '--system', sys, '--cache-ttl', '1h' })
    local first = json.decode(call((function() local t = { table.unpack(a) } t[#t + 1] = 'one' return t end)()).stdout)
    local second = json.decode(call((function() local t = { table.unpack(a) } t[#t + 1] = 'two' return t end)()).stdout)
    assert.is_true(first.usage.cache_write_1h > 1000)
    assert.equal(0, first.usage.cache_write_5m)
    assert.equal(first.usage.cache_write_1h, second.usage.cached_input)
    assert.equal(0, second.usage.cache_write_1h)
  end)

  it('reports vLLM and SGLang cached tokens as unknown when the server does not report them', function()
    local b2, stop2 = start_emulator()
    local ok, err = pcall(function()
      for _, route in ipairs({ ROUTES[4], ROUTES[5] }) do
        local out = json.decode(call(args_for(route, b2, { '--json', 'hi' })).stdout)
        assert.equal(json.null, out.usage.cached_input)
        assert.is_true(out.usage.input > 0)
      end
    end)
    stop2()
    assert(ok, err)
  end)

  describe('errors and retries (attempts from the emulator log)', function()
    local function fault(route, list) control(base, 'POST', '/_emulator/faults/' .. route, list) end
    local QUICK = { ['retry-after-ms'] = '1' }

    it('does not retry a 400 and says why, exit 1', function()
      fault('openai', { { status = 400, message = 'Invalid value for temperature' } })
      local r = call(args_for(ROUTES[1], base, { 'hi' }))
      assert.equal(1, r.code)
      assert.equal("aegis-run: provider: openai POST '" .. base .. "/openai/v1/chat/completions': "
        .. '400 Invalid value for temperature\n', r.stderr)
      assert.equal(1, attempts(base, '/openai/'))
    end)

    it('retries 429 and 500 twice, then succeeds (3 attempts)', function()
      fault('openai', { { status = 429, headers = QUICK }, { status = 500, headers = QUICK } })
      local r = call(args_for(ROUTES[1], base, { 'hi' }))
      assert.equal(0, r.code, r.stderr)
      assert.equal(3, attempts(base, '/openai/'))
    end)

    it('gives up after 2 retries (3 attempts)', function()
      fault('anthropic', { { status = 529, headers = QUICK }, { status = 529, headers = QUICK },
        { status = 529, headers = QUICK }, { status = 529, headers = QUICK } })
      local r = call(args_for(ROUTES[3], base, { 'hi' }))
      assert.equal(1, r.code)
      assert.matches(": 529 Overloaded\n$", r.stderr)
      assert.equal(3, attempts(base, '/anthropic/'))
    end)

    it('fails fast when retry-after is past the cap (1 attempt)', function()
      fault('openai', { { status = 429, headers = { ['retry-after'] = '300' } } })
      local r = call(args_for(ROUTES[1], base, { 'hi' }))
      assert.equal(1, r.code)
      assert.matches(': 429 ', r.stderr)
      assert.equal(1, attempts(base, '/openai/'))
    end)

    it('never retries a quota 429 (1 attempt, code quota)', function()
      fault('openai', { { status = 429, error_type = 'insufficient_quota',
        body = { error = { type = 'insufficient_quota', code = 'insufficient_quota',
          message = 'You exceeded your current quota' } } } })
      local r = call(args_for(ROUTES[1], base, { 'hi' }))
      assert.equal(1, r.code)
      assert.matches('429 You exceeded your current quota\n$', r.stderr)
      assert.equal(1, attempts(base, '/openai/'))
    end)

    it('honours x-should-retry: false (1 attempt)', function()
      fault('vllm', { { status = 503, headers = { ['x-should-retry'] = 'false' } } })
      local r = call(args_for(ROUTES[4], base, { 'hi' }))
      assert.equal(1, r.code)
      assert.equal(1, attempts(base, '/vllm/'))
    end)

    it('retries a reset connection (2 attempts)', function()
      fault('sglang', { { reset = true } })
      local r = call(args_for(ROUTES[5], base, { 'hi' }))
      assert.equal(0, r.code, r.stderr)
      assert.equal(2, attempts(base, '/sglang/'))
    end)

    it('fails a truncated stream, without retrying it once text was printed', function()
      fault('anthropic', { { truncate_after_events = 5 } })
      local r = call(args_for(ROUTES[3], base, { '--stream', 'hi' }))
      assert.equal(1, r.code)
      assert.matches('stream', r.stderr)
      assert.equal(1, attempts(base, '/anthropic/'))
    end)

    it('turns a mid-stream error event into an error, code stream', function()
      fault('anthropic', { { error_after_events = 5, error_type = 'invalid_request_error', message = 'bad stream' } })
      local r = call(args_for(ROUTES[3], base, { '--stream', 'hi' }))
      assert.equal(1, r.code)
      assert.matches('aegis%-run: provider: anthropic stream error: ', r.stderr)
      assert.equal(1, attempts(base, '/anthropic/'))
    end)

    it('retries an overloaded error event that came before any text (2 attempts)', function()
      fault('anthropic', { { error_after_events = 1, status = 529 } })
      local r = call(args_for(ROUTES[3], base, { '--stream', 'hi' }))
      assert.equal(0, r.code, r.stderr)
      assert.equal(2, attempts(base, '/anthropic/'))
    end)

    it('refuses malformed JSON and JSON of the wrong types from every adapter, without retrying (B3)', function()
      for _, route in ipairs(ROUTES) do
        local prefix = route.path:match('^/[^/]+')
        fault(prefix:sub(2), { { malformed = true } })
        local r = call(args_for(route, base, { 'hi' }))
        assert.equal(1, r.code, route.name)
        assert.matches(': unreadable answer: not JSON\n$', r.stderr, 1, route.name)
        fault(prefix:sub(2), { { wrong_types = true } })
        r = call(args_for(route, base, { 'hi' }))
        assert.equal(1, r.code, route.name)
        assert.matches(": unreadable answer: [%w ]+\n$", r.stderr, 1, route.name)
      end
    end)

    it('reads past a 1 MB stream line of the wrong shape', function()
      for _, route in ipairs({ ROUTES[1], ROUTES[3], ROUTES[7] }) do
        control(base, 'POST', '/_emulator/faults/' .. route.path:match('^/([^/]+)'), { { long_line = 1048576 } })
        local r = call(args_for(route, base, { '--stream', 'hi' }))
        assert.equal(0, r.code, route.name .. ': ' .. r.stderr)
        assert.is_true(#r.stdout > 1 and #r.stdout < 1000, route.name)
      end
    end)

    it('aborts a trickling answer at the low-speed limit and retries it (F9)', function()
      fault('openai', { { trickle = 1.5 } })
      local provider = require('aegis.provider')
      local res, err = provider.call({
        provider = 'openai', model = 'gpt-5.4', base_url = base .. '/openai/v1',
        blocks = { { kind = 'task', stability = 'volatile', content = 'hi' } },
        getenv = function(n) return KEYS[n] end,
        timeout = { low_speed_bytes = 1, low_speed_seconds = 1 },
        retry = { sleep = function() end, breaker = false },
        on_warning = function() end,
      })
      assert.is_nil(err)
      assert.equal(2, res.attempts)
      assert.equal(2, attempts(base, '/openai/'))
      fault('openai', { { trickle = 1.5 }, { trickle = 1.5 }, { trickle = 1.5 } })
      res, err = provider.call({
        provider = 'openai', model = 'gpt-5.4', base_url = base .. '/openai/v1',
        blocks = { { kind = 'task', stability = 'volatile', content = 'hi' } },
        getenv = function(n) return KEYS[n] end,
        timeout = { low_speed_bytes = 1, low_speed_seconds = 1 },
        retry = { sleep = function() end, breaker = false },
        on_warning = function() end,
      })
      assert.is_nil(res)
      assert.equal('timeout', err.code)
      assert.equal(3, err.attempts)
    end)

    it('opens the breaker after 5 failures, refuses without sending, probes once after the cooldown (F10)', function()
      local provider = require('aegis.provider')
      local retry = require('aegis.retry')
      local now = 0
      local breaker = retry.breaker('call_spec F10 ' .. base,
        { threshold = 5, cooldown = 30, now = function() return now end })
      local function go()
        return provider.call({
          provider = 'vllm', model = 'm', base_url = base .. '/vllm',
          blocks = { { kind = 'task', stability = 'volatile', content = 'hi' } },
          retry = { sleep = function() end, breaker = breaker },
          on_warning = function() end,
        })
      end
      local five = {}
      for i = 1, 6 do five[i] = { status = 503, headers = QUICK } end
      fault('vllm', five)
      local _, e1 = go()           -- attempts 1-3 fail
      assert.equal('http_503', e1.code)
      local _, e2 = go()           -- attempts 4-5 fail: open
      assert.equal('circuit_open', e2.code)
      assert.equal(5, attempts(base, '/vllm/'))
      local _, e3 = go()           -- refused without a request
      assert.equal('circuit_open', e3.code)
      assert.equal(5, attempts(base, '/vllm/'))
      now = 31                     -- after the cooldown: one probe; the 6th fault fails it
      local _, e4 = go()
      assert.equal('circuit_open', e4.code)
      assert.equal(6, attempts(base, '/vllm/'))
      now = 62                     -- the next probe succeeds and closes it
      assert.is_not_nil(go())
      assert.equal(7, attempts(base, '/vllm/'))
      assert.equal('closed', breaker.state)
    end)

    it('refuses an answer past the byte cap', function()
      fault('llamacpp', { { oversize = 40 * 1024 * 1024 } })
      local r = call(args_for(ROUTES[7], base, { 'hi' }))
      assert.equal(1, r.code)
      assert.matches("^aegis%-run: provider: llamacpp POST '[^']+/llamacpp/completion': "
        .. 'response larger than 33554432 bytes\n$',
        r.stderr)
      assert.equal(1, attempts(base, '/llamacpp/'))
    end)
  end)

  it('runs a team adapter from AEGIS_PATH with its config (examples/custom_provider)', function()
    local dir = os.getenv('PWD') .. '/examples/custom_provider'
    local env = { TEAM_GATEWAY_KEY = 'gw-test-key', TEAM_GATEWAY_URL = base .. '/openai/v1', AEGIS_PATH = '.' }
    local r = h.run({ 'call', '--provider', 'gateway', '--model', 'gpt-5.4', '--json', 'hi' }, { cwd = dir, env = env })
    assert.equal(0, r.code, r.stderr)
    local out = json.decode(r.stdout)
    assert.equal('gateway', out.provider)
    assert.is_true(math.abs(out.cost - (out.usage.input * 2.5 + out.usage.output * 15) / 1e6) < 1e-12)
    assert.equal(1, attempts(base, '/openai/'))
    control(base, 'POST', '/_emulator/faults/openai', { { status = 429,
      body = { error = { code = 'budget_exhausted', message = 'team budget spent' } } } })
    r = h.run({ 'call', '--provider', 'gateway', '--model', 'gpt-5.4', 'hi' }, { cwd = dir, env = env })
    assert.equal(1, r.code)
    assert.matches('429 team budget spent\n$', r.stderr)
    assert.equal(2, attempts(base, '/openai/'))  -- the budget error was not retried
  end)

  describe('the API key', function()
    it('appears nowhere: stdout, stderr, store, emulator log', function()
      local canary = 'sk-' .. 'ant-api03-' .. ('A'):rep(40)
      local canary2 = 'sk-' .. 'proj-' .. ('B'):rep(24) .. 'T3Blbk' .. 'FJ' .. ('C'):rep(24)
      local logfile = h.tmpdir() .. '/emulator.log'
      local b2, stop2 = start_emulator({ '--log', logfile })
      local cwd = h.tmpdir()
      local function run(args)
        return h.run(args, { cwd = cwd, env = { ANTHROPIC_API_KEY = canary, ANTHROPIC_BASE_URL = b2 .. '/anthropic',
          AEGIS_DEBUG = '1' } })
      end
      local outputs = {}
      local ok, err = pcall(function()
        local r = run({ 'call', '--provider', 'anthropic', '--model', 'claude-sonnet-4-6', '--json', 'hi' })
        assert.equal(0, r.code, r.stderr)
        outputs[#outputs + 1] = r
        -- a provider that echoes the key it refused
        control(b2, 'POST', '/_emulator/faults/anthropic', { { status = 401,
          message = 'invalid x-api-key: ' .. canary } })
        r = run({ 'call', '--provider', 'anthropic', '--model', 'claude-sonnet-4-6', '--stream', 'hi' })
        assert.equal(1, r.code)
        assert.matches('invalid x%-api%-key: %[redacted%]', r.stderr)
        outputs[#outputs + 1] = r
        control(b2, 'POST', '/_emulator/faults/anthropic', { { status = 500, headers = { ['retry-after-ms'] = '1' } },
          { status = 500, headers = { ['retry-after-ms'] = '1' } }, { status = 500,
            headers = { ['retry-after-ms'] = '1' } } })
        outputs[#outputs + 1] = run({ 'call', '--provider', 'anthropic', '--model', 'claude-sonnet-4-6', 'hi' })
        control(b2, 'POST', '/_emulator/faults/openai', { { status = 401,
          message = 'Incorrect API key provided: ' .. canary2 } })
        r = h.run({ 'call', '--provider', 'openai', '--model', 'gpt-5.4', '--json', 'hi' }, { cwd = cwd,
          env = { OPENAI_API_KEY = canary2, OPENAI_BASE_URL = b2 .. '/openai/v1', AEGIS_DEBUG = '1' } })
        assert.equal(1, r.code)
        assert.matches('Incorrect API key provided: %[redacted%]', r.stderr)
        outputs[#outputs + 1] = r
        outputs[#outputs + 1] = { stdout = json.encode(control(b2, 'GET', '/_emulator/log')), stderr = '' }
      end)
      stop2()
      assert(ok, err)
      local b64 = 'c2stYW50LWFwaTAzLUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE'
      local function clean(where, text)
        assert.is_nil(text:find(canary, 1, true), where)
        assert.is_nil(text:find(b64, 1, true), where)
        assert.is_nil(text:find(('A'):rep(40), 1, true), where)
        assert.is_nil(text:find(canary2, 1, true), where)
        assert.is_nil(text:find('T3BlbkFJ', 1, true), where)
      end
      for i, r in ipairs(outputs) do
        clean('stdout ' .. i, r.stdout)
        clean('stderr ' .. i, r.stderr)
      end
      clean('emulator log file', h.read(logfile) or '')
      local p = io.popen('find ' .. h.shell_quote(cwd) .. ' -type f')
      for f in p:lines() do clean(f, h.read(f) or '') end
      p:close()
    end)
  end)
end)
