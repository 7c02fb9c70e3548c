-- aegis-run enforce as a process: output formats, exit codes, usage
-- errors, the .gitignore-aware walk, parallel workers, config overlays.
local h = require('spec.helpers')
local json = require('aegis.json')

local PACK = [[
return {
  name = 'demo', version = '1.0.0', description = 'demo rules for the CLI spec',
  rules = {
    { id = 'no-var', severity = 'error', description = 'Use let or const instead of var', eslint = 'no-var',
      query = '(variable_declaration "var" @report)' },
    { id = 'no-debugger', severity = 'warning', description = 'Unexpected debugger statement',
      query = '(debugger_statement) @d' },
    { id = 'no-todo', severity = 'info', description = 'TODO comment', query = '((comment) @c (#match? @c "TODO"))',
      check = function(ctx, m) return ctx.options.prefix .. ctx.text(m.captures.c) end,
      options = { prefix = 'found: ' } },
  },
}
]]

-- A project: .git, a trusted rulepack under vendor/, files.
local function project(files, config)
  local dir = h.tmpdir()
  h.mkdir(dir .. '/.git')
  h.mkdir(dir .. '/vendor/rulepacks')
  h.write(dir .. '/vendor/rulepacks/demo.lua', PACK)
  h.write(dir .. '/aegis.config.lua', config or [[
return { standards = { rulepacks = { 'vendor/rulepacks/demo.lua' }, trusted = { 'vendor' } } }
]])
  return h.write_tree(dir, files)
end

local function enforce(dir, args, env)
  local a = { 'enforce' }
  for _, x in ipairs(args) do a[#a + 1] = x end
  return h.run(a, { cwd = dir, env = env })
end

describe('aegis-run enforce', function()
  it('prints findings like a compiler, with the source line and a caret, and exits 1 on errors', function()
    local dir = project({ ['src/a.ts'] = 'let ok = 1;\n  var x = 2; debugger;\n' })
    local r = enforce(dir, { 'src' })
    assert.equal(1, r.code)
    assert.equal(table.concat({
      'src/a.ts:2:3 error demo/no-var Use let or const instead of var',
      '      var x = 2; debugger;',
      '      ^~~',
      'src/a.ts:2:14 warning demo/no-debugger Unexpected debugger statement',
      '      var x = 2; debugger;',
      '                 ^~~~~~~~~',
      '1 error, 1 warning in 1 file',
    }, '\n') .. '\n', r.stdout)
    assert.equal('', r.stderr)
    assert.is_nil(r.stdout:find('\27', 1, true))  -- not a terminal: no colour
  end)

  it('colours text on a terminal, unless NO_COLOR is set', function()
    if not os.execute('command -v script >/dev/null 2>&1') then return pending('needs script(1) (util-linux)') end
    local dir = project({ ['a.ts'] = 'var x;\n' })
    local function run(nc)
      local p = io.popen(('cd %s && %s script -qec %s /dev/null </dev/null'):format(h.shell_quote(dir),
        nc and 'env NO_COLOR=1' or 'env -u NO_COLOR', h.shell_quote(h.shell_quote(h.bin) .. ' enforce a.ts')))
      local out = p:read('a')
      p:close()
      return out
    end
    assert.matches('\27[1;31merror\27[0m', run(false), 1, true)
    assert.is_nil(run(true):find('\27', 1, true))
  end)

  it('exits 0 when clean, and on warnings up to --max-warnings', function()
    local dir = project({ ['a.ts'] = 'debugger;\n// TODO x\n' })
    local r = enforce(dir, { '.' })
    assert.equal(0, r.code)
    assert.matches('0 errors, 1 warning, 1 note in 1 file', r.stdout, 1, true)
    assert.equal(0, enforce(dir, { '--max-warnings', '1', '.' }).code)
    r = enforce(dir, { '--max-warnings', '0', '.' })
    assert.equal(1, r.code)
    assert.equal('aegis-run: enforce: 1 warnings (more than --max-warnings 0)\n', r.stderr)
  end)

  it('writes JSON with findings, problems and a summary', function()
    local dir = project({ ['a.ts'] = 'var a;\n// TODO later\n' })
    local r = enforce(dir, { '--format', 'json', 'a.ts' })
    assert.equal(1, r.code)
    local doc = assert(json.decode(r.stdout))
    assert.same({ files = 1, errors = 1, warnings = 0, infos = 1, problems = 0 }, doc.summary)
    assert.equal('demo/no-var', doc.findings[1].rule)
    assert.same({ 1, 1, 1, 4, 0, 3 }, { doc.findings[1].line, doc.findings[1].col, doc.findings[1].end_line,
      doc.findings[1].end_col, doc.findings[1].start_byte, doc.findings[1].end_byte })
    assert.equal('found: // TODO later', doc.findings[2].message)
    assert.equal(3, #doc.rules)
  end)

  it('keeps JSON valid when messages quote invalid UTF-8, in process and from workers', function()
    local files = {}
    for i = 1, 9 do files[('f%d.ts'):format(i)] = '// TODO \255\254 bytes\n' end
    local dir = project(files)
    for _, jobs in ipairs({ '1', '2' }) do
      local r = enforce(dir, { '--jobs', jobs, '--format', 'json', '.' })
      assert.equal(0, r.code)
      local doc = assert(json.decode(r.stdout))
      assert.equal(9, #doc.findings)
      assert.equal('found: // TODO \u{FFFD}\u{FFFD} bytes', doc.findings[1].message)
    end
    local r = enforce(dir, { '--format', 'sarif', 'f1.ts' })
    local sarif = assert(json.decode(r.stdout))
    assert.equal('found: // TODO \u{FFFD}\u{FFFD} bytes', sarif.runs[1].results[1].message.text)
    assert.equal('f1.ts', sarif.runs[1].results[1].locations[1].physicalLocation.artifactLocation.uri)
  end)

  it('writes GitHub annotations, escaping data and properties', function()
    local dir = project({ ['dir,x/a.ts'] = 'var a;\ndebugger;\n// TODO 100%\n' })
    local r = enforce(dir, { '--format', 'github', 'dir,x/a.ts' })
    assert.equal(1, r.code)
    assert.equal(table.concat({
      '::error file=dir%2Cx/a.ts,line=1,col=1,endLine=1,endColumn=4,title=demo/no-var::Use let or const instead of var',
      '::warning file=dir%2Cx/a.ts,line=2,col=1,endLine=2,endColumn=10,title=demo/no-debugger::'
        .. 'Unexpected debugger statement',
      '::notice file=dir%2Cx/a.ts,line=3,col=1,endLine=3,endColumn=13,title=demo/no-todo::found: // TODO 100%25',
    }, '\n') .. '\n', r.stdout)
  end)

  it('--ci picks GitHub annotations under GitHub Actions, plain text elsewhere', function()
    local dir = project({ ['a.ts'] = 'var a;\n' })
    local r = enforce(dir, { '--ci', '.' }, { GITHUB_ACTIONS = 'true' })
    assert.matches('^::error file=a.ts,line=1', r.stdout)
    r = enforce(dir, { '--ci', '.' }, { GITHUB_ACTIONS = false })
    assert.matches('^a.ts:1:1 error demo/no%-var', r.stdout)
  end)

  it('writes the report to --output', function()
    local dir = project({ ['a.ts'] = 'var a;\n' })
    local r = enforce(dir, { '--format', 'json', '--output', 'out.json', '.' })
    assert.equal(1, r.code)
    assert.equal('', r.stdout)
    assert.equal(1, json.decode(h.read(dir .. '/out.json')).summary.errors)
  end)

  describe('usage errors exit 2', function()
    local dir
    setup(function() dir = project({ ['a.ts'] = 'let a;\n' }) end)
    for _, c in ipairs({
      { { '--rulepacks', 'no-such-pack', '.' },
        "aegis-run: enforce: no rulepack 'no-such-pack' in AEGIS_PATH (.) or built-ins\n" },
      { { '--bogus', '.' }, "aegis-run: enforce: unknown option '--bogus' (see aegis-run enforce --help)\n" },
      { { 'missing/' }, "aegis-run: enforce: 'missing/': No such file or directory\n" },
      { {}, 'aegis-run: enforce: no paths given (see aegis-run enforce --help)\n' },
      { { '--format', 'xml', '.' }, "aegis-run: enforce: unknown format 'xml' (text, json, sarif or github)\n" },
      { { '--jobs', '0', '.' }, "aegis-run: enforce: --jobs needs an integer from 1 to 256, got '0'\n" },
      { { '--max-warnings', 'x', '.' }, "aegis-run: enforce: --max-warnings needs a non-negative integer, got 'x'\n" },
      { { '--rulepacks' }, "aegis-run: enforce: option '--rulepacks' needs an argument\n" },
      { { '--config', 'nope.lua', '.' }, "aegis-run: enforce: config 'nope.lua': No such file or directory\n" },
      { { '--rulepacks', 'vendor/rulepacks/demo.lua,demo/nope', '.' },
        "aegis-run: standards: no rule 'nope' in rulepack 'demo'\n" },
    }) do
      it(table.concat(c[1], ' '), function()
        local r = enforce(dir, c[1])
        assert.equal(c[2], r.stderr)
        assert.equal(2, r.code)
        assert.equal('', r.stdout)
      end)
    end
  end)

  it('prints --help', function()
    local r = h.run({ 'enforce', '--help' })
    assert.equal(0, r.code)
    assert.matches('^usage: aegis%-run enforce %[options%] PATHS', r.stdout)
  end)

  it('walks directories honouring nested .gitignore files, negation and directory patterns', function()
    local dir = project({
      ['.gitignore'] = 'gen/\n*.gen.ts\n!keep.gen.ts\n/top.ts\nbuild\nvendor2/**\n!vendor2/keep.ts\n',
      ['vendor2/drop.ts'] = 'var a;\n',
      ['vendor2/keep.ts'] = 'var a;\n',
      ['top.ts'] = 'var a;\n',
      ['src/top.ts'] = 'var a;\n',          -- /top.ts is anchored to the root
      ['src/a.gen.ts'] = 'var a;\n',
      ['src/keep.gen.ts'] = 'var a;\n',
      ['src/.gitignore'] = '*.tsx\n!ok.tsx\nlocal/\n',
      ['src/x.tsx'] = 'var a;\n',
      ['src/ok.tsx'] = 'var a;\n',
      ['src/local/a.ts'] = 'var a;\n',
      ['src/deep/local'] = 'not a directory: a file named local is kept (dir-only pattern)\n',
      ['src/deep/b.mts'] = 'var a;\n',
      ['src/deep/c.cts'] = 'var a;\n',
      ['src/deep/d.js'] = 'var a;\n',             -- JavaScript: only when named
      ['gen/g.ts'] = 'var a;\n',
      ['build/b.ts'] = 'var a;\n',
      ['node_modules/m/i.ts'] = 'var a;\n',
      ['.git/x.ts'] = 'var a;\n',
    })
    local r = enforce(dir, { '--format', 'json', '.' })
    local paths = {}
    for _, f in ipairs(json.decode(r.stdout).findings) do paths[#paths + 1] = f.path end
    assert.same({ 'src/deep/b.mts', 'src/deep/c.cts', 'src/keep.gen.ts', 'src/ok.tsx', 'src/top.ts',
      'vendor2/keep.ts' }, paths)
    -- a file named on the command line is checked even when ignored
    r = enforce(dir, { '--format', 'json', 'gen/g.ts', 'src/deep/d.js' })
    paths = {}
    for _, f in ipairs(json.decode(r.stdout).findings) do paths[#paths + 1] = f.path end
    assert.same({ 'gen/g.ts', 'src/deep/d.js' }, paths)
  end)

  it('gives the same report with one process and with workers', function()
    local files = {}
    for i = 1, 24 do files[('src/f%02d.ts'):format(i)] = ('var a%d = 1;\n'):rep(i % 3 + 1):format(i, i, i) end
    local dir = project(files)
    local one = enforce(dir, { '--jobs', '1', '--format', 'json', '.' })
    local four = enforce(dir, { '--jobs', '4', '--format', 'json', '.' })
    assert.equal(1, one.code)
    assert.equal(one.stdout, four.stdout)
    assert.equal(24, json.decode(four.stdout).summary.files)
    assert.equal(48, json.decode(four.stdout).summary.errors)
  end)

  it('--fail-fast stops at the first file with an error, with workers too', function()
    local files = {}
    for i = 1, 12 do files[('f%02d.ts'):format(i)] = i >= 5 and 'var a;\n' or 'let a;\n' end
    local dir = project(files)
    for _, jobs in ipairs({ '1', '3' }) do
      local r = enforce(dir, { '--fail-fast', '--jobs', jobs, '--format', 'json', '.' })
      assert.equal(1, r.code)
      local doc = json.decode(r.stdout)
      assert.equal(1, #doc.findings)
      assert.equal('f05.ts', doc.findings[1].path)
    end
  end)

  it('applies config: severity overrides, off, options; --config F', function()
    local dir = project({ ['a.ts'] = 'var a;\n// TODO x\ndebugger;\n',
      ['other.lua'] = [[
return { standards = { rulepacks = { 'vendor/rulepacks/demo.lua' }, trusted = { 'vendor' },
  rules = { ['demo/no-var'] = 'warning', ['demo/no-debugger'] = 'off',
            ['demo/no-todo'] = { severity = 'error', options = { prefix = 'cfg: ' } } } } }
]] })
    local r = enforce(dir, { '--config', 'other.lua', '--format', 'json', '.' })
    local doc = json.decode(r.stdout)
    assert.equal(2, #doc.findings)
    assert.same({ 'demo/no-var', 'warning' }, { doc.findings[1].rule, doc.findings[1].severity })
    assert.same({ 'demo/no-todo', 'error', 'cfg: // TODO x' },
      { doc.findings[2].rule, doc.findings[2].severity, doc.findings[2].message })
    assert.equal(1, r.code)
  end)

  it('reports a config error in the standards section (exit 2)', function()
    local dir = project({ ['a.ts'] = 'let a;\n' },
      "return { standards = { rules = { ['demo/no-var'] = 'fatal' } } }")
    local r = enforce(dir, { '.' })
    assert.equal(2, r.code)
    assert.matches("^aegis%-run: config 'aegis.config.lua': standards.rules", r.stderr)
  end)

  it('names the rule and the file when a rule fails, reports the others, exits 1', function()
    local dir = project({ ['a.ts'] = 'debugger;\n',
      ['vendor/rulepacks/bad.lua'] = [[
return { name = 'bad', rules = {
  { id = 'boom', description = 'd', query = '(program) @p', check = function() error('kaboom') end } } }
]] })
    local r = enforce(dir, { '--rulepacks', 'vendor/rulepacks/demo.lua,vendor/rulepacks/bad.lua', '.' })
    assert.equal(1, r.code)
    assert.matches('a.ts:1:1 warning demo/no-debugger', r.stdout, 1, true)
    assert.matches("a.ts: error rule 'bad/boom' on 'a.ts': vendor/rulepacks/bad.lua:2: kaboom", r.stdout, 1, true)
  end)

  it('keeps findings that differ only in their end, in process and from workers', function()
    local files = { ['vendor/rulepacks/nest.lua'] =
      "return { name = 'nest', rules = { { id = 'm', description = 'd', query = '(member_expression) @m' } } }" }
    for i = 1, 10 do files[('f%02d.ts'):format(i)] = 'a.b.c.d;\n' end
    local dir = project(files)
    local one = enforce(dir, { '--jobs', '1', '--rulepacks', 'vendor/rulepacks/nest.lua', '--format', 'json', '.' })
    local three = enforce(dir, { '--jobs', '3', '--rulepacks', 'vendor/rulepacks/nest.lua', '--format', 'json', '.' })
    assert.equal(one.stdout, three.stdout)
    assert.equal(30, #json.decode(one.stdout).findings)
  end)

  it('reports a finding on another file once, however many files report it', function()
    local files = { ['vendor/rulepacks/cfg.lua'] = [[
return { name = 'cfg', rules = {
  { id = 'tsconfig', description = 'd', query = '(program) @p', check = function(ctx)
      ctx.report{ path = 'tsconfig.json', line = 1, col = 1, message = 'strict is off' } end } } }
]] }
    for i = 1, 10 do files[('f%d.ts'):format(i)] = 'let a;\n' end
    local dir = project(files)
    for _, jobs in ipairs({ '1', '3' }) do
      local r = enforce(dir, { '--jobs', jobs, '--rulepacks', 'vendor/rulepacks/cfg.lua', '--format', 'json', '.' })
      local doc = json.decode(r.stdout)
      assert.equal(1, #doc.findings)
      assert.same({ 'tsconfig.json', 'strict is off' }, { doc.findings[1].path, doc.findings[1].message })
    end
  end)

  it("keeps rulepacks' print off standard output (the report), in process and in workers", function()
    local files = { ['vendor/rulepacks/noisy.lua'] = [[
return { name = 'noisy', rules = { { id = 'p', description = 'd', query = '(program) @p',
  check = function(ctx) print('{"findings": []}', ctx.path) end } } }
]] }
    for i = 1, 10 do files[('f%02d.ts'):format(i)] = 'let a;\n' end
    local dir = project(files)
    for _, jobs in ipairs({ '1', '3' }) do
      local r = enforce(dir, { '--jobs', jobs, '--rulepacks', 'vendor/rulepacks/noisy.lua', '--format', 'json', '.' })
      assert.equal(0, r.code)
      assert.equal(10, json.decode(r.stdout).summary.files)
      assert.matches('{"findings": []}\tf01.ts\n', r.stderr, 1, true)
    end
  end)

  it('honours suppression comments', function()
    local dir = project({
      ['a.ts'] = '// aegis-disable-next-line demo/no-var\nvar a;\nvar b; // eslint-disable-line no-var\n',
    })
    local r = enforce(dir, { '.' })
    assert.equal(0, r.code)
  end)

  it('writes its whole report into a pipe before it ends (it ends without tearing its state down)', function()
    -- 400 files of 50 findings: a report of megabytes, far more than a pipe holds
    local files = {}
    for i = 1, 400 do files[('src/f%03d.ts'):format(i)] = string.rep('var x = 1;\n', 50) end
    local dir = project(files)
    for _, jobs in ipairs({ '1', '2' }) do
      local args = { 'enforce', '--format', 'json', '--jobs', jobs, '.' }
      for i, a in ipairs(args) do args[i] = h.shell_quote(a) end
      local p = io.popen('cd ' .. h.shell_quote(dir) .. ' && ' .. h.shell_quote(h.bin) .. ' '
        .. table.concat(args, ' ') .. ' 2>/dev/null')
      local out = p:read('a')
      local ok, how, code = p:close()
      assert.is_nil(ok)
      assert.same({ 'exit', 1 }, { how, code })
      local doc = assert(json.decode(out))
      assert.equal(400 * 50, #doc.findings)
      assert.equal(400 * 50, doc.summary.errors)
      assert.equal('src/f400.ts', doc.findings[#doc.findings].path)
    end
  end)
end)
