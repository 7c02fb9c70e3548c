--- Runs a user script: `aegis-run FILE.lua [args]` and `aegis-run -e CODE`.
---
--- The script runs in the sandbox (`aegis.sandbox`) with the budget from
--- aegis.config.lua, `arg` and `...` holding its arguments, and clock,
--- randomness and environment reads journaled by a record-mode runtime.
local config = require('aegis.config')
local errors = require('aegis.errors')
local fs = require('aegis.fs')
local runtime = require('aegis.runtime')
local sandbox = require('aegis.sandbox')

local M = {}

local MiB = 1024 * 1024

--- What to run.
---@class aegis.script.Spec
---@field file? string Path of the script
---@field code? string Code given with -e
---@field args? string[] The arguments after the script

-- The script's text, with a first line starting with '#' (a shebang)
-- blanked so line numbers stay right. A script that cannot be read is a
-- usage mistake (exit 2).
local function read_script(path)
  local src, reason = fs.read(path)
  if src == nil then errors.usage("cannot open script '%s': %s", path, reason) end
  if src:sub(1, 1) == '#' then src = src:gsub('^[^\n]*', '', 1) end
  return src
end

--- The process exit code for a script's first result: nil or true give 0,
--- false 1, an integer 0..255 itself. Anything else is a script error.
---@param name string The script's name, for the message
---@param v any
---@return integer
function M.exit_code(name, v)
  if v == nil or v == true then return 0 end
  if v == false then return 1 end
  local n = math.tointeger(v)
  if n and n >= 0 and n <= 255 then return n end
  if n then
    errors.raise('runtime', "%s: exit code %d out of range (0..255)", name, n)
  end
  errors.raise('runtime', "%s: returned a %s (expected nil, a boolean or an exit code 0..255)",
    name, math.type(v) or type(v))
end

--- Runs a script file or -e code and returns the exit code. Raises an
--- `aegis.errors` object for the CLI to print: 'usage' (exit 2) when the
--- file cannot be read, 'config' (exit 2) for a bad aegis.config.lua, the
--- sandbox's 'syntax', 'runtime', 'budget' or 'memory' (exit 1) when the
--- script fails; `err.traceback` is set for runtime errors when
--- $AEGIS_DEBUG is set.
---@param spec aegis.script.Spec
---@return integer exit code
function M.run(spec)
  if type(spec) ~= 'table' then error("bad argument #1 to 'run' (table expected, got " .. type(spec) .. ')', 2) end
  local src, name, shown
  if spec.file ~= nil then
    if type(spec.file) ~= 'string' then error("bad argument #1 to 'run' (file must be a string)", 2) end
    src = read_script(spec.file)
    name, shown = spec.file, spec.file
  elseif spec.code ~= nil then
    if type(spec.code) ~= 'string' then error("bad argument #1 to 'run' (code must be a string)", 2) end
    src, name, shown = spec.code, '=(command line)', '-e'
  else
    error("bad argument #1 to 'run' (file or code expected)", 2)
  end
  local args = spec.args or {}
  local cfg = config.get()
  local rt = runtime.new({ mode = 'record', env_allow = cfg.env_allow })
  local arg = { [0] = shown }
  for i, a in ipairs(args) do arg[i] = a end
  local env = sandbox.env({ runtime = rt, globals = { arg = arg } })
  local b = cfg.sandbox
  local ok, res = sandbox.run({
    source = src, name = name, env = env, args = args,
    budget = { instructions = b.instructions, seconds = b.seconds, memory = b.memory_mb * MiB },
  })
  if not ok then
    if not os.getenv('AEGIS_DEBUG') then res.traceback = nil end
    error(res, 0)
  end
  return M.exit_code((name:gsub('^=', '')), res)
end

return M
