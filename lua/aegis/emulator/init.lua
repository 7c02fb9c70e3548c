--- The provider emulator: one local HTTP server that speaks the wire formats
--- of OpenAI, Anthropic, vLLM, SGLang and llama.cpp under a prefix each,
--- with deterministic replies, simulated prefix caches, fault injection and
--- a request log. `aegis-run emulate` runs it; docs/emulator.md describes
--- the routes, the control API and the accounting.
---
--- Nothing here writes a header value anywhere: auth headers are checked
--- for presence only, and the log records that presence as a boolean.
local clock = require('aegis.clock')
local common = require('aegis.emulator.common')
local faults = require('aegis.emulator.faults')
local hash = require('aegis.hash')
local json = require('aegis.json')

local M = {}

--- Route prefixes and the modules that serve them.
M.PROVIDERS = {
  openai = 'aegis.emulator.openai',
  anthropic = 'aegis.emulator.anthropic',
  vllm = 'aegis.emulator.openai',
  sglang = 'aegis.emulator.sglang',
  llamacpp = 'aegis.emulator.llamacpp',
}

--- Every provider route, as `/<prefix><path>`.
M.ROUTES = {
  '/openai/v1/chat/completions', '/openai/v1/responses',
  '/anthropic/v1/messages',
  '/vllm/v1/chat/completions',
  '/sglang/v1/chat/completions', '/sglang/generate',
  '/llamacpp/completion', '/llamacpp/v1/chat/completions',
}

local ROUTE_SET = {}
for _, r in ipairs(M.ROUTES) do ROUTE_SET[r] = true end

--- Options of `emulator.new`.
---@class aegis.emulator.Opts
---@field report_cached? boolean vLLM/SGLang report cached tokens (as with their cache-report flags)
---@field rules? table[] Scripted rules (see docs/emulator.md)
---@field fault_rates? {kind: string, p: number}[] Random faults (`faults.parse_rates`)
---@field seed? integer Seed of the random faults (default 1)
---@field log_file? file* Where each log entry is also written, one JSON line each
---@field slots? integer llama.cpp slots (default 4)

--- Creates an emulator state: caches, fault queues and the request log.
---@param opts? aegis.emulator.Opts
---@return table em
function M.new(opts)
  opts = opts or {}
  local em = {
    report_cached = opts.report_cached == true,
    rules = opts.rules or {},
    fault_rates = opts.fault_rates,
    rand = faults.random(opts.seed or 1),
    log_file = opts.log_file,
    slots = opts.slots or 4,
    queues = {},
    log = {},
    seq = 0,
    offset = 0,  -- seconds added to the clock (POST /_emulator/clock)
    caches = {},
  }
  return em
end

--- Emulated wall-clock time: the real one plus the offset set through
--- the control API (so cache TTLs can be tested without waiting).
---@param em table
---@return number
function M.now(em)
  return clock.now() + em.offset
end

--- The state a provider module keeps in `em` under `name` (created empty).
---@param em table
---@param name string
---@return table
function M.cache(em, name)
  local c = em.caches[name]
  if not c then
    c = {}
    em.caches[name] = c
  end
  return c
end

local JSON_HEADERS = { ['content-type'] = 'application/json' }

local function json_reply(status, v)
  return { status = status, headers = JSON_HEADERS, body = json.encode(v) .. '\n' }
end

local function header_present(req, name)
  local v = req.headers[name]
  return v ~= nil and v ~= ''
end

-- Appends a log entry (never a header value: only whether auth was sent).
local function log_request(em, req, route, info)
  em.seq = em.seq + 1
  local entry = {
    seq = em.seq,
    time = M.now(em),
    method = req.method,
    path = req.path,
    route = route or json.null,
    model = info.model or json.null,
    stream = info.stream == true,
    fault = faults.describe(info.fault) or json.null,
    status = info.status or json.null,
    auth = header_present(req, 'authorization') or header_present(req, 'x-api-key'),
    body_sha256 = req.body and hash.sha256(req.body) or json.null,
    bytes = req.body and #req.body or json.null,
  }
  em.log[#em.log + 1] = entry
  if em.log_file then
    em.log_file:write(json.encode(entry), '\n')
    em.log_file:flush()
  end
end

local function queue_for(em, route)
  local q = em.queues[route]
  if not q then
    q = {}
    em.queues[route] = q
  end
  return q
end

-- The control API under /_emulator/.
local function control(em, req)
  local path, method = req.path, req.method
  local function bad(msg) return json_reply(400, { error = msg }) end
  if path == '/_emulator/health' then
    return json_reply(200, { status = 'ok', routes = json.array(M.ROUTES) })
  elseif path == '/_emulator/log' then
    if method == 'GET' then return json_reply(200, json.array(em.log)) end
    if method == 'DELETE' then
      em.log = {}
      return json_reply(200, { cleared = true })
    end
  elseif path == '/_emulator/faults' or path:match('^/_emulator/faults/') then
    local route = path:match('^/_emulator/faults/([%w_]+)$') or '*'
    if route ~= '*' and not M.PROVIDERS[route] then return bad(("unknown route prefix '%s'"):format(route)) end
    if method == 'GET' then
      local out = {}
      for k, q in pairs(em.queues) do
        if #q > 0 then out[k] = json.array(q) end
      end
      return json_reply(200, out)
    elseif method == 'DELETE' then
      em.queues = {}
      return json_reply(200, { cleared = true })
    elseif method == 'POST' then
      local v, err = json.decode(req.body or '')
      if v == nil then return bad(err) end
      if not common.is_array(v) then v = { v } end
      local checked = {}
      for i, f in ipairs(v) do
        local c, why = faults.check(f)
        if not c then return bad(('fault %d: %s'):format(i, why)) end
        checked[i] = c
      end
      local q = queue_for(em, route)
      for _, c in ipairs(checked) do q[#q + 1] = c end
      return json_reply(200, { queued = #checked, route = route })
    end
  elseif path == '/_emulator/clock' and method == 'POST' then
    local v = json.decode(req.body or '')
    if type(v) ~= 'table' or type(v.advance) ~= 'number' or v.advance < 0 then
      return bad('want {"advance": seconds}')
    end
    em.offset = em.offset + v.advance
    return json_reply(200, { offset = em.offset })
  elseif path == '/_emulator/reset' and method == 'POST' then
    em.queues, em.log, em.caches, em.offset, em.seq = {}, {}, {}, 0, 0
    return json_reply(200, { reset = true })
  else
    return json_reply(404, { error = 'unknown control path' })
  end
  return json_reply(405, { error = 'method not allowed' })
end

-- The first scripted rule that matches, or nil.
local function match_rule(em, req, route, body)
  for _, rule in ipairs(em.rules) do
    local m = rule.match or {}
    local ok = (m.path == nil or m.path == req.path)
      and (m.route == nil or m.route == route)
      and (m.model == nil or (type(body) == 'table' and body.model == m.model))
      and (m.contains == nil or (req.body and req.body:find(m.contains, 1, true) ~= nil))
    if ok and (rule.times == nil or (rule.used or 0) < rule.times) then
      rule.used = (rule.used or 0) + 1
      return rule
    end
  end
  return nil
end

-- Picks the fault for this request: the header, the route's queue, the
-- global queue, a scripted rule, then the random rates.
local function pick_fault(em, req, route, rule)
  local h = req.headers['x-emulator-fault']
  if h then
    local f = faults.parse_header(h)
    -- the header's value is not echoed: it could be anything a client sent
    if not f then return nil, 'not a fault (see docs/emulator.md)' end
    return f
  end
  local q = em.queues[route]
  if q and #q > 0 then return table.remove(q, 1) end
  q = em.queues['*']
  if q and #q > 0 then return table.remove(q, 1) end
  if rule and rule.fault then return faults.check(rule.fault) end
  if em.fault_rates then return faults.draw(em.fault_rates, em.rand) end
  return nil
end

-- Canonical text of a request for the deterministic reply: the decoded
-- body without its streaming options, in RFC 8785 form, plus the path.
local function seed_of(path, body)
  local copy = {}
  if type(body) == 'table' and not common.is_array(body) then
    for k, v in pairs(body) do
      if k ~= 'stream' and k ~= 'stream_options' then copy[k] = v end
    end
  end
  local ok, text = pcall(json.canonical, copy)
  return path .. '\n' .. (ok and text or '')
end

--- Handles one request: returns the response plan for aegis.core.httpd.
---@param em table The emulator state from `new`
---@param req {method: string, path: string, headers: table<string, string>, body?: string, too_large?: boolean}
---@return table plan
function M.handle(em, req)
  local path = req.path
  if path:sub(1, 11) == '/_emulator/' then return control(em, req) end
  local route, rest = path:match('^/([%w_]+)(/.*)$')
  local modname = route and M.PROVIDERS[route]
  if not modname then
    log_request(em, req, nil, { status = 404 })
    return json_reply(404, { error = { message = ('no such route: %s'):format(path), type = 'not_found' } })
  end
  local P = require(modname)
  local info = {}
  local function done(plan)
    info.status = plan.status
    if plan.reset then info.status = nil end
    log_request(em, req, route, info)
    return plan
  end
  if not ROUTE_SET[path] then
    return done(P.error(em, route, 404, { message = ('Not found: %s'):format(rest) }))
  end
  if req.method ~= 'POST' then
    return done(P.error(em, route, 405, { message = ('Method %s not allowed'):format(req.method) }))
  end
  local pre = P.check_headers and P.check_headers(em, route, req)
  if pre then return done(pre) end
  if req.too_large then return done(P.error(em, route, 413, {})) end
  local body, err = json.decode(req.body or '')
  if body == nil or type(body) ~= 'table' or common.is_array(body) then
    return done(P.error(em, route, 400, { invalid_json = true, detail = err }))
  end
  info.model = type(body.model) == 'string' and body.model or nil
  info.stream = body.stream == true
  local rule = match_rule(em, req, route, body)
  local f, ferr = pick_fault(em, req, route, rule)
  if ferr then return done(json_reply(400, { error = 'x-emulator-fault: ' .. ferr })) end
  info.fault = f
  if f and f.reset then return done({ reset = true }) end
  if f and f.status then
    local plan = P.error(em, route, f.status, f)
    plan.delay = f.delay
    return done(plan)
  end
  if rule and rule.respond and (rule.respond.status or rule.respond.body) then
    local r = rule.respond
    local b = r.body
    if type(b) ~= 'string' then b = json.encode(b == nil and {} or b) end
    local headers = { ['content-type'] = 'application/json' }
    for k, v in pairs(r.headers or {}) do headers[k] = v end
    return done(faults.plan({ status = r.status or 200, headers = headers, body = b }, f))
  end
  local call = {
    route = route, path = rest, headers = req.headers, json = body, stream = body.stream == true,
    seed = seed_of(path, body), text = rule and rule.respond and rule.respond.text,
  }
  local reply = P.handle(em, call)
  return done(faults.plan(reply, f))
end

--- Loads scripted rules from a Lua file run in the sandbox; the file
--- returns a list of `{match = {path=, route=, model=, contains=},
--- respond = {text=} | {status=, headers=, body=}, fault = {...}, times=}`.
---@param path string
---@return table[]? rules
---@return string? err
function M.load_rules(path)
  local f, err = io.open(path, 'rb')
  if not f then return nil, ('emulate: script %s'):format(err) end
  local source = f:read('a')
  f:close()
  local sandbox = require('aegis.sandbox')
  local ok, rules = sandbox.run({ source = source, name = path })
  if not ok then return nil, ('emulate: script %s'):format(rules.msg or tostring(rules)) end
  if type(rules) ~= 'table' then return nil, ("emulate: script '%s' must return a list of rules"):format(path) end
  for i, rule in ipairs(rules) do
    if type(rule) ~= 'table' or (rule.respond == nil and rule.fault == nil) then
      return nil, ("emulate: script '%s': rule %d needs respond or fault"):format(path, i)
    end
    if rule.fault then
      local _, why = faults.check(rule.fault)
      if why then return nil, ("emulate: script '%s': rule %d: %s"):format(path, i, why) end
    end
  end
  return rules
end

--- Starts the emulator on `host`:`port` (0 picks a free port). Returns the
--- server (`server:port()`, `server:run{signals = true}`, `server:close()`)
--- and the state, or nil, msg, code.
---@param host string An IP address
---@param port integer
---@param em table From `new`
---@return table? server
---@return string|table em_or_err
---@return string? code
function M.listen(host, port, em)
  local httpd = require('aegis.core.httpd')
  local server, err, code = httpd.listen(host, port, function(req) return M.handle(em, req) end, 32 * 1024 * 1024)
  if not server then return nil, err, code end
  return server, em
end

return M
