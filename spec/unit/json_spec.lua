local h = require('spec.helpers')
local json = require('aegis.json')

local FIX = 'spec/fixtures/json/'

local function double(hex)
  return (string.unpack('>d', (hex:gsub('%x%x', function(b) return string.char(tonumber(b, 16)) end))))
end

local function encode_error(v)
  local ok, err = pcall(json.canonical, v)
  assert.is_false(ok, 'expected an error')
  return err
end

describe('aegis.json', function()
  describe('canonical numbers', function()
    -- RFC 8785 Appendix B: IEEE 754 bits and their canonical text
    local appendix_b = {
      { '0000000000000000', '0' },
      { '8000000000000000', '0' },
      { '0000000000000001', '5e-324' },
      { '8000000000000001', '-5e-324' },
      { '7fefffffffffffff', '1.7976931348623157e+308' },
      { 'ffefffffffffffff', '-1.7976931348623157e+308' },
      { '4340000000000000', '9007199254740992' },
      { 'c340000000000000', '-9007199254740992' },
      { '4430000000000000', '295147905179352830000' },
      { '44b52d02c7e14af5', '9.999999999999997e+22' },
      { '44b52d02c7e14af6', '1e+23' },
      { '44b52d02c7e14af7', '1.0000000000000001e+23' },
      { '444b1ae4d6e2ef4e', '999999999999999700000' },
      { '444b1ae4d6e2ef4f', '999999999999999900000' },
      { '444b1ae4d6e2ef50', '1e+21' },
      { '3eb0c6f7a0b5ed8c', '9.999999999999997e-7' },
      { '3eb0c6f7a0b5ed8d', '0.000001' },
      { '41b3de4355555553', '333333333.3333332' },
      { '41b3de4355555554', '333333333.33333325' },
      { '41b3de4355555555', '333333333.3333333' },
      { '41b3de4355555556', '333333333.3333334' },
      { '41b3de4355555557', '333333333.33333343' },
      { 'becbf647612f3696', '-0.0000033333333333333333' },
      { '43143ff3c1cb0959', '1424953923781206.2' },
    }
    for _, v in ipairs(appendix_b) do
      it(('writes 0x%s as %s (RFC 8785 appendix B)'):format(v[1], v[2]), function()
        assert.equal(v[2], json.canonical(double(v[1])))
      end)
    end

    it('refuses the appendix B NaN and Infinity', function()
      assert.equal('json: cannot encode NaN at $', encode_error(double('7fffffffffffffff')))
      assert.equal('json: cannot encode Infinity at $', encode_error(double('7ff0000000000000')))
      assert.equal('json: cannot encode -Infinity at $', encode_error(-math.huge))
    end)

    it('agrees with ECMAScript String(x) on 1600 doubles (fixture from V8)', function()
      local n, bad = 0, {}
      for line in io.lines(FIX .. 'es-numbers.txt') do
        local bits, want = line:match('^(%x+) (%S+)$')
        if bits then
          n = n + 1
          local got = json.canonical(double(bits))
          if got ~= want then bad[#bad + 1] = bits .. ': ' .. got .. ' ~= ' .. want end
        end
      end
      assert.is_true(n >= 1600)
      assert.same({}, bad)
    end)

    it('writes Lua integers exactly, beyond 2^53 too', function()
      assert.equal('9223372036854775807', json.canonical(math.maxinteger))
      assert.equal('-9223372036854775808', json.canonical(math.mininteger))
      assert.equal('9007199254740993', json.canonical(9007199254740993))
      assert.equal('0', json.canonical(0))
      assert.equal('0', json.canonical(-0.0))
      assert.equal('1', json.canonical(1.0))
      assert.equal('100', json.canonical(1e2))
      assert.equal('0.1', json.canonical(0.1))
      assert.equal('1e+21', json.canonical(1e21))
      assert.equal('1e-7', json.canonical(1e-7))
    end)
  end)

  describe('canonical strings and keys', function()
    it('matches the RFC 8785 section 3.2.2 example byte for byte', function()
      local v = assert(json.decode(h.read(FIX .. 'rfc8785-values.json')))
      local want = h.read(FIX .. 'rfc8785-values.hex'):gsub('%s', ''):gsub('%x%x',
        function(b) return string.char(tonumber(b, 16)) end)
      assert.equal(want, json.canonical(v))
    end)

    it('sorts the RFC 8785 section 3.2.3 example by UTF-16 code units', function()
      local v = assert(json.decode(h.read(FIX .. 'rfc8785-sorting.json')))
      assert.equal('{"\\r":"Carriage Return","1":"One","\u{80}":"Control",' ..
        '"\u{f6}":"Latin Small Letter O With Diaeresis","\u{20ac}":"Euro Sign",' ..
        '"\u{1f600}":"Emoji: Grinning Face","\u{fb33}":"Hebrew Letter Dalet With Dagesh"}',
        json.canonical(v))
    end)

    it('puts characters above U+FFFF before U+E000..U+FFFF (not byte order)', function()
      local t = { ['\u{ffff}'] = 1, ['\u{e000}'] = 2, ['\u{10000}'] = 3, ['\u{d7ff}'] = 4,
                  ['\u{10ffff}'] = 5, ['a'] = 6, ['ab'] = 7, [''] = 8 }
      assert.equal('{"":8,"a":6,"ab":7,"\u{d7ff}":4,"\u{10000}":3,"\u{10ffff}":5,' ..
        '"\u{e000}":2,"\u{ffff}":1}', json.canonical(t))
    end)

    it('escapes only what RFC 8785 escapes', function()
      local all = {}
      for c = 0, 0x1f do all[#all + 1] = string.char(c) end
      local want = '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n' ..
        '\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016' ..
        '\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"'
      assert.equal(want, json.canonical(table.concat(all)))
      assert.equal('"\\"\\\\/\127\u{80}é€\u{1f600}"', json.canonical('"\\/\127\u{80}é€\u{1f600}'))
    end)

    it('gives the same text whatever order a table was built in', function()
      local keys = {}
      for i = 1, 200 do keys[i] = ('k%03d\u{e9}'):format(i) end
      local function build(order, junk)
        local t = {}
        for _, i in ipairs(order) do
          if junk then t['junk' .. i] = i end
          t[keys[i]] = { i, tostring(i), { x = i } }
        end
        if junk then for _, i in ipairs(order) do t['junk' .. i] = nil end end
        return t
      end
      local fwd, rev, odd = {}, {}, {}
      for i = 1, 200 do fwd[i] = i; rev[i] = 201 - i; odd[i] = (i * 37) % 200 + 1 end
      local want = json.canonical(build(fwd))
      assert.equal(want, json.canonical(build(rev)))
      assert.equal(want, json.canonical(build(odd, true)))
      assert.equal(want, json.encode(build(odd)))
    end)
  end)

  describe('Lua conventions', function()
    it('maps null, booleans, arrays and objects', function()
      assert.equal('null', json.canonical(json.null))
      assert.equal('[true,false,null]', json.canonical({ true, false, json.null }))
      assert.equal('{}', json.canonical({}))
      assert.equal('[]', json.canonical(json.array({})))
      assert.equal('{"a":[],"b":{}}', json.canonical({ a = json.array({}), b = {} }))
      assert.equal('[[1,2],{"1":"x"}]', json.canonical({ { 1, 2 }, { ['1'] = 'x' } }))
    end)

    it('array marks and returns the table; is_array tells what encode will write', function()
      local t = {}
      assert.equal(t, json.array(t))
      assert.equal(t, json.array(t)) -- marking twice is fine
      assert.is_true(json.is_array(t))
      assert.is_true(json.is_array({ 1, 2 }))
      assert.is_false(json.is_array({}))
      assert.is_false(json.is_array({ a = 1 }))
      assert.is_false(json.is_array({ 1, nil, 3 }))
      assert.is_false(json.is_array({ [0] = 1 }))
      assert.is_false(json.is_array('x'))
    end)

    it('array raises on a non-table and on a table with another metatable', function()
      assert.error_matches(function() json.array('x') end,
        "bad argument #1 to 'array' %(table expected, got string%)")
      assert.error_matches(function() json.array(setmetatable({}, {})) end,
        "bad argument #1 to 'array' %(table already has a metatable%)")
    end)

    it('shares cjson null', function()
      assert.equal(require('cjson').null, json.null)
    end)
  end)

  describe('encode', function()
    it('is the canonical form without options', function()
      local v = { b = { 1, 2.5, 'x' }, a = json.null }
      assert.equal(json.canonical(v), json.encode(v))
      assert.equal(json.canonical(v), json.encode(v, { indent = 0 }))
    end)

    it('indents with sorted keys', function()
      local v = { b = { 1, { c = json.array({}) } }, a = {}, [''] = 'x' }
      assert.equal([[
{
  "": "x",
  "a": {},
  "b": [
    1,
    {
      "c": []
    }
  ]
}]], json.encode(v, { indent = 2 }))
      assert.equal('[\n    1\n]', json.encode({ 1 }, { indent = 4 }))
      assert.equal('"s"', json.encode('s', { indent = 2 }))
    end)

    it('encodes a value for its place levels down in a document (level); encoder: options checked once', function()
      local inner = { c = json.array({ 1 }) }
      local whole = json.encode({ a = { inner } }, { indent = 2 })
      local at = json.encode(inner, { indent = 2, level = 2 })
      assert.equal('{\n      "c": [\n        1\n      ]\n    }', at)
      assert.equal('{\n  "a": [\n    ' .. at .. '\n  ]\n}', whole)
      assert.equal(json.encode(inner), json.encode(inner, { level = 3 }))  -- compact: no lines
      local enc = json.encoder({ indent = 2, level = 2 })
      assert.equal(at, enc(inner))
      assert.equal(json.canonical(inner), json.encoder()(inner))
      assert.error_matches(function() json.encoder({ level = -1 }) end,
        "bad argument #2 to 'encode' %(level must be an integer in 0..1000%)")
    end)

    it('raises on bad options', function()
      assert.error_matches(function() json.encode({}, 2) end,
        "bad argument #2 to 'encode' %(table expected, got number%)")
      assert.error_matches(function() json.encode({}, { indent = 17 }) end,
        "bad argument #2 to 'encode' %(indent must be an integer in 0..16%)")
      assert.error_matches(function() json.encode({}, { indent = 1.5 }) end,
        "bad argument #2 to 'encode' %(indent must be an integer in 0..16%)")
      assert.error_matches(function() json.encode({}, { level = 1001 }) end,
        "bad argument #2 to 'encode' %(level must be an integer in 0..1000%)")
    end)
  end)

  describe('encode errors name the path', function()
    it('for NaN and infinities', function()
      assert.equal('json: cannot encode NaN at $.a[2]', encode_error({ a = { 1, 0 / 0 } }))
      assert.equal('json: cannot encode Infinity at $.x.y', encode_error({ x = { y = math.huge } }))
    end)

    it('for invalid UTF-8 in strings and keys', function()
      assert.equal('json: cannot encode a string that is not valid UTF-8 at $.s[1]',
        encode_error({ s = { '\xff' } }))
      assert.equal('json: cannot encode a string that is not valid UTF-8 at $',
        encode_error('\xed\xa0\x80')) -- an encoded surrogate
      assert.equal('json: cannot encode a string that is not valid UTF-8 at $',
        encode_error('\xc0\x80')) -- overlong
      assert.equal('json: cannot encode a key that is not valid UTF-8 at $.t',
        encode_error({ t = { ['\xfe'] = 1 } }))
    end)

    it('for values JSON has no form for', function()
      assert.equal('json: cannot encode a function at $.f', encode_error({ f = print }))
      assert.equal('json: cannot encode a thread at $[1]', encode_error({ coroutine.create(print) }))
      assert.equal('json: cannot encode a userdata at $', encode_error(io.stdout))
      assert.equal('json: cannot encode nil (use json.null) at $', encode_error(nil))
    end)

    it('for keys that are neither strings nor 1..n', function()
      assert.equal('json: cannot encode a boolean key at $["a b"]', encode_error({ ['a b'] = { [true] = 1 } }))
      assert.equal('json: cannot encode a float key at $', encode_error({ [1.5] = 1 }))
      assert.equal('json: cannot encode a table key at $', encode_error({ [{}] = 1 }))
      assert.equal('json: cannot encode a table that mixes array and object keys at $.a',
        encode_error({ a = { 1, x = 2 } }))
      assert.equal('json: cannot encode a table that mixes array and object keys at $',
        encode_error(json.array({ x = 1 })))
      assert.equal('json: cannot encode a sparse array (keys are not 1..n) at $.a',
        encode_error({ a = { [1] = 1, [3] = 3 } }))
      assert.equal('json: cannot encode a sparse array (keys are not 1..n) at $',
        encode_error({ [0] = 'x', 'y' }))
    end)

    it('for cycles, but not for a table seen twice', function()
      local t = {}
      t.self = t
      assert.equal('json: cannot encode a cycle at $.a.self', encode_error({ a = t }))
      local shared = { 1 }
      assert.equal('[[1],[1]]', json.canonical({ shared, shared }))
    end)

    it('for nesting deeper than 1000, with the middle of the path elided', function()
      local function nest(n)
        local root = {}
        local c = root
        for _ = 2, n do c[1] = {}; c = c[1] end
        return root
      end
      assert.equal(('['):rep(999) .. '{}' .. (']'):rep(999), json.canonical(nest(1000)))
      assert.equal('json: nesting deeper than 1000 levels at $' .. ('[1]'):rep(8) .. '...' ..
        ('[1]'):rep(8), encode_error(nest(1001)))
    end)
  end)

  describe('decode', function()
    it('makes integral numbers within 2^53 integers, others floats', function()
      local v = assert(json.decode('[1, 1.0, -0, 1e2, 1.5, 9007199254740992, 1e300, -3]'))
      assert.same({ 'integer', 'integer', 'integer', 'integer', 'float', 'integer', 'float', 'integer' },
        { math.type(v[1]), math.type(v[2]), math.type(v[3]), math.type(v[4]), math.type(v[5]),
          math.type(v[6]), math.type(v[7]), math.type(v[8]) })
      assert.equal(9007199254740992, v[6])
      assert.equal(math.type(json.decode('18014398509481984')), 'float') -- 2^54
    end)

    it('gives null, scalars and objects', function()
      assert.equal(json.null, json.decode('null'))
      assert.equal('x', json.decode('"x"'))
      assert.is_true(json.decode(' true '))
      assert.same({ a = { b = json.null } }, json.decode('{"a":{"b":null}}'))
      assert.equal(2, json.decode('{"a":1,"a":2}').a) -- the last duplicate wins
    end)

    it('keeps empty arrays through a round trip', function()
      local text = '{"a":[],"b":[[ ],[1,[\n\t]]],"c":{},"d":"[]","e":"\\"[]","f":[[[]]]}'
      local v = assert(json.decode(text))
      assert.is_true(json.is_array(v.a))
      assert.is_nil(next(v.a))
      assert.is_false(json.is_array(v.c))
      assert.equal('[]', v.d)
      assert.equal('"[]', v.e)
      assert.equal('{"a":[],"b":[[],[1,[]]],"c":{},"d":"[]","e":"\\"[]","f":[[[]]]}', json.encode(v))
      assert.equal('[]', json.encode(json.decode('[]')))
      assert.equal('{"a":[]}', json.encode(json.decode('{"a":[]}')))
    end)

    it('marks every array, so encode gives the same JSON back', function()
      local text = '{"a":[1,2,{"b":[true,false,null]}],"c":"\u{1f600}\\n","d":-1.5e-7}'
      local v = assert(json.decode(text))
      assert.is_true(getmetatable(v.a) ~= nil and json.is_array(v.a))
      assert.equal(text, json.encode(v))
      assert.equal(text, json.canonical(json.decode(json.encode(v, { indent = 2 }))))
    end)

    it('does not take a look-alike of its internal marker for an empty array', function()
      local v = assert(json.decode('["\\u00ffaegis.json:empty-array\\u00ff"]'))
      assert.equal(1, #v)
      assert.equal('\u{ff}aegis.json:empty-array\u{ff}', v[1])
    end)

    it('decodes 1000 nested arrays and refuses 1001', function()
      local v = assert(json.decode(('['):rep(1000) .. (']'):rep(1000)))
      assert.equal(('['):rep(1000) .. (']'):rep(1000), json.encode(v))
      local none, err, code = json.decode(('['):rep(1001) .. (']'):rep(1001))
      assert.is_nil(none)
      assert.equal('json: found too many nested data structures (1001) at character 1001', err)
      assert.equal('parse', code)
    end)

    it('returns nil, msg, "parse" for text that is not JSON', function()
      local cases = {
        { '[1,', 'json: expected value but found T_END at character 4' },
        { '{"a":[] ,}', 'json: expected object key string but found T_OBJ_END at character 10' },
        { '', 'json: expected value but found T_END at character 1' },
        { '{"a":1} x', 'json: expected the end but found invalid token at character 9' },
        { 'NaN', 'json: expected value but found invalid token at character 1' },
        { '-Infinity', 'json: expected value but found invalid number at character 1' },
        { '01', 'json: expected value but found invalid number at character 1' },
        { '"abc', 'json: expected value but found unexpected end of string at character 5' },
        { '0x10', 'json: expected value but found invalid number at character 1' },
        { '"\\ud800"', 'json: expected value but found invalid unicode escape code at character 2' },
        { '1\0', 'json: NUL byte at character 2' },
        { '"a\255"', 'json: invalid UTF-8 at character 3' },
        { '"\xed\xa0\x80"', 'json: invalid UTF-8 at character 2' },
        { '1e400', 'json: number out of range' },
        { '[-1e400]', 'json: number out of range' },
      }
      for _, c in ipairs(cases) do
        local v, err, code = json.decode(c[1])
        assert.is_nil(v, c[1])
        assert.equal(c[2], err)
        assert.equal('parse', code)
      end
    end)

    it('raises on a non-string', function()
      assert.error_matches(function() json.decode(42) end,
        "bad argument #1 to 'decode' %(string expected, got number%)")
    end)
  end)

  -- The encoder keeps its buffers between calls, and garbage collection
  -- steps (hence finalizers, which may encode or decode too) run inside
  -- encode and decode.
  describe('from finalizers', function()
    local function big()
      local t = json.array({})
      for i = 1, 3000 do t[i] = { n = i, s = ('v%d'):format(i), e = 'a"b\n' .. i } end
      return t
    end

    it('encodes and decodes while an encode or a decode is running', function()
      -- a cycle starts as soon as one ends, so pending finalizers run within
      -- the allocations of the encodes and decodes below, not only after
      local mode = collectgarbage('incremental', 1, 400)
      finally(function()
        if mode == 'generational' then collectgarbage('generational') else collectgarbage('incremental', 200, 100) end
      end)
      local v = big()
      local want = json.canonical(v)
      local seen, bad = 0, 0
      local function arm(n)
        for i = 1, n do
          setmetatable({}, { __gc = function()
            seen = seen + 1
            local inner = { k = i, t = 'x\n' }
            if json.canonical(inner) ~= ('{"k":%d,"t":"x\\n"}'):format(i) then bad = bad + 1 end
            if json.decode(json.canonical(inner)).k ~= i then bad = bad + 1 end
          end })
        end
      end
      -- at least 5 rounds; more while none has run yet: a collector cycle
      -- takes longer over a bigger heap (the specs before this one in the
      -- same process leave more or less of one)
      for round = 1, 100 do
        arm(300)
        assert.equal(want, json.canonical(v))
        arm(300)
        assert.equal(want, json.canonical(assert(json.decode(want))))
        if round >= 5 and seen > 0 then break end
      end
      assert.is_true(seen > 0) -- some ran inside encode or decode
      collectgarbage()
      assert.equal(0, bad)
    end)

    it('encodes again after an encode failed half-way', function()
      local v = big()
      local want = json.canonical(v)
      v[1500].bad = 0 / 0
      assert.equal('json: cannot encode NaN at $[1500].bad', encode_error(v))
      v[1500].bad = nil
      assert.equal(want, json.canonical(v))
      assert.equal('[1]', json.canonical({ 1 }))
    end)
  end)
end)

describe('aegis.core.json finish', function()
  local core = require('aegis.core.json')

  -- finish() takes any value, not only cjson's: it used to recurse
  -- without a bound and overflow the C stack (a segfault) on these
  it('refuses a cyclic table instead of recursing forever', function()
    local t = {}
    t[1] = t
    local v, err, code = core.finish(t)
    assert.is_nil(v)
    assert.equal('json: nesting deeper than 1000 levels', err)
    assert.equal('parse', code)
    local o = {}
    o.self = o
    assert.equal('json: nesting deeper than 1000 levels', select(2, core.finish(o)))
  end)

  it('takes 1000 levels and refuses 1001', function()
    local function nest(n)
      local t = { 1.0 }
      for _ = 2, n do t = { t } end
      return t
    end
    local v = assert(core.finish(nest(1000)))
    for _ = 1, 999 do v = v[1] end
    assert.equal('integer', math.type(v[1]))
    assert.same({ nil, 'json: nesting deeper than 1000 levels', 'parse' }, { core.finish(nest(1001)) })
  end)
end)
