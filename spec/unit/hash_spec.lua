local h = require('spec.helpers')
local hash = require('aegis.hash')

-- sha256sum's verdict on a file, the reference for sha256_file
local function sha256sum(path)
  local p = assert(io.popen('sha256sum ' .. h.shell_quote(path)))
  local out = p:read('a')
  p:close()
  return (assert(out:match('^(%x+) '), out))
end

describe('aegis.hash', function()
  describe('sha256', function()
    -- FIPS 180-2 / NIST examples
    local vectors = {
      { '', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
      { 'abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' },
      { 'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq',
        '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1' },
      { ('a'):rep(1000000), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0' },
    }
    for _, v in ipairs(vectors) do
      it(('hashes a %d-byte vector'):format(#v[1]), function()
        assert.equal(v[2], hash.sha256(v[1]))
      end)
    end

    it('hashes bytes, NULs and invalid UTF-8 included', function()
      assert.equal(hash.sha256('a\0b\255'), hash.sha256_new():update('a\0'):update('b\255'):hex())
      assert.not_equal(hash.sha256('a\0b'), hash.sha256('a'))
    end)

    it('raises on a non-string, numbers included', function()
      assert.error_matches(function() hash.sha256(42) end,
        "bad argument #1 to 'sha256' %(string expected, got number%)")
      assert.error_matches(function() hash.sha256() end,
        "bad argument #1 to 'sha256' %(string expected, got nil%)")
    end)
  end)

  describe('sha256_raw', function()
    it('gives the 32 bytes the hex spells', function()
      local raw = hash.sha256_raw('abc')
      assert.equal(32, #raw)
      assert.equal(hash.sha256('abc'), (raw:gsub('.', function(c) return ('%02x'):format(c:byte()) end)))
    end)

    it('raises on a non-string', function()
      assert.error_matches(function() hash.sha256_raw({}) end,
        "bad argument #1 to 'sha256_raw' %(string expected, got table%)")
    end)
  end)

  describe('sha256_file', function()
    local dir = h.tmpdir()
    local files = {
      { 'empty', 0 },
      { 'one', 1 },
      { 'mib', 1024 * 1024 },
    }
    for _, f in ipairs(files) do
      it(('agrees with sha256sum on a %d-byte file'):format(f[2]), function()
        local path = dir .. '/' .. f[1]
        local data = {}
        for i = 1, f[2] do data[i] = string.char((i * 7 + 3) % 256) end
        h.write(path, table.concat(data))
        assert.equal(sha256sum(path), hash.sha256_file(path))
        assert.equal(hash.sha256(table.concat(data)), hash.sha256_file(path))
      end)
    end

    it('agrees with sha256sum on a 100 MiB file of random bytes', function()
      local path = dir .. '/big'
      assert.is_true(os.execute('head -c 104857600 /dev/urandom > ' .. h.shell_quote(path)))
      local hex = assert(hash.sha256_file(path))
      assert.equal(sha256sum(path), hex)
      os.remove(path)
    end)

    it('returns nil, msg, "not_found" for a missing file', function()
      local path = dir .. '/nope'
      local hex, err, code = hash.sha256_file(path)
      assert.is_nil(hex)
      assert.equal("hash: open '" .. path .. "': No such file or directory", err)
      assert.equal('not_found', code)
    end)

    it('returns nil, msg, "io" for a directory', function()
      local hex, err, code = hash.sha256_file(dir)
      assert.is_nil(hex)
      assert.equal("hash: read '" .. dir .. "': Is a directory", err)
      assert.equal('io', code)
    end)

    it('returns nil, msg, "io" when a path component is not a directory', function()
      local path = h.write(dir .. '/plain', 'x') .. '/below'
      local hex, err, code = hash.sha256_file(path)
      assert.is_nil(hex)
      assert.equal("hash: open '" .. path .. "': Not a directory", err)
      assert.equal('io', code)
    end)

    it('raises on a non-string path or one with a NUL byte', function()
      assert.error_matches(function() hash.sha256_file(1) end,
        "bad argument #1 to 'sha256_file' %(string expected, got number%)")
      assert.error_matches(function() hash.sha256_file('a\0b') end,
        "bad argument #1 to 'sha256_file' %(path contains a NUL byte%)")
    end)
  end)

  describe('sha256_new', function()
    it('streams to the one-shot digest', function()
      local s = ('0123456789'):rep(10000)
      local hasher = hash.sha256_new()
      for i = 1, #s, 777 do hasher:update(s:sub(i, i + 776)) end
      assert.equal(hash.sha256(s), hasher:hex())
    end)

    it('chains update and gives raw bytes', function()
      local raw = hash.sha256_new():update('a'):update(''):update('bc'):raw()
      assert.equal(hash.sha256_raw('abc'), raw)
    end)

    it('raises once finished', function()
      local hasher = hash.sha256_new()
      assert.equal(hash.sha256(''), hasher:hex())
      assert.error_matches(function() hasher:update('x') end, 'attempt to use a finished hasher')
      assert.error_matches(function() hasher:hex() end, 'attempt to use a finished hasher')
      assert.error_matches(function() hasher:raw() end, 'attempt to use a finished hasher')
      assert.equal('aegis.hash.Sha256 (finished)', tostring(hasher))
    end)

    it('raises on a non-string update and on a wrong self', function()
      local hasher = hash.sha256_new()
      assert.error_matches(function() hasher:update(42) end,
        "bad argument #1 to 'update' %(string expected, got number%)")
      assert.error_matches(function() hasher.update({}, 'x') end,
        'aegis.hash.Sha256 expected, got table')
    end)

    it('is released at scope end and by the collector', function()
      local kept
      do
        local hasher <close> = hash.sha256_new()
        hasher:update('x')
        kept = hasher
      end
      assert.error_matches(function() kept:update('x') end, 'attempt to use a finished hasher')
      assert.matches('^aegis%.hash%.Sha256 %(', tostring(hash.sha256_new()))
      collectgarbage()
    end)
  end)
end)
