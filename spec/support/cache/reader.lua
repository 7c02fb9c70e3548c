-- Cache reader for RELIABILITY.md L1 and L2:
--   aegis-run reader.lua URL N RANGE SIZE PREFIX...
-- does N gets of random names PREFIX..i (i in 1..RANGE), checking every
-- hit against the content its name stands for (writer.lua's `fill`; SIZE
-- is the writers' SIZE). Prints one line:
--   stats get n= p50= p99= max= over200= hits= misses= errors= wrong=
-- (milliseconds), then each error as `error CODE MSG` (at most 20).
-- luacheck: read globals aegis
local cache, clock, hash = aegis.cache, aegis.clock, aegis.hash

local url = arg[1]
local n, range, size = math.tointeger(tonumber(arg[2])), math.tointeger(tonumber(arg[3])),
  math.tointeger(tonumber(arg[4]))
local prefixes = {}
for i = 5, #arg do prefixes[#prefixes + 1] = arg[i] end

local function key(name) return hash.sha256('aegis-cachetest:' .. name) end
local function fill(name, len)
  local unit = name .. '|'
  return unit:rep(len // #unit + 1):sub(1, len)
end

local c = assert(cache.open(url, { limits = {} }))
local lat, hits, misses, wrong, over, errs = {}, 0, 0, 0, 0, {}
for _ = 1, n do
  local i = math.random(range)
  local name = prefixes[math.random(#prefixes)] .. i
  local t0 = clock.monotonic()
  local e, msg, code = c:get(key(name))
  local dt = clock.monotonic() - t0
  lat[#lat + 1] = dt
  if dt > 0.2 then over = over + 1 end
  if e then
    hits = hits + 1
    local len = size + (i * 37) % (size // 2 + 1)
    if e.response.text ~= fill(name, len) then wrong = wrong + 1 end
  elseif msg then
    errs[#errs + 1] = ('error %s %s'):format(tostring(code), msg)
  else
    misses = misses + 1
  end
end
c:close()
table.sort(lat)
local function pct(p) return #lat > 0 and lat[math.max(1, math.ceil(#lat * p))] * 1000 or 0 end
print(('stats get n=%d p50=%.3f p99=%.3f max=%.3f over200=%d hits=%d misses=%d errors=%d wrong=%d'):format(
  #lat, pct(0.5), pct(0.99), pct(1), over, hits, misses, #errs, wrong))
for i = 1, math.min(#errs, 20) do print(errs[i]) end
