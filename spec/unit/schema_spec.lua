local h = require('spec.helpers')
local errors = require('aegis.errors')
local json = require('aegis.json')
local s = require('aegis.schema')

-- The lines of a failed parse's message.
local function issues(schema, value, name)
  local v, err = schema:parse(value, name)
  assert.is_nil(v)
  assert.is_true(errors.is(err))
  assert.equal('schema', err.code)
  local lines = {}
  for line in err.msg:gmatch('[^\n]+') do lines[#lines + 1] = line end
  return lines, err
end

local function issue(schema, value, name)
  local lines = issues(schema, value, name)
  assert.equal(1, #lines, 'expected one issue, got:\n' .. table.concat(lines, '\n'))
  return lines[1]
end

describe('aegis.schema', function()
  describe('scalars', function()
    it('accepts strings within bounds and reports the bound broken', function()
      local S = s.string({ min = 2, max = 4 })
      assert.equal('abc', S:parse('abc'))
      assert.equal('value: expected string of at least 2 bytes, got 1', issue(S, 'a'))
      assert.equal('value: expected string of at most 4 bytes, got 5', issue(S, 'abcde'))
      assert.equal('value: expected string, got number', issue(S, 12))
      assert.equal('value: expected string of at least 1 byte, got 0', issue(s.string({ min = 1 }), ''))
    end)

    it('counts string length in bytes', function()
      assert.equal('value: expected string of at most 1 byte, got 2', issue(s.string({ max = 1 }), 'é'))
    end)

    it('finds a Lua pattern anywhere unless anchored', function()
      local S = s.string({ pattern = '%d%d' })
      assert.equal('a12b', S:parse('a12b'))
      assert.equal("value: expected string matching '%d%d', got 'a1b'", issue(S, 'a1b'))
      assert.equal("value: expected string matching '^%d+$', got 'a12'", issue(s.string({ pattern = '^%d+$' }), 'a12'))
    end)

    it('quotes and shortens shown strings', function()
      local got = issue(s.literal('x'), ('y'):rep(50) .. '\n')
      assert.equal("value: expected 'x', got '" .. ('y'):rep(37) .. "...'", got)
      assert.equal("value: expected 'x', got 'a\\nb'", issue(s.literal('x'), 'a\nb'))
    end)

    it('accepts finite numbers within inclusive bounds', function()
      local N = s.number({ min = 0, max = 1 })
      assert.equal(0, N:parse(0))
      assert.equal(1, N:parse(1))
      assert.equal(0.5, N:parse(0.5))
      assert.equal('value: expected number >= 0, got -0.5', issue(N, -0.5))
      assert.equal('value: expected number <= 1, got 2', issue(N, 2))
      assert.equal('value: expected number, got string', issue(N, '1'))
      assert.equal('value: expected finite number, got nan', issue(s.number(), 0 / 0))
      assert.equal('value: expected finite number, got inf', issue(s.number(), math.huge))
      assert.equal('value: expected finite number, got -inf', issue(s.number(), -math.huge))
    end)

    it('accepts integers and integral floats, returning integers', function()
      local I = s.integer({ min = 1 })
      assert.equal('integer', math.type(I:parse(3)))
      local v = I:parse(3.0)
      assert.equal(3, v)
      assert.equal('integer', math.type(v))
      assert.equal('value: expected integer, got 1.5', issue(I, 1.5))
      assert.equal('value: expected integer, got 1e+100', issue(I, 1e100))
      assert.equal('value: expected integer, got string', issue(I, '3'))
      assert.equal('value: expected integer >= 1, got 0', issue(I, 0))
      assert.equal('value: expected integer >= 1, got 0', issue(I, 0.0))
      assert.equal('value: expected integer <= 3, got 4', issue(s.number({ integer = true, max = 3 }), 4))
    end)

    it('accepts booleans, literals and enums', function()
      local v, err = s.boolean():parse(false)
      assert.is_false(v)
      assert.is_nil(err)
      assert.equal('value: expected boolean, got string', issue(s.boolean(), 'true'))
      assert.equal('v1', s.literal('v1'):parse('v1'))
      assert.equal("value: expected 'v1', got 'v2'", issue(s.literal('v1'), 'v2'))
      assert.equal('value: expected 4, got 4.5', issue(s.literal(4), 4.5))
      local E = s.enum({ 'a', 'b', 3 })
      assert.equal('b', E:parse('b'))
      assert.equal(3, E:parse(3))
      assert.equal("value: expected one of 'a', 'b', 3, got 'c'", issue(E, 'c'))
      assert.equal("value: expected one of 'a', 'b', 3, got nil", issue(E, nil))
      assert.equal("value: expected one of 'a', 'b', 3, got table", issue(E, {}))
    end)

    it('accepts any value but nil', function()
      local t = {}
      assert.equal(t, s.any():parse(t))
      assert.equal('value: expected a value, got nil', issue(s.any(), nil))
    end)
  end)

  describe('objects', function()
    local Meta = s.object({ step = s.integer(), source = s.enum({ 'input', 'loop' }) })
    local Checkpoint = s.object({ id = s.string(), metadata = Meta }, { name = 'checkpoint' })

    it('returns the input itself when nothing changes', function()
      local input = { id = 'c1', metadata = { step = 1, source = 'loop' } }
      assert.equal(input, Checkpoint:parse(input))
    end)

    it('names nested paths from the schema name', function()
      assert.equal('checkpoint.metadata.step: expected integer, got string',
        issue(Checkpoint, { id = 'c1', metadata = { step = 'x', source = 'loop' } }))
    end)

    it('names the root by the name given, else the schema name, else value', function()
      local bad = { id = 1, metadata = { step = 1, source = 'loop' } }
      assert.equal('cp.id: expected string, got number', issue(Checkpoint, bad, 'cp'))
      assert.equal('value.id: expected string, got number', issue(Meta:extend({ id = s.string() }), {
        id = 1, step = 1, source = 'loop' }))
    end)

    it('reports a missing field as nil', function()
      assert.equal('checkpoint.metadata: expected object, got nil', issue(Checkpoint, { id = 'c' }))
    end)

    it('reports unknown keys when strict, sorted', function()
      local lines = issues(Checkpoint, { id = 'c', metadata = { step = 1, source = 'loop' }, stor = 1, [1] = true,
        ['a b'] = 2 })
      assert.same({
        'checkpoint[1]: unknown key',
        "checkpoint['a b']: unknown key",
        'checkpoint.stor: unknown key',
      }, lines)
    end)

    it('keeps unknown keys when not strict', function()
      local Loose = s.object({ a = s.integer() }, { strict = false })
      local input = { a = 1, b = 'x' }
      assert.equal(input, Loose:parse(input))
      local out = Loose:parse({ a = 1.0, b = 'x' })
      assert.same({ a = 1, b = 'x' }, out)
      assert.equal('integer', math.type(out.a))
    end)

    it('reports every issue, one per line, in field order', function()
      local lines, err = issues(Checkpoint, { id = 5, metadata = { step = 1.5, source = 'x' } })
      assert.same({
        'checkpoint.id: expected string, got number',
        "checkpoint.metadata.source: expected one of 'input', 'loop', got 'x'",
        'checkpoint.metadata.step: expected integer, got 1.5',
      }, lines)
      assert.equal(3, err.count)
      assert.same({ path = 'checkpoint.id', message = 'expected string, got number' }, err.issues[1])
      assert.equal('checkpoint.id: expected string, got number', err.msg:match('^[^\n]*'))
    end)

    it('stops keeping issues at MAX_ISSUES and counts the rest', function()
      local fields, value = {}, {}
      for i = 1, 25 do
        fields[('f%02d'):format(i)] = s.string()
        value[('f%02d'):format(i)] = i
      end
      local lines, err = issues(s.object(fields), value)
      assert.equal(21, #lines)
      assert.equal('value.f01: expected string, got number', lines[1])
      assert.equal('... and 5 more', lines[21])
      assert.equal(25, err.count)
      assert.equal(20, #err.issues)
    end)

    it('refuses a non-table', function()
      assert.equal('value: expected object, got string', issue(Meta, 'x'))
      assert.equal('value: expected object, got null', issue(Meta, json.null))
    end)

    it('extends with new and replaced fields, keeping strictness', function()
      local Base = s.object({ a = s.string(), b = s.string() }, { strict = false, name = 'base' })
      local Ext = Base:extend({ b = s.integer(), c = s.boolean() }, { name = 'ext' })
      assert.same({ a = 'x', b = 1, c = true, d = 0 }, Ext:parse({ a = 'x', b = 1, c = true, d = 0 }))
      assert.equal('ext.b: expected integer, got string', issue(Ext, { a = 'x', b = 'y', c = true }))
      assert.is_nil(Base:parse({ a = 'x', b = 1 }))
    end)
  end)

  describe('arrays and records', function()
    local Rule = s.object({ id = s.string() })
    local Pack = s.object({ rules = s.array(Rule, { min = 1, max = 3 }) }, { name = 'pack' })

    it('names items by index', function()
      assert.equal('pack.rules[3].id: expected string, got nil',
        issue(Pack, { rules = { { id = 'a' }, { id = 'b' }, {} } }))
    end)

    it('treats an empty table as an empty array and checks bounds', function()
      assert.same({}, s.array(s.string()):parse({}))
      assert.equal('pack.rules: expected at least 1 item, got 0', issue(Pack, { rules = {} }))
      assert.equal('pack.rules: expected at most 3 items, got 4',
        issue(Pack, { rules = { { id = 'a' }, { id = 'b' }, { id = 'c' }, { id = 'd' } } }))
    end)

    it('refuses a table that is not a sequence, naming a stray key', function()
      assert.equal("value: expected array, got table with key 'x'", issue(s.array(s.integer()), { 1, 2, x = 3 }))
      assert.equal('value: expected array, got table with key 5',
        issue(s.array(s.integer():optional()), { 1, [5] = 2 }))
      assert.equal('value[2]: expected integer, got nil', issue(s.array(s.integer()), { 1, nil, 3 }))
    end)

    it('copies only on change', function()
      local A = s.array(s.integer())
      local input = { 1, 2 }
      assert.equal(input, A:parse(input))
      local out = A:parse({ 1, 2.0 })
      assert.equal('integer', math.type(out[2]))
    end)

    it('checks record keys and values, reporting in key order', function()
      local Env = s.record(s.string({ pattern = '^[%u_]+$' }), s.string())
      local input = { HOME = '/h', PATH = '/bin' }
      assert.equal(input, Env:parse(input, 'env'))
      assert.same({
        "env.Bad: invalid key: expected string matching '^[%u_]+$', got 'Bad'",
        'env.ZED: expected string, got number',
        "env['a-b']: invalid key: expected string matching '^[%u_]+$', got 'a-b'",
      }, (issues(Env, { Bad = 'x', ZED = 1, ['a-b'] = 'y', OK = 'z' }, 'env')))
      assert.equal('env[1]: invalid key: expected string, got number',
        issue(s.record(s.string(), s.any()), { 'x' }, 'env'))
    end)

    it('normalises integers in records', function()
      local out = s.record(s.string(), s.integer()):parse({ a = 2.0 })
      assert.equal('integer', math.type(out.a))
    end)
  end)

  describe('unions', function()
    it('takes the first option that fits', function()
      local U = s.union({ s.string(), s.integer() })
      assert.equal('x', U:parse('x'))
      assert.equal('integer', math.type(U:parse(2.0)))
      assert.equal('value: expected string or integer, got table', issue(U, {}))
    end)

    it('explains with the option a discriminator points to', function()
      local Ev = s.union({
        s.object({ kind = s.literal('call'), tokens = s.integer() }),
        s.object({ kind = s.literal('tool'), argv = s.array(s.string()) }),
      })
      assert.same({ kind = 'tool', argv = { 'tsc' } }, Ev:parse({ kind = 'tool', argv = { 'tsc' } }))
      assert.equal('event.argv[1]: expected string, got number', issue(Ev, { kind = 'tool', argv = { 1 } }, 'event'))
      assert.equal('event.tokens: expected integer, got string',
        issue(Ev, { kind = 'call', tokens = 'x' }, 'event'))
    end)
  end)

  describe('modifiers', function()
    it('optional accepts nil and leaves the base unchanged', function()
      local S = s.string()
      local O = S:optional()
      local v, err = O:parse(nil)
      assert.is_nil(v)
      assert.is_nil(err)
      assert.equal('value: expected string, got nil', issue(S, nil))
      local Obj = s.object({ a = O })
      local input = {}
      assert.equal(input, Obj:parse(input))
    end)

    it('default fills nil with a deep copy and never touches the input', function()
      local Cfg = s.object({
        store = s.string():default('sqlite:.aegis/aegis.db'),
        retry = s.object({ max = s.integer():default(3), codes = s.array(s.integer()):default({ 429 }) }):default({}),
      }, { name = 'config' })
      local input = {}
      local a = Cfg:parse(input)
      assert.same({}, input)
      assert.same({ store = 'sqlite:.aegis/aegis.db', retry = { max = 3, codes = { 429 } } }, a)
      a.retry.codes[1] = 500
      assert.same({ 429 }, Cfg:parse({}).retry.codes)
      local given = { store = 'x', retry = { max = 1, codes = {} } }
      assert.equal(given, Cfg:parse(given))
    end)

    it('checks a default when it is declared', function()
      assert.has_error(function() s.integer():default('x') end,
        "bad argument #1 to 'default' (default: expected integer, got string)")
      assert.has_error(function() s.string():default(nil) end, "bad argument #1 to 'default' (value expected)")
    end)

    it('nullable accepts json.null only', function()
      local N = s.string():nullable()
      assert.equal(json.null, N:parse(json.null))
      assert.equal('value: expected string, got null', issue(s.string(), json.null))
      assert.equal('value: expected string, got nil', issue(N, nil))
    end)

    it('refine runs after the other checks pass, first failure reported', function()
      local calls = 0
      local Even = s.integer():refine(function(v) calls = calls + 1; return v % 2 == 0 end, 'must be even')
        :refine(function(v) return v < 10 end, 'must be below 10')
      assert.equal(4, Even:parse(4))
      assert.equal('n: must be even', issue(Even, 3, 'n'))
      assert.equal('n: must be below 10', issue(Even, 12, 'n'))
      calls = 0
      assert.equal('n: expected integer, got string', issue(Even, 'x', 'n'))
      assert.equal(0, calls)
      assert.equal('value: invalid value', issue(s.string():refine(function() return false end), 'x'))
    end)

    it('lets a refinement error propagate, and parses normally afterwards', function()
      local Boom = s.string():refine(function() error('boom', 0) end)
      assert.has_error(function() Boom:parse('x') end, 'boom')
      assert.equal('value: expected string, got number', issue(s.string(), 1))
    end)

    it('describe adds a description without changing the original', function()
      local S = s.string()
      local D = S:describe('a name')
      assert.equal('a name', D.description)
      assert.is_nil(S.description)
    end)
  end)

  describe('assert', function()
    it('returns the value with defaults filled', function()
      assert.same({ a = 1 }, s.object({ a = s.integer():default(1) }):assert({}))
    end)

    it('raises an aegis error with code schema and exit 1', function()
      local S = s.object({ a = s.integer() })
      local ok, err = pcall(S.assert, S, { a = 'x' }, 'cfg')
      assert.is_false(ok)
      assert.is_true(errors.is(err))
      assert.equal('schema', err.code)
      assert.equal(1, err.exit)
      assert.equal('cfg.a: expected integer, got string', err.msg)
      assert.equal('cfg.a: expected integer, got string', tostring(err))
    end)
  end)

  describe('misuse', function()
    it('raises on bad constructor arguments', function()
      assert.has_error(function() s.string({ min = -1 }) end,
        "bad argument #1 to 'string' (option 'min' must be a non-negative integer)")
      assert.has_error(function() s.string({ minimum = 1 }) end,
        "bad argument #1 to 'string' (unknown option 'minimum')")
      assert.has_error(function() s.string({ pattern = '[a' }) end,
        "bad argument #1 to 'string' (invalid pattern '[a': malformed pattern (missing ']'))")
      assert.has_error(function() s.string({ format = 'email-ish' }) end,
        "bad argument #1 to 'string' (unknown format 'email-ish')")
      assert.has_error(function() s.object({ a = 'string' }) end,
        "bad argument #1 to 'object' (field 'a' is not a schema)")
      assert.has_error(function() s.object({ s.string() }) end,
        "bad argument #1 to 'object' (field names must be strings)")
      assert.has_error(function() s.array('x') end, "bad argument #1 to 'array' (schema expected)")
      assert.has_error(function() s.record(s.integer(), s.any()) end,
        "bad argument #1 to 'record' (key schema must be a string, enum or literal)")
      assert.has_error(function() s.union({}) end, "bad argument #1 to 'union' (non-empty list of schemas expected)")
      assert.has_error(function() s.enum({ {} }) end,
        "bad argument #1 to 'enum' (values must be strings, numbers or booleans)")
      assert.has_error(function() s.literal({}) end,
        "bad argument #1 to 'literal' (string, number or boolean expected, got table)")
      assert.has_error(function() s.string():extend({}) end, "bad argument #1 to 'extend' (object schema expected)")
      assert.has_error(function() s.string():refine('x') end, "bad argument #1 to 'refine' (function expected)")
    end)
  end)

  describe('json_schema', function()
    local function encode(S) return json.encode(S:json_schema(), { indent = 2 }) end

    it('exports an object as JSON Schema 2020-12', function()
      local S = s.object({
        id = s.string({ min = 1, max = 64, pattern = '^[%w%-]+$', format = 'uuid' }):describe('checkpoint id'),
        step = s.integer({ min = 0 }),
        ratio = s.number({ min = 0, max = 1 }):optional(),
        tags = s.array(s.string(), { min = 1, max = 5 }):default({ 'x' }),
        empty = s.array(s.string()):default({}),
        kind = s.literal('plan'),
        layer = s.enum({ 'plan', 'module' }),
        ok = s.boolean(),
        any = s.any(),
      }, { name = 'checkpoint', description = 'a checkpoint' })
      local js = S:json_schema()
      assert.equal('https://json-schema.org/draft/2020-12/schema', js['$schema'])
      assert.equal('checkpoint', js.title)
      assert.equal('a checkpoint', js.description)
      assert.equal('object', js.type)
      assert.is_false(js.additionalProperties)
      assert.same({ 'any', 'id', 'kind', 'layer', 'ok', 'step' }, js.required)
      assert.same({ type = 'string', minLength = 1, maxLength = 64, pattern = '^[0-9A-Za-z\\-]+$', format = 'uuid',
        description = 'checkpoint id' }, js.properties.id)
      assert.same({ type = 'integer', minimum = 0 }, js.properties.step)
      assert.same({ type = 'number', minimum = 0, maximum = 1 }, js.properties.ratio)
      assert.same({ const = 'plan' }, js.properties.kind)
      assert.same({ enum = { 'plan', 'module' } }, js.properties.layer)
      assert.same({}, js.properties.any)
      local text = encode(S)
      assert.matches('"empty": {\n      "default": %[%],', text)
      assert.matches('"required": %[\n    "any",', text)
      assert.matches('"any": {},', text)
    end)

    it('marks arrays for the encoder, even empty ones', function()
      local text = json.encode(s.object({ a = s.array(s.any()):default({}) }):json_schema(), { indent = 2 })
      assert.matches('"default": %[%]', text)
      assert.matches('"properties": {', text)
    end)

    it('exports records, unions and nullables', function()
      local R = s.record(s.string({ pattern = '^%u+$' }), s.integer()):json_schema()
      assert.same({ pattern = '^[A-Z]+$' }, R.propertyNames)
      assert.same({ type = 'integer' }, R.additionalProperties)
      assert.is_nil(s.record(s.string(), s.integer()):json_schema().propertyNames)
      assert.same({ anyOf = { { type = 'string' }, { type = 'integer' } } },
        (function() local j = s.union({ s.string(), s.integer() }):json_schema(); j['$schema'] = nil; return j end)())
      assert.same({ 'string', 'null' }, s.string():nullable():json_schema().type)
      assert.same({ 'a', json.null }, s.enum({ 'a' }):nullable():json_schema().enum)
      assert.same({ 'a', json.null }, s.literal('a'):nullable():json_schema().enum)
      assert.same({ { anyOf = { { type = 'string' } } }, { type = 'null' } },
        s.union({ s.string() }):nullable():json_schema().anyOf)
      assert.same({ 'field' }, s.object({ field = s.string():nullable() }):json_schema().required)
    end)

    it('says in $comment what only aegis checks', function()
      local j = s.string({ pattern = '%bxy' }):refine(function() return true end, 'must be short'):json_schema()
      assert.is_nil(j.pattern)
      assert.equal("pattern '%bxy' (Lua) has no simple regex form; checked by aegis only; "
        .. 'also checked by aegis: must be short', j['$comment'])
    end)

    it('is deterministic', function()
      local S = s.object({ b = s.string(), a = s.record(s.string(), s.integer()), c = s.enum({ 'z', 'y' }) })
      assert.equal(encode(S), encode(S))
    end)
  end)

  describe('regex', function()
    it('translates simple Lua patterns', function()
      assert.equal('^[0-9]+$', s.regex('^%d+$'))
      assert.equal('^[0-9A-Za-z_\\-]+\\.lua$', s.regex('^[%w_%-]+%.lua$'))
      assert.equal('a[\\s\\S]*b', s.regex('a.-b'))
      assert.equal('^[^/]+$', s.regex('^[^/]+$'))
      assert.equal('^[^0-9]*$', s.regex('^%D*$'))
      assert.equal('^\\(x\\)$', s.regex('^%(x%)$'))
      assert.equal('(ab)\\*', s.regex('(ab)*'))
      assert.equal('a\\^b\\$c', s.regex('a^b$c'))
      assert.equal('^[\\]a]$', s.regex('^[]a]$'))
      assert.equal('^[a\\-]$', s.regex('^[a-]$'))
      assert.equal('^v?[0-9]', s.regex('^v?%d'))
      assert.equal('^-x$', s.regex('^-x$'))
      assert.equal('^[\\t\\n\\v\\f\\r ]*$', s.regex('^%s*$'))
    end)

    it('declines what would change meaning', function()
      assert.is_nil(s.regex('%bxy'))
      assert.is_nil(s.regex('%f[%w]x'))
      assert.is_nil(s.regex('(a)%1'))
      assert.is_nil(s.regex('^.$'))       -- one byte is not one character
      assert.is_nil(s.regex('^[^a]$'))
      assert.is_nil(s.regex('^.?$'))
      assert.is_nil(s.regex('^é$'))
      assert.is_nil(s.regex('[%A]'))
    end)
  end)

  describe('registry and export', function()
    after_each(function()
      s.unregister('spec.thing')
      s.unregister('spec.other')
    end)

    it('registers, lists sorted names, and unregisters', function()
      local T = s.object({ a = s.string() })
      assert.equal(T, s.register('spec.thing', T))
      s.register('spec.other', s.integer())
      assert.equal(T, s.registered()['spec.thing'])
      local names = s.names()
      local mine = {}
      for _, n in ipairs(names) do if n:find('^spec%.') then mine[#mine + 1] = n end end
      assert.same({ 'spec.other', 'spec.thing' }, mine)
      local sorted = { table.unpack(names) }
      table.sort(sorted)
      assert.same(sorted, names)
      s.unregister('spec.thing')
      assert.is_nil(s.registered()['spec.thing'])
    end)

    it('refuses bad names', function()
      assert.has_error(function() s.register('../x', s.string()) end,
        "bad argument #1 to 'register' (name of letters, digits, '_', '-', '.' expected)")
      assert.has_error(function() s.register('x', {}) end, "bad argument #2 to 'register' (schema expected)")
    end)

    it('writes one <name>.schema.json per model, creating the directory', function()
      s.register('spec.thing', s.object({ id = s.string(), tags = s.array(s.string()):default({}) },
        { name = 'thing' }))
      local dir = h.tmpdir() .. '/out'
      local files = assert(s.export(dir))
      local path = dir .. '/spec.thing.schema.json'
      local found = false
      for _, f in ipairs(files) do if f == path then found = true end end
      assert.is_true(found)
      local text = h.read(path)
      assert.equal(json.encode(s.registered()['spec.thing']:json_schema(), { indent = 2 }) .. '\n', text)
      local doc = json.decode(text)
      assert.equal('https://json-schema.org/draft/2020-12/schema', doc['$schema'])
      assert.equal('thing', doc.title)
      assert.matches('"default": %[%]', text)
      assert.same(files, assert(s.export(dir .. '/')))  -- again, into the existing directory
    end)

    it('titles a nameless model by its registered name', function()
      s.register('spec.other', s.integer())
      local dir = h.tmpdir()
      assert(s.export(dir))
      assert.equal('spec.other', json.decode(h.read(dir .. '/spec.other.schema.json')).title)
    end)

    it('returns nil, msg, io when the parent is missing or the directory unwritable', function()
      local dir = h.tmpdir()
      local files, err, code = s.export(dir .. '/no/such')
      assert.is_nil(files)
      assert.equal('io', code)
      assert.equal(("schema: export '%s/no/such': parent directory '%s/no' does not exist"):format(dir, dir), err)
      s.register('spec.thing', s.string())
      h.write(dir .. '/file', 'x')
      files, err, code = s.export(dir .. '/file')
      assert.is_nil(files)
      assert.equal('io', code)
      local want = "^schema: export '" .. dir:gsub('%p', '%%%0') .. "/file/[^']+%.schema%.json': not a directory$"
      assert.matches(want, err)
    end)
  end)
end)
