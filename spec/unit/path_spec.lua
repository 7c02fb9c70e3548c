local h = require('spec.helpers')
local host = require('aegis.core.host')
local path = require('aegis.path')

-- Makes `<root>/<rel>` with its directories.
local function put(root, rel, data)
  local dir = (root .. '/' .. rel):match('^(.*)/')
  os.execute('mkdir -p ' .. h.shell_quote(dir))
  return h.write(root .. '/' .. rel, data)
end

-- Replaces host.embedded and host.list with these files while fn runs.
local function with_builtins(files, fn)
  local embedded, list = host.embedded, host.list
  host.embedded = function(p) return files[p] end
  host.list = function(prefix)
    local t = {}
    for p in pairs(files) do if p:sub(1, #prefix) == prefix then t[#t + 1] = p end end
    table.sort(t)
    return t
  end
  local ok, err = pcall(fn)
  host.embedded, host.list = embedded, list
  if not ok then error(err, 0) end
end

describe('aegis.path', function()
  describe('dirs', function()
    it('lists AEGIS_PATH entries in order, then the current directory', function()
      assert.same({ '/a', 'b', '.' }, path.dirs('/a:b'))
    end)

    it('ignores empty entries, repeats and trailing slashes', function()
      assert.same({ '/a', '/b', '/', '.' }, path.dirs('::/a/:/b//:/a:/:./:'))
      assert.same({ '.' }, path.dirs(''))
    end)

    it('reads $AEGIS_PATH by default', function()
      local want = path.dirs(os.getenv('AEGIS_PATH') or '')
      assert.same(want, path.dirs())
    end)

    it('raises on a non-string', function()
      assert.has_error(function() path.dirs(1) end, "bad argument #1 to 'dirs' (string expected, got number)")
    end)
  end)

  describe('find', function()
    it('finds <kind>/<name>.lua, then <kind>/<name>/init.lua, in path order', function()
      local a, b = h.tmpdir(), h.tmpdir()
      put(b, 'rulepacks/strict.lua', 'return "b"')
      put(a, 'rulepacks/strict/init.lua', 'return "a"')
      put(a, 'providers/mine.lua', 'return "p"')
      local ap = a .. ':' .. b
      local r = assert(path.find('rulepacks', 'strict', ap))
      assert.same({ source = 'return "a"', name = '@' .. a .. '/rulepacks/strict/init.lua',
        path = a .. '/rulepacks/strict/init.lua', builtin = false }, r)
      put(a, 'rulepacks/strict.lua', 'return "a2"')
      assert.equal(a .. '/rulepacks/strict.lua', path.find('rulepacks', 'strict', ap).path)
      r = assert(path.find('rulepacks', 'strict', b .. ':' .. a))
      assert.equal('return "b"', r.source)
      assert.equal('return "p"', path.find('providers', 'mine', ap).source)
    end)

    it('falls back to the built-in copy, which a user file shadows', function()
      local a = h.tmpdir()
      with_builtins({ ['providers/spec-builtin.lua'] = 'return 1', ['rulepacks/spec-pack/init.lua'] = 'return 2' },
        function()
          assert.same({ source = 'return 1', name = '@providers/spec-builtin.lua', path = 'providers/spec-builtin.lua',
            builtin = true }, path.find('providers', 'spec-builtin', a))
          assert.same({ source = 'return 2', name = '@rulepacks/spec-pack/init.lua',
            path = 'rulepacks/spec-pack/init.lua', builtin = true }, path.find('rulepacks', 'spec-pack', a))
          put(a, 'providers/spec-builtin.lua', 'return 3')
          local r = path.find('providers', 'spec-builtin', a)
          assert.equal('return 3', r.source)
          assert.is_false(r.builtin)
          put(a, 'providers/spec-builtin.lua', 'return 1')   -- the same bytes as the built-in: it is the built-in
          r = path.find('providers', 'spec-builtin', a)
          assert.equal(a .. '/providers/spec-builtin.lua', r.path)
          assert.is_true(r.builtin)
        end)
    end)

    it('returns nil, msg, not_found naming the directories searched', function()
      local a = h.tmpdir()
      local r, err, code = path.find('rulepacks', 'spec-nowhere', a .. ':/nonexistent')
      assert.is_nil(r)
      assert.equal('not_found', code)
      assert.equal(("path: no rulepack 'spec-nowhere' in AEGIS_PATH (%s:/nonexistent:.) or built-ins"):format(a), err)
      r, err = path.find('pipelines', 'spec-nowhere', '')
      assert.is_nil(r)
      assert.equal("path: no pipeline 'spec-nowhere' in AEGIS_PATH (.) or built-ins", err)
    end)

    it('refuses names that could leave the directory', function()
      for _, bad in ipairs({ '..', '../x', '/etc/passwd', 'a/b', '.hidden', '', 'a b', 'x\0y' }) do
        local r, err, code = path.find('rulepacks', bad, '')
        assert.is_nil(r)
        assert.equal('invalid', code)
        assert.equal(("path: invalid rulepack name '%s' (letters, digits, '_', '-', '.'; not starting with '.')")
          :format(bad), err)
      end
    end)

    it('returns nil, msg, io for a file it cannot read', function()
      local a = h.tmpdir()
      os.execute('mkdir -p ' .. h.shell_quote(a .. '/providers/odd.lua'))
      local r, err, code = path.find('providers', 'odd', a)
      assert.is_nil(r)
      assert.equal('io', code)
      assert.equal(("path: read '%s/providers/odd.lua': is a directory"):format(a), err)
    end)

    it('raises on a bad kind or a non-string name', function()
      assert.has_error(function() path.find('plugins', 'x') end,
        "bad argument #1 to 'find' (expected 'providers', 'rulepacks' or 'pipelines', got 'plugins')")
      assert.has_error(function() path.find(nil, 'x') end,
        "bad argument #1 to 'find' (expected 'providers', 'rulepacks' or 'pipelines', got nil)")
      assert.has_error(function() path.find('providers', 1) end,
        "bad argument #2 to 'find' (string expected, got number)")
    end)
  end)

  describe('list', function()
    it('lists user and built-in names once, sorted', function()
      local a, b = h.tmpdir(), h.tmpdir()
      put(a, 'rulepacks/zeta.lua', '')
      put(a, 'rulepacks/alpha/init.lua', '')
      put(a, 'rulepacks/alpha/helpers.lua', '')   -- a rulepack's own module, not a rulepack
      put(a, 'rulepacks/notes.txt', '')
      put(a, 'rulepacks/bad name.lua', '')
      put(b, 'rulepacks/zeta/init.lua', '')
      put(b, 'rulepacks/deep/er/init.lua', '')
      put(b, 'providers/p.lua', '')
      with_builtins({ ['rulepacks/spec-core/init.lua'] = '', ['rulepacks/alpha.lua'] = '',
        ['rulepacks/README.md'] = '' }, function()
        local got = path.list('rulepacks', a .. ':' .. b .. ':/nonexistent')
        local mine = {}
        for _, n in ipairs(got) do
          if n == 'alpha' or n == 'zeta' or n:find('^spec%-') or n == 'deep' or n == 'bad name' then
            mine[#mine + 1] = n
          end
        end
        assert.same({ 'alpha', 'spec-core', 'zeta' }, mine)
        local sorted = { table.unpack(got) }
        table.sort(sorted)
        assert.same(sorted, got)
      end)
    end)

    it('raises on a bad kind', function()
      assert.has_error(function() path.list('x') end,
        "bad argument #1 to 'list' (expected 'providers', 'rulepacks' or 'pipelines', got 'x')")
    end)
  end)
end)
