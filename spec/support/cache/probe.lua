-- Reads damaged cache files for RELIABILITY.md F5:
--   aegis-run probe.lua PREFIX N SIZE PATH...
-- For each PATH: opens it with aegis.cache, gets the N entries
-- PREFIX1..PREFIXN that writer.lua (same PREFIX, N, SIZE) wrote, compares
-- every answer with what was written, runs verify, and prints one JSON line:
--   {path, open = 'ok' | error code, hits, misses, errors, wrong, raised,
--    warnings, verify_ok, integrity, bad}
-- `wrong` counts answers that differ from what was written (must be 0);
-- `raised` is an error raised by aegis.cache (a bug: failures are values).
-- luacheck: read globals aegis
local cache, hash, json = aegis.cache, aegis.hash, aegis.json

local prefix, n, size = arg[1], math.tointeger(tonumber(arg[2])), math.tointeger(tonumber(arg[3]))

local function key(name) return hash.sha256('aegis-cachetest:' .. name) end
local function fill(name, len)
  local unit = name .. '|'
  return unit:rep(len // #unit + 1):sub(1, len)
end

-- Messages may quote damaged bytes: keep them printable for JSON.
local function clean(s) return (tostring(s):gsub('[^\32-\126]', '?')) end

local function probe(path, r)
  local warnings = 0
  local c, msg, code = cache.open('sqlite:' .. path, { limits = {}, warn = function() warnings = warnings + 1 end })
  if not c then
    r.open, r.err = tostring(code), clean(msg)
    return
  end
  r.open = 'ok'
  for i = 1, n do
    local name = prefix .. i
    local e, gmsg = c:get(key(name))
    if e then
      if e.response.text == fill(name, size + (i * 37) % (size // 2 + 1)) then r.hits = r.hits + 1
      else
        r.wrong = r.wrong + 1
        r.wrong_for = r.wrong_for or (name .. ' got ' .. clean(e.response.text:sub(1, 40)))
      end
    elseif gmsg then
      r.errors = r.errors + 1
      r.err = r.err or clean(gmsg)
    else
      r.misses = r.misses + 1
    end
  end
  local v, vmsg = c:verify({ full = true })
  if v then
    r.verify_ok, r.integrity, r.bad = v.ok, clean(v.integrity), #(v.bad or {})
  else
    r.verify_ok, r.integrity = false, clean(vmsg)
  end
  c:close()
  r.warnings = warnings
end

for i = 4, #arg do
  local r = { path = arg[i], hits = 0, misses = 0, errors = 0, wrong = 0, warnings = 0 }
  local ok, err = pcall(probe, arg[i], r)
  if not ok then r.raised = clean(err) end
  print(json.encode(r))
end
