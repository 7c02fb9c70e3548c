--- The standards engine: loads rulepacks, runs their rules over TypeScript
--- and TSX sources, and returns findings (docs/rulepacks.md).
---
--- ```lua
--- local standards = require('aegis.standards')
--- local findings, problems = standards.check_source(src, {
---   path = 'a.tsx', rules = { 'typescript-strict/no-var', 'a11y' },
--- })
--- ```
---
--- A rulepack is a Lua file returning `{name, version, description, rules,
--- include?}` (built in under `rulepacks/`, or found on `AEGIS_PATH` through
--- `aegis.path`, or given as a file path). It runs in the sandbox without
--- the `aegis` table: rules reach the world only through `ctx`. Each file is
--- parsed once; every rule's query for its language is compiled into one
--- tree-sitter query, run in C, and its matches are dispatched to rules by
--- pattern index. Lua runs only for a rule's `check` and `fix`, under a
--- budget per rule and file: a rule that errors or runs out of budget is a
--- problem naming the rule and the file, and the other rules still run.
local ast = require('aegis.ast')
local errors = require('aegis.errors')
local fs = require('aegis.fs')
local json = require('aegis.json')
local path = require('aegis.path')
local sandbox = require('aegis.sandbox')
local sbcore = require('aegis.core.sandbox')

local M = {}

local MiB = 1024 * 1024

--- Syntax errors listed per file; past them one problem says how many more
--- there are (a hostile file can hold over 100,000).
M.MAX_SYNTAX_ERRORS = 100

--- Findings kept per rule and file (`standards.max_findings_per_rule` in the
--- config; 0: no cap). Past it findings are counted, not kept: a hostile
--- file can hold 200,000 (RELIABILITY.md B2). The bench corpus (4,178 files
--- of real code) has at most 155 per rule and file; a minified one-line file
--- can have thousands, hence 5,000 (5,000 findings are about 2.5 MB). The
--- count is taken after suppression, so a suppressed finding never uses it up.
M.MAX_FINDINGS_PER_RULE = 5000

--- Budget of one rule over one file (its `check` and `fix` calls), and of
--- loading one rulepack. `standards.budget` in the config overrides the
--- first (`instructions`, `seconds`, `memory_mb`).
---@type table<string, aegis.sandbox.Budget>
M.budget = {
  rule = { instructions = 200000000, seconds = 2, memory = 256 * MiB },
  load = { instructions = 50000000, seconds = 5, memory = 64 * MiB },
}

--- A file with more matches than this (about 15 MB of Lua heap, which
--- stays live until its rules have run) has its rules run with the
--- collector's pause at `BIG_FILE_GC_PAUSE` % instead of Lua's 200 %: the
--- garbage the rules make would otherwise grow as large as the matches
--- before a cycle starts (RELIABILITY.md B2: 256 MiB for hostile inputs).
M.BIG_FILE_MATCHES = 20000
M.BIG_FILE_GC_PAUSE = 130

--- Severities, most severe first.
M.SEVERITIES = { 'error', 'warning', 'info' }
local SEVERITY = { error = 1, warning = 2, info = 3 }

-- {====================================================== config section

local schema_built
local function declare_config()
  if schema_built then return end
  schema_built = true
  local s = require('aegis.schema')
  local config = require('aegis.config')
  local severity = s.enum({ 'error', 'warning', 'info', 'off' })
  config.declare('standards', s.object({
    rulepacks = s.array(s.string({ min = 1 })):optional()
      :describe('Rulepacks (or rule ids) `aegis-run enforce` runs when --rulepacks is not given'
        .. " (default {'aegis-constitutional'})"),
    rules = s.record(s.string({ min = 1 }), s.union({
      severity,
      s.object({ severity = severity:optional(), options = s.any():optional() }),
    })):optional():describe("Per rule ('pack/rule'): a severity, 'off', or {severity =, options =}"),
    theme = s.object({
      tokens = s.any():optional():describe('Theme tokens rules such as ui-theme-tokens suggest'),
    }, { strict = false }):optional():describe('The design system: what ui-theme-tokens checks against'),
    trusted = s.array(s.string({ min = 1 })):optional()
      :describe('Rulepack files or directories trusted to run in-process; any other rulepack that is not'
        .. ' built in runs in a locked-down worker process'),
    budget = s.object({
      instructions = s.integer({ min = 0 }):optional(),
      seconds = s.number({ min = 0 }):optional(),
      memory_mb = s.integer({ min = 0 }):optional(),
      builtin = s.boolean():optional()
        :describe('Count instructions of built-in rulepacks too (default false: their Lua runs without'
          .. ' the count hook, about twice as fast, under the time budget (kept by a timer) and the memory cap)'),
    }):optional():describe('Budget of one rule over one file (default 2e8 instructions, 2 s, 256 MiB)'),
    untrusted = s.object({
      seconds = s.number({ min = 0.1 }):optional():describe('Wall time of an untrusted worker (default 120)'),
      cpu_seconds = s.integer({ min = 1 }):optional()
        :describe('RLIMIT_CPU of an untrusted worker (default: seconds + 1)'),
      memory_mb = s.integer({ min = 16 }):optional():describe('RLIMIT_AS of an untrusted worker (default 1024)'),
    }):optional():describe('Limits of the worker process that runs untrusted rulepacks'),
    ignore = s.array(s.string({ min = 1 })):optional()
      :describe('Extra .gitignore-style patterns for `aegis-run enforce` directory walks'),
    max_warnings = s.integer({ min = -1 }):optional()
      :describe('Exit 1 when there are more warnings than this (-1: no limit; --max-warnings wins)'),
    max_findings_per_rule = s.integer({ min = 0 }):optional()
      :describe('Findings reported per rule and file (default 5000; 0: no cap); past it they are counted,'
        .. ' in the summary, the exit status and --max-warnings, but not listed'),
  }):optional():describe('aegis-run enforce: rulepacks, rule severities and options, theme, trust'))
end
declare_config()

-- }======================================================

-- {====================================================== rulepacks

local function copy_plain(v, seen)
  if type(v) ~= 'table' then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local t = {}
  seen[v] = t
  for k, x in next, v do t[copy_plain(k, seen)] = copy_plain(x, seen) end
  return t
end

-- Raw field read: no metamethod of the rulepack runs on the host side.
local function field(t, k)
  return rawget(t, k)
end

local function pack_error(where, fmt, ...)
  return errors.new('rulepack', where .. ': ' .. fmt:format(...), { exit = 2 })
end

local function valid_query(q)
  if type(q) == 'string' then return true end
  if type(q) ~= 'table' then return false end
  for k, v in next, q do
    if (k ~= 'ts' and k ~= 'tsx') or type(v) ~= 'string' then return false end
  end
  return true
end

-- Checks and copies a rule from a rulepack table: plain fields copied with
-- raw reads, functions kept (they run only under a budget).
local function load_rule(pack, i, r, where)
  if type(r) ~= 'table' then return nil, pack_error(where, 'rules[%d]: table expected, got %s', i, type(r)) end
  local id = field(r, 'id')
  if type(id) ~= 'string' or not id:find('^[%w_][%w_%-%.]*$') then
    return nil, pack_error(where, "rules[%d]: id must be a name (letters, digits, '_', '-', '.')", i)
  end
  local rule = { id = pack.name .. '/' .. id, name = id, pack = pack.name, source = pack.path, builtin = pack.builtin }
  local sev = field(r, 'severity') or 'error'
  if not SEVERITY[sev] then
    return nil, pack_error(where, "rule '%s': severity must be 'error', 'warning' or 'info'", id)
  end
  rule.severity = sev
  local desc = field(r, 'description')
  if type(desc) ~= 'string' or desc == '' then
    return nil, pack_error(where, "rule '%s': description must be a non-empty string", id)
  end
  rule.description = desc
  for _, k in ipairs({ 'eslint', 'help', 'lang' }) do
    local v = field(r, k)
    if v ~= nil and type(v) ~= 'string' then
      return nil, pack_error(where, "rule '%s': %s must be a string", id, k)
    end
    rule[k] = v
  end
  if rule.lang ~= nil and rule.lang ~= 'ts' and rule.lang ~= 'tsx' then
    return nil, pack_error(where, "rule '%s': lang must be 'ts' or 'tsx'", id)
  end
  local q = field(r, 'query')
  if type(q) ~= 'function' and not valid_query(q) then
    return nil, pack_error(where,
      "rule '%s': query must be a string, {ts = string, tsx = string} or a function of the options", id)
  end
  rule.query = type(q) == 'function' and q or copy_plain(q)
  for _, k in ipairs({ 'check', 'fix' }) do
    local f = field(r, k)
    if f ~= nil and type(f) ~= 'function' then
      return nil, pack_error(where, "rule '%s': %s must be a function", id, k)
    end
    rule[k] = f
  end
  local opts = field(r, 'options')
  if opts ~= nil and type(opts) ~= 'table' then
    return nil, pack_error(where, "rule '%s': options must be a table", id)
  end
  rule.options = copy_plain(opts or {})
  return rule
end

local function untrusted_error(file)
  return errors.new('untrusted', ("standards: rulepack '%s' is not trusted (see standards.trusted)"):format(file),
    { exit = 2 })
end

local packs = {}  -- cache: key ('name' or 'file:path') -> pack
local load_pack
local byname = {}  -- pack name -> the pack loaded under it (from a file too)

local function is_file_spec(spec)
  return spec:find('/', 1, true) ~= nil or spec:find('%.lua$') ~= nil
end

--- Finds a rulepack's source: a built-in or `AEGIS_PATH` name (through
--- `aegis.path`), or a file path (anything with a '/' or ending in `.lua`).
---@param spec string
---@return {source: string, path: string, builtin: boolean, name: string}? found
---@return string? err
---@return string? code 'not_found', 'invalid' or 'io'
function M.find(spec)
  if type(spec) ~= 'string' then error("bad argument #1 to 'find' (string expected)", 2) end
  if is_file_spec(spec) then
    local src, reason, code = fs.read(spec)
    if not src then
      return nil, ("standards: read rulepack '%s': %s"):format(spec, reason), code
    end
    local base = spec:match('([^/]+)/init%.lua$') or spec:match('([^/]+)%.lua$') or spec:match('([^/]+)$')
    return { source = src, path = spec, builtin = false, name = base }
  end
  local found, err, code = path.find('rulepacks', spec)
  if not found then return nil, 'standards: ' .. err:gsub('^path: ', ''), code end
  found.name = spec
  return found
end

--- Loads a rulepack (cached): runs its file in the sandbox without `aegis`,
--- checks its table, and loads the packs it `include`s. Rule ids become
--- '<pack>/<id>'; included rules keep their own pack's ids.
--- `opts.trusted(found)` (found as from `find`) is asked before a pack or
--- any pack it includes runs; false refuses it (code 'untrusted').
---@param spec string A rulepack name or a file path
---@param opts? {trusted?: fun(found: table): boolean}
---@return table? pack `{name, version, description, path, builtin, sha256, rules}`
---@return aegis.Error? err code 'rulepack' (exit 2), 'not_found' or 'untrusted'
function M.load(spec, opts)
  if type(spec) ~= 'string' then error("bad argument #1 to 'load' (string expected)", 2) end
  if opts ~= nil and type(opts) ~= 'table' then error("bad argument #2 to 'load' (table expected)", 2) end
  return load_pack(spec, opts and opts.trusted, {})
end

load_pack = function(spec, trusted, stack)
  local key = is_file_spec(spec) and 'file:' .. spec or spec
  if packs[key] then
    if trusted and not trusted(packs[key]) then
      return nil, untrusted_error(packs[key].path)
    end
    return packs[key]
  end
  if stack[key] then
    return nil, errors.new('rulepack', ("standards: rulepack '%s' includes itself"):format(spec), { exit = 2 })
  end
  local found, msg, code = M.find(spec)
  if not found then
    return nil, errors.new(code == 'not_found' and 'not_found' or 'rulepack', msg, { exit = 2 })
  end
  local where = ("rulepack '%s'"):format(found.path)
  if trusted and not trusted(found) then
    return nil, untrusted_error(found.path)
  end
  local env = sandbox.env({ aegis = false })
  local ok, t = sandbox.run({ source = found.source, name = found.path, env = env, budget = M.budget.load })
  if not ok then return nil, errors.new('rulepack', t.msg, { exit = 2 }) end
  if type(t) ~= 'table' then return nil, pack_error(where, 'must return a table, got %s', type(t)) end
  local name = field(t, 'name')
  if type(name) ~= 'string' or not name:find('^[%w_][%w_%-%.]*$') then
    return nil, pack_error(where, 'name must be a rulepack name')
  end
  -- sha256 is hashed on first read, then kept as a field: no check needs
  -- it, and the built-in packs are 40-45 KB each (7.7M instructions)
  local source = found.source
  local pack = setmetatable({
    name = name, path = found.path, builtin = found.builtin == true,
    version = field(t, 'version'), description = field(t, 'description'), rules = {},
  }, { __index = function(p, k)
    if k ~= 'sha256' then return nil end
    local h = require('aegis.hash').sha256(source)
    rawset(p, 'sha256', h)
    return h
  end })
  if pack.version ~= nil and type(pack.version) ~= 'string' then
    return nil, pack_error(where, 'version must be a string')
  end
  if pack.description ~= nil and type(pack.description) ~= 'string' then
    return nil, pack_error(where, 'description must be a string')
  end
  local rules = field(t, 'rules') or {}
  if type(rules) ~= 'table' then return nil, pack_error(where, 'rules must be a list') end
  local include = field(t, 'include') or {}
  if type(include) ~= 'table' then return nil, pack_error(where, 'include must be a list of rulepack names') end
  stack[key] = true
  local seen = {}
  for i = 1, rawlen(include) do
    local inc = rawget(include, i)
    if type(inc) ~= 'string' or is_file_spec(inc) then
      return nil, pack_error(where, 'include[%d] must be a rulepack name', i)
    end
    local sub, err = load_pack(inc, trusted, stack)
    if not sub then return nil, err end
    for _, r in ipairs(sub.rules) do
      if not seen[r.id] then
        seen[r.id] = true
        pack.rules[#pack.rules + 1] = r
      end
    end
  end
  for i = 1, rawlen(rules) do
    local r, err = load_rule(pack, i, rawget(rules, i), where)
    if not r then return nil, err end
    if seen[r.id] then return nil, pack_error(where, "rule '%s' defined twice", r.name) end
    seen[r.id] = true
    pack.rules[#pack.rules + 1] = r
  end
  stack[key] = nil
  packs[key] = pack
  byname[pack.name] = byname[pack.name] or pack
  return pack
end

--- Names of the rulepacks on `AEGIS_PATH`, in the project and built in.
---@return string[]
function M.rulepacks()
  return path.list('rulepacks')
end

--- Forgets loaded rulepacks and engines (for tests).
function M.reset()
  packs, byname = {}, {}
  M._engines = setmetatable({}, { __mode = 'k' })
end

-- }======================================================

-- {====================================================== engine

--- What `engine` and `check_source` take.
---@class aegis.standards.Opts
---@field rules? string[] Rule ids ('pack/rule'), rulepack names or rulepack files
--- (default: the config's `rulepacks`, else 'aegis-constitutional')
---@field config? table The `standards` config section (default `config.get().standards`)
---@field path? string File name, for the language and messages (default 'input.ts')
---@field lang? 'ts'|'tsx' Wins over the path's extension
---@field store? aegis.store.Db Store `ctx.artifact()` reads (default: the project store, when it exists)
---@field store_url? string URL of that store instead of `store.default_url()`
---@field trusted? fun(found: table): boolean Asked before any rulepack runs (see `load`)
---@field preload? string[] Rulepack files loaded first, so 'pack/rule' ids can name their rules
---@field timings? boolean Count CPU seconds per rule and per stage in `engine.timings`

---@class aegis.standards.Finding
---@field rule string 'pack/rule'
---@field severity 'error'|'warning'|'info'
---@field message string
---@field path string
---@field line integer 1-based
---@field col integer 1-based, in bytes
---@field end_line integer
---@field end_col integer 1-based, exclusive
---@field start_byte integer 0-based
---@field end_byte integer 0-based, exclusive
---@field fix? {start_byte: integer, end_byte: integer, text: string}

--- A (file, rule) over the cap of findings per rule and file: its first
--- `shown` findings are reported, `not_shown` more were counted only.
---@class aegis.standards.Capped
---@field path string
---@field rule string 'pack/rule'
---@field severity 'error'|'warning'|'info'
---@field shown integer The cap
---@field not_shown integer

---@class aegis.standards.Problem
---@field kind 'rule'|'parse'|'syntax'|'read'
---@field rule? string The rule that failed
---@field path string
---@field message string
---@field code? string 'runtime', 'budget', 'memory', 'timeout', 'too_large', 'io'
---@field line? integer
---@field col? integer

local function config_section(cfg)
  if cfg ~= nil then
    if type(cfg) ~= 'table' then error("bad argument #2 (config must be a table)", 3) end
    return cfg
  end
  local c = require('aegis.config').get()
  return c.standards or {}
end

local function default_rules(cfg)
  if cfg.rulepacks and #cfg.rulepacks > 0 then return cfg.rulepacks end
  return { 'aegis-constitutional' }
end

-- Resolves rule specs to rule records, in a stable order (by spec, then the
-- pack's order). Raises an aegis.errors object for an unknown pack or rule.
local function resolve(specs, trusted)
  local out, seen = {}, {}
  local function add(r)
    if not seen[r.id] then
      seen[r.id] = true
      out[#out + 1] = r
    end
  end
  for i, spec in ipairs(specs) do
    if type(spec) ~= 'string' then error(('bad argument (rules[%d] must be a string)'):format(i), 4) end
    local packname, rname = spec:match('^([%w_][%w_%-%.]*)/([%w_][%w_%-%.]*)$')
    if packname and not spec:find('%.lua$') then
      local pack, err = byname[packname], nil
      if not pack then pack, err = load_pack(packname, trusted, {}) end
      if not pack then error(err, 0) end
      local hit
      for _, r in ipairs(pack.rules) do
        if r.id == spec or (r.name == rname and r.pack ~= packname and not hit) then hit = r end
      end
      if not hit then
        error(errors.new('usage', ("standards: no rule '%s' in rulepack '%s'"):format(rname, packname)), 0)
      end
      add(hit)
    else
      local pack, err = load_pack(spec, trusted, {})
      if not pack then error(err, 0) end
      for _, r in ipairs(pack.rules) do add(r) end
    end
  end
  return out
end

-- The rule as configured: severity and options overlaid by config.rules.
local function configure(rule, cfg)
  local o = cfg.rules and cfg.rules[rule.id]
  local sev, opts = rule.severity, rule.options
  if type(o) == 'string' then
    sev = o
  elseif type(o) == 'table' then
    sev = o.severity or sev
    if type(o.options) == 'table' then
      local merged = copy_plain(rule.options)
      for k, v in pairs(o.options) do merged[k] = copy_plain(v) end
      opts = merged
    elseif o.options ~= nil then
      opts = o.options
    end
  end
  if sev == 'off' then return nil end
  local r = setmetatable({ severity = sev, options = copy_plain(opts) }, { __index = rule })
  if type(rule.query) == 'function' then
    -- a query that depends on the options: its text for these, made under
    -- the budget of loading a pack (the function is the pack's code)
    local b = M.budget.load
    local ok, q, msg = sbcore.call(b.instructions, b.seconds, b.memory, '@' .. rule.source, rule.query,
      copy_plain(r.options))
    if not ok then
      error(pack_error(rule.source, "rule '%s': query(options): %s", rule.id, tostring(msg)), 0)
    end
    if not valid_query(q) then
      error(pack_error(rule.source,
        "rule '%s': query(options) must return a string or {ts = string, tsx = string}, got %s", rule.id, type(q)), 0)
    end
    r.query = copy_plain(q)
  end
  return r
end

-- Number of patterns of a compiled query.
local function pattern_count(q)
  return q:pattern_count()
end

local function query_for(rule, lang)
  if rule.lang and rule.lang ~= lang then return nil end
  local q = rule.query
  if type(q) == 'table' then return q[lang] end
  return q
end

-- The combined query of `rules` for `lang`: one tree-sitter query; owner[p]
-- (the rules sharing that query text: each text is matched once however
-- many rules use it) and base[p] map its pattern p (1-based) back to the
-- rules and the rules' own pattern number. Rules whose query does not
-- compile are problems. When some texts are not chains (the fast path of
-- aegis.ast), they are split off into a second query run by the cursor
-- (see `combine`).
local DIRECTIVE_QUERY = '((comment) @c (#match? @c "(aegis|eslint)-(disable|enable)"))'
local DIRECTIVE = {}  -- owner of that pattern

-- Whether query text `src` is whole patterns on its own, so that in a
-- concatenation no pattern of it can reach into its neighbours: brackets
-- balanced outside strings and comments, and it starts with a node, a
-- group or a string (not with a capture or quantifier that would attach to
-- the pattern before it). Patterns then start in the text they belong to.
local function self_contained(src)
  -- string.find from one character that matters to the next (this runs
  -- over every rule's query text when an engine is made)
  local find, byte = string.find, string.byte
  local depth, i = 0, 1
  local first = true
  while true do
    i = find(src, first and '%S' or '[;"()%[%]]', i)
    if not i then return depth == 0 end
    local c = byte(src, i)
    if c == 59 then  -- ';': a comment to the end of the line
      local j = find(src, '\n', i, true)
      if not j then return depth == 0 end
      i = j + 1
    else
      if first and c ~= 40 and c ~= 91 and c ~= 34 then return false end  -- not '(', '[' nor '"'
      first = false
      if c == 34 then  -- '"': to the closing one, past escapes
        i = i + 1
        while true do
          local j = find(src, '["\\]', i)
          if not j then return false end
          if byte(src, j) == 34 then
            i = j
            break
          end
          i = j + 2
        end
      elseif c == 40 or c == 91 then
        depth = depth + 1
      elseif c == 41 or c == 93 then
        depth = depth - 1
        if depth < 0 then return false end
      end
      i = i + 1
    end
  end
end

-- Whether some rule of `group` (the rules sharing a query text) is built
-- in: the text's structure is then known good (the rulepack's specs run
-- it), and tree-sitter's analysis of it can be skipped (ast.query's
-- `analyze`).
local function tested(group)
  for _, r in ipairs(group) do
    if r.builtin then return true end
  end
  return false
end

-- The texts of `texts` (with their rules in `group`) that no built-in rule
-- has, as one query source (nil when there is none): what tree-sitter
-- still analyses when the combined query is compiled without it.
local function untested_source(texts, group)
  local own = {}
  for _, src in ipairs(texts) do
    if not tested(group[src]) then own[#own + 1] = src end
  end
  return #own > 0 and table.concat(own, '\n') or nil
end

local FLAT = { analyze = false }

-- The source of the combined query of `rules` for `lang` when every rule's
-- text is self-contained (nil otherwise, or when no rule has a query for
-- it); with its distinct texts in order, the rules of each text, and the
-- offset where each text (and then the directive's pattern) starts.
local function combined_source(rules, lang, directive)
  local parts, texts, group, offsets = {}, {}, {}, {}
  local at = 0
  for _, r in ipairs(rules) do
    local src = query_for(r, lang)
    if src and group[src] then
      table.insert(group[src], r)
    elseif src then
      if not self_contained(src) then return nil end
      group[src] = { r }
      texts[#texts + 1] = src
      parts[#parts + 1] = src
      offsets[#offsets + 1] = at
      at = at + #src + 1
    end
  end
  if #texts == 0 then return nil end
  if directive then
    parts[#parts + 1] = DIRECTIVE_QUERY
    offsets[#offsets + 1] = at
  end
  return table.concat(parts, '\n'), texts, group, offsets
end

-- The combined query when every rule's text is self-contained and the whole
-- compiles: each text's patterns are those that start inside it. Compiling
-- a query costs milliseconds a pattern with a child (tree-sitter analyses
-- the grammar's tables for each), so the texts are not compiled one by one
-- then, and the combined query skips that analysis: the texts of rules
-- that are not built in have it on their own. Returns nil when that does
-- not hold (the caller then compiles each text alone).
local function combine_at_once(rules, lang, directive)
  local source, texts, group, offsets = combined_source(rules, lang, directive)
  if not source then return nil end
  local combined = ast.query(lang, source, FLAT)
  if not combined then return nil end
  local own = untested_source(texts, group)
  if own and not ast.query(lang, own) then return nil end
  local owner, base = {}, {}
  local k, first = 0, 0   -- the text pattern p starts in, and its first pattern - 1
  for p = 1, combined:pattern_count() do
    local sb = combined:pattern_start(p)
    while k < #offsets and sb >= offsets[k + 1] do
      k = k + 1
      first = p - 1
    end
    if k == 0 then return nil end
    owner[p] = k <= #texts and group[texts[k]] or DIRECTIVE
    base[p] = first
  end
  if directive and owner[#owner] ~= DIRECTIVE then return nil end
  return { query = combined, owner = owner, base = base, bad = {} }
end

-- The combined query of `rules` (nil when none has a query for `lang`),
-- with DIRECTIVE_QUERY last when `directive` ('always': even with no rule).
local function combine_all(rules, lang, directive)
  local once = combine_at_once(rules, lang, directive)
  if once then return once end
  local parts, owner, base, bad = {}, {}, {}, {}
  local group = {}  -- query text -> the owner list of its patterns
  local n = 0
  for _, r in ipairs(rules) do
    local src = query_for(r, lang)
    if src and group[src] then
      table.insert(group[src], r)
    elseif src then
      local q, err = ast.query(lang, src, r.builtin and FLAT or nil)
      if not q then
        bad[#bad + 1] = { rule = r, message = err }
      else
        local c = pattern_count(q)
        local g = { r }
        group[src] = g
        for p = 1, c do
          owner[n + p] = g
          base[n + p] = n
        end
        n = n + c
        parts[#parts + 1] = src
      end
    end
  end
  local combined
  if n > 0 or directive == 'always' then
    if directive then
      parts[#parts + 1] = DIRECTIVE_QUERY
      owner[n + 1], base[n + 1] = DIRECTIVE, n
    end
    local err
    combined, err = ast.query(lang, table.concat(parts, '\n'), FLAT)  -- (each part is checked above)
    if not combined then error(('standards: combined %s query: %s'):format(lang, err)) end
  end
  return { query = combined, owner = owner, base = base, bad = bad }
end

-- The queries of `rules` for `lang`: {query, owner, base, bad, cursor?}.
-- `query` holds every rule whose query text is chains only (q:fast(p) for
-- each of its patterns) and DIRECTIVE_QUERY, so that it takes aegis.ast's
-- fast path, which builds the scope analysis in the same walk; `cursor`
-- ({query, owner, base, rules}) holds the other texts, run by tree-sitter's
-- query cursor (and only their rules lose a file where it times out). A
-- text stays whole in one part, so each rule gets the matches it would get
-- from one query, in the same order.
local function combine(rules, lang)
  local all = combine_all(rules, lang, true)
  local q = all.query
  if q == nil or q:fast() then return all end
  local slow, group = {}, {}
  for p, g in ipairs(all.owner) do
    if g ~= DIRECTIVE then
      for _, r in ipairs(g) do group[r] = g end
      if not q:fast(p) then slow[g] = true end
    end
  end
  if next(slow) == nil then return all end  -- only the directive pattern (no memory for its fast form)
  local fr, sr = {}, {}
  for _, r in ipairs(rules) do
    local g = group[r]
    if g then
      local list = slow[g] and sr or fr
      list[#list + 1] = r
    end
  end
  local fast = combine_all(fr, lang, 'always')
  local cursor = combine_all(sr, lang, false)
  cursor.rules = sr
  return { query = fast.query, owner = fast.owner, base = fast.base, bad = all.bad, cursor = cursor }
end

local Engine = {}
Engine.__index = Engine

M._engines = setmetatable({}, { __mode = 'k' })

--- Builds an engine: the rules resolved and configured, their queries
--- compiled per language on first use. Raises an `aegis.errors` object
--- (exit 2) for an unknown or broken rulepack or rule.
---@param opts? aegis.standards.Opts
---@return aegis.standards.Engine
function M.engine(opts)
  if opts ~= nil and type(opts) ~= 'table' then error("bad argument #1 to 'engine' (table expected)", 2) end
  opts = opts or {}
  local cfg = config_section(opts.config)
  local specs = opts.rules or default_rules(cfg)
  if type(specs) ~= 'table' then error("bad argument #1 to 'engine' (rules must be a list of strings)", 2) end
  local rules = {}
  -- rulepack files first: 'pack/rule' ids may name their rules
  local preload = table.move(opts.preload or {}, 1, #(opts.preload or {}), 1, {})
  for _, sp in ipairs(specs) do
    if type(sp) == 'string' and sp:find('%.lua$') then preload[#preload + 1] = sp end
  end
  for _, p in ipairs(preload) do
    local pack, err = load_pack(p, opts.trusted, {})
    if not pack then error(err, 0) end
  end
  for _, r in ipairs(resolve(specs, opts.trusted)) do
    local c = configure(r, cfg)
    if c then rules[#rules + 1] = c end
  end
  local b = cfg.budget or {}
  local d = M.budget.rule
  local cap = cfg.max_findings_per_rule
  if cap == nil then cap = M.MAX_FINDINGS_PER_RULE end
  if math.type(cap) ~= 'integer' or cap < 0 then
    errors.config('standards: max_findings_per_rule must be a non-negative integer, got %s', tostring(cap))
  end
  ---@class aegis.standards.Engine
  local e = setmetatable({
    rules = rules, config = cfg, langs = {}, store = opts.store, store_url = opts.store_url,
    budget = {
      instructions = b.instructions or d.instructions,
      seconds = b.seconds or d.seconds,
      memory = b.memory_mb and b.memory_mb * MiB or d.memory,
      builtin = b.builtin == true,
    },
    tsconfigs = {},
    timings = opts.timings and {} or nil,
    cap = cap > 0 and cap or nil,
  }, Engine)
  return e
end

function Engine:_lang(lang)
  local l = self.langs[lang]
  if not l then
    l = combine(self.rules, lang)
    self.langs[lang] = l
  end
  return l
end

--- Starts compiling the engine's queries for `langs` (default both) on
--- threads of their own (ast.prepare), to be taken when a file of that
--- language is first checked, or by `ready`: for a caller that has other
--- work to do meanwhile (enforce lists the files).
---@param langs? ('ts'|'tsx')[]
function Engine:prepare(langs)
  for _, lang in ipairs(langs or { 'ts', 'tsx' }) do
    if not self.langs[lang] then
      local source, texts, group = combined_source(self.rules, lang, true)
      if source then
        ast.prepare(lang, source, FLAT)
        local own = untested_source(texts, group)
        if own then ast.prepare(lang, own) end
      end
      self.prepared = self.prepared or {}
      self.prepared[lang] = true
    end
  end
end

--- Makes the queries `prepare` started ready (waits for them), and waits
--- for any other query compile under way: before a fork, so that the copies
--- have them made (and a process with a compile under way cannot fork).
function Engine:ready()
  for lang in pairs(self.prepared or {}) do self:_lang(lang) end
  ast.settle()
end

-- {------------------------------------------------------ positions

-- Byte offsets where lines start (1-based list; lines[1] = 0).
local function line_starts(src)
  local t, n = { 0 }, 1
  local i = 1
  while true do
    local j = src:find('\n', i, true)
    if not j then break end
    n = n + 1
    t[n] = j
    i = j + 1
  end
  return t
end

-- 1-based line and column of byte offset `b` (0-based).
local function linecol(starts, b)
  local lo, hi = 1, #starts
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if starts[mid] <= b then lo = mid else hi = mid - 1 end
  end
  return lo, b - starts[lo] + 1
end

-- }------------------------------------------------------

-- {------------------------------------------------------ suppression

local KINDS = { ['disable-next-line'] = true, ['disable-line'] = true, disable = true, enable = true }

-- The directives in the file's comments: {family, kind, names (nil: all),
-- line, end_line, start_byte}.
-- The comments that may be directives come from the combined query (its
-- last pattern, DIRECTIVE_QUERY), so finding them costs no second walk of
-- the tree.
local function directives(file)
  local out = {}
  for _, node in ipairs(file.comments or {}) do
    local text = node:text()
    local body = text:match('^//(.*)$') or text:match('^/%*(.-)%*/$') or ''
    body = body:gsub('^%s*%**%s*', '')
    local family, kind, rest = body:match('^(%a+)%-([%a%-]+)(.*)$')
    if (family == 'aegis' or family == 'eslint') and KINDS[kind] and (rest == '' or rest:find('^%s')) then
      rest = rest:gsub('%s%-%-%s.*$', ''):gsub('%s%-%-$', '')
      local names
      for name in rest:gmatch('[^,%s]+') do
        names = names or {}
        names[name] = true
      end
      local r = node:range()
      out[#out + 1] = {
        family = family, kind = kind, names = names,
        line = r.start_row + 1, end_line = r.end_row + 1, start_byte = r.start_byte,
      }
    end
  end
  return out
end

-- Whether directive names `names` (nil: all) cover `rule` in `family`.
local function covers(family, names, rule)
  if family == 'eslint' then
    if not rule.eslint then return false end
    return names == nil or names[rule.eslint] == true
  end
  return names == nil or names[rule.id] == true or names[rule.name] == true
end

-- Whether a directive of the file suppresses a finding: a function
-- (finding, rule) -> boolean, or false when the file has no directive.
-- Built before the file's first finding is reported (its comments come
-- from the query's walk, before any rule runs), so each finding is judged
-- as it is reported and only the findings kept are counted against the cap.
local function suppressor(file)
  local dirs = directives(file)
  if #dirs == 0 then return false end
  local ranges = {}  -- {family, names, from, to}
  local open = {}
  local bylines = {}  -- line -> the disable-line and disable-next-line directives that cover it
  for _, d in ipairs(dirs) do
    if d.kind == 'disable' then
      local r = { family = d.family, names = d.names, from = d.start_byte, to = math.huge }
      open[#open + 1] = r
      ranges[#ranges + 1] = r
    elseif d.kind == 'enable' then
      for _, r in ipairs(open) do
        if r.to == math.huge and r.family == d.family then
          if d.names == nil then
            r.to = d.start_byte
          elseif r.names then
            local all = true
            for n in pairs(r.names) do if not d.names[n] then all = false end end
            if all then r.to = d.start_byte end
          end
        end
      end
    else
      local line = d.kind == 'disable-next-line' and d.end_line + 1 or d.line
      local at = bylines[line]
      if not at then
        at = {}
        bylines[line] = at
      end
      at[#at + 1] = d
    end
  end
  local own = file.path
  return function(f, rule)
    if f.path ~= own then return false end
    local at = bylines[f.line]
    if at then
      for _, d in ipairs(at) do
        if covers(d.family, d.names, rule) then return true end
      end
    end
    local b = f.start_byte
    for _, r in ipairs(ranges) do
      if b >= r.from and b < r.to and covers(r.family, r.names, rule) then return true end
    end
    return false
  end
end

-- Counts one finding of `rule` on file `at` past the cap (key: see admit).
local function count_over(file, key, at, rule)
  local c = file.capped[key]
  if not c then
    c = { path = at, rule = rule.id, severity = rule.severity, shown = file.cap, not_shown = 0 }
    file.capped[key] = c
  end
  c.not_shown = c.not_shown + 1
end

-- Whether finding `f` of `rule` is kept: not when a directive suppresses
-- it, nor past the engine's cap of findings per rule and file, where it is
-- only counted (file.capped). Each finding kept counts against the cap.
local function admit(file, rule, f)
  local sup = file.suppressed
  if sup == nil then
    local tm = file.timings
    local t0 = tm and os.clock()
    sup = suppressor(file)
    file.suppressed = sup
    if tm then
      local dt = os.clock() - t0
      tm['(suppress)'] = (tm['(suppress)'] or 0) + dt
      tm[rule.id] = (tm[rule.id] or 0) - dt
    end
  end
  if sup and sup(f, rule) then return false end
  local cap = file.cap
  if cap then
    -- counted per rule, or per rule and path for a finding on another file
    local key = f.path == file.path and rule or f.path .. '\0' .. rule.id
    local counts = file.counts
    local n = (counts[key] or 0) + 1
    counts[key] = n
    if n > cap then
      count_over(file, key, f.path, rule)
      return false
    end
  end
  return true
end

-- Whether the next finding of `rule` on this file would only be counted:
-- the cap is reached and no directive in the file could suppress it. Such
-- a finding at a node is counted without being made (no tables: a hostile
-- file's 100,000 findings would be 50 MB of garbage).
local function counted_only(file, rule)
  local cap = file.cap
  return cap ~= nil and file.suppressed == false and (file.counts[rule] or 0) >= cap
end

-- counted_only for a report table {node = , path = nil}: counts it and
-- returns true, or returns false (the finding is to be made).
local function count_node_report(file, rule, spec)
  if type(rawget(spec, 'node')) == 'userdata' and rawget(spec, 'path') == nil and counted_only(file, rule) then
    count_over(file, rule, file.path, rule)
    return true
  end
  return false
end

-- }------------------------------------------------------

-- {------------------------------------------------------ ctx helpers

-- JSONC: comments and trailing commas removed outside strings.
local function strip_jsonc(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c == '"' then
      local j = i + 1
      while j <= n do
        local d = s:sub(j, j)
        if d == '\\' then j = j + 2
        elseif d == '"' then break
        else j = j + 1 end
      end
      out[#out + 1] = s:sub(i, j)
      i = j + 1
    elseif s:sub(i, i + 1) == '//' then
      local j = s:find('\n', i, true) or n + 1
      i = j
    elseif s:sub(i, i + 1) == '/*' then
      local j = s:find('*/', i + 2, true)
      i = j and j + 2 or n + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  local t = table.concat(out)
  -- a comma followed by only whitespace and a closing bracket
  t = t:gsub(',(%s*[%]}])', '%1')
  return t
end

--- Decodes JSON with comments and trailing commas (tsconfig.json).
---@param s string
---@return any? value
---@return string? err
function M.decode_jsonc(s)
  if type(s) ~= 'string' then error("bad argument #1 to 'decode_jsonc' (string expected)", 2) end
  return json.decode(strip_jsonc(s))
end

local find = string.find

local function dirname(p)
  -- the last '/' by plain finds from one to the next (a pattern with
  -- `(.*)/` backtracks over every byte of the path: ~3x the instructions)
  local k = find(p, '/', 1, true)
  if k == nil then return '.' end
  local i = find(p, '/', k + 1, true)
  while i do
    k = i
    i = find(p, '/', k + 1, true)
  end
  if k == 1 then return '/' end
  return p:sub(1, k - 1)
end

-- The nearest tsconfig.json at or above `dir`, decoded, with its path; nil
-- when there is none (stops after a directory holding .git).
function Engine:_tsconfig(dir)
  if self.tsconfigs[dir] ~= nil then return self.tsconfigs[dir] or nil end
  local p = (dir == '/' and '' or dir) .. '/tsconfig.json'
  if dir == '.' then p = 'tsconfig.json' end
  local res = false
  -- stat first: most directories have no tsconfig.json, and a read that
  -- fails makes its error message (exists is nil on an error: read then)
  local src = fs.exists(p) ~= false and fs.read(p) or nil
  if src then
    local v, err = M.decode_jsonc(src)
    if type(v) == 'table' then
      v = copy_plain(v)
      v.path = p
      res = v
    else
      res = { path = p, error = err or 'not an object' }
    end
  elseif not (fs.exists(dir .. '/.git') or dir == '/') then
    local up
    if dir == '.' then
      local cwd = fs.cwd()
      up = cwd and dirname(cwd)
    else
      up = dirname(dir)
      if up == dir then up = nil end
      if up == '.' and dir ~= '.' and not dir:find('^/') then up = '.' end
    end
    if up and up ~= dir then res = self:_tsconfig(up) or false end
  end
  self.tsconfigs[dir] = res
  return res or nil
end

local store_state = {}  -- url -> false (no project store) or an open db

function Engine:_artifact(source)
  local db = self.store
  if db == nil then
    local store = require('aegis.store')
    local url = self.store_url or store.default_url()
    if store_state[url] == nil then
      store_state[url] = false
      local file = url:match('^sqlite:(.*)$')
      if not file or (file ~= ':memory:' and fs.exists(file)) then
        local d = store.open(url)
        if d then store_state[url] = d end
      end
    end
    db = store_state[url] or nil
  end
  if not db then return nil end
  local h = require('aegis.hash').sha256(source)
  local info = require('aegis.artifact').info(h, db)
  return info and copy_plain(info) or nil
end

-- }------------------------------------------------------

-- A finding at a node, or from a report table {node | start_byte, end_byte |
-- line, col, message, path}.
local function make_finding(file, rule, spec, default_node, message)
  -- each finding is made by one constructor with all its fields: no table
  -- grown field by field (two resizes of its hash part)
  message = message or rule.description
  local node = spec and spec.node or default_node
  if spec and spec.path ~= nil and spec.path ~= file.path then
    if type(spec.path) ~= 'string' then error('ctx.report: path must be a string', 0) end
    local line = math.tointeger(spec.line) or 1
    local col = math.tointeger(spec.col) or 1
    return { rule = rule.id, severity = rule.severity, message = message, path = spec.path,
      line = line, col = col, end_line = math.tointeger(spec.end_line) or line,
      end_col = math.tointeger(spec.end_col) or col, start_byte = 0, end_byte = 0 }
  end
  if spec and spec.start_byte ~= nil and spec.node == nil then
    local sb, eb = math.tointeger(spec.start_byte), math.tointeger(spec.end_byte or spec.start_byte)
    if not sb or not eb or sb < 0 or eb < sb or eb > #file.source then
      error('ctx.report: start_byte/end_byte out of range', 0)
    end
    -- the tree's line index (C); a closed tree (ctx.report after the
    -- check) falls back to one made here
    local tree = file.tree
    local line, col, end_line, end_col
    -- a built-in rule reports only while the tree is open (tested); any
    -- other rule may report after the check, or close ctx.tree itself
    if rule.builtin or tree and tree.position and tostring(tree) ~= 'aegis.ast.Tree (closed)' then
      line, col = tree:position(sb)
      end_line, end_col = tree:position(eb)
    else
      file.starts = file.starts or line_starts(file.source)
      line, col = linecol(file.starts, sb)
      end_line, end_col = linecol(file.starts, eb)
    end
    return { rule = rule.id, severity = rule.severity, message = message, path = file.path,
      line = line, col = col, end_line = end_line, end_col = end_col, start_byte = sb, end_byte = eb }
  end
  if spec and spec.line ~= nil and spec.node == nil then
    local line = math.tointeger(spec.line) or 1
    local col = math.tointeger(spec.col) or 1
    file.starts = file.starts or line_starts(file.source)
    local sb = (file.starts[line] or 0) + col - 1
    return { rule = rule.id, severity = rule.severity, message = message, path = file.path,
      line = line, col = col, end_line = math.tointeger(spec.end_line) or line,
      end_col = math.tointeger(spec.end_col) or col, start_byte = sb, end_byte = sb }
  end
  if node == nil then error('ctx.report: node, start_byte or line expected', 0) end
  local r = node:range()
  return { rule = rule.id, severity = rule.severity, message = message, path = file.path,
    line = r.start_row + 1, col = r.start_col + 1, end_line = r.end_row + 1, end_col = r.end_col + 1,
    start_byte = r.start_byte, end_byte = r.end_byte }
end

-- The node a finding of match `m` is at: its @report capture, else its
-- first. A one-capture match of aegis.ast makes its list on first read of
-- m.list (two tables), from the one capture: for a built-in rule, whose
-- match is that table as made (tested not to write to it; dispatch gives
-- the same table only to built-in rules) that capture is read instead.
local function default_node(m, builtin)
  local caps = m.captures
  local node = caps.report
  if node then return node end
  local list
  if builtin then
    list = rawget(m, 'list')
    if list == nil then
      local _, n = next(caps)
      return n
    end
  else
    list = m.list
  end
  return list[1] and list[1].node
end

local function check_fix(fx)
  if fx == nil or fx == false then return nil end
  if type(fx) ~= 'table' then error('fix must return a table {start_byte, end_byte, text}', 0) end
  local sb, eb, text = math.tointeger(rawget(fx, 'start_byte')), math.tointeger(rawget(fx, 'end_byte')),
    rawget(fx, 'text')
  if not sb or not eb or type(text) ~= 'string' or eb < sb then
    error('fix must return a table {start_byte, end_byte, text}', 0)
  end
  return { start_byte = sb, end_byte = eb, text = text }
end

-- A finding of `rule` at the match's node (`message`: the rule's
-- description when nil) into `out`, unless suppressed or over the cap.
local function at_node(file, rule, m, message, out, fix, ctx)
  local node = default_node(m, rule.builtin)
  if node ~= nil and counted_only(file, rule) then
    count_over(file, rule, file.path, rule)
    return
  end
  local f = make_finding(file, rule, nil, node, message)
  if admit(file, rule, f) then
    if fix then f.fix = check_fix(fix(ctx, m)) end
    out[#out + 1] = f
  end
end

-- Runs one rule's matches on one file (inside the budget). Each match is
-- let go of once handled: a hostile file has 100,000 (720 bytes each).
-- The fix of a finding that is not kept is not asked for.
local function run_rule(file, rule, matches, ctx, out)
  local check, fix = rule.check, rule.fix
  for i = 1, #matches do
    local m = matches[i]
    matches[i] = false
    if check == nil then
      at_node(file, rule, m, nil, out, fix, ctx)
    else
      local res = check(ctx, m)
      if not res then goto next end  -- most matches: nil, no finding
      if res == true then
        at_node(file, rule, m, nil, out, fix, ctx)
      elseif type(res) == 'string' then
        at_node(file, rule, m, res, out, fix, ctx)
      elseif type(res) == 'table' then
        local msg = rawget(res, 'message')
        if msg ~= nil and type(msg) ~= 'string' then error('check: message must be a string', 0) end
        if count_node_report(file, rule, res) then goto next end
        -- a built-in rule's table is plain and has none of the other fields
        -- (tested): read as it is, not copied
        local f = make_finding(file, rule, rule.builtin and res or {
          node = rawget(res, 'node'), start_byte = rawget(res, 'start_byte'), end_byte = rawget(res, 'end_byte'),
          line = rawget(res, 'line'), col = rawget(res, 'col'), path = rawget(res, 'path'),
        }, default_node(m, rule.builtin), msg)
        if admit(file, rule, f) then
          if fix then f.fix = check_fix(fix(ctx, m)) end
          out[#out + 1] = f
        end
      else
        error('check must return nil, a boolean, a string or a table, got ' .. type(res), 0)
      end
    end
    ::next::
  end
end

-- The ctx a rule's check gets for one file. A built-in rule (ours, tested
-- not to keep its ctx past the check nor to write to what it reads) gets
-- one ctx per engine, pointed at each file in turn: no table and closures
-- per file and rule. Any other rule gets a fresh ctx per file.
function Engine:_ctx(file, rule, out)
  local st = rule.builtin and rule._ctxst
  if st then
    st.file, st.out = file, out
    local ctx = st.ctx
    ctx.path, ctx.lang, ctx.source, ctx.tree, ctx.root = file.path, file.lang, file.source, file.tree, file.root
    return ctx
  end
  st = { file = file, out = out }
  local cfg = self.config
  -- ctx.config is copied on first read (the theme's token lists can be long)
  -- a built-in rule (ours, tested not to write to them) shares the engine's
  -- copy of its options; any other gets its own copy per file
  local options
  if rule.builtin then
    options = rule._options
    if options == nil then
      options = copy_plain(rule.options)
      rule._options = options
    end
  else
    options = copy_plain(rule.options)
  end
  local ctx = setmetatable({
    path = file.path, lang = file.lang, source = file.source, tree = file.tree, root = file.root,
    options = options,
  }, { __index = function(t, k)
    if k ~= 'config' then return nil end
    local c = copy_plain(cfg)
    rawset(t, 'config', c)
    return c
  end })
  function ctx.report(spec)
    if type(spec) ~= 'table' then error('ctx.report: table expected', 2) end
    local msg = rawget(spec, 'message')
    if msg ~= nil and type(msg) ~= 'string' then error('ctx.report: message must be a string', 2) end
    local sf = st.file
    if count_node_report(sf, rule, spec) then return end
    local f = make_finding(sf, rule, {
      node = rawget(spec, 'node'), start_byte = rawget(spec, 'start_byte'), end_byte = rawget(spec, 'end_byte'),
      line = rawget(spec, 'line'), col = rawget(spec, 'col'), end_line = rawget(spec, 'end_line'),
      end_col = rawget(spec, 'end_col'), path = rawget(spec, 'path'),
    }, nil, msg)
    if admit(sf, rule, f) then
      local o = st.out
      o[#o + 1] = f
    end
  end
  function ctx.text(node) return node:text() end
  local engine = self
  function ctx.scope()
    local f = st.file
    if f.scope == nil then
      local t = f.tree
      if t.scope == nil then
        error('standards: ctx.scope() needs tree:scope() (the scope analysis of aegis.ast), missing in this build', 2)
      end
      engine.wants_scope = true
      local t0 = engine.timings and os.clock()
      f.scope = t:scope()
      if t0 then
        -- counted apart: the rule that asks first would otherwise pay for all
        local tm = engine.timings
        local dt = os.clock() - t0
        tm['(scope)'] = (tm['(scope)'] or 0) + dt
        tm[rule.id] = (tm[rule.id] or 0) - dt
      end
    end
    return f.scope
  end
  function ctx.tsconfig()
    local f = st.file
    if f.tsconfig == nil then f.tsconfig = engine:_tsconfig(dirname(f.path)) or false end
    -- a built-in rule (tested not to write to it) shares the engine's copy
    if rule.builtin then return f.tsconfig or nil end
    return f.tsconfig and copy_plain(f.tsconfig) or nil
  end
  function ctx.artifact()
    local f = st.file
    if f.artifact == nil then f.artifact = engine:_artifact(f.source) or false end
    return f.artifact and copy_plain(f.artifact) or nil
  end
  if rule.builtin then
    st.ctx = ctx
    rule._ctxst = st
  end
  return ctx
end

-- Hands the matches of one combined query (l: {owner, base}) to the rules
-- (per: rule -> its matches, order: the rules in order of first match) and
-- the directive comments to `comments`. Returns the number of matches
-- handed to rules.
local function dispatch(l, matches, per, order, comments)
  local owner, base = l.owner, l.base
  local n = 0
  for k = 1, #matches do
    local m = matches[k]
    local pat = m.pattern
    local g = owner[pat]
    local b = base[pat]
    if b ~= 0 then
      pat = pat - b
      m.pattern = pat
    end
    if g == DIRECTIVE then
      comments[#comments + 1] = m.captures.c
    else
      local ng = #g
      n = n + ng
      for i = 1, ng do
        local r = g[i]
        local list = per[r]
        if not list then
          list = {}
          per[r] = list
          order[#order + 1] = r
        end
        -- rules sharing a query get their own match table (same nodes), but
        -- for built-in ones (tested not to write to it): 100,000 matches of a
        -- hostile file are 17 MB of copies
        list[#list + 1] = (i == 1 or r.builtin and g[1].builtin) and m
          or { pattern = pat, captures = m.captures, list = m.list }
      end
    end
  end
  return n
end

local function finding_before(a, b)
  if a.path ~= b.path then return a.path < b.path end
  if a.line ~= b.line then return a.line < b.line end
  if a.col ~= b.col then return a.col < b.col end
  if a.rule ~= b.rule then return a.rule < b.rule end
  if a.message ~= b.message then return a.message < b.message end
  -- a total order, so output never depends on the order of matches
  if a.end_line ~= b.end_line then return a.end_line < b.end_line end
  if a.end_col ~= b.end_col then return a.end_col < b.end_col end
  return (a.end_byte or 0) < (b.end_byte or 0)
end

-- Merges the sorted runs a[lo..mid-1] and a[mid..hi-1] into out[lo..hi-1].
local function merge(a, out, lo, mid, hi)
  local i, j = lo, mid
  for k = lo, hi - 1 do
    if j >= hi or (i < mid and not finding_before(a[j], a[i])) then
      out[k], i = a[i], i + 1
    else
      out[k], j = a[j], j + 1
    end
  end
end

local function sort_findings(fs_)
  -- A run's findings come in a few sorted runs (one per worker: files in
  -- path order, each file's findings sorted), so a natural merge sort: find
  -- the runs, merge them pairwise; n - 1 comparisons when already sorted.
  local n = #fs_
  if n < 2 then return fs_ end
  local starts = { 1 }
  for i = 2, n do
    if finding_before(fs_[i], fs_[i - 1]) then starts[#starts + 1] = i end
  end
  if #starts == 1 then return fs_ end
  if #starts > n // 8 then   -- no order to use
    table.sort(fs_, finding_before)
    return fs_
  end
  local a, b = fs_, {}
  while #starts > 1 do
    local next_starts = {}
    for r = 1, #starts, 2 do
      local lo, mid = starts[r], starts[r + 1] or n + 1
      local hi = starts[r + 2] or n + 1
      merge(a, b, lo, mid, hi)
      next_starts[#next_starts + 1] = lo
    end
    starts, a, b = next_starts, b, a
  end
  if a ~= fs_ then table.move(a, 1, n, 1, fs_) end
  return fs_
end
M.sort = sort_findings

-- The (file, rule) pairs over the cap, sorted by path and rule.
local function capped_list(file)
  local out = {}
  if next(file.capped) == nil then return out end  -- nearly every file
  for _, c in pairs(file.capped) do out[#out + 1] = c end
  table.sort(out, function(a, b)
    if a.path ~= b.path then return a.path < b.path end
    return a.rule < b.rule
  end)
  return out
end

--- Checks one source with the engine's rules. Findings a directive
--- suppresses are dropped; past the engine's cap of findings per rule and
--- file (`standards.max_findings_per_rule`), the first ones reported are
--- kept and the others only counted, in `capped`.
---@param src string
---@param opts? {path?: string, lang?: 'ts'|'tsx'}
---@return aegis.standards.Finding[] findings Sorted by path, line, col, rule
---@return aegis.standards.Problem[] problems Rules that failed, queries that did not compile, parse failures
---@return aegis.standards.Capped[] capped The (file, rule) pairs over the cap, sorted by path and rule
function Engine:check(src, opts)
  if type(src) ~= 'string' then error("bad argument #1 to 'check' (string expected, got " .. type(src) .. ')', 2) end
  opts = opts or {}
  local p = opts.path or 'input.ts'
  local lang = opts.lang or ast.lang_of(p) or 'ts'
  local findings, problems = {}, {}
  local tm = self.timings
  local t0 = tm and os.clock()
  local tree, err, code = ast.parse(src, { lang = lang, path = p })
  if tm then tm['(parse)'] = (tm['(parse)'] or 0) + os.clock() - t0 end
  if not tree then
    problems[1] = { kind = 'parse', path = p, message = err, code = code }
    return findings, problems, {}
  end
  -- suppressed: the suppressor, built on the first finding (admit)
  local file = { path = p, lang = lang, source = src, tree = tree, root = tree:root(), timings = tm,
    cap = self.cap, counts = {}, capped = {}, suppressed = nil }
  local l = self:_lang(lang)
  if not l.bad_reported then  -- once per engine and language, with the first file
    l.bad_reported = true
    for _, b in ipairs(l.bad) do
      problems[#problems + 1] = { kind = 'rule', rule = b.rule.id, path = p, code = 'query',
        message = ("rule '%s': query: %s"):format(b.rule.id, b.message) }
    end
  end
  if l.query then
    local per = {}  -- rule -> matches
    local order = {}
    local t1 = tm and os.clock()
    -- once a rule of this engine has asked for the scope analysis, it is
    -- built in the query's walk of the tree (when the query has the fast
    -- path): one walk instead of two
    local with_scope = self.wants_scope == true
    local matches, qerr, qcode = l.query:matches(tree, 'auto', with_scope)
    -- the walked part goes to the cursor only when its fast form found no memory; over its time
    -- budget (a hostile tree) no rule of it sees this file
    if not matches then
      problems[#problems + 1] = { kind = 'parse', path = p, message = qerr, code = qcode }
      matches = {}
    end
    if tm then
      local k = with_scope and l.query:fast() and '(query+scope)' or '(query)'
      tm[k] = (tm[k] or 0) + os.clock() - t1
    end
    local comments = {}
    file.comments = comments
    local nmatches = dispatch(l, matches, per, order, comments)
    -- each rule's list holds its matches and lets them go as it runs; this
    -- register would keep them all alive to the end of the check
    matches = nil -- luacheck: ignore 311
    local c = l.cursor
    if c then  -- the rules whose queries are not chains: tree-sitter's cursor
      local t4 = tm and os.clock()
      local cm, cerr, ccode = c.query:matches(tree, 'cursor')
      if tm then tm['(query cursor)'] = (tm['(query cursor)'] or 0) + os.clock() - t4 end
      if cm then
        nmatches = nmatches + dispatch(c, cm, per, order, comments)
        cm = nil -- luacheck: ignore 311 (as matches above)
      else  -- over its time budget (a hostile tree): only these rules lose the file
        for _, r in ipairs(c.rules) do
          problems[#problems + 1] = { kind = 'rule', rule = r.id, path = p, code = ccode,
            message = ("rule '%s' on '%s': %s"):format(r.id, p, cerr) }
        end
      end
    end
    local pause
    if nmatches > M.BIG_FILE_MATCHES then
      -- a big file: the rules with most matches first, each letting its
      -- matches go as it runs before the next one makes its garbage
      -- (100,000 matches are 70 MB; findings are sorted below, so the order
      -- does not show); and a lower pause of the collector (BIG_FILE_MATCHES)
      local rank = {}
      for i, r in ipairs(order) do rank[r] = i end
      table.sort(order, function(a, b)
        local na, nb = #per[a], #per[b]
        if na ~= nb then return na > nb end
        return rank[a] < rank[b]
      end)
      pause = collectgarbage('setpause', M.BIG_FILE_GC_PAUSE)
    end
    local budget = self.budget
    for k = 1, #order do
      local r = order[k]
      local t2 = tm and os.clock()
      local list = per[r]
      per[r] = nil
      if r.check == nil and r.fix == nil then
        run_rule(file, r, list, nil, findings)
      else
        -- a built-in rule reports straight into the file's findings (its
        -- ctx lets them go below); any other rule's ctx may be kept past
        -- the check, so it reports into a list of its own, copied here
        local out = r.builtin and findings or {}
        local ctx = self:_ctx(file, r, out)
        -- Built-in rules are ours and tested: no count hook (in Lua 5.4 any
        -- count hook slows every instruction about twice); their time is
        -- kept by a timer that installs the hook only at the deadline.
        local at_src = r._at_source
        if not at_src then
          at_src = '@' .. r.source
          r._at_source = at_src
        end
        local ok, kind, msg
        if budget.builtin or not r.builtin then
          ok, kind, msg = sbcore.call(budget.instructions, budget.seconds, budget.memory, at_src,
            run_rule, file, r, list, ctx, out)
        else
          ok, kind, msg = sbcore.timed(budget.seconds, budget.memory, at_src, run_rule, file, r, list, ctx, out)
        end
        if not ok then
          if type(msg) == 'table' then msg = tostring(msg) end
          problems[#problems + 1] = { kind = 'rule', rule = r.id, path = p, code = kind,
            message = ("rule '%s' on '%s': %s"):format(r.id, p, tostring(msg)) }
        end
        if out ~= findings then
          for i = 1, #out do findings[#findings + 1] = out[i] end
        end
      end
      if tm then tm[r.id] = (tm[r.id] or 0) + os.clock() - t2 end
      -- the ctx a built-in rule shares across files lets this one go (its
      -- tree, source and scope: hundreds of MB for a hostile file)
      local st = r.builtin and r._ctxst
      if st then
        st.file, st.out = nil, nil
        local ctx = st.ctx
        ctx.source, ctx.tree, ctx.root = nil, nil, nil
      end
    end
    if pause then collectgarbage('setpause', pause) end
  end
  local errs, total = tree:errors(M.MAX_SYNTAX_ERRORS)
  for i = 1, #errs do
    local e = errs[i]
    problems[#problems + 1] = { kind = 'syntax', path = p, line = e.line, col = e.col, message = e.message }
  end
  if total > #errs then
    local last = errs[#errs]
    problems[#problems + 1] = { kind = 'syntax', path = p, line = last.line, col = last.col,
      message = ('%d more syntax errors not listed'):format(total - #errs) }
  end
  tree:close()
  return sort_findings(findings), problems, capped_list(file)
end

--- The configured rules of the engine (severity and options from config).
---@return table[] rules `{id, name, pack, severity, description, eslint?, help?}`
function Engine:rule_list()
  local out = {}
  for _, r in ipairs(self.rules) do
    out[#out + 1] = { id = r.id, name = r.name, pack = r.pack, severity = r.severity, description = r.description,
      eslint = r.eslint, help = r.help }
  end
  return out
end

--- Checks one source: parses it once, runs the rules' queries in C, calls
--- their `check` in the sandbox. Engines are cached per (rules, config).
---@param src string Source text
---@param opts? aegis.standards.Opts
---@return aegis.standards.Finding[] findings Sorted by (path, line, col, rule)
---@return aegis.standards.Problem[] problems Rules that errored or ran out of budget (naming rule and file),
--- queries that do not compile, syntax errors (`kind = 'syntax'`: the file is still checked)
---@return aegis.standards.Capped[] capped The (file, rule) pairs over `standards.max_findings_per_rule`
function M.check_source(src, opts)
  if type(src) ~= 'string' then
    error("bad argument #1 to 'check_source' (string expected, got " .. type(src) .. ')', 2)
  end
  if opts ~= nil and type(opts) ~= 'table' then error("bad argument #2 to 'check_source' (table expected)", 2) end
  opts = opts or {}
  local cfg = config_section(opts.config)
  local specs = opts.rules or default_rules(cfg)
  if type(specs) ~= 'table' then error("bad argument #2 to 'check_source' (rules must be a list)", 2) end
  local key = table.concat(specs, '\0')
  local byc = M._engines[cfg]
  if not byc then
    byc = {}
    M._engines[cfg] = byc
  end
  local e = byc[key]
  if not e or e.store ~= opts.store then
    e = M.engine({ rules = specs, config = cfg, store = opts.store })
    byc[key] = e
  end
  return e:check(src, { path = opts.path, lang = opts.lang })
end

-- }======================================================

return M
