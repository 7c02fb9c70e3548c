--- Files and directories for the trusted host: reading, atomic writing,
--- listing, creating directories, stat.
---
--- ```lua
--- local fs = require('aegis.fs')
--- local src, reason = fs.read('x.lua')
--- if not src then error(("cannot open script '%s': %s"):format('x.lua', reason)) end
--- assert(fs.write('out/config.schema.json', text))   -- all or nothing
--- fs.list('rulepacks')                               --> {'a11y', 'strict.lua'}
--- ```
---
--- A function that can fail returns `nil, reason, code`: `reason` is the
--- system's text alone ("No such file or directory"), without the path, so
--- the caller writes its own one-line message naming the file and what it
--- was doing; `code` is 'not_found' (ENOENT) or 'io' (anything else). Paths
--- are plain strings handed to the system: relative ones are relative to
--- the current directory, and symbolic links are followed (except by
--- `stat(p, {follow = false})`).
---
--- Scripts do not see this module (`aegis.fs` is hidden in the sandbox):
--- their file reads must go through the run's journal (DESIGN.md §7).
local core = require('aegis.core.fs')

local M = {}

-- Raises "bad argument #n to 'fname' (string expected, got x)" at the
-- caller of the public function.
local function checkstring(v, n, fname)
  if type(v) ~= 'string' then
    error(("bad argument #%d to '%s' (string expected, got %s)"):format(n, fname, type(v)), 3)
  end
end

local function checkpath(v, n, fname)
  checkstring(v, n, fname)
  if v:find('\0', 1, true) then
    error(("bad argument #%d to '%s' (path contains a NUL byte)"):format(n, fname), 3)
  end
end

local function checkopts(opts, n, fname)
  if opts ~= nil and type(opts) ~= 'table' then
    error(("bad argument #%d to '%s' (table expected, got %s)"):format(n, fname, type(opts)), 3)
  end
  return opts or {}
end

-- aegis.core.fs's result, with its failure `nil, "fs: <action> '<path>':
-- <reason>", code` turned into `nil, reason, code`. The prefix is known
-- exactly, so it is cut, not matched. A plain nil passes.
local function result(action, path, r, msg, code)
  if r ~= nil or msg == nil then return r end
  local prefix = ("fs: %s '%s': "):format(action, path)
  if msg:sub(1, #prefix) == prefix then msg = msg:sub(#prefix + 1) end
  return nil, msg, code
end

--- Reads a whole file.
---@param path string
---@return string? data The file's bytes
---@return string? reason The system's reason, without the path: "No such file or directory", "Is a directory"
---@return string? code 'not_found' or 'io'
function M.read(path)
  checkpath(path, 1, 'read')
  return result('read', path, core.read(path))
end

--- Writes a whole file atomically: the data goes to a temporary file in
--- the same directory, is flushed to disk and renamed over `path`, so a
--- reader or a crash sees the old file or the new one, never part of one.
--- A file replaced keeps its permission bits; a new one gets 0666 less the
--- umask. A symbolic link at `path` is replaced by the file, not followed.
--- On failure `path` is as it was and no temporary is left.
---@param path string
---@param data string
---@return true? ok
---@return string? reason "No such file or directory" (a missing directory), "Is a directory", ...
---@return string? code 'not_found' or 'io'
function M.write(path, data)
  checkpath(path, 1, 'write')
  checkstring(data, 2, 'write')
  return result('write', path, core.write_atomic(path, data))
end

--- The names in a directory, without '.' and '..', sorted by bytes.
---@param dir string
---@return string[]? names
---@return string? reason "No such file or directory", "Not a directory", ...
---@return string? code 'not_found' or 'io'
function M.list(dir)
  checkpath(dir, 1, 'list')
  return result('readdir', dir, core.readdir(dir))
end

--- What `fs.scan` finds: lists in step, `types[i]` and `sizes[i]` being
--- about `names[i]`. The names are sorted by bytes, a directory's as if it
--- ended in '/' ('a.ts' < directory 'a' < 'a0'), so a depth-first walk
--- taking them in order meets paths in byte order. A type is what the
--- name is itself (a link is 'link', not followed); 'unknown' when the
--- system can say neither from the listing nor from a stat (the entry went
--- away meanwhile, or the directory is readable but not searchable).
---@class aegis.fs.Listing
---@field names string[] The names in the directory, without '.' and '..'
---@field types ('file'|'directory'|'link'|'other'|'unknown')[]
---@field sizes? (integer|false)[] With `opts.sizes`: a regular file's size in bytes, else (or if its stat failed) false

--- Options of `fs.scan`.
---@class aegis.fs.ScanOpts
---@field sizes? boolean Also give each regular file's size (one stat per file, relative to the open directory)

--- Lists a directory with what each entry is, as `fs.list` plus the
--- kinds: these come from the listing itself where the file system gives
--- them (no stat per entry), so a walk over a tree costs one call per
--- directory. Symbolic links in the directory are reported, not followed.
---@param dir string
---@param opts? aegis.fs.ScanOpts
---@return aegis.fs.Listing? listing
---@return string? reason "No such file or directory", "Not a directory", ...
---@return string? code 'not_found' or 'io'
function M.scan(dir, opts)
  checkpath(dir, 1, 'scan')
  opts = checkopts(opts, 2, 'scan')
  return result('scan', dir, core.scan(dir, opts.sizes == true))
end

local function parent(path)
  local p = path:match('^(.*[^/])/+[^/]+$')
  if p then return p end
  if path:find('^/+[^/]+$') then return '/' end
  return nil  -- one relative segment, or the root
end

local function isdir(path)
  local st = core.stat(path)
  return st ~= nil and st.type == 'directory'
end

-- mkdir -p: creates the missing parents first. A directory already there
-- (maybe made by someone else meanwhile) is success.
local function mkdir_p(path, mode)
  local ok, msg, code = core.mkdir(path, mode)
  if ok or isdir(path) then return true end
  local up = code == 'not_found' and parent(path)
  if up then
    local pok, pmsg, pcode = mkdir_p(up, mode)
    if not pok then return nil, pmsg, pcode end  -- a parent's reason, already cut
    ok, msg, code = core.mkdir(path, mode)
    if ok or isdir(path) then return true end
  end
  return result('mkdir', path, nil, msg, code)
end

--- Options of `fs.mkdir`.
---@class aegis.fs.MkdirOpts
---@field parents? boolean Create missing parents too, and accept a directory already there (mkdir -p)
---@field mode? integer Permission bits before the umask (default 0755, i.e. 493; `tonumber('700', 8)`)

--- Creates a directory. Without `parents`, the parent must exist and
--- anything already at `path` (a directory too) fails with "File exists";
--- with it, as `mkdir -p`.
---@param path string
---@param opts? aegis.fs.MkdirOpts
---@return true? ok
---@return string? reason "File exists", "No such file or directory", "Not a directory", ...
---@return string? code 'not_found' or 'io'
function M.mkdir(path, opts)
  checkpath(path, 1, 'mkdir')
  opts = checkopts(opts, 2, 'mkdir')
  local mode = opts.mode
  if mode ~= nil and (math.type(mode) ~= 'integer' or mode < 0 or mode > 4095) then
    error("bad argument #2 to 'mkdir' (mode must be an integer 0 to 0o7777)", 2)
  end
  if opts.parents then
    -- 'a/b/' -> 'a/b', so that parent() finds 'a'
    return mkdir_p(path:gsub('(.)/+$', '%1'), mode)
  end
  return result('mkdir', path, core.mkdir(path, mode))
end

--- What `fs.stat` finds.
---@class aegis.fs.Stat
---@field type 'file'|'directory'|'link'|'other' 'link' only with `follow = false`
---@field size integer Bytes
---@field mtime number Last modification, seconds since 1970 (fractional)
---@field mode integer Permission bits, 0 to 0o7777

--- Options of `fs.stat`.
---@class aegis.fs.StatOpts
---@field follow? boolean Follow a symbolic link at `path` (default true); false describes the link itself

--- Describes what is at a path. Nothing there is a plain nil; a path that
--- cannot be looked at (a file used as a directory, a link loop) is
--- `nil, reason, code`.
---@param path string
---@param opts? aegis.fs.StatOpts
---@return aegis.fs.Stat? st
---@return string? reason "Not a directory", "Too many levels of symbolic links", ...
---@return string? code 'io'
function M.stat(path, opts)
  checkpath(path, 1, 'stat')
  opts = checkopts(opts, 2, 'stat')
  return result('stat', path, core.stat(path, opts.follow ~= false))
end

--- Whether something is at a path (following links: a dangling link is
--- not). False also when a parent is a regular file ("a/b" with "a" a
--- file names nothing); other failures are `nil, reason, code`.
---@param path string
---@return boolean? exists
---@return string? reason
---@return string? code 'io'
function M.exists(path)
  checkpath(path, 1, 'exists')
  return result('stat', path, core.exists(path))
end

--- The current directory, absolute.
---@return string? dir
---@return string? reason "No such file or directory" (it was removed), ...
---@return string? code 'not_found' or 'io'
function M.cwd()
  local dir, msg, code = core.getcwd()
  if dir == nil then return nil, (msg:gsub('^fs: getcwd: ', '')), code end
  return dir
end

return M
