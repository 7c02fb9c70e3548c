-- aegis.core.proc: the process runner under aegis.trace.run.
local h = require('spec.helpers')

local proc = require('aegis.core.proc')

local PATH = 'PATH=/usr/local/bin:/usr/bin:/bin'

-- Whether process `pid` still runs (a zombie waiting for init counts as gone).
local function alive(pid)
  local f = io.open('/proc/' .. pid .. '/stat', 'r')
  if not f then return false end
  local stat = f:read('a')
  f:close()
  return stat:match('^%d+ %b() (%a)') ~= 'Z'
end

-- Waits (bounded) until `pid` is gone; true when it is.
local function gone(pid)
  for _ = 1, 200 do
    if not alive(pid) then return true end
    os.execute('sleep 0.01')
  end
  return false
end

-- Our own children, from /proc (CONFIG_PROC_CHILDREN); nil when unavailable.
local function children()
  local f = io.open('/proc/self/stat', 'r')
  local pid = f:read('n')
  f:close()
  f = io.open(('/proc/self/task/%d/children'):format(pid), 'r')
  if not f then return nil end
  local s = f:read('a')
  f:close()
  return s
end

describe('aegis.core.proc', function()
  it('runs argv without a shell, with the given environment only', function()
    local r = assert(proc.run({ 'printf', '%s|%s', '$HOME; echo x', '*' }, { env = { PATH } }))
    assert.equal('$HOME; echo x|*', r.stdout)
    assert.equal(0, r.exit)
    assert.is_nil(r.signal)
    assert.is_false(r.timed_out)
    assert.is_true(r.seconds >= 0)

    r = assert(proc.run({ 'env' }, { env = { 'A=1', 'B=two words' } }))
    assert.equal('A=1\nB=two words\n', r.stdout)
    r = assert(proc.run({ 'env' }))
    assert.equal('', r.stdout)  -- no env given: an empty environment, never ours
  end)

  it('runs in cwd and looks the program up in path', function()
    local dir = h.tmpdir()
    local r = assert(proc.run({ 'pwd' }, { cwd = dir }))
    assert.equal(dir .. '\n', r.stdout)
    h.write(dir .. '/hello', '#!/bin/sh\necho hello from "$0"\n')
    os.execute('chmod +x ' .. h.shell_quote(dir .. '/hello'))
    r = assert(proc.run({ 'hello' }, { path = '/nonexistent:' .. dir }))
    assert.equal('hello from ' .. dir .. '/hello\n', r.stdout)
    r = assert(proc.run({ './hello' }, { cwd = dir }))  -- a relative path is taken from cwd
    assert.equal('hello from ./hello\n', r.stdout)
  end)

  it('reports exit codes and signals', function()
    local r = assert(proc.run({ 'sh', '-c', 'echo out; echo err >&2; exit 7' }))
    assert.same({ 'out\n', 'err\n', 7 }, { r.stdout, r.stderr, r.exit })
    r = assert(proc.run({ 'sh', '-c', 'kill -TERM $$' }))
    assert.equal(15, r.signal)
    assert.equal('TERM', r.signal_name)
    assert.is_nil(r.exit)
    r = assert(proc.run({ 'sh', '-c', 'kill -KILL $$' }))
    assert.same({ 9, 'KILL' }, { r.signal, r.signal_name })
  end)

  it('captures large output on both streams without deadlock', function()
    -- 3 MiB on stderr before anything on stdout: a reader of stdout alone would block forever
    local r = assert(proc.run({ 'sh', '-c', 'head -c 3145728 /dev/zero >&2; head -c 2097152 /dev/zero | tr "\\0" a' },
      { env = { PATH } }))
    assert.equal(2097152, #r.stdout)
    assert.equal(string.rep('a', 2097152), r.stdout)
    assert.equal(3145728, #r.stderr)
    assert.is_false(r.stdout_truncated)
    assert.is_false(r.stderr_truncated)
  end)

  it('feeds stdin larger than a pipe buffer, and survives a child that stops reading', function()
    local big = {}
    for i = 1, 200000 do big[i] = ('%07d\n'):format(i) end
    big = table.concat(big)  -- 1.6 MB
    local r = assert(proc.run({ 'cat' }, { stdin = big }))
    assert.equal(#big, #r.stdout)
    assert.is_true(r.stdout == big)
    assert.equal(#big, r.stdin_written)
    -- reads 10 bytes and exits: our writes get EPIPE, not a SIGPIPE that kills us
    r = assert(proc.run({ 'head', '-c', '10' }, { stdin = big, env = { PATH } }))
    assert.equal('0000001\n00', r.stdout)
    assert.equal(0, r.exit)
    assert.is_true(r.stdin_written < #big)
  end)

  it('caps each stream, counts what it dropped and flags it', function()
    local r = assert(proc.run({ 'sh', '-c', 'head -c 100000 /dev/zero; head -c 50 /dev/zero >&2' },
      { cap = 1000, env = { PATH } }))
    assert.equal(1000, #r.stdout)
    assert.is_true(r.stdout_truncated)
    assert.equal(100000, r.stdout_bytes)
    assert.equal(50, #r.stderr)
    assert.is_false(r.stderr_truncated)
    assert.equal(0, r.exit)  -- the child was not blocked by the cap
  end)

  it('on timeout kills a child that ignores SIGTERM, and its grandchildren', function()
    local dir = h.tmpdir()
    local r = assert(proc.run({ 'sh', '-c',
      'trap "" TERM; (trap "" TERM; sleep 30) & echo $! > "$1"; wait', 'sh', dir .. '/pid' },
      { timeout = 0.3, grace = 0.2, env = { PATH } }))
    assert.is_true(r.timed_out)
    assert.equal(9, r.signal)
    assert.equal('KILL', r.signal_name)
    assert.is_nil(r.exit)
    local pid = assert(tonumber(h.read(dir .. '/pid')))
    assert.is_true(gone(pid))
  end)

  it('on timeout stops at SIGTERM when the child obeys it', function()
    local r = assert(proc.run({ 'sleep', '30' }, { timeout = 0.1, env = { PATH } }))
    assert.is_true(r.timed_out)
    assert.same({ 15, 'TERM' }, { r.signal, r.signal_name })
  end)

  it('ends what the child left in its group when it exits', function()
    local dir = h.tmpdir()
    local r = assert(proc.run({ 'sh', '-c', 'sleep 30 >/dev/null 2>&1 & echo $! > "$1"', 'sh', dir .. '/pid' },
      { env = { PATH } }))
    assert.equal(0, r.exit)
    assert.is_true(gone(assert(tonumber(h.read(dir .. '/pid')))))
  end)

  it('stops reading after the grace period when a process outside the group holds the pipes', function()
    local dir = h.tmpdir()
    -- the parent waits until the escaped process has left the group
    local r = assert(proc.run({ 'sh', '-c', 'echo before; setsid sh -c \'echo $$ > "$1"; exec sleep 30\' sh "$1" & '
      .. 'while [ ! -s "$1" ]; do sleep 0.01; done', 'sh', dir .. '/pid' }, { grace = 0.1, env = { PATH } }))
    assert.equal(0, r.exit)
    assert.equal('before\n', r.stdout)
    assert.is_true(r.pipes_held)
    local pid = tonumber(h.read(dir .. '/pid'))
    if pid then os.execute('kill ' .. pid .. ' 2>/dev/null') end
  end)

  it('leaves no zombie and passes no descriptor but 0, 1 and 2', function()
    local r = assert(proc.run({ 'sh', '-c', 'ls /proc/$$/fd' }, { env = { PATH } }))
    assert.equal('0\n1\n2\n', r.stdout)
    for _ = 1, 3 do assert(proc.run({ 'true' }, { env = { PATH } })) end
    local kids = children()
    if kids then assert.equal('', kids) end
  end)

  it('returns nil, msg, code when the program cannot be started', function()
    local r, msg, code = proc.run({ 'aegis-no-such-program' })
    assert.is_nil(r)
    assert.equal("proc: run 'aegis-no-such-program': program 'aegis-no-such-program' not found", msg)
    assert.equal('not_found', code)
    r, msg, code = proc.run({ '/nonexistent/bin/x' })
    assert.is_nil(r)
    assert.equal("proc: run '/nonexistent/bin/x': program '/nonexistent/bin/x' not found", msg)
    assert.equal('not_found', code)
    local dir = h.tmpdir()
    h.write(dir .. '/noexec', 'echo hi\n')
    r, msg, code = proc.run({ dir .. '/noexec' })
    assert.is_nil(r)
    assert.equal(("proc: run '%s/noexec': start '%s/noexec': Permission denied"):format(dir, dir), msg)
    assert.equal('io', code)
    r, msg, code = proc.run({ dir })  -- a directory
    assert.is_nil(r)
    assert.equal(("proc: run '%s': start '%s': Permission denied"):format(dir, dir), msg)
    assert.equal('io', code)
    r, msg, code = proc.run({ './missing' }, { cwd = dir })  -- relative to cwd
    assert.is_nil(r)
    assert.equal("proc: run './missing': program './missing' not found", msg)
    assert.equal('not_found', code)
    r, msg, code = proc.run({ 'true' }, { cwd = dir .. '/missing' })
    assert.is_nil(r)
    assert.equal(("proc: run 'true': cwd '%s/missing': No such file or directory"):format(dir), msg)
    assert.equal('not_found', code)
    r, msg, code = proc.run({ 'true' }, { cwd = dir .. '/noexec' })
    assert.is_nil(r)
    assert.equal(("proc: run 'true': cwd '%s/noexec': Not a directory"):format(dir), msg)
    assert.equal('io', code)
  end)

  it('raises on misuse', function()
    assert.error_matches(function() proc.run('ls') end, "bad argument #1 to 'run' %(table expected")
    assert.error_matches(function() proc.run({}) end, "bad argument #1 to 'run' %(argv is empty%)")
    assert.error_matches(function() proc.run({ 'ls', 3 }) end, 'argv%[2%] must be a string, got number')
    assert.error_matches(function() proc.run({ 'ls', 'a\0b' }) end, 'argv%[2%] contains a NUL byte')
    assert.error_matches(function() proc.run({ 'ls' }, 5) end, "bad argument #2 to 'run' %(table expected")
    assert.error_matches(function() proc.run({ 'ls' }, { env = 'A=1' }) end, 'env must be a list')
    assert.error_matches(function() proc.run({ 'ls' }, { env = { 'A=\0' } }) end, 'env%[1%] contains a NUL byte')
    assert.error_matches(function() proc.run({ 'ls' }, { timeout = -1 }) end, 'timeout must be between 0 and 1e9')
    assert.error_matches(function() proc.run({ 'ls' }, { timeout = 'x' }) end, 'timeout must be a number')
    assert.error_matches(function() proc.run({ 'ls' }, { stdin = 5 }) end, 'stdin must be a string')
    assert.error_matches(function() proc.run({ 'ls' }, { cwd = 5 }) end, 'cwd must be a string, got number')
  end)
end)
