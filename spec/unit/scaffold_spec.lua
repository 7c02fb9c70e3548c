-- aegis.scaffold: resolving scaffolds into provider requests, and storing
-- blocks and scaffolds deduplicated by hash, on both backends.
local h = require('spec.helpers')

local hash = require('aegis.hash')
local scaffold = require('aegis.scaffold')
local store = require('aegis.store')
local uuid = require('aegis.uuid')

local function open(b)
  if b.name == 'sqlite' then return assert(store.open('sqlite:' .. h.tmpdir() .. '/aegis.db')) end
  local db = assert(store.open(b.url))
  local schema = 'scaffold_spec_' .. uuid.v4():gsub('-', '')
  assert(db:exec('CREATE SCHEMA ' .. schema))
  assert(db:exec('SET search_path TO ' .. schema))
  return db
end

local REQS = string.rep('The parser accepts TypeScript modules and reports errors with positions. ', 80)
local FILES = 'src/parser.ts\nsrc/lexer.ts\nsrc/ast.ts\n'
local STYLE = 'Use strict TypeScript; no any; two-space indentation.'

local function input(task, extra)
  local t = {
    provider = 'anthropic', model = 'claude-sonnet-4-5',
    blocks = {
      { kind = 'requirements', stability = 'stable', content = REQS },
      { kind = 'file_map', stability = 'stable', content = FILES },
      { kind = 'style_guide', stability = 'stable', content = STYLE },
      { kind = 'task', stability = 'volatile', content = task or 'Write src/parser.ts' },
    },
    params = { max_tokens = 200 },
  }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

describe('aegis.scaffold.resolve', function()
  it('puts stable blocks first, keeping their relative order, and warns about the move', function()
    local r = assert(scaffold.resolve({
      provider = 'openai', model = 'gpt-5.4',
      blocks = {
        { kind = 'task', stability = 'volatile', content = 'T' },
        { kind = 'requirements', stability = 'stable', content = 'R' },
        { kind = 'context', stability = 'volatile', content = 'C' },
        { kind = 'style_guide', stability = 'stable', content = 'S' },
      },
    }))
    local kinds = {}
    for i, b in ipairs(r.request.blocks) do kinds[i] = b.kind end
    assert.same({ 'requirements', 'style_guide', 'task', 'context' }, kinds)
    assert.same(kinds, { r.blocks[1].kind, r.blocks[2].kind, r.blocks[3].kind, r.blocks[4].kind })
    assert.equal(2, #r.warnings)
    assert.equal("prefix breaker: volatile block 'task' (#1) comes before stable block 'requirements' (#2);"
      .. ' stable blocks were moved first', r.warnings[1])
    assert.matches("volatile block 'context' %(#3%) comes before stable block 'style_guide' %(#4%)", r.warnings[2])
  end)

  it('hashes each block, and the prefix as adapters render it', function()
    local r = assert(scaffold.resolve(input(nil, { system = 'You write TypeScript.' })))
    assert.same({ kind = 'system', stability = 'stable', hash = hash.sha256('You write TypeScript.') }, r.blocks[1])
    assert.equal(hash.sha256(REQS), r.blocks[2].hash)
    assert.equal(hash.sha256('Write src/parser.ts'), r.blocks[5].hash)
    assert.equal(hash.sha256(table.concat({ 'You write TypeScript.', REQS, FILES, STYLE }, '\n\n')), r.prefix_hash)
    -- the same prefix hash OpenAI's adapter sends as prompt_cache_key
    local o = assert(scaffold.resolve(input(nil, { system = 'You write TypeScript.', provider = 'openai',
      model = 'gpt-5.4' })))
    assert.equal(r.prefix_hash, o.http.body.prompt_cache_key)
  end)

  it('gives one scaffold id to requests that differ only in volatile content', function()
    local a = assert(scaffold.resolve(input('Write src/parser.ts')))
    local b = assert(scaffold.resolve(input('Write src/lexer.ts')))
    assert.equal(a.scaffold_id, b.scaffold_id)
    assert.equal(a.prefix_hash, b.prefix_hash)
    assert.matches('^%x+$', a.scaffold_id)
    assert.equal(64, #a.scaffold_id)
    assert.equal(hash.sha256(scaffold.canonical(input())), a.scaffold_id)
  end)

  it('gives another id when a stable block, the model or a parameter changes, within one family', function()
    local base = assert(scaffold.resolve(input()))
    local changed = input()
    changed.blocks[2].content = FILES .. 'src/new.ts\n'
    local c = assert(scaffold.resolve(changed))
    local m = assert(scaffold.resolve(input(nil, { model = 'claude-opus-4-1' })))
    local p = assert(scaffold.resolve(input(nil, { params = { max_tokens = 300 } })))
    assert.are_not.equal(base.scaffold_id, c.scaffold_id)
    assert.are_not.equal(base.scaffold_id, m.scaffold_id)
    assert.are_not.equal(base.scaffold_id, p.scaffold_id)
    assert.are_not.equal(base.prefix_hash, c.prefix_hash)
    assert.equal(base.family, c.family)
    assert.equal(base.family, p.family)
    assert.are_not.equal(base.family, m.family)
    local named = assert(scaffold.resolve(input(nil, { name = 'parser-file' })))
    assert.equal('name:parser-file', named.family)
    assert.are_not.equal(base.scaffold_id, named.scaffold_id)
  end)

  it('hands the request to the adapter: an Anthropic breakpoint at the end of the stable prefix', function()
    local r = assert(scaffold.resolve(input(nil, { cache = { ttl = '1h' } })))
    local sys = r.http.body.system
    assert.equal(3, #sys)
    assert.is_nil(sys[1].cache_control)
    assert.same({ type = 'ephemeral', ttl = '1h' }, sys[3].cache_control)
    assert.equal('Write src/parser.ts', r.http.body.messages[1].content[1].text)
    assert.is_nil(r.http.headers['x-api-key'])  -- no credentials
  end)

  it('estimates tokens and cost', function()
    local r = assert(scaffold.resolve(input()))
    local prompt = #REQS + #FILES + #STYLE + #'Write src/parser.ts' + 3 * 2
    assert.equal((prompt + 3) // 4, r.tokens.input_estimate)
    assert.equal((#REQS + #FILES + #STYLE + 4 + 3) // 4, r.tokens.prefix_estimate)
    assert.equal(200, r.tokens.output_estimate)
    -- nothing sent before: an Anthropic prefix of >= 1024 tokens is written at 5m rates
    local usage = { input = r.tokens.input_estimate, cached_input = 0, cache_write_5m = r.tokens.prefix_estimate,
      cache_write_1h = 0, output = 200 }
    assert.near(require('aegis.prices').cost('anthropic', 'claude-sonnet-4-5', usage), r.cost_estimate, 1e-12)
    assert.is_false(r.cache.prefix)
    assert.equal('stable prefix not sent before', r.cache.prefix_reason)
    assert.is_false(r.cache.response)
  end)

  it('gives no cost for a model without a price, and says why', function()
    local r = assert(scaffold.resolve(input(nil, { provider = 'vllm', model = 'my/model', params = {} })))
    assert.is_nil(r.cost_estimate)
    assert.matches("no price for vllm model 'my/model'", r.cost_note)
    assert.is_nil(r.tokens.output_estimate)
  end)

  it('names timestamps, dates and uuids inside stable blocks as prefix breakers', function()
    local t = input()
    t.blocks[1].content = 'Generated at 2026-11-28T10:00:00Z for run 0b5d2f1e-3c4a-4e59-9b6a-1f2e3d4c5b6a.'
    t.blocks[4].content = 'Today is 2026-11-28'  -- volatile: fine
    local r = assert(scaffold.resolve(t))
    assert.same({
      "prefix breaker: stable block 'requirements' contains a uuid '0b5d2f1e-3c4a-4e59-9b6a-1f2e3d4c5b6a'",
      "prefix breaker: stable block 'requirements' contains a timestamp '2026-11-28T10:00:00Z'",
    }, r.warnings)
  end)

  it('passes call options through to the request, and keeps its own out', function()
    local f = function() end
    local r = assert(scaffold.resolve(input(nil, { name = 'x', stream = true, on_delta = f, base_url = 'http://h:1',
      options = { version = '2023-06-01' } })))
    assert.equal(f, r.request.on_delta)
    assert.is_true(r.request.stream)
    assert.equal('http://h:1', r.request.base_url)
    assert.is_nil(r.request.name)
    assert.equal('http://h:1/v1/messages', r.http.url)
  end)

  it('returns the adapter failure for an unknown provider', function()
    local r, err = scaffold.resolve(input(nil, { provider = 'nosuch' }))
    assert.is_nil(r)
    assert.equal('config', err.code)
    assert.matches("no provider 'nosuch'", err.msg)
  end)

  it('returns the adapter failure for a request without a user turn', function()
    local t = input()
    t.blocks[4] = nil
    local r, err = scaffold.resolve(t)
    assert.is_nil(r)
    assert.equal('adapter', err.code)
    assert.matches('no user turn', err.msg)
  end)

  it('raises on misuse', function()
    assert.error_matches(function() scaffold.resolve('x') end,
      "bad argument #1 to 'resolve' %(table expected, got string%)")
    assert.error_matches(function() scaffold.resolve({ model = 'm', blocks = {} }) end,
      "bad argument #1 to 'resolve' %(provider must be a non%-empty string%)")
    assert.error_matches(function() scaffold.resolve({ provider = 'p', blocks = {} }) end,
      "bad argument #1 to 'resolve' %(model must be a non%-empty string%)")
    assert.error_matches(function() scaffold.resolve({ provider = 'p', model = 'm' }) end,
      "bad argument #1 to 'resolve' %(blocks must be a list%)")
    assert.error_matches(function()
      scaffold.resolve({ provider = 'p', model = 'm', blocks = { { kind = 'task', stability = 'sometimes',
        content = 'x' } } })
    end, "bad argument #1 to 'resolve' %(blocks%[1%]%.stability must be 'stable' or 'volatile'%)")
    assert.error_matches(function()
      scaffold.resolve({ provider = 'p', model = 'm',
        blocks = { { kind = 'a b', stability = 'stable', content = 'x' } } })
    end, "bad argument #1 to 'resolve' %(blocks%[1%]%.kind must be a name")
    assert.error_matches(function()
      scaffold.resolve({ provider = 'p', model = 'm', blocks = { { kind = 'task', stability = 'stable' } } })
    end, "bad argument #1 to 'resolve' %(blocks%[1%]%.content must be a string%)")
    assert.error_matches(function() scaffold.resolve(input(nil, { params = 3 })) end,
      "bad argument #1 to 'resolve' %(params must be a table%)")
    assert.error_matches(function() scaffold.resolve(input(), 'x') end,
      "bad argument #2 to 'resolve' %(table expected, got string%)")
  end)

  it('accepts custom kinds', function()
    local t = input()
    t.blocks[#t.blocks + 1] = { kind = 'api_docs', stability = 'stable', content = 'GET /x' }
    local r = assert(scaffold.resolve(t))
    assert.equal('api_docs', r.request.blocks[4].kind)
  end)
end)

describe('aegis.scaffold storage', function()
  for _, b in ipairs(h.store_backends()) do
    describe(b.name, function()
      it('stores blocks and scaffolds once, by hash', function()
        if not h.needs(b) then return end
        local db = open(b)
        local a = assert(scaffold.resolve(input('Write src/parser.ts'), { store = db }))
        assert(scaffold.resolve(input('Write src/lexer.ts'), { store = db }))
        assert(scaffold.resolve(input('Write src/parser.ts'), { store = db }))
        local n = db:first('SELECT count(*) AS n FROM blocks').n
        assert.equal(5, n)  -- 3 stable + 2 distinct tasks
        assert.equal(1, db:first('SELECT count(*) AS n FROM scaffolds').n)
        local row = assert(db:first('SELECT content, kind, bytes FROM blocks WHERE hash = $1', hash.sha256(REQS)))
        assert.same({ content = REQS, kind = 'requirements', bytes = #REQS }, row)
        local s = assert(scaffold.load(db, a.scaffold_id))
        assert.equal('anthropic', s.provider)
        assert.equal(a.prefix_hash, s.prefix_hash)
        assert.equal(a.tokens.prefix_estimate, s.prefix_tokens)
        assert.same({ max_tokens = 200 }, s.params)
        assert.equal(STYLE, s.blocks[3].content)
        assert.equal('task', s.blocks[4].kind)
        assert(scaffold.schemas.scaffold:parse(s))
        for _, blk in ipairs(input().blocks) do assert(scaffold.schemas.block:parse(blk)) end
        assert.is_nil(scaffold.load(db, string.rep('0', 64)))
        db:close()
      end)

      it('returns the store failure when the scaffold cannot be stored or loaded', function()
        if not h.needs(b) then return end
        local db = open(b)
        -- a table in the way of the migration
        assert(db:exec('CREATE TABLE blocks (x INTEGER)'))
        local r, err = scaffold.resolve(input(), { store = db })
        assert.is_nil(r)
        assert.equal('sql', err.code)
        assert.matches("^scaffold: save '%x+': migrate 'scaffold': version 1: .*blocks", err.msg)
        local row, msg, code = scaffold.load(db, string.rep('a', 64))
        assert.is_nil(row)
        assert.equal('sql', code)
        assert.matches("^scaffold: load 'aaaaaaaaaaaa': migrate 'scaffold'", msg)
        db:close()
      end)

      it('predicts a provider prefix hit from the cache events', function()
        if not h.needs(b) then return end
        local db = open(b)
        local r = assert(scaffold.resolve(input(), { store = db }))
        assert.is_false(r.cache.prefix)
        assert(db:exec([[CREATE TABLE IF NOT EXISTS cache_events (id INTEGER, at BIGINT, namespace TEXT, key TEXT,
          outcome TEXT, provider TEXT, model TEXT, prefix_hash TEXT)]]))
        local now = 1800000000
        assert(db:exec('INSERT INTO cache_events VALUES (1, $1, $2, $3, $4, $5, $6, $7)', (now - 60) * 1000,
          'default', string.rep('a', 64), 'miss', 'anthropic', 'claude-sonnet-4-5', r.prefix_hash))
        local again = assert(scaffold.resolve(input('Write src/lexer.ts'), { store = db, now = now }))
        assert.is_true(again.cache.prefix)
        assert.equal('stable prefix sent before, within the TTL', again.cache.prefix_reason)
        assert.is_true(again.cost_estimate < r.cost_estimate)
        -- past the 5 minute TTL
        local late = assert(scaffold.resolve(input(), { store = db, now = now + 600 }))
        assert.is_false(late.cache.prefix)
        assert.matches('past the 300s TTL', late.cache.prefix_reason)
        -- a 1 h breakpoint lives longer
        local hour = assert(scaffold.resolve(input(nil, { cache = { ttl = '1h' } }), { store = db, now = now + 600 }))
        assert.is_true(hour.cache.prefix)
        db:close()
      end)
    end)
  end
end)
