--- `aegis-run emulate`: runs the local provider emulator until SIGINT or
--- SIGTERM. See docs/emulator.md.
local emulator = require('aegis.emulator')
local errors = require('aegis.errors')
local faults = require('aegis.emulator.faults')

local usage = [[
usage: aegis-run emulate [--port N] [--host H] [--script FILE] [--fault-rate SPEC]
                         [--seed N] [--report-cached] [--log FILE]

Runs a local server that speaks the OpenAI, Anthropic, vLLM, SGLang and
llama.cpp wire formats with deterministic replies, simulated prefix caches
and fault injection, for tests and offline CI. Prints
"emulator listening on http://HOST:PORT" once ready; stops on SIGINT/SIGTERM.

Base URLs:  openai SDK     http://127.0.0.1:PORT/openai/v1
            anthropic SDK  http://127.0.0.1:PORT/anthropic
            vllm           http://127.0.0.1:PORT/vllm/v1
            sglang         http://127.0.0.1:PORT/sglang  (and /sglang/v1)
            llama.cpp      http://127.0.0.1:PORT/llamacpp  (and /llamacpp/v1)
Control:    /_emulator/faults[/ROUTE], /_emulator/log, /_emulator/clock,
            /_emulator/reset, /_emulator/health

options:
  --port N          port to listen on (default 0: a free one)
  --host H          address to bind (default 127.0.0.1; anything that is not
                    loopback must be given here explicitly)
  --script FILE     scripted rules: a Lua file (run sandboxed) returning a list
                    of {match=, respond=|fault=, times=}
  --fault-rate SPEC random faults, e.g. 429:0.2,529:0.05,reset:0.01
  --seed N          seed of the random faults (default 1)
  --report-cached   vLLM and SGLang report cached prompt tokens
  --log FILE        also append each request's log entry to FILE (JSON lines)]]

local function parse(args)
  local o = { port = 0, host = '127.0.0.1', seed = 1 }
  local i = 1
  local function value(name)
    i = i + 1
    local v = args[i]
    if v == nil then errors.usage("emulate: option '%s' needs a value", name) end
    return v
  end
  while i <= #args do
    local a = args[i]
    local name, inline = a:match('^(%-%-[%w-]+)=(.*)$')
    if name then
      a = name
      table.insert(args, i + 1, inline)
    end
    if a == '--port' then
      o.port = math.tointeger(tonumber(value(a)))
      if not o.port or o.port < 0 or o.port > 65535 then errors.usage('emulate: --port must be 0..65535') end
    elseif a == '--host' then o.host = value(a)
    elseif a == '--script' then o.script = value(a)
    elseif a == '--fault-rate' then o.fault_rate = value(a)
    elseif a == '--seed' then
      o.seed = math.tointeger(tonumber(value(a)))
      if not o.seed then errors.usage('emulate: --seed must be an integer') end
    elseif a == '--report-cached' then o.report_cached = true
    elseif a == '--log' then o.log = value(a)
    else
      errors.usage("emulate: unknown option '%s' (see aegis-run emulate --help)", a)
    end
    i = i + 1
  end
  return o
end

local function is_loopback(host)
  return host:match('^127%.%d+%.%d+%.%d+$') ~= nil or host == '::1'
end

local function run(args)
  local o = parse(args)
  local rates
  if o.fault_rate then
    local ok, r = pcall(faults.parse_rates, o.fault_rate)
    if not ok then errors.usage('emulate: --fault-rate: %s', tostring(r)) end
    rates = r
  end
  local rules
  if o.script then
    local r, err = emulator.load_rules(o.script)
    if not r then errors.config('%s', err) end
    rules = r
  end
  local log_file
  if o.log then
    local f, err = io.open(o.log, 'ab')
    if not f then errors.config('emulate: log %s', err) end
    log_file = f
  end
  local em = emulator.new({ report_cached = o.report_cached, rules = rules, fault_rates = rates, seed = o.seed,
                            log_file = log_file })
  local server, err = emulator.listen(o.host, o.port, em)
  if not server then
    if log_file then log_file:close() end
    errors.raise('io', '%s', err)
  end
  if not is_loopback(o.host) then
    -- only an explicit --host gets here (the default is 127.0.0.1): say so
    io.stderr:write(('aegis-run: emulate: warning: listening on %s, not only on loopback\n'):format(o.host))
  end
  local shown = o.host:find(':', 1, true) and ('[' .. o.host .. ']') or o.host
  io.stdout:write(('emulator listening on http://%s:%d\n'):format(shown, server:port()))
  io.stdout:flush()
  local reason, rerr = server:run({ signals = true })
  server:close()
  if log_file then log_file:close() end
  if not reason then errors.raise('io', '%s', rerr) end
  return 0
end

return {
  summary = 'run the local provider emulator (OpenAI, Anthropic, vLLM, SGLang, llama.cpp)',
  usage = usage,
  run = run,
}
