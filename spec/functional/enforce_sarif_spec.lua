-- SARIF from aegis-run enforce validates against the SARIF 2.1.0 JSON schema
-- (the OASIS schema as shipped in the npm package @microsoft/jest-sarif,
-- fetched at test time with its integrity checked, never committed) and
-- has what GitHub code scanning needs: tool.driver.rules, ruleId = the full
-- rule id, artifactLocation.uri relative to the repository root, 1-based
-- regions.
local h = require('spec.helpers')
local json = require('aegis.json')

local sarif_schema = require('spec.support.sarif_schema')

local PACK = [[
return { name = 'demo', version = '1.0.0', rules = {
  { id = 'no-var', severity = 'error', description = 'Use let or const instead of var', eslint = 'no-var',
    query = '(variable_declaration "var" @report)',
    fix = function(ctx, m) local r = m.captures.report:range()
      return { start_byte = r.start_byte, end_byte = r.end_byte, text = 'let' } end },
  { id = 'no-debugger', severity = 'warning', description = 'Unexpected debugger statement',
    query = '(debugger_statement) @d' },
  { id = 'todo', severity = 'info', description = 'TODO comment', query = '((comment) @c (#match? @c "TODO"))' },
  { id = 'boom', severity = 'error', description = 'fails on purpose', query = '(program) @p',
    check = function(ctx) if ctx.path:find('boom') then error('kaboom') end end },
} }
]]

local function project()
  local dir = h.tmpdir()
  h.mkdir(dir .. '/.git')
  h.mkdir(dir .. '/vendor')
  h.mkdir(dir .. '/src/with space')
  h.write(dir .. '/vendor/demo.lua', PACK)
  h.write(dir .. '/aegis.config.lua',
    "return { standards = { rulepacks = { 'vendor/demo.lua' }, trusted = { 'vendor' } } }")
  -- 'é' is 2 bytes and 1 UTF-16 unit, '😀' 4 bytes and 2 units
  h.write(dir .. '/src/a.ts', 'let s = "é😀"; var x = 1;\ndebugger;\n// TODO later\n')
  h.write(dir .. '/src/with space/b.ts', 'var y;\n')
  h.write(dir .. '/src/boom.ts', 'let z;\n')
  h.write(dir .. '/clean.ts', 'let ok = 1;\n')
  return dir
end

describe('aegis-run enforce --format sarif', function()
  local dir, doc, text
  setup(function()
    dir = project()
    -- run from a subdirectory: URIs stay relative to the repository root
    local r = h.run({ 'enforce', '--format', 'sarif', '.' }, { cwd = dir .. '/src' })
    assert.equal(1, r.code)
    text = r.stdout
    doc = assert(json.decode(text))
  end)

  it('validates against the SARIF 2.1.0 JSON schema', function()
    -- a clean run (no results) too
    local clean = h.run({ 'enforce', '--format', 'sarif', 'clean.ts' }, { cwd = dir })
    assert.equal(0, clean.code)
    for _, doc_text in ipairs({ text, clean.stdout }) do
      local errs, ok = sarif_schema.validate(doc_text)
      if errs == nil then return pending(ok) end
      assert.equal('', errs)
      assert.is_true(ok)
    end
  end)

  it('fails validation for a broken document (the validator really checks)', function()
    local bad = text:gsub('"startLine": 1', '"startLine": 0', 1)
    local errs, ok = sarif_schema.validate(bad)
    if errs == nil then return pending(ok) end
    assert.is_false(ok)
    assert.matches('startLine', errs, 1, true)
  end)

  it('describes the tool and every rule that ran', function()
    local run = doc.runs[1]
    assert.equal('2.1.0', doc.version)
    assert.equal('aegis-run', run.tool.driver.name)
    local ids = {}
    for _, r in ipairs(run.tool.driver.rules) do ids[#ids + 1] = r.id end
    assert.same({ 'demo/boom', 'demo/no-debugger', 'demo/no-var', 'demo/todo' }, ids)
    local nv = run.tool.driver.rules[3]
    assert.equal('Use let or const instead of var', nv.shortDescription.text)
    assert.equal('error', nv.defaultConfiguration.level)
    assert.equal('no-var', nv.properties.eslint)
  end)

  it('gives results with full rule ids, relative URIs and 1-based UTF-16 regions', function()
    local run = doc.runs[1]
    local got = {}
    for _, r in ipairs(run.results) do
      local loc = r.locations[1].physicalLocation
      assert.equal('%SRCROOT%', loc.artifactLocation.uriBaseId)
      assert.equal(run.tool.driver.rules[r.ruleIndex + 1].id, r.ruleId)
      got[#got + 1] = table.concat({ r.ruleId, r.level, loc.artifactLocation.uri, loc.region.startLine,
        loc.region.startColumn, loc.region.endLine, loc.region.endColumn }, ' ')
    end
    assert.same({
      'demo/no-var error src/a.ts 1 16 1 19',
      'demo/no-debugger warning src/a.ts 2 1 2 10',
      'demo/todo note src/a.ts 3 1 3 14',
      'demo/no-var error src/with%20space/b.ts 1 1 1 4',
    }, got)
    assert.matches('^file:///.*/$', run.originalUriBaseIds['%SRCROOT%'].uri)
  end)

  it('carries fixes as SARIF fixes (byte regions)', function()
    local r = doc.runs[1].results[1]
    local rep = r.fixes[1].artifactChanges[1].replacements[1]
    assert.same({ byteOffset = 18, byteLength = 3 }, rep.deletedRegion)  -- 'var' after 'let s = "é😀"; '
    assert.equal('let', rep.insertedContent.text)
    assert.equal('src/a.ts', r.fixes[1].artifactChanges[1].artifactLocation.uri)
  end)

  it('reports a rule that failed as a tool execution notification', function()
    local inv = doc.runs[1].invocations[1]
    assert.is_false(inv.executionSuccessful)
    local n = inv.toolExecutionNotifications[1]
    assert.equal('error', n.level)
    assert.equal('demo/boom', n.associatedRule.id)
    assert.matches("rule 'demo/boom' on 'boom.ts'", n.message.text, 1, true)
    assert.equal('src/boom.ts', n.locations[1].physicalLocation.artifactLocation.uri)
  end)
end)
