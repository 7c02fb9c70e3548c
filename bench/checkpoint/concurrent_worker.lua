-- luacheck: std +busted
-- One writer of bench/checkpoint/concurrent_bench.lua, run as `aegis-run
-- test`: opens the checkpoint store at $CW_SYNC, says it is ready, waits for
-- the go file, makes $CW_N small saves to its own thread, and writes the
-- monotonic times (seconds, system-wide clock) of its first and last save.
-- $CW_FLOOR=1: raw one-row inserts in their own transactions instead (the
-- floor: the same commits without aegis.checkpoint).
local checkpoint = require('aegis.checkpoint')
local clock = require('aegis.clock')
local sleep = require('aegis.core.http').sleep

describe('concurrent saves worker', function()
  it('saves', function()
    local url, n, thread = os.getenv('CW_URL'), tonumber(os.getenv('CW_N')), os.getenv('CW_THREAD')
    local floor = os.getenv('CW_FLOOR') == '1'
    local db <close> = assert(checkpoint.open(url, { synchronous = os.getenv('CW_SYNC') }))
    local f = assert(io.open(os.getenv('CW_READY'), 'w'))
    f:close()
    local go = os.getenv('CW_GO')
    while not io.open(go) do sleep(0.001) end
    local t0 = clock.monotonic()
    for i = 1, n do
      if floor then
        assert(db:tx(function(tx)
          return tx:exec('INSERT INTO floor (k, v) VALUES ($1, $2)', thread .. '-' .. i, '{"i":' .. i .. '}')
        end))
      else
        assert(checkpoint.save({ db = db, thread = thread, state = { i = i, goal = 'todo app', done = false } }))
      end
    end
    local t1 = clock.monotonic()
    f = assert(io.open(os.getenv('CW_OUT'), 'w'))
    f:write(('%.6f %.6f\n'):format(t0, t1))
    f:close()
  end)
end)
