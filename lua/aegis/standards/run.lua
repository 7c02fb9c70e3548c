--- Running the standards engine over many files: in this process, in
--- forked copies of it that take files from a shared counter (largest
--- first, so they end together), and untrusted rulepacks in a locked-down
--- worker (`aegis-run enforce --worker`: rlimits, a kill watchdog, no
--- secrets in its environment). Used by `aegis-run enforce`.
local errors = require('aegis.errors')
local fs = require('aegis.fs')
local json = require('aegis.json')
local standards = require('aegis.standards')

local M = {}

local MiB = 1024 * 1024

--- Limits of the untrusted worker, unless `standards.untrusted` in the
--- config says otherwise: wall seconds (the watchdog kills it after them),
--- CPU seconds (RLIMIT_CPU) and MiB of address space (RLIMIT_AS).
M.untrusted_defaults = { seconds = 120, cpu_seconds = 120, memory_mb = 1024 }

--- Environment variables an untrusted worker gets (when set, and not
--- secret by `aegis.runtime.is_secret`): nothing else of ours. Trusted
--- rules run in this process or forked copies of it.
M.worker_env_names = { 'PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'AEGIS_PATH', 'AEGIS_LUA_DIR', 'NO_COLOR',
  'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS' }

-- {====================================================== helpers

--- Number of online CPUs (from /sys), at least 1.
---@return integer
function M.cpus()
  local s = fs.read('/sys/devices/system/cpu/online')
  if not s then return 1 end
  local n = 0
  for a, b in s:gmatch('(%d+)%-?(%d*)') do
    n = n + (b ~= '' and (tonumber(b) - tonumber(a) + 1) or 1)
  end
  return math.max(n, 1)
end

--- The environment ("NAME=value" list) of an untrusted worker.
---@param getenv? fun(name: string): string? Instead of os.getenv (tests)
---@return string[]
function M.worker_env(getenv)
  getenv = getenv or os.getenv
  local is_secret = require('aegis.runtime').is_secret
  local out = {}
  for _, name in ipairs(M.worker_env_names) do
    local v = getenv(name)
    if v ~= nil and not is_secret(name, v) then out[#out + 1] = name .. '=' .. v end
  end
  return out
end

-- Whether two findings (adjacent once sorted) are the same one.
local function same_finding(a, b)
  return a.path == b.path and a.line == b.line and a.col == b.col and a.rule == b.rule
    and a.message == b.message and a.end_line == b.end_line and a.end_col == b.end_col
end

-- Findings per severity: those listed and those over the cap (counted only).
local function severity_counts(findings, capped)
  local c = { error = 0, warning = 0, info = 0 }
  for _, f in ipairs(findings) do c[f.severity] = (c[f.severity] or 0) + 1 end
  for _, x in ipairs(capped) do c[x.severity] = (c[x.severity] or 0) + x.not_shown end
  return c
end

-- A string as valid UTF-8: each byte that is not part of a valid sequence
-- becomes U+FFFD (JSON carries only UTF-8; messages quote source text).
local function utf8_clean(str)
  if utf8.len(str) then return str end
  local out, i, n = {}, 1, #str
  while i <= n do
    local c = str:byte(i)
    local size = c < 0x80 and 1 or c >= 0xF0 and 4 or c >= 0xE0 and 3 or c >= 0xC2 and 2 or 0
    local piece = size > 0 and str:sub(i, i + size - 1) or ''
    if size > 0 and #piece == size and utf8.len(piece) == 1 then
      out[#out + 1] = piece
      i = i + size
    else
      out[#out + 1] = '\u{FFFD}'
      i = i + 1
    end
  end
  return table.concat(out)
end

--- JSON of what `build(v)` makes of `v` (a function returning a JSON
--- text). The encoder refuses strings that are not valid UTF-8; then `v` is
--- built again from a copy with every string made valid (invalid bytes
--- become U+FFFD). Checking every string first in Lua cost twice the
--- encoding of a large report.
---@param v any
---@param build fun(v: any): string
---@return string
function M.encode_valid(v, build)
  local ok, out = pcall(build, v)
  if ok then return out end
  if type(out) ~= 'string' or not out:find('not valid UTF-8', 1, true) then error(out, 0) end
  return build(M.deep_clean(v))
end

--- `v` with every string valid UTF-8 (invalid bytes become U+FFFD), for
--- JSON: always a copy; arrays stay marked.
---@param v any
---@return any
function M.deep_clean(v)
  if type(v) == 'string' then return utf8_clean(v) end
  if type(v) ~= 'table' or v == json.null then return v end
  local t = {}
  for k, x in pairs(v) do t[M.deep_clean(k)] = M.deep_clean(x) end
  if json.is_array(v) then t = json.array(t) end
  return t
end

local FAILING = { rule = true, read = true, parse = true, worker = true }

--- Whether a problem makes the run fail (a rule that could not run, a file
--- that could not be read or parsed, a worker that died); syntax errors do
--- not (the file is still checked).
---@param p aegis.standards.Problem
---@return boolean
function M.failing(p)
  return FAILING[p.kind] == true
end

-- }======================================================

-- {====================================================== checking files

-- The sum of a table's values.
local function sum(t)
  local n = 0
  for _, v in pairs(t) do n = n + v end
  return n
end

-- Checks the files `next_file()` hands out (until it returns nil) with
-- `engine`. With `fail_fast`, stops after the first file with an
-- error-level finding or a failing problem, and calls `stop()` (the other
-- processes stop taking files). Returns findings, problems, the number of
-- files checked, the (file, rule) pairs over the cap.
local function check_files(engine, next_file, fail_fast, stop, render)
  local findings, problems, n, capped = {}, {}, 0, {}
  local by_file = {}  -- {path, its findings (sorted)}, in the order checked
  local parts = render and {} or nil
  local tm = engine.timings
  local c0, s0 = tm and os.clock(), tm and sum(tm)
  for p in next_file do
    n = n + 1
    local t0 = tm and os.clock()
    local src, reason = fs.read(p)
    if tm then tm['(read)'] = (tm['(read)'] or 0) + os.clock() - t0 end
    local failed = false
    if not src then
      problems[#problems + 1] = { kind = 'read', path = p, message = ("enforce: read '%s': %s"):format(p, reason) }
      failed = true
    else
      local f, pr, cp = engine:check(src, { path = p })
      for i = 1, #cp do
        local x = cp[i]
        capped[#capped + 1] = x
        if x.severity == 'error' then failed = true end
      end
      for i = 1, #f do
        if f[i].severity == 'error' then failed = true end
      end
      if render and #f > 0 then
        f = M.render_part(render, p, src, f, parts)
      end
      if #f > 0 then by_file[#by_file + 1] = { p, f } end
      for i = 1, #pr do
        local x = pr[i]
        problems[#problems + 1] = x
        if M.failing(x) then failed = true end
      end
    end
    if fail_fast and failed then
      if stop then stop() end
      break
    end
  end
  -- files in path order make the findings one sorted run (the parent
  -- merges a run per process)
  table.sort(by_file, function(a, b) return a[1] < b[1] end)
  for _, x in ipairs(by_file) do table.move(x[2], 1, #x[2], #findings + 1, findings) end
  if parts then
    table.sort(parts, function(a, b) return a[1] < b[1] end)
    -- what is left was reported on other files, often the same finding
    -- from many (a tsconfig.json's): once each
    findings = M.unique(standards.sort(findings))
  end
  -- the engine's work outside its stages and rules (matches, findings)
  if tm then tm['(check)'] = (tm['(check)'] or 0) + (os.clock() - c0) - (sum(tm) - s0) end
  return findings, problems, n, capped, parts
end

--- Sorted findings without repeats (the same finding reported twice).
---@param findings aegis.standards.Finding[] Sorted (standards.sort)
---@return aegis.standards.Finding[]
function M.unique(findings)
  local out, last = {}, nil
  for _, f in ipairs(findings) do
    if not (last and same_finding(last, f)) then out[#out + 1] = f end
    last = f
  end
  return out
end

--- Renders the findings `f` (sorted) of file `path` (text `src`) that are
--- on the file itself, once each, with `render` (report.renderer) into a
--- part `{path, text, errors, warnings, infos}` added to `parts`; returns
--- the others (reported on other files), for the parent to merge.
---@param render {file: fun(findings: table[], src: string?): string}
---@param path string
---@param src string?
---@param f aegis.standards.Finding[]
---@param parts table[]
---@return aegis.standards.Finding[] others
function M.render_part(render, path, src, f, parts)
  local own, others, last = {}, {}, nil
  local c = { error = 0, warning = 0, info = 0 }
  for i = 1, #f do
    local x = f[i]
    if x.path ~= path then
      others[#others + 1] = x
    elseif not (last and same_finding(last, x)) then
      own[#own + 1] = x
      c[x.severity] = (c[x.severity] or 0) + 1
      last = x
    end
  end
  if #own > 0 then parts[#parts + 1] = { path, render.file(own, src), c.error, c.warning, c.info } end
  return others
end

-- What a copy hands back, as pieces its fork writes one after the other:
-- its result as JSON, then each part's path, the length of its text and its
-- counts, then the text itself (megabytes in all: not copied into the
-- pieces, nor joined).
local function pack_result(res)
  local parts = res.parts or {}
  res.parts = nil
  local out = { string.pack('<s4I4', M.encode_valid(res, json.encode), #parts) }
  for _, x in ipairs(parts) do
    out[#out + 1] = string.pack('<s4I4I4I4I4', x[1], #x[2], x[3], x[4], x[5])
    out[#out + 1] = x[2]
  end
  return out
end

-- A copy's result from what it handed back (pack_result, joined), or nil.
local function unpack_result(s)
  local ok, head, n, pos = pcall(string.unpack, '<s4I4', s)
  local res = ok and json.decode(head)
  if type(res) ~= 'table' then return nil end
  local parts = {}
  for i = 1, n do
    local x = {}
    local len
    x[1], len, x[3], x[4], x[5], pos = string.unpack('<s4I4I4I4I4', s, pos)
    x[2] = s:sub(pos, pos + len - 1)
    pos = pos + len
    parts[i] = x
  end
  res.parts = parts
  return res
end

-- Sorted lists of parts (by path) merged into one.
local function merge_parts(a, b)
  local out, i, j = {}, 1, 1
  while i <= #a or j <= #b do
    if j > #b or (i <= #a and a[i][1] <= b[j][1]) then
      out[#out + 1], i = a[i], i + 1
    else
      out[#out + 1], j = b[j], j + 1
    end
  end
  return out
end

-- The files of `list` in turn, as `check_files` takes them.
local function each(list)
  local i = 0
  return function()
    i = i + 1
    return list[i]
  end
end

-- What a process checked, as the parent merges it (and a copy sends it).
local function result(engine, findings, problems, n, capped, parts)
  return { findings = json.array(findings), problems = json.array(problems), files = n,
    capped = json.array(capped), timings = engine.timings, parts = parts }
end

-- The names in our environment (/proc/self/environ), for the log.
local function env_names()
  local s = fs.read('/proc/self/environ') or ''
  local names = {}
  for name in s:gmatch('([^%z=]+)=[^%z]*') do names[#names + 1] = name end
  table.sort(names)
  return names
end

-- Our resource limits that matter here, from /proc/self/limits.
local function limits()
  local s = fs.read('/proc/self/limits') or ''
  local out = {}
  out.cpu = s:match('Max cpu time%s+(%S+)')
  out.as = s:match('Max address space%s+(%S+)')
  return out
end

--- The worker: reads a job (JSON on stdin), checks its files, writes the
--- result (JSON on stdout). A rulepack that cannot be loaded is exit 2.
---@param input string The job: `{rules, preload?, config, files, fail_fast, untrusted, timings?}`
---@return integer exit code
---@return string output JSON
function M.worker(input)
  local job, err = json.decode(input)
  if type(job) ~= 'table' then
    errors.usage('enforce --worker: bad job on stdin: %s', err or 'not an object')
  end
  local engine = standards.engine({ rules = job.rules, config = job.config, preload = job.preload,
    timings = job.timings })
  local res = result(engine, check_files(engine, each(job.files or {}), job.fail_fast))
  res.rules = json.array(engine:rule_list())
  if job.untrusted then
    res.env = json.array(env_names())
    res.limits = limits()
  end
  return 0, M.encode_valid(res, json.encode)
end

-- }======================================================

-- {====================================================== trust

local function normalize(p, cwd)
  return require('aegis.standards.walk').absolute(p, cwd)
end

--- Whether a rulepack found at `found` is trusted: built in, or its file is
--- (under) an entry of `trusted` (paths relative to `base`).
---@param found {builtin: boolean, path: string}
---@param trusted string[]
---@param base string Absolute directory relative trusted entries start from
---@return boolean
function M.is_trusted(found, trusted, base)
  if found.builtin then return true end
  local cwd = fs.cwd() or '.'
  local file = normalize(found.path, cwd)
  for _, t in ipairs(trusted or {}) do
    local entry = normalize(t, base):gsub('/+$', '')
    if file == entry or file:sub(1, #entry + 1) == entry .. '/' then return true end
  end
  return false
end

-- }======================================================

-- {====================================================== the parent

--- What `run` takes.
---@class aegis.standards.RunOpts
---@field rules string[] Rule specs (ids, packs, files)
---@field config table The standards section
---@field config_dir string Absolute directory of the config file (trusted paths are relative to it)
---@field files string[]|fun(): string[], table<string, integer>? The files, or a function that lists them (and gives
--- their sizes, as `sizes`): called once the rules are loaded, while their queries compile on threads of their own
---@field jobs integer Processes checking files: this one and jobs - 1 forked copies
---@field fail_fast? boolean
---@field log fun(msg: string) Where S7 notices go (stderr)
---@field exe? string The aegis-run binary for workers (default /proc/self/exe)
---@field timings? boolean Collect CPU seconds per rule and stage (result `timings`)
---@field sizes? table<string, integer> Bytes per file, as the walk found them (walk.files' `sizes`): files are handed
--- out largest first; a file not in it is stat'ed
---@field render? fun(rules: table[]): table A renderer for the report (report.renderer, given the result's `rules`):
--- the processes that check files render their findings as they go, and the result has `parts` (the renderings in
--- path order) in place of `findings`. Not with untrusted rulepacks (their findings come back from workers).

--- Splits rule specs into the trusted ones (run here and in forked copies)
--- and the untrusted ones (each with its file, name and SHA-256). Raises an
--- `aegis.errors` object (exit 2) for a rulepack that cannot be found.
---@param specs string[]
---@param cfg table
---@param base string
---@return string[] trusted
---@return {spec: string, path: string, sha256: string}[] untrusted
function M.split_trust(specs, cfg, base)
  local trusted, untrusted = {}, {}
  local files = {}  -- rulepack files given, by base name: 'pack/rule' may name their rules
  for _, spec in ipairs(specs) do
    if spec:find('%.lua$') then
      local stem = spec:match('([^/]+)/init%.lua$') or spec:match('([^/]+)%.lua$')
      if stem then files[stem] = files[stem] or spec end
    end
  end
  for _, spec in ipairs(specs) do
    local name = spec
    local packname = spec:match('^([%w_][%w_%-%.]*)/[%w_][%w_%-%.]*$')
    if spec:find('%.lua$') then packname = nil end
    if packname then name = files[packname] or packname end
    local found, msg, code = standards.find(name)
    if not found then
      error(errors.new(code == 'not_found' and 'usage' or 'config', (msg:gsub('^standards', 'enforce'))), 0)
    end
    local ok = M.is_trusted(found, cfg.trusted, base)
    local why = ''
    if ok then
      -- a trusted pack that includes an untrusted one runs untrusted as a
      -- whole (includes are checked before any of them runs)
      local pack, err = standards.load(found.builtin and found.name or found.path, { trusted = function(f)
        return M.is_trusted(f, cfg.trusted, base)
      end })
      if not pack and err.code == 'untrusted' then
        ok, why = false, (' (it includes %s)'):format(err.msg:match("(rulepack '[^']*')") or 'an untrusted rulepack')
      elseif not pack then
        error(err, 0)
      end
    end
    if ok then
      trusted[#trusted + 1] = spec
    else
      untrusted[#untrusted + 1] = { spec = packname and spec or (found.builtin and name or found.path),
        preload = packname and not found.builtin and found.path or nil,
        path = found.path, sha256 = require('aegis.hash').sha256(found.source), why = why }
    end
  end
  return trusted, untrusted
end

--- The aegis-run binary to start workers with: `arg[0]` made absolute when
--- it names a file (under valgrind /proc/self/exe is valgrind, which refuses
--- to be run so), else /proc/self/exe.
---@return string
function M.self_exe()
  local a0 = rawget(_G, 'arg') and _G.arg[0]
  if type(a0) == 'string' and a0:find('/', 1, true) then
    local p = require('aegis.standards.walk').absolute(a0, fs.cwd() or '/')
    local st = fs.stat(p)
    if st and st.type == 'file' then return p end
  end
  return '/proc/self/exe'
end

--- The order files are handed out in: largest first, so that the last ones
--- taken are small and the processes end close together (ties in the order
--- given); in path order under --fail-fast, so that every file before the
--- first failing one was taken, and so checked, before anyone stopped.
--- Sorted as integer keys, (the largest size - size) above the file's
--- index: the default comparison, where a comparator called for each of the
--- ~50,000 comparisons of the bench corpus took 6 ms of the run's serial
--- start. (Sizes past what the bits above the index hold count as that
--- largest size: 256 GiB with 16 million files.)
---@param files string[]
---@param fail_fast boolean?
---@param known table<string, integer>? sizes by path (the walk's); the others are asked of the file system
---@return string[] order
function M.hand_out_order(files, fail_fast, known)
  if fail_fast then
    local order = table.move(files, 1, #files, 1, {})
    table.sort(order)
    return order
  end
  local bits = 1
  while 1 << bits <= #files do bits = bits + 1 end
  local largest, mask = (1 << (62 - bits)) - 1, (1 << bits) - 1
  local keys = {}
  for i, p in ipairs(files) do
    local n = known and known[p]
    if not n then
      local st = fs.stat(p)
      n = st and st.size or 0
    end
    keys[i] = (largest - math.max(0, math.min(n, largest))) << bits | i
  end
  table.sort(keys)
  for k = 1, #keys do keys[k] = files[keys[k] & mask] end
  return keys
end

--- The parts (sorted by path) with the findings left over from the
--- processes (sorted, unique: those rules reported on files other than the
--- one checked) rendered in: a part of their own per file, in path order,
--- or, for a file a process rendered already, that file's part made again
--- (the file checked again here for its own findings) with them in order.
---@param render table report.renderer
---@param engine table
---@param parts table[] `{path, text, errors, warnings, infos}`
---@param others aegis.standards.Finding[]
---@return table[] parts
function M.merge_others(render, engine, parts, others)
  if #others == 0 then return parts end
  local at = {}
  for i, x in ipairs(parts) do at[x[1]] = i end
  local extra, i = {}, 1
  while i <= #others do
    local path, list = others[i].path, {}
    while i <= #others and others[i].path == path do
      list[#list + 1] = others[i]
      i = i + 1
    end
    local src = fs.read(path)
    if at[path] and src then
      local own = engine:check(src, { path = path })
      for _, f in ipairs(own) do if f.path == path then list[#list + 1] = f end end
      standards.sort(list)
      parts[at[path]] = false
    end
    M.render_part(render, path, src, list, extra)
  end
  local kept = {}
  for _, x in ipairs(parts) do if x then kept[#kept + 1] = x end end
  return merge_parts(kept, extra)
end

-- M.run's work; stops the collector for its tail (see share below), which
-- M.run restarts on the way out
local function run(o)
  local trusted, untrusted = M.split_trust(o.rules, o.config, o.config_dir)
  local findings, problems, rules, checked = {}, {}, {}, 0
  -- (path, rule) -> its record over the cap; a finding reported on another
  -- file comes from every file that looked at it: the largest count wins
  local capped = {}
  local function add_capped(list)
    for _, c in ipairs(list or {}) do
      local key = c.path .. '\0' .. c.rule
      local had = capped[key]
      if not had or c.not_shown > had.not_shown then capped[key] = c end
    end
  end
  local timings = o.timings and {} or nil
  local function add_timings(t)
    for k, v in pairs(t or {}) do timings[k] = (timings[k] or 0) + v end
  end
  local rule_seen = {}
  local function add_rules(list)
    for _, r in ipairs(list) do
      if not rule_seen[r.id] then
        rule_seen[r.id] = true
        rules[#rules + 1] = r
      end
    end
  end
  local part_lists = {}  -- each process's rendered parts, sorted by path
  local function add(res)
    if res.parts then part_lists[#part_lists + 1] = res.parts end
    table.move(res.findings, 1, #res.findings, #findings + 1, findings)
    table.move(res.problems, 1, #res.problems, #problems + 1, problems)
    add_capped(res.capped)
    add_rules(res.rules or {})
    if timings then add_timings(res.timings) end
  end
  local items, kinds = {}, {}
  local exe = o.exe or M.self_exe()
  local cfg = o.config
  local function item(job, opts, kind)
    opts.stdin = json.encode(job)
    opts.cap = 1e9  -- the findings of a worker: never cut (a cut would be a broken JSON)
    items[#items + 1] = { { exe, 'enforce', '--worker' }, opts }
    kinds[#kinds + 1] = kind
  end
  -- the trusted rules' share: this process checks files, with jobs - 1
  -- forked copies of it when there are several jobs (they run while the
  -- untrusted workers below do)
  local share, copies, engine, render = nil, {}, nil, nil
  local files, sizes = o.files, o.sizes
  if #trusted > 0 then
    -- the rules load here in any case: a bad pack is a usage error before
    -- any file is checked, and the rule list feeds SARIF
    local t0 = os.clock()
    engine = standards.engine({ rules = trusted, config = cfg, timings = o.timings,
      trusted = function(found) return M.is_trusted(found, cfg.trusted, o.config_dir) end })
    if timings then timings['(load)'] = os.clock() - t0 end
    add_rules(engine:rule_list())
    if o.render and #untrusted == 0 then
      local sorted = table.move(rules, 1, #rules, 1, {})
      table.sort(sorted, function(a, b) return a.id < b.id end)  -- as the result's
      render = o.render(sorted)
    end
    if type(files) == 'function' then
      -- the queries compile beside the listing (tree-sitter's analysis of
      -- the grammar: ~14 ms of the bench's start before)
      engine:prepare()
      files, sizes = files()
    end
    local jobs = math.max(1, math.min(o.jobs, #files // 4))
    local next_file, stop = each(files), nil
    if jobs > 1 then
      local fork = require('aegis.core.fork')
      -- the copies start with the queries made (and no compile thread runs)
      engine:ready()
      local order = M.hand_out_order(files, o.fail_fast, sizes)
      local counter = assert(fork.counter(#order))
      next_file = function()
        local i = counter:take()
        return i and order[i]
      end
      stop = function() counter:stop() end
      for _ = 2, jobs do
        local copy, err = fork.start(function()
          local res = result(engine, check_files(engine, next_file, o.fail_fast, stop, render))
          -- the copy ends once its answer is written: nothing to collect
          -- (a cycle over its heap, set off by the megabytes packed, was
          -- up to 20 ms of the run's wall time)
          collectgarbage('stop')
          return pack_result(res)
        end)
        if not copy then
          -- the others take its files: slower, not wrong
          o.log(('enforce: %s; checking with %d processes'):format(err, #copies + 1))
          break
        end
        copies[#copies + 1] = copy
      end
    end
    share = function()
      local res = result(engine, check_files(engine, next_file, o.fail_fast, stop, render))
      -- from here to the end the heap only grows by the copies' answers
      -- and their merge: no collection (M.run restarts it)
      collectgarbage('stop')
      checked = checked + res.files
      add(res)
    end
  end
  if type(files) == 'function' then files = files() end  -- (untrusted rules only)
  local ucfg = cfg.untrusted or {}
  local ud = M.untrusted_defaults
  local seconds = ucfg.seconds or ud.seconds
  -- one second over the wall budget: a busy worker's CPU time never passes
  -- its wall time, so the watchdog ends it first, with its clear message;
  -- RLIMIT_CPU is the backstop should the watchdog itself be starved
  local cpu = ucfg.cpu_seconds or math.ceil(seconds) + 1
  local mem = ucfg.memory_mb or ud.memory_mb
  for _, u in ipairs(untrusted) do
    o.log(("rulepack '%s' is not trusted%s (sha256 %s): running it in a worker process"
      .. ' (address space %d MiB, CPU %d s, killed after %g s, no secrets in its environment)')
      :format(u.path, u.why, u.sha256, mem, cpu, seconds))
    item({ rules = json.array({ u.spec }), preload = json.array({ u.preload }), config = cfg,
      files = json.array(files), fail_fast = o.fail_fast, untrusted = true, timings = o.timings },
      { env = M.worker_env(), timeout = seconds, grace = 0.1, rlimit_as = mem * MiB, rlimit_cpu = cpu },
      { untrusted = u })
  end
  if #items > 0 then
    local results = require('aegis.core.proc').run_all(items)
    for i, r in ipairs(results) do
      local u = kinds[i].untrusted
      -- what the rulepacks printed (print goes to stderr under enforce)
      if r.exit == 0 and r.stderr and r.stderr ~= '' then io.stderr:write(r.stderr) end
      local who = ("untrusted rulepack '%s'"):format(u.path)
      local res = r.exit == 0 and json.decode(r.stdout) or nil
      if r.error then
        problems[#problems + 1] = { kind = 'worker', path = '', message = ('enforce: %s: %s'):format(who, r.error) }
      elseif r.exit == 2 then
        error(errors.new('usage', (r.stderr:gsub('^aegis%-run: ', ''):gsub('\n.*$', ''))), 0)
      elseif type(res) ~= 'table' then
        local why
        if r.timed_out then
          why = ('killed after %.1f s (wall budget %g s)'):format(r.seconds, seconds)
        elseif r.signal_name then
          why = ('killed by SIG%s after %.1f s'):format(r.signal_name, r.seconds)
          if r.signal_name == 'XCPU' or r.signal_name == 'KILL' then why = why .. ' (CPU or memory limit)' end
        else
          why = ('exit %s: %s'):format(tostring(r.exit), (r.stderr or ''):gsub('\n$', ''))
        end
        problems[#problems + 1] = { kind = 'worker', path = '', rule = u.spec,
          message = ('enforce: %s: %s'):format(who, why), seconds = r.seconds }
      else
        add(res)
        o.log(("untrusted rulepack '%s' ran with limits: CPU %s s, address space %s; environment: %s")
          :format(u.path, tostring(res.limits and res.limits.cpu),
            tostring(res.limits and res.limits.as), table.concat(res.env or {}, ' ')))
      end
    end
  end
  if share then
    share()
    for i, copy in ipairs(copies) do
      local out, err = copy:wait()
      local res = out and unpack_result(out)
      if type(res) == 'table' then
        checked = checked + res.files
        add(res)
      else
        problems[#problems + 1] = { kind = 'worker', path = '',
          message = ('enforce: process %d of %d: %s'):format(i + 1, #copies + 1, err or 'bad result') }
      end
    end
  elseif #items > 0 then
    checked = #files
  end
  local t0 = os.clock()
  standards.sort(findings)
  -- a finding reported on another file (ctx.report{path = 'tsconfig.json'})
  -- comes from every file that looked at it: keep one
  findings = M.unique(findings)
  local parts
  if render then
    parts = {}
    for _, list in ipairs(part_lists) do parts = merge_parts(parts, list) end
    parts = M.merge_others(render, engine, parts, findings)
    findings = nil
  end
  table.sort(problems, function(a, b)
    if (a.path or '') ~= (b.path or '') then return (a.path or '') < (b.path or '') end
    if (a.line or 0) ~= (b.line or 0) then return (a.line or 0) < (b.line or 0) end
    if (a.col or 0) ~= (b.col or 0) then return (a.col or 0) < (b.col or 0) end
    if (a.rule or '') ~= (b.rule or '') then return (a.rule or '') < (b.rule or '') end
    if a.message ~= b.message then return a.message < b.message end
    return (a.kind or '') < (b.kind or '')
  end)
  local cut_path
  if o.fail_fast then
    -- each worker stopped at its first failing file, in path order: every
    -- file before the first failing one overall was checked by someone
    local cut
    for _, f in ipairs(findings or {}) do
      if f.severity == 'error' and (cut == nil or f.path < cut) then cut = f.path end
    end
    for _, x in ipairs(parts or {}) do
      if x[3] > 0 and (cut == nil or x[1] < cut) then cut = x[1] end
    end
    for _, p in ipairs(problems) do
      if M.failing(p) and p.path ~= '' and (cut == nil or p.path < cut) then cut = p.path end
    end
    cut_path = cut
    if cut then
      local keep = {}
      for _, f in ipairs(findings or parts) do if (f.path or f[1]) <= cut then keep[#keep + 1] = f end end
      if findings then findings = keep else parts = keep end
      local keepp = {}
      for _, p in ipairs(problems) do if p.path == '' or p.path <= cut then keepp[#keepp + 1] = p end end
      problems = keepp
    end
  end
  local caps = {}
  for _, c in pairs(capped) do
    if not o.fail_fast or not cut_path or c.path <= cut_path then caps[#caps + 1] = c end
  end
  table.sort(caps, function(a, b)
    if a.path ~= b.path then return a.path < b.path end
    return a.rule < b.rule
  end)
  table.sort(rules, function(a, b) return a.id < b.id end)
  if timings then timings['(merge)'] = os.clock() - t0 end
  -- the copies: reaped here, after the merge (wait() returned once a copy
  -- had written its answer, while the kernel was still tearing it down),
  -- so that their CPU time counts as this process's children's
  for _, copy in ipairs(copies) do copy:close() end
  local counts = severity_counts(findings or {}, caps)
  local texts
  if parts then
    texts = {}
    for i, x in ipairs(parts) do
      texts[i] = x[2]
      counts.error, counts.warning, counts.info = counts.error + x[3], counts.warning + x[4], counts.info + x[5]
    end
  end
  return { findings = findings, parts = texts, problems = problems, rules = rules, files = checked, capped = caps,
    counts = counts, timings = timings }
end

--- Runs the check: trusted rules in this process and `jobs` - 1 forked
--- copies of it, each untrusted rulepack in its own locked-down worker;
--- merges the results in a stable order. Raises what the rules' loading
--- raises (a bad rulepack); the collector runs on return either way.
---@param o aegis.standards.RunOpts
---@return {findings: aegis.standards.Finding[], problems: aegis.standards.Problem[], rules: table[], files: integer,
--- capped: aegis.standards.Capped[], counts: {error: integer, warning: integer, info: integer}} `counts`: the
--- findings per severity, those over the cap included
function M.run(o)
  local was_running = collectgarbage('isrunning')
  local ok, res = pcall(run, o)
  -- restarted here, not in run: the first allocation after a restart set
  -- off the rest of the cycle the stop interrupted (12 ms of the serial
  -- tail of the bench's run, for a caller that stops it again: the CLI)
  if was_running and not collectgarbage('isrunning') then collectgarbage('restart') end
  if not ok then error(res, 0) end
  return res
end

-- }======================================================

return M
