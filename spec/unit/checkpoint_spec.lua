local h = require('spec.helpers')
local json = require('aegis.json')
local uuid = require('aegis.uuid')
local store = require('aegis.store')
local checkpoint = require('aegis.checkpoint')

describe('aegis.checkpoint namespaces', function()
  it('maps layers to namespaces and back', function()
    assert.equal('', checkpoint.namespace('plan'))
    assert.equal('module:api', checkpoint.namespace('module', 'api'))
    assert.equal('module:api|file:src/a.ts', checkpoint.namespace('file', 'api', 'src/a.ts'))
    assert.same({ 'plan' }, { checkpoint.layer_of('') })
    assert.same({ 'module', 'api' }, { checkpoint.layer_of('module:api') })
    assert.same({ 'file', 'api', 'src/a.ts' }, { checkpoint.layer_of('module:api|file:src/a.ts') })
    assert.is_nil(checkpoint.layer_of('agent:1f0|tools:2'))
  end)
  it('raises on an unknown layer or an id with a separator', function()
    assert.error_matches(function() checkpoint.namespace('task') end, "layer must be 'plan', 'module' or 'file'")
    assert.error_matches(function() checkpoint.namespace('module') end, "field 'module': non%-empty string expected")
    assert.error_matches(function() checkpoint.namespace('file', 'a|b', 'x') end, "may not contain '|' or ':'")
  end)
end)

describe('aegis.checkpoint misuse', function()
  it('raises on bad arguments', function()
    assert.error_matches(function() checkpoint.save('x') end, "bad argument #1 to 'save' %(table expected")
    assert.error_matches(function() checkpoint.save({ state = {} }) end, "field 'thread': string expected")
    assert.error_matches(function() checkpoint.save({ thread = 't' }) end, "field 'state': table expected")
    assert.error_matches(function() checkpoint.save({ thread = 't', state = {}, layer = 'x' }) end,
      "field 'layer': 'plan', 'module' or 'file' expected")
    assert.error_matches(function() checkpoint.save({ thread = 't', state = {}, name = 'latest' }) end,
      "would be read as an id or 'latest'")
    assert.error_matches(function() checkpoint.save({ thread = 't', state = { f = function() end } }) end,
      'state channel f: cannot encode')
    assert.error_matches(function() checkpoint.save({ thread = 't', state = {}, ns = 'module:a', layer = 'plan' }) end,
      "disagree")
    assert.error_matches(function() checkpoint.load(1) end, "bad argument #1 to 'load'")
    assert.error_matches(function() checkpoint.branch({ from = 'x' }) end, "field 'name': string expected")
    assert.error_matches(function() checkpoint.put_writes({ thread = 't', id = 'x' }, { { 1, 2 } }, 'k') end,
      'write 1: {channel, value} expected')
    assert.error_matches(function() checkpoint.list({ limit = -1 }) end, "field 'limit': non%-negative integer")
  end)
end)

for _, backend in ipairs(h.store_backends()) do
  describe('aegis.checkpoint on ' .. backend.name, function()
    local db
    local function thread() return 't-' .. uuid.v4() end
    before_each(function()
      if backend.url then db = assert(checkpoint.open(backend.url)) end
    end)
    after_each(function()
      if db then db:close() end
      db = nil
    end)

    it('creates the LangGraph tables exactly', function()
      if not h.needs(backend) then return end
      if backend.name == 'sqlite' then
        local cols = {}
        for _, r in ipairs(assert(db:query("SELECT name, pk FROM pragma_table_info('checkpoints') ORDER BY cid"))) do
          cols[#cols + 1] = r.name .. (r.pk > 0 and '*' or '')
        end
        assert.same({ 'thread_id*', 'checkpoint_ns*', 'checkpoint_id*', 'parent_checkpoint_id', 'type', 'checkpoint',
          'metadata' }, cols)
        cols = {}
        for _, r in ipairs(assert(db:query("SELECT name, pk FROM pragma_table_info('writes') ORDER BY cid"))) do
          cols[#cols + 1] = r.name .. (r.pk > 0 and '*' or '')
        end
        assert.same({ 'thread_id*', 'checkpoint_ns*', 'checkpoint_id*', 'task_id*', 'idx*', 'channel', 'type',
          'value' }, cols)
        -- group commit: NORMAL inside COMMIT, the WAL synced after it (docs/store.md)
        assert.equal('group', db.synchronous)
        assert.equal(1, assert(db:first('PRAGMA synchronous')).synchronous)
      else
        local vs = {}
        for _, r in ipairs(assert(db:query('SELECT v FROM checkpoint_migrations ORDER BY v'))) do vs[#vs + 1] = r.v end
        assert.same({ 0, 1, 2, 3, 4 }, vs)
        local cols = {}
        for _, r in ipairs(assert(db:query([[SELECT column_name, data_type, is_nullable FROM information_schema.columns
          WHERE table_name = 'checkpoint_blobs' AND table_schema = current_schema() ORDER BY ordinal_position]]))) do
          cols[#cols + 1] = r.column_name .. ':' .. r.data_type .. ':' .. r.is_nullable
        end
        assert.same({ 'thread_id:text:NO', 'checkpoint_ns:text:NO', 'channel:text:NO', 'version:text:NO',
          'type:text:NO',
          'blob:bytea:YES' }, cols)
        local ct = assert(db:first([[SELECT data_type FROM information_schema.columns WHERE table_name = 'checkpoints'
          AND column_name = 'checkpoint' AND table_schema = current_schema()]]))
        assert.equal('jsonb', ct.data_type)
      end
    end)

    it('saves, loads by id, name and latest, with metadata and versions', function()
      if not h.needs(backend) then return end
      local t = thread()
      local a = assert(checkpoint.save({ db = db, thread = t, state = { goal = 'x', n = 1 }, name = 'first',
        scaffold_id = 'sc', span_key = 'sk', run_id = 'r1' }))
      assert.equal(4, a.checkpoint.v)
      assert.truthy(a.id:match('^%x+%-%x+%-6'))  -- uuid version 6
      assert.same({ goal = 1, n = 1 }, a.checkpoint.channel_versions)
      assert.equal('loop', a.metadata.source)
      assert.equal(0, a.metadata.step)
      assert.equal('plan', a.metadata.layer)
      local b = assert(checkpoint.save({ db = db, thread = t, state = { goal = 'x', n = 2 } }))
      assert.equal(a.id, b.parent)
      assert.equal(1, b.metadata.step)
      assert.same({ goal = 1, n = 2 }, b.checkpoint.channel_versions)
      local r = assert(checkpoint.load('first', { db = db, thread = t }))
      assert.equal(a.id, r.id)
      assert.same({ goal = 'x', n = 1 }, r.state)
      assert.equal('sc', r.metadata.scaffold_id)
      assert.equal('sk', r.metadata.span_key)
      assert.equal('r1', r.metadata.run_id)
      assert.equal(b.id, assert(checkpoint.load('latest', { db = db, thread = t })).id)
      assert.equal(b.id, assert(checkpoint.load(b.id, { db = db })).id)
      assert.is_nil(checkpoint.load('no-such-name', { db = db }))
      assert.is_nil(checkpoint.load(uuid.v6(), { db = db }))
    end)

    it('fills namespaces and metadata.parents by layer', function()
      if not h.needs(backend) then return end
      local t = thread()
      local p = assert(checkpoint.save({ db = db, thread = t, layer = 'plan', state = { plan = 'p' } }))
      local m = assert(checkpoint.save({ db = db, thread = t, layer = 'module', module = 'api', state = { m = 1 } }))
      local f = assert(checkpoint.save({ db = db, thread = t, layer = 'file', module = 'api', file = 'a.ts',
        state = { code = '' } }))
      assert.equal('module:api', m.ns)
      assert.equal('module:api|file:a.ts', f.ns)
      assert.same({ [''] = p.id }, m.metadata.parents)
      assert.same({ [''] = p.id, ['module:api'] = m.id }, f.metadata.parents)
      assert.equal('file', assert(checkpoint.load(f.id, { db = db })).layer)
      assert.equal(1, #assert(checkpoint.list({ db = db, thread = t, ns = 'module:api' })))
    end)

    it('lists newest first with filter, before and limit', function()
      if not h.needs(backend) then return end
      local t = thread()
      local ids = {}
      for i = 1, 4 do
        ids[i] = assert(checkpoint.save({ db = db, thread = t, state = { i = i }, metadata = { even = i % 2 == 0,
          tag = 'k' .. (i % 2) } })).id
      end
      local all = assert(checkpoint.list({ db = db, thread = t }))
      assert.same({ ids[4], ids[3], ids[2], ids[1] }, { all[1].id, all[2].id, all[3].id, all[4].id })
      local even = assert(checkpoint.list({ db = db, thread = t, filter = { even = true } }))
      assert.same({ ids[4], ids[2] }, { even[1].id, even[2].id })
      local k1 = assert(checkpoint.list({ db = db, thread = t, filter = { tag = 'k1', step = 2 } }))
      assert.same({ ids[3] }, { k1[1].id })
      local before = assert(checkpoint.list({ db = db, thread = t, before = ids[3], limit = 1 }))
      assert.same({ ids[2] }, { before[1].id })
      assert.same({}, assert(checkpoint.list({ db = db, thread = 'nobody-' .. uuid.v4() })))
    end)

    it('refuses a name already used in the thread, with code constraint', function()
      if not h.needs(backend) then return end
      local t = thread()
      assert(checkpoint.save({ db = db, thread = t, state = {}, name = 'x' }))
      local r, msg, code = checkpoint.save({ db = db, thread = t, state = {}, name = 'x' })
      assert.is_nil(r)
      assert.equal("checkpoint: save '" .. t .. "': a checkpoint named 'x' already exists in thread '" .. t .. "'", msg)
      assert.equal('constraint', code)
    end)

    it('reports a missing parent with code notfound, and an ambiguous name with invalid', function()
      if not h.needs(backend) then return end
      local t = thread()
      local r, msg, code = checkpoint.save({ db = db, thread = t, state = {}, parent = 'nope' })
      assert.is_nil(r)
      assert.equal("checkpoint: save '" .. t .. "': no parent checkpoint 'nope' in thread '" .. t .. "'", msg)
      assert.equal('notfound', code)
      local name = 'same-' .. uuid.v4()
      assert(checkpoint.save({ db = db, thread = thread(), state = {}, name = name }))
      assert(checkpoint.save({ db = db, thread = thread(), state = {}, name = name }))
      r, msg, code = checkpoint.load(name, { db = db })
      assert.is_nil(r)
      assert.equal(1, msg:find("checkpoint: load '" .. name .. "': ambiguous: 2 checkpoints match (", 1, true))
      assert.equal('invalid', code)
      r, msg, code = checkpoint.branch({ db = db, from = 'nope-' .. name, name = 'b' })
      assert.is_nil(r)
      assert.equal("checkpoint: branch 'nope-" .. name .. "': no such checkpoint", msg)
      assert.equal('notfound', code)
      r, msg, code = checkpoint.load('latest', { db = db })
      assert.is_nil(r)
      assert.equal("checkpoint: load 'latest': 'latest' needs a thread", msg)
      assert.equal('invalid', code)
    end)

    it('is idempotent on the id: a retried save is not written twice', function()
      if not h.needs(backend) then return end
      local t = thread()
      local id = uuid.v6()
      local a = assert(checkpoint.save({ db = db, thread = t, state = { x = 1 }, id = id, name = 'once' }))
      local b = assert(checkpoint.save({ db = db, thread = t, state = { x = 1 }, id = id, name = 'once' }))
      assert.equal(a.id, b.id)
      assert.equal(1, #assert(checkpoint.list({ db = db, thread = t })))
      assert.is_nil(b.parent)
    end)

    it("takes any thread id, quotes and backslashes included, and locks on it", function()
      if not h.needs(backend) then return end
      -- on PostgreSQL the thread's lock key goes into the BEGIN round trip as a literal
      local t = "it's a \\ thread'; SELECT 1; --" .. uuid.v4()
      local a = assert(checkpoint.save({ db = db, thread = t, state = { x = 1 } }))
      local b = assert(checkpoint.save({ db = db, thread = t, state = { x = 2 } }))
      assert.equal(a.id, b.parent)
      assert.equal(1, b.metadata.step)
      assert.equal(2, assert(checkpoint.load('latest', { db = db, thread = t })).state.x)
      if db.kind == 'postgres' then
        -- the same key as hashtextextended(thread, 0) bound as a parameter:
        -- another session asking for that lock waits for it
        local other <close> = assert(store.open(backend.url, { lock_timeout = 0.05 }))
        local r, msg, code = db:tx(function()
          return other:tx(function(tx)
            return tx:exec('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', t)
          end)
        end, { lock = t })
        assert.is_nil(r)
        assert.equal('busy', code, msg)
      end
    end)

    it('branches without replay, and sibling branches keep their own values', function()
      if not h.needs(backend) then return end
      local t = thread()
      local root = assert(checkpoint.save({ db = db, thread = t, state = { plan = 'p0', files = { 'a' } },
        name = 'root' }))
      local main = assert(checkpoint.save({ db = db, thread = t, state = { plan = 'p1', files = { 'a' } } }))
      local b1 = assert(checkpoint.branch({ db = db, thread = t, from = 'root', name = 'b1',
        state = { plan = 'b1', files = { 'a' } } }))
      local b2 = assert(checkpoint.branch({ db = db, thread = t, from = 'root', name = 'b2',
        state = { plan = 'b2', files = { 'a' } } }))
      local same = assert(checkpoint.branch({ db = db, thread = t, from = 'root', name = 'copy' }))
      assert.equal(root.id, b1.parent)
      assert.equal(root.id, b2.parent)
      assert.equal('fork', b1.metadata.source)
      assert.equal(root.id, b1.metadata.branch_of)
      assert.equal('p1', assert(checkpoint.load(main.id, { db = db })).state.plan)
      assert.equal('b1', assert(checkpoint.load('b1', { db = db, thread = t })).state.plan)
      assert.equal('b2', assert(checkpoint.load('b2', { db = db, thread = t })).state.plan)
      assert.same({ plan = 'p0', files = { 'a' } }, assert(checkpoint.load('copy', { db = db, thread = t })).state)
      -- unchanged channels keep their version; a copy changes none
      assert.equal(root.checkpoint.channel_versions.files, b1.checkpoint.channel_versions.files)
      assert.same(root.checkpoint.channel_versions, same.checkpoint.channel_versions)
      if backend.name == 'postgres' then
        -- every sibling got a version of its own: no blob shared, none dropped
        local vs = { main.checkpoint.channel_versions.plan, b1.checkpoint.channel_versions.plan,
          b2.checkpoint.channel_versions.plan }
        assert.same({ 2, 3, 4 }, vs)
        local n = assert(db:first("SELECT count(*) AS n FROM checkpoint_blobs WHERE thread_id = $1"
          .. " AND channel = 'plan'", t))
        assert.equal(4, n.n)
      end
    end)

    it('stores the checkpoint object and metadata as canonical JSON', function()
      if not h.needs(backend) then return end
      local t = thread()
      local function check(id)
        local row = assert(db:first('SELECT checkpoint, metadata FROM checkpoints WHERE thread_id = $1'
          .. ' AND checkpoint_id = $2', t, id))
        if backend.name == 'sqlite' then  -- the bytes as written (PostgreSQL keeps JSONB, its own order)
          assert.equal(json.canonical(json.decode(row.checkpoint)), row.checkpoint)
          assert.equal(json.canonical(json.decode(row.metadata)), row.metadata)
        end
        return json.decode(row.checkpoint)
      end
      -- plain names, then names that need escapes or are not ASCII, and a
      -- LangGraph parent whose versions are not integers
      local a = assert(checkpoint.save({ db = db, thread = t, state = { b = 1, a = { 'x' }, Z = json.null } }))
      check(a.id)
      local b = assert(checkpoint.save({ db = db, thread = t, state = { ['q"uote'] = 1, ['é'] = 2, ['\t'] = 3 } }))
      assert.same({ ['q"uote'] = 1, ['é'] = 2, ['\t'] = 3 }, check(b.id).channel_values or
        assert(checkpoint.load(b.id, { db = db, thread = t })).state)
      local id = uuid.v6()
      assert(checkpoint.put({ db = db, thread = t, parent = b.id }, { v = 4, id = id, ts = '2026-01-01T00:00:00.000Z',
        channel_values = { a = 1 }, channel_versions = { a = '00000000000000000000000000000002.0.1' },
        versions_seen = { node = { a = 1 } } }, { source = 'loop', step = 2, parents = {} },
        { a = '00000000000000000000000000000002.0.1' }))
      check(id)
      local c = assert(checkpoint.save({ db = db, thread = t, state = { a = 1, b = 2 } }))  -- a keeps its version
      check(c.id)
    end)

    -- PostgreSQL saves predict their parent and versions from this process's
    -- last save in the namespace (one statement); another writer's
    -- checkpoint makes the prediction wrong, and the save must still chain
    -- on the newest checkpoint and mint above every version used.
    it("chains on another writer's checkpoint and mints above its versions", function()
      if not h.needs(backend) then return end
      local t = thread()
      local function put(id, parent, versions, values, step, new_versions)
        local cp = { v = 4, id = id, ts = '2026-01-01T00:00:00.000Z', channel_values = values,
          channel_versions = versions, versions_seen = {} }
        assert(checkpoint.put({ db = db, thread = t, parent = parent }, cp,
          { source = 'loop', step = step, parents = {} }, new_versions))
      end
      local id0 = uuid.v6()
      put(id0, nil, { plan = 3, files = 1 }, { plan = 'lg0', files = { 'x' } }, 4, { plan = 3, files = 1 })
      local s1 = assert(checkpoint.save({ db = db, thread = t, state = { plan = 'a', files = { 'x' } } }))
      assert.equal(id0, s1.parent)
      assert.equal(5, s1.metadata.step)
      assert.same({ plan = 4, files = 1 }, s1.checkpoint.channel_versions)
      local id2 = uuid.v6()
      put(id2, s1.id, { plan = 9, files = 1 }, { plan = 'lg2', files = { 'x' } }, 8, { plan = 9 })
      local s3 = assert(checkpoint.save({ db = db, thread = t, state = { plan = 'b', files = { 'x' } } }))
      assert.equal(id2, s3.parent)
      assert.equal(9, s3.metadata.step)
      assert.same({ plan = 10, files = 1 }, s3.checkpoint.channel_versions)
      assert.same({ plan = 'b', files = { 'x' } }, assert(checkpoint.load(s3.id, { db = db, thread = t })).state)
      local s4 = assert(checkpoint.save({ db = db, thread = t, state = { plan = 'c', files = { 'x' } } }))
      assert.equal(s3.id, s4.parent)
      assert.same({ plan = 11, files = 1 }, s4.checkpoint.channel_versions)
      assert.same({ plan = 'c', files = { 'x' } }, assert(checkpoint.load('latest', { db = db, thread = t })).state)
    end)

    it('puts LangGraph checkpoints as given and pending writes with special indices', function()
      if not h.needs(backend) then return end
      local t = thread()
      local id = uuid.v6()
      local cp = { v = 4, id = id, ts = '2026-01-01T00:00:00.000Z', channel_values = { a = 'x', b = json.array({}) },
        channel_versions = { a = 1, b = 1 }, versions_seen = { node = { a = 1 } } }
      assert.same({ thread = t, ns = '', id = id },
        assert(checkpoint.put({ db = db, thread = t }, cp, { source = 'input', step = -1, parents = {} },
          { a = 1, b = 1 })))
      assert(checkpoint.put_writes({ db = db, thread = t, id = id }, { { 'a', 'w0' }, { 'b', 'w1' } }, 'task'))
      assert(checkpoint.put_writes({ db = db, thread = t, id = id }, { { 'a', 'again' } }, 'task'))  -- kept: w0 stays
      assert(checkpoint.put_writes({ db = db, thread = t, id = id }, { { '__error__', 'e1' } }, 'task'))
      assert(checkpoint.put_writes({ db = db, thread = t, id = id }, { { '__error__', 'e2' } }, 'task'))  -- replaced
      local r = assert(checkpoint.load(id, { db = db, thread = t }))
      assert.equal(json.canonical(cp), json.canonical(r.checkpoint))
      assert.same({ { task_id = 'task', channel = '__error__', value = 'e2' },
        { task_id = 'task', channel = 'a', value = 'w0' }, { task_id = 'task', channel = 'b', value = 'w1' } },
        r.pending_writes)
    end)

    it('tells which channels differ and draws the lineage', function()
      if not h.needs(backend) then return end
      local t = thread()
      local a = assert(checkpoint.save({ db = db, thread = t, state = { x = 1, y = 2, z = 3 }, name = 'a' }))
      assert(checkpoint.save({ db = db, thread = t, state = { x = 1, y = 5, w = 0 }, name = 'b' }))
      assert(checkpoint.branch({ db = db, thread = t, from = 'a', name = 'c' }))
      local d = assert(checkpoint.diff('a', 'b', { db = db, thread = t }))
      assert.same({ 'w' }, d.added)
      assert.same({ 'z' }, d.removed)
      assert.same({ 'y' }, d.changed)
      assert.same({ 'x' }, d.same)
      local roots = assert(checkpoint.log(t, { db = db }))
      assert.equal(1, #roots)
      assert.equal(a.id, roots[1].id)
      assert.equal(2, #roots[1].children)
      assert.same({ 'b', 'c' }, { roots[1].children[1].name, roots[1].children[2].name })
      local _, msg, code = checkpoint.diff('a', 'nope', { db = db, thread = t })
      assert.equal("checkpoint: diff 'nope': no such checkpoint", msg)
      assert.equal('notfound', code)
    end)

    it('deletes a thread', function()
      if not h.needs(backend) then return end
      local t = thread()
      local a = assert(checkpoint.save({ db = db, thread = t, state = { x = 1 } }))
      assert(checkpoint.put_writes({ db = db, thread = t, id = a.id }, { { 'x', 2 } }, 'k'))
      assert(checkpoint.delete_thread(t, { db = db }))
      assert.same({}, assert(checkpoint.list({ db = db, thread = t })))
    end)

    it('returns the store failure as nil, msg, code', function()
      if not h.needs(backend) then return end
      local closed = assert(store.open(backend.url))
      assert(checkpoint.save({ db = closed, thread = thread(), state = {} }))
      closed:exec(backend.name == 'sqlite' and 'DROP TABLE writes' or 'CREATE SCHEMA IF NOT EXISTS x')
      if backend.name == 'sqlite' then
        local r, msg, code = checkpoint.put_writes({ db = closed, thread = 't', id = 'x' }, { { 'a', 1 } }, 'k')
        assert.is_nil(r)
        assert.matches("^checkpoint: put_writes 'x': exec 'INSERT OR IGNORE INTO writes", msg)
        assert.equal('sql', code)
      end
      closed:close()
    end)
  end)
end

describe('aegis.checkpoint schemas', function()
  it('registers the checkpoint and metadata schemas', function()
    local s = require('aegis.schema')
    assert.truthy(s.registered().checkpoint or s.names and #s.names() > 0)
    local ok = checkpoint.schemas.metadata:parse({ source = 'loop', step = 0, parents = {}, extra = 1 })
    assert.truthy(ok)
    local bad, err = checkpoint.schemas.checkpoint:parse({ v = 4 })
    assert.is_nil(bad)
    assert.truthy(tostring(err):find('id'))
  end)
end)

for _, backend in ipairs(h.store_backends()) do
  describe('aegis.checkpoint.save_all on ' .. backend.name, function()
    it('saves several checkpoints in one transaction, all or none', function()
      if not h.needs(backend) then return end
      local db <close> = assert(checkpoint.open(backend.url))
      local t1, t2 = 'sa-' .. uuid.v4(), 'sa-' .. uuid.v4()
      local recs = assert(checkpoint.save_all({
        { thread = t2, state = { a = 1 } },
        { thread = t1, state = { a = 1 }, name = 'one' },
        { thread = t1, state = { a = 2 } },
        { thread = t1, layer = 'module', module = 'm', state = { b = 1 } },
      }, { db = db }))
      assert.equal(4, #recs)
      assert.equal(recs[2].id, recs[3].parent)
      assert.equal(1, recs[3].metadata.step)
      assert.same({ [''] = recs[3].id }, recs[4].metadata.parents)
      assert.equal(3, #assert(checkpoint.list({ db = db, thread = t1 })))
      -- a failure in any item stores none of them
      local r, msg, code = checkpoint.save_all({
        { thread = t2, state = { a = 2 } },
        { thread = t1, state = {}, name = 'one' },
      }, { db = db })
      assert.is_nil(r)
      assert.equal(("checkpoint: save '%s': a checkpoint named 'one' already exists in thread '%s'"):format(t1, t1),
        msg)
      assert.equal('constraint', code)
      assert.equal(1, #assert(checkpoint.list({ db = db, thread = t2 })))
      assert.same({}, assert(checkpoint.save_all({}, { db = db })))
      assert.error_matches(function() checkpoint.save_all({ { state = {} } }, { db = db }) end,
        "bad argument #1 to 'save_all' %(field 'thread': string expected")
    end)
  end)
end
