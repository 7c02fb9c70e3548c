-- bench/http/client.lua: the aegis side of bench/http/run.sh, run inside
-- aegis-run (`aegis-run test bench/http/client.lua`, the one way to reach
-- aegis.http outside the sandbox).  Reads BENCH_URL, BENCH_MODE (seq|all),
-- BENCH_N, BENCH_BODY, BENCH_AUTH (an `authorization: ...` header line, or
-- unset); writes the wall and CPU seconds the N requests took
-- to BENCH_OUT.
local http = require('aegis.http')
local clock = require('aegis.clock')

local url, mode = os.getenv('BENCH_URL'), os.getenv('BENCH_MODE')
local n, body = tonumber(os.getenv('BENCH_N')), os.getenv('BENCH_BODY')
local req = { method = 'POST', url = url, body = body, headers = { ['content-type'] = 'application/json' } }
local auth = os.getenv('BENCH_AUTH')
if auth and auth ~= '' then
  local k, v = auth:match('^([^:]+):%s*(.*)$')
  req.headers[k:lower()] = v
end

assert(http.request(req))  -- warm: libcurl loaded, connection open
local t0, c0 = clock.monotonic(), os.clock()
if mode == 'seq' then
  for _ = 1, n do
    local res = assert(http.request(req))
    assert(res.status == 200)
  end
else
  local reqs = {}
  for i = 1, n do reqs[i] = req end
  for _, res in ipairs(http.all(reqs, { concurrency = 64 })) do assert(res.status == 200, res.err) end
end
local f = assert(io.open(os.getenv('BENCH_OUT'), 'w'))
f:write(('%.6f %.6f\n'):format(clock.monotonic() - t0, os.clock() - c0))
f:close()
