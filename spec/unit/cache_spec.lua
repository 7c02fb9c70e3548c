-- aegis.cache on every store backend: entries and their checks, calls
-- through the cache (scripted transport), single-flight against a holder
-- that is not us, rotation, statistics, export/import (docs/cache.md).
local h = require('spec.helpers')
local cache = require('aegis.cache')
local json = require('aegis.json')
local hash = require('aegis.hash')
local store = require('aegis.store')

local KEY = 'sk-proj-' .. ('Z'):rep(20) .. 'T3BlbkFJ' .. ('Q'):rep(20)

-- A transport (aegis.http shape) answering every request from `answer(body)`;
-- counts what it was sent.
local function transport(answer)
  local t = { sent = {} }
  local function one(req)
    t.sent[#t.sent + 1] = req
    local b = json.decode(req.body)
    local a = answer(b, #t.sent)
    if a.fail then return nil, a.fail, a.code end
    if a.events then
      for _, ev in ipairs(a.events) do
        if req.on_event(ev) == false then break end
      end
      return { status = 200, headers = {}, body = '' }
    end
    return { status = a.status or 200, headers = {}, body = json.encode(a.body) }
  end
  function t.request(req) return one(req) end
  function t.all(reqs)
    local outs = {}
    for i, r in ipairs(reqs) do
      local res, msg, code = one(r)
      outs[i] = res or { err = msg, code = code }
    end
    return outs
  end
  return t
end

-- Chat Completions answer echoing the last user message.
local function echo(b)
  local content = b.messages[#b.messages].content
  return { body = { object = 'chat.completion', model = 'gpt-5.4',
    choices = { { message = { content = 'echo: ' .. content }, finish_reason = 'stop' } },
    usage = { prompt_tokens = 100, completion_tokens = 10, prompt_tokens_details = { cached_tokens = 0 } } } }
end

local function chunk(x) return { data = json.encode(x) } end
local function streamed()
  return { events = {
    chunk({ choices = { { delta = { content = 'He' } } } }),
    chunk({ choices = { { delta = { content = 'llo' } } } }),
    chunk({ choices = { { delta = { content = ' world' }, finish_reason = 'stop' } } }),
    chunk({ choices = json.array({}), usage = { prompt_tokens = 5, completion_tokens = 3,
      prompt_tokens_details = { cached_tokens = 0 } } }),
    { data = '[DONE]' },
  } }
end

local n = 0
local function request(t, task, extra)
  n = n + 1
  local o = {
    provider = 'openai', model = 'gpt-5.4', base_url = 'http://127.0.0.1:1/v1',
    blocks = { { kind = 'task', stability = 'volatile', content = task or 'hi' } },
    http = t, getenv = function(name) return name == 'OPENAI_API_KEY' and KEY or nil end,
    retry = { sleep = function() end, breaker = false }, on_warning = function() end,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

for _, backend in ipairs(h.store_backends()) do
  describe('aegis.cache on ' .. backend.name, function()
    local c, warnings

    before_each(function()
      if not backend.url then return end
      warnings = {}
      c = assert(cache.open(backend.url, { warn = function(m) warnings[#warnings + 1] = m end }))
      assert(c:clear())
    end)
    after_each(function()
      if c then c:close() end
      c = nil
    end)

    local function raw_db() return assert(store.open(backend.url)) end

    it('puts, gets and deletes an entry; a miss is plain nil', function()
      if not h.needs(backend) then return end
      local k, canon = assert(cache.key(request(nil, 'a')))
      assert.is_nil(c:get(k))
      assert.is_true(c:put(k, { text = 'answer', usage = { input = 10, output = 2 }, finish = 'stop', cost = 0.5 },
        { request = canon }))
      local e = c:get(k)
      assert.equal('answer', e.response.text)
      assert.equal('stop', e.response.finish)
      assert.same({ input = 10, output = 2 }, e.response.usage)
      assert.equal(0.5, e.cost)
      assert.equal('openai', e.provider)
      assert.equal('gpt-5.4', e.model)
      assert.equal('/chat/completions', e.endpoint)
      assert.equal(k, e.key)
      assert.equal('default', e.namespace)
      assert.is_true(c:delete(k))
      assert.is_false(c:delete(k))
      assert.is_nil(c:get(k))
    end)

    it('says whether an entry is there without counting a hit or a miss', function()
      if not h.needs(backend) then return end
      local k = assert(cache.key(request(nil, 'has')))
      local before = c:stats()
      assert.is_false(c:has(k))
      c:put(k, { text = 'x', usage = {} })
      assert.is_true(c:has(k))
      assert.is_false(c:has(k, { namespace = 'elsewhere' }))
      local after = c:stats()
      assert.equal(before.hits, after.hits)
      assert.equal(before.misses, after.misses)
      assert.error_matches(function() c:has('nope') end, "bad argument #1 to 'has' %(key must be 64")
    end)

    it('stores the response as canonical metadata, a newline and the text, with its SHA-256', function()
      if not h.needs(backend) then return end
      local k = assert(cache.key(request(nil, 'b')))
      c:put(k, { text = 'x', usage = {} })
      local db <close> = raw_db()
      local row = db:first('SELECT response, response_hash FROM cache_entries WHERE key = $1', k)
      assert.equal(hash.sha256('default\0' .. k .. '\0' .. row.response), row.response_hash)
      assert.equal(cache.response_hash('default', k, row.response), row.response_hash)
      assert.equal('{"usage":{}}\nx', row.response)
      local k2 = assert(cache.key(request(nil, 'b2')))
      c:put(k2, { text = 'Hello world', chunks = { 'He', 'llo', ' world' }, usage = { input = 3 }, finish = 'stop',
        cost = 0.25, served_model = 'm-1' })
      row = db:first('SELECT response FROM cache_entries WHERE key = $1', k2)
      assert.equal('{"chunks":[2,3,6],"cost":0.25,"finish":"stop","served_model":"m-1","usage":{"input":3}}\n'
        .. 'Hello world', row.response)
      assert.same({ 'He', 'llo', ' world' }, c:get(k2).response.chunks)
    end)

    it('treats an edited response as a miss, quarantines it and warns', function()
      if not h.needs(backend) then return end
      local k = assert(cache.key(request(nil, 'c')))
      c:put(k, { text = 'the real answer', usage = {} })
      do
        local db <close> = raw_db()
        local row = db:first('SELECT response FROM cache_entries WHERE key = $1', k)
        db:exec('UPDATE cache_entries SET response = $1 WHERE key = $2',
          store.blob((row.response:gsub('real', 'fake'))), k)
      end
      assert.is_nil(c:get(k))
      assert.equal(1, #warnings)
      assert.matches('^entry ' .. k .. ' failed its check %(response hash mismatch%): moved to quarantine$',
        warnings[1])
      local db <close> = raw_db()
      assert.is_nil(db:first('SELECT key FROM cache_entries WHERE key = $1', k))
      local q = db:first('SELECT reason, response FROM cache_quarantine WHERE key = $1', k)
      assert.equal('response hash mismatch', q.reason)
      assert.matches('fake answer', q.response)
      local s = c:stats()
      assert.equal(1, s.corrupt)
      assert.equal(1, s.quarantined)
    end)

    it('quarantines a row whose response or hash is not even text (a damaged record)', function()
      if not h.needs(backend) then return end
      local k = assert(cache.key(request(nil, 'numeric')))
      assert(c:put(k, { text = 'x', usage = {} }))
      local db <close> = raw_db()
      if backend.name == 'sqlite' then   -- SQLite keeps whatever type a damaged cell holds
        assert(db:exec('UPDATE cache_entries SET response = 42, response_hash = 7 WHERE key = $1', k))
        assert.is_nil(c:get(k))
        assert.is_false(c:has(k))
      end
    end)

    it('treats an edited hash or an unreadable response as corrupt too', function()
      if not h.needs(backend) then return end
      local k1 = assert(cache.key(request(nil, 'd1')))
      local k2 = assert(cache.key(request(nil, 'd2')))
      c:put(k1, { text = 'one', usage = {} })
      c:put(k2, { text = 'two', usage = {} })
      do
        local db <close> = raw_db()
        db:exec('UPDATE cache_entries SET response_hash = $1 WHERE key = $2', ('0'):rep(64), k1)
        db:exec('UPDATE cache_entries SET response = $1, response_hash = $2 WHERE key = $3',
          store.blob('not json'), cache.response_hash('default', k2, 'not json'), k2)
      end
      local v = c:verify()
      assert.is_false(v.ok)
      assert.equal(2, #v.bad)
      assert.is_nil(c:get(k1))
      assert.is_nil(c:get(k2))
      assert.equal(2, #warnings)
      assert.matches('response unreadable', warnings[2])
      assert.is_true(c:verify().ok)
    end)

    it("never gives another entry's answer: the hash covers the key", function()
      if not h.needs(backend) then return end
      -- what a damaged index does: the lookup of one key reaches another
      -- entry's row, whose response and hash agree with each other
      local k1, k2 = hash.sha256('mine'), hash.sha256('theirs')
      c:put(k1, { text = 'mine', usage = {} })
      c:put(k2, { text = 'theirs', usage = {} })
      do
        local db <close> = raw_db()
        local other = db:first('SELECT response, response_hash FROM cache_entries WHERE key = $1', k2)
        db:exec('UPDATE cache_entries SET response = $1, response_hash = $2 WHERE key = $3',
          store.blob(other.response), other.response_hash, k1)
      end
      assert.is_nil(c:get(k1))
      assert.matches('^entry ' .. k1 .. ' failed its check', warnings[1])
      assert.equal('theirs', c:get(k2).response.text)
    end)

    it('stops paging where a damaged index sends the pages round in a circle (verify, export, gc)', function()
      if not h.needs(backend) then return end
      local keys = {}
      for i = 1, 5 do
        keys[i] = hash.sha256('circle' .. i)
        c:put(keys[i], { text = 'x' .. i, usage = {} })
      end
      table.sort(keys)
      -- a store whose paging by (namespace, key) a damaged index leads round: from the start the page ends
      -- at the second key; from there it holds the third key, then the first (out of order); from the first,
      -- the second again; and whose deletes find nothing
      local real = raw_db()
      local pages = 0
      local function page(rows, last_key)
        pages = pages + 1
        assert(pages < 50, 'paging went round without end')
        local by = {}
        for _, r in ipairs(rows) do by[r.key] = r end
        if last_key == '' then return { by[keys[1]], by[keys[2]] } end
        if last_key == keys[2] then
          local first = real:first('SELECT * FROM cache_entries WHERE key = $1', keys[1])
          return { by[keys[3]], first }
        end
        return { by[keys[2]] }
      end
      -- the store's methods, for this handle only, through its class's __index
      local mt = getmetatable(real)
      local index = mt.__index
      local query, tx = index(real, 'query'), index(real, 'tx')
      mt.__index = function(self, k)
        if rawequal(self, real) and k == 'query' then
          return function(_, sql, ...)
            local rows, msg, code = query(real, sql, ...)
            if rows and sql:find('ORDER BY namespace, key LIMIT', 1, true) then rows = page(rows, select(2, ...)) end
            return rows, msg, code
          end
        elseif rawequal(self, real) and k == 'tx' then
          return function(_, fn)
            return tx(real, function(t)
              return fn({ exec = function(_, sql, ...)
                if sql:find('^DELETE FROM cache_entries') then
                  pages = pages + 1
                  assert(pages < 1000, 'deletes that find nothing were tried without end')
                  return 0
                end
                return t:exec(sql, ...)
              end })
            end)
          end
        end
        return index(self, k)
      end
      local ok, err = pcall(function()
        local dc = assert(cache.open(nil, { store = real, warn = function() end }))
        local v = assert(dc:verify())
        assert.is_false(v.ok)
        assert.is_true(v.checked <= 5)
        pages = 0
        local ex = assert(dc:export(h.tmpdir() .. '/export.jsonl'))
        assert.is_true(ex.exported <= 5)
        -- evictions whose deletes find nothing stop rather than select the same rows again
        pages = 0
        local g = assert(dc:gc({ ttl = 0 }))
        assert.equal(0, g.expired)
        g = assert(dc:gc({ max_entries = 1 }))
        assert.equal(0, g.evicted)
        dc:close()
      end)
      mt.__index = index
      real:close()
      assert(ok, err)
    end)

    it('counts hits in memory and writes them in one batch, not one write per hit', function()
      if not h.needs(backend) then return end
      c:close()
      c = assert(cache.open(backend.url, { flush_every = 1000, flush_interval = 3600 }))
      local k = assert(cache.key(request(nil, 'e')))
      c:put(k, { text = 'x', usage = {} })
      for _ = 1, 5 do assert(c:get(k)) end
      local db <close> = raw_db()
      assert.equal(0, db:first('SELECT hits FROM cache_entries WHERE key = $1', k).hits)
      assert.is_true(c:flush())
      assert.equal(5, db:first('SELECT hits FROM cache_entries WHERE key = $1', k).hits)
      local s = c:stats()
      assert.equal(5, s.hits)
      assert.equal(0, s.misses)
      assert.equal(1, s.hit_rate)
    end)

    it('calls the provider on a miss and answers from the cache after', function()
      if not h.needs(backend) then return end
      local t = transport(echo)
      local r1 = assert(c:call(request(t, 'f')))
      assert.equal('miss', r1.cache)
      assert.equal('echo: f', r1.text)
      assert.equal(1, #t.sent)
      local r2 = assert(c:call(request(t, 'f')))
      assert.equal(1, #t.sent)
      assert.equal('hit', r2.cache)
      assert.equal('echo: f', r2.text)
      assert.equal(r1.key, r2.key)
      assert.same(r1.usage, r2.usage)
      assert.equal(0, r2.cost)
      assert.equal(r1.cost, r2.saved_cost)
      assert.equal('stop', r2.finish)
      local s = c:stats()
      assert.equal(1, s.hits)
      assert.equal(1, s.misses)
      assert.equal(1, s.entries)
      assert.equal(110, s.tokens_saved)
      local db <close> = raw_db()
      local ev = db:query('SELECT outcome, input_tokens, cost, saved_cost FROM cache_events ORDER BY id')
      assert.equal('miss', ev[1].outcome)
      assert.equal('hit', ev[2].outcome)
      assert.equal(100, ev[2].input_tokens)
    end)

    it('replays a stream chunk for chunk', function()
      if not h.needs(backend) then return end
      local t = transport(streamed)
      local live, again = {}, {}
      local r1 = assert(c:call(request(t, 'g', { stream = true, on_delta = function(d) live[#live + 1] = d end })))
      assert.same({ 'He', 'llo', ' world' }, live)
      local r2 = assert(c:call(request(t, 'g', { stream = true, on_delta = function(d) again[#again + 1] = d end })))
      assert.equal(1, #t.sent)
      assert.equal('hit', r2.cache)
      assert.same(live, again)
      assert.equal(r1.text, r2.text)
      -- a plain request is another key
      local r3 = assert(c:call(request(transport(echo), 'g')))
      assert.equal('miss', r3.cache)
    end)

    it('never stores an error', function()
      if not h.needs(backend) then return end
      local t = transport(function() return { status = 400, body = { error = { message = 'bad request' } } } end)
      local res, err = c:call(request(t, 'h'))
      assert.is_nil(res)
      assert.equal('http_400', err.code)
      assert.equal(0, c:stats().entries)
      local t2 = transport(echo)
      assert.equal('miss', assert(c:call(request(t2, 'h'))).cache)
      assert.equal(1, #t2.sent)
      local db <close> = raw_db()
      assert.equal(0, db:first('SELECT count(*) AS n FROM cache_leases').n)
    end)

    it('still answers when the cache fails: a miss and a warning, nothing raised', function()
      if not h.needs(backend) then return end
      local db <close> = raw_db()
      assert(db:exec('ALTER TABLE cache_entries RENAME TO cache_entries_away'))
      local restore <close> = setmetatable({}, { __close = function()  -- luacheck: ignore restore
        db:exec('ALTER TABLE cache_entries_away RENAME TO cache_entries')
      end })
      local t = transport(echo)
      local r = assert(c:call(request(t, 'broken')))
      assert.equal('miss', r.cache)
      assert.equal('echo: broken', r.text)
      assert.equal(1, #t.sent)
      assert.matches('^lookup failed, calling the provider: ', warnings[1])
      assert.matches('^answer not stored: put ', warnings[#warnings])
      local k = assert(cache.key(request(nil, 'broken')))
      local e, msg, code = c:get(k)
      assert.is_nil(e)
      assert.matches("^cache: get '" .. k .. "': ", msg)
      assert.equal('sql', code)
    end)

    it('honours no_cache and no_store', function()
      if not h.needs(backend) then return end
      local t = transport(echo)
      assert.equal('miss', assert(c:call(request(t, 'i'), { no_store = true })).cache)
      assert.equal(0, c:stats().entries)
      assert.equal('miss', assert(c:call(request(t, 'i'))).cache)
      local r = assert(c:call(request(t, 'i'), { no_cache = true }))
      assert.equal('bypass', r.cache)
      assert.equal(3, #t.sent)
      assert.equal('hit', assert(c:call(request(t, 'i'))).cache)
      assert.equal(1, c:stats().bypass)
    end)

    it('keeps namespaces apart', function()
      if not h.needs(backend) then return end
      local t = transport(echo)
      assert(c:call(request(t, 'j')))
      assert.equal('miss', assert(c:call(request(t, 'j'), { namespace = 'team-b' })).cache)
      assert.equal('hit', assert(c:call(request(t, 'j'), { namespace = 'team-b' })).cache)
      local k = assert(cache.key(request(nil, 'j')))
      assert.is_nil(c:get(k, { namespace = 'other' }))
      local s = c:stats()
      assert.equal(2, s.entries)
      assert.equal(1, s.namespaces['team-b'].entries)
      assert.equal(1, c:stats({ namespace = 'team-b' }).entries)
      assert.equal(1, c:clear({ namespace = 'team-b' }))
      assert.equal(1, c:stats().entries)
    end)

    it('keeps samples apart by sample_index', function()
      if not h.needs(backend) then return end
      local t = transport(echo)
      assert.equal('miss', assert(c:call(request(t, 'k'))).cache)
      assert.equal('miss', assert(c:call(request(t, 'k'), { sample_index = 1 })).cache)
      assert.equal('hit', assert(c:call(request(t, 'k', { sample_index = 1 }))).cache)
      assert.equal(2, #t.sent)
    end)

    it('makes identical requests of call_all once', function()
      if not h.needs(backend) then return end
      local t = transport(echo)
      local got = {}
      local list = {
        request(t, 'x'), request(t, 'y'), request(t, 'x'),
        request(t, 'x', { stream = false, on_delta = function(d) got[#got + 1] = d end }),
      }
      local rs = c:call_all(list, { http = t, retry = { sleep = function() end } })
      assert.equal(2, #t.sent)
      assert.equal('miss', rs[1].cache)
      assert.equal('miss', rs[2].cache)
      assert.equal('waited', rs[3].cache)
      assert.equal('echo: x', rs[3].text)
      assert.equal('echo: x', rs[4].text)
      local rs2 = c:call_all({ request(t, 'x'), request(t, 'z') }, { http = t })
      assert.equal('hit', rs2[1].cache)
      assert.equal('miss', rs2[2].cache)
      assert.equal(3, #t.sent)
    end)

    it('gives call_all failures in place and stores none of them', function()
      if not h.needs(backend) then return end
      local t = transport(function(b)
        if b.messages[1].content == 'bad' then return { status = 400, body = { error = { message = 'no' } } } end
        return echo(b)
      end)
      local rs = c:call_all({ request(t, 'ok'), request(t, 'bad') }, { http = t, budget = false })
      assert.equal('miss', rs[1].cache)
      assert.equal('http_400', rs[2].code)
      assert.equal(1, c:stats().entries)
    end)

    -- Another process holding the request: a lease row (SQLite) or the
    -- advisory lock on a second connection (PostgreSQL).
    local function hold(k)
      local db = raw_db()
      if db.kind == 'postgres' then
        assert(db:first('SELECT pg_advisory_lock(hashtextextended($1, 0)) AS ok', 'default|' .. k))
      else
        assert(db:exec([[INSERT INTO cache_leases (namespace, key, holder, expires_at) VALUES ($1, $2, $3, $4)]],
          'default', k, 'elsewhere|boot|1|x', math.floor(require('aegis.clock').now() * 1000) + 60000))
      end
      return db
    end

    it('waits for the answer of another process making the same call', function()
      if not h.needs(backend) then return end
      local t = transport(echo)
      local o = request(t, 'sf')
      local k = assert(cache.key(o))
      local other = hold(k)
      local polls = 0
      c._sleep = function()
        polls = polls + 1
        if polls == 3 then  -- the holder finishes
          local oc = assert(cache.open(nil, { store = other }))
          assert(oc:put(k, { text = 'from the other', usage = { input = 1, output = 1 } }))
          oc:close()
          if other.kind == 'sqlite' then other:exec('DELETE FROM cache_leases') end
        end
      end
      local r = assert(c:call(o))
      assert.equal('waited', r.cache)
      assert.equal('from the other', r.text)
      assert.equal(0, #t.sent)
      assert.equal(3, polls)
      other:close()
    end)

    it('takes over when the holder gives up without an answer', function()
      if not h.needs(backend) then return end
      local t = transport(echo)
      local o = request(t, 'sf2')
      local k = assert(cache.key(o))
      local other = hold(k)
      c._sleep = function()  -- the holder goes away without an answer
        if other then
          if other.kind == 'sqlite' then other:exec('DELETE FROM cache_leases') end
          other:close()
          other = nil
        end
      end
      local r = assert(c:call(o))
      assert.equal('miss', r.cache)
      assert.equal(1, #t.sent)
      assert.equal('hit', assert(c:call(o)).cache)
    end)

    it('calls after waiting as long as `wait` allows', function()
      if not h.needs(backend) then return end
      c:close()
      local w = {}
      c = assert(cache.open(backend.url, { wait = 0, warn = function(m) w[#w + 1] = m end }))
      local t = transport(echo)
      local o = request(t, 'sf3')
      local k = assert(cache.key(o))
      local other = hold(k)
      c._sleep = function() end
      local r = assert(c:call(o))
      assert.equal('miss', r.cache)
      assert.equal(1, #t.sent)
      assert.matches('^waited 0s for another process to answer ' .. k .. '; calling the provider$', w[1])
      other:close()
    end)

    if backend.name == 'sqlite' then
      it('does not wait for another writer to write its batched counts: it keeps them for the next flush', function()
        c:close()
        local w = {}
        c = assert(cache.open(backend.url, { flush_every = 1, warn = function(m) w[#w + 1] = m end }))
        local k = hash.sha256('busy')
        c:put(k, { text = 'x', usage = {} })
        local other <close> = raw_db()
        assert(other:tx(function()  -- another process holds the write lock meanwhile
          assert(other:exec('UPDATE cache_leases SET expires_at = 0 WHERE 0'))
          for _ = 1, 3 do assert(c:get(k)) end  -- each get tries to flush, gives up after 50 ms
          return true
        end))
        assert.same({}, w)
        assert.is_true(c:flush())
        assert.equal(3, other:first('SELECT hits FROM cache_entries WHERE key = $1', k).hits)
        assert.equal(3, c:stats().hits)
      end)

      it('takes over the lease of a dead process on this host at once, and an expired one', function()
        local t = transport(echo)
        local o = request(t, 'dead')
        local k = assert(cache.key(o))
        local db <close> = raw_db()
        local f = io.open('/proc/sys/kernel/random/boot_id')
        local boot = f:read('l')
        f:close()
        f = io.open('/proc/sys/kernel/hostname')
        local host = f:read('l')
        f:close()
        -- pid 2^22 + 1 is above Linux's pid_max: never a live process
        db:exec('INSERT INTO cache_leases (namespace, key, holder, expires_at) VALUES ($1, $2, $3, $4)',
          'default', k, host .. '|' .. boot .. '|4194305|x', math.floor(require('aegis.clock').now() * 1000) + 60000)
        c._sleep = function() error('should not wait') end
        assert.equal('miss', assert(c:call(o)).cache)
        local o2 = request(t, 'expired')
        local k2 = assert(cache.key(o2))
        db:exec('INSERT INTO cache_leases (namespace, key, holder, expires_at) VALUES ($1, $2, $3, $4)',
          'default', k2, 'elsewhere|b|1|x', 1)
        assert.equal('miss', assert(c:call(o2)).cache)
        assert.equal(2, #t.sent)
      end)
    end

    it('removes entries past their ttl', function()
      if not h.needs(backend) then return end
      c:put(hash.sha256('old'), { text = 'old', usage = {} })
      c:put(hash.sha256('new'), { text = 'new', usage = {} })
      do
        local db <close> = raw_db()
        db:exec('UPDATE cache_entries SET created_at = created_at - 7200000 WHERE key = $1', hash.sha256('old'))
      end
      c:close()
      c = assert(cache.open(backend.url, { limits = { ttl = '1h' } }))
      assert.is_nil(c:get(hash.sha256('old')))  -- expired: a miss before gc removes it
      local r = assert(c:gc())
      assert.equal(1, r.expired)
      assert.is_true(r.done)
      assert.equal(1, c:stats().entries)
      assert.truthy(c:get(hash.sha256('new')))
    end)

    it('evicts the least recently used first, for max_entries and max_bytes', function()
      if not h.needs(backend) then return end
      -- a store shared with other tables: max_bytes counts the entries' bytes
      local other <close> = raw_db()
      assert(other:exec('CREATE TABLE IF NOT EXISTS not_the_cache (x INTEGER)'))
      local drop <close> = setmetatable({}, { __close = function()  -- luacheck: ignore drop
        other:exec('DROP TABLE not_the_cache')
      end })
      local keys = {}
      for i = 1, 10 do
        keys[i] = hash.sha256('lru' .. i)
        c:put(keys[i], { text = ('y'):rep(100), usage = {} })
      end
      do  -- entry i last used at i seconds; then 1 and 2 used again
        local db <close> = raw_db()
        for i = 1, 10 do db:exec('UPDATE cache_entries SET last_used_at = $1 WHERE key = $2', i * 1000, keys[i]) end
      end
      assert(c:get(keys[1]))
      assert(c:get(keys[2]))
      local r = assert(c:gc({ max_entries = 6 }))
      assert.equal(5, r.evicted)  -- 5 % below 6 is 5 entries
      for i = 3, 7 do assert.is_nil(c:get(keys[i]), 'entry ' .. i) end
      for _, i in ipairs({ 1, 2, 8, 9, 10 }) do assert.truthy(c:get(keys[i]), 'entry ' .. i) end
      local per = c:stats().bytes // 5
      r = assert(c:gc({ max_bytes = per * 3 }))
      assert.equal(3, r.evicted)
      assert.equal(per * 3, r.bytes_freed)
      assert.equal(2, c:stats().entries)
    end)

    it('rotates by itself when a limit is crossed, every gc_every puts', function()
      if not h.needs(backend) then return end
      c:close()
      c = assert(cache.open(backend.url, { gc_every = 10, limits = { max_entries = 20 } }))
      for i = 1, 29 do c:put(hash.sha256('auto' .. i), { text = 'z', usage = {} }) end
      assert.equal(29, c:stats().entries)  -- checked at puts 10 and 20: not over then
      c:put(hash.sha256('auto30'), { text = 'z', usage = {} })
      assert.equal(19, c:stats().entries)  -- checked at put 30: trimmed to 5 % below 20
    end)

    it('exports verified entries and imports them again, re-checking hashes', function()
      if not h.needs(backend) then return end
      local t = transport(echo)
      assert(c:call(request(t, 'ex1')))
      assert(c:call(request(transport(streamed), 'ex2', { stream = true }), {}))
      local path = h.tmpdir() .. '/cache.jsonl'
      local r = assert(c:export(path))
      assert.same({ exported = 2, skipped = 0 }, r)
      -- tamper with one line's response
      local lines = {}
      for l in io.lines(path) do lines[#lines + 1] = l end
      local ln = json.decode(lines[2])
      ln.response = ln.response .. ' (edited)'
      lines[2] = json.canonical(ln)
      lines[#lines + 1] = 'garbage'
      h.write(path, table.concat(lines, '\n') .. '\n')
      assert.equal(2, c:clear())
      r = assert(c:import(path))
      assert.same({ imported = 1, present = 0, bad = 2 }, r)
      assert.equal(1, c:stats().entries)
      r = assert(c:import(path))
      assert.same({ imported = 0, present = 1, bad = 2 }, r)
      -- into another namespace: checked as written, hashed again for where it goes
      r = assert(c:import(path, { namespace = 'copy' }))
      assert.same({ imported = 1, present = 0, bad = 2 }, r)
      local db <close> = raw_db()
      local row = db:first("SELECT key FROM cache_entries WHERE namespace = 'copy'")
      assert.truthy(c:get(row.key, { namespace = 'copy' }))
      assert.is_true(c:verify().ok)
    end)

    it('returns nil, msg, code for files it cannot read or write', function()
      if not h.needs(backend) then return end
      local r, msg, code = c:export('/nonexistent/dir/x.jsonl')
      assert.is_nil(r)
      assert.equal('io', code)
      assert.matches("^cache: export '/nonexistent/dir/x.jsonl': ", msg)
      r, msg, code = c:import('/nonexistent/x.jsonl')
      assert.is_nil(r)
      assert.equal('io', code)
      assert.matches("^cache: import '/nonexistent/x.jsonl': ", msg)
      local p = h.write(h.tmpdir() .. '/bad.jsonl', 'hello\n')
      r, msg, code = c:import(p)
      assert.is_nil(r)
      assert.equal('parse', code)
      assert.equal("cache: import '" .. p .. "': not an aegis cache export (no header line)", msg)
    end)

    it('verifies the database and every entry', function()
      if not h.needs(backend) then return end
      c:put(hash.sha256('v1'), { text = 'a', usage = {} })
      local v = assert(c:verify())
      assert.is_true(v.ok)
      assert.equal('ok', v.integrity)
      assert.equal(1, v.checked)
      assert.same({}, v.bad)
    end)

    it('raises on misuse and on a closed cache', function()
      if not h.needs(backend) then return end
      assert.error_matches(function() c:get('nothex') end, "bad argument #1 to 'get' %(key must be 64 lowercase hex")
      assert.error_matches(function() c:put(hash.sha256('m'), {}) end,
        "bad argument #2 to 'put' %(response must be a table with a string text%)")
      assert.error_matches(function() c:call(request(nil, 'x'), { nope = true }) end,
        "bad argument #2 to 'call' %(unknown option 'nope'%)")
      local bad = request(nil, 'x', { blocks = { { kind = 'task', stability = 'volatile', content = 'a' },
        { kind = 'rules', stability = 'stable', content = 'b' } } })
      assert.error_matches(function() c:call(bad) end,
        "bad argument #1 to 'call' %(blocks%[2%] is stable after a volatile block")
      bad.blocks = { { kind = 'task', stability = 'sometimes', content = 'a' } }
      assert.error_matches(function() c:call(bad) end, "blocks%[1%]%.stability must be 'stable' or 'volatile'")
      bad.blocks = { { kind = 'task', stability = 'volatile', content = 1 } }
      assert.error_matches(function() c:call(bad) end, 'blocks%[1%]%.content must be a string')
      assert.error_matches(function() cache.open(backend.url, { limits = { ttl = 'soon' } }) end,
        "bad argument #2 to 'open' %(limits.ttl must be seconds")
      c:close()
      assert.is_true(c:close())
      assert.error_matches(function() c:get(hash.sha256('m')) end, 'attempt to use a closed cache')
      c = nil
    end)
  end)
end

describe('aegis.cache.open', function()
  it('refuses a file that carries a trigger on its tables (they would run even with trusted_schema=OFF)', function()
    local path = h.tmpdir() .. '/triggered.db'
    do
      local c = assert(cache.open('sqlite:' .. path))
      c:close()
      local db <close> = assert(store.open('sqlite:' .. path))
      assert(db:exec([[CREATE TRIGGER evil AFTER INSERT ON cache_entries BEGIN DELETE FROM cache_leases; END]]))
    end
    local c, msg, code = cache.open('sqlite:' .. path)
    assert.is_nil(c)
    assert.equal('corrupt', code)
    assert.equal("cache: open 'sqlite:" .. path .. "': trigger 'evil' on cache_entries (refused: the cache's tables "
      .. 'carry none)', msg)
  end)

  it('bounds the file itself with max_bytes when the cache is alone in it', function()
    local path = h.tmpdir() .. '/alone.db'
    local c = assert(cache.open('sqlite:' .. path, { gc_every = 10, limits = { max_bytes = 400 * 1024 } }))
    -- 2.5 KB answers: two to a 4 KB page at best, so the file holds more than the entries' bytes
    for i = 1, 400 do c:put(hash.sha256('a' .. i), { text = ('x'):rep(2500), usage = {} }) end
    local function file()
      return c.db:first('PRAGMA page_count').page_count * c.db:first('PRAGMA page_size').page_size
    end
    c.db:exec('ANALYZE')  -- sqlite_stat1, as PRAGMA optimize makes on close: still the cache alone
    assert.is_true(file() <= 400 * 1024 * 1.05, 'automatic rotation kept the file near the limit: ' .. file())
    assert(c:gc())
    assert.is_true(file() <= 400 * 1024, 'file ' .. file())
    local s = c:stats()
    assert.is_true(s.entries > 50 and s.bytes < 400 * 1024)
    c:close()
  end)

  it('gives a new SQLite file auto_vacuum=INCREMENTAL, so rotation shrinks it', function()
    local path = h.tmpdir() .. '/shrink.db'
    local c = assert(cache.open('sqlite:' .. path))
    assert.equal(2, c.db:first('PRAGMA auto_vacuum').auto_vacuum)
    for i = 1, 60 do c:put(hash.sha256('s' .. i), { text = ('x'):rep(20000), usage = {} }) end
    local before = c.db:first('PRAGMA page_count').page_count
    local r = assert(c:gc({ max_entries = 2 }))
    assert.equal(59, r.evicted)  -- 5 % below 2 is 1 entry
    assert.is_true(r.pages_freed > 0)
    assert.equal(0, c.db:first('PRAGMA freelist_count').freelist_count)
    assert.is_true(c.db:first('PRAGMA page_count').page_count < before / 10)
    c:close()
    -- an existing file is left as it is
    local db <close> = assert(store.open('sqlite:' .. h.tmpdir() .. '/other.db'))
    assert(db:exec('CREATE TABLE other (x INTEGER)'))
    local c2 = assert(cache.open(nil, { store = db }))
    assert.equal(0, db:first('PRAGMA auto_vacuum').auto_vacuum)
    c2:close()
  end)

  it('refuses a damaged SQLite file (quick_check on open), unless check = false', function()
    local path = h.tmpdir() .. '/damaged.db'
    do
      local c = assert(cache.open('sqlite:' .. path))
      for i = 1, 50 do c:put(hash.sha256('d' .. i), { text = ('x'):rep(3000), usage = {} }) end
      c:close()
    end
    -- scribble over a page in the middle of the file (not the header)
    local f = assert(io.open(path, 'r+b'))
    local size = f:seek('end')
    f:seek('set', size // 2)
    f:write(('\255\0'):rep(2048))
    f:close()
    local c, msg, code = cache.open('sqlite:' .. path)
    assert.is_nil(c)
    assert.equal('corrupt', code)
    assert.matches("^cache: open 'sqlite:" .. path:gsub('%p', '%%%0') .. "': ", msg)
    assert.truthy(io.open(path))  -- left where it is
    c = assert(cache.open('sqlite:' .. path, { check = false }))
    c:close()
  end)

  it('returns nil, msg, code when the store cannot be opened', function()
    local c, msg, code = cache.open('sqlite:/nonexistent/dir/c.db')
    assert.is_nil(c)
    assert.equal('io', code)
    assert.matches("^cache: open 'sqlite:/nonexistent/dir/c.db': ", msg)
  end)

  it('uses config.cache.url and declares the cache section', function()
    local config = require('aegis.config')
    local dir = h.tmpdir()
    local cfg = assert(config.validate({ cache = { url = 'sqlite:' .. dir .. '/c.db', ttl = '7d' } }))
    assert.equal('7d', cfg.cache.ttl)
    local _, err = config.validate({ cache = { max_entries = 0 } })
    assert.equal('config', err.code)
  end)
end)
