--- Shared pieces of the provider emulator: token counting, deterministic
--- text, prefix caches, SSE framing and JSON helpers. See docs/emulator.md.
local hash = require('aegis.hash')
local json = require('aegis.json')

local M = {}

M.null = json.null
M.array = json.array

--- Counts tokens the emulator's way: ceil(bytes / 4).
---@param s string
---@return integer
function M.tokens(s)
  return (#s + 3) // 4
end

--- Encodes a value as compact JSON (keys sorted, so replies are byte-stable).
---@param v any
---@return string
function M.encode(v)
  return json.encode(v)
end

--- Decodes JSON text; nil and a message when it is not JSON.
---@param s string
---@return any? value
---@return string? err
function M.decode(s)
  return json.decode(s)
end

--- Tells whether `v` is a decoded JSON array.
---@param v any
---@return boolean
function M.is_array(v)
  return type(v) == 'table' and json.is_array(v)
end

local WORDS = {
  'the', 'module', 'returns', 'a', 'value', 'when', 'each', 'function', 'reads', 'its', 'input',
  'and', 'writes', 'one', 'line', 'per', 'item', 'so', 'tests', 'can', 'check', 'every', 'case',
  'with', 'small', 'fixed', 'data', 'from', 'this', 'file', 'then', 'it', 'closes', 'handle',
  'after', 'use', 'type', 'names', 'stay', 'short', 'clear', 'code', 'runs', 'fast', 'on',
  'both', 'paths', 'while', 'errors', 'carry', 'their', 'cause', 'back', 'to', 'caller', 'who',
  'decides', 'what', 'next', 'step', 'should', 'be', 'done', 'here',
}

--- Gets the deterministic reply for a request: words chosen from the
--- SHA-256 of `seed`, 8 to 24 of them, at most `max_tokens` (one word is one
--- output token). Returns the pieces (the first word, then " word"s).
---@param seed string Canonical request text
---@param max_tokens? integer
---@return string[] pieces
---@return boolean truncated Whether max_tokens cut the reply short
function M.reply(seed, max_tokens)
  local digest = hash.sha256_raw(seed)
  local n = 8 + digest:byte(1) % 17
  local truncated = false
  if max_tokens and max_tokens < n then
    n, truncated = math.max(max_tokens, 0), true
  end
  local pieces, block, i = {}, digest, 2
  for k = 1, n do
    if i > #block then
      block = hash.sha256_raw(block)
      i = 1
    end
    local w = WORDS[block:byte(i) % #WORDS + 1]
    i = i + 1
    if k == 1 then w = w:sub(1, 1):upper() .. w:sub(2) end
    pieces[k] = (k == 1 and '' or ' ') .. w
  end
  if n > 0 and not truncated then pieces[n] = pieces[n] .. '.' end
  return pieces, truncated
end

--- Splits a scripted text into output tokens: runs of spaces followed by
--- non-spaces (so concatenating them gives the text back).
---@param text string
---@return string[]
function M.split(text)
  local pieces = {}
  for p in text:gmatch('%s*%S+') do pieces[#pieces + 1] = p end
  local rest = text:match('%s+$')
  if rest then
    if #pieces == 0 then pieces[1] = rest else pieces[#pieces] = pieces[#pieces] .. rest end
  end
  return pieces
end

--- Length of the longest common prefix of two strings, in bytes.
---@param a string
---@param b string
---@return integer
function M.common_prefix(a, b)
  local lo, hi = 0, math.min(#a, #b)
  if a:sub(1, hi) == b:sub(1, hi) then return hi end
  -- invariant: a[1..lo] == b[1..lo], a[1..hi] ~= b[1..hi]
  while hi - lo > 1 do
    local mid = (lo + hi) // 2
    if a:sub(1, mid) == b:sub(1, mid) then lo = mid else hi = mid end
  end
  return lo
end

--- A cache of recently seen prompts per namespace, for the automatic
--- prefix caches (OpenAI, vLLM, SGLang): `lookup` gives the longest prefix
--- shared with a live entry, in bytes; `add` remembers a prompt.
---@class aegis.emulator.PrefixCache
---@field entries table<string, {text: string, expires: number}[]>
---@field ttl number? Seconds an entry lives after its last use (nil: forever)
---@field keep integer Entries kept per namespace (oldest dropped)
local PrefixCache = {}
PrefixCache.__index = PrefixCache

--- Creates a prefix cache.
---@param opts? {ttl?: number, keep?: integer}
---@return aegis.emulator.PrefixCache
function M.prefix_cache(opts)
  opts = opts or {}
  return setmetatable({ entries = {}, ttl = opts.ttl, keep = opts.keep or 64 }, PrefixCache)
end

--- Longest prefix of `text` shared with a live entry of `ns`, in bytes;
--- the entry used is refreshed.
---@param ns string
---@param text string
---@param now number
---@return integer
function PrefixCache:lookup(ns, text, now)
  local list = self.entries[ns]
  if not list then return 0 end
  local best, which = 0, nil
  for _, e in ipairs(list) do
    if not e.expires or e.expires > now then
      local n = M.common_prefix(e.text, text)
      if n > best then best, which = n, e end
    end
  end
  if which and which.ttl then which.expires = now + which.ttl end
  return best
end

--- Remembers `text` in `ns`, for `ttl` seconds after its last use
--- (default: the cache's).
---@param ns string
---@param text string
---@param now number
---@param ttl? number
function PrefixCache:add(ns, text, now, ttl)
  local list = self.entries[ns] or {}
  self.entries[ns] = list
  for i, e in ipairs(list) do
    if e.text == text then
      table.remove(list, i)
      break
    end
  end
  ttl = ttl or self.ttl
  list[#list + 1] = { text = text, ttl = ttl, expires = ttl and now + ttl }
  while #list > self.keep do table.remove(list, 1) end
end

--- Forgets everything.
function PrefixCache:clear()
  self.entries = {}
end

--- Frames one Server-Sent Event: `event: NAME` (when given) and `data: ...`.
---@param data string
---@param event? string
---@return string
function M.sse(data, event)
  if event then return 'event: ' .. event .. '\ndata: ' .. data .. '\n\n' end
  return 'data: ' .. data .. '\n\n'
end

--- A short id derived from a digest: `prefix` followed by 24 hex digits.
---@param prefix string
---@param digest string 64 hex digits
---@return string
function M.id(prefix, digest)
  return prefix .. digest:sub(1, 24)
end

--- Fixed `created` time of replies (2025-01-01T00:00:00Z), so that the same
--- request gives the same bytes.
M.CREATED = 1735689600

--- Text of an OpenAI-style message content: a string, or the `text` of its
--- parts (other parts as canonical JSON).
---@param content any
---@return string
function M.content_text(content)
  if type(content) == 'string' then return content end
  if type(content) ~= 'table' then return '' end
  local out = {}
  for _, part in ipairs(content) do
    if type(part) == 'table' and type(part.text) == 'string' then
      out[#out + 1] = part.text
    else
      out[#out + 1] = json.encode(part)
    end
  end
  return table.concat(out)
end

return M
