--- The file walk of `aegis-run enforce`: the TypeScript files under the
--- paths given, minus what `.gitignore` files exclude.
---
--- Git's rules (gitignore(5)): every `.gitignore` from the repository root
--- down to a directory applies to what is under it, a deeper file's
--- patterns win over a shallower one's, and within a file the last
--- matching pattern wins; `!` re-includes, a trailing `/` matches only
--- directories, a pattern with a `/` before its end is anchored to its
--- file's directory (else it matches a name at any depth), `*` and `?` do
--- not cross `/`, `**` matches any number of directories. A directory that
--- is ignored is not entered, so nothing under it can be re-included (as
--- in git). `node_modules` and `.git` are never entered. Symbolic links to
--- directories are not followed.
local fs = require('aegis.fs')

local M = {}

--- Extensions walked: TypeScript and TSX. JavaScript files are checked
--- when named on the command line, not found by walks.
M.EXTENSIONS = { ts = true, tsx = true, mts = true, cts = true }

--- Directory names never entered.
M.SKIP = { node_modules = true, ['.git'] = true }

-- A glob segment as an anchored Lua pattern.
local function seg_pattern(seg)
  local out, i, n = { '^' }, 1, #seg
  while i <= n do
    local c = seg:sub(i, i)
    if c == '\\' and i < n then
      i = i + 1
      local x = seg:sub(i, i)
      out[#out + 1] = x:find('%p') and '%' .. x or x
    elseif c == '*' then
      out[#out + 1] = '[^/]*'
    elseif c == '?' then
      out[#out + 1] = '[^/]'
    elseif c == '[' then
      local j = seg:find(']', i + 2, true)
      if not j then
        out[#out + 1] = '%['
      else
        local body = seg:sub(i + 1, j - 1)
        local neg = body:sub(1, 1) == '!' or body:sub(1, 1) == '^'
        if neg then body = body:sub(2) end
        body = body:gsub('[%%%]%^]', '%%%0')
        out[#out + 1] = '[' .. (neg and '^' or '') .. body .. ']'
        i = j
      end
    elseif c:find('%p') then
      out[#out + 1] = '%' .. c
    else
      out[#out + 1] = c
    end
    i = i + 1
  end
  out[#out + 1] = '$'
  return table.concat(out)
end

-- Whether path segments p[pi..] match glob segments g[gi..] ('**' = any;
-- g.last_star: the index of g's last '**', or nil).
local function match_segs(g, gi, p, pi)
  while gi <= #g do
    local s = g[gi]
    if s == '**' then
      -- a trailing '**' matches everything inside, not the directory itself
      if gi == #g then return pi <= #p end
      -- the last '**': what follows it must match the path's last segments
      if gi == g.last_star then
        local k = #p - (#g - gi) + 1
        return k >= pi and match_segs(g, gi + 1, p, k)
      end
      for k = pi, #p do
        if match_segs(g, gi + 1, p, k) then return true end
      end
      return false
    end
    if pi > #p or not p[pi]:find(s) then return false end
    gi, pi = gi + 1, pi + 1
  end
  return pi > #p
end

local function split(s)
  local t = {}
  for part in s:gmatch('[^/]+') do t[#t + 1] = part end
  return t
end

--- Parses the text of a `.gitignore` into rules.
---@param text string
---@return table[] rules `{negate, dironly, anchored, segs}`
function M.parse(text)
  local rules = {}
  for line in (text .. '\n'):gmatch('([^\n]*)\n') do
    line = line:gsub('\r$', '')
    -- trailing spaces are ignored unless escaped
    line = line:gsub('([^\\])%s+$', '%1')
    if line ~= '' and line:sub(1, 1) ~= '#' then
      local negate = false
      if line:sub(1, 1) == '!' then
        negate, line = true, line:sub(2)
      elseif line:sub(1, 2) == '\\!' or line:sub(1, 2) == '\\#' then
        line = line:sub(2)
      end
      local dironly = line:sub(-1) == '/'
      line = line:gsub('/+$', '')
      local anchored = line:find('/', 1, true) ~= nil
      line = line:gsub('^/', '')
      if line ~= '' then
        local segs = {}
        for i, s in ipairs(split(line)) do segs[i] = s == '**' and '**' or seg_pattern(s) end
        if not anchored then table.insert(segs, 1, '**') end
        for i = #segs, 1, -1 do
          if segs[i] == '**' then segs.last_star = i; break end
        end
        rules[#rules + 1] = { negate = negate, dironly = dironly, segs = segs }
      end
    end
  end
  return rules
end

-- Verdict of one rule list for a path relative to its base: true
-- (ignored), false (re-included) or nil (no rule matches).
local function verdict(rules, rel, isdir)
  local segs = split(rel)
  for i = #rules, 1, -1 do
    local r = rules[i]
    if (isdir or not r.dironly) and match_segs(r.segs, 1, segs, 1) then return not r.negate end
  end
  return nil
end

--- Whether `rel` (relative to the walk's stack of `.gitignore` files) is
--- ignored. `stack` is a list of `{base = 'dir/' relative prefix, rules}`
--- from the shallowest to the deepest.
---@param stack table[]
---@param rel string Path relative to the walk root
---@param isdir boolean
---@return boolean
function M.ignored(stack, rel, isdir)
  for i = #stack, 1, -1 do
    local e = stack[i]
    if e.base == '' or rel:sub(1, #e.base) == e.base then
      local v = verdict(e.rules, rel:sub(#e.base + 1), isdir)
      if v ~= nil then return v end
    end
  end
  return false
end

local function join(a, b)
  if a == '' or a == '.' then return b end
  if a:sub(-1) == '/' then return a .. b end
  return a .. '/' .. b
end

local function dirname(p)
  return p:match('^(.*)/[^/]*$') or ''
end

-- The repository root above absolute directory `dir` (the first holding
-- .git), or nil.
local function repo_root(dir)
  local d = dir
  while d and d ~= '' do
    if fs.exists(d .. '/.git') then return d end
    if d == '/' then return nil end
    local p = dirname(d)
    d = p == '' and '/' or p
  end
  return nil
end

--- The repository root of the current directory (the nearest directory at
--- or above it holding `.git`), else the current directory.
---@return string
function M.root()
  local cwd = fs.cwd() or '.'
  return repo_root(cwd) or cwd
end

local function absolute(p, cwd)
  if p:sub(1, 1) == '/' then return p end
  local parts = split(cwd)
  for _, s in ipairs(split(p)) do
    if s == '..' then parts[#parts] = nil
    elseif s ~= '.' then parts[#parts + 1] = s end
  end
  return '/' .. table.concat(parts, '/')
end
M.absolute = absolute

--- Lists the files to check under `paths`: directories are walked
--- (`.gitignore`-aware, extensions in `EXTENSIONS`), files named are kept
--- whatever their extension. Sorted, without repeats.
---@param paths string[]
---@param opts? {ignore?: string[]} Extra patterns, as in a `.gitignore` at the repository root
---@return string[]? files
---@return string? err `enforce: 'x': No such file or directory`
function M.files(paths, opts)
  opts = opts or {}
  local cwd = fs.cwd() or '.'
  local out, seen = {}, {}
  local function add(p)
    p = p:gsub('^%./', '')
    if not seen[p] then
      seen[p] = true
      out[#out + 1] = p
    end
  end
  local extra = opts.ignore and M.parse(table.concat(opts.ignore, '\n')) or nil
  for _, p in ipairs(paths) do
    local st, reason = fs.stat(p)
    if not st then
      return nil, ("enforce: '%s': %s"):format(p, reason or 'No such file or directory')
    end
    if st.type ~= 'directory' then
      add(p)
    else
      -- the .gitignore files from the repository root down to p
      local abs = absolute(p, cwd)
      local root = repo_root(abs)
      local stack = {}
      if extra then stack[1] = { base = (root or cwd):gsub('/?$', '/'), rules = extra } end
      if root then
        local chain, d = {}, abs
        while d ~= root do
          chain[#chain + 1] = d
          d = dirname(d)
          if d == '' then d = '/' end
        end
        chain[#chain + 1] = root
        -- rules of ancestors apply to paths relative to them; keep them
        -- as absolute bases and test the absolute path of each entry
        for i = #chain, 2, -1 do
          local gi = fs.read(chain[i] .. '/.gitignore')
          if gi then stack[#stack + 1] = { base = chain[i]:gsub('/?$', '/'), rules = M.parse(gi) } end
        end
      end
      local function walk(dir, absdir, st_)
        local gi = fs.read(join(dir, '.gitignore'))
        if gi then st_[#st_ + 1] = { base = absdir:gsub('/?$', '/'), rules = M.parse(gi) } end
        local names = fs.list(dir) or {}
        for _, name in ipairs(names) do
          local child, abschild = join(dir, name), join(absdir, name)
          local cst = fs.stat(child, { follow = false })
          if cst then
            local isdir = cst.type == 'directory'
            local skip = isdir and M.SKIP[name]
            if not skip then
              local absrel = abschild
              local ign = M.ignored(st_, absrel, isdir)
              if not ign and isdir then
                local copy = table.move(st_, 1, #st_, 1, {})
                walk(child, abschild, copy)
              elseif not ign and cst.type == 'file' then
                local ext = name:match('%.([%w]+)$')
                if ext and M.EXTENSIONS[ext] then add(child) end
              end
            end
          end
        end
      end
      -- bases are absolute with a trailing '/': entries are matched by
      -- their absolute paths
      walk(p == '.' and '.' or p:gsub('/+$', ''), abs, stack)
    end
  end
  table.sort(out)
  return out
end

return M
