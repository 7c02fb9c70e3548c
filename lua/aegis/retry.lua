--- Retries for provider calls: full-jitter exponential backoff, waits the
--- server asks for (`retry-after-ms`, `retry-after`) up to a cap and a fast
--- failure beyond it, `x-should-retry`, no retry of quota or spend-limit
--- 429s, and a circuit breaker per endpoint. Shared by the adapters; every
--- source of time and chance is injectable so specs run instantly.
local clock = require('aegis.clock')
local core = require('aegis.core.http')
local json = require('aegis.json')

local M = {}

---@class aegis.retry.Policy
---@field max_retries integer Retries after the first attempt (default 2)
---@field base number Backoff base in seconds (default 0.5)
---@field cap number Backoff cap in seconds (default 8)
---@field max_wait number Longest server-requested wait honoured; longer ones fail fast (default 60)
---@field retry_after_jitter number Most jitter added to a server-requested wait (default 1)
---@field sleep fun(seconds: number) Default: a real sleep
---@field now fun(): number Monotonic seconds (default aegis.clock.monotonic)
---@field wall fun(): number Wall-clock seconds, for HTTP dates (default aegis.clock.now)
---@field random fun(lo: number, hi: number): number Uniform in [lo, hi] (default math.random)
---@field breaker? aegis.retry.Breaker Consulted before, and told after, every attempt
---@field budget? aegis.retry.Budget Shared cap on retries as a share of calls
---@field on_retry? fun(n: integer, wait: number, subject: table) Called before each wait

---@class aegis.retry.Verdict
---@field retryable boolean
---@field wait? number Seconds the server asked for
---@field reason? string Why: 'status', 'transport', 'quota', 'x-should-retry'

---@class aegis.retry.PolicyOpts Fields of aegis.retry.Policy, each optional

local Policy = {}
Policy.__index = Policy

local function uniform(lo, hi)
  return lo + math.random() * (hi - lo)
end

local function check(cond, fname, arg, msg)
  if not cond then error(("bad argument #%d to '%s' (%s)"):format(arg, fname, msg), 3) end
end

local function positive(v)
  return type(v) == 'number' and v == v and v >= 0 and v < math.huge
end

--- Makes a retry policy. Waits between attempts are full jitter,
--- `random(0, min(cap, base * 2^(n-1)))` before retry n, unless the server
--- asked for a wait: then `wait + random(0, min(retry_after_jitter,
--- base * 2^(n-1)))`, or no retry at all when the wait exceeds `max_wait`.
---@param opts? aegis.retry.PolicyOpts
---@return aegis.retry.Policy
function M.policy(opts)
  opts = opts or {}
  check(type(opts) == 'table', 'policy', 1, 'table expected')
  local p = setmetatable({
    max_retries = opts.max_retries or 2, base = opts.base or 0.5, cap = opts.cap or 8,
    max_wait = opts.max_wait or 60, retry_after_jitter = opts.retry_after_jitter or 1,
    sleep = opts.sleep or core.sleep, now = opts.now or clock.monotonic, wall = opts.wall or clock.now,
    random = opts.random or uniform, breaker = opts.breaker, budget = opts.budget,
    on_retry = opts.on_retry,
  }, Policy)
  check(math.type(p.max_retries) == 'integer' and p.max_retries >= 0, 'policy', 1,
    'max_retries must be a non-negative integer')
  for _, k in ipairs({ 'base', 'cap', 'max_wait', 'retry_after_jitter' }) do
    check(positive(p[k]), 'policy', 1, k .. ' must be a non-negative number')
  end
  for _, k in ipairs({ 'sleep', 'now', 'wall', 'random' }) do
    check(type(p[k]) == 'function', 'policy', 1, k .. ' must be a function')
  end
  check(p.on_retry == nil or type(p.on_retry) == 'function', 'policy', 1, 'on_retry must be a function')
  check(p.breaker == nil or getmetatable(p.breaker) == M._Breaker, 'policy', 1,
    'breaker must come from retry.breaker')
  check(p.budget == nil or getmetatable(p.budget) == M._Budget, 'policy', 1,
    'budget must come from retry.budget')
  return p
end

-- {==================================================================
-- Classification
-- ==================================================================

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
local function days(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
end

--- Parses an HTTP date (IMF-fixdate, RFC 850 or asctime form) into
--- seconds since the epoch, UTC.
---@param s string
---@return integer? seconds nil when `s` is not an HTTP date
function M.parse_http_date(s)
  local d, mon, y, hh, mm, ss = s:match('^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$')
  if not d then
    d, mon, y, hh, mm, ss = s:match('^%a+, (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$')
    if y then
      y = 1900 + tonumber(y)
      if y < 1970 then y = y + 100 end
    end
  end
  if not d then
    mon, d, hh, mm, ss, y = s:match('^%a%a%a (%a%a%a) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$')
  end
  local m = mon and MONTHS[mon]
  if not m then return nil end
  y, d, hh, mm, ss = tonumber(y), tonumber(d), tonumber(hh), tonumber(mm), tonumber(ss)
  if d < 1 or d > 31 or hh > 23 or mm > 59 or ss > 60 then return nil end
  return days(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss
end

--- Gets the wait a response asks for, in seconds: `retry-after-ms`, else
--- `retry-after` as seconds or as an HTTP date (relative to `wall`).
---@param headers table<string, string> Lower-case names
---@param wall? number Wall-clock now in seconds (default aegis.clock.now())
---@return number? seconds nil when neither header gives a wait
function M.retry_after(headers, wall)
  local ms = tonumber(headers['retry-after-ms'] or '')
  if ms and ms >= 0 and ms < math.huge then return ms / 1000 end
  local ra = headers['retry-after']
  if ra == nil then return nil end
  local s = tonumber(ra)
  if s then return (s >= 0 and s < math.huge) and s or nil end
  local at = M.parse_http_date(ra)
  if not at then return nil end
  return math.max(0, at - (wall or clock.now()))
end

-- Error types and codes of quota and spend limits: OpenAI answers 429 with
-- type or code `insufficient_quota` (and codes naming the limit); Anthropic
-- answers 429 `rate_limit_error` with details.error_code
-- `enforced_spend_limit_reached` when the monthly spend cap is hit.
local QUOTA = {
  insufficient_quota = true, billing_hard_limit_reached = true, credit_balance_exhausted = true,
  organization_spend_limit_exceeded = true, project_spend_limit_exceeded = true,
  enforced_spend_limit_reached = true,
}

--- Tells whether a response is a quota or spend-limit refusal, which no
--- retry can fix (OpenAI `insufficient_quota` and its spend-limit codes,
--- Anthropic `enforced_spend_limit_reached`).
---@param res {status: integer, body?: string}
---@return boolean
function M.is_quota(res)
  if res.status ~= 429 or type(res.body) ~= 'string' or res.body == '' then return false end
  local ok, doc = pcall(json.decode, res.body)
  if not ok or type(doc) ~= 'table' then return false end
  local e = doc.error
  if type(e) ~= 'table' then return false end
  if QUOTA[e.type] or QUOTA[e.code] then return true end
  return type(e.details) == 'table' and QUOTA[e.details.error_code] == true
end

--- Classifies one attempt's outcome for `run`: a response, or a transport
--- failure as `{err = msg, code = code}` (what `aegis.http.all` gives).
--- Retries transport `conn` and `timeout`, and statuses 408, 409, 429 and
--- 5xx (529 included), unless `x-should-retry: false` says not to or the
--- 429 is a quota or spend limit; `x-should-retry: true` retries any status.
---@param r table Response or {err=, code=}
---@param wall? number Wall-clock now for HTTP-date waits
---@return aegis.retry.Verdict
function M.classify_http(r, wall)
  if r.status == nil then
    return { retryable = r.code == 'conn' or r.code == 'timeout', reason = 'transport' }
  end
  local h = r.headers or {}
  local should = h['x-should-retry']
  if should == 'false' then return { retryable = false, reason = 'x-should-retry' } end
  if M.is_quota(r) then return { retryable = false, reason = 'quota' } end
  local s = r.status
  local retry = should == 'true' or s == 408 or s == 409 or s == 429 or (s >= 500 and s <= 599)
  if not retry then return { retryable = false, reason = 'status' } end
  return { retryable = true, wait = M.retry_after(h, wall),
           reason = should == 'true' and 'x-should-retry' or 'status' }
end

-- }==================================================================

--- Runs `attempt(n)` (n = 1, 2, ...) until `classify` calls its outcome
--- not retryable, the retries are spent, the server asks for a wait past
--- `max_wait`, the policy's budget has no retry left, or its breaker is
--- open. Gives back what the last
--- attempt returned (a response, or `nil, msg, code`), or
--- `nil, msg, 'circuit_open'` when the breaker refused the attempt.
---@param policy? aegis.retry.Policy From retry.policy (or its options)
---@param attempt fun(n: integer): any One try: a response, or nil, msg, code
---@param classify? fun(subject: table): aegis.retry.Verdict Default retry.classify_http
---@return any? result
---@return string? err
---@return string? code
function M.run(policy, attempt, classify)
  if getmetatable(policy) ~= Policy then policy = M.policy(policy) end
  check(type(attempt) == 'function', 'run', 2, 'function expected')
  classify = classify or function(s) return M.classify_http(s, policy.wall()) end
  check(type(classify) == 'function', 'run', 3, 'function expected')
  local br, budget = policy.breaker, policy.budget
  local n = 0
  if budget then budget:deposit() end
  while true do
    n = n + 1
    if br then
      local ok, msg = br:allow()
      if not ok then return nil, msg, 'circuit_open' end
    end
    local r = table.pack(attempt(n))
    local subject = r[1]
    if subject == nil then subject = { err = r[2], code = r[3] } end
    local v = classify(subject)
    if type(v) ~= 'table' then error('retry: classify must return a table', 2) end
    if br then
      if v.retryable then br:failure() else br:success() end
    end
    if not v.retryable or n > policy.max_retries then return table.unpack(r, 1, r.n) end
    if v.wait ~= nil and v.wait > policy.max_wait then return table.unpack(r, 1, r.n) end  -- fail fast
    if budget and not budget:withdraw() then return table.unpack(r, 1, r.n) end
    local backoff = math.min(policy.cap, policy.base * 2 ^ (n - 1))
    local wait
    if v.wait ~= nil then
      wait = v.wait + policy.random(0, math.min(policy.retry_after_jitter, backoff))
    else
      wait = policy.random(0, backoff)
    end
    if policy.on_retry then policy.on_retry(n, wait, subject) end
    policy.sleep(wait)
  end
end

-- {==================================================================
-- Circuit breakers
-- ==================================================================

---@class aegis.retry.Breaker
---@field key string
---@field state 'closed'|'open'|'half_open'
local Breaker = {}
Breaker.__index = Breaker
M._Breaker = Breaker

local breakers = {}

--- Gets the circuit breaker of an endpoint, made on first use with `opts`
--- (later calls return the same breaker and ignore `opts`). It opens after
--- `threshold` consecutive failures (default 5), refuses calls for
--- `cooldown` seconds (default 30), then lets one probe through: its
--- success closes the breaker, its failure opens it again. Keys name
--- endpoints (e.g. 'anthropic https://api.anthropic.com'): never put a key in one.
---@param key string
---@param opts? {threshold?: integer, cooldown?: number, now?: fun(): number}
---@return aegis.retry.Breaker
function M.breaker(key, opts)
  check(type(key) == 'string', 'breaker', 1, 'string expected')
  local b = breakers[key]
  if b then return b end
  opts = opts or {}
  check(type(opts) == 'table', 'breaker', 2, 'table expected')
  b = setmetatable({
    key = key, threshold = opts.threshold or 5, cooldown = opts.cooldown or 30,
    now = opts.now or clock.monotonic, state = 'closed', failures = 0, opened_at = nil,
  }, Breaker)
  check(math.type(b.threshold) == 'integer' and b.threshold >= 1, 'breaker', 2,
    'threshold must be a positive integer')
  check(positive(b.cooldown), 'breaker', 2, 'cooldown must be a non-negative number')
  check(type(b.now) == 'function', 'breaker', 2, 'now must be a function')
  breakers[key] = b
  return b
end

--- Tells whether a call may go ahead now. Open: no, until the cooldown has
--- passed; then the first caller becomes the half-open probe and the rest
--- are refused until the probe reports.
---@return boolean ok
---@return string? err "retry: circuit '<key>' is open" when refused
function Breaker:allow()
  if self.state == 'closed' then return true end
  if self.state == 'open' and self.now() - self.opened_at >= self.cooldown then
    self.state = 'half_open'
    return true
  end
  return false, ("retry: circuit '%s' is open"):format(self.key)
end

--- Reports a successful call: closes the breaker.
function Breaker:success()
  self.state = 'closed'
  self.failures = 0
end

--- Reports a failed call: opens the breaker after `threshold` in a row, or
--- at once when it was the half-open probe.
function Breaker:failure()
  self.failures = self.failures + 1
  if self.state == 'half_open' or self.failures >= self.threshold then
    self.state = 'open'
    self.opened_at = self.now()
  end
end

--- Closes the breaker and forgets its failures.
function Breaker:reset()
  self.state = 'closed'
  self.failures = 0
  self.opened_at = nil
end

-- }==================================================================

-- {==================================================================
-- Retry budgets
-- ==================================================================

---@class aegis.retry.Budget
---@field calls integer Calls counted so far
---@field retries integer Retries granted so far
local Budget = {}
Budget.__index = Budget
M._Budget = Budget

--- Makes a retry budget to share between the policies of many concurrent
--- calls (RELIABILITY.md L4): a retry is granted only while retries stay
--- within `min + ratio * calls`, so a sick endpoint gets at most `ratio`
--- more traffic, not `max_retries` times more. Defaults: ratio 0.2, min 10.
---@param opts? {ratio?: number, min?: integer}
---@return aegis.retry.Budget
function M.budget(opts)
  opts = opts or {}
  check(type(opts) == 'table', 'budget', 1, 'table expected')
  local b = setmetatable({ ratio = opts.ratio or 0.2, min = opts.min or 10, calls = 0, retries = 0 }, Budget)
  check(positive(b.ratio), 'budget', 1, 'ratio must be a non-negative number')
  check(math.type(b.min) == 'integer' and b.min >= 0, 'budget', 1, 'min must be a non-negative integer')
  return b
end

--- Counts one call (`run` does it once per call).
function Budget:deposit()
  self.calls = self.calls + 1
end

--- Takes one retry from the budget if there is one left.
---@return boolean granted
function Budget:withdraw()
  if self.retries + 1 > self.min + self.ratio * self.calls then return false end
  self.retries = self.retries + 1
  return true
end

-- }==================================================================

return M
