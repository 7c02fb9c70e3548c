-- Property checks of aegis.json over generated values (fixed seeds, so a
-- failure reproduces): the encoder against a reference written here in
-- Lua from RFC 8785 and ECMA-262 (no code shared with runtime/ljson.c or
-- ag_jsonnum.c), and the one-pass C decoder against the cjson path it
-- stands in for (core.prepare, cjson.decode, core.finish), on valid text
-- and on text with random damage.
local json = require('aegis.json')
local core = require('aegis.core.json')
local cjson = require('cjson')

-- {------------------------------------------------------ reference encoder
-- ECMAScript Number::toString, nil where it has no verdict (shared with the
-- json fuzz target).
local ecma = dofile('fuzz/lib/ecma_number.lua').ecma

-- RFC 8785 3.2.2.2: the short escapes, \u00xx for other controls, the rest as is.
local short = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r',
  ['\t'] = '\\t' }
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '\127' then return c end
    return short[c] or ('\\u%04x'):format(c:byte())
  end) .. '"'
end

-- UTF-16 code units of a UTF-8 key, for RFC 8785 3.2.3's sort.
local function units(s)
  local u = {}
  for _, cp in utf8.codes(s) do
    if cp >= 0x10000 then
      cp = cp - 0x10000
      u[#u + 1] = 0xd800 + (cp >> 10)
      u[#u + 1] = 0xdc00 + (cp & 0x3ff)
    else u[#u + 1] = cp end
  end
  return u
end

local function utf16less(a, b)
  local ua, ub = units(a), units(b)
  for i = 1, math.min(#ua, #ub) do
    if ua[i] ~= ub[i] then return ua[i] < ub[i] end
  end
  return #ua < #ub
end

-- The expected text of v (values generated below only: no errors), with
-- indent spaces per level (0: canonical).
local function ref(v, indent, depth)
  depth = depth or 0
  local t = type(v)
  if v == json.null then return 'null' end
  if t == 'boolean' then return tostring(v) end
  if t == 'number' then
    if math.type(v) == 'integer' then return ('%d'):format(v) end
    return ecma(v)
  end
  if t == 'string' then return quote(v) end
  local nl = indent > 0 and '\n' .. (' '):rep(indent * (depth + 1)) or ''
  local close = indent > 0 and '\n' .. (' '):rep(indent * depth) or ''
  local parts = {}
  if json.is_array(v) then
    if #v == 0 then return '[]' end
    for i = 1, #v do
      local s = ref(v[i], indent, depth + 1)
      if s == nil then return nil end
      parts[i] = nl .. s
    end
    return '[' .. table.concat(parts, ',') .. close .. ']'
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  if #keys == 0 then return '{}' end
  table.sort(keys, utf16less)
  for i, k in ipairs(keys) do
    local s = ref(v[k], indent, depth + 1)
    if s == nil then return nil end
    parts[i] = nl .. quote(k) .. (indent > 0 and ': ' or ':') .. s
  end
  return '{' .. table.concat(parts, ',') .. close .. '}'
end
-- }------------------------------------------------------

-- A fixed pseudo-random sequence (64-bit LCG, high bits).
local function generator(seed)
  local s = seed
  local g = {}
  function g.int(n) -- 0..n-1
    s = s * 6364136223846793005 + 1442695040888963407
    return (s >> 33) % n
  end
  function g.bits()
    local hi = g.int(1 << 30) << 34 | g.int(1 << 30) << 4
    return hi | g.int(16)
  end
  return g
end

-- Doubles of every kind: random bits (all exponents, subnormals, NaN and
-- infinities included), short decimals, near powers of two and of ten.
local function double(g)
  local k = g.int(8)
  if k == 0 then return (string.unpack('<d', string.pack('<i8', g.bits()))) end
  if k == 1 then return (g.int(2000001) - 1000000) / 10 ^ g.int(12) end
  if k == 2 then return (string.unpack('<d', string.pack('<i8', g.int(1 << 30) * g.int(1 << 22)))) end -- subnormals
  if k == 3 then -- next to a power of two
    local b = string.pack('<d', 2.0 ^ (g.int(2000) - 1000))
    return (string.unpack('<d', string.pack('<i8', string.unpack('<i8', b) + g.int(3) - 1)))
  end
  if k == 4 then -- next to a power of ten
    local b = string.pack('<d', 10.0 ^ (g.int(600) - 300))
    return (string.unpack('<d', string.pack('<i8', string.unpack('<i8', b) + g.int(5) - 2)))
  end
  if k == 5 then return g.int(1 << 30) * 2.0 ^ (g.int(80) - 40) end
  if k == 6 then return (g.bits() >> 11) * 2.0 ^ -53 * 10.0 ^ (g.int(40) - 20) end
  return ({ -0.0, 0.0, 2.0 ^ 53, -(2.0 ^ 53) - 2, 2.0 ^ 63, 1e21, 1e-7, 5e-324, 1.7976931348623157e308 })[g.int(9) + 1]
end

local pieces = { 'a', 'b', 'key', 'Z', '_x1', '', ' ', '"', '\\', '/', '\n', '\t', '\0', '\1', '\31', '\127', 'é', '€',
  '\u{e000}', '\u{ffff}', '\u{fffd}', '\u{10000}', '😀', '\u{10ffff}', '日本', '1', '[]', ('long text '):rep(3) }

local function str(g)
  local t = {}
  for i = 1, g.int(6) do t[i] = pieces[g.int(#pieces) + 1] end
  return table.concat(t)
end

local function value(g, depth)
  local k = g.int(depth > 5 and 6 or 10)
  if k == 0 then return json.null end
  if k == 1 then return g.int(2) == 0 end
  if k == 2 then
    local x = double(g)
    if x ~= x or x == math.huge or x == -math.huge then x = 0.5 end
    return x
  end
  if k == 3 then
    return ({ g.int(2001) - 1000, math.mininteger + g.int(3), math.maxinteger - g.int(3),
      (1 << 53) + g.int(5) - 2, g.bits() })[g.int(5) + 1]
  end
  if k == 4 or k == 5 then return str(g) end
  if k == 6 or k == 7 then
    local t = {}
    for i = 1, g.int(6) do t[i] = value(g, depth + 1) end
    if #t == 0 or g.int(3) == 0 then json.array(t) end
    return t
  end
  local t = {}
  for _ = 1, g.int(7) do t[str(g)] = value(g, depth + 1) end
  return t
end

-- A value as text that tells integers, floats and arrays apart.
local function dump(v, out)
  out = out or {}
  local t = type(v)
  if t == 'table' then
    out[#out + 1] = getmetatable(v) ~= nil and (json.is_array(v) and '[' or '?') or '{'
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) ~= type(b) then return type(a) < type(b) end
      return a < b
    end)
    for _, k in ipairs(keys) do
      out[#out + 1] = ('%q='):format(k)
      dump(v[k], out)
      out[#out + 1] = ','
    end
    out[#out + 1] = '}'
  elseif t == 'number' then
    out[#out + 1] = math.type(v) == 'integer' and ('%d'):format(v) or ('%a'):format(v)
  elseif t == 'string' then out[#out + 1] = ('%q'):format(v)
  else out[#out + 1] = v == json.null and 'null' or tostring(v) end
  return table.concat(out)
end

-- What the cjson path gives for s (json.decode before the C decoder).
local slow_decoder = cjson.new()
slow_decoder.decode_invalid_numbers(false)
slow_decoder.decode_max_depth(1000)
local function slow(s)
  local text, err, code = core.prepare(s)
  if not text then return nil, err, code end
  local ok, v = pcall(slow_decoder.decode, text)
  if not ok then
    if text ~= s then
      local ok2, msg = pcall(slow_decoder.decode, s)
      if not ok2 then v = msg end
    end
    return nil, 'json: ' .. tostring(v):gsub('^%u', string.lower), 'parse'
  end
  return core.finish(v)
end

local function same_decode(s)
  local a = { json.decode(s) }
  local b = { slow(s) }
  local da = a[1] == nil and ('nil ' .. tostring(a[2]) .. ' ' .. tostring(a[3])) or dump(a[1])
  local db = b[1] == nil and ('nil ' .. tostring(b[2]) .. ' ' .. tostring(b[3])) or dump(b[1])
  return da == db, da, db
end

describe('aegis.json properties', function()
  it('writes 6000 generated doubles as ECMAScript does', function()
    local g = generator(20261128)
    local bad, judged = {}, 0
    for _ = 1, 6000 do
      local x = double(g)
      if x == x and x ~= math.huge and x ~= -math.huge then
        local want = ecma(x)
        if want then
          judged = judged + 1
          local got = json.canonical(x)
          if got ~= want and #bad < 5 then bad[#bad + 1] = ('%a: %s, expected %s'):format(x, got, want) end
        end
      end
    end
    assert.same({}, bad)
    assert.is_true(judged > 5700)
  end)

  it('encodes 1000 generated values as the reference does, compact and indented', function()
    local g = generator(8785)
    local bad = {}
    for i = 1, 1000 do
      local v = value(g, 0)
      local indent = ({ 0, 0, 1, 2, 4 })[i % 5 + 1]
      local want = ref(v, indent)
      if want then
        local got = indent == 0 and json.canonical(v) or json.encode(v, { indent = indent })
        if got ~= want and #bad < 3 then bad[#bad + 1] = { got = got, want = want } end
      end
    end
    assert.same({}, bad)
  end)

  it('decodes as the cjson path does: 1000 generated texts, each also damaged 4 ways', function()
    local g = generator(1729)
    local damage = { '', ',', ']', '}', '[', '{', '"', '\\', '\\u', '\\ud800', '\\udc00', '\\ud83d\\ude00', '\\u0000',
      '\\u00e9', '\\u20AC', '0', '01', '-', '.', 'e', 'E+', '1e400', '-1e-400', ' ', '\t', '\n', '\r', '\f', '\0',
      '\xff', '\xc0\x80', 'tru', 'nul', 'null', 'x', '/', '\\/', '\\x', '0x1', 'NaN', 'Infinity', '1.', '.5', '+1',
      '\1', 'é', '[]', '[ ]', '{}', '123456789012345678901234567890', '0.1e-5', '9007199254740993', '-0', '1E2',
      '1e22', '1e23', '4.9e-324', '2.2250738585072011e-308', '0.30000000000000004' }
    local bad = {}
    local function check(s)
      local ok, a, b = same_decode(s)
      if not ok and #bad < 3 then bad[#bad + 1] = { text = s, decode = a, cjson_path = b } end
    end
    for i = 1, 1000 do
      local v = value(g, 0)
      local text = i % 3 == 0 and json.encode(v, { indent = 2 }) or json.canonical(v)
      check(text)
      for _ = 1, 4 do
        local pos, d = g.int(#text + 1), damage[g.int(#damage) + 1]
        local r = g.int(3)
        local t
        if r == 0 then t = text:sub(1, pos) .. d .. text:sub(pos + 1)
        elseif r == 1 then t = text:sub(1, pos) .. d .. text:sub(pos + 2)
        else t = text:sub(1, pos) .. text:sub(pos + 2 + g.int(3)) end
        check(t)
      end
    end
    assert.same({}, bad)
  end)

  it('decodes numbers, escapes and nesting edges as the cjson path does', function()
    local texts = {
      '0', '-0', '-0.0', '0e5', '1e0', '1.0', '1.5', '-1.5e-7', '9007199254740992', '9007199254740993',
      '-9007199254740992', '-9007199254740994', '18014398509481984', '12345678901234567890', '1e21', '1e22',
      '1e23', '123456789012345678e-5', '0.000001', '1e-400', '2.2250738585072014e-308', '4.9e-324',
      '1.7976931348623157e308', '1.7976931348623159e308', '0.1', '0.30000000000000004', '100000000000000000000000',
      '"\\u00e9\\u20ac\\ud83d\\ude00"', '"\\ud800\\udc00"', '"\\uDBFF\\uDFFF"', '"\\ud800"', '"\\udc00\\ud800"',
      '"\\u0000"', '"a\\/b\\bc\\fd\\ne\\rf\\tg\\"h\\\\"', '"\\u00"', '"\\uzzzz"', '"\1"', '"\127"',
      ' [ 1 , 2 ] ', '{ "a" : [ ] , "b" : { } }', '{"a":1,"a":[],"a":{}}', '[1,]', '{"a":1,}', '[01]', '[1.]',
      '[.5]', '[-]', '[+1]', '[1e]', '[1e+]', '[0x10]', '[NaN]', '[Infinity]', '[truex]', '[nul]', 'true false',
      ('['):rep(1000) .. (']'):rep(1000), ('['):rep(1001) .. (']'):rep(1001),
      ('{"a":'):rep(1000) .. '1' .. ('}'):rep(1000), ('{"a":'):rep(1001) .. '1' .. ('}'):rep(1001),
      '[' .. ('1,'):rep(3000) .. '1]', '{' .. ('"k":1,'):rep(700) .. '"k":2}',
      '0.' .. ('0'):rep(100001) .. '1e100000', '0.' .. ('0'):rep(99990) .. '15e99999', '1e1000000',
      '1e-1000000', '0e1000000', '123456789012345678901e-5', '0.' .. ('0'):rep(400) .. '1e400',
      '0.' .. ('0'):rep(99989) .. '1e1000005', '-0.' .. ('0'):rep(99989) .. '1e-1000005',
    }
    for _, s in ipairs(texts) do
      local ok, a, b = same_decode(s)
      assert(ok, ('%q: decode %s, cjson path %s'):format(s:sub(1, 80), a:sub(1, 200), b:sub(1, 200)))
    end
  end)

  it('decodes valid text in one pass (the C decoder does not decline it)', function()
    local g = generator(42)
    for _ = 1, 300 do
      local text = json.canonical(value(g, 0))
      local fast = core.decode(text)
      assert(fast, text)
    end
    -- and it declines what it leaves to the cjson path
    for _, s in ipairs({ '', '[1,]', '"\\ud800"', '1e400', '[01]', '"\1"', ('['):rep(1001) }) do
      assert.is_false(core.decode(s), s)
    end
  end)

  it('encodes objects with many keys and deep nesting as the reference does', function()
    local big = {}
    for i = 1, 5000 do big[('k%05d\u{e000}'):format(i)] = i end
    for i = 1, 50 do big[('k%05d\u{10000}'):format(i)] = i / 4 end
    assert.equal(ref(big, 0), json.canonical(big))
    local deep = json.array({})
    for i = 1, 998 do deep = (i % 2 == 0) and { deep } or { k = deep } end
    assert.equal(ref(deep, 0), json.canonical(deep))
    assert.equal(ref(deep, 1), json.encode(deep, { indent = 1 }))
  end)
end)
