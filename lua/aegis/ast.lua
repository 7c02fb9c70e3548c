--- TypeScript and TSX syntax trees (tree-sitter): parse with a budget, walk
--- nodes, run queries with predicates, and compare two sources semantically.
--- The C side is `aegis.core.ast` (runtime/last.c, runtime/ag_astdiff.c);
--- the userdata are documented in lua/aegis/_meta/ast.lua and docs/ast.md.
local core = require('aegis.core.ast')

-- Scope analysis: `tree:scope()` is a method of the tree userdata
-- (runtime/last.c over runtime/ag_scope.c), declared in _meta/ast.lua and
-- described in docs/ast.md ("Scopes"); nothing to validate on this side.

local M = {}

---@class aegis.ast.Budget
---@field ms? integer
---@field bytes? integer
---@field memory? integer

---@class aegis.ast.ParseOpts
---@field lang? 'ts'|'tsx'
---@field path? string
---@field budget? aegis.ast.Budget

---@class aegis.ast.DiffOpts: aegis.ast.ParseOpts
---@field comments? boolean
---@field verify? boolean

--- Default parse budget: `ms` of parsing per source (tree-sitter parses
--- TypeScript at a few MB/s), `bytes` per source, and `memory`: the bytes
--- tree-sitter may hold while it parses (the parse is cancelled past it).
--- Real TypeScript takes 20 bytes of tree-sitter memory per source byte on
--- average and 41 at worst (321 files of the enforce corpus), hostile
--- nesting up to 140: 160 MiB parses any real source under the 3 MiB size
--- cap, and keeps a process within the 256 MiB of RELIABILITY B2 with the
--- size cap off.
M.budget = { ms = 2000, bytes = 3 * 1024 * 1024, memory = 160 * 1024 * 1024 }

local EXT = {
  ts = 'ts', mts = 'ts', cts = 'ts', js = 'ts', mjs = 'ts', cjs = 'ts',
  tsx = 'tsx', jsx = 'tsx',
}

--- The language of a file from its extension: 'tsx' for .tsx and .jsx,
--- 'ts' for .ts, .mts, .cts, .js, .mjs, .cjs; nil for anything else.
---@param path string
---@return 'ts'|'tsx'|nil
function M.lang_of(path)
  assert(type(path) == 'string', 'bad argument #1 to \'lang_of\' (string expected)')
  local ext = path:match('%.([%w]+)$')
  return ext and EXT[ext:lower()] or nil
end

local function check_opts(fname, opts, arg)
  if opts == nil then return {} end
  if type(opts) ~= 'table' then
    error(("bad argument #%d to '%s' (table expected, got %s)"):format(arg, fname, type(opts)), 3)
  end
  return opts
end

-- lang from opts.lang, else opts.path's extension, else 'ts'.
local function pick_lang(fname, opts, arg)
  local lang = opts.lang
  if lang ~= nil then
    if lang ~= 'ts' and lang ~= 'tsx' then
      error(("bad argument #%d to '%s' (lang must be 'ts' or 'tsx')"):format(arg, fname), 3)
    end
    return lang
  end
  if opts.path ~= nil then
    if type(opts.path) ~= 'string' then
      error(("bad argument #%d to '%s' (path must be a string)"):format(arg, fname), 3)
    end
    return M.lang_of(opts.path) or 'ts'
  end
  return 'ts'
end

local function pick_budget(fname, opts, arg)
  local b = opts.budget
  if b == nil then return M.budget.ms, M.budget.bytes, M.budget.memory end
  if type(b) ~= 'table' then
    error(("bad argument #%d to '%s' (budget must be a table)"):format(arg, fname), 3)
  end
  local ms, bytes, memory = b.ms or M.budget.ms, b.bytes or M.budget.bytes, b.memory or M.budget.memory
  -- A parse is one C call that no Lua hook can interrupt: its time is always
  -- capped (scripts reach this module). Size may be uncapped (0).
  if math.type(ms) ~= 'integer' or ms < 1 then
    error(("bad argument #%d to '%s' (budget.ms must be a positive integer)"):format(arg, fname), 3)
  end
  if math.type(bytes) ~= 'integer' or bytes < 0 then
    error(("bad argument #%d to '%s' (budget.bytes must be a non-negative integer)"):format(arg, fname), 3)
  end
  if math.type(memory) ~= 'integer' or memory < 0 then
    error(("bad argument #%d to '%s' (budget.memory must be a non-negative integer)"):format(arg, fname), 3)
  end
  return ms, bytes, memory
end

--- Parses TypeScript or TSX. A file with syntax errors still gives a tree
--- (see `tree:errors()`); only the budget makes it fail. Invalid UTF-8 and
--- NUL bytes are parsed as they are (they become ERROR nodes).
---@param src string Source text
--- `opts.lang` wins over `opts.path`'s extension (default 'ts'); `opts.budget`
--- caps parse time (ms, at least 1), size (bytes, 0 = none) and tree-sitter's
--- memory during the parse (memory, bytes, 0 = none), defaults in `ast.budget`.
---@param opts? aegis.ast.ParseOpts
---@return aegis.ast.Tree? tree
---@return string? err `ast: parse '<path>': too large (...)`, `...: timeout (N ms)`, `...: memory budget exceeded`
---@return string? code 'too_large', 'timeout' or 'memory'
function M.parse(src, opts)
  if type(src) ~= 'string' then
    error(("bad argument #1 to 'parse' (string expected, got %s)"):format(type(src)), 2)
  end
  opts = check_opts('parse', opts, 2)
  local lang = pick_lang('parse', opts, 2)
  local ms, bytes, memory = pick_budget('parse', opts, 2)
  return core.parse(src, lang, ms, bytes, opts.path, memory)
end

-- the compiled queries: [analyzed][lang][pattern] (analyzed: tree-sitter's
-- analysis of the structure ran, or the query is not of chains only)
local cache = { [true] = { ts = {}, tsx = {} }, [false] = { ts = {}, tsx = {} } }
-- [analyze][lang][pattern] -> its compile on a thread of its own (M.prepare)
local pending = { [true] = { ts = {}, tsx = {} }, [false] = { ts = {}, tsx = {} } }

-- Checks the arguments of query and prepare; returns opts.analyze (default true).
local function check_query_args(fn, lang, pattern, opts)
  if lang ~= 'ts' and lang ~= 'tsx' then
    error(("bad argument #1 to '%s' (lang must be 'ts' or 'tsx')"):format(fn), 3)
  end
  if type(pattern) ~= 'string' then
    error(("bad argument #2 to '%s' (string expected, got %s)"):format(fn, type(pattern)), 3)
  end
  if opts == nil then return true end
  if type(opts) ~= 'table' then
    error(("bad argument #3 to '%s' (table expected, got %s)"):format(fn, type(opts)), 3)
  end
  return opts.analyze ~= false
end

--- Compiles a tree-sitter query for a language, once: the same (lang,
--- pattern, opts.analyze) returns the same query object (and an analysed
--- one serves a caller who skips the analysis too). Predicates: `#eq?`, `#not-eq?`
--- (capture against a string or another capture), `#match?`, `#not-match?`
--- (POSIX extended regular expression, searched anywhere in the text unless
--- anchored; text after a NUL byte is not seen), `#any-of?`, `#not-any-of?`,
--- `#has-parent?`, `#not-has-parent?` (the capture's parent is of one of
--- the node types). Directives (`#set!` and others ending in `!`) are accepted and ignored;
--- any other predicate is an error.
---
--- tree-sitter checks, for every pattern with a child, that its structure
--- can occur in the grammar (a "structure error" otherwise), by an analysis
--- of the grammar's parse tables that costs ~0.5 ms a pattern.
--- `opts.analyze = false` skips it for a query whose patterns are all
--- chains (`q:fast()`; any other query is analysed): names of node types,
--- fields and captures and the predicates are still checked, but a chain
--- that cannot occur only never matches. For queries known good, such as
--- tested rulepacks'. The query cursor (`q:captures`, `q:matches` on a node
--- or in 'cursor' mode) compiles such a query whole on first use, and
--- raises the structure error there.
---@param lang 'ts'|'tsx'
---@param pattern string Query source (S-expressions)
---@param opts? {analyze?: boolean}
---@return aegis.ast.Query? q
---@return string? err `ast: query: <what> at offset <n>` or `ast: query: unknown predicate '#x?' in pattern <i>`
---@return string? code 'parse'
function M.query(lang, pattern, opts)
  local analyze = check_query_args('query', lang, pattern, opts)
  -- an analysed query serves a caller who skips the analysis too
  local q = cache[true][lang][pattern] or not analyze and cache[false][lang][pattern]
  if q then return q end
  local err, code
  local p = pending[analyze][lang][pattern]
  if p then
    pending[analyze][lang][pattern] = nil
    q, err, code = p:get()
  else
    q, err, code = core.query(lang, pattern, analyze)
  end
  if not q then return nil, err, code end
  cache[analyze][lang][pattern] = q
  return q
end

--- Starts compiling a query on a thread of its own, for a later
--- `query(lang, pattern)` to take (waiting for it then) and answer as it
--- would: tree-sitter analyses the grammar for each query it compiles
--- (milliseconds), which can go on while this thread does other work.
--- Nothing to do when that query is compiled or being compiled already.
--- A process with a compile under way cannot fork (see `settle`).
---@param lang 'ts'|'tsx'
---@param pattern string Query source
---@param opts? {analyze?: boolean} as for `query`
function M.prepare(lang, pattern, opts)
  local analyze = check_query_args('prepare', lang, pattern, opts)
  if cache[true][lang][pattern] or not analyze and cache[false][lang][pattern]
    or pending[analyze][lang][pattern] then return end
  pending[analyze][lang][pattern] = core.query_async(lang, pattern, analyze)
end

--- Waits for every compile `prepare` started: after it, the process may
--- fork (aegis.core.fork refuses while one is under way). Their queries
--- go to the cache `query` answers from (a bad one is dropped: `query`
--- compiles it again and reports it).
function M.settle()
  for _, analyze in ipairs({ true, false }) do
    for _, lang in ipairs({ 'ts', 'tsx' }) do
      for pattern in pairs(pending[analyze][lang]) do M.query(lang, pattern, { analyze = analyze }) end
    end
  end
end

--- Compares two sources semantically (GumTree-style matching, then an edit
--- script of insert, delete, update, move and rename; see docs/astdiff.md).
--- Formatting, comments (unless `comments`), quote style, redundant
--- parentheses, optional semicolons and trailing commas are not changes.
--- Actions carry `src`/`dst` spans `{start_byte, end_byte, line, end_line,
--- size}` (bytes 0-based, end exclusive; lines 1-based) in the first and the
--- second source. `summary` lists declaration-level changes.
---@param a string First source
---@param b string Second source
--- `opts.verify` replays the script on a copy of the first tree and sets
--- `verified`; `opts.comments` makes comments nodes.
---@param opts? aegis.ast.DiffOpts
---@return aegis.ast.Diff? diff
---@return string? err `ast: diff 'a': timeout (N ms)` (or 'b', or too large, or `memory budget exceeded (N MiB)`)
---@return string? code 'timeout', 'too_large', 'memory' or 'nomem'
function M.diff(a, b, opts)
  if type(a) ~= 'string' then
    error(("bad argument #1 to 'diff' (string expected, got %s)"):format(type(a)), 2)
  end
  if type(b) ~= 'string' then
    error(("bad argument #2 to 'diff' (string expected, got %s)"):format(type(b)), 2)
  end
  opts = check_opts('diff', opts, 3)
  local lang = pick_lang('diff', opts, 3)
  local ms, bytes, memory = pick_budget('diff', opts, 3)
  return core.diff(a, b, lang, opts.comments and true or false, opts.verify and true or false, ms, bytes, memory)
end

return M
