--- The determinism journal: every non-deterministic input a script reads
--- (clock, random seed, environment variables) passes through a runtime.
---
--- In 'record' mode the runtime reads the real world and appends each value
--- to its journal; in 'replay' mode it hands back the journaled values in
--- order, and a read that does not match the next entry is a divergence
--- (DESIGN.md §7). Entries are plain tables `{kind=, key=?, value=?}` that
--- encode as JSON as they are.
local errors = require('aegis.errors')

local M = {}

--- Environment variables a script may read when nothing else is configured.
M.default_env_allow = { 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'CI' }

-- Upper-case fragments of names that hold secrets: never shown to scripts,
-- whatever the allow-list says.
local secret_words = {
  'KEY', 'TOKEN', 'SECRET', 'PASSW', 'PASSPHRASE', 'CREDENTIAL', 'PRIVATE', 'AUTH', 'COOKIE', 'SESSION',
}

--- Tells whether an environment variable (name, and value when known) looks
--- like it holds a secret: a name containing KEY, TOKEN, SECRET, PASSWORD,
--- CREDENTIAL, PRIVATE, AUTH, COOKIE or SESSION, or a URL with a password.
---@param name string
---@param value? string
---@return boolean
function M.is_secret(name, value)
  local up = name:upper()
  for _, w in ipairs(secret_words) do
    if up:find(w, 1, true) then return true end
  end
  if value and value:find('^%a[%w+.-]*://[^/@]*:[^/@]*@') then return true end
  return false
end

---@class aegis.Runtime
---@field mode 'record'|'replay'
local Runtime = { __name = 'aegis.Runtime' }
Runtime.__index = Runtime

---@class aegis.runtime.Entry
---@field kind 'time'|'clock'|'getenv'|'seed'
---@field key? string Variable name, for 'getenv'
---@field value? any The value read (absent for an unset variable)

local function describe(kind, key)
  if key ~= nil then return ("%s '%s'"):format(kind, key) end
  return kind
end

local function diverged(pos, expected, kind, key)
  error(errors.new('replay', ('runtime: replay diverged at entry %d: expected %s, got %s'):format(
    pos, expected, describe(kind, key))), 3)
end

-- The value of the next input: read live and journaled (record), or taken
-- from the journal after checking its kind and key (replay).
local function input(self, kind, key, read)
  local pos = #self._entries + 1
  if self.mode == 'record' then
    local v = read()
    self._entries[pos] = { kind = kind, key = key, value = v }
    return v
  end
  local e = self._journal[pos]
  if e == nil then
    diverged(pos, 'end of journal', kind, key)
  end
  if e.kind ~= kind or e.key ~= key then
    diverged(pos, describe(e.kind, e.key), kind, key)
  end
  self._entries[pos] = e
  return e.value
end

--- Journals one input that a module reads for the run: `read()` is called
--- and its result journaled under (kind, key) when recording; when
--- replaying, the journaled value is returned after checking kind and key,
--- and `read` is not called. The value must be JSON-able (it is persisted).
---@param kind string What kind of input ('tool', 'file', ...)
---@param key string Identifies the input within its kind (e.g. a hash of the request)
---@param read fun(): any Reads the input live
---@return any value
function Runtime:record(kind, key, read)
  return input(self, kind, key, read)
end

--- Options of `runtime.new`.
---@class aegis.runtime.Opts
---@field mode? 'record'|'replay' Default 'record'
---@field entries? aegis.runtime.Entry[] The journal to replay (replay mode)
---@field seed? integer Seed for the random generator instead of a fresh one (record mode)
---@field env_allow? string[] Variables `getenv` may read; 'NAME_*' matches a prefix
---  (default `runtime.default_env_allow`)
---@field getenv? fun(name: string): string? Where record mode reads variables (default os.getenv)

--- Creates a runtime.
---@param opts? aegis.runtime.Opts
---@return aegis.Runtime
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= 'table' then error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ')', 2) end
  local mode = opts.mode or 'record'
  if mode ~= 'record' and mode ~= 'replay' then
    error(("bad argument #1 to 'new' (mode must be 'record' or 'replay', got '%s')"):format(tostring(mode)), 2)
  end
  if mode == 'replay' and type(opts.entries) ~= 'table' then
    error("bad argument #1 to 'new' (replay needs entries)", 2)
  end
  if opts.seed ~= nil and math.type(opts.seed) ~= 'integer' then
    error("bad argument #1 to 'new' (seed must be an integer)", 2)
  end
  local exact, prefixes = {}, {}
  for _, name in ipairs(opts.env_allow or M.default_env_allow) do
    if type(name) ~= 'string' then error("bad argument #1 to 'new' (env_allow must hold strings)", 2) end
    if name:sub(-1) == '*' then prefixes[#prefixes + 1] = name:sub(1, -2) else exact[name] = true end
  end
  return setmetatable({
    mode = mode,
    _entries = {},
    _journal = opts.entries,
    _seed = opts.seed,
    _state = nil,  -- xoshiro256** state once seeded
    _exact = exact,
    _prefixes = prefixes,
    _getenv = opts.getenv or os.getenv,
  }, Runtime)
end

--- The current time (os.time), journaled; with a table, converts it like
--- os.time(t) without journaling (that is deterministic given TZ).
---@param t? table
---@return integer
function Runtime:time(t)
  if t ~= nil then return os.time(t) end
  return input(self, 'time', nil, os.time)
end

--- CPU seconds used (os.clock), journaled.
---@return number
function Runtime:clock()
  return input(self, 'clock', nil, os.clock)
end

--- os.date(fmt, t); without `t`, formats `self:time()`, so the result is
--- reproducible given the journal (and TZ for local-time formats).
---@param fmt? string Default '%c'
---@param t? integer
---@return string|table
function Runtime:date(fmt, t)
  if fmt ~= nil and type(fmt) ~= 'string' then
    error("bad argument #1 to 'date' (string expected, got " .. type(fmt) .. ')', 2)
  end
  if t ~= nil and math.type(t) == nil then
    error("bad argument #2 to 'date' (number expected, got " .. type(t) .. ')', 2)
  end
  return os.date(fmt or '%c', t or self:time())
end

-- Whether scripts may read variable `name` (before looking at its value).
function Runtime:_allowed(name)
  if M.is_secret(name) then return false end
  if self._exact[name] then return true end
  for _, p in ipairs(self._prefixes) do
    if name:sub(1, #p) == p then return true end
  end
  return false
end

--- An environment variable on the allow-list, journaled; nil for a
--- variable that is unset, not allowed, or looks like a secret (those are
--- not journaled: they never reach the script).
---@param name string
---@return string?
function Runtime:getenv(name)
  if type(name) ~= 'string' then
    error("bad argument #1 to 'getenv' (string expected, got " .. type(name) .. ')', 2)
  end
  if not self:_allowed(name) then return nil end
  return input(self, 'getenv', name, function()
    local v = self._getenv(name)
    if v ~= nil and M.is_secret(name, v) then return nil end
    return v
  end)
end

-- {====================================================== xoshiro256**
-- The generator of Lua 5.4's math.random, so a seeded runtime draws the
-- same numbers math.random would after math.randomseed(seed).

local function rotl(x, n)
  return (x << n) | (x >> (64 - n))
end

local function nextrand(s)
  local s0, s1, s2, s3 = s[1], s[2], s[3] ~ s[1], s[4] ~ s[2]
  local res = rotl(s1 * 5, 7) * 9
  s[1] = s0 ~ s3
  s[2] = s1 ~ s2
  s[3] = s2 ~ (s1 << 17)
  s[4] = rotl(s3, 45)
  return res
end

local function setseed(self, n1, n2)
  local s = { n1, 0xff, n2, 0 }
  for _ = 1, 16 do nextrand(s) end  -- discard initial values to "spread" the seed
  self._state = s
end

-- Seeds from the journal (replay) or from a fresh seed, journaled once
-- (record). Seeds are below 2^53, so they survive any JSON reader.
local function ensure_seeded(self)
  if self._state then return end
  local seed = input(self, 'seed', nil, function()
    return self._seed or math.random(0, (1 << 53) - 1)
  end)
  setseed(self, seed, 0)
end

-- [0, n] from a random integer, without bias (Lua's 'project').
local function project(ran, n, s)
  if n & (n + 1) == 0 then return ran & n end
  local lim = n
  lim = lim | (lim >> 1); lim = lim | (lim >> 2); lim = lim | (lim >> 4)
  lim = lim | (lim >> 8); lim = lim | (lim >> 16); lim = lim | (lim >> 32)
  ran = ran & lim
  while math.ult(n, ran) do ran = nextrand(s) & lim end
  return ran
end

--- math.random from the runtime's own generator: `()` a float in [0,1),
--- `(m)` an integer in [1,m], `(m, n)` one in [m,n], `(0)` any integer.
--- The seed is journaled at the first draw, not each draw.
---@param m? integer
---@param n? integer
---@return number
function Runtime:random(m, n)
  ensure_seeded(self)
  local rv = nextrand(self._state)
  local low, up
  if m == nil and n == nil then
    return (rv >> 11) * 0x1p-53
  elseif n == nil then
    low, up = 1, math.tointeger(m)
    if up == nil then error("bad argument #1 to 'random' (number has no integer representation)", 2) end
    if up == 0 then return rv end
  else
    low, up = math.tointeger(m), math.tointeger(n)
    if low == nil then error("bad argument #1 to 'random' (number has no integer representation)", 2) end
    if up == nil then error("bad argument #2 to 'random' (number has no integer representation)", 2) end
  end
  if low > up then error(("bad argument #%d to 'random' (interval is empty)"):format(n == nil and 1 or 2), 2) end
  return project(rv, up - low, self._state) + low
end

--- math.randomseed: with `x`, reseeds deterministically (nothing is
--- journaled); without, draws a fresh seed and journals it.
---@param x? integer
---@return integer seed
function Runtime:randomseed(x)
  if x == nil then
    self._state = nil
    local seed = input(self, 'seed', nil, function() return math.random(0, (1 << 53) - 1) end)
    setseed(self, seed, 0)
    return seed
  end
  local n = math.tointeger(x)
  if n == nil then error("bad argument #1 to 'randomseed' (number has no integer representation)", 2) end
  setseed(self, n, 0)
  return n
end

-- }======================================================

--- The journal so far, in order (a new list; the entries are shared).
---@return aegis.runtime.Entry[]
function Runtime:entries()
  return table.move(self._entries, 1, #self._entries, 1, {})
end

--- In replay mode, whether every journal entry has been consumed.
---@return boolean
function Runtime:finished()
  if self.mode == 'record' then return true end
  return #self._entries == #self._journal
end

return M
