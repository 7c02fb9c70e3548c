local h = require('spec.helpers')
local support = require('spec.support.http_server')
local http = require('aegis.http')
local core = require('aegis.core.http')
local json = require('aegis.json')

-- Every event of `chunks` fed to the C parser, and how the input ended.
local function parse(chunks)
  local evs = {}
  local status, err, code = core.sse_parse(chunks, function(ev) evs[#evs + 1] = ev end)
  return evs, status, err, code
end

describe('aegis.http SSE parser (C)', function()
  it('joins multi-line data with \\n and defaults the event type to message', function()
    local evs, st = parse({ 'data: a\ndata: b\n\n' })
    assert.same({ { event = 'message', data = 'a\nb' } }, evs)
    assert.equal('ok', st)
  end)

  it('reads LF, CRLF and CR line ends, also split across chunks', function()
    local evs = parse({ 'data: 1\r\n\r\n', 'data: 2\r\rdata: 3\n\n', 'data: 4\r', '\n\r', '\n' })
    assert.same({ '1', '2', '3', '4' }, { evs[1].data, evs[2].data, evs[3].data, evs[4].data })
    assert.equal(4, #evs)
  end)

  it('ignores comments and unknown fields, and names events', function()
    local evs = parse({ ': ping\n\nevent: delta\nfoo: bar\ndata: {"x":1}\n\n: keep-alive\n\n' })
    assert.same({ { event = 'delta', data = '{"x":1}' } }, evs)
  end)

  it('keeps the last id across events, and ignores an id with NUL', function()
    local evs = parse({ 'id: 7\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid\ndata: d\n\n' })
    assert.same({ '7', '7', '7' }, { evs[1].id, evs[2].id, evs[3].id })
    assert.is_nil(evs[4].id)  -- "id" alone resets it to empty
  end)

  it('strips one space after the colon, a BOM at the start, and reads retry', function()
    local evs = parse({ '\239\187\191data:x\n\ndata:  y\nretry: 2500\n\nretry: 1x\ndata\n\n' })
    assert.same({ 'x', ' y', '' }, { evs[1].data, evs[2].data, evs[3].data })
    assert.equal(2500, evs[2].retry)
    assert.equal(2500, evs[3].retry)  -- "1x" is not a number: ignored
  end)

  it('strips a BOM only at the very start', function()
    local evs = parse({ 'data: a\n\n\239\187\191data: b\n\n' })
    assert.equal(1, #evs)  -- the second line's field is "\239\187\191data": unknown
  end)

  it('gives the same events however the bytes are split', function()
    math.randomseed(7)
    local ends = { '\n', '\r', '\r\n' }
    local parts = {}
    for i = 1, 60 do
      local e = ends[math.random(3)]
      local kind = math.random(6)
      if kind == 1 then parts[#parts + 1] = ': comment ' .. i .. e
      elseif kind == 2 then parts[#parts + 1] = 'event: e' .. i .. e
      elseif kind == 3 then parts[#parts + 1] = 'id: ' .. i .. e
      elseif kind == 4 then parts[#parts + 1] = e
      else parts[#parts + 1] = 'data:' .. (' '):rep(math.random(0, 2)) .. 'v' .. i .. e end
    end
    parts[#parts + 1] = '\n\n'
    local text = table.concat(parts)
    local whole = parse({ text })
    assert.is_true(#whole > 3)
    for cut = 1, #text - 1 do
      assert.same(whole, (parse({ text:sub(1, cut), text:sub(cut + 1) })), 'cut at ' .. cut)
    end
    local bytes = {}
    for i = 1, #text do bytes[i] = text:sub(i, i) end
    assert.same(whole, (parse(bytes)))
  end)

  it('dispatches nothing for an event without data', function()
    local evs, st = parse({ 'event: x\n\n\n\n' })
    assert.same({}, evs)
    assert.equal('ok', st)
  end)

  it('discards a final event without its blank line and says the input ended inside one', function()
    local evs, st = parse({ 'data: a\n\ndata: b\n' })
    assert.same({ 'a' }, { evs[1].data })
    assert.equal(1, #evs)
    assert.equal('pending', st)
    assert.equal('pending', select(2, parse({ 'data: a\n\ndata: b' })))
    assert.equal('pending', select(2, parse({ 'data: a\n\n: partial comm' })))
  end)

  it('stops when the callback returns false, and aborts when it raises', function()
    local n = 0
    assert.equal('stopped', core.sse_parse({ 'data: 1\n\ndata: 2\n\n' }, function() n = n + 1; return false end))
    assert.equal(1, n)
    local ok, err, code = core.sse_parse({ 'data: 1\n\n' }, function() error('boom', 0) end)
    assert.is_nil(ok)
    assert.equal('http: sse: callback: boom', err)
    assert.equal('aborted', code)
    local obj = setmetatable({}, { __tostring = function() return 'obj' end })
    err = select(2, core.sse_parse({ 'data: 1\n\n' }, function() error(obj) end))
    assert.equal('http: sse: callback: obj', err)
    err = select(2, core.sse_parse({ 'data: 1\n\n' }, function() error({ msg = 'table msg' }) end))
    assert.equal('http: sse: callback: table msg', err)
  end)
end)

describe('aegis.http', function()
  local srv
  setup(function() srv = support.start() end)
  teardown(function() srv:stop() end)

  describe('requests', function()
    it('sends method, headers and body and returns status, lower-case headers, body and elapsed', function()
      local res = assert(http.request({ method = 'POST', url = srv:url('/echo?a=1'), body = 'hello\0world',
        headers = { ['X-Test'] = 'yes', ['Content-Type'] = 'text/plain', ['X-Empty'] = '', ['X-Num'] = 42 } }))
      assert.equal(200, res.status)
      assert.equal('application/json', res.headers['content-type'])
      local echo = json.decode(res.body)
      assert.equal('POST', echo.method)
      assert.equal('hello\0world', echo.body)
      assert.equal('yes', echo.headers['x-test'])
      assert.equal('', echo.headers['x-empty'])
      assert.equal('42', echo.headers['x-num'])
      assert.equal('text/plain', echo.headers['content-type'])
      assert.is_nil(echo.headers['expect'])
      assert.is_true(res.elapsed > 0)
      assert.is_nil(res.events)
    end)

    it('makes no content type up for bodies, and supports PUT, DELETE and HEAD', function()
      local echo = json.decode(assert(http.request({ method = 'PUT', url = srv:url('/echo'), body = 'x' })).body)
      assert.equal('PUT', echo.method)
      assert.is_nil(echo.headers['content-type'])
      echo = json.decode(assert(http.request({ method = 'DELETE', url = srv:url('/echo') })).body)
      assert.equal('DELETE', echo.method)
      local res = assert(http.request({ method = 'HEAD', url = srv:url('/echo') }))
      assert.equal(200, res.status)
      assert.equal('', res.body)
    end)

    it('returns 4xx and 5xx as responses, repeated header fields joined', function()
      local res = assert(http.request({ url = srv:url('/status/503?h=x-a:1&h=x-a:2&h=retry-after:3&body=down') }))
      assert.equal(503, res.status)
      assert.equal('1, 2', res.headers['x-a'])
      assert.equal('3', res.headers['retry-after'])
      assert.equal('down', res.body)
    end)

    it('reuses connections across requests', function()
      srv:clear()
      for _ = 1, 3 do assert(http.request({ url = srv:url('/echo') })) end
      local hits = srv:hits('/echo')
      assert.equal(3, #hits)
      -- one connection: every request came from the same client port
      assert.equal(hits[1].peer, hits[2].peer)
      assert.equal(hits[1].peer, hits[3].peer)
    end)
  end)

  describe('failures', function()
    it('conn: connection refused', function()
      -- a port nobody listens on: one the kernel just handed out and took back
      local sock = io.popen('python3 -c "import socket; s=socket.socket(); '
        .. 's.bind((\'127.0.0.1\', 0)); print(s.getsockname()[1])"')
      local port = sock:read('l')
      sock:close()
      local res, err, code = http.request({ url = 'http://127.0.0.1:' .. port .. '/x?key=abc' })
      assert.is_nil(res)
      assert.equal('conn', code)
      assert.matches("^http: GET 'http://127%.0%.0%.1:" .. port .. "/x%?%.%.%.': .*[Cc]onnect", err)
    end)

    it('conn: connection reset by the server', function()
      local res, err, code = http.request({ url = srv:url('/reset') })
      assert.is_nil(res)
      assert.equal('conn', code)
      assert.matches("^http: GET 'http://127%.0%.0%.1:%d+/reset': ", err)
    end)

    it('conn: a host name that does not resolve', function()
      local res, err, code = http.request({ url = 'http://aegis-spec.invalid/', timeout = { connect = 10 } })
      assert.is_nil(res)
      assert.equal('conn', code)
      assert.matches("^http: GET 'http://aegis%-spec%.invalid/': ", err)
    end)

    it('timeout: total deadline', function()
      local res, err, code = http.request({ url = srv:url('/sleep?ms=3000'), timeout = { total = 0.2 } })
      assert.is_nil(res)
      assert.equal('timeout', code)
      assert.matches("^http: GET 'http://127%.0%.0%.1:%d+/sleep%?%.%.%.': .*[Tt]imed out", err)
    end)

    it('timeout: a trickle below the low-speed limit is aborted', function()
      local res, err, code = http.request({ url = srv:url('/trickle?n=50&interval_ms=1000'),
        timeout = { low_speed_bytes = 10, low_speed_seconds = 1 } })
      assert.is_nil(res)
      assert.equal('timeout', code)
      assert.matches('Less than 10 bytes/sec', err)
    end)

    it('too_large: past max_bytes, with and without content-length, no partial result', function()
      for _, cl in ipairs({ '1', '0' }) do
        local res, err, code = http.request({ url = srv:url('/huge?n=200000&cl=' .. cl), max_bytes = 100000 })
        assert.is_nil(res)
        assert.equal('too_large', code)
        assert.matches("^http: GET '.-/huge%?%.%.%.': response larger than 100000 bytes$", err)
      end
      local res = assert(http.request({ url = srv:url('/huge?n=100000&cl=0'), max_bytes = 100000 }))
      assert.equal(100000, #res.body)
    end)

    it('too_large: a 100 MiB answer stops at the default 32 MiB cap (B3)', function()
      for _, cl in ipairs({ '1', '0' }) do
        local res, err, code = http.request({ url = srv:url('/huge?n=104857600&cl=' .. cl) })
        assert.is_nil(res)
        assert.equal('too_large', code)
        assert.matches('response larger than 33554432 bytes$', err)
      end
    end)

    it('truncated: a body cut before its end', function()
      local res, err, code = http.request({ url = srv:url('/raw?ct=text/plain&cut=1&c=' .. support.b64url('partial')) })
      assert.is_nil(res)
      assert.equal('truncated', code)
      assert.matches("^http: GET '.-/raw%?%.%.%.': ", err)
    end)

    it('proto: a server that does not speak HTTP', function()
      local res, err, code = http.request({ url = srv:url('/garbage') })
      assert.is_nil(res)
      assert.equal('proto', code)
      assert.matches("^http: GET 'http://127%.0%.0%.1:%d+/garbage': ", err)
    end)
  end)

  describe('arguments', function()
    local cases = {
      { { url = 'file:///etc/passwd' }, "bad argument #1 to 'request' %(url must be an http or https URL" },
      { { url = 'ftp://x/' }, 'url must be an http or https URL' },
      { { url = 'http://x/ y' }, 'url must be an http or https URL without spaces' },
      { { url = 'http://x/', method = 'get' }, 'method must be an upper%-case word' },
      { { url = 'http://x/', bogus = 1 }, "unknown field 'bogus'" },
      { { url = 'http://x/', headers = { ['X-A'] = 'a\r\nX-B: b' } }, "header 'X%-A' has a line break or NUL" },
      { { url = 'http://x/', headers = { ['bad name'] = 'v' } }, 'header names must be HTTP tokens' },
      { { url = 'http://x/', timeout = { total = 0 } }, 'timeout.total must be a positive number' },
      { { url = 'http://x/', timeout = { slow = 1 } }, "unknown timeout field 'slow'" },
      { { url = 'http://x/', max_bytes = 1.5 }, 'max_bytes must be a non%-negative integer' },
      { { url = 'http://x/', on_event = 1 }, 'on_event must be a function' },
      { { url = 'http://x/', follow_redirects = 'yes' }, 'follow_redirects must be a boolean' },
      { { url = 'http://x/', body = {} }, 'body must be a string' },
    }
    for i, c in ipairs(cases) do
      it('raises on misuse (' .. i .. ')', function()
        assert.error_matches(function() http.request(c[1]) end, c[2])
      end)
    end

    it('names the request in all() and checks the concurrency', function()
      assert.error_matches(function() http.all({ { url = 'http://x/' }, { url = 'x' } }) end,
        "bad argument #1 to 'all' %(request 2: url must be")
      assert.error_matches(function() http.all({}, { concurrency = 0 }) end,
        "bad argument #2 to 'all' %(concurrency must be a positive integer%)")
    end)

    it('never shows a header value in an argument error', function()
      local ok, err = pcall(http.request, { url = 'http://x/', headers = { ['X-Api-Key'] = 'sk-VALUE\n' } })
      assert.is_false(ok)
      assert.is_nil(tostring(err):find('sk-VALUE', 1, true))
    end)
  end)

  describe('streams', function()
    it('calls on_event per event, with an empty body unless keep_body', function()
      local evs = {}
      local res = assert(http.request({ url = srv:url('/sse?n=4&event=delta'),
        on_event = function(ev) evs[#evs + 1] = ev end }))
      assert.equal(200, res.status)
      assert.equal(4, res.events)
      assert.equal('', res.body)
      assert.same({ event = 'delta', data = '{"i": 4}' }, evs[4])
      res = assert(http.request({ url = srv:url('/sse?n=2'), keep_body = true, on_event = function() end }))
      assert.equal('data: {"i": 1}\n\ndata: {"i": 2}\n\n', res.body)
    end)

    it('parses the events of a body cut into odd pieces', function()
      local chunks = { 'event: a\r', '\ndata: x', '\r\ndata: y\r\n', '\r\n: c\n', 'id: 9\ndata: z\n\n' }
      local q = {}
      for _, c in ipairs(chunks) do q[#q + 1] = 'c=' .. support.b64url(c) end
      local evs = {}
      local res = assert(http.request({ url = srv:url('/raw?delay_ms=20&' .. table.concat(q, '&')),
        on_event = function(ev) evs[#evs + 1] = ev end }))
      assert.equal(2, res.events)
      assert.same({ { event = 'a', data = 'x\ny' }, { event = 'message', data = 'z', id = '9' } }, evs)
    end)

    it('does not parse a non-2xx body as events: it is the body', function()
      local n = 0
      local res = assert(http.request({ url = srv:url('/status/429?body=slow'), on_event = function() n = n + 1 end }))
      assert.equal(429, res.status)
      assert.equal('slow', res.body)
      assert.equal(0, n)
    end)

    it('aborts the transfer when the callback raises: code aborted', function()
      local seen = 0
      local res, err, code = http.request({ method = 'POST', url = srv:url('/sse?n=50&delay_ms=5'),
        on_event = function() seen = seen + 1; if seen == 2 then error('bad event', 0) end end })
      assert.is_nil(res)
      assert.equal('aborted', code)
      assert.matches("^http: POST 'http://127%.0%.0%.1:%d+/sse%?%.%.%.': callback: bad event$", err)
      assert.equal(2, seen)
    end)

    it('stops early when the callback returns false (not an error)', function()
      local res = assert(http.request({ url = srv:url('/sse?n=50&delay_ms=5'),
        on_event = function() return false end }))
      assert.equal(200, res.status)
      assert.is_true(res.stopped)
      assert.equal(1, res.events)
      -- and the session is still fine afterwards
      assert.equal(200, assert(http.request({ url = srv:url('/echo') })).status)
    end)

    it('truncated: a connection closed in the middle of an event', function()
      local evs = {}
      local res, err, code = http.request({
        url = srv:url('/raw?frame=close&c=' .. support.b64url('data: 1\n\ndata: {"partial') ),
        on_event = function(ev) evs[#evs + 1] = ev end })
      assert.is_nil(res)
      assert.equal('truncated', code)
      assert.matches("stream ended in the middle of an event$", err)
      assert.equal(1, #evs)
      -- a final event without its blank line is discarded too
      res, err, code = http.request({ url = srv:url('/raw?frame=close&c=' .. support.b64url('data: 1\n')),
        on_event = function(ev) evs[#evs + 1] = ev end })
      assert.is_nil(res)
      assert.equal('truncated', code)
      assert.matches('stream ended in the middle of an event$', err)
      assert.equal(1, #evs)
    end)

    it('truncated: chunked stream cut without its last chunk', function()
      local res, _, code = http.request({ url = srv:url('/raw?cut=1&c=' .. support.b64url('data: 1\n\n')),
        on_event = function() end })
      assert.is_nil(res)
      assert.equal('truncated', code)
    end)

    it('refuses a request from inside a callback, aborting the outer one', function()
      local res, err, code = http.request({ url = srv:url('/sse?n=2'), on_event = function()
        http.request({ url = srv:url('/echo') })
      end })
      assert.is_nil(res)
      assert.equal('aborted', code)
      assert.matches('callback: .*cannot be made from inside an on_event callback', err)
    end)

    it('takes a 1 MiB single-line event, and caps it like any body', function()
      local sizes = {}
      local res = assert(http.request({ url = srv:url('/sse?n=2&size=1048576'),
        on_event = function(ev) sizes[#sizes + 1] = #ev.data end }))
      assert.equal(2, res.events)
      assert.same({ 1048576, 1048576 }, sizes)
      local _, _, code = http.request({ url = srv:url('/sse?n=1&size=1048576'), max_bytes = 65536,
        on_event = function() end })
      assert.equal('too_large', code)
    end)

    it('refuses close() from inside a callback', function()
      local res, err, code = http.request({ url = srv:url('/sse?n=2'), on_event = function() http.close() end })
      assert.is_nil(res)
      assert.equal('aborted', code)
      assert.matches('callback: .*close cannot be called from inside an on_event callback', err)
      assert.equal(200, assert(http.request({ url = srv:url('/echo') })).status)
    end)

    it('reports the byte cap on streams too', function()
      local res, _, code = http.request({ url = srv:url('/sse?n=100'), max_bytes = 200, on_event = function() end })
      assert.is_nil(res)
      assert.equal('too_large', code)
    end)
  end)

  describe('all', function()
    it('runs 64 requests at once through one multi handle, results in input order', function()
      srv:clear()
      local reqs = {}
      for i = 1, 64 do reqs[i] = { url = srv:url('/sleep?ms=300&g=all64&i=' .. i) } end
      reqs[65] = { url = srv:url('/echo?i=65') }
      local out = http.all(reqs, { concurrency = 64 })
      assert.equal(65, #out)
      for i = 1, 64 do assert.equal(200, out[i].status, out[i].err) end
      assert.equal('/echo', json.decode(out[65].body).path)
      assert.equal('i=65', json.decode(out[65].body).query)
      local most = 0
      for _, e in ipairs(srv:hits('/sleep')) do most = math.max(most, e.inflight) end
      assert.is_true(most >= 8, 'in flight at most ' .. most)
    end)

    it('keeps to the concurrency limit', function()
      srv:clear()
      local reqs = {}
      for i = 1, 12 do reqs[i] = { url = srv:url('/sleep?ms=100&g=all3&i=' .. i) } end
      local out = http.all(reqs, { concurrency = 3 })
      for i = 1, 12 do assert.equal(200, out[i].status) end
      local hits = srv:hits('/sleep')
      assert.equal(12, #hits)
      for _, e in ipairs(hits) do assert.is_true(e.inflight <= 3) end
    end)

    it('gives failures as {err, code} in place, streams and callbacks per request', function()
      local got = {}
      local out = http.all({
        { url = srv:url('/sse?n=3'), on_event = function(ev) got[#got + 1] = 'a' .. ev.data end },
        { url = 'http://127.0.0.1:1/' },
        { url = srv:url('/sse?n=3'), on_event = function() error('cb', 0) end },
        { url = srv:url('/status/404') },
      })
      assert.equal(3, out[1].events)
      assert.equal(3, #got)
      assert.equal('conn', out[2].code)
      assert.matches("^http: GET 'http://127%.0%.0%.1:1/': ", out[2].err)
      assert.same({ err = out[3].err, code = 'aborted' }, out[3])
      assert.matches('callback: cb$', out[3].err)
      assert.equal(404, out[4].status)
      assert.same({}, http.all({}))
    end)
  end)

  describe('redirects', function()
    it('are not followed by default', function()
      local res = assert(http.request({ url = srv:url('/redirect?to=/echo') }))
      assert.equal(302, res.status)
      assert.equal('/echo', res.headers.location)
    end)

    it('keep credentials on the same origin, 307 keeps method and body, 303 turns into GET', function()
      srv:clear()
      local res = assert(http.request({ method = 'POST', body = 'b', url = srv:url('/redirect?code=307&to=/echo'),
        follow_redirects = true, headers = { Authorization = 'Bearer same-origin', ['x-api-key'] = 'k1' } }))
      local echo = json.decode(res.body)
      assert.equal(1, res.redirects)
      assert.same({ 'POST', 'b', 'Bearer same-origin', 'k1' },
        { echo.method, echo.body, echo.headers.authorization, echo.headers['x-api-key'] })
      res = assert(http.request({ method = 'POST', body = 'b', url = srv:url('/redirect?code=303&to=/echo'),
        follow_redirects = true }))
      echo = json.decode(res.body)
      assert.same({ 'GET', '' }, { echo.method, echo.body })
    end)

    it('never send Authorization, x-api-key, api-key or cookies to another host', function()
      srv:clear()
      local target = srv.base2 .. '/echo'
      local res = assert(http.request({ url = srv:url('/redirect?code=307&to=' .. target), method = 'POST', body = '{}',
        follow_redirects = true, headers = { Authorization = 'Bearer sk-redirect-canary',
          ['x-api-key'] = 'sk-redirect-canary',
          ['api-key'] = 'sk-redirect-canary', Cookie = 'session=sk-redirect-canary', ['X-Kept'] = 'kept' } }))
      assert.equal(200, res.status)
      local log = srv:log()
      assert.equal(2, #log)
      assert.equal('127.0.0.1', log[1].host)
      assert.equal('sk-redirect-canary', log[1].headers['x-api-key'])
      assert.equal('127.0.0.2', log[2].host)
      assert.equal('kept', log[2].headers['x-kept'])
      for name in pairs(log[2].headers) do
        assert.is_nil(log[2].headers[name]:find('sk-redirect-canary', 1, true), name)
      end
      assert.is_nil(log[2].headers.authorization)
      -- and not on a later hop back to the first host either
      srv:clear()
      local back = srv.base2 .. '/redirect%3Fto%3D' .. srv.base .. '/echo'
      res = assert(http.request({ url = srv:url('/redirect?to=' .. back),
        follow_redirects = true, headers = { Authorization = 'Bearer sk-redirect-canary' } }))
      assert.equal(2, res.redirects)
      assert.is_nil(json.decode(res.body).headers.authorization)
    end)

    it('refuse file:// and other schemes, and too many hops: code redirect', function()
      srv:clear()
      local res, err, code = http.request({ url = srv:url('/redirect?to=file:///etc/passwd'), follow_redirects = true })
      assert.is_nil(res)
      assert.equal('redirect', code)
      assert.matches("^http: GET 'http://127%.0%.0%.1:%d+/redirect%?%.%.%.': redirect to a file: URL refused$", err)
      res, err, code = http.request({ url = srv:url('/redirect?to=ftp://127.0.0.1/x'), follow_redirects = true })
      assert.is_nil(res)
      assert.equal('redirect', code)
      assert.matches('redirect to a ftp: URL refused$', err)
      res, err, code = http.request({ url = srv:url('/redirect?to=/redirect%3Fto%3D/echo'), follow_redirects = 1 })
      assert.is_nil(res)
      assert.equal('redirect', code)
      assert.matches('more than 1 redirects$', err)
    end)
  end)

  describe('secrets', function()
    local canary = 'sk-ant-api03-' .. string.rep('Zq', 20) .. 'CANARY-AA'
    local encoded = {
      canary,
      canary:gsub('%-', '%%2D'),
      (canary:gsub('.', function(c) return ('%%%02X'):format(c:byte()) end)),
    }

    -- Every string reachable from v (keys too), tostring'ed.
    local function strings(v, out, seen)
      out, seen = out or {}, seen or {}
      out[#out + 1] = tostring(v)
      if type(v) == 'table' and not seen[v] then
        seen[v] = true
        for k, x in pairs(v) do
          strings(k, out, seen)
          strings(x, out, seen)
        end
      end
      return out
    end

    it('never puts a header key or a query secret in a message or a result', function()
      local hdrs = { Authorization = 'Bearer ' .. canary, ['x-api-key'] = canary, ['api-key'] = canary }
      local qs = '?key=' .. canary
      local calls = {
        { url = srv:url('/status/401' .. qs) },
        { url = srv:url('/status/500' .. qs) },
        { url = srv:url('/sleep' .. qs .. '&ms=2000'), timeout = { total = 0.1 } },
        { url = 'http://127.0.0.1:1/' .. qs },
        { url = srv:url('/huge' .. qs .. '&n=5000'), max_bytes = 10 },
        { url = srv:url('/sse' .. qs), on_event = function() error('callback failed') end },
        { url = srv:url('/redirect' .. qs .. '&to=file:///x'), follow_redirects = true },
        { url = 'http://user:' .. canary .. '@127.0.0.1:1/' },
        { url = srv:url('/raw' .. qs .. '&cut=1&c=eA'), method = 'POST', body = 'x' },
      }
      local seen = {}
      for _, c in ipairs(calls) do
        c.headers = hdrs
        local res, err, code = http.request(c)
        seen[#seen + 1] = { res, err, code }
      end
      for _, c in ipairs(calls) do c.headers = hdrs end
      seen[#seen + 1] = http.all(calls)
      local all = table.concat(strings(seen), '\n')
      assert.truthy(all:find('http: GET', 1, true))  -- the messages are there
      for _, form in ipairs(encoded) do assert.is_nil(all:find(form, 1, true)) end
      assert.is_nil(all:find('CANARY', 1, true))
    end)
  end)

  describe('proxy variables', function()
    it('are honoured (libcurl reads http_proxy)', function()
      srv:clear()
      local dir = h.tmpdir()
      local spec = h.write(dir .. '/proxy_spec.lua', [[
        local http = require('aegis.http')
        it('goes through the proxy', function()
          local res = assert(http.request({ url = 'http://aegis-proxied.invalid/thing' }))
          assert.equal(200, res.status)
          assert.matches('"proxied": true', res.body)
        end)
      ]])
      local r = h.run({ 'test', spec }, { env = { http_proxy = srv.base, no_proxy = false, NO_PROXY = false } })
      assert.equal(0, r.code, r.stdout .. r.stderr)
      local log = srv:log()
      assert.equal(1, #log)
      assert.is_true(log[1].proxied)
    end)
  end)

  describe('TLS', function()
    local tls, dir
    setup(function()
      dir = h.tmpdir()
      local q = h.shell_quote
      local ec = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
      h.write(dir .. '/ext', 'subjectAltName=DNS:localhost\n')
      local cmd = table.concat({
        'cd ' .. q(dir),
        'openssl req -x509 ' .. ec .. ' -keyout ca.key -out ca.pem -days 2 -subj /CN=aegis-spec-ca',
        'openssl req ' .. ec .. ' -keyout leaf.key -out leaf.csr -subj /CN=localhost',
        'openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile ext',
      }, ' && ') .. ' >/dev/null 2>&1'
      assert(os.execute(cmd))
      -- port 1: self-signed (the CA itself); port 2: a leaf for localhost signed by the CA
      tls = support.start({ { dir .. '/ca.pem', dir .. '/ca.key' }, { dir .. '/leaf.pem', dir .. '/leaf.key' } })
    end)
    teardown(function() tls:stop() end)

    it('refuses a self-signed certificate: code tls', function()
      local res, err, code = http.request({ url = 'https://127.0.0.1:' .. tls.tls_ports[1] .. '/echo' })
      assert.is_nil(res)
      assert.equal('tls', code)
      assert.matches("^http: GET 'https://127%.0%.0%.1:%d+/echo': .*certificate", err)
    end)

    it('refuses a certificate for another host, even from a trusted CA', function()
      local res, err, code = http.request({ url = 'https://127.0.0.1:' .. tls.tls_ports[2] .. '/echo',
        ca_file = dir .. '/ca.pem' })
      assert.is_nil(res)
      assert.equal('tls', code)
      assert.matches('127%.0%.0%.1', err)
    end)

    it('refuses an unknown CA, and accepts the right host with ca_file', function()
      local url = 'https://localhost:' .. tls.tls_ports[2] .. '/echo'
      local res, _, code = http.request({ url = url })
      assert.is_nil(res)
      assert.equal('tls', code)
      res = assert(http.request({ url = url, ca_file = dir .. '/ca.pem' }))
      assert.equal(200, res.status)
    end)
  end)

  it('close() drops the session; the next request opens a new one', function()
    http.close()
    http.close()
    assert.equal(200, assert(http.request({ url = srv:url('/echo') })).status)
  end)

  it('redact() keeps scheme, host, port and path only', function()
    assert.equal('https://h:1/p/q?...', http.redact('https://u:pw@h:1/p/q?key=s#frag'))
    assert.equal('http://h', http.redact('http://h#x'))
  end)

  it('sleep() sleeps', function()
    local clock = require('aegis.clock')
    local t = clock.monotonic()
    http.sleep(0.01)
    assert.is_true(clock.monotonic() - t >= 0.01)
    assert.error_matches(function() http.sleep(-1) end, 'seconds must be in')
  end)
end)
