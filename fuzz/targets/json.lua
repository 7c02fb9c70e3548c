--- Fuzz target `json`: aegis.json's C parts (runtime/ljson.c: the
--- canonical encoder, the pretty encoder, the passes around lua-cjson's
--- decoder; runtime/ag_jsonnum.c: ECMAScript number formatting).
---
--- Input: byte 1 picks the mode. Odd: the rest is read as doubles (8 bytes
--- each, little endian); each finite one must come out of canonical() as
--- ECMAScript's Number::toString writes it, checked against a formatter
--- written here from the spec (shortest round-tripping digits from
--- string.format, then the notation rules). Even: the rest is JSON text;
--- when it decodes, canonical() must be a fixed point (decode(canonical(v))
--- encodes to the same text) and the indented form must decode to it too.
local json = require('aegis.json')

-- {------------------------------------------------------ number oracle
-- Shortest digits d (no trailing zeros) and exponent n with x = 0.d * 10^n,
-- for finite x > 0 (ECMA-262 Number::toString step 5: the fewest digits
-- that read back as x, the closest to x if several). For each length k the
-- correctly rounded k digits r are the closest; when they do not read back,
-- r - 1 or r + 1 may. When both do, which one is closer needs exact
-- arithmetic: nil then (no verdict).
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
-- }------------------------------------------------------

local function numbers(s)
  for i = 1, #s - 7, 8 do
    local x = string.unpack('<d', s, i)
    if x == x and x ~= math.huge and x ~= -math.huge then
      local got, want = json.canonical(x), ecma(x)
      assert(want == nil or got == want, ('canonical(%a) = %s, ECMAScript says %s'):format(x, got, want))
      assert(json.decode(got) == x, 'does not read back: ' .. got)
    else
      assert(not pcall(json.canonical, x), 'canonical accepted ' .. tostring(x))
    end
  end
end

local function text(s)
  local v, err, code = json.decode(s)
  if v == nil then
    assert(code == 'parse' and type(err) == 'string' and err:find('^json: '), 'decode failure: ' .. tostring(err))
    return
  end
  local c1 = json.canonical(v)
  local v2, err2 = json.decode(c1)
  assert(v2 ~= nil, 'canonical text does not decode: ' .. tostring(err2) .. ': ' .. c1)
  local c2 = json.canonical(v2)
  assert(c2 == c1, ('canonical is not a fixed point:\n%s\n%s'):format(c1, c2))
  local pretty = json.encode(v, { indent = 2 })
  local v3, err3 = json.decode(pretty)
  assert(v3 ~= nil, 'indented text does not decode: ' .. tostring(err3))
  assert(json.canonical(v3) == c1, 'indented text decodes to another value')
  assert(json.encode(v) == c1, 'encode without indent differs from canonical')
end

return function(data)
  local mode = data:byte(1) or 0
  if mode & 1 == 1 then numbers(data:sub(2)) else text(data:sub(2)) end
end
