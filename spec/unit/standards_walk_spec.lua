-- aegis.standards.walk's file walk (walk.files): what it lists, against a
-- plain reference that matches every path against every rule, and the
-- sizes it gives. The pattern matcher itself (walk.parse, walk.ignored)
-- is in standards_spec.lua.
local h = require('spec.helpers')
local fs = require('aegis.fs')
local walk = require('aegis.standards.walk')

local q = h.shell_quote

local function sh(cmd)
  assert(os.execute(cmd), cmd)
end

-- The walk as it was before it carried rule states down the tree: each
-- entry lstat'ed, then its absolute path tested against every rule of
-- every .gitignore from the repository root down (walk.ignored).
local function reference(paths, opts)
  opts = opts or {}
  local cwd = assert(fs.cwd())
  local out, seen = {}, {}
  local function add(p)
    p = p:gsub('^%./', '')
    if not seen[p] then
      seen[p] = true
      out[#out + 1] = p
    end
  end
  local function join(a, b)
    if a == '' or a == '.' then return b end
    if a:sub(-1) == '/' then return a .. b end
    return a .. '/' .. b
  end
  local function dirname(p) return p:match('^(.*)/[^/]*$') or '' end
  local function repo_root(d)
    while d ~= '' do
      if fs.exists(d .. '/.git') then return d end
      if d == '/' then return nil end
      local p = dirname(d)
      d = p == '' and '/' or p
    end
  end
  local extra = opts.ignore and walk.parse(table.concat(opts.ignore, '\n')) or nil
  for _, p in ipairs(paths) do
    local st = assert(fs.stat(p))
    if st.type ~= 'directory' then
      add(p)
    else
      local abs = walk.absolute(p, cwd)
      local root = repo_root(abs)
      local stack = {}
      if extra then stack[1] = { base = (root or cwd):gsub('/?$', '/'), rules = extra } end
      if root then
        local chain, d = {}, abs
        while d ~= root do
          chain[#chain + 1] = d
          d = dirname(d)
          if d == '' then d = '/' end
        end
        chain[#chain + 1] = root
        for i = #chain, 2, -1 do
          local gi = fs.read(chain[i] .. '/.gitignore')
          if gi then stack[#stack + 1] = { base = chain[i]:gsub('/?$', '/'), rules = walk.parse(gi) } end
        end
      end
      local function rec(dir, absdir, st_)
        local gi = fs.read(join(dir, '.gitignore'))
        if gi then st_[#st_ + 1] = { base = absdir:gsub('/?$', '/'), rules = walk.parse(gi) } end
        for _, name in ipairs(fs.list(dir) or {}) do
          local child, abschild = join(dir, name), join(absdir, name)
          local cst = fs.stat(child, { follow = false })
          if cst then
            local isdir = cst.type == 'directory'
            if not (isdir and walk.SKIP[name]) and not walk.ignored(st_, abschild, isdir) then
              if isdir then
                rec(child, abschild, table.move(st_, 1, #st_, 1, {}))
              elseif cst.type == 'file' then
                local ext = name:match('%.([%w]+)$')
                if ext and walk.EXTENSIONS[ext] then add(child) end
              end
            end
          end
        end
      end
      rec(p == '.' and '.' or p:gsub('/+$', ''), abs, stack)
    end
  end
  table.sort(out)
  return out
end

-- A repository (a '.git' directory) with .gitignore files at its root and
-- below, rules of every kind, and things a walk must not enter or list.
local function repo()
  local dir = h.tmpdir()
  sh('mkdir ' .. q(dir .. '/.git'))
  h.write_tree(dir, {
    ['.gitignore'] = table.concat({
      '# comment', '*.gen.ts', '!keep.gen.ts', '/top.ts', 'build', 'out/', 'vendor/**', '!vendor/keep.ts',
      'a/**/z.ts', 'f[0-9].ts', 'q?.ts', '\\#hash.ts', 'docs/*.ts', '!docs/index.ts', '**/fixtures',
      'src/**/deep/', 'trail/**', '*.d.ts', '!*.cell.d.ts', 'spaced.ts   ', '',
    }, '\n'),
    ['top.ts'] = '', ['keep.gen.ts'] = '', ['x.gen.ts'] = '', ['main.ts'] = '', ['f1.ts'] = '', ['fx.ts'] = '',
    ['qa.ts'] = '', ['qab.ts'] = '', ['#hash.ts'] = '', ['spaced.ts'] = '', ['t.d.ts'] = '', ['c.cell.d.ts'] = '',
    ['build/b.ts'] = '', ['out/o.ts'] = '', ['vendor/v.ts'] = '', ['vendor/keep.ts'] = '',
    ['a/z.ts'] = '', ['a/b/c/z.ts'] = '', ['a/b/y.ts'] = '', ['docs/x.ts'] = '', ['docs/index.ts'] = '',
    ['docs/sub/x.ts'] = '', ['trail/t.ts'] = '', ['trail/u/t.ts'] = '',
    ['src/top.ts'] = 'x', ['src/out'] = 'a file named out: out/ is for directories\n',
    ['src/fixtures/f.ts'] = '', ['src/a/fixtures/f.ts'] = '', ['src/a/deep/d.ts'] = '', ['src/deep'] = 'a file\n',
    ['src/a/b/deep/d.ts'] = '', ['src/build.ts'] = '', ['src/m.mts'] = '', ['src/c.cts'] = '', ['src/v.tsx'] = '',
    ['src/j.js'] = '', ['src/README.md'] = '', ['src/T.TS'] = '',
    ['src/.gitignore'] = '*.tsx\n!ok.tsx\nlocal/\n!build\n/only-here.ts\nsub/**/x.ts\n',
    ['src/ok.tsx'] = '', ['src/local/l.ts'] = '', ['src/only-here.ts'] = '', ['src/sub/only-here.ts'] = '',
    ['src/sub/x.ts'] = '', ['src/sub/s/x.ts'] = '', ['src/sub/s/y.ts'] = '',
    ['src/sub/.gitignore'] = '!*.gen.ts\n!x.ts\n', ['src/sub/g.gen.ts'] = '',
    ['node_modules/m/i.ts'] = '', ['src/node_modules/m/i.ts'] = '', ['.git/x.ts'] = '',
    ['real/r.ts'] = '12345',
  })
  sh('cd ' .. q(dir) .. ' && ln -s real linkdir && ln -s real/r.ts link.ts && ln -s nowhere dangling.ts'
    .. ' && mkfifo fifo.ts')
  return dir
end

local function sorted(t)
  local c = table.move(t, 1, #t, 1, {})
  table.sort(c)
  return c
end

describe('aegis.standards.walk (files)', function()
  it('lists what matching every path against every rule lists, for every root', function()
    local dir = repo()
    local cases = {
      { { dir } }, { { dir .. '/' } }, { { dir .. '/src' } }, { { dir .. '/src/sub/' } },
      { { dir .. '/src', dir, dir .. '/main.ts' } }, { { dir .. '/src/sub/x.ts', dir .. '/docs' } },
      { { dir }, { ignore = { 'src/sub/', '*.cts', '!main.ts', 'm*.ts' } } },
      { { dir .. '/src' }, { ignore = { '/src/a/**', 'ok.*' } } },
    }
    for _, c in ipairs(cases) do
      local want = reference(c[1], c[2])
      local got = assert(walk.files(c[1], c[2]))
      assert.same(want, got)
    end
    -- the tree holds what the rules are about: the reference is not empty
    local rel = {}
    for i, p in ipairs(walk.files({ dir })) do rel[i] = p:sub(#dir + 2) end
    assert.same({
      'a/b/y.ts', 'c.cell.d.ts', 'docs/index.ts', 'docs/sub/x.ts', 'fx.ts', 'keep.gen.ts', 'main.ts', 'qab.ts',
      'real/r.ts', 'src/build.ts', 'src/c.cts', 'src/m.mts', 'src/ok.tsx', 'src/sub/g.gen.ts',
      'src/sub/only-here.ts', 'src/sub/s/x.ts', 'src/sub/s/y.ts', 'src/sub/x.ts', 'src/top.ts',
      'vendor/keep.ts',  -- vendor/** ignores what is inside, not vendor itself: ! can re-include
    }, rel)
  end)

  it('keeps a named file whatever it is, once, and sorts the whole list', function()
    local dir = repo()
    local named = { dir .. '/src/sub', dir .. '/src/j.js', dir .. '/src/sub/x.ts', dir .. '/link.ts' }
    local files = assert(walk.files(named))
    assert.same({ dir .. '/link.ts', dir .. '/src/j.js', dir .. '/src/sub/g.gen.ts', dir .. '/src/sub/only-here.ts',
      dir .. '/src/sub/s/x.ts', dir .. '/src/sub/s/y.ts', dir .. '/src/sub/x.ts' }, files)
  end)

  it('does not follow links to directories nor list links, fifos or other extensions', function()
    local dir = repo()
    local files = assert(walk.files({ dir .. '/' }))
    for _, p in ipairs(files) do
      assert.is_nil(p:find('/linkdir/', 1, true))
      assert.not_equal(dir .. '/link.ts', p)
      assert.not_equal(dir .. '/fifo.ts', p)
      assert.not_equal(dir .. '/dangling.ts', p)
      assert.truthy(p:find('%.[cm]?tsx?$'))
    end
    assert.same({ dir .. '/linkdir/r.ts' }, walk.files({ dir .. '/linkdir' }))  -- a link named is followed
  end)

  it('lists in byte order with no sorting left to do, directories among names with . and 0', function()
    local dir = h.tmpdir()
    local files = {}
    for _, d in ipairs({ 'a', 'a-b', 'a.b', 'a0', 'A', '_', 'a b', '\xc3\xa9' }) do
      for _, f in ipairs({ '.ts', '/x.ts', '/x/y.ts', '/x.y/z.ts', '/x-.ts', '/x0.ts' }) do files[d .. f] = '' end
    end
    h.write_tree(dir, files)
    local got = assert(walk.files({ dir }))
    assert.equal(48, #got)
    assert.same(sorted(got), got)
    assert.same(reference({ dir }), got)
  end)

  it('fills opts.sizes with the size of every file returned', function()
    local dir = repo()
    local sizes = {}
    local files = assert(walk.files({ dir .. '/src', dir .. '/link.ts', dir .. '/real' }, { sizes = sizes }))
    local n = 0
    for _ in pairs(sizes) do n = n + 1 end
    assert.equal(#files, n)
    for _, p in ipairs(files) do assert.equal(fs.stat(p).size, sizes[p], p) end
    assert.equal(1, sizes[dir .. '/src/top.ts'])
    assert.equal(5, sizes[dir .. '/link.ts'])  -- what a named link points to
    assert.equal(5, sizes[dir .. '/real/r.ts'])
    -- the same list with and without sizes
    assert.same(files, walk.files({ dir .. '/src', dir .. '/link.ts', dir .. '/real' }))
  end)

  it('gives sizes under paths relative to the current directory too', function()
    local sizes = {}
    local named = { 'spec/unit/standards_walk_spec.lua', './lua/aegis/standards' }
    local files = assert(walk.files(named, { sizes = sizes }))
    assert.same({ 'spec/unit/standards_walk_spec.lua' }, files)  -- no TypeScript under lua/
    assert.equal(fs.stat('spec/unit/standards_walk_spec.lua').size, sizes['spec/unit/standards_walk_spec.lua'])
  end)

  it('applies extra patterns below the current directory when no repository holds the walk', function()
    -- the walk starts above the current directory: the patterns apply only
    -- once it gets down there (run in a process of its own for its cwd)
    local dir = h.tmpdir()
    h.write_tree(dir, { ['top/gen/a.ts'] = '', ['top/cwd/gen/b.ts'] = '', ['top/cwd/c.ts'] = '',
      ['top/cwd/sub/gen/d.ts'] = '' })
    local spec = h.write(dir .. '/probe_spec.lua', [[
describe('p', function() it('p', function()
  local files = assert(require('aegis.standards.walk').files({ '..' }, { ignore = { 'gen/' } }))
  print('FILES ' .. table.concat(files, ' '))
end) end)
]])
    local r = h.run({ 'test', spec }, { cwd = dir .. '/top/cwd' })
    assert.equal(0, r.code, r.stdout .. r.stderr)
    assert.equal('FILES ../cwd/c.ts ../gen/a.ts', r.stdout:match('FILES [^\n]*'))
  end)

  it('raises when opts.sizes is not a table', function()
    assert.has_error(function() walk.files({ '.' }, { sizes = true }) end,
      "bad argument #2 to 'files' (opts.sizes: table expected, got boolean)")
  end)

  it('fails for a path that is not there', function()
    local dir = h.tmpdir()
    assert.same({ nil, ("enforce: '%s/no': No such file or directory"):format(dir) }, { walk.files({ dir .. '/no' }) })
  end)
end)
