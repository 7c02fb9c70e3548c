--- Data models: a small Zod-like validator for Lua tables, exportable as
--- JSON Schema 2020-12.
---
--- ```lua
--- local s = require('aegis.schema')
--- local Rule = s.object({
---   id = s.string({ pattern = '^[%w%-]+$' }),
---   severity = s.enum({ 'error', 'warning' }):default('error'),
--- })
--- local rule = Rule:assert({ id = 'no-any' }, 'rule')  --> {id = 'no-any', severity = 'error'}
--- ```
---
--- `parse` never mutates its input. It returns the input itself when nothing
--- had to change, and a copy (only of the tables on the way to a change) when
--- a default was filled or an integral float became an integer. The happy path
--- builds no strings: paths and messages are made only for issues.
local errors = require('aegis.errors')
local fs = require('aegis.fs')
local json = require('aegis.json')

local M = {}

local math_type, tointeger, type, pairs = math.type, math.tointeger, type, pairs
local getmetatable, setmetatable, tostring = getmetatable, setmetatable, tostring

local NULL = json.null
local HUGE = math.huge

--- Issues kept per parse; the rest are counted.
M.MAX_ISSUES = 20

---@class aegis.schema.Schema
---@field kind string 'object'|'string'|'number'|'integer'|'boolean'|'literal'|'enum'|'array'|'record'|'union'|'any'
---@field name? string Model name: the root of error paths and the JSON Schema title
---@field description? string
local Schema = { __name = 'aegis.schema.Schema' }
Schema.__index = Schema

---@class aegis.schema.Issue
---@field path string Readable path, `config.rules[3].id`
---@field message string What was wrong, `expected string, got nil`

--- Issues: one parse's error object (code 'schema').
---@class aegis.schema.Error: aegis.Error
---@field issues aegis.schema.Issue[] The first MAX_ISSUES issues, in document order
---@field count integer How many issues there were in all

--[[ {======================================================
** Values: copying, quoting, describing
** ======================================================= ]]

local function deep_copy(v)
  if type(v) ~= 'table' then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deep_copy(x) end
  return setmetatable(t, getmetatable(v))  -- keeps json.array marks
end

local function shallow_copy(v)
  local t = {}
  for k, x in pairs(v) do t[k] = x end
  return setmetatable(t, getmetatable(v))
end

local function number_text(x)
  if x ~= x then return 'nan' end
  if x == math.huge then return 'inf' end
  if x == -math.huge then return '-inf' end
  if math_type(x) == 'float' and x == math.floor(x) and math.abs(x) < 2^53 then
    return ('%.1f'):format(x)
  end
  return tostring(x)
end

local function quote(v)
  local str = tostring(v)
  if #str > 40 then str = str:sub(1, 37) .. '...' end
  return "'" .. str:gsub('[%c\\\']', function(c)
    return c == '\n' and '\\n' or c == '\t' and '\\t' or ('\\%03d'):format(c:byte())
  end) .. "'"
end

-- A scalar shown as itself, anything else by its type.
local function show(v)
  local t = type(v)
  if t == 'string' then return quote(v) end
  if t == 'number' then return number_text(v) end
  if t == 'boolean' then return tostring(v) end
  if v == NULL then return 'null' end
  return t
end

-- The type of a value, as in "got string"; json.null is 'null'.
local function type_name(v)
  if v == NULL then return 'null' end
  return type(v)
end

local function plural(n, word)
  return n .. ' ' .. word .. (n == 1 and '' or 's')
end

-- }======================================================

--[[ {======================================================
** Parse context and issues
**
** A context is reused across parses (a small pool, since refinements may
** parse recursively). ctx[1..d] holds the path segments down to depth d;
** they become a string only when an issue is recorded.
** ======================================================= ]]

local pool = {}

local function ctx_acquire(root)
  local n = #pool
  local ctx = pool[n]
  if ctx then pool[n] = nil else ctx = {} end
  ctx.root, ctx.n, ctx.key = root, 0, false
  return ctx
end

local function ctx_release(ctx)
  -- path slots need no clearing: a check sets ctx[d] before looking deeper
  ctx.issues, ctx.root = nil, nil
  pool[#pool + 1] = ctx
end

local function path_of(ctx, d)
  local parts = { ctx.root }
  for i = 1, d do
    local k = ctx[i]
    if type(k) == 'string' and k:find('^[%a_][%w_]*$') then
      parts[#parts + 1] = '.' .. k
    elseif math_type(k) == 'integer' then
      parts[#parts + 1] = '[' .. k .. ']'
    else
      parts[#parts + 1] = '[' .. show(k) .. ']'
    end
  end
  return table.concat(parts)
end

local function issue(ctx, d, message)
  local n = ctx.n + 1
  ctx.n = n
  if n > M.MAX_ISSUES then return end
  if ctx.key then message = 'invalid key: ' .. message end
  local list = ctx.issues
  if list == nil then list = {}; ctx.issues = list end
  list[n] = { path = path_of(ctx, d), message = message }
end

-- Forgets the issues recorded after the first `n0` (a union trying options).
local function rollback(ctx, n0)
  local list = ctx.issues
  if list then
    for i = ctx.n, n0 + 1, -1 do list[i] = nil end
  end
  ctx.n = n0
end

local function mismatch(ctx, d, self, v)
  issue(ctx, d, 'expected ' .. self._expect .. ', got ' .. type_name(v))
  return v
end

-- }======================================================

--[[ {======================================================
** Checking
**
** Every schema has `_run(self, v, ctx, d)`: its kind's check when it has no
** modifiers, else `run`, which applies them (default, optional, nullable,
** refinements) around the check. Both return the value to keep, which is
** `v` itself unless something had to change. One call per value checked.
** ======================================================= ]]

local function run(self, v, ctx, d)
  if v == nil then
    local dv = self._default
    if dv ~= nil then
      if self._default_table then return deep_copy(dv) end
      return dv
    end
    if self._optional then return nil end
  elseif self._nullable and v == NULL then
    return v
  end
  local refines = self._refines
  if refines == nil then return self._check(self, v, ctx, d) end
  local n0 = ctx.n
  local out = self._check(self, v, ctx, d)
  if ctx.n == n0 then
    for i = 1, #refines, 2 do
      if not refines[i](out) then
        issue(ctx, d, refines[i + 1])
        break
      end
    end
  end
  return out
end

local function check_plain_string(self, v, ctx, d)
  if type(v) ~= 'string' then return mismatch(ctx, d, self, v) end
  return v
end

local function check_string(self, v, ctx, d)
  if type(v) ~= 'string' then return mismatch(ctx, d, self, v) end
  local min, max, pattern = self.min, self.max, self.pattern
  if min and #v < min then
    issue(ctx, d, ('expected string of at least %s, got %d'):format(plural(min, 'byte'), #v))
  elseif max and #v > max then
    issue(ctx, d, ('expected string of at most %s, got %d'):format(plural(max, 'byte'), #v))
  end
  if pattern and not v:find(pattern) then
    issue(ctx, d, ('expected string matching %s, got %s'):format(quote(pattern), quote(v)))
  end
  return v
end

local function check_range(self, v, ctx, d)
  local min, max = self.min, self.max
  if min and v < min then
    issue(ctx, d, ('expected %s >= %s, got %s'):format(self._expect, number_text(min), number_text(v)))
  elseif max and v > max then
    issue(ctx, d, ('expected %s <= %s, got %s'):format(self._expect, number_text(max), number_text(v)))
  end
  return v
end

local function check_number(self, v, ctx, d)
  if type(v) ~= 'number' then return mismatch(ctx, d, self, v) end
  if v ~= v or v == HUGE or v == -HUGE then
    issue(ctx, d, 'expected finite number, got ' .. number_text(v))
    return v
  end
  return check_range(self, v, ctx, d)
end

local function check_integer(self, v, ctx, d)
  if math_type(v) ~= 'integer' then
    if type(v) ~= 'number' then return mismatch(ctx, d, self, v) end
    local i = tointeger(v)
    if i == nil then
      issue(ctx, d, 'expected integer, got ' .. number_text(v))
      return v
    end
    v = i
  end
  return check_range(self, v, ctx, d)
end

local function check_plain_integer(self, v, ctx, d)
  if math_type(v) == 'integer' then return v end
  return check_integer(self, v, ctx, d)
end

local function check_boolean(self, v, ctx, d)
  if type(v) ~= 'boolean' then return mismatch(ctx, d, self, v) end
  return v
end

local function check_literal(self, v, ctx, d)
  if v ~= self.value then
    issue(ctx, d, 'expected ' .. self._expect .. ', got ' .. show(v))
  end
  return v
end

local function check_enum(self, v, ctx, d)
  if not self._set[v] then
    issue(ctx, d, 'expected ' .. self._expect .. ', got ' .. show(v))
  end
  return v
end

local function check_any(self, v, ctx, d)
  if v == nil then return mismatch(ctx, d, self, v) end
  return v
end

-- Keys sorted for messages: numbers first, then strings, then the rest.
local function key_rank(k)
  local t = type(k)
  return t == 'number' and 1 or t == 'string' and 2 or 3
end

local function key_order(a, b)
  local ra, rb = key_rank(a), key_rank(b)
  if ra ~= rb then return ra < rb end
  if ra < 3 then return a < b end
  return tostring(a) < tostring(b)
end

local function check_object(self, v, ctx, d)
  if type(v) ~= 'table' or v == NULL then return mismatch(ctx, d, self, v) end
  local keys, fields, nums = self._keys, self._field_list, self._num
  local out
  local d1 = d + 1
  for i = 1, #keys do
    local k = keys[i]
    local old = v[k]
    ctx[d1] = k
    local f = fields[i]
    local new = f._run(f, old, ctx, d1)
    -- `~=` cannot see 3.0 becoming 3: nums[i] says whether f can do that
    if new ~= old or nums[i] and math_type(old) == 'float' and math_type(new) == 'integer' then
      if out == nil then out = shallow_copy(v) end
      out[k] = new
    end
  end
  if self.strict then
    local index, unknown = self.fields, nil
    for k in pairs(v) do
      if index[k] == nil then
        unknown = unknown or {}
        unknown[#unknown + 1] = k
      end
    end
    if unknown then
      table.sort(unknown, key_order)
      for i = 1, #unknown do
        ctx[d1] = unknown[i]
        issue(ctx, d1, 'unknown key')
      end
    end
  end
  return out or v
end

local function check_array(self, v, ctx, d)
  if type(v) ~= 'table' or v == NULL then return mismatch(ctx, d, self, v) end
  local n = #v
  local item, num = self.item, self._num
  local out
  local present = 0
  local d1 = d + 1
  for i = 1, n do
    local old = v[i]
    if old ~= nil then present = present + 1 end
    ctx[d1] = i
    local new = item._run(item, old, ctx, d1)
    if new ~= old or num and math_type(old) == 'float' and math_type(new) == 'integer' then
      if out == nil then out = shallow_copy(v) end
      out[i] = new
    end
  end
  local count = 0
  for _ in pairs(v) do count = count + 1 end
  if count ~= present then  -- a key outside 1..n: name the first one
    local bad = {}
    for k in pairs(v) do
      if math_type(k) ~= 'integer' or k < 1 or k > n then bad[#bad + 1] = k end
    end
    table.sort(bad, key_order)
    issue(ctx, d, 'expected array, got table with key ' .. show(bad[1]))
  end
  local min, max = self.min, self.max
  if min and n < min then
    issue(ctx, d, ('expected at least %s, got %d'):format(plural(min, 'item'), n))
  elseif max and n > max then
    issue(ctx, d, ('expected at most %s, got %d'):format(plural(max, 'item'), n))
  end
  return out or v
end

-- Checks one entry of a record; returns `out`, the copy made so far, if any.
local function record_entry(self, v, ctx, d1, k, old, out)
  local key, value = self.key, self.value
  ctx[d1] = k
  ctx.key = true
  key._run(key, k, ctx, d1)
  ctx.key = false
  local new = value._run(value, old, ctx, d1)
  if new ~= old or self._num and math_type(old) == 'float' and math_type(new) == 'integer' then
    if out == nil then out = shallow_copy(v) end
    out[k] = new
  end
  return out
end

local function record_entries(self, v, ctx, d, keys)
  local out
  if keys then
    for i = 1, #keys do out = record_entry(self, v, ctx, d + 1, keys[i], v[keys[i]], out) end
  else
    for k, old in pairs(v) do out = record_entry(self, v, ctx, d + 1, k, old, out) end
  end
  return out or v
end

local function check_record(self, v, ctx, d)
  if type(v) ~= 'table' or v == NULL then return mismatch(ctx, d, self, v) end
  local n0 = ctx.n
  local out = record_entries(self, v, ctx, d)
  if ctx.n ~= n0 then  -- report in key order, not in pairs() order
    rollback(ctx, n0)
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, key_order)
    out = record_entries(self, v, ctx, d, keys)
  end
  return out
end

-- Whether option `o` of a union is meant for `v`: same Lua type and, for
-- objects with literal fields (a discriminator), the same literals.
local function meant_for(o, v)
  local k = o.kind
  local t = type(v)
  if k == 'object' then
    if t ~= 'table' then return false end
    for name, f in pairs(o.fields) do
      if f.kind == 'literal' and v[name] ~= f.value then return false end
    end
    return true
  end
  if k == 'array' or k == 'record' then return t == 'table' end
  if k == 'integer' or k == 'number' then return t == 'number' end
  if k == 'literal' then return t == type(o.value) end
  if k == 'enum' then return o._set[v] ~= nil end
  if k == 'union' then
    for _, u in ipairs(o.options) do if meant_for(u, v) then return true end end
    return false
  end
  return k == 'any' or k == t
end

local function check_union(self, v, ctx, d)
  local options = self.options
  local n0 = ctx.n
  for i = 1, #options do
    local o = options[i]
    local out = o._run(o, v, ctx, d)
    if ctx.n == n0 then return out end
    rollback(ctx, n0)
  end
  -- none fit: explain with the option meant for v, else list what fits
  for i = 1, #options do
    local o = options[i]
    if meant_for(o, v) then return o._run(o, v, ctx, d) end
  end
  return mismatch(ctx, d, self, v)
end

-- }======================================================

--[[ {======================================================
** Parsing
** ======================================================= ]]

local function fail(ctx)
  local list, lines = ctx.issues, {}
  for i = 1, #list do lines[i] = list[i].path .. ': ' .. list[i].message end
  if ctx.n > #list then lines[#lines + 1] = ('... and %d more'):format(ctx.n - #list) end
  return errors.new('schema', table.concat(lines, '\n'), { issues = list, count = ctx.n })
end

--- Validates a value and fills defaults.
---
--- Returns the value, with defaults filled and integral floats made integers
--- where the schema asks for integers: the input itself when nothing changed,
--- else a copy (the input is never modified). On failure returns nil and an
--- error (code 'schema') whose `msg` has one line per issue,
--- `rules[3].id: expected string, got nil`, first issue first. When the schema
--- accepts nil or false, test `err` rather than the value.
---@param value any
---@param name? string Root of the error paths (default the schema's name, else 'value')
---@return any value
---@return aegis.schema.Error? err
function Schema:parse(value, name)
  local ctx = ctx_acquire(name or self.name or 'value')
  -- if a refinement raises (a bug), ctx is simply not returned to the pool
  local out = self._run(self, value, ctx, 0)
  local err
  if ctx.n > 0 then err = fail(ctx); out = nil end
  ctx_release(ctx)
  return out, err
end

--- Validates a value like `parse`, and raises the error (code 'schema')
--- instead of returning it.
---@param value any
---@param name? string Root of the error paths
---@return any value The value with defaults filled
function Schema:assert(value, name)
  local out, err = self:parse(value, name)
  if err then error(err, 0) end
  return out
end

-- }======================================================

--[[ {======================================================
** Constructors
** ======================================================= ]]

local function argcheck(cond, n, fname, msg)
  if not cond then error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3) end
end

local function is_schema(v)
  return getmetatable(v) == Schema
end

local function check_opts(opts, n, fname, allowed)
  argcheck(opts == nil or type(opts) == 'table', n, fname, 'table expected, got ' .. type(opts))
  opts = opts or {}
  for k in pairs(opts) do
    argcheck(allowed[k], n, fname, 'unknown option ' .. show(k))
  end
  for k, want in pairs(allowed) do
    local v = opts[k]
    if v ~= nil then
      local ok = want == 'integer' and math_type(v) == 'integer' and v >= 0
          or want == 'number' and type(v) == 'number' and v == v
          or want == type(v)
      argcheck(ok, n, fname, ('option %s must be a %s'):format(show(k),
        want == 'integer' and 'non-negative integer' or want))
    end
  end
  return opts
end

local function new(kind, check, expect, props)
  props.kind, props._check, props._run, props._expect = kind, check, check, expect
  return setmetatable(props, Schema)
end

local function clone(self)
  local t = {}
  for k, v in pairs(self) do t[k] = v end
  return setmetatable(t, Schema)
end

-- Whether this schema can turn an integral float into an integer.
local function converts(sc)
  if sc.kind == 'integer' then return true end
  if sc.kind == 'union' then
    for _, o in ipairs(sc.options) do if converts(o) then return true end end
  end
  return false
end

local FORMATS = {
  ['date-time'] = true, date = true, time = true, duration = true, email = true,
  ['idn-email'] = true, hostname = true, ['idn-hostname'] = true, ipv4 = true, ipv6 = true,
  uri = true, ['uri-reference'] = true, iri = true, ['iri-reference'] = true, uuid = true,
  ['uri-template'] = true, ['json-pointer'] = true, ['relative-json-pointer'] = true, regex = true,
}

--- A string; `min` and `max` count bytes, `pattern` is a Lua pattern that
--- must be found in it (unanchored, like JSON Schema's `pattern`), `format`
--- is a JSON Schema format exported as a hint and not checked.
---@param opts? {min?: integer, max?: integer, pattern?: string, format?: string, description?: string}
---@return aegis.schema.Schema
function M.string(opts)
  opts = check_opts(opts, 1, 'string',
    { min = 'integer', max = 'integer', pattern = 'string', format = 'string', description = 'string' })
  if opts.pattern then
    local ok, err = pcall(string.find, '', opts.pattern)
    argcheck(ok, 1, 'string', 'invalid pattern ' .. quote(opts.pattern) .. ': ' .. tostring(err):gsub('^.-: ', ''))
  end
  argcheck(opts.format == nil or FORMATS[opts.format], 1, 'string', 'unknown format ' .. show(opts.format))
  local plain = not (opts.min or opts.max or opts.pattern)
  return new('string', plain and check_plain_string or check_string, 'string', {
    min = opts.min, max = opts.max, pattern = opts.pattern, format = opts.format,
    description = opts.description,
  })
end

--- A finite number (NaN and infinities are refused), `min` and `max`
--- inclusive; `integer = true` makes it `s.integer`.
---@param opts? {min?: number, max?: number, integer?: boolean, description?: string}
---@return aegis.schema.Schema
function M.number(opts)
  opts = check_opts(opts, 1, 'number', { min = 'number', max = 'number', integer = 'boolean', description = 'string' })
  if opts.integer then
    return M.integer({ min = opts.min, max = opts.max, description = opts.description })
  end
  return new('number', check_number, 'number', { min = opts.min, max = opts.max, description = opts.description })
end

--- An integer: a Lua integer, or a float with an integral value that fits in
--- 64 bits (what JSON decoders give), which `parse` returns as an integer.
---@param opts? {min?: number, max?: number, description?: string}
---@return aegis.schema.Schema
function M.integer(opts)
  opts = check_opts(opts, 1, 'integer', { min = 'number', max = 'number', description = 'string' })
  local plain = not (opts.min or opts.max)
  return new('integer', plain and check_plain_integer or check_integer, 'integer',
    { min = opts.min, max = opts.max, description = opts.description })
end

--- A boolean.
---@return aegis.schema.Schema
function M.boolean()
  return new('boolean', check_boolean, 'boolean', {})
end

--- Exactly this value: a string, number or boolean.
---@param value string|number|boolean
---@return aegis.schema.Schema
function M.literal(value)
  local t = type(value)
  argcheck((t == 'string' or t == 'number' and value == value or t == 'boolean'), 1, 'literal',
    'string, number or boolean expected, got ' .. type_name(value))
  return new('literal', check_literal, show(value), { value = value })
end

--- One of these values (strings, numbers or booleans).
---@param values (string|number|boolean)[]
---@return aegis.schema.Schema
function M.enum(values)
  argcheck(type(values) == 'table' and #values > 0, 1, 'enum', 'non-empty list expected')
  local set, list, shown = {}, {}, {}
  for i, v in ipairs(values) do
    local t = type(v)
    argcheck(t == 'string' or t == 'number' and v == v or t == 'boolean', 1, 'enum',
      'values must be strings, numbers or booleans')
    set[v] = true
    list[i] = v
    shown[i] = show(v)
  end
  return new('enum', check_enum, 'one of ' .. table.concat(shown, ', '), { values = list, _set = set })
end

--- A Lua sequence t[1..n] of items (an empty table is an empty array);
--- `min` and `max` bound the number of items.
---@param item aegis.schema.Schema
---@param opts? {min?: integer, max?: integer, description?: string}
---@return aegis.schema.Schema
function M.array(item, opts)
  argcheck(is_schema(item), 1, 'array', 'schema expected')
  opts = check_opts(opts, 2, 'array', { min = 'integer', max = 'integer', description = 'string' })
  return new('array', check_array, 'array', {
    item = item, min = opts.min, max = opts.max, description = opts.description, _num = converts(item),
  })
end

--- A table of string keys (checked with `key`) to values (checked with `value`).
---@param key aegis.schema.Schema Usually `s.string(...)`
---@param value aegis.schema.Schema
---@return aegis.schema.Schema
function M.record(key, value)
  argcheck(is_schema(key), 1, 'record', 'schema expected')
  argcheck(key.kind == 'string' or key.kind == 'enum' or key.kind == 'literal', 1, 'record',
    'key schema must be a string, enum or literal')
  argcheck(is_schema(value), 2, 'record', 'schema expected')
  return new('record', check_record, 'object', { key = key, value = value, _num = converts(value) })
end

--- The first of these schemas that accepts the value.
---@param options aegis.schema.Schema[]
---@return aegis.schema.Schema
function M.union(options)
  argcheck(type(options) == 'table' and #options > 0, 1, 'union', 'non-empty list of schemas expected')
  local list, seen, expect = {}, {}, {}
  for i, o in ipairs(options) do
    argcheck(is_schema(o), 1, 'union', 'option ' .. i .. ' is not a schema')
    list[i] = o
    if not seen[o._expect] then seen[o._expect] = true; expect[#expect + 1] = o._expect end
  end
  return new('union', check_union, table.concat(expect, ' or '), { options = list })
end

--- Any value but nil.
---@return aegis.schema.Schema
function M.any()
  return new('any', check_any, 'a value', {})
end

local function object_fields(fields, n, fname)
  argcheck(type(fields) == 'table', n, fname, 'table of schemas expected')
  local keys = {}
  for k, f in pairs(fields) do
    argcheck(type(k) == 'string', n, fname, 'field names must be strings')
    argcheck(is_schema(f), n, fname, 'field ' .. quote(k) .. ' is not a schema')
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

local function build_object(index, keys, opts)
  local list, nums = {}, {}
  for i, k in ipairs(keys) do
    list[i] = index[k]
    nums[i] = converts(index[k])
  end
  return new('object', check_object, 'object', {
    fields = index, strict = opts.strict ~= false, name = opts.name, description = opts.description,
    _keys = keys, _field_list = list, _num = nums,
  })
end

--- A table with these fields. Unknown keys are issues when `strict` (the
--- default), and are kept as they are otherwise.
---@param fields table<string, aegis.schema.Schema>
---@param opts? {strict?: boolean, name?: string, description?: string}
---@return aegis.schema.Schema
function M.object(fields, opts)
  local keys = object_fields(fields, 1, 'object')
  opts = check_opts(opts, 2, 'object', { strict = 'boolean', name = 'string', description = 'string' })
  local index = {}
  for _, k in ipairs(keys) do index[k] = fields[k] end
  return build_object(index, keys, opts)
end

--- A new object schema with these fields added (or replaced). Keeps
--- `strict`; takes `name` and `description` only from `opts`.
---@param fields table<string, aegis.schema.Schema>
---@param opts? {strict?: boolean, name?: string, description?: string}
---@return aegis.schema.Schema
function Schema:extend(fields, opts)
  argcheck(self.kind == 'object', 1, 'extend', 'object schema expected')
  object_fields(fields, 2, 'extend')
  opts = check_opts(opts, 3, 'extend', { strict = 'boolean', name = 'string', description = 'string' })
  if opts.strict == nil then opts.strict = self.strict end
  local index, keys = {}, {}
  for k, f in pairs(self.fields) do index[k] = f end
  for k, f in pairs(fields) do index[k] = f end
  for k in pairs(index) do keys[#keys + 1] = k end
  table.sort(keys)
  return build_object(index, keys, opts)
end

-- }======================================================

--[[ {======================================================
** Modifiers: each returns a new schema
** ======================================================= ]]

--- The same schema, also accepting nil (an absent field).
---@return aegis.schema.Schema
function Schema:optional()
  local t = clone(self)
  t._optional = true
  t._run = run
  return t
end

--- The same schema, also accepting `json.null` (JSON's null).
---@return aegis.schema.Schema
function Schema:nullable()
  local t = clone(self)
  t._nullable = true
  t._run = run
  return t
end

-- Marks the arrays inside a value of schema `sc` for the JSON encoder.
local function mark_arrays(sc, v)
  if type(v) ~= 'table' or v == NULL then return v end
  local k = sc.kind
  if k == 'array' then
    v = json.array(v)
    for i = 1, #v do v[i] = mark_arrays(sc.item, v[i]) end
  elseif k == 'object' then
    for name, f in pairs(sc.fields) do
      if v[name] ~= nil then v[name] = mark_arrays(f, v[name]) end
    end
  elseif k == 'record' then
    for key, x in pairs(v) do v[key] = mark_arrays(sc.value, x) end
  elseif k == 'union' then
    for _, o in ipairs(sc.options) do
      local _, err = o:parse(v)
      if not err then return mark_arrays(o, v) end
    end
  end
  return v
end

--- The same schema, with `value` used when the value is nil (a deep copy
--- each time, for tables). The default is checked against the schema now,
--- and its own nested defaults are filled.
---@param value any
---@return aegis.schema.Schema
function Schema:default(value)
  argcheck(value ~= nil, 1, 'default', 'value expected')
  local base = clone(self)
  base._default, base._default_table, base._optional = nil, nil, nil
  local dv, err = base:parse(deep_copy(value), 'default')
  argcheck(not err, 1, 'default', err and err.msg:match('^[^\n]*'))
  local t = clone(self)
  t._default = mark_arrays(self, dv)
  t._default_table = type(dv) == 'table'
  t._run = run
  return t
end

--- The same schema with a check of its own: `fn(value)` runs on values that
--- passed every other check and returns true when the value is valid.
---@param fn fun(value: any): boolean?
---@param msg? string The issue when fn fails (default 'invalid value')
---@return aegis.schema.Schema
function Schema:refine(fn, msg)
  argcheck(type(fn) == 'function', 1, 'refine', 'function expected')
  argcheck(msg == nil or type(msg) == 'string', 2, 'refine', 'string expected')
  local t = clone(self)
  local list = {}
  for i, x in ipairs(self._refines or {}) do list[i] = x end
  list[#list + 1] = fn
  list[#list + 1] = msg or 'invalid value'
  t._refines = list
  t._run = run
  return t
end

--- The same schema with a description (exported to JSON Schema).
---@param text string
---@return aegis.schema.Schema
function Schema:describe(text)
  argcheck(type(text) == 'string', 1, 'describe', 'string expected')
  local t = clone(self)
  t.description = text
  return t
end

-- }======================================================

--[[ {======================================================
** JSON Schema 2020-12
** ======================================================= ]]

M.DIALECT = 'https://json-schema.org/draft/2020-12/schema'

-- Lua character classes that match only ASCII, as ECMA-262 sets.
local CLASS = {
  a = 'A-Za-z', d = '0-9', l = 'a-z', u = 'A-Z', w = '0-9A-Za-z', x = '0-9A-Fa-f',
  s = '\\t\\n\\v\\f\\r ', p = '!-/:-@\\[-`{-~', c = '\\x00-\\x1f\\x7f', g = '!-~',
}

-- Escapes that are valid with and without ECMA-262's u flag.
local function regex_escape(c)
  if c:find('^[%^%$\\%.%*%+%?%(%)%[%]{}|/]$') then return '\\' .. c end
  if c:find('^[ -~]$') then return c end
  return ('\\x%02x'):format(c:byte())
end

local function set_escape(c)
  if c:find('^[%^\\%-%[%]]$') then return '\\' .. c end
  if c:find('^[ -~]$') then return c end
  return ('\\x%02x'):format(c:byte())
end

-- Translates a Lua set body (between [ and ]) starting at i; returns the
-- ECMA set, the index after ']', and whether it is negated.
local function translate_set(p, i)
  local out, neg = {}, false
  if p:sub(i, i) == '^' then neg = true; i = i + 1 end
  local first = true
  while true do
    local c = p:sub(i, i)
    if c == '' then return nil end
    if c == ']' and not first then return '[' .. (neg and '^' or '') .. table.concat(out) .. ']', i + 1, neg end
    first = false
    if c == '%' then
      local e = p:sub(i + 1, i + 1)
      if CLASS[e] then out[#out + 1] = CLASS[e]
      elseif e:find('^%p$') then out[#out + 1] = set_escape(e)
      else return nil end  -- %A inside a set, %z, ...
      i = i + 2
    elseif p:sub(i + 1, i + 1) == '-' and p:sub(i + 2, i + 2) ~= ']' and p:sub(i + 2, i + 2) ~= '' then
      local hi = p:sub(i + 2, i + 2)
      if c:byte() > 127 or hi:byte() > 127 then return nil end
      out[#out + 1] = set_escape(c) .. '-' .. set_escape(hi)
      i = i + 3
    else
      if c:byte() > 127 then return nil end
      out[#out + 1] = set_escape(c)
      i = i + 1
    end
  end
end

--- Translates a Lua pattern to an ECMA-262 regular expression with the same
--- matches, or returns nil when that is not simple: back-references, %b, %f,
--- and single classes that match non-ASCII bytes (., [^...], %A) unless
--- repeated with *, + or - (where bytes and characters agree).
---@param p string Lua pattern
---@return string? regex
function M.regex(p)
  local out, i, n = {}, 1, #p
  if p:sub(1, 1) == '^' then out[1] = '^'; i = 2 end
  while i <= n do
    local c = p:sub(i, i)
    local item, wide
    if c == '$' and i == n then
      out[#out + 1] = '$'
      i = i + 1
      goto continue
    elseif c == '%' then
      local e = p:sub(i + 1, i + 1)
      if CLASS[e] then item = '[' .. CLASS[e] .. ']'
      elseif CLASS[e:lower()] then item = '[^' .. CLASS[e:lower()] .. ']'; wide = true
      elseif e:find('^%p$') then item = regex_escape(e)
      else return nil end  -- %b, %f, %1, %z
      i = i + 2
    elseif c == '[' then
      local set, j, neg = translate_set(p, i + 1)
      if not set then return nil end
      item, wide, i = set, neg, j
    elseif c == '.' then
      item, wide, i = '[\\s\\S]', true, i + 1
    elseif c == '(' or c == ')' then
      out[#out + 1] = c
      i = i + 1
      goto continue
    else
      if c:byte() > 127 then return nil end
      item, i = regex_escape(c), i + 1
    end
    do
      local q = p:sub(i, i)
      if q == '*' or q == '+' or q == '?' or q == '-' then
        if wide and q == '?' then return nil end
        out[#out + 1] = item .. (q == '-' and '*' or q)
        i = i + 1
      else
        if wide then return nil end
        out[#out + 1] = item
      end
    end
    ::continue::
  end
  return table.concat(out)
end

local to_json

local function with_null(node)
  if type(node.type) == 'string' then
    node.type = json.array({ node.type, 'null' })
  elseif node.enum then
    node.enum[#node.enum + 1] = NULL
  elseif node.const ~= nil then
    node.enum = json.array({ node.const, NULL })
    node.const = nil
  else
    return { anyOf = json.array({ node, { type = 'null' } }) }
  end
  return node
end

local export = {
  object = function(sc)
    local props, required = {}, {}
    for _, k in ipairs(sc._keys) do
      local f = sc.fields[k]
      props[k] = to_json(f)
      if not f._optional and f._default == nil then required[#required + 1] = k end
    end
    local node = { type = 'object', properties = props }
    if #required > 0 then node.required = json.array(required) end
    if sc.strict then node.additionalProperties = false end
    return node
  end,
  string = function(sc)
    local node = { type = 'string', minLength = sc.min, maxLength = sc.max, format = sc.format }
    if sc.pattern then
      local re = M.regex(sc.pattern)
      if re then node.pattern = re
      else
        node['$comment'] = 'pattern ' .. quote(sc.pattern) .. ' (Lua) has no simple regex form; checked by aegis only'
      end
    end
    return node
  end,
  number = function(sc) return { type = 'number', minimum = sc.min, maximum = sc.max } end,
  integer = function(sc) return { type = 'integer', minimum = sc.min, maximum = sc.max } end,
  boolean = function() return { type = 'boolean' } end,
  literal = function(sc) return { const = sc.value } end,
  enum = function(sc) return { enum = json.array(table.move(sc.values, 1, #sc.values, 1, {})) } end,
  array = function(sc) return { type = 'array', items = to_json(sc.item), minItems = sc.min, maxItems = sc.max } end,
  record = function(sc)
    local node = { type = 'object', additionalProperties = to_json(sc.value) }
    local keys = to_json(sc.key)
    keys.type = nil
    if next(keys) ~= nil then node.propertyNames = keys end
    return node
  end,
  union = function(sc)
    local list = {}
    for i, o in ipairs(sc.options) do list[i] = to_json(o) end
    return { anyOf = json.array(list) }
  end,
  any = function() return {} end,
}

to_json = function(sc)
  local node = export[sc.kind](sc)
  if sc._refines then
    local msgs = {}
    for i = 2, #sc._refines, 2 do msgs[#msgs + 1] = sc._refines[i] end
    local note = 'also checked by aegis: ' .. table.concat(msgs, '; ')
    node['$comment'] = node['$comment'] and node['$comment'] .. '; ' .. note or note
  end
  if sc._nullable then node = with_null(node) end
  if sc.description then node.description = sc.description end
  if sc._default ~= nil then node.default = deep_copy(sc._default) end
  return node
end

--- This schema as a JSON Schema 2020-12 document: a fresh Lua table with
--- arrays marked by `json.array`, ready for `json.encode`.
---@param title? string Title of the document (default the schema's name)
---@return table
function Schema:json_schema(title)
  local node = to_json(self)
  node['$schema'] = M.DIALECT
  node.title = title or self.name
  return node
end

-- }======================================================

--[[ {======================================================
** Registry and export
** ======================================================= ]]

local registry = {}

--- Registers a data model under a name (a file name: letters, digits, '_',
--- '-', '.'). Registering a name again replaces it, as when a module is
--- reloaded.
---@param name string
---@param schema aegis.schema.Schema
---@return aegis.schema.Schema schema
function M.register(name, schema)
  argcheck(type(name) == 'string' and name:find('^[%w_][%w_%-%.]*$') ~= nil, 1, 'register',
    'name of letters, digits, \'_\', \'-\', \'.\' expected')
  argcheck(is_schema(schema), 2, 'register', 'schema expected')
  registry[name] = schema
  return schema
end

--- Removes a registered data model (for tests).
---@param name string
function M.unregister(name)
  registry[name] = nil
end

--- The registered data models.
---@return table<string, aegis.schema.Schema>
function M.registered()
  local t = {}
  for k, v in pairs(registry) do t[k] = v end
  return t
end

--- The names of the registered data models, sorted.
---@return string[]
function M.names()
  local t = {}
  for k in pairs(registry) do t[#t + 1] = k end
  table.sort(t)
  return t
end

-- Whether anything may be at a path: only a plain "nothing there" from
-- stat (ENOENT) says no, so a path under a regular file counts as present
-- and fails later, on the write, with "not a directory".
local function exists(p)
  local st, err = fs.stat(p)
  return st ~= nil or err ~= nil
end

--- Writes `<dir>/<name>.schema.json` for every registered data model
--- (2-space indent, keys sorted, trailing newline), creating `dir` when it
--- is missing (its parent must exist).
---@param dir string
---@return string[]? files Paths written, sorted by name
---@return string? err
---@return string? code 'io'
function M.export(dir)
  argcheck(type(dir) == 'string' and dir ~= '', 1, 'export', 'directory expected')
  if not exists(dir) then
    local parent = dir:gsub('/+$', ''):match('^(.*)/[^/]*$') or '.'
    if parent == '' then parent = '/' end
    if not exists(parent) then
      return nil, ("schema: export '%s': parent directory '%s' does not exist"):format(dir, parent), 'io'
    end
    -- 0777 less the umask, as mkdir(1) made it before aegis.fs
    if not fs.mkdir(dir, { mode = tonumber('777', 8) }) then
      return nil, ("schema: export '%s': cannot create the directory"):format(dir), 'io'
    end
  end
  local files = {}
  local base = dir:gsub('/+$', '')
  if base == '' then base = '/' end
  for _, name in ipairs(M.names()) do
    local file = (base == '/' and '' or base) .. '/' .. name .. '.schema.json'
    local text = json.encode(registry[name]:json_schema(registry[name].name or name), { indent = 2 })
    local ok, reason = fs.write(file, text .. '\n')
    if not ok then
      return nil, ("schema: export '%s': %s"):format(file, (reason:gsub('^%u', string.lower))), 'io'
    end
    files[#files + 1] = file
  end
  return files
end

-- }======================================================

--- Tells whether a value is a schema.
---@param v any
---@return boolean
function M.is_schema(v)
  return is_schema(v)
end

M.Schema = Schema

return M
