local h = require('spec.helpers')
local fs = require('aegis.fs')
local core = require('aegis.core.fs')

local q = h.shell_quote

local function sh(cmd)
  assert(os.execute(cmd), cmd)
end

local function umask()
  local p = io.popen('umask')
  local m = tonumber(p:read('l'), 8)
  p:close()
  return m
end

local function octal(s) return tonumber(s, 8) end

-- Open descriptors of this process (the listing's own is in both counts).
local function fds()
  return #assert(fs.list('/proc/self/fd'))
end

-- Runs f(arg) under memory caps of 2^lo .. 2^hi bytes; some must run out
-- (part way, with an fd or DIR* open), and none may leave a descriptor open
-- once the collector has run.
local function releases_on_oom(f, arg, lo, hi)
  local sandbox = require('aegis.core.sandbox')
  collectgarbage()  -- handles other specs left to the collector must not close during the count
  collectgarbage()
  local before, failed = fds(), 0
  for k = lo, hi do
    collectgarbage()  -- little garbage for the emergency collection to free
    local ok, kind = sandbox.call(0, 0, 1 << k, '@spec', f, arg)
    if not ok then
      assert.equal('memory', kind)
      failed = failed + 1
    end
  end
  assert.is_true(failed > 0)
  collectgarbage()
  collectgarbage()
  assert.equal(before, fds())
end

describe('aegis.fs', function()
  describe('read', function()
    it('returns the whole file, byte for byte', function()
      local dir = h.tmpdir()
      local data = 'a\0b\r\n\255' .. ('x'):rep(200000)  -- larger than one 64 KiB chunk
      h.write(dir .. '/f', data)
      assert.equal(data, fs.read(dir .. '/f'))
      h.write(dir .. '/empty', '')
      assert.equal('', fs.read(dir .. '/empty'))
    end)

    it('reads files whose size stat does not know', function()
      assert.equal('', fs.read('/dev/null'))
      local status = assert(fs.read('/proc/self/status'))  -- stat says 0 bytes
      assert.matches('^Name:', status)
    end)

    it('returns nil, reason, not_found for a missing file', function()
      local data, reason, code = fs.read(h.tmpdir() .. '/missing.lua')
      assert.is_nil(data)
      assert.equal('No such file or directory', reason)
      assert.equal('not_found', code)
    end)

    it('returns nil, reason, io for a directory or a path through a file', function()
      local dir = h.tmpdir()
      assert.same({ nil, 'Is a directory', 'io' }, { fs.read(dir) })
      h.write(dir .. '/f', 'x')
      assert.same({ nil, 'Not a directory', 'io' }, { fs.read(dir .. '/f/g') })
    end)

    it('raises on misuse', function()
      assert.has_error(function() fs.read(1) end, "bad argument #1 to 'read' (string expected, got number)")
      assert.has_error(function() fs.read() end, "bad argument #1 to 'read' (string expected, got nil)")
      assert.error_matches(function() fs.read('a\0b') end, "bad argument #1 to 'read' %(path contains a NUL byte%)")
    end)

    it('closes the file when memory runs out while reading', function()
      local dir = h.tmpdir()
      h.write(dir .. '/big', ('y'):rep(1 << 20))
      releases_on_oom(core.read, dir .. '/big', 6, 21)
    end)
  end)

  describe('write', function()
    it('creates a file with 0666 less the umask, leaving no temporary', function()
      local dir = h.tmpdir()
      assert.equal(true, fs.write(dir .. '/a.json', '{}\n'))
      assert.equal('{}\n', h.read(dir .. '/a.json'))
      assert.equal(octal('666') & ~umask(), fs.stat(dir .. '/a.json').mode)
      assert.same({ 'a.json' }, fs.list(dir))
    end)

    it('replaces a file whole, keeping its permission bits', function()
      local dir = h.tmpdir()
      h.write(dir .. '/a', ('old'):rep(1000))
      sh('chmod 640 ' .. q(dir .. '/a'))
      assert.equal(true, fs.write(dir .. '/a', 'new'))
      assert.equal('new', h.read(dir .. '/a'))
      assert.equal(octal('640'), fs.stat(dir .. '/a').mode)
      assert.equal(true, fs.write(dir .. '/a', ''))
      assert.equal('', h.read(dir .. '/a'))
      assert.same({ 'a' }, fs.list(dir))
    end)

    it('writes relative to the current directory', function()
      local name = 'spec-fs-relative.tmp'
      assert.is_false(fs.exists(name))
      assert.equal(true, fs.write(name, 'x'))
      local data = h.read(name)
      os.remove(name)
      assert.equal('x', data)
    end)

    it('replaces a symbolic link, not the file it points to', function()
      local dir = h.tmpdir()
      h.write(dir .. '/target', 'target')
      sh('ln -s target ' .. q(dir .. '/link'))
      assert.equal(true, fs.write(dir .. '/link', 'new'))
      assert.equal('target', h.read(dir .. '/target'))
      assert.equal('file', fs.stat(dir .. '/link', { follow = false }).type)
      assert.equal('new', h.read(dir .. '/link'))
    end)

    it('fails into a missing directory, creating nothing', function()
      local dir = h.tmpdir()
      assert.same({ nil, 'No such file or directory', 'not_found' }, { fs.write(dir .. '/no/a', 'x') })
      assert.same({}, fs.list(dir))
    end)

    it('fails over a directory or through a file, leaving them and no temporary', function()
      local dir = h.tmpdir()
      sh('mkdir ' .. q(dir .. '/d'))
      h.write(dir .. '/d/inside', 'kept')
      assert.same({ nil, 'Is a directory', 'io' }, { fs.write(dir .. '/d', 'x') })
      assert.same({ nil, 'Is a directory', 'io' }, { fs.write(dir .. '/d/', 'x') })
      assert.same({ nil, 'Is a directory', 'io' }, { fs.write(dir .. '/new/', 'x') })
      assert.same({ 'd' }, fs.list(dir))
      assert.same({ 'inside' }, fs.list(dir .. '/d'))
      assert.equal('kept', h.read(dir .. '/d/inside'))
      h.write(dir .. '/f', 'old')
      assert.same({ nil, 'Not a directory', 'io' }, { fs.write(dir .. '/f/x', 'x') })
      assert.equal('old', h.read(dir .. '/f'))
    end)

    -- A write that fails half way (here: past the file size limit, EFBIG)
    -- must leave the old file whole; a plain truncate-and-write empties it.
    -- Run through `schema export`, the command the atomic write is for.
    it('keeps the old content when the write fails half way', function()
      local dir = h.tmpdir()
      local out = dir .. '/out'
      assert.equal(0, h.run({ 'schema', 'export', out }).code)
      local full = assert(h.read(out .. '/config.schema.json'))
      assert.is_true(#full > 512)  -- more than the limit below
      local names = fs.list(out)
      for _, n in ipairs(names) do h.write(out .. '/' .. n, 'old\n') end
      -- 1 block of 512 bytes: room for the error message on stderr, not for the file
      local wrapper = h.write(dir .. '/limited.sh', ("#!/bin/sh\ntrap '' XFSZ\nulimit -f 1\nexec %s \"$@\"\n")
        :format(q(h.bin)))
      sh('chmod +x ' .. q(wrapper))
      local r = h.run({ 'schema', 'export', out }, { bin = wrapper })
      -- the first file written (names sorted) is the one that fails
      assert.equal(("aegis-run: schema: export '%s/%s': file too large\n"):format(out, names[1]), r.stderr)
      assert.equal(1, r.code)
      for _, n in ipairs(names) do assert.equal('old\n', h.read(out .. '/' .. n), n) end
      assert.same(names, fs.list(out))
    end)

    it('raises on misuse', function()
      assert.has_error(function() fs.write(nil, 'x') end, "bad argument #1 to 'write' (string expected, got nil)")
      assert.has_error(function() fs.write('x', 1) end, "bad argument #2 to 'write' (string expected, got number)")
      assert.error_matches(function() fs.write('a\0b', '') end,
        "bad argument #1 to 'write' %(path contains a NUL byte%)")
    end)
  end)

  describe('list', function()
    it('lists names sorted by bytes, without . and ..', function()
      local dir = h.tmpdir()
      for _, n in ipairs({ 'b', 'a', 'B', '.hidden', 'a.lua', 'z z' }) do h.write(dir .. '/' .. n, '') end
      sh('mkdir ' .. q(dir .. '/sub'))
      assert.same({ '.hidden', 'B', 'a', 'a.lua', 'b', 'sub', 'z z' }, fs.list(dir))
      assert.same({}, fs.list(dir .. '/sub'))
    end)

    it('follows a link to a directory', function()
      local dir = h.tmpdir()
      sh('mkdir ' .. q(dir .. '/real') .. ' && ln -s real ' .. q(dir .. '/link'))
      h.write(dir .. '/real/x', '')
      assert.same({ 'x' }, fs.list(dir .. '/link'))
    end)

    it('returns nil, reason, code for a missing directory or a file', function()
      local dir = h.tmpdir()
      assert.same({ nil, 'No such file or directory', 'not_found' }, { fs.list(dir .. '/no') })
      h.write(dir .. '/f', '')
      assert.same({ nil, 'Not a directory', 'io' }, { fs.list(dir .. '/f') })
    end)

    it('closes the directory when memory runs out while listing', function()
      local dir = h.tmpdir()
      for i = 1, 200 do h.write(('%s/entry-%03d'):format(dir, i), '') end
      releases_on_oom(core.readdir, dir, 4, 15)
    end)

    it('raises on misuse', function()
      assert.has_error(function() fs.list({}) end, "bad argument #1 to 'list' (string expected, got table)")
    end)
  end)

  describe('mkdir', function()
    it('creates a directory with 0755 less the umask, or the mode given', function()
      local dir = h.tmpdir()
      assert.equal(true, fs.mkdir(dir .. '/a'))
      local st = fs.stat(dir .. '/a')
      assert.equal('directory', st.type)
      assert.equal(octal('755') & ~umask(), st.mode)
      assert.equal(true, fs.mkdir(dir .. '/b', { mode = octal('700') }))
      assert.equal(octal('700'), fs.stat(dir .. '/b').mode)
    end)

    it('fails on anything already there, a directory too', function()
      local dir = h.tmpdir()
      h.write(dir .. '/f', '')
      assert.same({ nil, 'File exists', 'io' }, { fs.mkdir(dir) })
      assert.same({ nil, 'File exists', 'io' }, { fs.mkdir(dir .. '/f') })
    end)

    it('needs the parent, or a path through directories', function()
      local dir = h.tmpdir()
      assert.same({ nil, 'No such file or directory', 'not_found' }, { fs.mkdir(dir .. '/a/b') })
      h.write(dir .. '/f', '')
      assert.same({ nil, 'Not a directory', 'io' }, { fs.mkdir(dir .. '/f/b') })
    end)

    it('with parents, creates the missing ones and accepts a directory there', function()
      local dir = h.tmpdir()
      assert.equal(true, fs.mkdir(dir .. '/a/b/c/', { parents = true }))
      assert.equal('directory', fs.stat(dir .. '/a/b/c').type)
      assert.equal(true, fs.mkdir(dir .. '/a/b', { parents = true }))
      assert.equal(true, fs.mkdir(dir, { parents = true }))
      assert.equal(true, fs.mkdir('/', { parents = true }))
      assert.equal(true, fs.mkdir(dir .. '/m/n', { parents = true, mode = octal('700') }))
      assert.equal(octal('700'), fs.stat(dir .. '/m').mode)
      assert.equal(octal('700'), fs.stat(dir .. '/m/n').mode)
    end)

    it('with parents, follows a link to a directory', function()
      local dir = h.tmpdir()
      sh('mkdir ' .. q(dir .. '/real') .. ' && ln -s real ' .. q(dir .. '/link'))
      assert.equal(true, fs.mkdir(dir .. '/link', { parents = true }))
      assert.equal(true, fs.mkdir(dir .. '/link/x/y', { parents = true }))
      assert.equal('directory', fs.stat(dir .. '/real/x/y').type)
    end)

    it('with parents, fails on a file in the way', function()
      local dir = h.tmpdir()
      h.write(dir .. '/f', '')
      assert.same({ nil, 'File exists', 'io' }, { fs.mkdir(dir .. '/f', { parents = true }) })
      assert.same({ nil, 'Not a directory', 'io' }, { fs.mkdir(dir .. '/f/a/b', { parents = true }) })
      assert.same({ 'f' }, fs.list(dir))
    end)

    it('raises on misuse', function()
      assert.has_error(function() fs.mkdir(1) end, "bad argument #1 to 'mkdir' (string expected, got number)")
      assert.has_error(function() fs.mkdir('x', true) end, "bad argument #2 to 'mkdir' (table expected, got boolean)")
      for _, bad in ipairs({ -1, 4096, 1.5, '755' }) do
        assert.has_error(function() fs.mkdir('x', { mode = bad }) end,
          "bad argument #2 to 'mkdir' (mode must be an integer 0 to 0o7777)")
      end
    end)
  end)

  describe('scan', function()
    it('lists names with their kinds, links and other things not followed', function()
      local dir = h.tmpdir()
      h.write(dir .. '/f.ts', 'hello')
      h.write(dir .. '/.hidden', '')
      sh('mkdir ' .. q(dir .. '/d') .. ' && ln -s f.ts ' .. q(dir .. '/lf') .. ' && ln -s d ' .. q(dir .. '/ld')
        .. ' && ln -s nowhere ' .. q(dir .. '/dangling') .. ' && mkfifo ' .. q(dir .. '/p'))
      local ls = fs.scan(dir)
      assert.same({ '.hidden', 'd', 'dangling', 'f.ts', 'ld', 'lf', 'p' }, ls.names)
      assert.same({ 'file', 'directory', 'link', 'file', 'link', 'link', 'other' }, ls.types)
      assert.is_nil(ls.sizes)
      assert.same({ names = {}, types = {} }, fs.scan(dir .. '/d'))
    end)

    it('sorts by bytes, a directory as if its name ended in /', function()
      local dir = h.tmpdir()
      -- '.' < '/' < '0': the directory 'a' goes between 'a.ts' and 'a0'
      for _, n in ipairs({ 'a.ts', 'a0', 'a-b', 'A', 'b', '\xc3\xa9' }) do h.write(dir .. '/' .. n, '') end
      sh('mkdir ' .. q(dir .. '/a') .. ' && mkdir ' .. q(dir .. '/a.d'))
      assert.same({ 'A', 'a-b', 'a.d', 'a.ts', 'a', 'a0', 'b', '\xc3\xa9' }, fs.scan(dir).names)
      -- fs.list sorts the plain names
      assert.same({ 'A', 'a', 'a-b', 'a.d', 'a.ts', 'a0', 'b', '\xc3\xa9' }, fs.list(dir))
    end)

    it('gives the sizes of regular files with sizes = true', function()
      local dir = h.tmpdir()
      h.write(dir .. '/big', ('x'):rep(70000))
      h.write(dir .. '/empty', '')
      sh('mkdir ' .. q(dir .. '/d') .. ' && ln -s big ' .. q(dir .. '/link'))
      local ls = fs.scan(dir, { sizes = true })
      assert.same({ 'big', 'd', 'empty', 'link' }, ls.names)
      assert.same({ 70000, false, 0, false }, ls.sizes)
    end)

    it('lists a large directory, long names included', function()
      local dir = h.tmpdir()
      local want = {}
      for i = 1, 300 do
        local n = ('%03d-'):format(i) .. ('n'):rep(i % 7 == 0 and 200 or 8)
        want[i] = n
        h.write(dir .. '/' .. n, ('y'):rep(i))
      end
      local ls = fs.scan(dir, { sizes = true })
      assert.same(want, ls.names)
      for i = 1, 300 do
        assert.equal('file', ls.types[i])
        assert.equal(i, ls.sizes[i])
      end
    end)

    it('follows a link given as the directory', function()
      local dir = h.tmpdir()
      sh('mkdir ' .. q(dir .. '/real') .. ' && ln -s real ' .. q(dir .. '/link'))
      h.write(dir .. '/real/x', '')
      assert.same({ names = { 'x' }, types = { 'file' } }, fs.scan(dir .. '/link'))
    end)

    it('returns nil, reason, code for a missing directory, a file or a link loop', function()
      local dir = h.tmpdir()
      assert.same({ nil, 'No such file or directory', 'not_found' }, { fs.scan(dir .. '/no') })
      h.write(dir .. '/f', '')
      assert.same({ nil, 'Not a directory', 'io' }, { fs.scan(dir .. '/f') })
      assert.same({ nil, 'Not a directory', 'io' }, { fs.scan(dir .. '/f', { sizes = true }) })
      sh('ln -s loop ' .. q(dir .. '/loop'))
      assert.same({ nil, 'Too many levels of symbolic links', 'io' }, { fs.scan(dir .. '/loop') })
      -- the core's own message names the action and the path
      assert.same({ nil, "fs: scan '" .. dir .. "/no': No such file or directory", 'not_found' },
        { core.scan(dir .. '/no') })
    end)

    it('closes the directory when memory runs out while listing', function()
      local dir = h.tmpdir()
      for i = 1, 300 do h.write(('%s/entry-%03d'):format(dir, i), '') end
      releases_on_oom(core.scan, dir, 4, 15)
    end)

    it('raises on misuse', function()
      assert.has_error(function() fs.scan(1) end, "bad argument #1 to 'scan' (string expected, got number)")
      assert.has_error(function() fs.scan('.', true) end, "bad argument #2 to 'scan' (table expected, got boolean)")
      assert.error_matches(function() fs.scan('a\0b') end, "bad argument #1 to 'scan' %(path contains a NUL byte%)")
    end)
  end)

  describe('stat', function()
    it('describes a file: type, size, mtime, mode', function()
      local dir = h.tmpdir()
      h.write(dir .. '/f', 'hello')
      sh('chmod 604 ' .. q(dir .. '/f') .. ' && touch -d @1000000000.5 ' .. q(dir .. '/f'))
      assert.same({ type = 'file', size = 5, mtime = 1000000000.5, mode = octal('604') }, fs.stat(dir .. '/f'))
    end)

    it('describes directories, links and other things', function()
      local dir = h.tmpdir()
      assert.equal('directory', fs.stat(dir).type)
      h.write(dir .. '/f', '')
      sh('ln -s f ' .. q(dir .. '/link') .. ' && ln -s nowhere ' .. q(dir .. '/dangling'))
      assert.equal('file', fs.stat(dir .. '/link').type)
      assert.equal('link', fs.stat(dir .. '/link', { follow = false }).type)
      assert.equal('link', fs.stat(dir .. '/dangling', { follow = false }).type)
      assert.equal('other', fs.stat('/dev/null').type)
    end)

    it('returns a plain nil when nothing is there', function()
      local dir = h.tmpdir()
      assert.equal(1, select('#', fs.stat(dir .. '/missing')))
      assert.is_nil(fs.stat(dir .. '/missing'))
      sh('ln -s nowhere ' .. q(dir .. '/dangling'))
      assert.equal(1, select('#', fs.stat(dir .. '/dangling')))
    end)

    it('returns nil, reason, io for a path through a file or a link loop', function()
      local dir = h.tmpdir()
      h.write(dir .. '/f', '')
      assert.same({ nil, 'Not a directory', 'io' }, { fs.stat(dir .. '/f/x') })
      sh('ln -s loop ' .. q(dir .. '/loop'))
      assert.same({ nil, 'Too many levels of symbolic links', 'io' }, { fs.stat(dir .. '/loop') })
    end)

    it('raises on misuse', function()
      assert.has_error(function() fs.stat(nil) end, "bad argument #1 to 'stat' (string expected, got nil)")
      assert.has_error(function() fs.stat('.', 'x') end, "bad argument #2 to 'stat' (table expected, got string)")
    end)
  end)

  describe('exists', function()
    it('tells whether something is there', function()
      local dir = h.tmpdir()
      h.write(dir .. '/f', '')
      sh('ln -s nowhere ' .. q(dir .. '/dangling'))
      assert.is_true(fs.exists(dir))
      assert.is_true(fs.exists(dir .. '/f'))
      assert.is_false(fs.exists(dir .. '/missing'))
      assert.is_false(fs.exists(dir .. '/dangling'))
      assert.is_false(fs.exists(dir .. '/f/x'))  -- a path through a file names nothing
    end)

    it('returns nil, reason, io when it cannot tell', function()
      local dir = h.tmpdir()
      sh('ln -s loop ' .. q(dir .. '/loop'))
      assert.same({ nil, 'Too many levels of symbolic links', 'io' }, { fs.exists(dir .. '/loop') })
    end)

    it('raises on misuse', function()
      assert.has_error(function() fs.exists(false) end, "bad argument #1 to 'exists' (string expected, got boolean)")
    end)
  end)

  describe('cwd', function()
    it('returns the current directory, absolute', function()
      local p = io.popen('pwd -P')
      local want = p:read('l')
      p:close()
      assert.equal(want, fs.cwd())
    end)
  end)

  describe('in the sandbox', function()
    it('is public to the host', function()
      assert.equal(fs, require('aegis').fs)
    end)

    it('is hidden from scripts', function()
      local env = require('aegis.sandbox').env()
      assert.is_nil(env.aegis.fs)
      for k in pairs(env.aegis) do assert.not_equal('fs', k) end
      local r = h.run({ '-e', "if aegis.fs ~= nil then error('aegis.fs is reachable') end" }, { cwd = h.tmpdir() })
      assert.equal('', r.stderr)
      assert.equal(0, r.code)
      r = h.run({ '-e', 'return aegis.fs.read' }, { cwd = h.tmpdir() })
      assert.equal(1, r.code)
      assert.matches("attempt to index a nil value %(field 'fs'%)\n$", r.stderr)
    end)
  end)
end)
