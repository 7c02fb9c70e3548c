-- ECMAScript Number::toString (ECMA-262 7.1.12.1) in plain Lua, written from
-- the spec with no code shared with runtime/ag_jsonnum.c: the reference that
-- aegis.json's number output is checked against, by the fuzz target
-- fuzz/targets/json.lua and by spec/unit/json_property_spec.lua.
-- Returns {ecma = function(x) -> string, or nil where it has no verdict}.

-- Shortest digits d (no trailing zeros) and n with x = 0.d * 10^n, x > 0
-- finite: for each length k the correctly rounded k digits r (string.format
-- is exact), or r - 1 or r + 1 when r does not read back. nil when both of
-- those read back (which is closer needs exact arithmetic: no verdict).
local function shortest(x)
  for k = 1, 17 do
    local m, e = ('%.' .. (k - 1) .. 'e'):format(x):match('^(%d[%.%d]*)e([-+]%d+)$')
    local r, scale = math.tointeger(tonumber((m:gsub('%.', '')))), tonumber(e) - k + 1
    local function reads_back(c) return c > 0 and tonumber(('%de%d'):format(c, scale)) == x end
    local pick
    if reads_back(r) then pick = r
    else
      local lo, hi = reads_back(r - 1), reads_back(r + 1)
      if lo and hi then return nil end
      pick = lo and r - 1 or hi and r + 1 or nil
    end
    if pick then
      local ds = tostring(pick)
      return (ds:gsub('0+$', '')), #ds + scale
    end
  end
  error('no round-tripping digits for ' .. ('%a'):format(x))
end

-- ECMAScript Number::toString(x) (ECMA-262 7.1.12.1), nil: no verdict.
local function ecma(x)
  if x == 0 then return '0' end
  local sign = x < 0 and '-' or ''
  local d, n = shortest(math.abs(x))
  if d == nil then return nil end
  local k = #d
  if k <= n and n <= 21 then return sign .. d .. ('0'):rep(n - k) end
  if 0 < n and n <= 21 then return sign .. d:sub(1, n) .. '.' .. d:sub(n + 1) end
  if -6 < n and n <= 0 then return sign .. '0.' .. ('0'):rep(-n) .. d end
  local e = n - 1
  local exp = (e >= 0 and '+' or '-') .. math.abs(e)
  if k == 1 then return sign .. d .. 'e' .. exp end
  return sign .. d:sub(1, 1) .. '.' .. d:sub(2) .. 'e' .. exp
end

return { ecma = ecma }
