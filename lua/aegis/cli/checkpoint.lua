--- `aegis-run checkpoint list|show|save|branch|log|diff|serve`: layered
--- checkpoints from the command line (docs/checkpoints.md).
local errors = require('aegis.errors')
local json = require('aegis.json')
local store = require('aegis.store')
local checkpoint = require('aegis.checkpoint')

local usage = [[
usage: aegis-run checkpoint list [--thread T] [--ns NS] [--limit N] [--json] [--store URL]
       aegis-run checkpoint show REF [--thread T] [--provenance] [--json] [--store URL]
       aegis-run checkpoint save --name N --state FILE|- [--thread T]
                                 [--layer plan|module|file] [--module ID] [--file ID]
                                 [--parent REF] [--json] [--store URL]
       aegis-run checkpoint branch --from REF --name M [--state FILE|-] [--thread T]
                                   [--json] [--store URL]
       aegis-run checkpoint log [THREAD] [--json] [--store URL]
       aegis-run checkpoint diff A B [--thread T] [--json] [--store URL]
       aegis-run checkpoint serve [--store URL] [--isolation lock|serializable]

Layered checkpoints (plan, module, file) in LangGraph's own tables: a
LangGraph application lists, loads and continues them.

commands:
  list     checkpoints, newest first: id, thread, namespace, step, name
  show     one checkpoint (REF: id, name or 'latest') with its state
  save     saves the JSON object in FILE (- for stdin) as the state of a new
           checkpoint named N; prints its id
  branch   forks checkpoint REF as M without replay, with its state or FILE's
  log      the lineage of a thread as a tree, branches shown (default thread: main)
  diff     which channels differ between checkpoints A and B
  serve    reads one JSON request per line on stdin, answers one per line
           (the LangGraph adapter's protocol, docs/checkpoints.md)

options:
  --store URL   the store (default: $AEGIS_STORE, else sqlite:.aegis/aegis.db)
  --thread T    the thread (save and branch: default main)
  --json        one JSON document on stdout (ids, thread, namespace, parent,
                metadata; show adds the state)
  -h, --help    this help

exit codes: 0 success, 1 failure (not found, name taken, store error),
2 usage or configuration error]]

local DEFAULT_THREAD = 'main'

-- Flags each command takes: name -> 'value' | 'flag'.
local FLAGS = {
  list = { store = 'value', json = 'flag', thread = 'value', ns = 'value', limit = 'value' },
  show = { store = 'value', json = 'flag', thread = 'value', ns = 'value', provenance = 'flag' },
  save = { store = 'value', json = 'flag', thread = 'value', name = 'value', state = 'value', layer = 'value',
    module = 'value', file = 'value', parent = 'value' },
  branch = { store = 'value', json = 'flag', thread = 'value', from = 'value', name = 'value', state = 'value' },
  log = { store = 'value', json = 'flag' },
  diff = { store = 'value', json = 'flag', thread = 'value' },
  serve = { store = 'value', isolation = 'value' },
}

local function parse(cmd, args)
  local o, pos = {}, {}
  local allowed = FLAGS[cmd]
  local i = 1
  while i <= #args do
    local a = args[i]
    local key, value = a:match('^%-%-([%w-]+)=(.*)$')
    key = key or a:match('^%-%-([%w-]+)$')
    if a == '-h' or a == '--help' then
      o.help = true
    elseif a == '-' or a:sub(1, 1) ~= '-' then
      pos[#pos + 1] = a
    elseif key and allowed[key] == 'flag' and value == nil then
      o[key] = true
    elseif key and allowed[key] == 'value' then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then errors.usage("checkpoint %s: option '--%s' needs a value", cmd, key) end
      end
      o[key] = value
    else
      errors.usage("checkpoint %s: unknown option '%s' (see aegis-run checkpoint --help)", cmd, a)
    end
    i = i + 1
  end
  return o, pos
end

local function open(url, isolation)
  local db, msg = checkpoint.open(url, isolation and { isolation = isolation } or nil)
  if not db then errors.config('%s', msg) end
  return db
end

local function check(ok, msg, code)
  if ok == nil then errors.raise(code or 'error', '%s', msg) end
  return ok
end

local function read_state(path, cmd)
  local text
  if path == '-' then
    text = io.stdin:read('a')
  else
    local reason
    text, reason = require('aegis.fs').read(path)
    if not text then errors.raise('io', "checkpoint %s: read '%s': %s", cmd, path, reason) end
  end
  local v, msg = json.decode(text)
  if msg then errors.usage("checkpoint %s: state '%s': %s", cmd, path, msg) end
  if type(v) ~= 'table' or json.is_array(v) then
    errors.usage("checkpoint %s: state '%s': a JSON object of channel values expected", cmd, path)
  end
  return v
end

local function summary(rec, with_state)
  local r = { id = rec.id, thread = rec.thread, namespace = rec.ns, parent = rec.parent or json.null,
    metadata = rec.metadata }
  if with_state then
    r.state = rec.state
    r.checkpoint = rec.checkpoint
    r.pending_writes = rec.pending_writes and json.array(rec.pending_writes) or nil
  end
  return r
end

local function out(v)
  io.stdout:write(json.encode(v, { indent = 2 }), '\n')
end

local function label(rec)
  local m = rec.metadata or {}
  local parts = { rec.id, rec.thread, rec.ns == '' and '(plan)' or rec.ns, 'step ' .. tostring(m.step) }
  if m.name then parts[#parts + 1] = m.name end
  return table.concat(parts, '  ')
end

local function list(o)
  local limit
  if o.limit then
    limit = math.tointeger(tonumber(o.limit))
    if not limit or limit < 0 then errors.usage("checkpoint list: --limit must be a non-negative integer") end
  end
  local db <close> = open(o.store)
  local recs = check(checkpoint.list({ db = db, thread = o.thread, ns = o.ns, limit = limit, writes = false,
    state = false }))
  if o.json then
    local arr = json.array({})
    for i, r in ipairs(recs) do arr[i] = summary(r) end
    out(arr)
    return 0
  end
  for _, r in ipairs(recs) do io.stdout:write(label(r), '\n') end
  return 0
end

local function provenance(id, db)
  local ok, trace = pcall(require, 'aegis.trace')
  if not ok or type(trace) ~= 'table' or type(trace.provenance_of_checkpoint) ~= 'function' then
    return nil, 'provenance not available (aegis.trace is not in this build)'
  end
  local r, msg = trace.provenance_of_checkpoint(id, db)
  if r == nil then return nil, 'provenance not available: ' .. tostring(msg or 'none recorded') end
  return r
end

local function show(o, pos)
  local ref = pos[1] or errors.usage('checkpoint show: missing REF (an id, a name or latest)')
  if pos[2] then errors.usage("checkpoint show: unexpected argument '%s'", pos[2]) end
  local db <close> = open(o.store)
  local rec, msg, code = checkpoint.load(ref, { db = db, thread = o.thread, ns = o.ns })
  if msg then errors.raise(code or 'error', '%s', msg) end
  if not rec then errors.raise('notfound', "checkpoint show: no checkpoint '%s'%s", ref,
    o.thread and (" in thread '" .. o.thread .. "'") or '') end
  local prov, pmsg
  if o.provenance then prov, pmsg = provenance(rec.id, db) end
  if o.json then
    local r = summary(rec, true)
    if o.provenance then r.provenance = prov or { error = pmsg } end
    out(r)
    return 0
  end
  local m = rec.metadata or {}
  local lines = {
    'id:        ' .. rec.id,
    'thread:    ' .. rec.thread,
    'namespace: ' .. (rec.ns == '' and '(plan)' or rec.ns),
    'parent:    ' .. (rec.parent or '(none)'),
    'step:      ' .. tostring(m.step) .. '  source: ' .. tostring(m.source),
  }
  if m.name then lines[#lines + 1] = 'name:      ' .. m.name end
  if m.layer then lines[#lines + 1] = 'layer:     ' .. m.layer end
  for _, k in ipairs({ 'scaffold_id', 'span_key', 'run_id' }) do
    if m[k] then lines[#lines + 1] = ('%-10s %s'):format(k .. ':', m[k]) end
  end
  lines[#lines + 1] = 'created:   ' .. tostring(rec.checkpoint.ts)
  lines[#lines + 1] = 'state:'
  io.stdout:write(table.concat(lines, '\n'), '\n', json.encode(rec.state, { indent = 2 }), '\n')
  if #(rec.pending_writes or {}) > 0 then
    io.stdout:write(('pending writes: %d\n'):format(#rec.pending_writes))
  end
  if o.provenance then
    if prov then
      io.stdout:write('provenance:\n', json.encode(prov, { indent = 2 }), '\n')
    else
      io.stdout:write(pmsg, '\n')
    end
  end
  return 0
end

local function save(o, pos)
  if pos[1] then errors.usage("checkpoint save: unexpected argument '%s'", pos[1]) end
  if not o.name then errors.usage('checkpoint save: --name is required') end
  if not o.state then errors.usage('checkpoint save: --state FILE (or - for stdin) is required') end
  local layer = o.layer or ((o.file and 'file') or (o.module and 'module')) or 'plan'
  if layer ~= 'plan' and layer ~= 'module' and layer ~= 'file' then
    errors.usage("checkpoint save: --layer must be plan, module or file, not '%s'", layer)
  end
  if (layer == 'module' or layer == 'file') and not o.module then
    errors.usage('checkpoint save: --layer %s needs --module ID', layer)
  end
  if layer == 'file' and not o.file then errors.usage('checkpoint save: --layer file needs --file ID') end
  for _, k in ipairs({ 'module', 'file' }) do
    if o[k] and o[k]:find('[|:]') then
      errors.usage("checkpoint save: --%s '%s' may not contain '|' or ':'", k, o[k])
    end
  end
  if o.name == 'latest' or o.name:match('^%x+%-%x+%-%x+%-%x+%-%x+$') then
    errors.usage("checkpoint save: --name '%s' would be read as an id or 'latest'", o.name)
  end
  local state = read_state(o.state, 'save')
  local db <close> = open(o.store)
  local rec = check(checkpoint.save({ db = db, thread = o.thread or DEFAULT_THREAD, layer = layer, module = o.module,
    file = o.file, state = state, name = o.name, parent = o.parent }))
  if o.json then out(summary(rec)) else io.stdout:write(rec.id, '\n') end
  return 0
end

local function branch(o, pos)
  if pos[1] then errors.usage("checkpoint branch: unexpected argument '%s'", pos[1]) end
  if not o.from then errors.usage('checkpoint branch: --from REF is required') end
  if not o.name then errors.usage('checkpoint branch: --name is required') end
  if o.name == 'latest' or o.name:match('^%x+%-%x+%-%x+%-%x+%-%x+$') then
    errors.usage("checkpoint branch: --name '%s' would be read as an id or 'latest'", o.name)
  end
  local state = o.state and read_state(o.state, 'branch') or nil
  local db <close> = open(o.store)
  local rec = check(checkpoint.branch({ db = db, from = o.from, name = o.name, state = state, thread = o.thread }))
  if o.json then out(summary(rec)) else io.stdout:write(rec.id, '\n') end
  return 0
end

local function log(o, pos)
  if pos[2] then errors.usage("checkpoint log: unexpected argument '%s'", pos[2]) end
  local thread = pos[1] or DEFAULT_THREAD
  local db <close> = open(o.store)
  local roots = check(checkpoint.log(thread, { db = db }))
  if o.json then
    out({ thread = thread, roots = roots })
    return 0
  end
  if #roots == 0 then
    io.stdout:write(("no checkpoints in thread '%s'\n"):format(thread))
    return 0
  end
  -- A chain of only children prints as a column; a branch point indents.
  local function line(n, prefix, mark)
    local desc = { n.id:sub(1, 13), n.ns == '' and 'plan' or n.ns, 'step ' .. tostring(n.step) }
    if n.name then desc[#desc + 1] = '[' .. n.name .. ']' end
    if n.source == 'fork' then desc[#desc + 1] = '(branch)' end
    io.stdout:write(prefix, mark, table.concat(desc, ' '), '\n')
  end
  local function walk(n, prefix, mark, cont)
    while true do
      line(n, prefix, mark)
      if #n.children == 1 then
        n, prefix, mark = n.children[1], cont, '* '
      else
        for i, c in ipairs(n.children) do
          local last = i == #n.children
          walk(c, cont, last and '`-* ' or '|-* ', cont .. (last and '    ' or '|   '))
        end
        return
      end
    end
  end
  for _, r in ipairs(roots) do walk(r, '', '* ', '') end
  return 0
end

local function diff(o, pos)
  if not pos[1] or not pos[2] then errors.usage('checkpoint diff: needs two checkpoints, A and B') end
  if pos[3] then errors.usage("checkpoint diff: unexpected argument '%s'", pos[3]) end
  local db <close> = open(o.store)
  local d = check(checkpoint.diff(pos[1], pos[2], { db = db, thread = o.thread }))
  if o.json then out(d) return 0 end
  for _, k in ipairs({ 'added', 'removed', 'changed' }) do
    for _, c in ipairs(d[k]) do io.stdout:write(({ added = '+ ', removed = '- ', changed = '~ ' })[k], c, '\n') end
  end
  if #d.added + #d.removed + #d.changed == 0 then io.stdout:write('no channel differs\n') end
  return 0
end

-- {======================================================================
-- serve: the JSON-lines protocol of the LangGraph adapter
-- ======================================================================

local function tuple(rec)
  local w = json.array({})
  for i, x in ipairs(rec.pending_writes or {}) do w[i] = json.array({ x.task_id, x.channel, x.value }) end
  return { thread = rec.thread, ns = rec.ns, id = rec.id, parent = rec.parent or json.null,
    checkpoint = rec.checkpoint, metadata = rec.metadata, pending_writes = w }
end

local ops = {}

function ops.put(db, q)
  if type(q.thread) ~= 'string' or q.thread == '' then return nil, 'put: missing thread_id', 'invalid' end
  local r, msg, code = checkpoint.put({ db = db, thread = q.thread, ns = q.ns, parent = q.parent ~= json.null
    and q.parent or nil }, q.checkpoint, q.metadata or {}, q.new_versions)
  if not r then return nil, msg, code end
  return r
end

function ops.put_writes(db, q)
  if type(q.thread) ~= 'string' or q.thread == '' then return nil, 'put_writes: missing thread_id', 'invalid' end
  if type(q.id) ~= 'string' or q.id == '' then return nil, 'put_writes: missing checkpoint_id', 'invalid' end
  return checkpoint.put_writes({ db = db, thread = q.thread, ns = q.ns, id = q.id }, q.writes, q.task_id)
end

function ops.get_tuple(db, q)
  if type(q.thread) ~= 'string' then return nil, 'get_tuple: missing thread_id', 'invalid' end
  local rec, msg, code = checkpoint.load(q.id or 'latest', { db = db, thread = q.thread, ns = q.ns or '' })
  if msg then return nil, msg, code end
  return rec and tuple(rec) or json.null
end

function ops.list(db, q)
  local recs, msg, code = checkpoint.list({ db = db, thread = q.thread, ns = q.ns, filter = q.filter,
    before = q.before, limit = q.limit })
  if not recs then return nil, msg, code end
  local arr = json.array({})
  for i, r in ipairs(recs) do arr[i] = tuple(r) end
  return arr
end

-- aegis's own save (parent: the thread's newest in the namespace); the
-- reply carries the id once the checkpoint is committed.
function ops.save(db, q)
  local rec, msg, code = checkpoint.save({ db = db, thread = q.thread, ns = q.ns, state = q.state, name = q.name,
    id = q.id, metadata = q.metadata })
  if not rec then return nil, msg, code end
  return { id = rec.id, thread = rec.thread, ns = rec.ns, parent = rec.parent or json.null, step = rec.metadata.step,
    attempts = rec.attempts }
end

function ops.delete_thread(db, q)
  return checkpoint.delete_thread(q.thread, { db = db })
end

local function serve(o, pos)
  if pos[1] then errors.usage("checkpoint serve: unexpected argument '%s'", pos[1]) end
  if o.isolation and o.isolation ~= 'lock' and o.isolation ~= 'serializable' then
    errors.usage("checkpoint serve: --isolation must be lock or serializable, not '%s'", o.isolation)
  end
  local db <close> = open(o.store, o.isolation)
  io.stdout:setvbuf('no')
  for line in io.stdin:lines() do
    local q, perr = json.decode(line)
    local reply
    if type(q) ~= 'table' then
      reply = { ok = false, error = 'checkpoint serve: ' .. tostring(perr or 'request must be a JSON object'),
        code = 'invalid' }
    else
      local fn = ops[q.op]
      if not fn then
        reply = { ok = false, error = ("checkpoint serve: unknown op '%s'"):format(tostring(q.op)), code = 'invalid' }
      else
        local ok, r, msg, code = pcall(fn, db, q)
        if not ok then
          reply = { ok = false, error = tostring(r), code = 'invalid' }
        elseif r == nil then
          reply = { ok = false, error = msg, code = code }
        else
          reply = { ok = true, result = r }
        end
      end
    end
    reply.seq = type(q) == 'table' and q.seq or nil
    io.stdout:write(json.canonical(reply), '\n')
  end
  return 0
end

-- }======================================================================

local commands = { list = list, show = show, save = save, branch = branch, log = log, diff = diff, serve = serve }

local function run(args)
  local sub = args[1]
  if sub == '-h' or sub == '--help' then
    io.stdout:write(usage, '\n')
    return 0
  end
  if sub == nil then errors.usage('checkpoint: missing command (list, show, save, branch, log, diff or serve)') end
  local fn = commands[sub]
  if not fn then
    errors.usage("checkpoint: unknown command '%s' (list, show, save, branch, log, diff or serve)", sub)
  end
  local o, pos = parse(sub, table.move(args, 2, #args, 1, {}))
  if o.help then
    io.stdout:write(usage, '\n')
    return 0
  end
  if o.store then store.redact(o.store) end
  return fn(o, pos)
end

return { summary = 'save, list, show, branch and compare layered checkpoints (LangGraph tables)',
  usage = usage, run = run }
