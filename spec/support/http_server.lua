--- Starts spec/support/http_server.py for the aegis.http and aegis.retry
--- specs: test tooling only. The server stops on :stop(), or by itself when
--- this process ends.
local h = require('spec.helpers')
local json = require('aegis.json')
local http = require('aegis.http')

local M = {}
local Server = {}
Server.__index = Server

--- Starts a server; `tls` is a list of {cert, key} pairs, one TLS port each.
function M.start(tls)
  local args = {}
  for _, pair in ipairs(tls or {}) do
    args[#args + 1] = '--tls ' .. h.shell_quote(pair[1]) .. ' ' .. h.shell_quote(pair[2])
  end
  local p = assert(io.popen('exec python3 spec/support/http_server.py ' .. table.concat(args, ' '), 'r'))
  local line = p:read('l')
  assert(line, 'test server did not start')
  local ports = assert(json.decode(line))
  local s = setmetatable({ proc = p, port = ports.port, port2 = ports.port2, tls_ports = ports.tls_ports }, Server)
  s.base = 'http://127.0.0.1:' .. s.port
  s.base2 = 'http://127.0.0.2:' .. s.port2
  return s
end

--- URL of `path` on 127.0.0.1.
function Server:url(path)
  return self.base .. path
end

--- Requests logged since the last clear (each {method, path, host, headers, proxied, inflight}).
function Server:log()
  local res = assert(http.request({ url = self.base .. '/_log' }))
  return assert(json.decode(res.body))
end

--- Forgets the logged requests.
function Server:clear()
  assert(http.request({ url = self.base .. '/_clear' }))
end

--- Logged requests for `path`.
function Server:hits(path)
  local n = {}
  for _, e in ipairs(self:log()) do
    if e.path == path then n[#n + 1] = e end
  end
  return n
end

function Server:stop()
  http.request({ url = self.base .. '/_quit' })
  self.proc:close()
end

--- base64url of `s`, without padding (for /raw?c=...).
function M.b64url(s)
  local abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local k = b == nil and 2 or c == nil and 3 or 4
    for j = 1, k do
      local v = (n >> (6 * (4 - j))) & 63
      out[#out + 1] = abc:sub(v + 1, v + 1)
    end
  end
  return table.concat(out)
end

return M
