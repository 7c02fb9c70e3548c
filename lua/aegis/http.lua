--- HTTP requests over libcurl: one at a time or many at once through one
--- curl multi handle, with Server-Sent Events parsed in C and handed to a
--- callback. TLS verification is always on; redirects are off unless asked
--- for, and then credentials never follow a change of host. Failures return
--- `nil, msg, code` (codes: `timeout`, `conn`, `tls`, `too_large`,
--- `aborted`, `truncated`, `redirect`, `proto`, `nomem`, `unsupported`);
--- misuse raises. Messages never contain header values, and URLs in them
--- lose their query values and user info. See docs/http.md.
local core = require('aegis.core.http')

local M = {}

---@class aegis.http.Timeout
---@field connect? number Seconds to connect, DNS and TLS included (default 5)
---@field total? number Seconds for the whole transfer (default 600)
---@field low_speed_bytes? integer Abort when slower than this many bytes/s ... (default 1)
---@field low_speed_seconds? integer ... for this many seconds (default 60)

---@class aegis.http.Request
---@field method? string 'GET' (default), 'POST', ... (upper case)
---@field url string http:// or https://
---@field headers? table<string, string|number> Request headers, name -> value
---@field body? string Request body
---@field timeout? aegis.http.Timeout
---@field max_bytes? integer Body cap in bytes (default 32 MiB): past it, code 'too_large'
---@field on_event? fun(ev: aegis.http.Event): boolean? Per SSE event of a 2xx body; return false to stop
---@field keep_body? boolean With on_event: keep the raw body too (default false)
---@field follow_redirects? boolean|integer Follow up to 5 (or this many) redirects (default false)
---@field ca_file? string PEM file of CA certificates to trust instead of the system's

---@class aegis.http.Event
---@field event string Event type ('message' when the stream names none)
---@field data string Data lines joined with "\n"
---@field id? string Last event id seen, if any
---@field retry? integer Last retry: value, if any

---@class aegis.http.Response
---@field status integer HTTP status
---@field headers table<string, string> Lower-case names; repeated fields joined with ', '
---@field body string Body ('' for streams unless keep_body)
---@field elapsed number Seconds, redirects included
---@field events? integer Events dispatched (streams only)
---@field stopped? true The callback stopped the stream
---@field redirects? integer Redirects followed

local DEFAULTS = { connect = 5, total = 600, low_speed_bytes = 1, low_speed_seconds = 60 }
local FIELDS = {
  method = true, url = true, headers = true, body = true, timeout = true, max_bytes = true,
  on_event = true, keep_body = true, follow_redirects = true, ca_file = true,
}
local TOKEN = "^[!#$%%&'*+.^_`|~%w-]+$"

-- Raises a bad-argument error naming the public function, at its caller.
local function bad(fname, arg, fmt, ...)
  error(("bad argument #%d to '%s' (%s)"):format(arg, fname, fmt:format(...)), 4)
end

local function seconds(v, what, fname, arg, where)
  if type(v) ~= 'number' or v <= 0 or v ~= v or v == math.huge then
    bad(fname, arg, '%stimeout.%s must be a positive number', where, what)
  end
  return v
end

-- Checks one request and gives the shape aegis.core.http reads.
local function normalise(req, fname, arg, where)
  if type(req) ~= 'table' then bad(fname, arg, '%stable expected, got %s', where, type(req)) end
  for k in pairs(req) do
    if not FIELDS[k] then bad(fname, arg, "%sunknown field '%s'", where, tostring(k)) end
  end
  local method = req.method or 'GET'
  if type(method) ~= 'string' or not method:match('^[A-Z]+$') then
    bad(fname, arg, '%smethod must be an upper-case word', where)
  end
  local url = req.url
  if type(url) ~= 'string' then bad(fname, arg, '%surl must be a string', where) end
  if not url:match('^[hH][tT][tT][pP][sS]?://[^/?#]+') or url:find('[%c%s]') then
    bad(fname, arg, '%surl must be an http or https URL without spaces', where)
  end
  local lines = {}
  if req.headers ~= nil then
    if type(req.headers) ~= 'table' then bad(fname, arg, '%sheaders must be a table', where) end
    for name, value in pairs(req.headers) do
      if type(name) ~= 'string' or not name:match(TOKEN) then
        bad(fname, arg, '%sheader names must be HTTP tokens', where)
      end
      if type(value) == 'number' then value = tostring(value) end
      -- the value is never shown: it may be a key
      if type(value) ~= 'string' then bad(fname, arg, "%sheader '%s' must be a string", where, name) end
      if value:find('[\r\n%z]') then bad(fname, arg, "%sheader '%s' has a line break or NUL", where, name) end
      -- curl reads "Name:" as "remove Name"; "Name;" sends it empty
      lines[#lines + 1] = value == '' and (name .. ';') or (name .. ': ' .. value)
    end
    table.sort(lines)
  end
  if req.body ~= nil and type(req.body) ~= 'string' then bad(fname, arg, '%sbody must be a string', where) end
  local t = req.timeout or DEFAULTS
  if type(t) ~= 'table' then bad(fname, arg, '%stimeout must be a table', where) end
  for k in pairs(t) do
    if DEFAULTS[k] == nil then bad(fname, arg, "%sunknown timeout field '%s'", where, tostring(k)) end
  end
  local connect = seconds(t.connect or DEFAULTS.connect, 'connect', fname, arg, where)
  local total = seconds(t.total or DEFAULTS.total, 'total', fname, arg, where)
  local lsb = t.low_speed_bytes or DEFAULTS.low_speed_bytes
  local lss = t.low_speed_seconds or DEFAULTS.low_speed_seconds
  if math.type(lsb) ~= 'integer' or lsb < 0 then
    bad(fname, arg, '%stimeout.low_speed_bytes must be a non-negative integer', where)
  end
  if math.type(lss) ~= 'integer' or lss < 1 then
    bad(fname, arg, '%stimeout.low_speed_seconds must be a positive integer', where)
  end
  local max_bytes = req.max_bytes or 32 * 1024 * 1024
  if math.type(max_bytes) ~= 'integer' or max_bytes < 0 then
    bad(fname, arg, '%smax_bytes must be a non-negative integer', where)
  end
  if req.on_event ~= nil and type(req.on_event) ~= 'function' then
    bad(fname, arg, '%son_event must be a function', where)
  end
  if req.keep_body ~= nil and type(req.keep_body) ~= 'boolean' then
    bad(fname, arg, '%skeep_body must be a boolean', where)
  end
  local follow = req.follow_redirects or false
  if follow == true then follow = 5 elseif follow == false then follow = 0 end
  if math.type(follow) ~= 'integer' or follow < 0 then
    bad(fname, arg, '%sfollow_redirects must be a boolean or a non-negative integer', where)
  end
  if req.ca_file ~= nil and type(req.ca_file) ~= 'string' then
    bad(fname, arg, '%sca_file must be a string', where)
  end
  return {
    method = method, url = url, headers = lines, body = req.body, ca_file = req.ca_file,
    connect_ms = math.max(1, math.floor(connect * 1000 + 0.5)),
    total_ms = math.max(1, math.floor(total * 1000 + 0.5)),
    low_speed_bytes = lsb, low_speed_s = lss, max_bytes = max_bytes,
    max_redirects = follow, on_event = req.on_event, keep_body = req.keep_body,
  }
end

--- Makes one request and waits for its response. A response with any
--- status (4xx and 5xx too) is a result; only transport failures return
--- `nil, msg, code`. With `on_event`, a 2xx body is parsed as Server-Sent
--- Events and `on_event(ev)` runs once per event; an error in it aborts the
--- transfer (code `aborted`); returning `false` stops it early (`res.stopped`).
--- A stream that ends in the middle of an event fails with code `truncated`.
--- Must not be called from inside an `on_event` callback (raises).
---@param req aegis.http.Request
---@return aegis.http.Response? res
---@return string? err Message: "http: <METHOD> '<url>': <why>"
---@return string? code 'timeout', 'conn', 'tls', 'too_large', 'aborted', 'truncated', 'redirect', 'proto', ...
function M.request(req)
  return core.request(normalise(req, 'request', 1, ''))
end

--- Makes many requests at once through one curl multi handle, at most
--- `opts.concurrency` (default 16) in flight, and waits for all of them.
--- Each result is a response or `{err = msg, code = code}`, in input order.
---@param reqs aegis.http.Request[]
---@param opts? {concurrency?: integer}
---@return (aegis.http.Response|{err: string, code: string})[] results
function M.all(reqs, opts)
  if type(reqs) ~= 'table' then bad('all', 1, 'table expected, got %s', type(reqs)) end
  opts = opts or {}
  if type(opts) ~= 'table' then bad('all', 2, 'table expected, got %s', type(opts)) end
  local conc = opts.concurrency or 16
  if math.type(conc) ~= 'integer' or conc < 1 then
    bad('all', 2, 'concurrency must be a positive integer')
  end
  local list = {}
  for i = 1, #reqs do list[i] = normalise(reqs[i], 'all', 1, ('request %d: '):format(i)) end
  return core.all(list, conc)
end

--- Closes every connection kept for reuse. Optional: connections are also
--- closed when the state closes, and the next request opens new ones.
function M.close()
  core.close()
end

--- Blocks for `s` seconds (nanosleep, resumed after signals).
---@param s number
function M.sleep(s)
  core.sleep(s)
end

--- Gets `url` as messages show it: without user info, fragment or query
--- values (a query shows as `?...`).
---@param url string
---@return string
function M.redact(url)
  local s = core.redact(url)
  return s
end

return M
