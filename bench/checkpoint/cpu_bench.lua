-- luacheck: std +busted
-- CPU per small save on SQLite at synchronous=NORMAL (WAL checkpoints off),
-- each to a new thread; or the rows floor (the SQL of a save, no codec, no
-- aegis.checkpoint); or an empty db:tx. Prints os.clock() per operation.
--   CPU_MODE=save|rows|tx CPU_N=5000 bin/aegis-run test bench/checkpoint/cpu_bench.lua
-- Instruction counts (deterministic on a shared machine): run it under
-- `valgrind --tool=callgrind` with CPU_N=1000 and with CPU_N=0, and divide
-- the difference of the two totals by 1,000. CPU_DIR: where the database
-- goes (default a temporary directory).
local checkpoint = require('aegis.checkpoint')
local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]+$')
local rows_sql = dofile(here .. '/rows_floor.lua')

describe('checkpoint cpu bench', function()
  it('runs', function()
    local n = tonumber(os.getenv('CPU_N') or '') or 5000
    local dir = os.getenv('CPU_DIR')
    if not dir or dir == '' then
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute('mkdir -p ' .. dir))
    end
    for _, suffix in ipairs({ '', '-wal', '-shm' }) do os.remove(dir .. '/cpu.db' .. suffix) end
    local db <close> = assert(checkpoint.open('sqlite:' .. dir .. '/cpu.db', { synchronous = 'normal' }))
    assert(db:exec('PRAGMA wal_autocheckpoint=0'))
    local state = { goal = 'todo app', step = 3, done = false }
    local mode = os.getenv('CPU_MODE') or 'save'
    local row
    if mode == 'rows' then
      assert(checkpoint.save({ db = db, thread = 'seed', state = state }))
      row = assert(db:first("SELECT checkpoint, metadata FROM checkpoints WHERE thread_id = 'seed'"))
    end
    local c0 = os.clock()
    for i = 1, n do
      if mode == 'save' then
        assert(checkpoint.save({ db = db, thread = 'c' .. i, state = state }))
      elseif mode == 'tx' then
        assert(db:tx(function() return true end))
      else
        assert(db:tx(function(tx) return rows_sql(tx, 'r' .. i, i, row) end))
      end
    end
    if n > 0 then print(('\n%s: %.1f us CPU per operation'):format(mode, (os.clock() - c0) / n * 1e6)) end
  end)
end)
