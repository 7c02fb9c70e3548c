-- aegis.core.sandbox.timed: a deadline kept by a timer (SIGALRM) that
-- installs the count hook only when it fires, so code under it runs at full
-- speed until then (the built-in rulepacks' budget, aegis.standards).
local sb = require('aegis.core.sandbox')

local function spin() while true do end end

describe('aegis.core.sandbox.timed', function()
  it('stops a runaway loop at its deadline, even one that catches errors with pcall', function()
    local ok, kind, msg = sb.timed(0.1, 0, '@x.lua', function()
      while true do pcall(spin) end
    end)
    assert.is_false(ok)
    assert.equal('budget', kind)
    assert.matches('sandbox: time budget exceeded %(0%.1 s%)$', msg)
  end)

  it('returns the function results and leaves no timer or hook behind', function()
    local ok, a, b = sb.timed(0.05, 0, '@x.lua', function(x, y) return x + y, 'z' end, 1, 2)
    assert.same({ true, 3, 'z' }, { ok, a, b })
    local t = os.clock()
    while os.clock() - t < 0.15 do end -- past the deadline: nothing fires
    assert.is_nil(debug.gethook())
  end)

  it('stops inside a count-hook run (sandbox.call) and lets that run go on', function()
    local ok, after = sb.call(0, 5, 0, '@y.lua', function()
      local ok2, kind2, msg2 = sb.timed(0.05, 0, '@x.lua', spin)
      assert(not ok2 and kind2 == 'budget', msg2)
      return 'after'
    end)
    assert.is_true(ok)
    assert.equal('after', after)
  end)

  it('lets an inner sandbox.call keep its own instruction budget', function()
    local ok, inner_ok, inner_kind, inner_msg = sb.timed(1, 0, '@x.lua', function()
      return sb.call(1000, 0, 0, '@y.lua', spin)
    end)
    assert.is_true(ok)
    assert.is_false(inner_ok)
    assert.equal('budget', inner_kind)
    assert.matches('instruction budget', inner_msg)
  end)

  it('keeps the outer deadline when an inner timed run asks for a longer one', function()
    local ok, kind = sb.timed(0.05, 0, '@x.lua', function()
      sb.timed(10, 0, '@z.lua', spin)
      spin()
    end)
    assert.is_false(ok)
    assert.equal('budget', kind)
  end)

  -- the timer is left armed after a run (two setitimer calls per run were
  -- most of enforce's system time): a later run must still get its own deadline
  it('stops a run whose deadline comes before the one the timer was left at', function()
    assert.is_true((sb.timed(30, 0, '@x.lua', function() end)))
    local ok, kind = sb.timed(0.05, 0, '@x.lua', function()
      local t = os.clock()
      while os.clock() - t < 3 do end -- 60 times the budget: stopped long before
      return 'ran to the end'
    end)
    assert.is_false(ok)
    assert.equal('budget', kind)
  end)

  it('lets a run go on when a timer left by an earlier run goes off during it', function()
    assert.is_true((sb.timed(0.02, 0, '@x.lua', function() end)))
    local ok, r = sb.timed(5, 0, '@x.lua', function()
      local t = os.clock()
      while os.clock() - t < 0.1 do end -- the earlier run's timer fires in here
      return 'done'
    end)
    assert.same({ true, 'done' }, { ok, r })
    assert.is_nil(debug.gethook())
  end)

  it('arms again after a timer left armed went off between runs', function()
    assert.is_true((sb.timed(0.01, 0, '@x.lua', function() end)))
    local t = os.clock()
    while os.clock() - t < 0.05 do end -- the timer fires with no run: nothing to stop
    local ok, kind = sb.timed(0.05, 0, '@x.lua', function()
      local t2 = os.clock()
      while os.clock() - t2 < 3 do end
      return 'ran to the end'
    end)
    assert.is_false(ok)
    assert.equal('budget', kind)
  end)

  it('checks its arguments', function()
    assert.has_error(function() sb.timed(-1, 0, '@x', print) end,
      "bad argument #1 to 'timed' (must be non-negative)")
    assert.has_error(function() sb.timed(1, -1, '@x', print) end,
      "bad argument #2 to 'timed' (must be non-negative)")
    assert.has_error(function() sb.timed(1, 0, '@x', 3) end)
  end)
end)
