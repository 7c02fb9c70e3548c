-- aegis.core.fork: work shared with forked copies of this process (enforce
-- --jobs N checks files in N - 1 copies and itself, taking them from a
-- shared counter).
local fork = require('aegis.core.fork')
local sb = require('aegis.core.sandbox')

local function spin() while true do end end

describe('aegis.core.fork', function()
  it("hands back the copy's string, and the copy's changes stay in the copy", function()
    local x = 1
    local pid
    do
      local c <close> = assert(fork.start(function()
        x = 2
        return ('%d:%s'):format(x, ('y'):rep(200000))  -- more than a pipe holds
      end))
      pid = c:pid()
      assert.is_true(pid > 0)
      local out = assert(c:wait())
      assert.equal('2:' .. ('y'):rep(200000), out)
      assert.equal(1, x)
      -- 0 once reaped: at wait() when the copy had ended, else when its handle is closed
      assert.is_true(c:pid() == 0 or c:pid() == pid)
      assert.has_error(function() c:wait() end, "calling 'wait' on bad self (already waited for)")
    end
    assert.is_nil(io.open('/proc/' .. pid .. '/stat'))
    -- close() reaps one that was still ending, and can be called again
    local c = assert(fork.start(function() return 'x' end))
    pid = c:pid()
    assert.equal('x', c:wait())
    c:close()
    assert.equal(0, c:pid())
    assert.is_nil(io.open('/proc/' .. pid .. '/stat'))
    c:close()
  end)

  it("hands back an answer even when it looks like a frame's head", function()
    for _, s in ipairs({ '', 'r', 'e\0\0\0\0\0\0\0\0', ('\0'):rep(9), ('\255'):rep(20) }) do
      assert.equal(s, assert(fork.start(function() return s end):wait()))
      local e = s .. ' raised'  -- (NUL bytes and all)
      local out, msg = fork.start(function() error(e, 0) end):wait()
      assert.is_nil(out)
      assert.equal(e, msg:sub(1, #e))  -- (then the copy's traceback)
      assert.matches('stack traceback', msg, #e + 1, true)
    end
  end)

  it('hands back the strings of a list joined, written piece by piece', function()
    -- more pieces than one writev takes (1024), pieces larger than the pipe (1 MiB: written in part),
    -- empty ones and NUL bytes
    local list, want = {}, {}
    for i = 1, 3000 do
      local piece = i % 1000 == 0 and ('z'):rep(1500000 + i) or i % 7 == 0 and '' or ('%d\0'):format(i)
      list[i], want[i] = piece, piece
    end
    local out = assert(fork.start(function() return list end):wait())
    assert.equal(#table.concat(want), #out)
    assert.is_true(table.concat(want) == out)
    assert.equal('', assert(fork.start(function() return {} end):wait()))
    assert.equal('ab', assert(fork.start(function() return { 'a', 'b', n = 2, x = 'not an item' } end):wait()))
    for _, bad in ipairs({ { 'a', 2 }, { 'a', {} }, { true } }) do
      local got, msg = fork.start(function() return bad end):wait()
      assert.is_nil(got)
      assert.matches('did not return a string or a list of strings', msg, 1, true)
    end
  end)

  it("reports the copy's error with its message, and how it ended otherwise", function()
    local out, msg, code = fork.start(function() error('no files for me', 0) end):wait()
    assert.is_nil(out)
    assert.matches('^no files for me', msg)
    assert.equal('io', code)
    out, msg = fork.start(function() return 42 end):wait()
    assert.is_nil(out)
    assert.matches('did not return a string or a list of strings', msg, 1, true)
    out, msg = fork.start(function() os.exit(7) end):wait()
    assert.is_nil(out)
    assert.equal('exit 7', msg)
    out, msg = fork.start(function()
      require('aegis.core.proc').run({ '/bin/sh', '-c', 'kill -9 $PPID' })
      spin()
    end):wait()
    assert.is_nil(out)
    assert.equal('killed by SIGKILL', msg)
  end)

  it('kills and reaps a copy nobody waits for', function()
    local pid
    do
      local c <close> = assert(fork.start(spin))
      pid = c:pid()
    end
    -- reaped: no process (not even a zombie) has the pid
    assert.is_nil(io.open('/proc/' .. pid .. '/stat'))
  end)

  it('refuses what is not a function', function()
    assert.has_error(function() fork.start('x') end)
  end)

  it('counts 1..limit once over all processes, and stop() ends it for all', function()
    local n = 3000
    local counter = assert(fork.counter(n))
    local function take_all()
      local got = {}
      for i in function() return counter:take() end do got[#got + 1] = i end
      return table.concat(got, ' ')
    end
    local copies = {}
    for i = 1, 2 do copies[i] = assert(fork.start(take_all)) end
    local seen, total = {}, 0
    local function count(s)
      for i in s:gmatch('%d+') do
        i = tonumber(i)
        assert.is_nil(seen[i], 'taken twice: ' .. i)
        seen[i], total = true, total + 1
      end
    end
    count(take_all())
    for _, c in ipairs(copies) do count(assert(c:wait())) end
    assert.equal(n, total)
    assert.is_nil(counter:take())

    local c2 = assert(fork.counter(10))
    assert.equal(1, c2:take())
    local stopper = assert(fork.start(function()
      c2:stop()
      return 'stopped'
    end))
    assert.equal('stopped', stopper:wait())
    assert.is_nil(c2:take())
    assert.has_error(function() fork.counter(-1) end)
  end)

  it("arms the budget timer in a copy even when this process's timer was left set for sooner", function()
    -- a quick timed run leaves the timer armed for its deadline (0.3 s out);
    -- the copy has no timer at all (fork clears it), so it must not trust
    -- that record: its 0.6 s run is stopped at its deadline
    assert.is_true((sb.timed(0.3, 0, '@x.lua', function() end)))
    local c = assert(fork.start(function()
      local ok, kind = sb.timed(0.6, 0, '@x.lua', function()
        local t = os.clock()
        while os.clock() - t < 3 do end  -- not stopped: the test fails, it does not hang
        return 'not stopped'
      end)
      return tostring(ok) .. ' ' .. tostring(kind)
    end))
    assert.equal('false budget', c:wait())
  end)
end)
