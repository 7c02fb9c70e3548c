-- LangGraph.js's own savers read what aegis writes and aegis reads what they
-- write, on SQLite and PostgreSQL; a LangGraph graph resumes from an aegis
-- branch. Installs the pinned npm packages into build/node/ when missing.
local h = require('spec.helpers')
local json = require('aegis.json')
local checkpoint = require('aegis.checkpoint')

local function sh(cmd)
  local p = assert(io.popen(cmd .. ' 2>&1'))
  local out = p:read('a')
  local ok, _, code = p:close()
  return ok, out, code
end

local interop_dir
local function interop()
  if interop_dir then return interop_dir end
  local ok, out = sh('spec/support/langgraph/install.sh')
  assert(ok, 'installing the LangGraph packages failed:\n' .. out)
  interop_dir = out:match('([^\n]+)\n?$')
  return interop_dir
end

-- Runs interop.mjs and decodes its JSON line.
local function node(...)
  local args = { 'node', interop() .. '/interop.mjs' }
  for _, a in ipairs({ ... }) do args[#args + 1] = h.shell_quote(a) end
  local ok, out = sh(table.concat(args, ' '))
  assert(ok, 'node ' .. table.concat({ ... }, ' ') .. ' failed:\n' .. out)
  local last = out:match('([^\n]+)\n?$')
  return assert(json.decode(last))
end

local function same(a, b, what)
  assert.equal(json.canonical(a), json.canonical(b), what)
end

local function writes_of(rec)
  local out = json.array({})
  for i, w in ipairs(rec.pending_writes) do out[i] = json.array({ w.task_id, w.channel, w.value }) end
  return out
end

for _, backend in ipairs(h.store_backends()) do
  describe('LangGraph interop on ' .. backend.name, function()
    local url = backend.url

    it("the official saver lists and loads what aegis wrote, with identical values", function()
      if not h.needs(backend) then return end
      local db <close> = assert(checkpoint.open(url))
      local thread = 'aegis-' .. require('aegis.uuid').v4()
      local state = { goal = 'todo app ✓ 😀', n = 1, ratio = 0.1, neg = -2.5e-7, big = 9007199254740991,
        empty_list = json.array({}), empty_obj = {}, nested = { a = { 1, { b = json.null } }, t = true } }
      local p1 = assert(checkpoint.save({ db = db, thread = thread, layer = 'plan', state = state, name = 'p1',
        scaffold_id = 'sc-1', run_id = 'run-1' }))
      local s2 = {}
      for k, v in pairs(state) do s2[k] = v end
      s2.n = 2
      local p2 = assert(checkpoint.save({ db = db, thread = thread, layer = 'plan', state = s2, name = 'p2' }))
      local m1 = assert(checkpoint.save({ db = db, thread = thread, layer = 'module', module = 'api',
        state = { files = { 'a.ts' } } }))
      local f1 = assert(checkpoint.save({ db = db, thread = thread, layer = 'file', module = 'api', file = 'a.ts',
        state = { code = 'export {}' }, span_key = 'span-1' }))
      local b1 = assert(checkpoint.branch({ db = db, thread = thread, from = 'p1', name = 'alt',
        state = { goal = 'other', n = 9 } }))
      assert(checkpoint.put_writes({ db = db, thread = thread, ns = '', id = p2.id },
        { { 'n', 3 }, { '__interrupt__', { value = 'ask' } } }, 'task-1'))

      local lg = node('read', url, thread)
      assert.equal(5, #lg.list)
      -- newest first, as aegis lists them
      local mine = assert(checkpoint.list({ db = db, thread = thread }))
      for i, rec in ipairs(mine) do assert.equal(rec.id, lg.list[i].config.checkpoint_id) end
      for _, ref in ipairs({ p1, p2, m1, f1, b1 }) do
        local rec = assert(checkpoint.load(ref.id, { db = db, thread = thread }))
        local t = lg.tuples[ref.id]
        assert.equal(rec.ns, t.config.checkpoint_ns)
        assert.equal(rec.parent or json.null, t.parent)
        same(rec.checkpoint, t.checkpoint, 'checkpoint ' .. rec.id)
        same(rec.metadata, t.metadata, 'metadata ' .. rec.id)
        same(writes_of(rec), t.pendingWrites, 'pending writes ' .. rec.id)
      end
      assert.equal(b1.id, lg.latest[''])
      assert.equal(f1.id, lg.latest['module:api|file:a.ts'])
      assert.equal('file', lg.tuples[f1.id].metadata.layer)
      assert.equal(m1.id, lg.tuples[f1.id].metadata.parents['module:api'])
      assert.equal(p2.id, lg.tuples[f1.id].metadata.parents[''])  -- the newest plan checkpoint when f1 was saved
      -- a write to __interrupt__ is stored at LangGraph's fixed index -3
      local wt = backend.name == 'sqlite' and 'writes' or 'checkpoint_writes'
      local w = assert(db:first('SELECT idx FROM ' .. wt .. ' WHERE channel = $1 AND thread_id = $2',
        '__interrupt__', thread))
      assert.equal(-3, w.idx)
    end)

    it('aegis loads what the official saver wrote, with identical values', function()
      if not h.needs(backend) then return end
      local thread = 'lg-' .. require('aegis.uuid').v4()
      local lg = node('write', url, thread)
      local db <close> = assert(checkpoint.open(url))
      for _, id in ipairs(lg.ids) do
        local rec = assert(checkpoint.load(id, { db = db, thread = thread }))
        local t = lg.tuples[id]
        assert.equal(t.config.checkpoint_ns, rec.ns)
        assert.equal(t.parent, rec.parent or json.null)
        same(t.checkpoint, rec.checkpoint, 'checkpoint ' .. id)
        same(t.metadata, rec.metadata, 'metadata ' .. id)
        same(t.pendingWrites, writes_of(rec), 'pending writes ' .. id)
      end
      assert.equal(lg.ids[2], assert(checkpoint.load('lg-two', { db = db, thread = thread })).id)
      assert.equal(lg.ids[2], assert(checkpoint.load('latest', { db = db, thread = thread })).id)
      -- and aegis continues the thread LangGraph started
      local rec = assert(checkpoint.load('lg-two', { db = db, thread = thread }))
      rec.state.n = 5
      local nxt = assert(checkpoint.save({ db = db, thread = thread, state = rec.state, name = 'aegis-next' }))
      assert.equal(lg.ids[2], nxt.parent)
      assert.equal(1, nxt.metadata.step)
      assert.equal(rec.checkpoint.channel_versions.n + 1, nxt.checkpoint.channel_versions.n)
      assert.equal(rec.checkpoint.channel_versions.goal, nxt.checkpoint.channel_versions.goal)
      local back = node('read', url, thread)
      assert.equal(5, back.tuples[nxt.id].checkpoint.channel_values.n)
      assert.equal('todo app v2', back.tuples[nxt.id].checkpoint.channel_values.goal)
    end)

    it('a LangGraph graph resumes from an aegis branch of its checkpoint', function()
      if not h.needs(backend) then return end
      local thread = 'graph-' .. require('aegis.uuid').v4()
      local start = node('graph-start', url, thread)
      assert.same({ 'module' }, start.next)
      local db <close> = assert(checkpoint.open(url))
      local rec = assert(checkpoint.load(start.id, { db = db, thread = thread }))
      assert.equal('todo', rec.state.topic)
      rec.state.topic = 'notes'
      local alt = assert(checkpoint.branch({ db = db, from = start.id, thread = thread, name = 'notes',
        state = rec.state }))
      db:close()
      local r = node('graph-resume', url, thread, alt.id)
      assert.same({ 'module' }, r.before.next)
      assert.equal('notes', r.before.values.topic)
      assert.equal('notes', r.result.topic)
      assert.same({ 'plan:todo', 'module:notes', 'file:notes' }, r.result.steps)
      assert.same({}, r.next)
      -- the original line is untouched: resuming it still sees 'todo'
      local o = node('graph-resume', url, thread, start.id)
      assert.same({ 'plan:todo', 'module:todo', 'file:todo' }, o.result.steps)
    end)
  end)
end
