--- Faults of the provider emulator: their shape, their queues, the
--- one-shot request header, random faults for load tests, and how a fault
--- turns a reply into a response plan for aegis.core.httpd.
local common = require('aegis.emulator.common')

local M = {}

-- Keys a fault may have, and the type each takes.
local KEYS = {
  status = 'integer', headers = 'table', body = 'any', message = 'string', error_type = 'string',
  reset = 'boolean', reset_after_bytes = 'integer', trickle = 'number', delay = 'number',
  truncate_after_events = 'integer', error_after_events = 'integer', event_delay = 'number',
  ending = 'string', oversize = 'integer', malformed = 'boolean', long_line = 'integer', wrong_types = 'boolean',
}

--- Checks a fault description (a decoded JSON object) and returns a clean
--- copy, or nil and a message.
---@param f any
---@return table? fault
---@return string? err
function M.check(f)
  if type(f) ~= 'table' or common.is_array(f) then return nil, 'a fault must be a JSON object' end
  local out = {}
  for k, v in pairs(f) do
    local want = KEYS[k]
    if not want then return nil, ("unknown fault key '%s'"):format(tostring(k)) end
    local ok
    if want == 'any' then ok = true
    elseif want == 'integer' then ok = math.type(v) == 'integer' and v >= 0
    elseif want == 'number' then ok = (type(v) == 'number' and v >= 0 and v < 3600) or v == true
    else ok = type(v) == want end
    if not ok then
      return nil, ("fault key '%s' must be a %s"):format(k, want == 'number' and 'number of seconds' or want)
    end
    out[k] = v
  end
  if out.trickle == true then out.trickle = 1 end
  if out.delay == true then out.delay = 1 end
  if out.event_delay == true then out.event_delay = 1 end
  if out.status and (out.status < 100 or out.status > 599) then return nil, 'fault status must be 100..599' end
  if out.headers then
    for k, v in pairs(out.headers) do
      if type(k) ~= 'string' or type(v) ~= 'string' then return nil, 'fault headers must map strings to strings' end
    end
  end
  if out.ending and out.ending ~= 'close' and out.ending ~= 'reset' then
    return nil, "fault ending must be 'close' or 'reset'"
  end
  if next(out) == nil then return nil, 'a fault must say what to do' end
  return out
end

--- Parses the `x-emulator-fault` request header: a JSON object, or a short
--- form: `429`, `529`, `reset`, `reset:N` (after N bytes), `trickle`,
--- `truncate:N` (after N events), `error:N` (error event after N events),
--- `delay:S`, `oversize:N`, `malformed`, `long:N` (a line of N bytes), `wrong`
--- (fields of the wrong types).
---@param s string
---@return table? fault
---@return string? err
function M.parse_header(s)
  s = s:match('^%s*(.-)%s*$')
  if s:sub(1, 1) == '{' then
    local v, err = common.decode(s)
    if v == nil then return nil, err end
    return M.check(v)
  end
  local word, arg = s:match('^(%a+):([%d.]+)$')
  word = word or s
  local n = arg and tonumber(arg)
  if s:match('^%d%d%d$') then return M.check({ status = math.tointeger(tonumber(s)) }) end
  if word == 'reset' then return M.check(n and { reset_after_bytes = math.tointeger(n) } or { reset = true }) end
  if word == 'trickle' then return M.check({ trickle = n or 1 }) end
  if word == 'truncate' then return M.check({ truncate_after_events = math.tointeger(n or 1) }) end
  if word == 'error' then return M.check({ error_after_events = math.tointeger(n or 1) }) end
  if word == 'delay' then return M.check({ delay = n or 1 }) end
  if word == 'oversize' then return M.check({ oversize = math.tointeger(n or 104857600) }) end
  if word == 'malformed' then return M.check({ malformed = true }) end
  if word == 'long' then return M.check({ long_line = math.tointeger(n or 1048576) }) end
  if word == 'wrong' then return M.check({ wrong_types = true }) end
  return nil, ("unknown fault '%s'"):format(s)
end

--- A short description of a fault for the request log ("status:429",
--- "reset", "trickle", "truncate_after_events:3", ...).
---@param f table?
---@return string?
function M.describe(f)
  if f == nil then return nil end
  local parts = {}
  for _, k in ipairs({ 'status', 'reset', 'reset_after_bytes', 'trickle', 'delay', 'truncate_after_events',
    'error_after_events', 'event_delay', 'ending', 'oversize', 'malformed', 'long_line', 'wrong_types' }) do
    local v = f[k]
    if v == true then parts[#parts + 1] = k
    elseif v ~= nil then parts[#parts + 1] = k .. ':' .. tostring(v) end
  end
  return table.concat(parts, ',')
end

--- Parses `--fault-rate` ("429:0.2,529:0.05,reset:0.01") into a list of
--- {kind, p}; raises a message string on a bad spec.
---@param spec string
---@return {kind: string, p: number}[]
function M.parse_rates(spec)
  local rates, total = {}, 0
  for item in spec:gmatch('[^,]+') do
    local kind, p = item:match('^%s*(%w+)%s*:%s*([%d.]+)%s*$')
    p = tonumber(p)
    if not kind or not p or p < 0 or p > 1 then
      error(("bad fault rate '%s' (want KIND:P, P in 0..1)"):format(item), 0)
    end
    if not (kind:match('^%d%d%d$') or kind == 'reset' or kind == 'trickle') then
      error(("bad fault kind '%s' (a status like 429, or reset)"):format(kind), 0)
    end
    total = total + p
    rates[#rates + 1] = { kind = kind, p = p }
  end
  if total > 1 then error('fault rates add up to more than 1', 0) end
  return rates
end

--- A deterministic generator of floats in [0, 1) (xorshift64*), seeded.
---@param seed integer
---@return fun(): number
function M.random(seed)
  local x = (seed ~ 0x9E3779B97F4A7C15)
  if x == 0 then x = 1 end
  return function()
    x = x ~ (x >> 12)
    x = x ~ (x << 25)
    x = x ~ (x >> 27)
    local r = (x * 0x2545F4914F6CDD1D) >> 11
    return r / 9007199254740992.0
  end
end

--- Draws a random fault from `rates` with `rand`, or nil.
---@param rates {kind: string, p: number}[]
---@param rand fun(): number
---@return table?
function M.draw(rates, rand)
  local u, acc = rand(), 0
  for _, r in ipairs(rates) do
    acc = acc + r.p
    if u < acc then
      if r.kind == 'reset' then return { reset = true } end
      if r.kind == 'trickle' then return { trickle = 1 } end
      return { status = math.tointeger(tonumber(r.kind)) }
    end
  end
  return nil
end

-- Chunks of exactly `n` bytes of 'a', in 64 KiB blocks.
local function padding(n)
  local block = string.rep('a', 65536)
  return { data = block, rep = n // #block }, { data = string.rep('a', n % #block) }
end

-- A body of about `n` bytes that is not valid JSON (it never closes).
local function oversize_plan(n)
  local block = string.rep('a', 65536)
  return {
    status = 200,
    headers = { ['content-type'] = 'application/json' },
    chunks = { { data = '{"padding":"' }, { data = block, rep = math.max(1, n // #block) } },
    chunked = false,  -- with a Content-Length, as a big reply usually comes
  }
end

--- Turns a provider's reply into a response plan, applying a fault's
--- modifiers. `reply` is `{status, headers, body}` or a stream
--- `{status, headers, events = {sse...}, error_event = fn(fault) -> sse}`.
---@param reply table
---@param f table? The fault
---@return table plan
function M.plan(reply, f)
  f = f or {}
  if f.oversize then return oversize_plan(f.oversize) end
  if f.malformed then
    return { status = 200, headers = { ['content-type'] = 'application/json' }, body = '{"id": "x", "choices": [{' }
  end
  if f.wrong_types then
    -- valid JSON where every field a client reads has the wrong type
    return { status = 200, headers = { ['content-type'] = 'application/json' },
             body = '{"id":1,"type":2,"object":3,"choices":"none","content":4,"text":5,"usage":"n/a",'
               .. '"meta_info":[],"timings":"x","output":{}}\n' }
  end
  if f.long_line and not reply.events then
    -- one line of that many bytes: valid JSON of the wrong shape
    local a, b = padding(math.max(0, f.long_line - 14))
    return { status = 200, headers = { ['content-type'] = 'application/json' },
             chunks = { { data = '{"padding":"' }, a, b, { data = '"}' } }, chunked = false }
  end
  local plan = { status = reply.status or 200, headers = reply.headers or {} }
  if reply.events then
    local events = reply.events
    local n = #events
    local chunks = {}
    local cut = f.truncate_after_events or f.error_after_events
    if cut and cut < n then n = cut end
    for i = 1, n do
      chunks[#chunks + 1] = { data = events[i], delay = i > 1 and f.event_delay or nil }
      if i == 1 and f.long_line then  -- a single SSE data line of that many bytes, after the first event
        local a, b = padding(math.max(0, f.long_line - 20))
        chunks[#chunks + 1] = { data = 'data: {"padding":"' }
        chunks[#chunks + 1] = a
        chunks[#chunks + 1] = b
        chunks[#chunks + 1] = { data = '"}\n\n' }
      end
    end
    if f.error_after_events and reply.error_event then
      chunks[#chunks + 1] = { data = reply.error_event(f), delay = f.event_delay }
    end
    plan.chunks = chunks
  else
    plan.body = reply.body
    if f.truncate_after_events then
      -- a plain reply has no events: cut the body in half and close
      plan.body = reply.body:sub(1, #reply.body // 2)
      plan.chunks = { { data = plan.body } }
      plan.body = nil
      plan.ending = f.ending or 'close'
    end
  end
  if f.ending then plan.ending = f.ending end
  plan.trickle = f.trickle
  plan.delay = f.delay
  plan.reset_after = f.reset_after_bytes
  return plan
end

return M
