--- `aegis-run call`: one request to a provider through its adapter and the
--- retry policy; prints the text, or the normalised result as JSON.
local errors = require('aegis.errors')
local json = require('aegis.json')

local usage = [[
usage: aegis-run call --provider NAME --model MODEL [options] PROMPT|-

Sends PROMPT (or standard input, with -) to a provider through its adapter
(providers/NAME.lua on AEGIS_PATH, or the built-in openai, anthropic, vllm,
sglang, llamacpp) and prints the answer.

options:
  --provider NAME     adapter to use (required)
  --model MODEL       model name as the provider spells it (required)
  --base-url URL      where the provider is (default: $OPENAI_BASE_URL,
                      $ANTHROPIC_BASE_URL, ..., then aegis.config.lua, then
                      the provider's public address)
  --system FILE       system text, read from FILE (sent as the stable prefix)
  --stream            print the answer as it arrives
  --json              print {text, provider, model, usage, cost, latency_ms}
  --option KEY=VALUE  adapter option (api=responses, version=2026-10-21,
                      route=native, slots=4, ...); repeatable
  --param KEY=VALUE   request parameter (max_tokens=200, temperature=0, ...);
                      VALUE is read as JSON when it parses, else as a string
  --cache-ttl 5m|1h   prompt-cache lifetime asked for (Anthropic)
  --cache             go through the response cache (docs/cache.md): a stored
                      answer is printed without calling the provider, a new
                      one is stored; identical calls in flight at once, here
                      or in other processes, make one provider call. Says
                      "cache: hit" (or miss, waited) on stderr; --json adds
                      "cache": "hit" | "miss" | "waited"
  --store URL         with --cache: the cache's store (default: cache.url in
                      aegis.config.lua, else the project store)

keys come from OPENAI_API_KEY, ANTHROPIC_API_KEY (or the api_key_env set for
the provider in aegis.config.lua) and never appear in any output.
usage fields that the provider did not report are null, never 0; cost is null
(with a warning) when the model has no price.

exit codes: 0 success, 1 the call failed, 2 usage or configuration error]]

local function read_file(path, what)
  local f, err = io.open(path, 'rb')
  local s
  if f then
    s, err = f:read('a')
    f:close()
  end
  if s == nil then
    errors.usage("call: cannot read %s '%s': %s", what, path,
      tostring(err):gsub('^' .. path:gsub('%p', '%%%0') .. ': ', ''))
  end
  return s
end

-- KEY=VALUE with VALUE as JSON when it parses (numbers, booleans, objects).
local function keyvalue(opt, s, as_json)
  local k, v = s:match('^([%w_%.%-]+)=(.*)$')
  if not k then errors.usage("call: %s expects KEY=VALUE, got '%s'", opt, s) end
  if as_json then
    local decoded = json.decode(v)
    if decoded ~= nil and decoded ~= json.null then return k, decoded end
  end
  local n = math.tointeger(tonumber(v))
  if not as_json and n then return k, n end
  return k, v
end

local function parse_args(args)
  local o = { params = {}, options = {} }
  local i = 1
  local function value(name)
    local v = args[i + 1]
    if v == nil then errors.usage("call: option '%s' needs a value (see aegis-run call --help)", name) end
    i = i + 1
    return v
  end
  while i <= #args do
    local a = args[i]
    if a == '--provider' then o.provider = value(a)
    elseif a == '--model' then o.model = value(a)
    elseif a == '--base-url' then o.base_url = value(a)
    elseif a == '--system' then o.system_file = value(a)
    elseif a == '--stream' then o.stream = true
    elseif a == '--cache' then o.cache = true
    elseif a == '--store' then o.store = value(a)
    elseif a == '--json' then o.json = true
    elseif a == '--option' then
      local k, v = keyvalue(a, value(a), false)
      o.options[k] = v
    elseif a == '--param' then
      local k, v = keyvalue(a, value(a), true)
      o.params[k] = v
    elseif a == '--cache-ttl' then
      o.ttl = value(a)
      if o.ttl ~= '5m' and o.ttl ~= '1h' then errors.usage("call: --cache-ttl must be 5m or 1h, got '%s'", o.ttl) end
    elseif a == '--' then
      if args[i + 1] == nil then errors.usage("call: '--' needs a prompt") end
      if o.prompt ~= nil or args[i + 2] ~= nil then errors.usage('call: give one prompt (quote it)') end
      o.prompt = args[i + 1]
      i = i + 1
    elseif a:sub(1, 1) == '-' and a ~= '-' then
      errors.usage("call: unknown option '%s' (see aegis-run call --help)", a)
    else
      if o.prompt ~= nil then errors.usage('call: give one prompt (quote it)') end
      o.prompt = a
    end
    i = i + 1
  end
  if not o.provider then errors.usage('call: --provider is required (see aegis-run call --help)') end
  if not o.model then errors.usage('call: --model is required (see aegis-run call --help)') end
  if not o.prompt then errors.usage('call: a prompt is required (PROMPT, or - for standard input)') end
  if o.store and not o.cache then errors.usage('call: --store needs --cache') end
  return o
end

local function orjson_null(v)
  if v == nil then return json.null end
  return v
end

local function warn(msg)
  io.stderr:write('aegis-run: warning: ', msg, '\n')
end

-- One call through the response cache: the prompt as a scaffold (system
-- text stable, prompt a volatile task block), resolved so the cache event
-- is linked to its scaffold and blocks, then `cache:call`.
local function cached_call(request, o)
  local cache = require('aegis.cache')
  local c, msg, code = cache.open(o.store)
  if not c and (code == 'invalid' or code == 'usage') then errors.config('%s', msg) end
  if not c then
    -- a cache that cannot be opened (no space, unreadable, damaged) is a
    -- miss: the answer still comes, without being stored (RELIABILITY F3, F4)
    warn(msg .. '; calling the provider without the cache')
    return require('aegis.provider').call(request)
  end
  local r, err = require('aegis.scaffold').resolve(request, { cache = c, store = c.db })
  if not r then
    c:close()
    return nil, err
  end
  for _, w in ipairs(r.warnings) do
    if w:find('^prefix breaker') then warn(w) end
  end
  local res
  res, err = c:call(r.request, { scaffold = r })
  c:close()
  if res then io.stderr:write('aegis-run: cache: ', tostring(res.cache or 'miss'), '\n') end
  return res, err
end

--- Runs `aegis-run call ARGS`.
---@param args string[]
---@return integer exit code
local function run(args)
  local o = parse_args(args)
  local prompt = o.prompt
  if prompt == '-' then prompt = io.stdin:read('a') or '' end
  local system = o.system_file and read_file(o.system_file, 'system file') or nil
  local provider = require('aegis.provider')
  local out = io.stdout
  local streamed = false
  local last = ''
  local request = {
    provider = o.provider,
    model = o.model,
    base_url = o.base_url,
    system = system,
    blocks = { { kind = 'task', stability = 'volatile', content = prompt } },
    params = o.params,
    options = o.options,
    cache = o.ttl and { ttl = o.ttl } or nil,
    stream = o.stream,
    on_warning = warn,
    on_delta = (o.stream and not o.json) and function(d)
      streamed = true
      last = d
      out:write(d)
      out:flush()
    end or nil,
  }
  local result, err
  if o.cache then
    result, err = cached_call(request, o)
  else
    result, err = provider.call(request)
  end
  if not result then
    if streamed then out:write('\n') end
    error(err, 0)
  end
  if o.json then
    local u = result.usage
    out:write(json.encode({
      text = result.text,
      provider = result.provider,
      model = result.model,
      usage = {
        input = orjson_null(u.input),
        cached_input = orjson_null(u.cached_input),
        cache_write_5m = orjson_null(u.cache_write_5m),
        cache_write_1h = orjson_null(u.cache_write_1h),
        output = orjson_null(u.output),
      },
      cost = orjson_null(result.cost),
      latency_ms = result.latency_ms,
      cache = o.cache and (result.cache or 'miss') or nil,
    }), '\n')
  elseif o.stream and streamed then
    if last:sub(-1) ~= '\n' then out:write('\n') end
  else
    out:write(result.text)
    if result.text:sub(-1) ~= '\n' then out:write('\n') end
  end
  return 0
end

return { summary = 'send one prompt to a provider and print the answer', usage = usage, run = run }
