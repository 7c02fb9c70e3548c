--- Out of memory, end to end: aegis-run runs representative scripts with
--- every Lua allocation past the n-th failing, for many n, and must fail
--- cleanly every time.
---
--- AEGIS_ALLOC_FAIL_AFTER=n (runtime/host.c) lets the first n growing
--- allocations of the Lua state's allocator succeed and fails every later
--- one, from the creation of the state on (n = 0 fails the very first), as
--- ltests.c's countlimit does. It counts only the Lua allocator: SQLite,
--- OpenSSL, libpq and lua-cjson call malloc themselves, so their own
--- out-of-memory paths are not driven here; what is driven is every point
--- where a binding calls into Lua around them (pushing results, building
--- messages, creating userdata), with C state that must stay consistent and
--- nothing leaked when the memory error unwinds past it. (One leak is not
--- ours and is suppressed in tools/lsan.supp and tools/valgrind.supp:
--- lua-cjson's decoder loses its scratch buffer when a Lua memory error
--- unwinds through it.)
---
--- For each script the spec finds N, the first n at which the script runs
--- to its normal end, and N0, the same for an empty script (start-up).
--- Start-up is covered once (every n below 100, a sample above); each
--- script then gets a sample of its own region [N0, N), every n of its last
--- 30 allocations, and for the store every n around the point where the
--- store opens. Each run must end normally or exit 1 with one line on
--- stderr saying "not enough memory" (the host's, or a binding's own
--- message with code nomem): never a crash (exit >= 128) and, under `make
--- test-asan` (AEGIS_BIN is the ASan binary), never a sanitizer report,
--- leaks included. A SQLite file a failed run leaves behind must pass
--- PRAGMA integrity_check. Under `make test-valgrind` (AEGIS_WRAP) each
--- script runs a handful of n only; N is still searched for unwrapped.
local h = require('spec.helpers')
local store = require('aegis.store')

local WRAPPED = (os.getenv('AEGIS_WRAP') or '') ~= ''

-- Stderr of a run that failed for want of memory: one line, whoever wrote it.
local OOM = '^[^\n]*not enough memory[^\n]*\n$'

-- What a failed run must never print.
local SANITIZER = { 'ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer' }


local scripts = {}

scripts.empty = { code = '' }

scripts.hash = {
  code = [[
    local h = aegis.hash
    assert(h.sha256('abc') == 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    local x = h.sha256_new()
    x:update('a'):update('bc')
    assert(x:hex() == h.sha256('abc'))]],
}

scripts.json = {
  code = [==[
    local j = aegis.json
    local v = { b = { 1, 2.5, { c = true, d = j.null, e = j.array({}) } }, a = 'x\n', ['é'] = {} }
    assert(j.canonical(v) == '{"a":"x\\n","b":[1,2.5,{"c":true,"d":null,"e":[]}],"é":{}}')
    local d = assert(j.decode('{"a":[1,2.5,{"b":[]}],"c":null,"d":"\\u00e9","e":{"f":[[1],[2]]}}'))
    assert(#d.a == 3 and d.c == j.null and d.d == 'é' and d.e.f[2][1] == 2)
    assert(j.encode(d, { indent = 2 }):find('\n  "a": [', 1, true))]==],
}

scripts.store = {
  code = [[
    local db = assert(aegis.store.open('sqlite:s.db'))
    assert(db:migrate('oom', { 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, b BLOB)' }))
    assert(db:tx(function()
      for i = 1, 20 do
        assert(db:exec('INSERT INTO t (v, b) VALUES ($1, $2)', ('v'):rep(i), aegis.store.blob('\0' .. i)))
      end
      return true
    end))
    local rows = assert(db:query('SELECT id, v, b FROM t WHERE id > $1 ORDER BY id', 0))
    assert(#rows == 20 and rows[20].v == ('v'):rep(20) and rows[20].b == '\0' .. 20)
    assert(db:close())]],
}

scripts.uuid = {
  code = [[
    local a, b = aegis.uuid.v6(), aegis.uuid.v6()
    assert(#a == 36 and a < b and a:sub(15, 15) == '6')]],
}

-- The budget stop is the script's normal end.
scripts.budget = {
  files = { ['aegis.config.lua'] = 'return { sandbox = { instructions = 100000 } }\n' },
  code = 'local x = 0 while true do x = x + 1 end',
  stderr = 'aegis-run: (command line):1: sandbox: instruction budget exceeded (100000 instructions)\n',
  code_ok = 1,
}

for name, s in pairs(scripts) do
  s.name = name
  s.code_ok = s.code_ok or 0
  s.stderr = s.stderr or ''
end

local function setup(s)
  if s.dir then return end
  s.dir = h.tmpdir()
  for f, text in pairs(s.files or {}) do h.write(s.dir .. '/' .. f, text) end
end

local function clean(s)
  for _, suffix in ipairs({ '', '-wal', '-shm', '-journal' }) do os.remove(s.dir .. '/s.db' .. suffix) end
end

-- Runs s with the n-th allocation failing; `bare` skips AEGIS_WRAP.
local function run(s, n, bare)
  setup(s)
  clean(s)
  return h.run({ '-e', s.code }, {
    cwd = s.dir, bin = bare and h.bin or nil,
    env = { AEGIS_ALLOC_FAIL_AFTER = tostring(n), AEGIS_DEBUG = false, AEGIS_STORE = false },
  })
end

local function ended(s, r)
  return r.code == s.code_ok and r.stderr == s.stderr
end

-- N: the first n at which s runs to its end (exponential, then binary search).
local function threshold(s, lo)
  lo = lo or 0
  local hi = lo + 1024
  while not ended(s, run(s, hi, true)) do
    lo, hi = hi, hi * 2
    assert(hi < 1e7, s.name .. ': never ends normally')
  end
  while lo < hi do
    local mid = (lo + hi) // 2
    if ended(s, run(s, mid, true)) then hi = mid else lo = mid + 1 end
  end
  return lo
end

-- The store's file after a run: absent, or a database that passes integrity_check.
local function check_db(s, n)
  local path = s.dir .. '/s.db'
  if not h.read(path) then return false end
  local db = assert(store.open('sqlite:' .. path))
  local row = assert(db:first('PRAGMA integrity_check'))
  db:close()
  assert.equal('ok', row.integrity_check, ('%s, n = %d: the file left behind is damaged'):format(s.name, n))
  return true
end

-- One run's verdict; raises on anything but a normal end or a clean failure.
local function check(s, n)
  local r = run(s, n)
  local where = ('%s script, AEGIS_ALLOC_FAIL_AFTER=%d: '):format(s.name, n)
  assert(r.code < 128, where .. 'crashed, exit ' .. r.code .. '\n' .. r.stderr)
  for _, report in ipairs(SANITIZER) do
    assert(not r.stderr:find(report, 1, true), where .. 'sanitizer report\n' .. r.stderr)
  end
  if s.name == 'store' then check_db(s, n) end
  if ended(s, r) then return end
  assert(r.code == 1 and r.stderr:match(OOM),
    where .. 'expected exit 1 and one line saying "not enough memory", got exit ' .. r.code .. '\n' .. r.stderr)
end

-- Adds lo, lo + step, ... below hi to the set `ns`.
local function add(ns, lo, hi, step)
  for n = math.max(lo, 0), hi - 1, step do ns[n] = true end
end

local function sorted(ns)
  local out = {}
  for n in pairs(ns) do out[#out + 1] = n end
  table.sort(out)
  return out
end

local N0

-- The n to try for s: a sample of [N0, N) (about 60), its last 30 densely,
-- and `extra` windows; a handful under valgrind.
local function plan(N, extra)
  local ns = {}
  if WRAPPED then
    for _, n in ipairs({ N0, (N0 + N) // 2, N - 2, N - 1 }) do ns[n] = true end
    for _, w in ipairs(extra or {}) do ns[w[1] + (w[2] - w[1]) // 2] = true end
    return sorted(ns)
  end
  add(ns, N0, N, math.max(1, -((N0 - N) // 60)))
  add(ns, N - 30, N, 1)
  for _, w in ipairs(extra or {}) do add(ns, w[1], w[2], 1) end
  return sorted(ns)
end

local function sweep(s, ns)
  for _, n in ipairs(ns) do check(s, n) end
end

describe('aegis-run out of memory', function()
  setup(scripts.empty)

  it('fails cleanly at every point of start-up', function()
    N0 = threshold(scripts.empty)
    assert.is_true(N0 > 100, 'start-up should need some allocations, found ' .. N0)
    local ns = {}
    if WRAPPED then
      for _, n in ipairs({ 0, 1, 2, 50, N0 // 2, N0 - 1 }) do ns[n] = true end
    else
      add(ns, 0, 100, 1)
      add(ns, 100, N0, 50)
      add(ns, N0 - 10, N0, 1)
    end
    sweep(scripts.empty, sorted(ns))
    -- the earliest failures, where the state itself cannot be built
    for n = 0, 2 do
      local r = run(scripts.empty, n)
      assert.same({ 1, 'aegis-run: not enough memory\n' }, { r.code, r.stderr })
    end
  end)

  for _, name in ipairs({ 'hash', 'json', 'uuid' }) do
    it('fails cleanly running the ' .. name .. ' script', function()
      local s = scripts[name]
      local N = threshold(s, N0)
      sweep(s, plan(N))
    end)
  end

  it('fails cleanly opening, migrating, writing and reading a SQLite store', function()
    local s = scripts.store
    local N = threshold(s, N0)
    -- where the open succeeds: the first n that leaves a file behind
    local lo, hi = N0, N
    while lo < hi do
      local mid = (lo + hi) // 2
      run(s, mid, true)
      if h.read(s.dir .. '/s.db') then hi = mid else lo = mid + 1 end
    end
    sweep(s, plan(N, { { lo - 40, lo + 10 } }))
    -- and the script's own end: a file with the 20 rows
    clean(s)
    local r = run(s, N)
    assert.same({ 0, '' }, { r.code, r.stderr })
    assert.is_true(check_db(s, N))
  end)

  it('fails cleanly on the way to a budget stop', function()
    local s = scripts.budget
    local N = threshold(s, N0)
    sweep(s, plan(N))
  end)
end)
