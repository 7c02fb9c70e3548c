--- Shared spec helpers: the binary under test, temporary directories,
--- running aegis-run as a process, and the store URLs to test on.
local M = {}

--- Absolute path of the aegis-run under test ($AEGIS_BIN, else bin/aegis-run).
M.bin = os.getenv('AEGIS_BIN') or (os.getenv('PWD') .. '/bin/aegis-run')

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

-- True under make test-asan or make test-valgrind, where code runs several
-- times slower: deadlines sized for a normal build are widened there.
M.instrumented = (os.getenv('ASAN_OPTIONS') or '') ~= '' or (os.getenv('AEGIS_WRAP') or '') ~= ''
  or (os.getenv('LD_PRELOAD') or ''):find('vgpreload', 1, true) ~= nil   -- inside valgrind itself

--- Makes a fresh temporary directory, removed at the end of the run.
---@return string path
local tmpdirs = {}
function M.tmpdir()
  local p = io.popen('mktemp -d "${TMPDIR:-/tmp}/aegis-spec.XXXXXX"')
  local dir = p:read('l')
  p:close()
  tmpdirs[#tmpdirs + 1] = dir
  return dir
end

--- Writes `data` to `path` and returns `path`.
function M.write(path, data)
  local f = assert(io.open(path, 'wb'))
  f:write(data)
  f:close()
  return path
end

--- Makes directory `path` and its parents (mkdir -p).
function M.mkdir(path)
  os.execute('mkdir -p ' .. shell_quote(path))
end

--- Writes each of `files` (path relative to `dir` -> text) under `dir`,
--- making their directories; returns `dir`.
function M.write_tree(dir, files)
  for name, text in pairs(files) do
    M.mkdir((dir .. '/' .. name):match('^(.*)/[^/]*$'))
    M.write(dir .. '/' .. name, text)
  end
  return dir
end

--- Reads a whole file, or nil when it does not exist.
function M.read(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('a')
  f:close()
  return s
end

--- Runs aegis-run with `args` (a list), in `opts.cwd`, with `opts.env`
--- (name -> value, false to unset) and `opts.stdin` (string).
---@return {code: integer, stdout: string, stderr: string}
function M.run(args, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local cmd = {}
  if opts.cwd then cmd[#cmd + 1] = 'cd ' .. shell_quote(opts.cwd) .. ' &&' end
  cmd[#cmd + 1] = 'env'
  local unset, set = {}, {}
  for k, v in pairs(opts.env or {}) do
    if v == false then unset[#unset + 1] = '-u ' .. k else set[#set + 1] = k .. '=' .. shell_quote(v) end
  end
  table.sort(unset)
  table.sort(set)
  -- env takes its options (-u) before the assignments
  table.move(unset, 1, #unset, #cmd + 1, cmd)
  table.move(set, 1, #set, #cmd + 1, cmd)
  -- make test-valgrind wraps every process it starts, these too
  local wrap = os.getenv('AEGIS_WRAP')
  if wrap and wrap ~= '' and not opts.bin then cmd[#cmd + 1] = wrap end
  cmd[#cmd + 1] = shell_quote(opts.bin or M.bin)
  for _, a in ipairs(args) do cmd[#cmd + 1] = shell_quote(a) end
  if opts.stdin then
    M.write(dir .. '/stdin', opts.stdin)
    cmd[#cmd + 1] = '<' .. shell_quote(dir .. '/stdin')
  else
    cmd[#cmd + 1] = '</dev/null'
  end
  cmd[#cmd + 1] = '>' .. shell_quote(dir .. '/stdout') .. ' 2>' .. shell_quote(dir .. '/stderr')
  local _, _, code = os.execute(table.concat(cmd, ' '))
  return { code = code, stdout = M.read(dir .. '/stdout'), stderr = M.read(dir .. '/stderr') }
end

--- Store URLs every store spec runs on: a fresh SQLite file, and the
--- throwaway PostgreSQL when $AEGIS_PG_URL is set (make test sets it).
---@return {name: string, url: string?}[]
function M.store_backends()
  return {
    { name = 'sqlite', url = 'sqlite:' .. M.tmpdir() .. '/aegis.db' },
    { name = 'postgres', url = os.getenv('AEGIS_PG_URL') },
  }
end

--- Calls `pending` for a backend that is not available here, so the spec
--- count stays the same everywhere (never a silent skip).
function M.needs(backend)
  if backend.url == nil then
    -- busted gives `pending` to spec files only: reach it through the caller's env
    local env = require('busted.compatibility').getfenv(2)
    env.pending('needs $AEGIS_PG_URL (make test starts a throwaway PostgreSQL)')
    return false
  end
  return true
end

-- clean up temporary directories when busted exits
local function cleanup()
  for _, d in ipairs(tmpdirs) do os.execute('rm -rf ' .. shell_quote(d)) end
end
M._gc = setmetatable({}, { __gc = cleanup })

return M
