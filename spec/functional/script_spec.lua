local h = require('spec.helpers')

local FIX = os.getenv('PWD') .. '/spec/fixtures/sandbox/'

-- A project directory (with .git, so no aegis.config.lua above it is used)
-- holding the named fixtures (and files given as name = text) and, when
-- given, aegis.config.lua.
local function project(fixtures, config)
  local dir = h.tmpdir()
  os.execute('mkdir ' .. h.shell_quote(dir .. '/.git'))
  for k, v in pairs(fixtures or {}) do
    if type(k) == 'string' then
      h.write(dir .. '/' .. k, v)
    else
      h.write(dir .. '/' .. v, assert(h.read(FIX .. v)))
    end
  end
  if config then h.write(dir .. '/aegis.config.lua', config) end
  return dir
end

local function run(args, opts)
  opts = opts or {}
  opts.cwd = opts.cwd or project()
  -- unset AEGIS_DEBUG only when no variable is set: h.run puts `env -u`
  -- after NAME=VALUE pairs in pairs() order, which env(1) does not accept
  opts.env = opts.env or { AEGIS_DEBUG = false }
  return h.run(args, opts)
end

describe('aegis-run SCRIPT', function()
  describe('exit codes', function()
    it('is the integer the script returns', function()
      local r = run({ 'exit3.lua' }, { cwd = project({ 'exit3.lua' }) })
      assert.equal(3, r.code)
      assert.equal('', r.stderr)
    end)

    it('is 0 for nil and true, 1 for false', function()
      assert.equal(0, run({ '-e', 'return nil' }).code)
      assert.equal(0, run({ '-e', 'return true' }).code)
      assert.equal(0, run({ '-e', '' }).code)
      assert.equal(1, run({ '-e', 'return false' }).code)
      assert.equal(7, run({ '-e', 'return 7.0' }).code)
    end)

    it('refuses a result that is no exit code', function()
      local r = run({ '-e', 'return 300' })
      assert.equal(1, r.code)
      assert.equal('aegis-run: (command line): exit code 300 out of range (0..255)\n', r.stderr)
      r = run({ '-e', 'return "done"' })
      assert.equal(1, r.code)
      assert.equal('aegis-run: (command line): returned a string (expected nil, a boolean or an exit code 0..255)\n',
        r.stderr)
    end)

    it('is 1 with one line naming file and line on a runtime error', function()
      local r = run({ 'runtime_error.lua' }, { cwd = project({ 'runtime_error.lua' }) })
      assert.equal(1, r.code)
      assert.equal('aegis-run: runtime_error.lua:3: boom\n', r.stderr)
    end)

    it('adds a traceback when AEGIS_DEBUG is set', function()
      local r = run({ 'runtime_error.lua' }, { cwd = project({ 'runtime_error.lua' }), env = { AEGIS_DEBUG = '1' } })
      assert.equal(1, r.code)
      assert.matches('^aegis%-run: runtime_error%.lua:3: boom\n', r.stderr)
      assert.matches('stack traceback:', r.stderr)
    end)

    it("makes that the script's own traceback", function()
      local r = run({ 'runtime_error.lua' }, { cwd = project({ 'runtime_error.lua' }), env = { AEGIS_DEBUG = '1' } })
      assert.matches('\n%s*runtime_error%.lua:3: in local \'f\'', r.stderr)
      assert.matches('\n%s*runtime_error%.lua:5: in main chunk', r.stderr)
    end)

    it('is 1 with one line on a syntax error', function()
      -- not a fixture file: luacheck would trip over it
      local cwd = project({ ['syntax_error.lua'] = 'local x = 1\nlocal y = = 2\n' })
      local r = run({ 'syntax_error.lua' }, { cwd = cwd })
      assert.equal(1, r.code)
      assert.equal("aegis-run: syntax_error.lua:2: unexpected symbol near '='\n", r.stderr)
    end)

    it('is 2 when the script cannot be opened', function()
      local r = run({ 'missing.lua' })
      assert.equal(2, r.code)
      assert.equal("aegis-run: cannot open script 'missing.lua': No such file or directory\n", r.stderr)
      r = run({ '--', 'dir.lua' }, { cwd = (function()
        local d = project()
        os.execute('mkdir ' .. h.shell_quote(d .. '/dir.lua'))
        return d
      end)() })
      assert.equal(2, r.code)
      assert.equal("aegis-run: cannot open script 'dir.lua': Is a directory\n", r.stderr)
    end)
  end)

  describe('arguments', function()
    it('gives the script arg and ...', function()
      local r = run({ 'args.lua', 'a', 'b c' }, { cwd = project({ 'args.lua' }) })
      assert.equal(0, r.code)
      assert.equal('args.lua\t2\ta\tb c\n1\ta\n2\tb c\n', r.stdout)
    end)

    it('names -e code (command line) and gives it its arguments', function()
      local r = run({ '-e', 'print(arg[0], ...) error("x")', 'p', 'q' })
      assert.equal('-e\tp\tq\n', r.stdout)
      assert.equal('aegis-run: (command line):1: x\n', r.stderr)
    end)
  end)

  it('skips a shebang line and keeps line numbers', function()
    local r = run({ 'shebang.lua' }, { cwd = project({ 'shebang.lua' }) })
    assert.equal('hi\n', r.stdout)
    assert.equal('aegis-run: shebang.lua:4: line 4\n', r.stderr)
  end)

  it('lets the top level declare globals', function()
    local r = run({ 'globals.lua' }, { cwd = project({ 'globals.lua' }) })
    assert.equal(0, r.code)
    assert.equal('5\n', r.stdout)
  end)

  describe('configuration', function()
    it('takes the budget from aegis.config.lua', function()
      local cwd = project({}, 'return { sandbox = { instructions = 50000 } }')
      local r = run({ '-e', 'while true do end' }, { cwd = cwd })
      assert.equal(1, r.code)
      assert.equal('aegis-run: (command line):1: sandbox: instruction budget exceeded (50000 instructions)\n', r.stderr)
    end)

    it('finds aegis.config.lua in a parent directory', function()
      local dir = project({}, 'return { sandbox = { instructions = 50000 } }')
      os.execute('mkdir -p ' .. h.shell_quote(dir .. '/a/b'))
      local r = run({ '-e', 'while true do end' }, { cwd = dir .. '/a/b' })
      assert.equal('aegis-run: (command line):1: sandbox: instruction budget exceeded (50000 instructions)\n', r.stderr)
    end)

    it('exits 2 on a bad configuration', function()
      local r = run({ '-e', 'return 0' }, { cwd = project({}, 'return "x"') })
      assert.equal(2, r.code)
      assert.equal("aegis-run: config 'aegis.config.lua': must return a table, got string\n", r.stderr)
      r = run({ '-e', 'return 0' }, { cwd = project({}, 'return {\nstore = = 1 }') })
      assert.equal(2, r.code)
      assert.equal("aegis-run: aegis.config.lua:2: unexpected symbol near '='\n", r.stderr)
      r = run({ '-e', 'return 0' }, { cwd = project({}, 'return { stroe = 1 }') })
      assert.equal(2, r.code)
      assert.equal("aegis-run: config 'aegis.config.lua': stroe: unknown key"
        .. ' (known keys: env_allow, paths, sandbox, store)\n', r.stderr)
    end)

    it('lets $AEGIS_STORE override store', function()
      local dir = project({}, 'return { store = "sqlite:file.db" }')
      -- scripts do not see aegis.config; the store they open shows which URL won
      local show = 'print(assert(aegis.store.open()).url)'
      local r = run({ '-e', show }, { cwd = dir })
      assert.equal('sqlite:file.db\n', r.stdout)
      r = run({ '-e', show }, { cwd = dir, env = { AEGIS_STORE = 'sqlite:env.db' } })
      assert.equal('sqlite:env.db\n', r.stdout)
    end)

    it('lets env_allow open more variables to scripts', function()
      local code = 'print(os.getenv("MYAPP_MODE"), os.getenv("HOME") ~= nil)'
      local r = run({ '-e', code }, { env = { MYAPP_MODE = 'fast', HOME = '/h' } })
      assert.equal('nil\ttrue\n', r.stdout)
      r = run({ '-e', code }, { cwd = project({}, 'return { env_allow = { "MYAPP_*" } }'),
        env = { MYAPP_MODE = 'fast', HOME = '/h' } })
      assert.equal('fast\tfalse\n', r.stdout)
    end)
  end)
end)
