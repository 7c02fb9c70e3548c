--- aegis-run's command line: options, scripts and subcommand dispatch.
---
--- A subcommand NAME is the module `aegis.cli.NAME` (dashes become
--- underscores) returning `{summary = '...', usage = '...', run = fn(args)}`;
--- `run` returns the exit code. Adding a file under `lua/aegis/cli/` adds a
--- subcommand, with no change to C. A command whose run leaves nothing for
--- finalizers to do (every file, process and handle it opened is closed
--- when it returns) may set `quick_exit = true`: the host then ends without
--- tearing the Lua state down object by object.
local errors = require('aegis.errors')
local host = require('aegis.core.host')

local M = {}

local function stderr(fmt, ...)
  io.stderr:write('aegis-run: ', fmt:format(...), '\n')
end

--- Names of the subcommands compiled in (or on disk under $AEGIS_LUA_DIR).
---@return string[]
function M.commands()
  local names = {}
  for _, path in ipairs(host.list('lua/aegis/cli/')) do
    local name = path:match('^lua/aegis/cli/([%w_]+)%.lua$')
    if name and name ~= 'init' then names[#names + 1] = (name:gsub('_', '-')) end
  end
  table.sort(names)
  return names
end

--- Loads the module of subcommand `name`, or nil when there is none.
---@param name string
---@return table?
function M.command(name)
  if not name:match('^[a-z][a-z0-9-]*$') then return nil end
  local modname = 'aegis.cli.' .. name:gsub('-', '_')
  local ok, mod = pcall(require, modname)
  if ok then return mod end
  if tostring(mod):find("module '" .. modname .. "' not found", 1, true) then return nil end
  error(mod, 0)  -- the module exists but failed to load: a bug, show it
end

local function version_line()
  local v = host.versions()
  return ('aegis-run %s (Lua %s, SQLite %s, libpq %s, libcurl %s, %s, tree-sitter %s (ABI %d),'
    .. ' tree-sitter-typescript %s)'):format(
    require('aegis').version, v.lua:match('[%d.]+$') or v.lua, v.sqlite, v.libpq, v.curl,
    v.openssl, v.tree_sitter, v.tree_sitter_abi, v.tree_sitter_typescript)
end

local function help()
  local lines = {
    'usage: aegis-run [options] SCRIPT.lua [args...]',
    '       aegis-run -e CODE [args...]',
    '       aegis-run COMMAND [options] [args...]',
    '',
    'Runs Lua scripts and pipelines in a sandbox with the aegis modules, or a command.',
    '',
    'options:',
    '  -e CODE      run CODE as a script',
    '  -h, --help   show this help (COMMAND --help: the command\'s own)',
    '  --version    show versions of aegis-run and its libraries',
    '',
    'commands:',
  }
  for _, name in ipairs(M.commands()) do
    local cmd = M.command(name)
    lines[#lines + 1] = ('  %-12s %s'):format(name, cmd and cmd.summary or '')
  end
  lines[#lines + 1] = ''
  lines[#lines + 1] = 'environment:'
  lines[#lines + 1] = '  AEGIS_PATH     directories searched for providers/, rulepacks/, pipelines/ (":"-separated)'
  lines[#lines + 1] = '  AEGIS_STORE    store URL (default sqlite:.aegis/aegis.db)'
  lines[#lines + 1] = '  AEGIS_LUA_DIR  load aegis\'s own Lua from this directory instead of the binary'
  lines[#lines + 1] = '  AEGIS_DEBUG    print tracebacks with errors'
  lines[#lines + 1] = ''
  lines[#lines + 1] = 'exit codes: 0 success, 1 failure, 2 usage or configuration error'
  return table.concat(lines, '\n') .. '\n'
end

-- Runs a script file or -e code in the sandbox; returns the exit code.
local function run_script(spec)
  return require('aegis.script').run(spec)
end

local function dispatch(argv)
  local a1 = argv[1]
  local rest = table.move(argv, 2, #argv, 1, {})
  if a1 == nil then
    io.stderr:write(help())
    return 2
  elseif a1 == '-h' or a1 == '--help' then
    io.stdout:write(help())
    return 0
  elseif a1 == '--version' or a1 == '-v' then
    io.stdout:write(version_line(), '\n')
    return 0
  elseif a1 == '-e' then
    local code = rest[1]
    if code == nil then errors.usage("option '-e' needs an argument") end
    return run_script({ code = code, args = table.move(rest, 2, #rest, 1, {}) })
  elseif a1 == '--' then
    if rest[1] == nil then errors.usage("'--' needs a script") end
    return run_script({ file = rest[1], args = table.move(rest, 2, #rest, 1, {}) })
  elseif a1:sub(1, 1) == '-' then
    errors.usage("unknown option '%s' (see aegis-run --help)", a1)
  elseif a1:find('%.lua$') or a1:find('/', 1, true) then
    return run_script({ file = a1, args = rest })
  elseif a1 == 'help' then
    if rest[1] == nil then io.stdout:write(help()) return 0 end
    local cmd = M.command(rest[1]) or errors.usage("unknown command '%s' (see aegis-run --help)", rest[1])
    io.stdout:write(cmd.usage, '\n')
    return 0
  end
  local cmd = M.command(a1)
  if cmd == nil then
    errors.usage("unknown command '%s' (see aegis-run --help)", a1)
  end
  if rest[1] == '-h' or rest[1] == '--help' then
    io.stdout:write(cmd.usage, '\n')
    return 0
  end
  return cmd.run(rest) or 0, cmd.quick_exit
end

-- Keeps aegis errors as they are (their message is the whole story) and
-- gives anything else, a bug, a traceback.
local function handler(e)
  if errors.is(e) then
    -- a script's error already carries the script's own traceback
    if os.getenv('AEGIS_DEBUG') and e.traceback == nil then e.traceback = debug.traceback('', 2) end
    return e
  end
  return errors.new('internal', debug.traceback(tostring(e), 2))
end

--- Entry point called by the C host with the global `arg`.
---@param argv string[] arg[1..n]: the command line after the program name
---@return integer exit code
---@return boolean quick the command ran to its end and asked for a quick exit (`quick_exit`)
function M.main(argv)
  local ok, res, quick = xpcall(dispatch, handler, table.move(argv, 1, #argv, 1, {}))
  io.stdout:flush()
  if ok then return math.tointeger(res) or 0, quick == true end
  -- a memory error skips the handler: hand it to the host, which says so (exit 1)
  if not errors.is(res) then error(res, 0) end
  stderr('%s', res.msg)
  if res.traceback then io.stderr:write(res.traceback, '\n') end
  return res.exit
end

return M
