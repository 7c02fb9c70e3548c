--- `aegis-run enforce`: checks TypeScript and TSX files against rulepacks
--- (docs/rulepacks.md).
local errors = require('aegis.errors')
local fs = require('aegis.fs')
local host = require('aegis.core.host')

local usage = [[
usage: aegis-run enforce [options] PATHS...

Checks TypeScript and TSX files against rulepacks and reports the findings.
Directories are walked for .ts, .tsx, .mts and .cts files, honouring
.gitignore files (nested ones and negations too) and skipping node_modules
and .git; files named on the command line are checked whatever their
extension (.js/.jsx too). Files are checked in parallel worker processes.

options:
  --rulepacks a,b      rulepacks, rule ids (pack/rule) or rulepack files to run
                       (default: standards.rulepacks in aegis.config.lua, else
                       aegis-constitutional)
  --config F           use the configuration file F instead of the nearest
                       aegis.config.lua
  --format FMT         text (default: like a compiler, with the source line;
                       colour on a terminal unless NO_COLOR is set), json,
                       sarif (SARIF 2.1.0 for GitHub code scanning) or github
                       (workflow annotations)
  --output F           write the report to F instead of standard output
  --ci                 for CI: no colour; the format defaults to github when
                       GITHUB_ACTIONS=true, else text
  --fail-fast          stop at the first file with an error
  --max-warnings N     exit 1 when there are more than N warnings
  --jobs N             worker processes (default: the number of CPUs; 1 checks
                       in this process)
  --timings            print CPU seconds per stage (start-up, walk, load,
                       read, parse, query, scope, suppress, check, merge,
                       report) and per rule, summed over processes, on stderr

A rulepack that is neither built in nor under a `standards.trusted` entry of
the configuration runs in a separate worker process with resource limits, a
kill watchdog and no secrets in its environment; its SHA-256 is logged.

exit status: 0 clean, 1 error-level findings (or too many warnings, or a rule
that could not run), 2 usage or configuration error]]

local FORMATS = { text = true, json = true, sarif = true, github = true }

local function parse(args)
  local o = { paths = {}, rulepacks = nil }
  local i = 1
  local function value(name)
    local v = args[i + 1]
    if v == nil then errors.usage("enforce: option '%s' needs an argument", name) end
    i = i + 1
    return v
  end
  while i <= #args do
    local a = args[i]
    local name, inline = a:match('^(%-%-[%w-]+)=(.*)$')
    if name then
      table.insert(args, i + 1, inline)
      a = name
    end
    if a == '--rulepacks' then
      local list = {}
      for s in value(a):gmatch('[^,]+') do list[#list + 1] = s:match('^%s*(.-)%s*$') end
      if #list == 0 then errors.usage('enforce: --rulepacks needs at least one rulepack') end
      o.rulepacks = list
    elseif a == '--config' then
      o.config = value(a)
    elseif a == '--format' then
      o.format = value(a)
      if not FORMATS[o.format] then
        errors.usage("enforce: unknown format '%s' (text, json, sarif or github)", o.format)
      end
    elseif a == '--output' then
      o.output = value(a)
    elseif a == '--ci' then
      o.ci = true
    elseif a == '--fail-fast' then
      o.fail_fast = true
    elseif a == '--max-warnings' then
      local v = value(a)
      o.max_warnings = math.tointeger(tonumber(v))
      if not o.max_warnings or o.max_warnings < 0 then
        errors.usage("enforce: --max-warnings needs a non-negative integer, got '%s'", v)
      end
    elseif a == '--jobs' or a == '-j' then
      local v = value(a)
      o.jobs = math.tointeger(tonumber(v))
      if not o.jobs or o.jobs < 1 or o.jobs > 256 then
        errors.usage("enforce: --jobs needs an integer from 1 to 256, got '%s'", v)
      end
    elseif a == '--timings' then
      o.timings = true
    elseif a == '--worker' then
      o.worker = true
    elseif a == '--' then
      for k = i + 1, #args do o.paths[#o.paths + 1] = args[k] end
      break
    elseif a:sub(1, 1) == '-' and a ~= '-' then
      errors.usage("enforce: unknown option '%s' (see aegis-run enforce --help)", a)
    else
      o.paths[#o.paths + 1] = a
    end
    i = i + 1
  end
  return o
end

-- print for rulepacks (the sandbox takes the global print when it builds an
-- environment): standard output carries the report, or a worker's result.
local function print_to_stderr(...)
  local n = select('#', ...)
  local t = { ... }
  for i = 1, n do t[i] = tostring(t[i]) end
  -- one write per line: standard error is unbuffered, and the forked copies
  -- print to it too (two writes let another process's line in between)
  io.stderr:write(table.concat(t, '\t', 1, n) .. '\n')
end

local function run(args)
  local started = os.clock()  -- CPU seconds of the process so far: its start-up
  local o = parse(args)
  _G.print = print_to_stderr
  require('aegis.standards')  -- declares the config section before the config is read
  if o.worker then
    local code, out = require('aegis.standards.run').worker(io.stdin:read('a') or '')
    io.stdout:write(out)
    return code
  end
  if #o.paths == 0 then errors.usage('enforce: no paths given (see aegis-run enforce --help)') end
  local config = require('aegis.config')
  local cfg
  if o.config then
    if not fs.exists(o.config) then errors.usage("enforce: config '%s': No such file or directory", o.config) end
    cfg = config.load({ path = o.config })
  else
    cfg = config.get()
  end
  local scfg = cfg.standards or {}
  local cwd = fs.cwd() or '.'
  local file = config.file()
  local walk = require('aegis.standards.walk')
  local config_dir = file and walk.absolute(file, cwd):match('^(.*)/[^/]*$') or cwd
  -- a path that is not there is the first thing said (before a broken rulepack)
  local dirs = false
  for _, p in ipairs(o.paths) do
    local st, reason = fs.stat(p)
    if not st then errors.usage("enforce: '%s': %s", p, reason or 'No such file or directory') end
    if st.type == 'directory' then dirs = true end
  end
  -- directories are walked by the runner once the rules are loaded, while
  -- their queries compile on a thread of its own (for both languages: files
  -- named are listed now, and only their languages' queries compiled)
  local runner = require('aegis.standards.run')
  local jobs = o.jobs or runner.cpus()
  -- the sizes order the files among several processes (largest first); one
  -- process does not ask the file system for them
  local sizes, walked = jobs > 1 and {} or nil, 0
  local function list_files()
    local t0 = os.clock()
    local files, err = walk.files(o.paths, { ignore = scfg.ignore, sizes = sizes })
    if not files then errors.usage('%s', err) end
    walked = os.clock() - t0
    return files, sizes
  end
  local rules = o.rulepacks
  if not rules and scfg.rulepacks then
    -- rulepack files named in the config are relative to its directory
    rules = {}
    for i, spec in ipairs(scfg.rulepacks) do
      local is_file = spec:find('%.lua$')
        or spec:find('/', 1, true) and not spec:find('^[%w_][%w_%-%.]*/[%w_][%w_%-%.]*$')
      rules[i] = (is_file and spec:sub(1, 1) ~= '/' and config_dir ~= cwd) and config_dir .. '/' .. spec or spec
    end
  end
  local format = o.format
  if not format then
    format = (o.ci and os.getenv('GITHUB_ACTIONS') == 'true') and 'github' or 'text'
  end
  local ropts
  if format == 'text' then
    local nc = os.getenv('NO_COLOR')
    ropts = { color = not o.ci and not o.output and host.isatty(1) and (nc == nil or nc == '') }
  elseif format == 'sarif' then
    ropts = { root = walk.root(), cwd = cwd, version = require('aegis').version }
  end
  local report = require('aegis.standards.report')
  local res = runner.run({
    rules = rules or { 'aegis-constitutional' },
    config = scfg, config_dir = config_dir, files = dirs and list_files or list_files(), sizes = sizes,
    jobs = jobs, fail_fast = o.fail_fast, timings = o.timings,
    log = function(msg) io.stderr:write('aegis-run: enforce: ', msg, '\n') end,
    -- findings are rendered by the processes that find them (report.lua)
    render = function(list) return report.renderer(format, ropts, list) end,
  })
  local t0 = os.clock()
  -- the process ends once the report is out (quick_exit): nothing to collect
  collectgarbage('stop')
  -- a report is written piece by piece (its findings' parts as the
  -- processes rendered them), not made one string first
  local pieces = report.pieces(format, res, ropts)
  if o.output then
    local ok, reason = fs.write(o.output, table.concat(pieces))
    if not ok then errors.usage("enforce: write '%s': %s", o.output, reason) end
  else
    local out = io.stdout
    for i = 1, #pieces do out:write(pieces[i]) end
  end
  if res.timings then
    local tm = res.timings
    tm['(start-up)'], tm['(walk)'], tm['(report)'] = started, walked, os.clock() - t0
    local names, total = {}, 0
    for k, v in pairs(res.timings) do
      names[#names + 1] = k
      total = total + v
    end
    table.sort(names, function(a, b)
      if res.timings[a] ~= res.timings[b] then return res.timings[a] > res.timings[b] end
      return a < b
    end)
    io.stderr:write(('aegis-run: enforce: CPU seconds by stage and rule (total %.3f):\n'):format(total))
    for _, k in ipairs(names) do io.stderr:write(('%10.3f  %s\n'):format(res.timings[k], k)) end
  end
  local failed = res.counts.error > 0
  for _, p in ipairs(res.problems) do if runner.failing(p) then failed = true end end
  local maxw = o.max_warnings or scfg.max_warnings
  if maxw and maxw >= 0 and res.counts.warning > maxw then
    failed = true
    io.stderr:write(('aegis-run: enforce: %d warnings (more than --max-warnings %d)\n')
      :format(res.counts.warning, maxw))
  end
  return failed and 1 or 0
end

return {
  summary = 'check TypeScript/TSX files against rulepacks (text, JSON, SARIF, GitHub)',
  usage = usage,
  run = run,
  -- its copies and workers are waited for, its files closed, its output
  -- written and flushed by the time run returns (cli/init.lua)
  quick_exit = true,
}
