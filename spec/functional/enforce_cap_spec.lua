-- aegis-run enforce with the cap on findings per rule and file
-- (standards.max_findings_per_rule): every format says what was not shown,
-- the counts, the exit status and --max-warnings include it, and the
-- report is the same for any --jobs.
local h = require('spec.helpers')
local json = require('aegis.json')
local sarif_schema = require('spec.support.sarif_schema')

local PACK = [[
return { name = 'cap', version = '1.0.0', rules = {
  { id = 'err', severity = 'error', description = 'Unexpected debugger statement', eslint = 'no-debugger',
    query = '(debugger_statement) @d' },
  { id = 'warn', severity = 'warning', description = 'Use let or const instead of var',
    query = '(variable_declaration "var" @report)' },
} }
]]

-- A project: .git, the rulepack (trusted), the config with `cap`, files.
local function project(files, cap)
  local dir = h.tmpdir()
  h.mkdir(dir .. '/.git')
  h.mkdir(dir .. '/vendor')
  h.write(dir .. '/vendor/cap.lua', PACK)
  h.write(dir .. '/aegis.config.lua', ("return { standards = { rulepacks = { 'vendor/cap.lua' },"
    .. " trusted = { 'vendor' }, max_findings_per_rule = %d } }\n"):format(cap))
  return h.write_tree(dir, files)
end

local function enforce(dir, args)
  local a = { 'enforce' }
  for _, x in ipairs(args) do a[#a + 1] = x end
  return h.run(a, { cwd = dir })
end

-- src/a.ts: 5 errors (3 over a cap of 2) and 4 warnings (2 over); src/b.ts:
-- 1 error; a suppressed debugger in a.ts counts for nothing.
local FILES = {
  ['src/a.ts'] = 'debugger;\n// aegis-disable-next-line cap/err\ndebugger;\n' .. ('debugger;\n'):rep(4)
    .. ('var x;\n'):rep(4),
  ['src/b.ts'] = 'debugger;\n',
}

describe('aegis-run enforce: findings over standards.max_findings_per_rule', function()
  it('text: a line per (file, rule) over the cap; the summary counts every finding', function()
    local dir = project(FILES, 2)
    local r = enforce(dir, { 'src' })
    assert.equal(1, r.code, r.stderr)
    local heads = {}
    for l in r.stdout:gmatch('[^\n]+') do
      if not l:find('^    ') then heads[#heads + 1] = l end
    end
    assert.same({
      'src/a.ts:1:1 error cap/err Unexpected debugger statement',
      'src/a.ts:4:1 error cap/err Unexpected debugger statement',
      'src/a.ts:8:1 warning cap/warn Use let or const instead of var',
      'src/a.ts:9:1 warning cap/warn Use let or const instead of var',
      'src/b.ts:1:1 error cap/err Unexpected debugger statement',
      'src/a.ts: 3 more findings of rule cap/err not shown (standards.max_findings_per_rule = 2)',
      'src/a.ts: 2 more findings of rule cap/warn not shown (standards.max_findings_per_rule = 2)',
      '6 errors, 4 warnings in 2 files (5 not shown: over standards.max_findings_per_rule)',
    }, heads)
  end)

  it('JSON: `capped` and summary.not_shown, the summary counting every finding', function()
    local dir = project(FILES, 2)
    local r = enforce(dir, { '--format', 'json', 'src' })
    assert.equal(1, r.code, r.stderr)
    local doc = json.decode(r.stdout)
    assert.equal(5, #doc.findings)
    assert.same({
      { path = 'src/a.ts', rule = 'cap/err', severity = 'error', shown = 2, not_shown = 3 },
      { path = 'src/a.ts', rule = 'cap/warn', severity = 'warning', shown = 2, not_shown = 2 },
    }, doc.capped)
    assert.same({ files = 2, errors = 6, warnings = 4, infos = 0, problems = 0, not_shown = 5 }, doc.summary)
  end)

  it('JSON under the cap: no `capped`, no summary.not_shown (the report as before the cap)', function()
    local dir = project(FILES, 5)
    local r = enforce(dir, { '--format', 'json', 'src' })
    assert.equal(1, r.code, r.stderr)
    local doc = json.decode(r.stdout)
    assert.equal(10, #doc.findings)
    assert.is_nil(doc.capped)
    assert.same({ files = 2, errors = 6, warnings = 4, infos = 0, problems = 0 }, doc.summary)
    -- 0: no cap
    dir = project({ ['a.ts'] = ('debugger;\n'):rep(7) }, 0)
    doc = json.decode(enforce(dir, { '--format', 'json', 'a.ts' }).stdout)
    assert.equal(7, #doc.findings)
    assert.is_nil(doc.capped)
  end)

  it('SARIF: a warning notification per (file, rule) over the cap; valid SARIF 2.1.0', function()
    local dir = project(FILES, 2)
    local r = enforce(dir, { '--format', 'sarif', 'src' })
    assert.equal(1, r.code, r.stderr)
    local doc = json.decode(r.stdout)
    local run = doc.runs[1]
    assert.equal(5, #run.results)
    local inv = run.invocations[1]
    assert.is_true(inv.executionSuccessful)
    local index = {}
    for i, rule in ipairs(run.tool.driver.rules) do index[rule.id] = i - 1 end
    assert.same({
      { level = 'warning',
        message = { text = '3 more findings of rule cap/err not shown (standards.max_findings_per_rule = 2)' },
        associatedRule = { id = 'cap/err', index = index['cap/err'] },
        locations = { { physicalLocation = { artifactLocation = { uri = 'src/a.ts', uriBaseId = '%SRCROOT%' } } } },
        properties = { shown = 2, notShown = 3 } },
      { level = 'warning',
        message = { text = '2 more findings of rule cap/warn not shown (standards.max_findings_per_rule = 2)' },
        associatedRule = { id = 'cap/warn', index = index['cap/warn'] },
        locations = { { physicalLocation = { artifactLocation = { uri = 'src/a.ts', uriBaseId = '%SRCROOT%' } } } },
        properties = { shown = 2, notShown = 2 } },
    }, inv.toolExecutionNotifications)
    local errs, ok = sarif_schema.validate(r.stdout)
    if errs == nil then return pending(ok) end
    assert.equal('', errs)
    assert.is_true(ok)
  end)

  it('GitHub: a ::warning per (file, rule) over the cap', function()
    local dir = project(FILES, 2)
    local r = enforce(dir, { '--format', 'github', 'src' })
    assert.equal(1, r.code, r.stderr)
    local tail = {}
    for l in r.stdout:gmatch('[^\n]+') do
      if not l:find('line=', 1, true) then tail[#tail + 1] = l end
    end
    assert.same({
      '::warning file=src/a.ts,title=cap/err::3 more findings of rule cap/err not shown'
        .. ' (standards.max_findings_per_rule = 2)',
      '::warning file=src/a.ts,title=cap/warn::2 more findings of rule cap/warn not shown'
        .. ' (standards.max_findings_per_rule = 2)',
    }, tail)
    local n = 0
    for _ in r.stdout:gmatch('line=') do n = n + 1 end
    assert.equal(5, n)
  end)

  it('--max-warnings counts the warnings not shown; the exit status the errors not shown', function()
    local dir = project({ ['w.ts'] = ('var x;\n'):rep(4) }, 2)
    local r = enforce(dir, { '--max-warnings', '3', 'w.ts' })
    assert.equal(1, r.code)
    assert.equal('aegis-run: enforce: 4 warnings (more than --max-warnings 3)\n', r.stderr)
    r = enforce(dir, { '--max-warnings', '4', 'w.ts' })
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find('0 errors, 4 warnings in 1 file (2 not shown: over standards.max_findings_per_rule)',
      1, true), r.stdout)
    -- standards.max_warnings too
    h.write(dir .. '/strict.lua', "return { standards = { rulepacks = { 'vendor/cap.lua' }, trusted = { 'vendor' },"
      .. ' max_findings_per_rule = 1, max_warnings = 3 } }\n')
    r = enforce(dir, { '--config', 'strict.lua', '--format', 'json', 'w.ts' })
    assert.equal(1, r.code)
    assert.equal(1, #json.decode(r.stdout).findings)
    assert.equal('aegis-run: enforce: 4 warnings (more than --max-warnings 3)\n', r.stderr)
  end)

  it('gives the same report for any --jobs (workers send what they capped)', function()
    local files = {}
    for i = 1, 9 do files[('src/f%d.ts'):format(i)] = ('debugger;\n'):rep(i) end
    local dir = project(files, 3)
    local one = enforce(dir, { '--jobs', '1', '--format', 'json', 'src' })
    local two = enforce(dir, { '--jobs', '2', '--format', 'json', 'src' })
    assert.equal(1, one.code, one.stderr)
    assert.equal(one.stdout, two.stdout)
    local doc = json.decode(one.stdout)
    assert.equal(6, #doc.capped)   -- f4 .. f9
    assert.same({ path = 'src/f9.ts', rule = 'cap/err', severity = 'error', shown = 3, not_shown = 6 }, doc.capped[6])
    assert.equal(45, doc.summary.errors)
    assert.equal(1 + 2 + 3 + 4 + 5 + 6, doc.summary.not_shown)
  end)

  it('--fail-fast: what was capped in files after the first failing one is not reported', function()
    local dir = project({ ['a.ts'] = ('debugger;\n'):rep(4), ['b.ts'] = ('debugger;\n'):rep(5) }, 2)
    local r = enforce(dir, { '--fail-fast', '--jobs', '1', '--format', 'json', 'a.ts', 'b.ts' })
    assert.equal(1, r.code)
    local doc = json.decode(r.stdout)
    assert.same({ { path = 'a.ts', rule = 'cap/err', severity = 'error', shown = 2, not_shown = 2 } }, doc.capped)
    assert.equal(4, doc.summary.errors)
  end)
end)
