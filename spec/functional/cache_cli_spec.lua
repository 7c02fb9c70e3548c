-- `aegis-run cache ...` and `aegis-run call --cache` against the provider
-- emulator, on SQLite and PostgreSQL.
local h = require('spec.helpers')
local emu = require('spec.fixtures.emulator.client')
local json = require('aegis.json')
local store = require('aegis.store')
local uuid = require('aegis.uuid')

-- A fresh cache store URL for a backend: a new SQLite file, or a new schema
-- on the shared PostgreSQL (reached through the URL's search_path).
local function fresh(b)
  if b.name == 'sqlite' then return 'sqlite:' .. h.tmpdir() .. '/cache.db' end
  local schema = 'cache_cli_' .. uuid.v4():gsub('-', '')
  local db = assert(store.open(b.url))
  assert(db:exec('CREATE SCHEMA ' .. schema))
  db:close()
  return b.url .. (b.url:find('?', 1, true) and '&' or '?') .. 'options=-csearch_path%3D' .. schema
end

describe('aegis-run cache', function()
  local e, dir, env

  lazy_setup(function()
    e = emu.start()
    dir = h.tmpdir()
    h.write(dir .. '/system.txt', string.rep('Write strict TypeScript with tests for every function. ', 100))
    env = { OPENAI_API_KEY = 'sk-test', OPENAI_BASE_URL = e.base.openai, AEGIS_STORE = 'sqlite:' .. dir .. '/p.db' }
  end)
  lazy_teardown(function() if e then e:stop() end end)

  local function run(args, extra)
    local en = {}
    for k, v in pairs(env) do en[k] = v end
    for k, v in pairs(extra or {}) do en[k] = v end
    return h.run(args, { cwd = dir, env = en })
  end

  local function call(url, prompt, more)
    local args = { 'call', '--provider', 'openai', '--model', 'gpt-5.4', '--system', 'system.txt', '--cache',
      '--store', url }
    for _, a in ipairs(more or {}) do args[#args + 1] = a end
    args[#args + 1] = prompt
    return run(args)
  end

  local function jrun(args)
    local r = run(args)
    assert.equal(0, r.code, r.stderr)
    return assert(json.decode(r.stdout)), r
  end

  describe('usage', function()
    it('prints its help', function()
      local r = run({ 'cache', '--help' })
      assert.equal(0, r.code)
      assert.matches('usage: aegis%-run cache COMMAND', r.stdout)
      assert.matches('analyze %[%-%-performance%]', r.stdout)
      r = run({ 'cache', 'stats', '--help' })
      assert.equal(0, r.code)
      assert.matches('usage: aegis%-run cache COMMAND', r.stdout)
    end)

    it('refuses a missing or unknown command, unknown options and missing values (exit 2)', function()
      local cases = {
        { { 'cache' }, 'aegis%-run: cache: a command is needed %(see aegis%-run cache %-%-help%)' },
        { { 'cache', 'purge' }, "aegis%-run: cache: unknown command 'purge'" },
        { { 'cache', 'stats', '--fast' }, "aegis%-run: cache stats: unknown argument '%-%-fast'" },
        { { 'cache', 'stats', '--store' }, "aegis%-run: cache stats: option '%-%-store' needs a value" },
        { { 'cache', 'export' }, 'aegis%-run: cache export: a FILE is needed' },
        { { 'cache', 'analyze', '--top', 'x' }, "cache analyze: %-%-top must be a positive integer, got 'x'" },
        { { 'cache', 'gc', '--ttl', 'soon' }, 'aegis%-run: cache gc: .*ttl must be seconds or a duration' },
        { { 'call', '--provider', 'openai', '--model', 'm', '--store', 'sqlite:x.db', 'hi' },
          'aegis%-run: call: %-%-store needs %-%-cache' },
      }
      for _, c in ipairs(cases) do
        local r = run(c[1])
        assert.equal(2, r.code, table.concat(c[1], ' '))
        assert.matches(c[2], r.stderr)
      end
    end)

    it('says which store it cannot open (exit 2)', function()
      local r = run({ 'cache', 'stats', '--store', 'sqlite:' .. dir .. '/no/such/dir/c.db' })
      assert.equal(2, r.code)
      assert.matches("^aegis%-run: cache: open 'sqlite:" .. dir:gsub('%p', '%%%0') .. "/no/such/dir/c%.db'", r.stderr)
    end)

    it('calls the provider without the cache when the cache cannot be opened (RELIABILITY F3, F4)', function()
      local c = call('sqlite:' .. dir .. '/no/such/dir/c.db', 'hi')
      assert.equal(0, c.code, c.stderr)
      assert.matches("aegis%-run: warning: cache: open 'sqlite:.-/no/such/dir/c%.db'.-; calling the provider "
        .. 'without the cache', c.stderr)
      assert.is_true(#c.stdout > 0)
      assert.is_nil(c.stderr:find('cache: miss', 1, true))
      c = call('nosuchscheme:x', 'hi')   -- a URL that is wrong, not a cache that failed: usage
      assert.equal(2, c.code)
    end)
  end)

  for _, b in ipairs(h.store_backends()) do
    describe(b.name, function()
      it('sends calls through the cache and counts hits and misses', function()
        if not h.needs(b) then return end
        local url = fresh(b)
        e:reset()
        local r1 = call(url, 'Write src/a.ts')
        assert.equal(0, r1.code, r1.stderr)
        assert.matches('aegis%-run: cache: miss', r1.stderr)
        local r2 = call(url, 'Write src/a.ts')
        assert.equal(0, r2.code, r2.stderr)
        assert.matches('aegis%-run: cache: hit', r2.stderr)
        assert.equal(r1.stdout, r2.stdout)
        local j = jrun({ 'call', '--provider', 'openai', '--model', 'gpt-5.4', '--system', 'system.txt', '--cache',
          '--store', url, '--json', 'Write src/b.ts' })
        assert.equal('miss', j.cache)
        -- the emulator's prefix cache: the system text was sent before (in 128-token steps)
        assert.is_true(j.usage.cached_input >= 1024)
        assert.equal(0, j.usage.cached_input % 128)
        assert.equal(2, #e:log())                 -- the hit made no request
        -- a streamed call is stored with its chunks and replayed from the cache
        local s1 = call(url, 'Write src/c.ts', { '--stream' })
        assert.equal(0, s1.code, s1.stderr)
        assert.matches('aegis%-run: cache: miss', s1.stderr)
        local s2 = call(url, 'Write src/c.ts', { '--stream' })
        assert.matches('aegis%-run: cache: hit', s2.stderr)
        assert.equal(s1.stdout, s2.stdout)
        assert.equal(3, #e:log())

        local st = jrun({ 'cache', 'stats', '--json', '--store', url })
        assert.equal(3, st.entries)
        assert.is_true(st.bytes > 0)
        assert.equal(2, st.hits)
        assert.equal(3, st.misses)
        assert.near(2 / 5, st.hit_rate, 1e-12)
        assert.equal(5, st.by_kind.task.requests)
        assert.equal(1, #st.by_scaffold)
        assert.is_true(st.provider.cached_input >= 2 * j.usage.cached_input)

        local text = run({ 'cache', 'stats', '--store', url })
        assert.equal(0, text.code)
        assert.matches('entries    3 %(', text.stdout)
        assert.matches('requests   5: 2 hits, 3 misses, hit rate 40%.0 %%', text.stdout)

        local a = jrun({ 'cache', 'analyze', '--performance', '--json', '--store', url })
        assert.equal(2, a.hits)
        assert.equal(5, a.performance.stable_scaffold.requests)
        assert.equal(4, a.performance.stable_scaffold.prefix_seen)
        assert.equal(3, a.performance.provider_prefix.calls)
        assert.equal(2, a.performance.provider_prefix.predicted_hits)
        assert.equal(2, a.performance.provider_prefix.observed_hits)
        assert.equal(3, #a.performance.top_missed)
        assert.equal('blocks[1].content', a.performance.top_missed[1].field)
        local at = run({ 'cache', 'analyze', '--performance', '--store', url })
        assert.equal(0, at.code)
        assert.matches('stable scaffolds  4 of 5 requests reused a stable prefix sent before: 80%.0 %%', at.stdout)
        assert.matches('prefix breakers   none found', at.stdout)
        assert.matches('blocks%[1%]%.content %(volatile block task%) vs %x+', at.stdout)
      end)

      it('verifies, and exits 1 naming an entry whose response changed', function()
        if not h.needs(b) then return end
        local url = fresh(b)
        assert.equal(0, call(url, 'Write src/a.ts').code)
        assert.equal(0, call(url, 'Write src/b.ts').code)
        local v = jrun({ 'cache', 'verify', '--json', '--store', url })
        assert.same({ ok = true, integrity = 'ok', checked = 2, bad = {} }, v)
        local ok = run({ 'cache', 'verify', '--store', url })
        assert.equal(0, ok.code)
        assert.matches('checked    2 entries, 0 bad', ok.stdout)

        local db = assert(store.open(url))
        local key = db:first('SELECT key FROM cache_entries ORDER BY key LIMIT 1').key
        assert(db:exec('UPDATE cache_entries SET response = $1 WHERE key = $2',
          store.blob('{"text":"forged"}'), key))
        db:close()
        local bad = run({ 'cache', 'verify', '--store', url })
        assert.equal(1, bad.code)
        assert.matches(key:sub(1, 12) .. ': response hash mismatch', bad.stdout, 1, true)
        assert.matches('problems found', bad.stdout)
        local bj = run({ 'cache', 'verify', '--json', '--store', url })
        assert.equal(1, bj.code)
        local vj = json.decode(bj.stdout)
        assert.is_false(vj.ok)
        assert.equal(key, vj.bad[1].key)
      end)

      it('exports, clears (saying what it removed) and imports', function()
        if not h.needs(b) then return end
        local url = fresh(b)
        for _, t in ipairs({ 'a', 'b', 'c' }) do assert.equal(0, call(url, 'Write src/' .. t .. '.ts').code) end
        local file = h.tmpdir() .. '/cache.jsonl'
        local ex = jrun({ 'cache', 'export', file, '--json', '--store', url })
        assert.same({ exported = 3, skipped = 0, file = file }, ex)
        local cl = run({ 'cache', 'clear', '--store', url })
        assert.equal(0, cl.code)
        assert.matches('^removed 3 entries %(%d+%.%d KiB%) from every namespace of ', cl.stdout)
        local st = jrun({ 'cache', 'stats', '--json', '--store', url })
        assert.equal(0, st.entries)
        assert.equal(0, st.hits + st.misses)
        local im = run({ 'cache', 'import', file, '--store', url })
        assert.equal(0, im.code, im.stderr)
        assert.matches('imported 3 entries from .- %(0 already present, 0 bad%)', im.stdout)
        assert.equal(3, jrun({ 'cache', 'stats', '--json', '--store', url }).entries)
        -- the imported answers are served
        e:reset()
        local again = call(url, 'Write src/b.ts')
        assert.matches('cache: hit', again.stderr)
        assert.equal(0, #e:log())
        local cj = jrun({ 'cache', 'clear', '--json', '--namespace', 'default', '--store', url })
        assert.equal(3, cj.entries)
        assert.equal('default', cj.namespace)
        local missing = run({ 'cache', 'import', dir .. '/nothing.jsonl', '--store', url })
        assert.equal(1, missing.code)
        assert.matches("aegis%-run: cache: import '.-/nothing%.jsonl': .-No such file", missing.stderr)
      end)

      it('collects garbage down to the limits given', function()
        if not h.needs(b) then return end
        local url = fresh(b)
        for _, t in ipairs({ 'a', 'b', 'c', 'd' }) do assert.equal(0, call(url, 'Write src/' .. t .. '.ts').code) end
        local g = jrun({ 'cache', 'gc', '--max-entries', '2', '--json', '--store', url })
        assert.is_true(g.evicted >= 2)
        assert.is_true(jrun({ 'cache', 'stats', '--json', '--store', url }).entries <= 2)
        local t = run({ 'cache', 'gc', '--store', url })
        assert.equal(0, t.code)
        assert.matches('gc: removed', t.stdout)
      end)
    end)
  end
end)
