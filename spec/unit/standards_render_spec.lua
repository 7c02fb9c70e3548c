-- Findings rendered where they are found (run.run's `render`, report.renderer):
-- the report made from the processes' parts is byte for byte the report made
-- from the findings, in every format, with one process and with several,
-- with --fail-fast, with findings reported on other files (one of them a
-- file that is checked too) and with messages that are not valid UTF-8.
local h = require('spec.helpers')
local run = require('aegis.standards.run')
local report = require('aegis.standards.report')

local PACK = [[
return { name = 'mix', version = '1.0.0', rules = {
  { id = 'no-var', severity = 'error', description = 'var', query = '(variable_declaration "var" @report)' },
  { id = 'strings', severity = 'warning', description = 'quotes a string',
    query = '(string) @s', check = function(ctx, m) return 'string ' .. ctx.text(m.captures.s) end },
  { id = 'elsewhere', severity = 'info', description = 'reports on other files', query = '(program) @p',
    check = function(ctx)
      ctx.report{ path = 'tsconfig.json', line = 1, col = 1, message = 'strict is off' }
      -- on a file that is checked too (its path as the walk gives it)
      ctx.report{ path = (ctx.path:gsub('[^/]*$', 'b.ts')), line = 1, col = 1, message = 'seen from ' .. ctx.path }
    end },
} }
]]

local function project()
  local dir = h.tmpdir()
  h.mkdir(dir .. '/.git')
  local files = {
    ['pack/mix.lua'] = PACK,
    ['tsconfig.json'] = '{ "compilerOptions": {} }\n',
    ['src/a.ts'] = 'var a = "\255bad byte";\nlet b = "ok";\n',
    ['src/b.ts'] = 'let x = "b";\nvar y = 1;\n',
    ['src/c.tsx'] = 'const e = <div title="t\tab">{"é"}</div>;\n',
  }
  for i = 1, 12 do files[('src/n%02d.ts'):format(i)] = ('let v%d = "%d";\n'):format(i, i):rep(i) end
  h.write_tree(dir, files)
  local list = {}
  for name in pairs(files) do
    if name:find('^src/') then list[#list + 1] = dir .. '/' .. name end
  end
  table.sort(list)
  return dir, list
end

local FORMATS = { 'text', 'json', 'sarif', 'github' }

local function reports(dir, list, jobs, fail_fast, rendered)
  local opts = {
    text = { color = false }, json = nil, github = nil,
    sarif = { root = dir, cwd = dir, version = '0.0.0' },
  }
  local out = {}
  for _, format in ipairs(FORMATS) do
    local res = run.run({
      rules = { dir .. '/pack/mix.lua' }, config = { trusted = { dir } }, config_dir = dir,
      files = list, jobs = jobs, fail_fast = fail_fast, log = function() end,
      render = rendered and function(rules) return report.renderer(format, opts[format], rules) end or nil,
    })
    assert.equal(rendered, res.parts ~= nil)
    out[format] = report[format](res, opts[format])
    -- the pieces the CLI writes one by one make the same bytes
    local pieces = report.pieces(format, res, opts[format])
    for _, x in ipairs(pieces) do assert.equal('string', type(x)) end
    assert.equal(out[format], table.concat(pieces), format .. ' pieces')
  end
  return out
end

describe('findings rendered where they are found', function()
  it('make the same report as the findings, in every format, in one process or three', function()
    local dir, list = project()
    local want = reports(dir, list, 1, false, false)
    assert.matches('\239\191\189bad byte', want.json, 1, true)   -- (cleaned to U+FFFD in JSON)
    assert.matches('seen from', want.text, 1, true)
    for _, jobs in ipairs({ 1, 3 }) do
      local got = reports(dir, list, jobs, false, true)
      for _, format in ipairs(FORMATS) do
        assert.equal(want[format], got[format], format .. ', ' .. jobs .. ' processes')
      end
    end
  end)

  it('make the same report with --fail-fast', function()
    local dir, list = project()
    local want = reports(dir, list, 1, true, false)
    local got = reports(dir, list, 1, true, true)
    for _, format in ipairs(FORMATS) do assert.equal(want[format], got[format], format) end
    -- several processes stop at different files; every file before the first failing one is in
    got = reports(dir, list, 3, true, true)
    assert.equal(want.github, got.github)
  end)

  it('refuses an unknown format', function()
    assert.has_error(function() report.renderer('xml', {}, {}) end,
      "bad argument #1 to 'renderer' (unknown format 'xml')")
  end)
end)

describe('report source lines', function()
  it('shows the right line of files with CRLF, without a final newline, and past the end', function()
    local dir = h.tmpdir()
    local a = h.write(dir .. '/a.ts', 'let one;\r\nlet two;\r\nlet three;')
    local b = h.write(dir .. '/b.ts', 'x\n\ny\n')
    local function f(path, line, col)
      return { path = path, line = line, col = col, end_line = line, end_col = col + 1, rule = 'p/r',
        severity = 'warning', message = 'm' }
    end
    local res = { findings = { f(a, 1, 5), f(a, 3, 5), f(a, 2, 5), f(a, 9, 1), f(b, 2, 1), f(b, 3, 1), f(b, 4, 1) },
      problems = {}, rules = {}, files = 2, capped = {}, counts = { error = 0, warning = 7, info = 0 } }
    local shown = {}
    for l in report.text(res, { color = false }):gmatch('([^\n]*)\n') do
      if l:find('^    ') and not l:find('^ *%^') then shown[#shown + 1] = l:sub(5) end
    end
    -- a line asked for after a later one, CRLF lines, the last line without its newline, an empty
    -- line, the empty line after a final newline; none past the end (line 9 of a.ts)
    assert.same({ 'let one;', 'let three;', 'let two;', '', 'y', '' }, shown)
  end)

  it('leave the collector as the caller had it: running, or stopped', function()
    local dir, list = project()
    for _, jobs in ipairs({ 1, 2 }) do
      for _, running in ipairs({ true, false }) do
        if not running then collectgarbage('stop') end
        local res = run.run({
          rules = { dir .. '/pack/mix.lua' }, config = { trusted = { dir } }, config_dir = dir,
          files = list, jobs = jobs, log = function() end,
        })
        local after = collectgarbage('isrunning')
        collectgarbage('restart')
        assert.is_true(res.files > 0)
        assert.equal(running, after, jobs .. ' processes, running before: ' .. tostring(running))
      end
    end
  end)

  it('report.pieces refuses a format it does not know', function()
    assert.has_error(function() report.pieces('xml', {}) end,
      "bad argument #1 to 'pieces' (unknown format 'xml')")
  end)

  it('leave the collector running when the merge raises (it is stopped for the tail)', function()
    local dir, list = project()
    local standards = require('aegis.standards')
    local sort = standards.sort
    for _, jobs in ipairs({ 1, 2 }) do
      assert.is_true(collectgarbage('isrunning'))
      standards.sort = function() error('merge failed', 0) end
      local ok, err = pcall(run.run, {
        rules = { dir .. '/pack/mix.lua' }, config = { trusted = { dir } }, config_dir = dir,
        files = list, jobs = jobs, log = function() end,
      })
      standards.sort = sort
      assert.is_false(ok)
      assert.equal('merge failed', err)
      assert.is_true(collectgarbage('isrunning'), jobs .. ' processes')
    end
  end)
end)
