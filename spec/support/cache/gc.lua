-- Rotation for RELIABILITY.md L2 (and F4):
--   aegis-run gc.lua URL MAX_BYTES
-- runs c:gc({max_bytes = MAX_BYTES}) until it reports done (each pass is
-- bounded; rows go in short transactions) and prints one JSON line:
-- {seconds, passes, evicted, bytes_freed, pages_freed} or {err, code}.
-- luacheck: read globals aegis
local cache, clock, json = aegis.cache, aegis.clock, aegis.json

local url, max_bytes = arg[1], math.tointeger(tonumber(arg[2]))
local c = assert(cache.open(url, { limits = {} }))
local t0 = clock.monotonic()
local total = { passes = 0, evicted = 0, bytes_freed = 0, pages_freed = 0 }
while true do
  local r, msg, code = c:gc({ max_bytes = max_bytes })
  if not r then
    print(json.encode({ err = tostring(msg), code = tostring(code), passes = total.passes }))
    c:close()
    return 1
  end
  total.passes = total.passes + 1
  total.evicted, total.bytes_freed = total.evicted + r.evicted, total.bytes_freed + r.bytes_freed
  total.pages_freed = total.pages_freed + r.pages_freed
  if r.done or total.passes >= 1000 then break end
end
total.seconds = clock.monotonic() - t0
c:close()
print(json.encode(total))
