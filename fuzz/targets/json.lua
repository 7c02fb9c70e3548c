--- Fuzz target `json`: aegis.json's C parts (runtime/ljson.c: the
--- canonical encoder, the pretty encoder, the passes around lua-cjson's
--- decoder; runtime/ag_jsonnum.c: ECMAScript number formatting).
---
--- Input: byte 1 picks the mode. Odd: the rest is read as doubles (8 bytes
--- each, little endian); each finite one must come out of canonical() as
--- ECMAScript's Number::toString writes it, checked against the formatter
--- in fuzz/lib/ecma_number.lua (shortest round-tripping digits from
--- string.format, then the notation rules). Even: the rest is JSON text;
--- when it decodes, canonical() must be a fixed point (decode(canonical(v))
--- encodes to the same text) and the indented form must decode to it too.
local json = require('aegis.json')

-- The number oracle (fuzz/lib/ecma_number.lua, next to this file's directory).
local here = debug.getinfo(1, 'S').source:match('^@(.*)/targets/[^/]+$')
local ecma = dofile(here .. '/lib/ecma_number.lua').ecma

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
