-- Cache writer for the reliability specs (RELIABILITY.md F1, L1, L2):
--   aegis-run writer.lua URL PREFIX N SIZE [SHARED_PCT SHARED_PREFIX [GEN]]
-- puts N entries whose content follows from their name (see `fill`);
-- SHARED_PCT of every 100 are named SHARED_PREFIX..i instead of PREFIX..i,
-- so writers given the same SHARED_PREFIX write the same keys (L1's key
-- overlap; '-' for none). With GEN the content is that of NAME@GEN while
-- the key stays NAME's, so a rewrite of a name is told from the one before
-- (F1 rewrites the same names every iteration). After each put returns it prints `ack NAME` (print flushes, so a
-- line on stdout is an acknowledgement even if the process is then killed)
-- or `fail NAME CODE MSG`; at the end one `stats put ...` line.
-- luacheck: read globals aegis
local cache, clock, hash = aegis.cache, aegis.clock, aegis.hash

local url, prefix = arg[1], arg[2]
local n, size = math.tointeger(tonumber(arg[3])), math.tointeger(tonumber(arg[4]))
local shared_pct, shared_prefix = math.tointeger(tonumber(arg[5] or '0')), arg[6]
if shared_prefix == '-' then shared_prefix = nil end
local gen = arg[7] and ('@' .. arg[7]) or ''

-- The entry a name stands for; the specs compute the same.
local function key(name) return hash.sha256('aegis-cachetest:' .. name) end
local function fill(name, len)
  local unit = name .. '|'
  return unit:rep(len // #unit + 1):sub(1, len)
end

local c = assert(cache.open(url, { limits = {} }))
local lat, fails = {}, 0
for i = 1, n do
  local name = (shared_prefix and (i % 100) < shared_pct) and (shared_prefix .. i) or (prefix .. i)
  local len = size + (i * 37) % (size // 2 + 1)  -- sizes vary, so pages split differently
  local t0 = clock.monotonic()
  local ok, msg, code = c:put(key(name), { text = fill(name .. gen, len), usage = { input = 10, output = len // 4 },
    finish = 'stop' }, { provider = 'cachetest', model = 'm' })
  lat[#lat + 1] = clock.monotonic() - t0
  if ok then
    print('ack ' .. name .. ' ' .. len)
  else
    fails = fails + 1
    print(('fail %s %s %s'):format(name, tostring(code), tostring(msg)))
  end
end
c:close()
table.sort(lat)
local function pct(p) return #lat > 0 and lat[math.max(1, math.ceil(#lat * p))] * 1000 or 0 end
print(('stats put n=%d p50=%.3f p99=%.3f max=%.3f fails=%d'):format(#lat, pct(0.5), pct(0.99), pct(1), fails))
