--- JSON: a deterministic encoder (RFC 8785 canonical form, or indented for
--- people) and a one-pass decoder in C, with lua-cjson for what it declines
--- (errors, lone surrogates, very deep nesting) so messages stay cjson's.
---
--- Conventions (docs/core.md): `json.null` is JSON null; a table whose keys
--- are exactly 1..n (n >= 1), or one marked with `json.array`, is an array;
--- any other table of string keys is an object, and an empty unmarked table
--- is `{}`. Decoding marks every array, empty ones included, so a decoded
--- value encodes back to the same JSON.
local core = require('aegis.core.json')
local cjson = require('cjson')

local M = {}

-- A private cjson instance: settings made elsewhere on the shared module
-- do not leak in. NaN, Infinity and hex numbers are not JSON.
local decoder = cjson.new()
decoder.decode_invalid_numbers(false)
decoder.decode_max_depth(1000)

--- JSON null (cjson's null light userdata, so values from cjson agree).
M.null = cjson.null

local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

--- Encodes a value as its RFC 8785 (JCS) canonical JSON text: object keys
--- sorted by UTF-16 code units, no whitespace, numbers as ECMAScript writes
--- them (integers exactly), minimal string escaping. Raises
--- `json: cannot encode ... at <path>` for NaN, infinities, invalid UTF-8,
--- functions and other non-JSON values, mixed or sparse keys, cycles and
--- nesting deeper than 1000; the path names Lua indices, as in `$.a[2]`.
---@param v any A JSON-able value
---@return string json
function M.canonical(v)
  local s = core.canonical(v)
  return s
end

--- Encodes a value as JSON: the canonical form, or with `opts.indent`
--- spaces of indentation per level (keys still sorted) for people to read;
--- `opts.level` says the value sits that many levels down in a document
--- indented so (its lines after the first are indented for that depth), to
--- be put there as it is. Raises on values that are not JSON, as
--- `canonical` does.
---@param v any A JSON-able value
---@param opts? {indent?: integer, level?: integer} Spaces per level, 0..16 (0: compact); level 0..1000 (default 0)
---@return string json
function M.encode(v, opts)
  if opts ~= nil and type(opts) ~= 'table' then
    argerror(2, 'encode', 'table expected, got ' .. type(opts))
  end
  local indent = opts and opts.indent or 0
  if math.type(indent) ~= 'integer' or indent < 0 or indent > 16 then
    argerror(2, 'encode', 'indent must be an integer in 0..16')
  end
  local level = opts and opts.level or 0
  if math.type(level) ~= 'integer' or level < 0 or level > 1000 then
    argerror(2, 'encode', 'level must be an integer in 0..1000')
  end
  local s = core.encode(v, indent, level)
  return s
end

--- An encoder with fixed options: `json.encoder(opts)(v)` is
--- `json.encode(v, opts)`, the options checked once (for encoding many
--- values, each on its own).
---@param opts? {indent?: integer, level?: integer} As for `encode`
---@return fun(v: any): string
function M.encoder(opts)
  M.encode(M.null, opts)  -- (checks them)
  local indent, level = opts and opts.indent or 0, opts and opts.level or 0
  local enc = core.encode
  return function(v) return (enc(v, indent, level)) end
end

--- Decodes JSON text. Numbers that are integral and within +-2^53 become
--- Lua integers, others floats; arrays (empty ones too) come back marked
--- as arrays; null is `json.null`. Duplicate keys keep the last value.
---@param s string JSON text (UTF-8)
---@return any? value
---@return string? err `json: <what> at character <n>` when s is not JSON
---@return string? code 'parse'
function M.decode(s)
  if type(s) ~= 'string' then argerror(1, 'decode', 'string expected, got ' .. type(s)) end
  -- The C decoder takes strict JSON in one pass; on anything it is not
  -- sure of (errors included) it declines and the path below, around
  -- cjson, gives the value or the error.
  local fast, value = core.decode(s)
  if fast then return value end
  local text, err, code = core.prepare(s)
  if not text then return nil, err, code end
  local ok, v = pcall(decoder.decode, text)
  if not ok then
    -- running out of memory is not a parse error: let it propagate
    if v == 'not enough memory' then error(v, 0) end
    if text ~= s then -- the rewritten text shifts positions: ask about the original
      local ok2, msg = pcall(decoder.decode, s)
      if msg == 'not enough memory' then error(msg, 0) end
      if not ok2 then v = msg end
    end
    return nil, 'json: ' .. tostring(v):gsub('^%u', string.lower), 'parse'
  end
  return core.finish(v)
end

--- Marks a table as a JSON array (so an empty one encodes as `[]`) and
--- returns it. The mark is a shared metatable.
---@generic T: table
---@param t T
---@return T t
function M.array(t)
  if type(t) ~= 'table' then argerror(1, 'array', 'table expected, got ' .. type(t)) end
  local r = core.array(t)
  return r
end

--- Tells whether `encode` writes a value as an array: a table marked with
--- `json.array`, or one whose keys are exactly 1..n with n >= 1.
---@param v any
---@return boolean
function M.is_array(v)
  local r = core.is_array(v)
  return r
end

return M
