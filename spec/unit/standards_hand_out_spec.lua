-- The order enforce hands files out in to its processes (run.hand_out_order):
-- largest first, ties in the order given; path order under --fail-fast;
-- sizes from the walk, else from the file system.
local h = require('spec.helpers')
local run = require('aegis.standards.run')

describe('run.hand_out_order', function()
  it('hands out the largest first, ties in the order given', function()
    local files = { 'a', 'b', 'c', 'd', 'e', 'f' }
    local sizes = { a = 10, b = 300, c = 10, d = 0, e = 300, f = 7 }
    assert.same({ 'b', 'e', 'a', 'c', 'f', 'd' }, run.hand_out_order(files, false, sizes))
    assert.same({ 'a', 'b', 'c', 'd', 'e', 'f' }, files)  -- (a copy)
    assert.same({}, run.hand_out_order({}, false, {}))
    assert.same({ 'x' }, run.hand_out_order({ 'x' }, false, { x = 5 }))
  end)

  it('keeps sizes past what its keys hold in the order given, ahead of the others', function()
    local huge = 1 << 61
    local files = { 'small', 'huge2', 'mid', 'huge1' }
    local sizes = { small = 1, huge2 = huge, mid = 1 << 40, huge1 = huge + 5 }
    assert.same({ 'huge2', 'huge1', 'mid', 'small' }, run.hand_out_order(files, false, sizes))
    -- (a size the walk could not tell, -1, counts as none)
    assert.same({ 'small', 'unknown' }, run.hand_out_order({ 'unknown', 'small' }, false, { unknown = -1, small = 1 }))
  end)

  it('orders many files as a comparison of sizes would', function()
    local files, sizes = {}, {}
    for i = 1, 5000 do
      local p = ('f%05d'):format(i)
      files[i], sizes[p] = p, (i * 7919) % 1013
    end
    local want = table.move(files, 1, #files, 1, {})
    table.sort(want, function(a, b)
      if sizes[a] ~= sizes[b] then return sizes[a] > sizes[b] end
      return a < b
    end)
    assert.same(want, run.hand_out_order(files, false, sizes))
  end)

  it('asks the file system for sizes the walk did not give, and counts a missing file as empty', function()
    local dir = h.tmpdir()
    h.write_tree(dir, { ['one.ts'] = ('x'):rep(10), ['two.ts'] = ('x'):rep(30) })
    local files = { dir .. '/one.ts', dir .. '/gone.ts', dir .. '/two.ts' }
    assert.same({ dir .. '/two.ts', dir .. '/one.ts', dir .. '/gone.ts' }, run.hand_out_order(files))
  end)

  it('hands out in path order under --fail-fast', function()
    assert.same({ 'a', 'b', 'c' }, run.hand_out_order({ 'c', 'a', 'b' }, true, { a = 1, b = 9, c = 5 }))
  end)
end)
