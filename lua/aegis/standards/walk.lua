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

-- How the walk tests a name against a glob segment: ANY ('*': every
-- name), LIT (a name without wildcards: equality), SUF ('*' then such a
-- name: a suffix), PAT (anything else: the Lua pattern in `segs`), STAR2
-- ('**'). A name never holds '/', so '*' cannot fail to cross one.
local ANY, LIT, SUF, PAT, STAR2 = 0, 1, 2, 3, 4

local function seg_kind(s)
  if s == '**' then return STAR2, false end
  if s == '*' then return ANY, false end
  if not s:find('[%*%?%[\\]') then return LIT, s end
  local rest = s:match('^%*([^%*%?%[\\]+)$')
  if rest then return SUF, rest end
  return PAT, false
end

local function split(s)
  local t = {}
  for part in s:gmatch('[^/]+') do t[#t + 1] = part end
  return t
end

--- Parses the text of a `.gitignore` into rules. Each rule: `segs` its
--- glob segments as Lua patterns (or '**'), `kinds` and `vals` how the
--- walk tests a name against each, `float` true for an unanchored name
--- (matched at any depth).
---@param text string
---@return table[] rules `{negate, dironly, segs, kinds, vals, float}`
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
        local segs, kinds, vals = {}, {}, {}
        for i, s in ipairs(split(line)) do
          segs[i] = s == '**' and '**' or seg_pattern(s)
          kinds[i], vals[i] = seg_kind(s)
        end
        if not anchored then
          table.insert(segs, 1, '**')
          table.insert(kinds, 1, STAR2)
          table.insert(vals, 1, false)
        end
        for i = #segs, 1, -1 do
          if segs[i] == '**' then segs.last_star = i; break end
        end
        rules[#rules + 1] = { negate = negate, dironly = dironly, segs = segs, kinds = kinds, vals = vals,
          float = not anchored and kinds[2] ~= STAR2 }
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

-- The walk does not test each entry's whole path against every rule (as
-- `M.ignored` does): it carries, per directory, how far each rule has got.
-- A rule's glob segments are read as an automaton over path segments, and
-- its state below a directory is the set of segment indexes the next name
-- may match: `gi` (1..m) waits for segment gi, TRAIL (m + 2) means a
-- trailing '**' has taken at least one name so all below match. A middle
-- '**' at gi may take no name (gi + 1 is in the set with gi) or any number
-- (gi stays). This is match_segs step by step: a name then matches iff
-- the set holds TRAIL, a trailing '**' at m, or m with a segment the name
-- matches. A rule with an empty set can match nothing below: a rule
-- anchored to a path the walk is not under dies at once. An unanchored
-- rule ('**' then a name: `float`) is always in state {1, 2}.
--
-- States that do not change are the same table, so a directory whose
-- rules stand as in its parent shares the parent's `views` and the tests
-- made from them (in a tree without .gitignore files below the walk's
-- root: one set of tests for the whole walk).

local EMPTY, FLOAT = {}, { 1, 2 }

-- Adds gi to set S with what a middle '**' allows without taking a name.
local function add(S, gi, r, m)
  for i = 1, #S do
    if S[i] == gi then return end
  end
  S[#S + 1] = gi
  if gi < m and r.kinds[gi] == STAR2 then add(S, gi + 1, r, m) end
end

-- Whether `name` matches segment gi of rule r.
local function seg_match(r, gi, name)
  local k = r.kinds[gi]
  if k == LIT then return name == r.vals[gi] end
  if k == SUF then local v = r.vals[gi]; return name:find(v, -#v, true) ~= nil end
  if k == ANY then return true end
  return name:find(r.segs[gi]) ~= nil
end

-- The state of rule r at its base directory.
local function start(r)
  if r.float then return FLOAT end
  local S, m = {}, #r.segs
  if m == 0 then return EMPTY end
  add(S, 1, r, m)
  return S
end

local function same_set(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    local found = false
    for j = 1, #b do
      if a[i] == b[j] then found = true; break end
    end
    if not found then return false end
  end
  return true
end

-- The state of rule r below directory `name`, from S (its state in the
-- directory holding `name`); S itself when it does not change.
local function step(r, S, name)
  if S == EMPTY or S == FLOAT then return S end
  local out, m = {}, #r.segs
  for i = 1, #S do
    local gi = S[i]
    if gi > m then add(out, gi, r, m)                                  -- TRAIL
    elseif r.kinds[gi] == STAR2 then add(out, gi == m and m + 2 or gi, r, m)
    elseif gi < m and seg_match(r, gi, name) then add(out, gi + 1, r, m)
    end
  end
  if #out == 0 then return EMPTY end
  if same_set(out, S) then return S end
  return out
end

-- How rule r in state S tests a name just below: true (every name
-- matches), false (none does), or the index of its last segment (the name
-- must match it).
local function name_test(r, S)
  local m, last = #r.segs, false
  for i = 1, #S do
    local gi = S[i]
    if gi > m then return true end
    if gi == m then
      if r.kinds[m] == STAR2 or r.kinds[m] == ANY then return true end
      last = m
    end
  end
  return last
end

-- A stack entry `{base, rules}` as the walk sees it in a directory whose
-- absolute path with a trailing '/' is A: `{rules, states}` once the
-- directory is under base (states[i]: rule i's state), else `{rules,
-- base}` while base is below A (the rules apply once the walk gets
-- there), or nil when the walk cannot reach base from A.
local function view_at(e, A)
  local base = e.base
  if A:sub(1, #base) == base then
    local states = {}
    local rel = split(A:sub(#base + 1))
    for i, r in ipairs(e.rules) do
      local S = start(r)
      for _, seg in ipairs(rel) do S = step(r, S, seg) end
      states[i] = S
    end
    return { rules = e.rules, states = states }
  elseif base:sub(1, #A) == A then
    return { rules = e.rules, base = base }
  end
  return nil
end

-- `views`: the list of views (lowest precedence first), with `pending`
-- true while one of them waits for its base.
-- `fixed` true when no state can change below (all are EMPTY or FLOAT and
-- none is pending): descend then has nothing to do.
local function new_views(list)
  local pending, fixed = false, true
  for _, v in ipairs(list) do
    pending = pending or v.base ~= nil
    if v.states then
      for _, S in ipairs(v.states) do fixed = fixed and (S == EMPTY or S == FLOAT) end
    end
  end
  list.pending, list.fixed = pending, fixed and not pending
  return list
end

-- The views below directory `name` (A2: its absolute path with a '/',
-- needed only while views.pending), from those in the directory holding
-- it: the same table when nothing changes; views that can match nothing
-- there are dropped.
local function descend(views, name, A2)
  if views.fixed then return views end
  local out, changed = {}, false
  for _, v in ipairs(views) do
    if v.base then
      local nv = view_at(v, A2)
      changed = changed or nv ~= v
      if nv then out[#out + 1] = nv end
    else
      local states, vchanged, alive = {}, false, false
      local old = v.states
      for i, r in ipairs(v.rules) do
        local S = step(r, old[i], name)
        states[i] = S
        vchanged = vchanged or S ~= old[i]
        alive = alive or S ~= EMPTY
      end
      if not alive then
        changed = true
      elseif vchanged then
        changed = true
        out[#out + 1] = { rules = v.rules, states = states }
      else
        out[#out + 1] = v
      end
    end
  end
  if not changed then return views end
  return new_views(out)
end

-- Test lists: `{n, k, v, neg}`, tried in order until one hits: kind ANY
-- hits every name, else the kind and value of a rule's last segment
-- (PAT: its Lua pattern); a hit means ignored unless neg (re-included).

-- The tests of the names just below `views`, the deepest file's last rule
-- first: `dir` for directories (every rule), `file` for files (not the
-- directory-only ones), `byext` the file tests that can hit a name with a
-- given extension (made as needed).
local function tests_of(views)
  local d = { n = 0, k = {}, v = {}, neg = {} }
  local f = { n = 0, k = {}, v = {}, neg = {} }
  for vi = #views, 1, -1 do
    local view = views[vi]
    if not view.base then
      for i = #view.rules, 1, -1 do
        local r, S = view.rules[i], view.states[i]
        local t = S ~= EMPTY and name_test(r, S)
        if t then
          local k, val = ANY, false
          if t ~= true then
            k, val = r.kinds[t], r.vals[t]
            if k == PAT then val = r.segs[t] end
          end
          local n = d.n + 1
          d.n, d.k[n], d.v[n], d.neg[n] = n, k, val, r.negate
          if not r.dironly then
            n = f.n + 1
            f.n, f.k[n], f.v[n], f.neg[n] = n, k, val, r.negate
          end
        end
      end
    end
  end
  return { dir = d, file = f, byext = {} }
end

-- The file tests that can hit a name ending in '.' .. ext: a literal name
-- or a suffix that cannot end such a name is left out.
local function tests_for_ext(f, ext)
  local x = '.' .. ext
  local out = { n = 0, k = {}, v = {}, neg = {} }
  for i = 1, f.n do
    local k, v = f.k[i], f.v[i]
    local keep = true
    if k == LIT then keep = v:sub(-#x) == x
    elseif k == SUF then keep = v:sub(-#x) == x or x:sub(-#v) == v end
    if keep then
      local n = out.n + 1
      out.n, out.k[n], out.v[n], out.neg[n] = n, k, v, f.neg[i]
    end
  end
  return out
end

-- Whether `name` is ignored by test list t.
local function ignored_by(t, name)
  local k, v = t.k, t.v
  for i = 1, t.n do
    local kind = k[i]
    local hit
    if kind == SUF then local s = v[i]; hit = name:find(s, -#s, true) ~= nil
    elseif kind == LIT then hit = name == v[i]
    elseif kind == ANY then hit = true
    else hit = name:find(v[i]) ~= nil end
    if hit then return not t.neg[i] end
  end
  return false
end

--- Lists the files to check under `paths`: directories are walked
--- (`.gitignore`-aware, extensions in `EXTENSIONS`), files named are kept
--- whatever their extension. Sorted, without repeats.
---
--- `opts.sizes`, a table, is filled with `path -> size in bytes` for
--- every file returned (the size of what a named path points to; a walked
--- file's own size, from one stat relative to its open directory). Only
--- then does the walk stat files: a walked file that cannot be stat'ed (it
--- went away meanwhile) is then left out. `opts.ignore`: extra patterns,
--- as in a `.gitignore` at the repository root.
---@param paths string[]
---@param opts? {ignore?: string[], sizes?: table<string, integer>}
---@return string[]? files
---@return string? err `enforce: 'x': No such file or directory`
function M.files(paths, opts)
  opts = opts or {}
  local cwd = fs.cwd() or '.'
  local sizes = opts.sizes
  if sizes ~= nil and type(sizes) ~= 'table' then
    error(("bad argument #2 to 'files' (opts.sizes: table expected, got %s)"):format(type(sizes)), 2)
  end
  local out, nout = {}, 0
  local extensions, skip = M.EXTENSIONS, M.SKIP
  local scan_opts = { sizes = sizes ~= nil }
  local extra = opts.ignore and M.parse(table.concat(opts.ignore, '\n')) or nil

  -- dir: the path to list (as given, joined); opre: what goes before a
  -- name in the paths returned; A: its absolute path with a trailing '/'
  -- (only while views.pending); views: the .gitignore rules that can
  -- apply below it
  local function walk(dir, opre, A, views)
    local ls = fs.scan(dir, scan_opts)
    if not ls then return end
    local names, types, szs = ls.names, ls.types, ls.sizes
    local n = #names
    local dpre = (dir == '' or dir == '.') and '' or dir .. '/'  -- dir never ends in '/'
    -- its own .gitignore applies to what is under it
    for i = 1, n do
      if names[i] == '.gitignore' then
        local gi = fs.read(dpre .. '.gitignore')
        if gi then
          local rules, states = M.parse(gi), {}
          for ri, r in ipairs(rules) do states[ri] = start(r) end
          local list = table.move(views, 1, #views, 1, {})
          list[#list + 1] = { rules = rules, states = states }
          views = new_views(list)
        end
        break
      end
    end
    local tests = views.tests
    if not tests then
      tests = tests_of(views)
      views.tests = tests
    end
    local dtests, byext = tests.dir, tests.byext
    for i = 1, n do
      local name, ty = names[i], types[i]
      if ty == 'file' then
        local ext = name:match('%.([%w]+)$')
        if ext and extensions[ext] then
          local ft = byext[ext]
          if not ft then
            ft = tests_for_ext(tests.file, ext)
            byext[ext] = ft
          end
          if ft.n == 0 or not ignored_by(ft, name) then
            if not szs then
              nout = nout + 1
              out[nout] = opre .. name
            elseif szs[i] then
              local path = opre .. name
              nout = nout + 1
              out[nout] = path
              sizes[path] = szs[i]
            end
          end
        end
      elseif ty == 'directory' and not skip[name] and (dtests.n == 0 or not ignored_by(dtests, name)) then
        local A2 = views.pending and A .. name .. '/' or nil
        walk(dpre .. name, opre .. name .. '/', A2, descend(views, name, A2))
      end
    end
  end

  for _, p in ipairs(paths) do
    local st, reason = fs.stat(p)
    if not st then
      return nil, ("enforce: '%s': %s"):format(p, reason or 'No such file or directory')
    end
    if st.type ~= 'directory' then
      local path = p:gsub('^%./', '')
      nout = nout + 1
      out[nout] = path
      if sizes then sizes[path] = st.size end
    else
      -- the .gitignore files from the repository root down to p, as
      -- entries {base = absolute directory with a trailing '/', rules}
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
        for i = #chain, 2, -1 do
          local gi = fs.read(chain[i] .. '/.gitignore')
          if gi then stack[#stack + 1] = { base = chain[i]:gsub('/?$', '/'), rules = M.parse(gi) } end
        end
      end
      local A = abs:gsub('/?$', '/')
      local list = {}
      for _, e in ipairs(stack) do list[#list + 1] = view_at(e, A) end
      local dir = p == '.' and '.' or p:gsub('/+$', '')
      local dpre = (dir == '' or dir == '.') and '' or dir .. '/'
      walk(dir, (dpre:gsub('^%./', '')), A, new_views(list))
    end
  end
  -- the walk meets paths in byte order (fs.scan's order), so one
  -- directory's list is sorted already (unless the locale orders strings
  -- otherwise); a file reached twice (named, or under two paths given) is
  -- kept once
  local coll = os.setlocale(nil, 'collate')
  if #paths > 1 or (coll ~= 'C' and coll ~= 'POSIX') then
    for i = 2, #out do
      if out[i - 1] >= out[i] then
        table.sort(out)
        break
      end
    end
  end
  if #paths == 1 then return out end  -- one walk meets each path once
  local k = 0
  for i = 1, #out do
    if out[i] ~= out[k] then
      k = k + 1
      out[k] = out[i]
    end
  end
  for i = #out, k + 1, -1 do out[i] = nil end
  return out
end

return M
