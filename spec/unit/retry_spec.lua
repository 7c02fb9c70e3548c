local support = require('spec.support.http_server')
local http = require('aegis.http')
local retry = require('aegis.retry')

-- A policy on a fake clock: sleeps only advance `t`, random gives the top
-- of its range (or what `pick` says), and every wait is recorded.
local function fake(opts)
  local f = { t = 0, waits = {} }
  opts = opts or {}
  opts.sleep = function(s) f.waits[#f.waits + 1] = s; f.t = f.t + s end
  opts.now = function() return f.t end
  opts.wall = function() return 1000000 + f.t end
  opts.random = opts.random or function(_, hi) return hi end
  f.policy = retry.policy(opts)
  return f
end

local function response(status, headers, body)
  return { status = status, headers = headers or {}, body = body or '' }
end

-- An attempt function that answers from `script` in turn and counts calls.
local function scripted(script)
  local a = { n = 0 }
  a.fn = function(n)
    a.n = n
    local s = script[math.min(n, #script)]
    if s.err then return nil, s.err, s.code end
    return s
  end
  return a
end

describe('aegis.retry', function()
  describe('classify_http', function()
    local c = retry.classify_http
    it('retries 408, 409, 429, 5xx and 529, and transport conn and timeout', function()
      for _, s in ipairs({ 408, 409, 429, 500, 502, 503, 504, 529 }) do
        assert.is_true(c(response(s)).retryable, s)
      end
      assert.is_true(c({ err = 'x', code = 'conn' }).retryable)
      assert.is_true(c({ err = 'x', code = 'timeout' }).retryable)
    end)

    it('never retries other 4xx, successes, or other transport failures', function()
      for _, s in ipairs({ 200, 201, 301, 400, 401, 403, 404, 413, 422 }) do
        assert.is_false(c(response(s)).retryable, s)
      end
      for _, code in ipairs({ 'tls', 'too_large', 'aborted', 'truncated', 'redirect', 'proto' }) do
        assert.is_false(c({ err = 'x', code = code }).retryable, code)
      end
    end)

    it('never retries a quota or spend-limit 429 (OpenAI and Anthropic forms)', function()
      local bodies = {
        '{"error":{"message":"You exceeded your current quota","type":"insufficient_quota",'
          .. '"param":null,"code":"insufficient_quota"}}',
        '{"error":{"type":"insufficient_quota","code":"project_spend_limit_exceeded"}}',
        '{"error":{"type":"requests","code":"credit_balance_exhausted"}}',
        '{"type":"error","error":{"type":"rate_limit_error","message":"spend cap",'
          .. '"details":{"error_code":"enforced_spend_limit_reached"}}}',
      }
      for _, b in ipairs(bodies) do
        local v = c(response(429, { ['x-should-retry'] = 'true' }, b))
        assert.is_false(v.retryable, b)
        assert.equal('quota', v.reason)
      end
      -- an ordinary rate limit is retried; a body that is not JSON too
      assert.is_true(c(response(429, {}, '{"error":{"type":"rate_limit_error","message":"slow down"}}')).retryable)
      assert.is_true(c(response(429, {}, 'not json')).retryable)
    end)

    it('honours x-should-retry both ways', function()
      assert.is_false(c(response(503, { ['x-should-retry'] = 'false' })).retryable)
      local v = c(response(400, { ['x-should-retry'] = 'true' }))
      assert.is_true(v.retryable)
      assert.equal('x-should-retry', v.reason)
    end)

    it('reads retry-after-ms, then retry-after as seconds or an HTTP date', function()
      assert.equal(0.25, c(response(429, { ['retry-after-ms'] = '250', ['retry-after'] = '9' })).wait)
      assert.equal(2, c(response(429, { ['retry-after'] = '2' })).wait)
      assert.equal(1.5, c(response(503, { ['retry-after'] = '1.5' })).wait)
      local wall = retry.parse_http_date('Sun, 06 Nov 1994 08:49:37 GMT')
      assert.equal(784111777, wall)
      assert.equal(30, c(response(503, { ['retry-after'] = 'Sun, 06 Nov 1994 08:50:07 GMT' }), wall).wait)
      assert.equal(0, c(response(503, { ['retry-after'] = 'Sun, 06 Nov 1994 08:00:00 GMT' }), wall).wait)
      assert.equal(wall, retry.parse_http_date('Sunday, 06-Nov-94 08:49:37 GMT'))
      assert.equal(wall, retry.parse_http_date('Sun Nov  6 08:49:37 1994'))
      assert.is_nil(c(response(503, { ['retry-after'] = 'soon' })).wait)
      assert.is_nil(c(response(503, { ['retry-after'] = '-3' })).wait)
    end)
  end)

  describe('run (F9, exact attempt counts on a fake clock)', function()
    it('waits what a 429 asks (2 s -> 2 to 3 s) and then succeeds', function()
      local f = fake()
      local a = scripted({ response(429, { ['retry-after'] = '2' }), response(200) })
      local res = retry.run(f.policy, a.fn)
      assert.equal(200, res.status)
      assert.equal(2, a.n)
      assert.equal(1, #f.waits)
      assert.is_true(f.waits[1] >= 2 and f.waits[1] <= 3, f.waits[1])
      assert.equal(2.5, f.waits[1])  -- 2 + min(1, 0.5): the top of the jitter
      f = fake({ random = function(lo) return lo end })
      a = scripted({ response(429, { ['retry-after'] = '2' }), response(200) })
      retry.run(f.policy, a.fn)
      assert.same({ 2 }, f.waits)
    end)

    it('fails fast when the wait asked for is past max_wait (300 s)', function()
      local f = fake()
      local a = scripted({ response(429, { ['retry-after'] = '300' }), response(200) })
      local res = retry.run(f.policy, a.fn)
      assert.equal(429, res.status)
      assert.equal(1, a.n)
      assert.same({}, f.waits)
    end)

    it('retries 5xx, 529 and resets at most twice, full jitter up to 0.5 then 1 s', function()
      for _, s in ipairs({ response(500), response(529), { err = 'reset', code = 'conn' } }) do
        local f = fake()
        local a = scripted({ s })
        local r1, r2, r3 = retry.run(f.policy, a.fn)
        assert.equal(3, a.n)
        assert.same({ 0.5, 1 }, f.waits)
        if s.err then assert.same({ nil, 'reset', 'conn' }, { r1, r2, r3 }) else assert.equal(s.status, r1.status) end
      end
      local f = fake({ random = function(lo) return lo end })
      retry.run(f.policy, scripted({ response(503) }).fn)
      assert.same({ 0, 0 }, f.waits)
    end)

    it('caps the backoff and honours max_retries', function()
      local f = fake({ max_retries = 6, base = 1, cap = 4 })
      local a = scripted({ response(502) })
      retry.run(f.policy, a.fn)
      assert.equal(7, a.n)
      assert.same({ 1, 2, 4, 4, 4, 4 }, f.waits)
      f = fake({ max_retries = 0 })
      a = scripted({ response(502) })
      retry.run(f.policy, a.fn)
      assert.equal(1, a.n)
    end)

    it('does not retry 4xx or a quota 429', function()
      for _, r in ipairs({ response(400), response(401), response(404),
                           response(429, {}, '{"error":{"type":"insufficient_quota"}}') }) do
        local f = fake()
        local a = scripted({ r, response(200) })
        assert.equal(r.status, retry.run(f.policy, a.fn).status)
        assert.equal(1, a.n)
        assert.same({}, f.waits)
      end
    end)

    it('takes a custom classifier, and raises on misuse', function()
      local f = fake()
      local a = scripted({ response(200, {}, 'retry me'), response(200, {}, 'done') })
      local res = retry.run(f.policy, a.fn, function(r) return { retryable = r.body == 'retry me', wait = 0.1 } end)
      assert.equal('done', res.body)
      assert.same({ 0.6 }, f.waits)  -- 0.1 asked + min(1, 0.5) jitter at its top
      assert.error_matches(function() retry.run(f.policy, 'x') end, "bad argument #2 to 'run'")
      assert.error_matches(function() retry.run(f.policy, a.fn, function() return true end) end,
        'classify must return a table')
      assert.error_matches(function() retry.policy({ max_retries = -1 }) end,
        "bad argument #1 to 'policy' %(max_retries must be a non%-negative integer%)")
      assert.error_matches(function() retry.policy({ sleep = 1 }) end, 'sleep must be a function')
      assert.error_matches(function() retry.policy({ breaker = {} }) end, 'breaker must come from retry.breaker')
    end)

    it('calls on_retry before each wait', function()
      local seen = {}
      local f = fake({ on_retry = function(n, wait, subject) seen[#seen + 1] = { n, wait, subject.status } end })
      retry.run(f.policy, scripted({ response(503) }).fn)
      assert.same({ { 1, 0.5, 503 }, { 2, 1, 503 } }, seen)
    end)
  end)

  describe('budget (L4)', function()
    it('keeps retries within min + ratio * calls across the calls that share it', function()
      local budget = retry.budget({ ratio = 0.2, min = 0 })
      local f = fake({ budget = budget })
      local attempts = 0
      for i = 1, 64 do
        -- every fifth call meets a 529 on its first two attempts
        local a = scripted(i % 5 == 0 and { response(529), response(529), response(200) } or { response(200) })
        retry.run(f.policy, a.fn)
        attempts = attempts + a.n
      end
      assert.equal(64, budget.calls)
      assert.equal(12, budget.retries)  -- floor(0.2 * 64) = 12 of the 24 asked for
      assert.is_true(attempts <= 1.2 * 64, attempts)
    end)

    it('grants min retries before any ratio, and checks its options', function()
      local budget = retry.budget({ ratio = 0, min = 2 })
      local f = fake({ budget = budget })
      local a = scripted({ response(503) })
      retry.run(f.policy, a.fn)
      assert.equal(3, a.n)
      a = scripted({ response(503) })
      retry.run(f.policy, a.fn)
      assert.equal(1, a.n)  -- the budget is spent
      assert.error_matches(function() retry.budget({ min = -1 }) end, 'min must be a non%-negative integer')
      assert.error_matches(function() retry.policy({ budget = {} }) end, 'budget must come from retry.budget')
    end)
  end)

  describe('full jitter (L4)', function()
    it('spreads 64 first retries: at most 25 % inside any 50 ms window', function()
      math.randomseed(20261128)  -- the real generator, a fixed seed: no flakes
      local firsts = {}
      for i = 1, 64 do
        local f = {}
        local p = retry.policy({ sleep = function(s) f.wait = f.wait or s end })
        retry.run(p, scripted({ response(i % 2 == 0 and 429 or 529), response(200) }).fn)
        firsts[i] = f.wait
      end
      table.sort(firsts)
      local most = 0
      for i = 1, 64 do
        local j = i
        while j < 64 and firsts[j + 1] - firsts[i] < 0.05 do j = j + 1 end
        most = math.max(most, j - i + 1)
      end
      assert.is_true(most <= 16, most .. ' of 64 in one 50 ms window')
      assert.is_true(firsts[1] >= 0 and firsts[64] <= 0.5)
    end)
  end)

  describe('breaker (F10)', function()
    local n = 0
    local function key()
      n = n + 1
      return 'spec endpoint ' .. n
    end

    it('opens after 5 consecutive failures, fails fast for the cooldown, then lets one probe through', function()
      local t = 0
      local b = retry.breaker(key(), { now = function() return t end })
      assert.equal(b, retry.breaker(b.key))  -- one breaker per key
      for _ = 1, 4 do b:failure() end
      b:success()  -- consecutive: a success starts the count again
      for _ = 1, 4 do b:failure() end
      assert.equal('closed', b.state)
      b:failure()
      assert.equal('open', b.state)
      local ok, err = b:allow()
      assert.is_false(ok)
      assert.equal("retry: circuit '" .. b.key .. "' is open", err)
      t = 29.9
      assert.is_false((b:allow()))
      t = 30
      assert.is_true(b:allow())  -- the probe
      assert.equal('half_open', b.state)
      assert.is_false((b:allow()))  -- only one
      b:failure()  -- the probe failed: open again, a new cooldown
      assert.equal('open', b.state)
      t = 59
      assert.is_false((b:allow()))
      t = 60
      assert.is_true(b:allow())
      b:success()
      assert.equal('closed', b.state)
      assert.is_true(b:allow())
      assert.is_true(b:allow())
    end)

    it('makes run fail fast with code circuit_open, without calling or sleeping', function()
      local clock = require('aegis.clock')
      local f = fake()
      local b = retry.breaker(key(), { now = f.policy.now, threshold = 5, cooldown = 30 })
      local p = retry.policy({ sleep = f.policy.sleep, now = f.policy.now, random = f.policy.random, breaker = b })
      local a = scripted({ response(503) })
      retry.run(p, a.fn)  -- 3 failed attempts
      retry.run(p, a.fn)  -- 2 more open it; the third is refused
      assert.equal('open', b.state)
      local calls = a.n
      local waits = #f.waits
      local t0 = clock.monotonic()
      for _ = 1, 100 do
        local r, err, code = retry.run(p, a.fn)
        assert.same({ nil, "retry: circuit '" .. b.key .. "' is open", 'circuit_open' }, { r, err, code })
      end
      assert.is_true(clock.monotonic() - t0 < 1)  -- 100 refusals: far below 10 ms each
      assert.equal(calls, a.n)
      assert.equal(waits, #f.waits)
      f.t = f.t + 30
      local ok = scripted({ response(200) })
      assert.equal(200, retry.run(p, ok.fn).status)
      assert.equal('closed', b.state)
    end)

    it('does not count 4xx as failures', function()
      local b = retry.breaker(key())
      local p = retry.policy({ breaker = b, sleep = function() end })
      for _ = 1, 10 do retry.run(p, scripted({ response(400) }).fn) end
      assert.equal('closed', b.state)
    end)
  end)

  describe('against a server (attempts counted from its log)', function()
    local srv
    setup(function() srv = support.start() end)
    teardown(function() srv:stop() end)

    local function count(path, f, opts)
      srv:clear()
      -- libcurl itself sends a request again, once, when a reused connection
      -- dies before any byte of the answer (a stale keep-alive): start fresh
      -- so the first attempt cannot be one of those
      http.close()
      local r1, r2, r3 = retry.run(f.policy, function() return http.request(opts or { url = srv:url(path) }) end)
      return #srv:hits(path:match('^[^?]+')), r1, r2, r3
    end

    it('503: 3 attempts; 529: 3; reset: 3; 400: 1; quota 429: 1; 429 retry-after 300: 1', function()
      local f = fake()
      assert.equal(3, count('/status/503', f))
      assert.same({ 0.5, 1 }, f.waits)
      assert.equal(3, count('/status/529', fake()))
      local n, r1, _, code = count('/reset', fake())
      assert.same({ 3, nil, 'conn' }, { n, r1, code })
      assert.equal(1, count('/status/400', fake()))
      f = fake()
      n, r1 = count('/status/429?body=' .. '{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}', f)
      assert.same({ 1, 429 }, { n, r1.status })
      f = fake()
      assert.equal(1, count('/status/429?h=retry-after:300', f))
      assert.same({}, f.waits)
      f = fake()
      assert.equal(3, count('/status/429?h=retry-after-ms:1500&h=x-should-retry:true', f))
      assert.same({ 1.5 + 0.5, 2.5 }, f.waits)
    end)

    it('timeout: retried twice', function()
      local f = fake()
      local n, r1, _, code = count('/sleep?ms=2000', f, { url = srv:url('/sleep?ms=2000'), timeout = { total = 0.05 } })
      assert.same({ 3, nil, 'timeout' }, { n, r1, code })
    end)
  end)
end)
