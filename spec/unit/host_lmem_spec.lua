-- The Lua state's allocator (runtime/ag_lmem.c): small blocks by size
-- class, reused after the collector frees them. Each case runs in its own
-- aegis-run process, since the mode is chosen once per process.
local h = require('spec.helpers')
local host = require('aegis.core.host')

-- Runs `body` (Lua source of a spec body) in a child `aegis-run test` with
-- `env`; returns the child's result.
local function child(env, body)
  local dir = h.tmpdir()
  local f = assert(io.open(dir .. '/child_spec.lua', 'w'))
  f:write("local host = require('aegis.core.host')\n",
    "describe('child', function() it('runs', function()\n", body, "\nend) end)\n")
  f:close()
  return h.run({ 'test', dir .. '/child_spec.lua' }, { env = env })
end

describe('aegis.core.host.lmem', function()
  it('says which allocator this process uses', function()
    local m = host.lmem()
    -- sanitizer builds and valgrind use plain malloc, so leak checkers see Lua's blocks
    local want = os.getenv('AEGIS_LMEM')
    if want ~= 'pool' and want ~= 'malloc' then want = h.instrumented and 'malloc' or 'pool' end
    assert.equal(want, m.mode)
    assert.is_true(m.chunks >= 0 and m.free_bytes >= 0)
  end)

  it('reuses the blocks the collector frees instead of taking new chunks', function()
    local r = child({ AEGIS_LMEM = 'pool' }, [[
      assert.equal('pool', host.lmem().mode)
      local function churn()
        local t = {}
        for i = 1, 50000 do t[i] = { i, tostring(i) } end
        return #t
      end
      churn(); collectgarbage(); collectgarbage()
      local after_first = host.lmem()
      assert.is_true(after_first.free_bytes > 50000 * 32, 'freed blocks wait on their lists')
      for _ = 1, 5 do churn(); collectgarbage(); collectgarbage() end
      local after = host.lmem()
      -- five more rounds of the same sizes fit in the blocks the first one freed
      assert.is_true(after.chunks <= after_first.chunks + 2, after_first.chunks .. ' -> ' .. after.chunks)
    ]])
    assert.equal(0, r.code, r.stdout .. r.stderr)
  end)

  it('keeps contents across resizes within a class, across classes and past the largest', function()
    local r = child({ AEGIS_LMEM = 'pool' }, [[
      -- arrays grow by doubling: 16 bytes to 64 KiB, through every class and into malloc's blocks
      local t = {}
      for i = 1, 4096 do t[i] = i * 3 end
      for i = 1, 4096 do assert(t[i] == i * 3) end
      -- and shrink back (the collector shrinks a table's hash part when it rehashes)
      local h2 = {}
      for i = 1, 300 do h2['k' .. i] = i end
      for i = 1, 290 do h2['k' .. i] = nil end
      h2.x = 1
      for i = 291, 300 do assert(h2['k' .. i] == i) end
      -- strings around the largest class (a string's block is its length plus a header)
      for n = 200, 300 do
        local s = ('x'):rep(n - 1) .. 'y'
        assert(#s == n and s:sub(-1) == 'y')
      end
      -- buffers grown in place and moved (luaL_Buffer's box is resized through the allocator)
      local parts = {}
      for i = 1, 2000 do parts[i] = string.char(65 + i % 26) end
      local s = table.concat(parts)
      for i = 1, 2000 do assert(s:byte(i) == 65 + i % 26) end
    ]])
    assert.equal(0, r.code, r.stdout .. r.stderr)
  end)

  it('uses plain malloc when asked to', function()
    local r = child({ AEGIS_LMEM = 'malloc' }, [[
      collectgarbage()
      local m = host.lmem()
      assert.same({ mode = 'malloc', chunks = 0, free_bytes = 0 }, m)
    ]])
    assert.equal(0, r.code, r.stdout .. r.stderr)
  end)
end)
