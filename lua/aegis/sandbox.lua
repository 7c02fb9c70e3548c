--- The sandbox user scripts run in: pipelines, config files, later rulepacks
--- and provider adapters.
---
--- A script gets a fresh allow-listed environment (`sandbox.env`), is loaded
--- as text only, and runs under a budget of instructions, wall time and
--- memory (`sandbox.run`). Shared tables are read-only proxies; clock,
--- randomness and environment reads go through an `aegis.runtime` journal.
--- See docs/sandbox.md for what a script can use and the known limits.
local core = require('aegis.core.sandbox')
local errors = require('aegis.errors')
local runtime = require('aegis.runtime')

local debug_getinfo = debug.getinfo
local rawget, rawset, next, type, error = rawget, rawset, next, type, error
local tostring, setmetatable, getmetatable, pairs = tostring, setmetatable, getmetatable, pairs

local M = {}

local MiB = 1024 * 1024

--- Default budgets. `instructions` counts Lua VM instructions across every
--- coroutine of the run (0: no limit); `seconds` is wall time (0: none);
--- `memory` is bytes on top of what the host already uses (0: no cap).
---@type table<string, aegis.sandbox.Budget>
M.defaults = {
  script = { instructions = 10000000000, seconds = 0, memory = 1024 * MiB },
  config = { instructions = 10000000, seconds = 2, memory = 64 * MiB },
}

---@class aegis.sandbox.Budget
---@field instructions? integer VM instructions, 0 for no limit
---@field seconds? number Wall-clock seconds, 0 for no deadline
---@field memory? integer Bytes the run may allocate on top of current use, 0 for no cap

--- Names a script sees as globals, besides the libraries built per env.
local base_functions = {
  'pairs', 'ipairs', 'next', 'select', 'type', 'tostring', 'tonumber', 'error',
  'assert', 'pcall', 'xpcall', 'rawequal', 'rawlen', 'rawget', 'rawset', 'print',
}

-- {====================================================== read-only proxies

local function readonly_error(name)
  return function()
    error(("sandbox: cannot modify read-only table '%s'"):format(name), 2)
  end
end

-- A flat read-only view of `real`: reads go straight to it (fast path for
-- the standard libraries, whose values are functions and numbers).
local function flat_proxy(real, name)
  return setmetatable({}, {
    __index = real,
    __newindex = readonly_error(name),
    __len = function() return #real end,
    __pairs = function() return next, real, nil end,
    __metatable = false,
  })
end

-- A deep read-only view: tables read through it come back as read-only
-- views too (memoised in `cache`, one per environment), so no path from
-- `aegis` reaches a mutable host table. Keys that `hide` maps to true read
-- as nil; a key it maps to a table hides those keys one level down. A key in
-- `bound` reads as the view of `bound[k]()` instead (made on first read).
local function deep_proxy(real, name, cache, hide, bound)
  local p = cache[real]
  if p then return p end
  local function wrap(k, v)
    if type(v) == 'table' then
      local below = hide and hide[k]
      return deep_proxy(v, name .. '.' .. tostring(k), cache, type(below) == 'table' and below or nil)
    end
    return v
  end
  p = setmetatable({}, {
    __index = function(_, k)
      if hide and hide[k] == true then return nil end
      if bound and bound[k] then
        local v = bound[k]()
        bound[k] = function() return v end
        return wrap(k, v)
      end
      return wrap(k, real[k])
    end,
    __newindex = readonly_error(name),
    __len = function() return #real end,
    __pairs = function()
      local function iter(_, k)
        local nk, nv = next(real, k)
        while nk ~= nil and hide and hide[nk] == true do nk, nv = next(real, nk) end
        if nk == nil then return nil end
        return nk, wrap(nk, nv)
      end
      return iter, p, nil
    end,
    __metatable = false,
  })
  cache[real] = p
  return p
end

-- }======================================================

-- getmetatable/setmetatable for one environment. Scripts see only the
-- metatables they set themselves (host classes such as aegis.Error stay
-- out of reach), never the metatable of a non-table, and may not set
-- __gc: finalizers run with hooks off, so a __gc loop would escape the
-- budget.
local function metatable_functions()
  local own = setmetatable({}, { __mode = 'k' })
  local function sb_getmetatable(v)
    if type(v) ~= 'table' then return nil end
    local mt = getmetatable(v)  -- honours __metatable
    if type(mt) ~= 'table' or own[mt] then return mt end
    return nil
  end
  local function sb_setmetatable(t, mt)
    if type(t) ~= 'table' then
      error("bad argument #1 to 'setmetatable' (table expected, got " .. type(t) .. ')', 2)
    end
    local mtt = type(mt)
    if mtt ~= 'table' and mtt ~= 'nil' then
      error("bad argument #2 to 'setmetatable' (nil or table expected)", 2)
    end
    local old = getmetatable(t)
    if old ~= nil and (type(old) ~= 'table' or rawget(old, '__metatable') ~= nil) then
      error('cannot change a protected metatable', 2)
    end
    if mtt == 'table' then
      if rawget(mt, '__gc') ~= nil then
        error('sandbox: __gc metamethods are not allowed', 2)
      end
      own[mt] = true
    end
    setmetatable(t, mt)
    return t
  end
  return sb_getmetatable, sb_setmetatable
end

-- table.move in slices, so the hook runs between them: the stock one moves
-- any range inside one C call (table.move({}, 1, math.maxinteger - 1, 2)
-- would never return). Each element moved counts as an instruction.
local SLICE = 1 << 12
local charge = core.charge
local tmove = table.move
local function safe_move(a1, f0, e0, t0, a2)
  local f, e, t = math.tointeger(f0), math.tointeger(e0), math.tointeger(t0)
  if not (f and e and t) or e < f or e - f < SLICE or not (f > 0 or e < math.maxinteger + f)
      or t > math.maxinteger - (e - f) then
    return tmove(a1, f0, e0, t0, a2)  -- small, empty or invalid: the stock one (and its errors)
  end
  if a2 == nil then a2 = a1 end
  local n = e - f  -- last offset; no overflow, checked above
  if t > f and t <= e and a1 == a2 then  -- overlapping, forwards: copy from the end
    for i = n, 0, -SLICE do
      local j = i < SLICE and 0 or i - SLICE + 1
      charge(i - j + 1)
      tmove(a1, f + j, f + i, t + j, a2)
    end
  else
    for i = 0, n, SLICE do
      local j = n - i < SLICE and n or i + SLICE - 1
      charge(j - i + 1)
      tmove(a1, f + i, f + j, t + i, a2)
    end
  end
  return a2
end

-- When the budget runs out, the hook raises from inside a hook, so Lua
-- calls the message handler with hooks off, and a coroutine that dies of it
-- keeps hooks off for the __close metamethods that closing it would run.
-- These wrappers run no script code in those two places once the budget is
-- out (core.tripped()); otherwise they behave as the stock functions.
local coroutine_create, coroutine_resume, coroutine_close = coroutine.create, coroutine.resume, coroutine.close
local coroutine_status = coroutine.status
local tripped = core.tripped

local function sb_xpcall(f, handler, ...)
  if type(handler) ~= 'function' then
    error("bad argument #2 to 'xpcall' (function expected, got " .. type(handler) .. ')', 2)
  end
  return xpcall(f, function(m)
    if tripped() then return m end
    return handler(m)
  end, ...)
end

local function sb_close(co)
  if tripped() then return false, 'sandbox: budget exceeded' end
  return coroutine_close(co)
end

-- coroutine.wrap as the stock one (lcorolib.c auxwrap): a coroutine that
-- died of an error is closed (its __close handlers run, and one of them
-- may replace the error), and string errors get the caller's position.
local function sb_wrap(f)
  local co = coroutine_create(f)
  local function finish(ok, ...)
    if ok then return ... end
    local err = ...
    if coroutine_status(co) == 'dead' and not tripped() then
      local closed, cerr = coroutine_close(co)
      if not closed then err = cerr end
    end
    error(err, 2)
  end
  return function(...)
    return finish(coroutine_resume(co, ...))
  end
end

-- {====================================================== the cache as scripts see it

-- Options of a provider call that choose where it goes, which variable holds
-- its key or what carries it: a script that set them could send the user's
-- key anywhere. Scripts' calls go where the config and environment say.
local UNSAFE_CALL_OPTIONS = { 'base_url', 'api_key_env', 'getenv', 'http' }

-- Cache methods scripts may use: not `export`/`import` (files outside the
-- journal), and no fields (`db`).
local SCRIPT_CACHE_METHODS = {
  get = true, has = true, put = true, delete = true, call = true, call_all = true, stats = true, gc = true,
  verify = true, flush = true, close = true,
}

local function refuse_unsafe(opts, fname, what)
  if type(opts) ~= 'table' then return end
  for _, k in ipairs(UNSAFE_CALL_OPTIONS) do
    if opts[k] ~= nil then
      error(("bad argument #1 to '%s' (%soption '%s' is not available to scripts: the endpoint and the key "
        .. 'come from the configuration and the environment)'):format(fname, what or '', k), 3)
    end
  end
end

-- A view of an open cache: its methods, with provider calls checked.
local function cache_view(c)
  local view = {}
  local methods = {}
  for name in pairs(SCRIPT_CACHE_METHODS) do
    if c[name] then methods[name] = function(self, a, b)
      if self ~= view then error(("bad argument #1 to '%s' (a cache expected)"):format(name), 2) end
      if name == 'call' then
        refuse_unsafe(a, 'call')
      elseif name == 'call_all' then
        if type(a) == 'table' then
          for i, o in ipairs(a) do refuse_unsafe(o, 'call_all', ('request %d: '):format(i)) end
        end
        refuse_unsafe(b, 'call_all')
      end
      return c[name](c, a, b)
    end end
  end
  return setmetatable(view, {
    __index = function(_, k) return methods[k] end,
    __newindex = readonly_error('aegis.cache'),
    __close = function() c:close() end,
    __tostring = function() return tostring(c) end,
    __metatable = false,
  })
end

-- `aegis.cache` for scripts: the module, with `open` giving views.
local function script_cache()
  local cache = require('aegis.cache')
  local m = {}
  for k, v in pairs(cache) do m[k] = v end
  m.open = function(url, opts)
    local c, msg, code = cache.open(url, opts)
    if not c then return nil, msg, code end
    return cache_view(c)
  end
  return m
end

-- }======================================================

-- What scripts do not see of `aegis`. A script's clock, randomness and
-- environment already go through its run's runtime (os, math); one it made
-- itself would read variables around the allow-list and outside the journal.
-- Files are inputs too (DESIGN.md §7): `fs`, `path`, `config` and
-- `hash.sha256_file` would read them outside the journal, `schema.export`
-- writes them. `true` hides a module; a table hides those of its functions.
local hidden_modules = {
  config = true, fs = true, path = true, runtime = true,
  hash = { sha256_file = true },
  schema = { export = true },
}

--- Options of `sandbox.env`.
---@class aegis.sandbox.EnvOpts
---@field runtime? aegis.Runtime Journal for clock, random and environment reads (default: a new record-mode one)
---@field globals? table<string, any> Extra globals, writable by the script (`arg`, ...)
---@field aegis? boolean Whether the script sees the `aegis` table (default true)

--- Builds a fresh environment for one script.
---
--- Reading an undeclared global raises `sandbox: undefined global 'x'`.
--- The chunk's top level may declare globals (`function helper() end`);
--- functions may assign only globals that already exist; no one may assign
--- the built-in names.
---@param opts? aegis.sandbox.EnvOpts
---@return table env
function M.env(opts)
  opts = opts or {}
  if opts.runtime ~= nil and type(opts.runtime) ~= 'table' then
    error('bad argument #1 to \'env\' (runtime must be an aegis.runtime object)', 2)
  end
  if opts.globals ~= nil and type(opts.globals) ~= 'table' then
    error('bad argument #1 to \'env\' (globals must be a table)', 2)
  end
  local rt = opts.runtime or runtime.new({ mode = 'record' })
  local sb_getmetatable, sb_setmetatable = metatable_functions()

  local base = {}
  for _, name in ipairs(base_functions) do base[name] = _G[name] end
  base.getmetatable = sb_getmetatable
  base.setmetatable = sb_setmetatable
  base.string = flat_proxy(core.string, 'string')
  local tbl = {}
  for k, v in pairs(table) do tbl[k] = v end
  tbl.move = safe_move
  base.table = flat_proxy(tbl, 'table')
  local math_ = {}
  for k, v in pairs(math) do math_[k] = v end
  math_.random = function(...) return rt:random(...) end
  math_.randomseed = function(...) return rt:randomseed(...) end
  base.math = flat_proxy(math_, 'math')
  base.utf8 = flat_proxy(utf8, 'utf8')
  base.xpcall = sb_xpcall
  local co = {}
  for k, v in pairs(coroutine) do co[k] = v end
  co.wrap, co.close = sb_wrap, sb_close
  base.coroutine = flat_proxy(co, 'coroutine')
  base.os = flat_proxy({
    time = function(t) return rt:time(t) end,
    clock = function() return rt:clock() end,
    date = function(fmt, t) return rt:date(fmt, t) end,
    getenv = function(name) return rt:getenv(name) end,
  }, 'os')
  if opts.aegis ~= false then
    -- tools run through the script's journal, so a replay never runs them
    local bound = { trace = function() return require('aegis.trace').bind(rt) end, cache = script_cache }
    base.aegis = deep_proxy(require('aegis'), 'aegis', setmetatable({}, { __mode = 'k' }), hidden_modules, bound)
  end

  local env = {}
  for k, v in pairs(opts.globals or {}) do
    if type(k) ~= 'string' then
      error('bad argument #1 to \'env\' (globals must have string keys)', 2)
    end
    env[k] = v
  end
  local declared = {}  -- globals the chunk declared, even when now nil
  setmetatable(base, {
    __index = function(_, k)
      if declared[k] then return nil end
      error(("sandbox: undefined global '%s'"):format(tostring(k)), 2)
    end,
    __metatable = false,
  })
  return setmetatable(env, {
    __index = base,
    __newindex = function(t, k, v)
      if rawget(base, k) ~= nil then
        error(("sandbox: assignment to read-only global '%s'"):format(tostring(k)), 2)
      end
      local info = debug_getinfo(2, 'S')
      if not declared[k] and not (info and info.what == 'main') then
        error(("sandbox: assignment to undeclared global '%s'"):format(tostring(k)), 2)
      end
      declared[k] = true
      rawset(t, k, v)
    end,
    __metatable = false,
  })
end

-- The chunk name for `name`: "=..." and "@..." are kept, a path gets "@".
local function chunkname(name)
  local c = name:sub(1, 1)
  if c == '=' or c == '@' then return name end
  return '@' .. name
end

-- The name as messages show it ("x.lua", "(command line)").
local function display(name)
  local c = name:sub(1, 1)
  if c == '=' or c == '@' then return name:sub(2) end
  return name
end

-- A budget field: a non-negative number; instructions and memory are
-- integers (a float is rounded down).
local function budget_value(budget, key, default)
  local v = budget[key]
  if v == nil or v == false then return default end
  if type(v) ~= 'number' or v < 0 or v ~= v then
    error(("bad argument #1 to 'run' (budget.%s must be a non-negative number)"):format(key), 3)
  end
  if key ~= 'seconds' then
    v = math.tointeger(v) or (v < 0x1p63 and math.tointeger(math.floor(v)))
    if not v then error(("bad argument #1 to 'run' (budget.%s is too large)"):format(key), 3) end
  end
  return v
end

--- Options of `sandbox.run`.
---@class aegis.sandbox.RunOpts
---@field source string The script's text
---@field name string File name for messages ("pipeline.lua"); "=(command line)" for code given inline
---@field env? table Environment from `sandbox.env` (default: a new one)
---@field args? any[] Values the chunk receives as `...`
---@field budget? aegis.sandbox.Budget Limits (missing fields: `sandbox.defaults.script`)

--- Loads `source` as text and runs it in `env` under the budget.
---
--- Errors come back as `nil, err` with `err.code` one of 'syntax',
--- 'runtime', 'budget' or 'memory', `err.msg` one line naming file and
--- line (`pipeline.lua:3: boom`) and, for runtime errors, `err.traceback`.
--- An `aegis.errors` object raised by the script is kept as `err.cause`.
---@param opts aegis.sandbox.RunOpts
---@return true|nil ok
---@return any ... The chunk's results, or the error object
function M.run(opts)
  if type(opts) ~= 'table' then error("bad argument #1 to 'run' (table expected, got " .. type(opts) .. ')', 2) end
  local source, name = opts.source, opts.name
  if type(source) ~= 'string' then error("bad argument #1 to 'run' (source must be a string)", 2) end
  if type(name) ~= 'string' then error("bad argument #1 to 'run' (name must be a string)", 2) end
  local budget = opts.budget or {}
  if type(budget) ~= 'table' then error("bad argument #1 to 'run' (budget must be a table)", 2) end
  local d = M.defaults.script
  local instructions = budget_value(budget, 'instructions', d.instructions)
  local seconds = budget_value(budget, 'seconds', d.seconds)
  local memory = budget_value(budget, 'memory', d.memory)
  local env = opts.env or M.env()
  local args = opts.args or {}

  if source:byte(1) == 27 then  -- "\27Lua": precompiled
    return nil, errors.new('syntax', ("sandbox: '%s': binary chunks are not allowed"):format(display(name)))
  end
  local cname = chunkname(name)
  local fn, msg = load(source, cname, 't', env)
  if not fn then return nil, errors.new('syntax', msg) end

  local function results(ok, ...)
    if ok then return true, ... end
    local kind, emsg, traceback, value = ...
    if kind == 'memory' or (kind == 'budget' and not emsg:find('^[^:]+:%d+:')) then
      emsg = display(name) .. ': ' .. emsg
    end
    local fields = { traceback = traceback }
    if errors.is(value) then fields.cause = value end
    return nil, errors.new(kind, emsg, fields)
  end
  return results(core.call(instructions, seconds, memory, cname, fn, table.unpack(args, 1, args.n or #args)))
end

--- Instructions counted so far by the innermost budgeted run, or nil
--- outside one (for measurements and the run summary).
---@return integer?
function M.instructions()
  return core.instructions()
end

return M
