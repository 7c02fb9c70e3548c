--- Tool traces, scratchpads and provenance.
---
--- `trace.run` runs a tool (argv, no shell) and records what it did in
--- `tool_traces`: argv, cwd, the environment with secrets redacted, the
--- SHA-256 of stdin and of each declared input file, stdout, stderr, exit
--- status and duration, linked to a span, checkpoint and thread. Only
--- programs on the configuration's `tools.allow` list may run. With a
--- runtime, the result is journaled, and a replay hands it back without
--- running anything.
---
--- ```lua
--- local res, id = assert(trace.run{ argv = { 'tsc', '--noEmit' }, cwd = 'app', kind = 'tsc',
---   inputs = { 'app/src/parser.ts' }, checkpoint = ckpt_id, thread = run_id, timeout = 120 })
--- if res.exit ~= 0 then trace.scratch{ thread = run_id, kind = 'lint', text = res.stdout } end
--- ```
---
--- Scratchpads keep notes, code, test and lint text per thread (and
--- checkpoint) across sessions. `provenance(hash)` and
--- `provenance_of_checkpoint(id)` walk the links both ways. See docs/traces.md.
local artifact = require('aegis.artifact')
local config = require('aegis.config')
local hash = require('aegis.hash')
local json = require('aegis.json')
local proc = require('aegis.core.proc')
local runtime = require('aegis.runtime')
local s = require('aegis.schema')
local store = require('aegis.store')
local uuid = require('aegis.uuid')

local M = {}

--- Environment variables a tool gets when `run` is given no `env`.
M.default_env = { 'PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR' }

--- Bytes kept of stdout and of stderr, each (more is counted and dropped).
M.MAX_OUTPUT = 16 * 1024 * 1024

--- Seconds between SIGTERM and SIGKILL when a tool times out.
M.GRACE = 2

--- Migration steps of the `trace` component (tables `tool_traces` and
--- `scratchpads`).
M.STEPS = {
  store.ddl([[
CREATE TABLE tool_traces (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  program TEXT NOT NULL,
  argv TEXT NOT NULL,
  cwd TEXT,
  env TEXT NOT NULL,
  stdin_sha256 TEXT NOT NULL,
  stdin_size BIGINT NOT NULL,
  stdout {blob} NOT NULL,
  stderr {blob} NOT NULL,
  stdout_truncated INTEGER NOT NULL,
  stderr_truncated INTEGER NOT NULL,
  exit_code INTEGER,
  term_signal INTEGER,
  timed_out INTEGER NOT NULL,
  duration DOUBLE PRECISION NOT NULL,
  inputs TEXT NOT NULL,
  span TEXT,
  checkpoint TEXT,
  thread TEXT,
  replayed INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX tool_traces_checkpoint ON tool_traces (checkpoint);
CREATE INDEX tool_traces_thread ON tool_traces (thread);
CREATE TABLE scratchpads (
  id {serial_pk},
  thread TEXT NOT NULL,
  checkpoint TEXT,
  kind TEXT NOT NULL,
  text TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX scratchpads_thread ON scratchpads (thread, id);
]]),
}
store.register('trace', M.STEPS)

-- {====================================================== data models

local Sha = s.string({ pattern = '^%x+$', min = 64, max = 64 })
local Name = s.string({ min = 1 })

--- The data models of this module, for `aegis-run schema export`.
---@type table<string, aegis.schema.Schema>
M.schemas = {
  tool_trace = s.register('tool_trace', s.object({
    id = s.string({ format = 'uuid' }),
    kind = Name,
    program = Name:describe('argv[1] as given'),
    argv = s.array(s.string(), { min = 1 }):describe('Arguments, secrets replaced by ***'),
    cwd = s.string():optional(),
    env = s.record(s.string(), s.string()):describe('The environment the tool got, secret values replaced by ***'),
    stdin_sha256 = Sha,
    stdin_size = s.integer({ min = 0 }),
    stdout = s.string():optional():describe('Absent in list results unless asked for'),
    stderr = s.string():optional(),
    stdout_truncated = s.boolean(),
    stderr_truncated = s.boolean(),
    exit = s.integer():optional():describe('Exit status; absent when a signal ended the tool'),
    signal = s.integer():optional(),
    timed_out = s.boolean(),
    duration = s.number({ min = 0 }):describe('Wall seconds'),
    inputs = s.array(s.object({ path = Name, sha256 = Sha })),
    span = s.string():optional(),
    checkpoint = s.string():optional(),
    thread = s.string():optional(),
    replayed = s.boolean():describe('The result came from a journal, not from running the tool'),
    created_at = s.string({ format = 'date-time' }),
  }, { name = 'tool_trace', description = 'One tool run recorded by aegis.trace.run' })),
  scratchpad = s.register('scratchpad', s.object({
    id = s.integer(),
    thread = Name,
    checkpoint = s.string():optional(),
    kind = s.enum({ 'note', 'code', 'test', 'lint' }),
    text = s.string(),
    created_at = s.string({ format = 'date-time' }),
  }, { name = 'scratchpad', description = 'One scratchpad entry of a thread' })),
}

--- The `tools` section of aegis.config.lua.
M.config_schema = s.object({
  allow = s.array(s.union({ Name, s.array(Name, { min = 1 }) })):default({})
    :describe("Programs aegis.trace.run may start: a name looked up in aegis-run's PATH ('tsc'), an exact path, "
      .. "or an argv prefix ({'npx', 'tsc'}); empty: none. An allowed interpreter (node, sh, python) lets "
      .. 'pipelines run anything'),
  timeout = s.number({ min = 0 }):default(600)
    :describe('Seconds a tool may run unless run() says otherwise; 0: no limit'),
}):default({}):describe('External tools pipelines may run (aegis.trace.run)')
config.declare('tools', M.config_schema)

-- }======================================================

-- {====================================================== redaction

-- Values that look like credentials whatever variable holds them.
local key_patterns = {
  { 'sk%-[%w_%-]+', 23 },            -- OpenAI, Anthropic (sk-ant-...)
  { 'gh[pousr]_%w+', 30 },            -- GitHub tokens
  { 'github_pat_[%w_]+', 30 },
  { 'AKIA[%u%d]+', 20 },              -- AWS access key ids
  { 'AIza[%w_%-]+', 35 },             -- Google API keys
  { 'xox[abprs]%-[%w%-]+', 15 },      -- Slack
}

--- Replaces credentials in `text` with `***`: the given secret values
--- wherever they occur, then anything that looks like a provider key
--- (`sk-...` of 20 or more characters, GitHub, AWS, Google and Slack
--- tokens), a bearer token or a password in a URL.
---@param text string
---@param secrets? string[] Values to remove (values shorter than 6 bytes are ignored)
---@return string
function M.redact(text, secrets)
  if type(text) ~= 'string' then
    error("bad argument #1 to 'redact' (string expected, got " .. type(text) .. ')', 2)
  end
  for _, v in ipairs(secrets or {}) do
    if #v >= 6 then
      text = text:gsub(v:gsub('%p', '%%%0'), '***')
    end
  end
  for _, p in ipairs(key_patterns) do
    text = text:gsub(p[1], function(m)
      if #m >= p[2] then return '***' end
    end)
  end
  text = text:gsub('([Bb]earer%s+)[%w%._~+/%-]+=*', '%1***')
  text = text:gsub('(%a[%w+.-]*://[^/@%s:]*:)[^/@%s]+@', '%1***@')
  return text
end

-- }======================================================

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function optstring(v, n, fname, field)
  if v ~= nil and (type(v) ~= 'string' or v == '') then
    argerror(n, fname, field .. ' must be a non-empty string')
  end
end

local function checkdb(db, n, fname)
  if db ~= nil and (type(db) ~= 'userdata' and type(db) ~= 'table' or db.kind == nil) then
    argerror(n, fname, 'db must be an aegis.store handle')
  end
end

-- Whether argv may run under the allow-list; the list and a hint otherwise.
local function allowed(argv, allow)
  for _, entry in ipairs(allow) do
    if type(entry) == 'string' then
      if argv[1] == entry then return true end
    else
      local ok = #argv >= #entry
      for i = 1, #entry do
        if argv[i] ~= entry[i] then ok = false break end
      end
      if ok then return true end
    end
  end
  return false
end

-- The child's environment: "NAME=value" strings, the redacted record, and
-- the secret values to scrub elsewhere. nil, msg when a secret-looking
-- variable would be copied from our own environment.
local function build_env(env, prog)
  env = env or M.default_env
  local vars, order = {}, {}
  local function add(name, value)
    if not name:find('^[%a_][%w_]*$') then
      argerror(1, 'run', ("env name '%s' is not a variable name"):format(name))
    end
    if vars[name] == nil then order[#order + 1] = name end
    vars[name] = value
  end
  for i, name in ipairs(env) do
    if type(name) ~= 'string' then argerror(1, 'run', ('env[%d] must be a variable name'):format(i)) end
    if not name:find('^[%a_][%w_]*$') then
      argerror(1, 'run', ("env name '%s' is not a variable name"):format(name))
    end
    if runtime.is_secret(name) then
      return nil, ("trace: run '%s': will not pass '%s' from the environment (it looks like a secret); "
        .. 'give its value explicitly'):format(prog, name)
    end
    local v = os.getenv(name)
    if v ~= nil then add(name, v) end
  end
  for k, v in pairs(env) do
    if math.type(k) == nil then
      if type(k) ~= 'string' then argerror(1, 'run', 'env keys must be strings') end
      if v ~= false then
        if type(v) ~= 'string' then argerror(1, 'run', ("env value of '%s' must be a string"):format(k)) end
        if v:find('\0', 1, true) then argerror(1, 'run', ("env value of '%s' contains a NUL byte"):format(k)) end
        add(k, v)
      end
    elseif math.type(k) ~= 'integer' or k < 1 or k > #env then
      argerror(1, 'run', 'env must mix a list of names and NAME = value pairs')
    end
  end
  table.sort(order)
  local list, record, secrets = {}, {}, {}
  for i, name in ipairs(order) do
    local v = vars[name]
    list[i] = name .. '=' .. v
    if runtime.is_secret(name, v) then
      record[name] = '***'
      secrets[#secrets + 1] = v
    else
      record[name] = v
    end
  end
  for name, v in pairs(record) do
    local r = M.redact(v)
    if r ~= v then
      record[name] = '***'
      secrets[#secrets + 1] = v
    end
  end
  table.sort(secrets, function(a, b) return #a > #b end)  -- longest first: no partial leftovers
  return list, record, secrets
end

local function join(dir, p)
  if dir == nil or p:sub(1, 1) == '/' then return p end
  return dir .. '/' .. p
end

-- Journals `read()`'s result under (kind, key) in `rt` (aegis.runtime's
-- `record`), or in replay mode returns the journaled one. Failures
-- (nil, msg, code) are journaled as {error=, code=} so a replay fails the
-- same way.
local function journaled(rt, kind, key, read)
  local v = rt:record(kind, key, function()
    local r, msg, code = read()
    if r == nil then return { error = msg, code = code } end
    return r
  end)
  if type(v) == 'table' and v.error ~= nil then return nil, v.error, v.code end
  return v
end

local function bool(v) return v ~= nil and v ~= 0 and v ~= false end

--- Options of `trace.run`.
---@class aegis.trace.RunOpts
---@field argv string[] Program and arguments (no shell); the program must be on `tools.allow`
---@field kind? string What the tool is: 'test', 'lint', 'tsc', 'astdiff', ... (default 'tool')
---@field cwd? string Working directory (default aegis-run's)
---@field env? table Names copied from aegis-run's environment (`{'PATH', 'HOME'}`) and/or `NAME = value`
---  pairs; this is the whole environment the tool gets (default `trace.default_env`). Names that look like
---  secrets are never copied by name
---@field stdin? string Bytes fed to the tool (default none)
---@field timeout? number Seconds before the tool's process group gets SIGTERM, then SIGKILL after
---  `trace.GRACE` (default `tools.timeout` from the configuration, 600; 0: none)
---@field inputs? string[] Files the tool reads, hashed (SHA-256) before it runs; relative to `cwd`
---@field span? string Span key to link the trace to
---@field checkpoint? string Checkpoint id to link the trace to
---@field thread? string Thread (run) id to link the trace to
---@field runtime? aegis.Runtime Journal: record mode records the result, replay mode returns it without running
---@field db? aegis.store.Db Where the trace row goes (default: the default store)
---@field max_output? integer Bytes kept of stdout and of stderr, each (default `trace.MAX_OUTPUT`)

--- The result of `trace.run`.
---@class aegis.trace.Result
---@field exit? integer Exit status (absent when a signal ended the tool)
---@field signal? integer Signal that ended it
---@field signal_name? string 'TERM', 'KILL', ...
---@field stdout string
---@field stderr string
---@field stdout_truncated boolean
---@field stderr_truncated boolean
---@field timed_out boolean
---@field seconds number Wall time
---@field replayed boolean Taken from the journal

--- Runs a tool and records a `tool_traces` row. Refused (`'denied'`)
--- unless argv's program is on the configuration's `tools.allow` list.
--- The stored row has secrets redacted: values of variables whose names
--- look like secrets, values that look like provider keys, and those same
--- values wherever they appear in argv, stdout and stderr. A tool that
--- exits non-zero, dies of a signal or times out is a result, not a
--- failure. Failures to start it (program or input not found) are
--- journaled too, so a replay fails the same way.
---@param opts aegis.trace.RunOpts
---@return aegis.trace.Result? result
---@return string? id_or_err The trace id; or the message
---@return string? code 'denied', 'not_found', 'io', or a store code
function M.run(opts)
  if type(opts) ~= 'table' then argerror(1, 'run', 'table expected, got ' .. type(opts)) end
  local argv = opts.argv
  if type(argv) ~= 'table' or #argv == 0 then argerror(1, 'run', 'argv must be a non-empty list of strings') end
  for i, a in ipairs(argv) do
    if type(a) ~= 'string' then argerror(1, 'run', ('argv[%d] must be a string'):format(i)) end
  end
  local kind = opts.kind or 'tool'
  if type(kind) ~= 'string' or not kind:find('^[%w_.:-]+$') then
    argerror(1, 'run', 'kind must be a word (test, lint, tsc, ...)')
  end
  optstring(opts.cwd, 1, 'run', 'cwd')
  for _, k in ipairs({ 'span', 'checkpoint', 'thread' }) do optstring(opts[k], 1, 'run', k) end
  if opts.stdin ~= nil and type(opts.stdin) ~= 'string' then argerror(1, 'run', 'stdin must be a string') end
  if opts.env ~= nil and type(opts.env) ~= 'table' then argerror(1, 'run', 'env must be a table') end
  if opts.timeout ~= nil and (type(opts.timeout) ~= 'number' or opts.timeout < 0) then
    argerror(1, 'run', 'timeout must be a non-negative number')
  end
  if opts.inputs ~= nil then
    if type(opts.inputs) ~= 'table' then argerror(1, 'run', 'inputs must be a list of paths') end
    for i, p in ipairs(opts.inputs) do
      if type(p) ~= 'string' or p == '' then argerror(1, 'run', ('inputs[%d] must be a path'):format(i)) end
    end
  end
  local rt = opts.runtime
  if rt ~= nil and (type(rt) ~= 'table' or (rt.mode ~= 'record' and rt.mode ~= 'replay')) then
    argerror(1, 'run', 'runtime must be an aegis.runtime object')
  end
  checkdb(opts.db, 1, 'run')
  local cap = opts.max_output or M.MAX_OUTPUT
  if math.type(cap) ~= 'integer' or cap < 0 then argerror(1, 'run', 'max_output must be a non-negative integer') end

  local prog = argv[1]
  local tools = config.get().tools or { allow = {}, timeout = 600 }
  if not allowed(argv, tools.allow) then
    return nil, ("trace: run '%s': not on the allow-list (add it to tools.allow in aegis.config.lua)")
      :format(prog), 'denied'
  end
  local envlist, envrec, secrets = build_env(opts.env, prog)
  if not envlist then return nil, envrec, 'denied' end
  local timeout = opts.timeout or tools.timeout

  local red_argv = {}
  for i, a in ipairs(argv) do red_argv[i] = M.redact(a, secrets) end
  local stdin = opts.stdin or ''
  local inputs = {}
  for i, p in ipairs(opts.inputs or {}) do
    local h, msg, code = hash.sha256_file(join(opts.cwd, p))
    if not h then
      return nil, ("trace: run '%s': input '%s': %s"):format(prog, p, (msg:gsub('^hash: ', ''))), code
    end
    inputs[i] = { path = p, sha256 = h }
  end
  local stdin_sha = hash.sha256(stdin)

  local function live()
    local r, msg, code = proc.run(argv, {
      cwd = opts.cwd, env = envlist, path = os.getenv('PATH'), stdin = stdin,
      timeout = timeout, grace = M.GRACE, cap = cap,
    })
    if not r then return nil, (msg:gsub('^proc: ', 'trace: ')), code end
    return {
      exit = r.exit, signal = r.signal, signal_name = r.signal_name,
      stdout = r.stdout, stderr = r.stderr,
      stdout_truncated = r.stdout_truncated, stderr_truncated = r.stderr_truncated,
      timed_out = r.timed_out, seconds = r.seconds,
    }
  end

  local res, msg, code
  if rt then
    local key = hash.sha256(json.canonical({
      argv = json.array(red_argv), cwd = opts.cwd or json.null, stdin = stdin_sha, inputs = json.array(inputs),
    }))
    -- The journal gets the redacted output: no secret reaches it.
    res, msg, code = journaled(rt, 'tool', key, function()
      local r, m, c = live()
      if not r then return nil, m, c end
      r.stdout = M.redact(r.stdout, secrets)
      r.stderr = M.redact(r.stderr, secrets)
      return r
    end)
    if not res then return nil, msg, code end
    local copy = {}
    for k, v in pairs(res) do copy[k] = v end
    copy.replayed = rt.mode == 'replay'
    res = copy
  else
    res, msg, code = live()
    if not res then return nil, msg, code end
    res.replayed = false
  end

  local id = uuid.v6()
  local row = {
    id, kind, M.redact(prog, secrets), json.encode(json.array(red_argv)),
    opts.cwd and M.redact(opts.cwd, secrets) or store.null,
    json.encode(envrec), stdin_sha, #stdin,
    store.blob(M.redact(res.stdout, secrets)), store.blob(M.redact(res.stderr, secrets)),
    res.stdout_truncated and 1 or 0, res.stderr_truncated and 1 or 0,
    res.exit or store.null, res.signal or store.null, res.timed_out and 1 or 0, res.seconds,
    json.encode(json.array(inputs)), opts.span or store.null, opts.checkpoint or store.null,
    opts.thread or store.null, res.replayed and 1 or 0, artifact._now(),
  }
  local ok
  ok, msg, code = artifact._with(opts.db, { 'trace' }, function(db)
    return db:exec([[
INSERT INTO tool_traces (id, kind, program, argv, cwd, env, stdin_sha256, stdin_size, stdout, stderr,
  stdout_truncated, stderr_truncated, exit_code, term_signal, timed_out, duration, inputs, span, checkpoint,
  thread, replayed, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)]],
      table.unpack(row, 1, 22))
  end)
  if not ok then return nil, msg, code end
  return res, id
end

--- The module with `run` bound to a runtime: every run is journaled in
--- `rt` (record) or answered from it (replay), and a `runtime` option other
--- than `rt` raises. This is what a sandboxed script should see as
--- `aegis.trace`, so its tool runs cannot leave the journal.
---@param rt aegis.Runtime
---@return table trace A table with the functions of this module, `run` bound to `rt`
function M.bind(rt)
  if type(rt) ~= 'table' or (rt.mode ~= 'record' and rt.mode ~= 'replay') then
    argerror(1, 'bind', 'aegis.runtime object expected')
  end
  local bound = {}
  for k, v in pairs(M) do bound[k] = v end
  bound.bind = nil
  bound.run = function(opts)
    if type(opts) ~= 'table' then argerror(1, 'run', 'table expected, got ' .. type(opts)) end
    if opts.runtime ~= nil and opts.runtime ~= rt then argerror(1, 'run', 'runtime is bound to this script') end
    local copy = {}
    for k, v in pairs(opts) do copy[k] = v end
    copy.runtime = rt
    return M.run(copy)
  end
  return bound
end

local TRACE_COLS = 'id, kind, program, argv, cwd, env, stdin_sha256, stdin_size, stdout_truncated, '
  .. 'stderr_truncated, exit_code, term_signal, timed_out, duration, inputs, span, checkpoint, thread, '
  .. 'replayed, created_at'

local function decode_trace(r)
  r.argv = json.decode(r.argv)
  local env = json.decode(r.env)
  r.env = env
  r.inputs = json.decode(r.inputs)
  r.exit, r.exit_code = r.exit_code, nil
  r.signal, r.term_signal = r.term_signal, nil
  for _, k in ipairs({ 'stdout_truncated', 'stderr_truncated', 'timed_out', 'replayed' }) do r[k] = bool(r[k]) end
  r.duration = r.duration + 0.0
  return r
end

--- Reads one tool trace (with its stdout and stderr).
---@param id string
---@param db? aegis.store.Db
---@return table? trace A `tool_trace` record; nil when there is none
---@return string? err
---@return string? code
function M.get(id, db)
  if type(id) ~= 'string' then argerror(1, 'get', 'string expected, got ' .. type(id)) end
  checkdb(db, 2, 'get')
  return artifact._with(db, { 'trace' }, function(d)
    local r, msg, code = d:first('SELECT ' .. TRACE_COLS .. ', stdout, stderr FROM tool_traces WHERE id = $1', id)
    if msg then return nil, msg, code end
    if not r then return nil end
    return decode_trace(r)
  end)
end

--- Options of `trace.list`.
---@class aegis.trace.ListOpts
---@field db? aegis.store.Db
---@field checkpoint? string
---@field thread? string
---@field span? string
---@field kind? string
---@field output? boolean Include stdout and stderr
---@field limit? integer At most this many

--- Lists tool traces, oldest first, filtered by checkpoint, thread, span
--- and kind (all that are given). Rows leave out stdout and stderr unless
--- `output` is true.
---@param opts? aegis.trace.ListOpts
---@return table[]? traces `tool_trace` records
---@return string? err
---@return string? code
function M.list(opts)
  opts = opts or {}
  if type(opts) ~= 'table' then argerror(1, 'list', 'table expected, got ' .. type(opts)) end
  checkdb(opts.db, 1, 'list')
  local where, args = {}, {}
  for _, k in ipairs({ 'checkpoint', 'thread', 'span', 'kind' }) do
    if opts[k] ~= nil then
      if type(opts[k]) ~= 'string' then argerror(1, 'list', k .. ' must be a string') end
      args[#args + 1] = opts[k]
      where[#where + 1] = ('%s = $%d'):format(k, #args)
    end
  end
  if opts.limit ~= nil and (math.type(opts.limit) ~= 'integer' or opts.limit < 1) then
    argerror(1, 'list', 'limit must be a positive integer')
  end
  local sql = 'SELECT ' .. TRACE_COLS .. (opts.output and ', stdout, stderr' or '') .. ' FROM tool_traces'
    .. (#where > 0 and (' WHERE ' .. table.concat(where, ' AND ')) or '') .. ' ORDER BY id'
    .. (opts.limit and (' LIMIT ' .. opts.limit) or '')
  return artifact._with(opts.db, { 'trace' }, function(d)
    local rows, msg, code = d:query(sql, table.unpack(args))
    if not rows then return nil, msg, code end
    for _, r in ipairs(rows) do decode_trace(r) end
    return json.array(rows)
  end)
end

-- {====================================================== scratchpads

local SCRATCH_KINDS = { note = true, code = true, test = true, lint = true }

--- Appends an entry to a thread's scratchpad. Text that looks like a
--- provider key is stored as `***` (see `trace.redact`).
---@param opts {thread: string, checkpoint?: string, kind: 'note'|'code'|'test'|'lint', text: string,
---  db?: aegis.store.Db}
---@return integer? id Its position: entries read back in id order
---@return string? err
---@return string? code
function M.scratch(opts)
  if type(opts) ~= 'table' then argerror(1, 'scratch', 'table expected, got ' .. type(opts)) end
  if type(opts.thread) ~= 'string' or opts.thread == '' then
    argerror(1, 'scratch', 'thread must be a non-empty string')
  end
  optstring(opts.checkpoint, 1, 'scratch', 'checkpoint')
  if not SCRATCH_KINDS[opts.kind] then
    argerror(1, 'scratch', ("kind must be 'note', 'code', 'test' or 'lint', got %s"):format(
      type(opts.kind) == 'string' and ("'" .. opts.kind .. "'") or type(opts.kind)))
  end
  if type(opts.text) ~= 'string' then argerror(1, 'scratch', 'text must be a string') end
  checkdb(opts.db, 1, 'scratch')
  local text = M.redact(opts.text)
  return artifact._with(opts.db, { 'trace' }, function(db)
    local row, msg, code = db:first('INSERT INTO scratchpads (thread, checkpoint, kind, text, created_at) '
      .. 'VALUES ($1, $2, $3, $4, $5) RETURNING id', opts.thread, opts.checkpoint or store.null, opts.kind,
      text, artifact._now())
    if not row then return nil, msg, code end
    return row.id
  end)
end

--- Reads a thread's scratchpad in the order it was written, optionally
--- only the entries of one checkpoint and/or one kind.
---@param opts {thread: string, checkpoint?: string, kind?: 'note'|'code'|'test'|'lint', db?: aegis.store.Db}
---@return table[]? entries `scratchpad` records
---@return string? err
---@return string? code
function M.scratchpad(opts)
  if type(opts) ~= 'table' then argerror(1, 'scratchpad', 'table expected, got ' .. type(opts)) end
  if type(opts.thread) ~= 'string' or opts.thread == '' then
    argerror(1, 'scratchpad', 'thread must be a non-empty string')
  end
  optstring(opts.checkpoint, 1, 'scratchpad', 'checkpoint')
  if opts.kind ~= nil and not SCRATCH_KINDS[opts.kind] then
    argerror(1, 'scratchpad', "kind must be 'note', 'code', 'test' or 'lint'")
  end
  checkdb(opts.db, 1, 'scratchpad')
  local where, args = { 'thread = $1' }, { opts.thread }
  for _, k in ipairs({ 'checkpoint', 'kind' }) do
    if opts[k] ~= nil then
      args[#args + 1] = opts[k]
      where[#where + 1] = ('%s = $%d'):format(k, #args)
    end
  end
  return artifact._with(opts.db, { 'trace' }, function(db)
    local rows, msg, code = db:query('SELECT id, thread, checkpoint, kind, text, created_at FROM scratchpads WHERE '
      .. table.concat(where, ' AND ') .. ' ORDER BY id', table.unpack(args))
    if not rows then return nil, msg, code end
    return json.array(rows)
  end)
end

-- }======================================================

-- {====================================================== provenance

local function has_table(db, name)
  local row, msg, code
  if db.kind == 'sqlite' then
    row, msg, code = db:first("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = $1", name)
  else
    row, msg, code = db:first('SELECT 1 AS x FROM information_schema.tables '
      .. 'WHERE table_schema = current_schema() AND table_name = $1', name)
  end
  if msg then return nil, msg, code end
  return row ~= nil
end

-- What the store knows of tables owned elsewhere: LangGraph's `checkpoints`
-- (issue 5's checkpoint module) and `scaffolds`/`blocks` (the prompt-cache
-- issue). Missing tables are gaps, reported as such.
local function others(db)
  local t = {}
  for _, name in ipairs({ 'checkpoints', 'scaffolds', 'blocks' }) do
    local ok, msg, code = has_table(db, name)
    if ok == nil then return nil, msg, code end
    t[name] = ok
  end
  return t
end

local function decode_json(v)
  if type(v) ~= 'string' then return v end
  local ok, r = pcall(json.decode, v)
  if ok then return r end
  return nil
end

-- The checkpoint row (thread, namespace, parent, metadata) by id.
local function checkpoint_row(db, have, id)
  if not have.checkpoints then return { id = id, found = false } end
  local cast = db.kind == 'postgres' and '::text' or ''
  local r, msg, code = db:first('SELECT thread_id, checkpoint_ns, parent_checkpoint_id, metadata' .. cast
    .. ' AS metadata FROM checkpoints WHERE checkpoint_id = $1 ORDER BY thread_id, checkpoint_ns LIMIT 1', id)
  if msg then return nil, msg, code end
  if not r then return { id = id, found = false } end
  return { id = id, found = true, thread = r.thread_id, ns = r.checkpoint_ns, parent = r.parent_checkpoint_id,
    metadata = decode_json(r.metadata) }
end

-- One scaffold and its blocks, joined with their tables when they exist.
local function scaffold_info(db, have, id, blocks, gaps)
  local sc = { id = id, blocks = json.array({}) }
  -- The prompt-cache issue owns these tables; their key columns are
  -- assumed to be scaffolds.id and blocks.hash (DESIGN.md §3). A query
  -- that fails is reported in `gaps`, never raised.
  if have.scaffolds then
    local r, msg = db:first('SELECT * FROM scaffolds WHERE id = $1', id)
    if r then sc.row = r elseif msg then gaps[#gaps + 1] = 'scaffolds: ' .. msg end
  end
  for i, b in ipairs(blocks or {}) do
    local blk = { hash = b }
    if have.blocks then
      local r, msg = db:first('SELECT * FROM blocks WHERE hash = $1', b)
      if r then blk.row = r elseif msg then gaps[#gaps + 1] = 'blocks: ' .. msg end
    end
    sc.blocks[i] = blk
  end
  return sc
end

local function gap_notes(have)
  local gaps = json.array({})
  if not have.checkpoints then
    gaps[#gaps + 1] = 'no checkpoints table in this store: checkpoint ids are shown without their metadata'
  end
  if not have.scaffolds then
    gaps[#gaps + 1] = 'no scaffolds table in this store: scaffold ids are shown as recorded in the links'
  end
  if not have.blocks then
    gaps[#gaps + 1] = 'no blocks table in this store: block hashes are shown as recorded in the links'
  end
  return gaps
end

--- Where an artifact came from: its links, the checkpoints (with thread,
--- namespace and metadata when the store has LangGraph's `checkpoints`
--- table), spans, scaffolds and prompt blocks that produced it, and the
--- tool traces linked to it. Scaffold and block rows are joined when the
--- store has `scaffolds`/`blocks` tables; otherwise the ids recorded in
--- the links (and a checkpoint's `metadata.scaffold_id`) are given, and
--- `gaps` says what could not be joined.
---@param h string Artifact SHA-256
---@param db? aegis.store.Db
---@return table? provenance `{artifact, links, checkpoints, spans, scaffolds, traces, gaps}`; nil when
---  there is no such artifact
---@return string? err
---@return string? code
function M.provenance(h, db)
  if type(h) ~= 'string' or not h:find('^%x+$') or #h ~= 64 then
    argerror(1, 'provenance', 'SHA-256 hex expected')
  end
  checkdb(db, 2, 'provenance')
  return artifact._with(db, { 'artifact', 'trace' }, function(d)
    local info, msg, code = artifact.info(h, d)
    if msg then return nil, msg, code end
    if not info then return nil end
    local links
    links, msg, code = artifact.links(h, d)
    if not links then return nil, msg, code end
    local have
    have, msg, code = others(d)
    if not have then return nil, msg, code end
    local gaps = gap_notes(have)
    local out = { artifact = info, links = json.array(links), checkpoints = json.array({}), spans = json.array({}),
      scaffolds = json.array({}), traces = json.array({}), gaps = gaps }
    local seen = { ckpt = {}, span = {}, scaffold = {}, trace = {} }
    local function add_scaffold(id, blocks)
      if id == nil or seen.scaffold[id] then return end
      seen.scaffold[id] = true
      out.scaffolds[#out.scaffolds + 1] = scaffold_info(d, have, id, blocks, gaps)
    end
    for _, l in ipairs(links) do
      if l.checkpoint and not seen.ckpt[l.checkpoint] then
        seen.ckpt[l.checkpoint] = true
        local c, m, cd = checkpoint_row(d, have, l.checkpoint)
        if not c then return nil, m, cd end
        out.checkpoints[#out.checkpoints + 1] = c
      end
      if l.span and not seen.span[l.span] then
        seen.span[l.span] = true
        out.spans[#out.spans + 1] = l.span
      end
      add_scaffold(l.scaffold_id, l.blocks)
      if l.trace and not seen.trace[l.trace] then
        seen.trace[l.trace] = true
        local t, m, cd = M.get(l.trace, d)
        if m then return nil, m, cd end
        out.traces[#out.traces + 1] = t or { id = l.trace, found = false }
      end
    end
    for _, c in ipairs(out.checkpoints) do
      local md = c.metadata
      if type(md) == 'table' then
        if type(md.scaffold_id) == 'string' then add_scaffold(md.scaffold_id) end
        if type(md.span_key) == 'string' and not seen.span[md.span_key] then
          seen.span[md.span_key] = true
          out.spans[#out.spans + 1] = md.span_key
        end
      end
    end
    return out
  end)
end

--- What a checkpoint is linked to: the checkpoint itself (thread,
--- namespace, parent, metadata, when the store has LangGraph's
--- `checkpoints` table), the artifacts linked to it (with role, path, span,
--- scaffold and blocks), the tool traces run for it (without their
--- output), its scratchpad entries, and its scaffold (from the metadata's
--- `scaffold_id`, else from the links). `gaps` says what could not be
--- joined. This is what `aegis-run checkpoint show ID --provenance` prints.
---@param id string Checkpoint id
---@param db? aegis.store.Db
---@return table? provenance `{checkpoint, artifacts, traces, scratchpad, scaffolds, gaps}`
---@return string? err
---@return string? code
function M.provenance_of_checkpoint(id, db)
  if type(id) ~= 'string' or id == '' then argerror(1, 'provenance_of_checkpoint', 'checkpoint id expected') end
  checkdb(db, 2, 'provenance_of_checkpoint')
  return artifact._with(db, { 'artifact', 'trace' }, function(d)
    local have, msg, code = others(d)
    if not have then return nil, msg, code end
    local gaps = gap_notes(have)
    local ck
    ck, msg, code = checkpoint_row(d, have, id)
    if not ck then return nil, msg, code end
    local arts
    arts, msg, code = artifact.linked({ checkpoint = id, db = d })
    if not arts then return nil, msg, code end
    local traces
    traces, msg, code = M.list({ checkpoint = id, db = d })
    if not traces then return nil, msg, code end
    local pad
    pad, msg, code = d:query('SELECT id, thread, checkpoint, kind, text, created_at FROM scratchpads '
      .. 'WHERE checkpoint = $1 ORDER BY id', id)
    if not pad then return nil, msg, code end
    local scaffolds, seen = json.array({}), {}
    local function add(sid, blocks)
      if sid == nil or seen[sid] then return end
      seen[sid] = true
      scaffolds[#scaffolds + 1] = scaffold_info(d, have, sid, blocks, gaps)
    end
    if type(ck.metadata) == 'table' and type(ck.metadata.scaffold_id) == 'string' then
      local blocks
      for _, a in ipairs(arts) do
        if a.scaffold_id == ck.metadata.scaffold_id and a.blocks then blocks = a.blocks break end
      end
      add(ck.metadata.scaffold_id, blocks)
    end
    for _, a in ipairs(arts) do add(a.scaffold_id, a.blocks) end
    return { checkpoint = ck, artifacts = json.array(arts), traces = json.array(traces), scratchpad = json.array(pad),
      scaffolds = scaffolds, gaps = gaps }
  end)
end

-- }======================================================

return M
