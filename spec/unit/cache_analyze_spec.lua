-- aegis.cache.analyze: statistics and performance analysis over the cache
-- tables, on both backends, and the provider prefix-cache rules.
local h = require('spec.helpers')

local analyze = require('aegis.cache.analyze')
local cache = require('aegis.cache')
local hash = require('aegis.hash')
local json = require('aegis.json')
local scaffold = require('aegis.scaffold')
local store = require('aegis.store')
local uuid = require('aegis.uuid')

local function open(b)
  if b.name == 'sqlite' then return assert(store.open('sqlite:' .. h.tmpdir() .. '/aegis.db')) end
  local db = assert(store.open(b.url))
  local schema = 'analyze_spec_' .. uuid.v4():gsub('-', '')
  assert(db:exec('CREATE SCHEMA ' .. schema))
  assert(db:exec('SET search_path TO ' .. schema))
  return db
end

local REQS = string.rep('Every exported function has a doc comment and a test. ', 100)
local FILES = 'src/parser.ts\nsrc/lexer.ts\n'
local STYLE = 'Strict TypeScript.'

local function input(task, over)
  local t = {
    provider = 'openai', model = 'gpt-5.4', params = { max_tokens = 100 },
    blocks = {
      { kind = 'requirements', stability = 'stable', content = REQS },
      { kind = 'file_map', stability = 'stable', content = FILES },
      { kind = 'style_guide', stability = 'stable', content = STYLE },
      { kind = 'task', stability = 'volatile', content = task },
    },
  }
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end

-- What `cache:call` records for one request of a resolved scaffold: the
-- entry (on a miss) and the event.
local seq = 0
local function record(db, c, r, outcome, fields)
  fields = fields or {}
  seq = seq + 1
  local key, canon = cache.key(r.request)
  if outcome == 'miss' then
    assert(c:put(key, { text = 'answer ' .. seq, usage = { input = 1, output = 1 } },
      { request = canon, scaffold_id = r.scaffold_id, prefix_hash = r.prefix_hash }))
  end
  local blocks = {}
  for i, b in ipairs(r.blocks) do blocks[i] = { kind = b.kind, hash = b.hash, stability = b.stability } end
  assert(db:exec([[INSERT INTO cache_events (at, namespace, key, outcome, scaffold_id, provider, model, prefix_hash,
    block_hashes, input_tokens, cached_input, output_tokens, cost, saved_cost)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)]],
    fields.at or (1800000000000 + seq * 1000), 'default', key, outcome, r.scaffold_id, r.provider, r.model,
    r.prefix_hash, json.canonical(json.array(blocks)), fields.input or 1000, fields.cached or 0,
    fields.output or 50, fields.cost or 0.01, outcome == 'hit' and (fields.saved or 0.01) or store.null))
  return key
end

describe('aegis.cache.analyze rules', function()
  it('knows each provider\'s minimum prefix, step and TTL', function()
    assert.same({ mode = 'breakpoint', min_tokens = 1024, step = 1, ttl = 300 },
      analyze.rules('anthropic', 'claude-sonnet-4-5'))
    assert.equal(3600, analyze.rules('anthropic', 'claude-sonnet-4-5', '1h').ttl)
    assert.equal(2048, analyze.rules('anthropic', 'claude-3-5-haiku-20241022').min_tokens)
    assert.equal(4096, analyze.rules('anthropic', 'claude-haiku-4-5').min_tokens)
    assert.equal(4096, analyze.rules('anthropic', 'claude-opus-4-5').min_tokens)
    assert.same({ mode = 'automatic', min_tokens = 1024, step = 128, ttl = 300 }, analyze.rules('openai', 'gpt-5.4'))
    assert.same({ mode = 'automatic', min_tokens = 16, step = 16 }, analyze.rules('vllm', 'q'))
    assert.same({ mode = 'automatic', min_tokens = 1, step = 1 }, analyze.rules('sglang', 'q'))
    assert.same({ mode = 'slot', min_tokens = 1, step = 1 }, analyze.rules('llamacpp', 'q'))
    assert.equal('unknown', analyze.rules('mine', 'x').mode)
    assert.error_matches(function() analyze.rules(1, 'x') end, "bad argument #1 to 'rules' %(string expected")
  end)

  it('rounds cacheable prefixes per the rules', function()
    local o = analyze.rules('openai', 'gpt-5.4')
    assert.equal(0, analyze.cacheable(o, 1023))
    assert.equal(1024, analyze.cacheable(o, 1100))
    assert.equal(1152, analyze.cacheable(o, 1200))
    assert.equal(1500, analyze.cacheable(analyze.rules('anthropic', 'claude-sonnet-4-5'), 1500))
  end)

  it('finds values that change per request', function()
    assert.same({}, analyze.volatile_markers('version 1.2.3, port 8080, 12:30'))
    assert.same({ { what = 'a timestamp', sample = '2026-11-28T10:00:01.5Z' } },
      analyze.volatile_markers('built 2026-11-28T10:00:01.5Z ok'))
    assert.same({ { what = 'a date', sample = '2026-11-28' } }, analyze.volatile_markers('as of 2026-11-28.'))
    assert.same({ { what = 'a time of day', sample = '10:00:01' } }, analyze.volatile_markers('at 10:00:01'))
    assert.same({ { what = 'a unix time', sample = '1764324000' } }, analyze.volatile_markers('t=1764324000'))
    assert.same({ { what = 'a uuid', sample = '0b5d2f1e-3c4a-4e59-9b6a-1f2e3d4c5b6a' } },
      analyze.volatile_markers('id 0b5d2f1e-3c4a-4e59-9b6a-1f2e3d4c5b6a'))
    assert.error_matches(function() analyze.volatile_markers(nil) end,
      "bad argument #1 to 'volatile_markers' %(string expected, got nil%)")
  end)

  it('reads stored times', function()
    assert.equal(1800000000, analyze.seconds(1800000000000))
    assert.equal(1800000000, analyze.seconds(1800000000))
    assert.equal(0, analyze.seconds('1970-01-01T00:00:00Z'))
    assert.equal(1764324000.25, analyze.seconds('2025-11-28T10:00:00.25Z'))
    assert.equal(1764324000, analyze.seconds('2025-11-28 10:00:00'))
    assert.is_nil(analyze.seconds('yesterday'))
    assert.is_nil(analyze.seconds(nil))
  end)

  it('names the fields in which two requests differ', function()
    local a = { model = 'm', params = { temperature = 0, max_tokens = 10 },
      blocks = { { kind = 'task', content = 'a' } } }
    local b = { model = 'm', params = { temperature = 0.5, max_tokens = 10 },
      blocks = { { kind = 'task', content = 'b' } }, seed = 1 }
    assert.same({ 'blocks[1].content', 'params.temperature', 'seed' }, analyze.diff(a, b))
    assert.same({}, analyze.diff(json.canonical(a), a))
    assert.same({ 'blocks[1].content', 'system' }, analyze.diff(
      { system_sha256 = hash.sha256('a'), blocks = { { content_sha256 = hash.sha256('x') } } },
      { system_sha256 = hash.sha256('b'), blocks = { { content_sha256 = hash.sha256('y') } } }))
  end)

  it('predicts no hit without history, a short prefix or a breakpoint', function()
    local info = { provider = 'anthropic', model = 'claude-sonnet-4-5', prefix_hash = hash.sha256('p'),
      prefix_tokens = 2000 }
    assert.same({ hit = false, cached_tokens = 0, writes = 2000, reason = 'stable prefix not sent before' },
      analyze.predict_prefix(info))
    info.prefix_tokens = 500
    assert.equal('stable prefix of ~500 tokens is under the minimum of 1024', analyze.predict_prefix(info).reason)
    info.prefix_tokens, info.has_breakpoint = 2000, false
    assert.equal('no cache_control breakpoint in the request', analyze.predict_prefix(info).reason)
    assert.equal('no stable prefix', analyze.predict_prefix({ provider = 'openai', model = 'x' }).reason)
    assert.equal("no prefix-cache rules for provider 'mine'",
      analyze.predict_prefix({ provider = 'mine', model = 'x' }).reason)
  end)
end)

describe('aegis.cache.analyze over the tables', function()
  for _, b in ipairs(h.store_backends()) do
    describe(b.name, function()
      it('counts nothing in a store without cache tables', function()
        if not h.needs(b) then return end
        local db = open(b)
        local st = assert(analyze.stats(db))
        assert.equal(0, st.entries)
        assert.equal(0, st.hits)
        assert.equal(json.null, st.hit_rate)
        local perf = assert(analyze.performance(db))
        assert.equal(0, perf.stable_scaffold.requests)
        assert.equal(json.null, perf.stable_scaffold.hit_rate)
        db:close()
      end)

      it('returns the store failure for tables it cannot read', function()
        if not h.needs(b) then return end
        local db = open(b)
        assert(db:exec('CREATE TABLE cache_events (at BIGINT)'))  -- no id, no outcome
        local st, msg, code = analyze.stats(db)
        assert.is_nil(st)
        assert.equal('sql', code)
        assert.matches("^cache: analyze '.-': query 'SELECT %* FROM cache_events ORDER BY id': .*id", msg)
        local perf
        perf, msg, code = analyze.performance(db)
        assert.is_nil(perf)
        assert.equal('sql', code)
        assert.matches("^cache: analyze '.-': query 'SELECT %* FROM cache_events", msg)
        db:close()
      end)

      it('gives hits, misses and hit rates overall, per block kind and per scaffold, and what was saved', function()
        if not h.needs(b) then return end
        local db = open(b)
        local c = assert(cache.open(nil, { store = db }))
        local r1 = assert(scaffold.resolve(input('Write src/parser.ts'), { store = db }))
        local r2 = assert(scaffold.resolve(input('Write src/lexer.ts'), { store = db }))
        local other = assert(scaffold.resolve(input('Write a README', { model = 'gpt-5.4-mini' }), { store = db }))
        record(db, c, r1, 'miss', { input = 1200, cached = 0 })
        record(db, c, r2, 'miss', { input = 1200, cached = 1152 })
        record(db, c, r1, 'hit', { input = 1200, output = 50, saved = 0.02 })
        record(db, c, r1, 'hit', { input = 1200, output = 50, saved = 0.02 })
        record(db, c, other, 'miss', { input = 1200, cached = 0 })
        local st = assert(analyze.stats(db))
        assert.equal(3, st.entries)
        assert.equal(2, st.hits)
        assert.equal(3, st.misses)
        assert.near(0.4, st.hit_rate, 1e-12)
        assert.equal(2 * 1250, st.tokens_saved)
        assert.near(0.04, st.cost_saved, 1e-12)
        local size = db:first('SELECT bytes FROM cache_entries WHERE key = $1', (cache.key(r1.request))).bytes
        assert.equal(2 * size, st.bytes_saved)
        assert.same({ calls = 3, input_tokens = 3600, cached_input = 1152, cached_rate = 1152 / 3600 }, st.provider)
        assert.same({ requests = 5, hits = 2, misses = 3, reused = 4, hit_rate = 0.4 }, st.by_kind.requirements)
        assert.same({ requests = 5, hits = 2, misses = 3, reused = 2, hit_rate = 0.4 }, st.by_kind.task)
        assert.equal(2, #st.by_scaffold)
        assert.same({ scaffold_id = r1.scaffold_id, provider = 'openai', model = 'gpt-5.4', requests = 4, hits = 2,
          misses = 2, hit_rate = 0.5 }, st.by_scaffold[1])
        assert.equal(1, st.by_scaffold[2].requests)
        -- one namespace only
        assert.equal(0, assert(analyze.stats(db, { namespace = 'other' })).hits)
        c:close()
        db:close()
      end)

      it('counts a row that stands for several hits of one entry (n) as that many', function()
        if not h.needs(b) then return end
        local db = open(b)
        local c = assert(cache.open(nil, { store = db }))
        local r = assert(scaffold.resolve(input('Write src/parser.ts'), { store = db }))
        local key = record(db, c, r, 'miss', { input = 1200, cached = 0 })
        -- what aegis.cache writes for the hits of c:call between two flushes
        assert(db:exec([[INSERT INTO cache_events (at, namespace, key, outcome, provider, model, input_tokens,
          cached_input, output_tokens, cost, saved_cost, n) VALUES ($1, 'default', $2, 'hit', 'openai', 'gpt-5.4',
          1200, 0, 50, 0, 0.02, 3)]], 1800000999000, key))
        local st = assert(analyze.stats(db))
        assert.equal(3, st.hits)
        assert.equal(1, st.misses)
        assert.near(0.75, st.hit_rate, 1e-12)
        assert.equal(3 * 1250, st.tokens_saved)
        assert.near(0.06, st.cost_saved, 1e-12)
        c:close()
        db:close()
      end)

      it('reports the stable-scaffold hit rate, prefix breakers, top misses and provider prefix hits', function()
        if not h.needs(b) then return end
        local db = open(b)
        local c = assert(cache.open(nil, { store = db }))
        -- ten tasks on one scaffold: 9 of 10 reuse the stable prefix
        local rs = {}
        for i = 1, 10 do
          rs[i] = assert(scaffold.resolve(input('Write src/file' .. i .. '.ts'), { store = db }))
          record(db, c, rs[i], 'miss', { cached = i > 1 and 1152 or 0 })
        end
        -- a scaffold whose file map keeps changing, with a date in it, and a volatile block placed first
        for i = 1, 3 do
          local t = input('Task ' .. i, { name = 'drifting' })
          t.blocks[2] = { kind = 'file_map', stability = 'stable', content = FILES .. 'generated 2026-11-0' .. i }
          table.insert(t.blocks, 1, table.remove(t.blocks, 4))
          record(db, c, assert(scaffold.resolve(t, { store = db })), 'miss')
        end
        -- a near miss: same task as rs[1], another temperature
        local near = assert(scaffold.resolve(input('Write src/file1.ts', { params = { max_tokens = 100,
          temperature = 0.7 } }), { store = db }))
        record(db, c, near, 'miss', { cost = 0.5 })

        local perf = assert(analyze.performance(db))
        local ss = perf.stable_scaffold
        assert.equal(14, ss.requests)
        -- 9 of the ten and the near miss; none of the drifting three (each has another prefix)
        assert.equal(10, ss.prefix_seen)
        assert.near(10 / 14, ss.hit_rate, 1e-12)

        local types = {}
        for _, br in ipairs(perf.breakers) do
          types[br.type] = types[br.type] or {}
          table.insert(types[br.type], br)
        end
        assert.equal(3, #types.volatile_before_stable)
        assert.matches("volatile block 'task' %(#1%) comes before stable block 'requirements' %(#2%)",
          types.volatile_before_stable[1].detail)
        assert.equal(3, #types.volatile_content)
        assert.matches("stable block 'file_map' %(%x+%) contains a date '2026%-11%-0%d'",
          types.volatile_content[1].detail)
        assert.equal(1, #types.changing_stable_block)
        local ch = types.changing_stable_block[1]
        assert.same({ 'drifting', 'file_map', 3, 3 }, { ch.family, ch.kind, ch.versions, ch.requests })
        assert.equal("stable block 'file_map' of scaffold 'drifting' had 3 different contents over 3 requests",
          ch.detail)

        local top = perf.top_missed
        assert.equal(10, #top)
        assert.equal(cache.key(near.request), top[1].key)
        assert.equal(cache.key(rs[1].request), top[1].nearest)
        assert.same({ 'params.temperature' }, top[1].fields)
        assert.equal('params.temperature', top[1].field)
        local task_misses = 0
        for i = 2, #top do
          if top[i].field_is == 'volatile block task' then
            task_misses = task_misses + 1
            assert.equal('blocks[4].content', top[i].field)
          end
        end
        assert.is_true(task_misses >= 8)

        local pp = perf.provider_prefix
        assert.equal(14, pp.calls)
        assert.equal(10, pp.predicted_hits)   -- the same prefixes, all over 1024 tokens, within 5 minutes
        assert.equal(9, pp.observed_hits)
        assert.same({ calls = 14, predicted_hits = 10, observed_hits = 9, mode = 'automatic', min_tokens = 1024 },
          pp.by_provider.openai)
        -- limited list
        assert.equal(3, #assert(analyze.performance(db, { top = 3 })).top_missed)
        c:close()
        db:close()
      end)

      it('predicts no provider hit past the TTL', function()
        if not h.needs(b) then return end
        local db = open(b)
        local c = assert(cache.open(nil, { store = db }))
        local r = assert(scaffold.resolve(input('a'), { store = db }))
        record(db, c, r, 'miss', { at = 1800000000000 })
        record(db, c, assert(scaffold.resolve(input('b'), { store = db })), 'miss', { at = 1800000000000 + 600000 })
        record(db, c, assert(scaffold.resolve(input('c'), { store = db })), 'miss', { at = 1800000000000 + 660000 })
        local pp = assert(analyze.performance(db)).provider_prefix
        assert.equal(3, pp.calls)
        assert.equal(1, pp.predicted_hits)
        c:close()
        db:close()
      end)
    end)
  end
end)
