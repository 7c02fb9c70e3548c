-- Provider calls through the cache, for RELIABILITY.md F3/F4 and the
-- single-flight spec:
--   aegis-run calls.lua URL BASE_URL FIRST LAST [MODE [TAG [MAX_ENTRIES]]]
-- makes requests FIRST..LAST (downwards when FIRST > LAST; request i asks "TAG request i" of the
-- emulator's OpenAI route at BASE_URL, key from $OPENAI_API_KEY) through
-- aegis.cache at URL, one by one (MODE 'seq', the default) or all at once
-- with call_all (MODE 'all'). Prints one JSON line per request:
-- {i, cache = 'hit'|'miss'|'waited'|..., text} or {i, err, code}; when the
-- cache cannot be opened, one line {open_failed = msg, code} and no calls.
-- With MAX_ENTRIES the cache rotates (automatically as puts cross the
-- limit, and once more at the end: a line {gc = result} or {gc_err, code}).
-- Warnings go to stderr (aegis-run: warning: cache: ...).
-- luacheck: read globals aegis
local cache, json = aegis.cache, aegis.json

local url = arg[1]   -- arg[2], BASE_URL, arrives as $OPENAI_BASE_URL (common.cmd)
local first, last = math.tointeger(tonumber(arg[3])), math.tointeger(tonumber(arg[4]))
local mode, tag = arg[5] or 'seq', arg[6] or 'cachetest'
local max_entries = math.tointeger(tonumber(arg[7] or ''))
local step = first <= last and 1 or -1

local c, msg, code = cache.open(url, max_entries and { limits = { max_entries = max_entries }, gc_every = 4 } or nil)
if not c then
  print(json.encode({ open_failed = tostring(msg):gsub('[^\32-\126]', '?'), code = tostring(code) }))
  return 0
end

local function request(i)
  return {
    provider = 'openai', model = 'gpt-5.4',
    blocks = { { kind = 'task', stability = 'volatile', content = ('%s request %d'):format(tag, i) } },
    params = { max_tokens = 32 },
  }
end

local function report(i, res, err)
  if res then
    print(json.encode({ i = i, cache = res.cache, text = res.text }))
  else
    print(json.encode({ i = i, err = tostring(err), code = type(err) == 'table' and err.code or nil }))
  end
end

if mode == 'all' then
  local list = {}
  local ids = {}
  for i = first, last, step do
    list[#list + 1] = request(i)
    ids[#ids + 1] = i
  end
  for n, r in ipairs(c:call_all(list)) do
    if r.err then report(ids[n], nil, r.err) else report(ids[n], r) end
  end
else
  for i = first, last, step do report(i, c:call(request(i))) end
end
if max_entries then
  local r, gmsg, gcode = c:gc()
  if r then print(json.encode({ gc = r })) else print(json.encode({ gc_err = tostring(gmsg), code = gcode })) end
end
c:close()
