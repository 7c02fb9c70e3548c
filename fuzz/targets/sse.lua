--- Fuzz target `sse`: the Server-Sent Events parser (runtime/ag_http.c
--- ag_sse_*, through aegis.core.http.sse_parse, the same feed a streaming
--- provider response goes through).
---
--- Input: byte 1 seeds where the stream is cut into chunks; the rest is the
--- stream. The events and the end state ('ok' or 'pending') must be the same
--- whole, cut into chunks, and byte by byte, and equal to what a reference
--- model of WHATWG HTML "event stream interpretation" written here gives
--- (bytes as they are: no UTF-8 decoding). A callback that stops the stream
--- or raises must end the parse the documented way.
local http = require('aegis.core.http')

-- {------------------------------------------------------ reference model
local function reference(stream)
  local events = {}
  local data, event, id, retry, infield = '', '', '', nil, false
  -- KNOWN deviation (fuzz/regressions/sse/bom-only): ag_sse strips the BOM
  -- when the first line ends, so a stream of a BOM and nothing else stays
  -- a partial line, 'pending'; WHATWG decodes it away first ('ok').
  local bom_only = stream == '\xEF\xBB\xBF'
  if stream:sub(1, 3) == '\xEF\xBB\xBF' then stream = stream:sub(4) end
  local function dispatch()
    infield = false
    if data == '' then event = '' return end
    events[#events + 1] = { event = event ~= '' and event or 'message', data = data:sub(1, -2),
                            id = id ~= '' and id or nil, retry = retry }
    data, event = '', ''
  end
  local function field(line)
    if line == '' then return dispatch() end
    if line:sub(1, 1) == ':' then return end              -- a comment
    local c = line:find(':', 1, true)
    local name, value = line, ''
    if c then name, value = line:sub(1, c - 1), line:sub(c + 1) end
    if value:sub(1, 1) == ' ' then value = value:sub(2) end
    infield = true
    if name == 'data' then data = data .. value .. '\n'
    elseif name == 'event' then event = value
    elseif name == 'id' then
      if not value:find('\0', 1, true) then id = value end
    elseif name == 'retry' then
      -- only ASCII digits count; the parser keeps at most 18 of them
      if value:find('^%d+$') and #value <= 18 then retry = math.tointeger(tonumber(value)) end
    end
  end
  local pos = 1
  while true do
    local j = stream:find('[\r\n]', pos)
    if not j then break end
    field(stream:sub(pos, j - 1))
    if stream:sub(j, j + 1) == '\r\n' then j = j + 1 end
    pos = j + 1
  end
  if bom_only then return events, 'pending' end
  return events, (pos <= #stream or infield) and 'pending' or 'ok'
end
-- }------------------------------------------------------

local function parse(chunks, stop_after)
  local events = {}
  local status, err, code = http.sse_parse(chunks, function(ev)
    events[#events + 1] = ev
    if stop_after and #events >= stop_after then return false end
  end)
  return events, status, err, code
end

local function same(a, b, what)
  assert(#a == #b, ('%s: %d events, expected %d'):format(what, #a, #b))
  for i = 1, #a do
    local x, y = a[i], b[i]
    for _, k in ipairs({ 'event', 'data', 'id', 'retry' }) do
      assert(x[k] == y[k], ('%s: event %d field %s: %q, expected %q'):format(what, i, k,
        tostring(x[k]), tostring(y[k])))
    end
  end
end

-- Cuts s at points drawn from a small LCG seeded by `seed`.
local function cut(s, seed)
  local chunks, pos, x = {}, 1, seed * 2654435761 % 4294967296 + 1
  while pos <= #s do
    x = (x * 1103515245 + 12345) % 2147483648
    local n = x % 17 == 0 and 0 or x % 9 + 1       -- empty chunks too
    chunks[#chunks + 1] = s:sub(pos, pos + n - 1)
    pos = pos + n
  end
  return chunks
end

return function(data)
  local seed = data:byte(1) or 0
  local stream = data:sub(2)
  local want, want_status = reference(stream)
  local got, status = parse({ stream })
  same(got, want, 'whole')
  assert(status == want_status, ('whole: status %s, expected %s'):format(tostring(status), want_status))
  local parts = cut(stream, seed)
  got, status = parse(parts)
  same(got, want, 'chunked')
  assert(status == want_status, 'chunked: status')
  if #stream <= 1024 then
    local bytes = {}
    for i = 1, #stream do bytes[i] = stream:sub(i, i) end
    got, status = parse(bytes)
    same(got, want, 'byte by byte')
    assert(status == want_status, 'byte by byte: status')
  end
  if #want > 0 then                                  -- a callback that stops
    local k = seed % #want + 1
    got, status = parse(parts, k)
    assert(status == 'stopped' and #got == k, 'stop')
    local ok, err, code = http.sse_parse(parts, function() error('boom', 0) end)
    assert(ok == nil and code == 'aborted' and err == 'http: sse: callback: boom', 'abort')
  end
end
