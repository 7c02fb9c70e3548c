--- `aegis-run cache stats|analyze|verify|gc|export|import|clear`: the
--- prompt cache from the command line (docs/cache.md "CLI").
local errors = require('aegis.errors')
local json = require('aegis.json')

local usage = [[
usage: aegis-run cache COMMAND [--store URL] [--namespace NS] [--json] [args]

Looks after the prompt cache (docs/cache.md): where it is, cache.url in
aegis.config.lua, else the project store ($AEGIS_STORE, else
sqlite:.aegis/aegis.db); --store URL names another.

commands:
  stats                  entries, bytes, hits, misses, hit rate, what the hits
                         saved (bytes, tokens, cost), per block kind and scaffold
  analyze [--performance] [--top N]
                         stats, and with --performance: the hit rate of stable
                         scaffolds, prefix breakers, the top missed requests
                         with the field that differed from the nearest stored
                         one, and the provider prefix-cache hits predicted by
                         each provider's rules
  verify [--full]        quick_check (integrity_check with --full) of the store
                         and the hash of every entry; exit 1 when anything is
                         wrong
  gc [--ttl D] [--max-entries N] [--max-bytes N]
                         removes expired and least recently used entries down
                         to the limits (default: the configured ones)
  export FILE            writes every verified entry to FILE (JSON lines)
  import FILE            reads entries written by export (each re-hashed)
  clear                  removes every entry (of --namespace NS, else of every
                         namespace) with its statistics, and says how many

options (every command):
  --store URL       the cache's store
  --namespace NS    only this namespace (default: every one)
  --json            one JSON object on stdout
  -h, --help        this help

exit codes: 0 success, 1 verify found a problem or an operation failed,
2 usage or configuration error (bad URL, unreachable server)]]

-- Flags each command takes besides --store, --namespace, --json.
local COMMANDS = {
  stats = {},
  analyze = { performance = 'flag', top = 'integer' },
  verify = { full = 'flag' },
  gc = { ttl = 'string', ['max-entries'] = 'integer', ['max-bytes'] = 'integer' },
  export = { file = true },
  import = { file = true },
  clear = {},
}

local function parse(args)
  local name = args[1]
  if name == nil then errors.usage('cache: a command is needed (see aegis-run cache --help)') end
  local spec = COMMANDS[name]
  if spec == nil then errors.usage("cache: unknown command '%s' (see aegis-run cache --help)", name) end
  local o = { command = name }
  local i = 2
  while i <= #args do
    local a = args[i]
    local key, value = a:match('^%-%-([%w-]+)=(.*)$')
    key = key or a:match('^%-%-([%w-]+)$')
    local function need()
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then errors.usage("cache %s: option '--%s' needs a value", name, key) end
      end
      return value
    end
    if a == '-h' or a == '--help' then
      o.help = true
    elseif key == 'store' then
      o.store = need()
    elseif key == 'namespace' then
      o.namespace = need()
      if o.namespace == '' then errors.usage('cache %s: --namespace must not be empty', name) end
    elseif key == 'json' and value == nil then
      o.json = true
    elseif key and spec[key] == 'flag' and value == nil then
      o[key] = true
    elseif key and spec[key] == 'integer' then
      local v = need()
      local n = math.tointeger(tonumber(v))
      if n == nil or n < 1 then errors.usage("cache %s: --%s must be a positive integer, got '%s'", name, key, v) end
      o[key] = n
    elseif key and spec[key] == 'string' then
      o[key] = need()
    elseif a:sub(1, 1) ~= '-' and spec.file and o.file == nil then
      o.file = a
    else
      errors.usage("cache %s: unknown argument '%s' (see aegis-run cache --help)", name, a)
    end
    i = i + 1
  end
  if spec.file and o.file == nil and not o.help then errors.usage('cache %s: a FILE is needed', name) end
  return o
end

local function open(o)
  local cache = require('aegis.cache')
  local c, msg = cache.open(o.store, { namespace = o.namespace })
  if not c then errors.config('%s', msg) end
  return c
end

-- The namespace filter of a command: the one named, else every one.
local function ns_opts(o)
  return o.namespace and { namespace = o.namespace } or nil
end

-- A to-be-closed guard that closes the cache (which writes its pending
-- statistics) however the command ends.
local function closing(c)
  return setmetatable({}, { __close = function() c:close() end })
end

local function check(ok, msg, code)
  if ok == nil then errors.raise(code or 'error', '%s', msg) end
  return ok
end

-- Numbers for people.
local function size(n)
  if type(n) ~= 'number' then return tostring(n) end
  local units = { 'B', 'KiB', 'MiB', 'GiB', 'TiB' }
  local u = 1
  while n >= 1024 and u < #units do n, u = n / 1024, u + 1 end
  return u == 1 and ('%d B'):format(n) or ('%.1f %s'):format(n, units[u])
end

local function pct(r)
  if type(r) ~= 'number' then return '-' end
  return ('%.1f %%'):format(r * 100)
end

local function usd(v)
  if type(v) ~= 'number' then return '-' end
  return ('$%.6f'):format(v)
end

local function short(h)
  return type(h) == 'string' and h:sub(1, 12) or '-'
end

local function out(s)
  io.stdout:write(s, '\n')
end

local function emit_json(v)
  io.stdout:write(json.encode(v), '\n')
end

-- stats: the cache's own counters and sizes, with the analysis's breakdown.
local function gather_stats(c, o)
  local analyze = require('aegis.cache.analyze')
  local st = check(analyze.stats(c.db, { namespace = o.namespace }))
  local own = check(c:stats(ns_opts(o)))
  for k, v in pairs(own) do st[k] = v end
  -- keep hit_rate consistent with the hits and misses shown
  local n = (st.hits or 0) + (st.misses or 0)
  st.hit_rate = n > 0 and st.hits / n or json.null
  st.namespace = o.namespace or json.null
  st.store = c.db.url
  return st
end

local function print_stats(st)
  out(('store      %s'):format(st.store))
  out(('namespace  %s'):format(st.namespace == json.null and '(all)' or st.namespace))
  out(('entries    %d (%s)'):format(st.entries or 0, size(st.bytes or 0)))
  out(('requests   %d: %d hits, %d misses, hit rate %s'):format((st.hits or 0) + (st.misses or 0), st.hits or 0,
    st.misses or 0, pct(st.hit_rate)))
  out(('saved      %s, %d tokens, %s'):format(size(st.bytes_saved or 0), st.tokens_saved or 0, usd(st.cost_saved)))
  if (st.corrupt or 0) > 0 then out(('corrupt    %d entries failed their check (quarantined)'):format(st.corrupt)) end
  local p = st.provider
  if p and p.calls > 0 then
    out(('provider   %d calls, %d of %d input tokens served from the provider\'s prefix cache (%s)'):format(
      p.calls, p.cached_input, p.input_tokens, pct(p.cached_rate)))
  end
  local kinds = {}
  for k in pairs(st.by_kind or {}) do kinds[#kinds + 1] = k end
  table.sort(kinds)
  if #kinds > 0 then
    out('')
    out(('%-16s %9s %7s %9s %9s'):format('block kind', 'requests', 'hits', 'hit rate', 'reused'))
    for _, k in ipairs(kinds) do
      local s = st.by_kind[k]
      out(('%-16s %9d %7d %9s %9s'):format(k, s.requests, s.hits, pct(s.hit_rate), pct(s.reused / s.requests)))
    end
  end
  if st.by_scaffold and #st.by_scaffold > 0 then
    out('')
    out(('%-14s %-28s %9s %7s %9s'):format('scaffold', 'provider/model', 'requests', 'hits', 'hit rate'))
    for i, s in ipairs(st.by_scaffold) do
      if i > 20 then
        out(('... and %d more'):format(#st.by_scaffold - 20))
        break
      end
      out(('%-14s %-28s %9d %7d %9s'):format(s.name or short(s.scaffold_id),
        tostring(s.provider) .. '/' .. tostring(s.model), s.requests, s.hits, pct(s.hit_rate)))
    end
  end
end

local function print_performance(p)
  out('')
  local ss = p.stable_scaffold
  out(('stable scaffolds  %d of %d requests reused a stable prefix sent before: %s'):format(ss.prefix_seen,
    ss.requests, pct(ss.hit_rate)))
  local pp = p.provider_prefix
  out(('provider cache    %d calls: %d predicted prefix-cache hits, %d reported by the provider'):format(pp.calls,
    pp.predicted_hits, pp.observed_hits))
  local names = {}
  for k in pairs(pp.by_provider) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local b = pp.by_provider[k]
    out(('  %-12s %d calls, %d predicted, %d reported (%s, minimum %d tokens)'):format(k, b.calls, b.predicted_hits,
      b.observed_hits, b.mode, b.min_tokens))
  end
  out('')
  if #p.breakers == 0 then
    out('prefix breakers   none found')
  else
    out('prefix breakers')
    for _, b in ipairs(p.breakers) do out('  - ' .. b.detail) end
  end
  out('')
  if #p.top_missed == 0 then
    out('top missed        none')
  else
    out('top missed (field that differed from the nearest stored request)')
    for _, m in ipairs(p.top_missed) do
      local what
      if m.field then
        what = m.field .. (m.field_is and (' (' .. m.field_is .. ')') or '')
        if #m.fields > 1 then what = what .. (' and %d more'):format(#m.fields - 1) end
        what = what .. ' vs ' .. short(m.nearest)
      else
        what = m.note or '-'
      end
      out(('  %s %s/%s: %s'):format(short(m.key), tostring(m.provider), tostring(m.model), what))
    end
  end
end

local handlers = {}

function handlers.stats(o)
  local c = open(o)
  local _ <close> = closing(c)
  local st = gather_stats(c, o)
  if o.json then emit_json(st) else print_stats(st) end
  return 0
end

function handlers.analyze(o)
  local analyze = require('aegis.cache.analyze')
  local c = open(o)
  local _ <close> = closing(c)
  local st = gather_stats(c, o)
  local report = { stats = st }
  if o.performance then
    report.performance = check(analyze.performance(c.db, { namespace = o.namespace, top = o.top }))
  end
  if o.json then
    -- the stats fields at the top level too, so `analyze --json` reads like `stats --json`
    local flat = {}
    for k, v in pairs(st) do flat[k] = v end
    flat.performance = report.performance
    emit_json(flat)
  else
    print_stats(st)
    if report.performance then print_performance(report.performance) end
  end
  return 0
end

function handlers.verify(o)
  local c = open(o)
  local _ <close> = closing(c)
  local v, msg = c:verify({ full = o.full })
  if v == nil then
    v = { ok = false, error = msg }
  end
  if o.json then
    emit_json(v)
  else
    if v.error then out('verify failed: ' .. tostring(v.error)) end
    out(('integrity  %s'):format(tostring(v.integrity or '-')))
    out(('checked    %d entries, %d bad'):format(v.checked or 0, type(v.bad) == 'table' and #v.bad or 0))
    for _, b in ipairs(type(v.bad) == 'table' and v.bad or {}) do
      out(('  - %s: %s'):format(type(b) == 'table' and short(b.key) or tostring(b),
        type(b) == 'table' and tostring(b.reason or b.error or '') or ''))
    end
    out(v.ok and 'ok' or 'problems found')
  end
  return v.ok and 0 or 1
end

-- Prints a result table of counts as `name  value` lines.
local function print_counts(title, t)
  if title then out(title) end
  local keys = {}
  for k, v in pairs(t) do
    if type(v) ~= 'table' then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do out(('  %-14s %s'):format(k, tostring(t[k]))) end
end

function handlers.gc(o)
  local c = open(o)
  local _ <close> = closing(c)
  local ok, res, msg, code = pcall(c.gc, c, { ttl = o.ttl, max_entries = o['max-entries'], max_bytes = o['max-bytes'] })
  if not ok then
    -- a bad --ttl is an argument error of gc: a usage error here
    if errors.is(res) then error(res, 0) end
    errors.usage('cache gc: %s', (tostring(res):gsub("^.-bad argument #%d+ to '[%w_]+' %((.*)%)$", '%1')))
  end
  check(res, msg, code)
  if o.json then emit_json(res) else print_counts('gc: removed', res) end
  return 0
end

function handlers.export(o)
  local c = open(o)
  local _ <close> = closing(c)
  local res = check(c:export(o.file, ns_opts(o)))
  if type(res) ~= 'table' then res = { entries = res } end
  res.file = o.file
  if o.json then
    emit_json(res)
  else
    out(('exported %d entries to %s (%d skipped: failed their check)'):format(res.exported or 0, o.file,
      res.skipped or 0))
  end
  return 0
end

function handlers.import(o)
  local c = open(o)
  local _ <close> = closing(c)
  local res = check(c:import(o.file, ns_opts(o)))
  if type(res) ~= 'table' then res = { entries = res } end
  res.file = o.file
  if o.json then
    emit_json(res)
  else
    out(('imported %d entries from %s (%d already present, %d bad)'):format(res.imported or 0, o.file,
      res.present or 0, res.bad or 0))
  end
  return 0
end

function handlers.clear(o)
  local c = open(o)
  local _ <close> = closing(c)
  local before = check(c:stats(ns_opts(o)))
  local removed = check(c:clear(ns_opts(o)))
  local res = { entries = removed, bytes = before.bytes, namespace = o.namespace or json.null, store = c.db.url }
  if o.json then
    emit_json(res)
  else
    out(('removed %d entries (%s) from %s of %s, with their statistics'):format(removed, size(before.bytes or 0),
      o.namespace and ('namespace ' .. o.namespace) or 'every namespace', c.db.url))
  end
  return 0
end

--- Runs `aegis-run cache ARGS`.
---@param args string[]
---@return integer exit code
local function run(args)
  if args[1] == nil then errors.usage('cache: a command is needed (see aegis-run cache --help)') end
  local o = parse(args)
  if o.help then
    out(usage)
    return 0
  end
  return handlers[o.command](o)
end

return { summary = 'prompt cache: stats, analyze, verify, gc, export, import, clear', usage = usage, run = run }
