--- The project configuration: `aegis.config.lua`, a sandboxed Lua file that
--- returns a table.
---
--- ```lua
--- -- aegis.config.lua
--- return {
---   store = 'sqlite:.aegis/aegis.db',
---   sandbox = { instructions = 1e9, seconds = 60, memory_mb = 512 },
---   env_allow = { 'HOME', 'CI', 'MYAPP_*' },
--- }
--- ```
---
--- The file is looked for in the current directory, then each parent up to
--- the first directory holding `.git` (or the filesystem root). It runs in
--- the sandbox with a small budget and no `aegis` table. Keys are checked
--- strictly, so a typo is an error; a module adding a section declares it
--- with `config.declare`.
local errors = require('aegis.errors')
local fs = require('aegis.fs')
local runtime = require('aegis.runtime')
local sandbox = require('aegis.sandbox')

local M = {}

--- The file name looked for.
M.FILE = 'aegis.config.lua'

local MiB = 1024 * 1024
local script_budget = sandbox.defaults.script

-- aegis.schema is loaded only when a schema is needed: a config file to
-- check, a section declared, or the schemas asked for. Running a script
-- with no aegis.config.lua stays off that path (start-up, DESIGN.md §9).
local s
local sections  -- top-level name -> schema, once built

--- The data models of this module, for `aegis-run schema export`
--- (`schemas.config`, built on first use).
---@type table<string, aegis.schema.Schema>
M.schemas = {}

local function rebuild()
  local schema = s.object(sections, {
    name = 'config',
    description = 'aegis.config.lua: the table the project configuration file returns',
  })
  rawset(M.schemas, 'config', schema)
  s.register('config', schema)
end

-- The built-in sections. Their defaults are `defaults()`'s.
local function builtin()
  s = require('aegis.schema')
  sections = {
    store = s.string({ min = 1 }):optional()
      :describe('Store URL (sqlite:PATH or postgres://...); $AEGIS_STORE overrides it'),
    sandbox = s.object({
      instructions = s.integer({ min = 0 }):default(script_budget.instructions)
        :describe('Lua VM instructions a script may run, across its coroutines; 0: no limit'),
      seconds = s.number({ min = 0 }):default(script_budget.seconds)
        :describe('Wall-clock seconds a script may run; 0: no deadline'),
      memory_mb = s.integer({ min = 0, max = 1 << 30 }):default(script_budget.memory // MiB)
        :describe('MiB a script may allocate on top of what aegis-run uses; 0: no cap'),
    }):default({}):describe('Budget of pipeline scripts'),
    env_allow = s.array(s.string({ min = 1 })):default(runtime.default_env_allow)
      :describe("Environment variables scripts may read with os.getenv ('NAME_*' matches a prefix);"
        .. ' names that look like secrets are never readable'),
    paths = s.array(s.string({ min = 1 })):default({})
      :describe('Directories searched for providers/, rulepacks/ and pipelines/, before $AEGIS_PATH'),
  }
  rebuild()
end

local function ensure()
  if sections == nil then builtin() end
end

setmetatable(M.schemas, {
  __index = function(_, k)
    if k == 'config' then
      ensure()
      return rawget(M.schemas, 'config')
    end
  end,
})

-- What the built-in sections hold when a file sets nothing: the schema's
-- defaults, without loading the schema (a spec checks they agree).
local function defaults()
  local allow = {}
  for i, v in ipairs(runtime.default_env_allow) do allow[i] = v end
  return {
    sandbox = {
      instructions = script_budget.instructions,
      seconds = script_budget.seconds,
      memory_mb = script_budget.memory // MiB,
    },
    env_allow = allow,
    paths = {},
  }
end

--- Adds a top-level section to the configuration (for modules that have
--- settings: providers, prices, cache, ...). Declaring a name again
--- replaces its schema.
---@param section string Key in the config table
---@param schema aegis.schema.Schema Its schema; give it a default or make it optional
function M.declare(section, schema)
  if type(section) ~= 'string' or not section:find('^[%a_][%w_]*$') then
    error("bad argument #1 to 'declare' (section name expected)", 2)
  end
  ensure()
  if getmetatable(schema) ~= getmetatable(s.any()) then
    error("bad argument #2 to 'declare' (aegis.schema schema expected)", 2)
  end
  sections[section] = schema
  rebuild()
end

--- Removes a section declared with `declare` (for tests).
---@param section string
function M.undeclare(section)
  ensure()
  sections[section] = nil
  rebuild()
end

-- Whoever loaded aegis.schema before this module may be about to read its
-- registry (aegis-run schema export): register now.
if package.loaded['aegis.schema'] then ensure() end

-- {====================================================== finding the file

local function exists(path)
  return fs.exists(path) == true
end

local function parent(dir)
  if dir == '/' then return nil end
  local p = dir:match('^(.*)/[^/]*$')
  if p == nil or p == '' then return '/' end
  return p
end

local function join(dir, file)
  if dir == '/' then return '/' .. file end
  return dir .. '/' .. file
end

--- The nearest aegis.config.lua: in `dir` (default the current directory,
--- shown as a relative name) or the closest parent, stopping after the
--- first directory that holds `.git`, or at the root. Nil when there is none.
---@param dir? string Absolute directory to start from
---@return string? path
function M.find(dir)
  local d = dir
  if d == nil then
    if exists(M.FILE) then return M.FILE end
    if exists('.git') then return nil end
    d = fs.cwd()
    if d == nil then return nil end
    d = parent(d)
  else
    d = d:gsub('(.)/+$', '%1')
  end
  while d ~= nil do
    local p = join(d, M.FILE)
    if exists(p) then return p end
    if exists(join(d, '.git')) then return nil end
    d = parent(d)
  end
  return nil
end

-- }======================================================

-- A plain copy of what the config file returned: raw reads only (no
-- metamethod of the script's runs outside its budget), no metatables,
-- no cycles.
local function plain(v, where, path, seen)
  if type(v) ~= 'table' then return v end
  if seen[v] then errors.raise('config', '%s%s: a table may not contain itself', where, path) end
  seen[v] = true
  local t = {}
  for k, x in next, v do
    local kp = type(k) == 'string' and (path == '' and k or path .. '.' .. k) or ('%s[%s]'):format(path, tostring(k))
    t[k] = plain(x, where, kp, seen)
  end
  seen[v] = nil
  return t
end

-- One line for a schema error: "sandbox.seconds: expected number, got
-- string; stroe: unknown key (known keys: ...)".
local function schema_message(err)
  local parts = {}
  local known
  for i, issue in ipairs(err.issues or {}) do
    local path = issue.path:gsub('^config%.?', '')
    local msg = (path == '' and '' or path .. ': ') .. issue.message
    if issue.message == 'unknown key' and not path:find('[.%[]') then
      if not known then
        known = {}
        for k in pairs(sections) do known[#known + 1] = k end
        table.sort(known)
      end
      msg = msg .. ' (known keys: ' .. table.concat(known, ', ') .. ')'
    end
    parts[i] = msg
  end
  if err.count and err.count > #parts then parts[#parts + 1] = ('and %d more'):format(err.count - #parts) end
  if #parts == 0 then return err.msg end
  return table.concat(parts, '; ')
end

--- The configuration, validated, with defaults filled.
---@class aegis.Config
---@field store? string Store URL ($AEGIS_STORE wins over the file)
---@field sandbox {instructions: integer, seconds: number, memory_mb: integer}
---@field env_allow string[]
---@field paths string[]

--- Options of `config.load`.
---@class aegis.config.LoadOpts
---@field path? string This file instead of looking for aegis.config.lua (`--config F`)
---@field dir? string Absolute directory to start looking from (default the current one)

local current, current_path

-- Sections that modules outside the foundation declare, by the module that
-- declares them: a config that uses one loads that module first, so its
-- key is known without loading every module at start-up.
local declared_by = {
  tools = 'aegis.trace',
  providers = 'aegis.provider',
  prices = 'aegis.provider',
  standards = 'aegis.standards',
  cache = 'aegis.cache',
}

-- Loads the modules that declare the sections `t` uses and are not known yet.
local function declare_used(t)
  for key in pairs(t) do
    local mod = declared_by[key]
    if mod and (sections == nil or sections[key] == nil) then
      local ok, err = pcall(require, mod)
      if not ok then
        -- a module this build lacks leaves the key unknown; a broken one is a bug
        if not tostring(err):find("module '" .. mod .. "' not found", 1, true) then error(err, 0) end
        declared_by[key] = nil
      end
    end
  end
end

--- Validates a config table (what aegis.config.lua returns) and fills the
--- defaults. `name` is the file, for the message.
---@param t any
---@param name? string
---@return aegis.Config? cfg
---@return aegis.Error? err code 'config'
function M.validate(t, name)
  local where = name and ("config '%s': "):format(name) or 'config: '
  if type(t) ~= 'table' then
    return nil, errors.new('config', where .. 'must return a table, got ' .. type(t))
  end
  local cfg
  declare_used(t)
  if next(t) == nil and sections == nil then
    cfg = defaults()
  else
    ensure()
    local err
    cfg, err = M.schemas.config:parse(t, 'config')
    if err then return nil, errors.new('config', where .. schema_message(err)) end
    if cfg == t then cfg = plain(t, where, '', {}) end  -- never hand out the caller's table
  end
  local env_store = os.getenv('AEGIS_STORE')
  if env_store ~= nil and env_store ~= '' then cfg.store = env_store end
  return cfg
end

--- Loads the configuration: the nearest aegis.config.lua (or `opts.path`),
--- run in the sandbox with `sandbox.defaults.config` as budget, checked and
--- completed with defaults; just the defaults when there is no file. The
--- result is kept for `config.get`. Raises an `aegis.errors` object with
--- code 'config' (exit 2) when the file cannot be read, fails, does not
--- return a table or does not match the schema.
---@param opts? aegis.config.LoadOpts
---@return aegis.Config
function M.load(opts)
  opts = opts or {}
  if type(opts) ~= 'table' then error("bad argument #1 to 'load' (table expected, got " .. type(opts) .. ')', 2) end
  local path = opts.path
  if path ~= nil and type(path) ~= 'string' then error("bad argument #1 to 'load' (path must be a string)", 2) end
  if path == nil then path = M.find(opts.dir) end
  local t = {}
  if path ~= nil then
    local src, reason = fs.read(path)
    if src == nil then errors.config("config '%s': cannot read: %s", path, reason) end
    local env = sandbox.env({ aegis = false, runtime = runtime.new({ mode = 'record' }) })
    local ok, res = sandbox.run({ source = src, name = path, env = env, budget = sandbox.defaults.config })
    if not ok then
      errors.raise('config', '%s', res.msg)
    end
    t = res
    if type(t) == 'table' then t = plain(t, ("config '%s': "):format(path), '', {}) end
  end
  local cfg, err = M.validate(t, path)
  if not cfg then error(err, 0) end
  current, current_path = cfg, path
  return cfg
end

--- The configuration loaded by `config.load`, loading it (from the current
--- directory) the first time.
---@return aegis.Config
function M.get()
  if current == nil then return M.load() end
  return current
end

--- The file the current configuration came from, or nil (defaults only, or
--- nothing loaded yet).
---@return string?
function M.file()
  return current_path
end

--- Forgets the loaded configuration (for tests).
function M.reset()
  current, current_path = nil, nil
end

return M
