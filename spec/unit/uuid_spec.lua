local uuid = require('aegis.uuid')
local clock = require('aegis.clock')

local FORMAT = '^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$'

describe('aegis.uuid', function()
  describe('v4', function()
    it('is lowercase 8-4-4-4-12 hex with version 4 and variant 10', function()
      for _ = 1, 100 do
        local id = uuid.v4()
        assert.matches(FORMAT, id)
        assert.equal(id:lower(), id)
        assert.equal('4', id:sub(15, 15))
        assert.matches('^[89ab]$', id:sub(20, 20))
      end
    end)

    it('does not repeat', function()
      local seen = {}
      for _ = 1, 1000 do
        local id = uuid.v4()
        assert.is_nil(seen[id])
        seen[id] = true
      end
    end)
  end)

  describe('v6', function()
    it('is lowercase 8-4-4-4-12 hex with version 6 and variant 10', function()
      local id = uuid.v6()
      assert.matches(FORMAT, id)
      assert.equal(id:lower(), id)
      assert.equal('6', id:sub(15, 15))
      assert.matches('^[89ab]$', id:sub(20, 20))
    end)

    it('gives 10,000 consecutive ids that strictly increase as strings', function()
      local prev = uuid.v6()
      for _ = 1, 10000 do
        local id = uuid.v6()
        assert(id > prev, id .. ' <= ' .. prev)
        prev = id
      end
    end)

    it('stamps the current time', function()
      local before = clock.now()
      local t = uuid.time(uuid.v6())
      local after = clock.now()
      -- the stamp is at least now; within a second of it unless ids ran ahead
      assert.is_true(t >= before - 1e-6, ('%f < %f'):format(t, before))
      assert.is_true(t <= after + 1, ('%f > %f'):format(t, after))
    end)

    it('stamps a given time, to 100 ns', function()
      assert.equal('1b21dd21-3814-6000-', uuid.v6({ time = 0 }):sub(1, 19))
      assert.equal(0, uuid.time(uuid.v6({ time = 0 })))
      local t = uuid.time(uuid.v6({ time = 1700000000.25 }))
      assert.equal(1700000000.25, t)
      -- the Gregorian epoch itself: an all-zero timestamp
      assert.equal('00000000-0000-6000-', uuid.v6({ time = -12219292800 }):sub(1, 19))
    end)

    it('keeps every 100 ns tick of a present-day time (integer arithmetic)', function()
      local ticks = 1700000000 * 10000000 + 1234567 + 0x01B21DD213814000
      local want = ('%08x-%04x-%04x-'):format(ticks >> 28, (ticks >> 12) & 0xffff, 0x6000 | (ticks & 0xfff))
      assert.equal(want, uuid.v6({ time = 1700000000.1234567 }):sub(1, 19))
      assert.equal(1700000000.1234567, uuid.time(uuid.v6({ time = 1700000000.1234567 })))
    end)

    it('sorts given times in time order', function()
      assert.is_true(uuid.v6({ time = 1e9 }) < uuid.v6({ time = 1e9 + 1e-7 }))
      assert.is_true(uuid.v6({ time = 1e9 }) < uuid.v6({ time = 2e9 }))
    end)

    it('raises on bad options', function()
      assert.error_matches(function() uuid.v6(5) end,
        "bad argument #1 to 'v6' %(table expected, got number%)")
      assert.error_matches(function() uuid.v6({ time = 'now' }) end,
        "bad argument #1 to 'v6' %(time must be a number, got string%)")
      assert.error_matches(function() uuid.v6({ time = -2e10 }) end,
        "bad argument #1 to 'v6' %(time out of the UUID range %(1582..5236%)%)")
      assert.error_matches(function() uuid.v6({ time = 0 / 0 }) end,
        "bad argument #1 to 'v6' %(time out of the UUID range")
    end)
  end)

  describe('time', function()
    it('raises on what is not a version 6 UUID', function()
      assert.error_matches(function() uuid.time(uuid.v4()) end,
        "bad argument #1 to 'time' %(not a version 6 UUID%)")
      assert.error_matches(function() uuid.time('1b21dd21-3814-6000-8000-00000000000') end,
        "bad argument #1 to 'time' %(not a version 6 UUID%)")
      assert.error_matches(function() uuid.time('1b21dd21-3814-6000-8000-00000000000g') end,
        "bad argument #1 to 'time' %(not a version 6 UUID%)")
      assert.error_matches(function() uuid.time(7) end,
        "bad argument #1 to 'time' %(string expected, got number%)")
    end)

    it('reads upper-case ids too', function()
      assert.equal(0, uuid.time(uuid.v6({ time = 0 }):upper()))
    end)
  end)
end)
