--- AEGIS_PATH: where user providers, rulepacks and pipelines are found.
---
--- The search order is every directory of `$AEGIS_PATH` (":"-separated,
--- empty entries ignored) in order, then the current directory `.` (the
--- project), then the copies built into the binary. In each directory a
--- rulepack `x` is `rulepacks/x.lua`, else `rulepacks/x/init.lua`; the first
--- found wins, so a team can shadow a built-in by dropping a file on the path.
---
--- This module runs in the trusted host (it reads files with `aegis.fs`); the
--- sandbox loads what it returns.
local fs = require('aegis.fs')
local host = require('aegis.core.host')

local M = {}

--- The kinds of script found on the path.
M.KINDS = { providers = 'provider', rulepacks = 'rulepack', pipelines = 'pipeline' }

---@class aegis.path.Found
---@field source string The file's text
---@field name string Chunk name for `load`: '@' .. path
---@field path string File path (for a built-in, its path in the source tree, `rulepacks/x/init.lua`)
---@field builtin boolean Whether it comes from the binary (or is a byte-identical copy of a file that does)

local function checkkind(kind, fname)
  if M.KINDS[kind] == nil then
    error(("bad argument #1 to '%s' (expected 'providers', 'rulepacks' or 'pipelines', got %s)")
      :format(fname, type(kind) == 'string' and "'" .. kind .. "'" or type(kind)), 3)
  end
end

-- A name is one path segment: letters, digits, '_', '-', '.', not starting
-- with '.' (so never '..' and never a hidden file).
local function valid_name(name)
  return name:find('^[%w_%-][%w_%-%.]*$') ~= nil
end

--- The directories searched, in order: `$AEGIS_PATH`'s entries (empty ones
--- ignored, repeats dropped, trailing '/' removed) then '.'.
---@param aegis_path? string A ":"-separated list to use instead of `$AEGIS_PATH`
---@return string[]
function M.dirs(aegis_path)
  if aegis_path == nil then aegis_path = os.getenv('AEGIS_PATH') or '' end
  if type(aegis_path) ~= 'string' then
    error("bad argument #1 to 'dirs' (string expected, got " .. type(aegis_path) .. ')', 2)
  end
  local dirs, seen = {}, {}
  for entry in (aegis_path .. ':.'):gmatch('[^:]+') do
    local d = entry:gsub('(.)/+$', '%1')
    if not seen[d] then
      seen[d] = true
      dirs[#dirs + 1] = d
    end
  end
  return dirs
end

local function join(dir, rel)
  return (dir:sub(-1) == '/' and dir or dir .. '/') .. rel
end

-- Reads a file: its text, or nil when nothing is there (not even a
-- directory on the way), or false and the reason.
local function read(file)
  local data, reason = fs.read(file)
  if data then return data end
  if fs.exists(file) == false then return nil end
  return false, reason
end

--- Finds a provider, rulepack or pipeline by name: the first of
--- `<dir>/<kind>/<name>.lua` and `<dir>/<kind>/<name>/init.lua` over `dirs()`,
--- then the built-in copy.
---@param kind 'providers'|'rulepacks'|'pipelines'
---@param name string Letters, digits, '_', '-', '.'; not starting with '.'
---@param aegis_path? string Instead of `$AEGIS_PATH` (see `dirs`)
---@return aegis.path.Found? found
---@return string? err `path: no rulepack 'x' in AEGIS_PATH (a:b:.) or built-ins`
---@return string? code 'not_found', 'invalid' (a bad name) or 'io' (an unreadable file)
function M.find(kind, name, aegis_path)
  checkkind(kind, 'find')
  if type(name) ~= 'string' then
    error("bad argument #2 to 'find' (string expected, got " .. type(name) .. ')', 2)
  end
  local noun = M.KINDS[kind]
  if not valid_name(name) then
    return nil, ("path: invalid %s name '%s' (letters, digits, '_', '-', '.'; not starting with '.')")
      :format(noun, name), 'invalid'
  end
  local rels = { kind .. '/' .. name .. '.lua', kind .. '/' .. name .. '/init.lua' }
  local dirs = M.dirs(aegis_path)
  for _, dir in ipairs(dirs) do
    for _, rel in ipairs(rels) do
      local file = join(dir, rel)
      local source, err = read(file)
      if source then
        -- a byte-identical copy of a built-in (the repository's own
        -- rulepacks/ seen from its root) is that built-in
        local same = host.embedded(rel) == source
        return { source = source, name = '@' .. file, path = file, builtin = same }
      elseif source == false then
        return nil, ("path: read '%s': %s"):format(file, (err:gsub('^%u', string.lower))), 'io'
      end
    end
  end
  for _, rel in ipairs(rels) do
    local source = host.embedded(rel)
    if source then return { source = source, name = '@' .. rel, path = rel, builtin = true } end
  end
  return nil, ("path: no %s '%s' in AEGIS_PATH (%s) or built-ins"):format(noun, name, table.concat(dirs, ':')),
    'not_found'
end

-- Names under one directory `<dir>/<kind>`: `x.lua` and `x/init.lua`
-- files, links followed (a dangling link or a loop is skipped).
local function names_in(base, add)
  local entries = fs.list(base)
  if entries == nil then return end
  for _, e in ipairs(entries) do
    local st = fs.stat(base .. '/' .. e)
    if st and st.type == 'file' then
      add(e:match('^(.+)%.lua$'))
    elseif st and st.type == 'directory' then
      local init = fs.stat(base .. '/' .. e .. '/init.lua')
      if init and init.type == 'file' then add(e) end
    end
  end
end

--- Names of everything `find(kind, ...)` can find: in the directories of
--- `dirs()` and built in, without repeats, sorted.
---@param kind 'providers'|'rulepacks'|'pipelines'
---@param aegis_path? string Instead of `$AEGIS_PATH` (see `dirs`)
---@return string[]
function M.list(kind, aegis_path)
  checkkind(kind, 'list')
  local seen, names = {}, {}
  local function add(name)
    if name and not seen[name] and valid_name(name) then
      seen[name] = true
      names[#names + 1] = name
    end
  end
  for _, dir in ipairs(M.dirs(aegis_path)) do names_in(join(dir, kind), add) end
  local prefix = kind .. '/'
  for _, file in ipairs(host.list(prefix)) do
    local rel = file:sub(#prefix + 1)
    add(rel:match('^([^/]+)%.lua$') or rel:match('^([^/]+)/init%.lua$'))
  end
  table.sort(names)
  return names
end

return M
