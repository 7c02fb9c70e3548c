-- A PostgreSQL save in one round trip (the save statement pipelined with
-- BEGIN, the thread's lock and COMMIT), and its way back to the usual path
-- when the prediction of the parent is wrong.
local h = require('spec.helpers')
local checkpoint = require('aegis.checkpoint')
local uuid = require('aegis.uuid')

local pg = { name = 'postgres', url = os.getenv('AEGIS_PG_URL') }

for _, isolation in ipairs({ 'lock', 'serializable' }) do
  describe('checkpoint.save on PostgreSQL (' .. isolation .. ')', function()
    local a, b
    before_each(function()
      if pg.url then
        a = assert(checkpoint.open(pg.url, { isolation = isolation }))
        b = assert(checkpoint.open(pg.url, { isolation = isolation }))
      end
    end)
    after_each(function()
      if a then a:close() end
      if b then b:close() end
      a, b = nil, nil
    end)

    it('chains saves from two connections: a wrong prediction goes the usual way', function()
      if not h.needs(pg) then return end
      local t = 't-' .. uuid.v4()
      local r1 = assert(checkpoint.save({ db = a, thread = t, state = { x = 1, y = 1 } }))
      local r2 = assert(checkpoint.save({ db = a, thread = t, state = { x = 2, y = 1 } }))
      assert.equal(r1.id, r2.parent)
      -- another connection writes: `a` still predicts r2 as the head
      local r3 = assert(checkpoint.save({ db = b, thread = t, state = { x = 3, y = 1 } }))
      assert.equal(r2.id, r3.parent)
      local r4 = assert(checkpoint.save({ db = a, thread = t, state = { x = 4, y = 2 } }))
      assert.equal(r3.id, r4.parent)
      assert.equal(3, r4.metadata.step)
      assert.is_true(r4.id > r3.id)
      -- versions above every one used: x was 1, 2, 3 and is now 4
      assert.equal(4, r4.checkpoint.channel_versions.x)
      assert.equal(2, r4.checkpoint.channel_versions.y)
      -- and `a` predicts right again
      local r5 = assert(checkpoint.save({ db = a, thread = t, state = { x = 5, y = 2 } }))
      assert.equal(r4.id, r5.parent)
      assert.equal(1, r5.attempts)
      local got = assert(checkpoint.load('latest', { db = b, thread = t }))
      assert.equal(r5.id, got.id)
      assert.same({ x = 5, y = 2 }, got.state)
      local ids = {}
      for _, r in ipairs(assert(checkpoint.list({ db = b, thread = t }))) do ids[#ids + 1] = r.id end
      assert.same({ r5.id, r4.id, r3.id, r2.id, r1.id }, ids)
    end)

    it('refuses a name taken, with code constraint, and writes nothing', function()
      if not h.needs(pg) then return end
      local t = 't-' .. uuid.v4()
      assert(checkpoint.save({ db = a, thread = t, state = { x = 1 }, name = 'n1' }))
      local r, msg, code = checkpoint.save({ db = a, thread = t, state = { x = 2 }, name = 'n1' })
      assert.is_nil(r)
      assert.equal('constraint', code)
      assert.equal(("checkpoint: save '%s': a checkpoint named 'n1' already exists in thread '%s'"):format(t, t), msg)
      assert.equal(1, #assert(checkpoint.list({ db = a, thread = t })))
      -- the blobs of the refused save were not written either: the next
      -- save's version of x follows the first save's
      local r2 = assert(checkpoint.save({ db = a, thread = t, state = { x = 3 } }))
      assert.equal(2, r2.checkpoint.channel_versions.x)
    end)
  end)
end
