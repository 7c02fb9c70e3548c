-- aegis.standards: the cap on findings per rule and file
-- (standards.max_findings_per_rule), counted after suppression.
local h = require('spec.helpers')
local standards = require('aegis.standards')
local errors = require('aegis.errors')

local dir = h.tmpdir()
local n = 0

-- Writes a rulepack file from its source; returns its path.
local function pack(src)
  n = n + 1
  return h.write(('%s/cap%d.lua'):format(dir, n), src)
end

local function lines_of(findings, rule)
  local t = {}
  for _, f in ipairs(findings) do
    if rule == nil or f.rule == rule then t[#t + 1] = f.line end
  end
  return t
end

-- `k` debugger statements, one per line.
local function debuggers(k)
  return ('debugger;\n'):rep(k)
end

local PACK = [[
return { name = 'cap', version = '1.0.0', rules = {
  { id = 'dbg', severity = 'error', description = 'debugger', eslint = 'no-debugger',
    query = '(debugger_statement) @d' },
  { id = 'dbg2', severity = 'warning', description = 'debugger again',
    query = '(debugger_statement) @d', check = function() return 'again' end },
  { id = 'far', severity = 'info', description = 'reports on another file', query = '(debugger_statement) @d',
    check = function(ctx, m)
      local r = m.captures.d:range()
      ctx.report({ path = 'elsewhere.json', line = r.start_row + 1, col = 1, message = 'there' })
    end },
  { id = 'fixed', severity = 'error', description = 'with a fix that fails past line 3',
    query = '(throw_statement) @t',
    fix = function(ctx, m)
      local r = m.captures.t:range()
      if r.start_row >= 3 then error('fix asked for a finding that is not kept') end
      return { start_byte = r.start_byte, end_byte = r.start_byte + 5, text = 'throw' }
    end },
} }
]]

describe('aegis.standards: findings per rule and file', function()
  local p
  setup(function() p = pack(PACK) end)
  before_each(function() standards.reset() end)

  local function check(src, cfg, rules, path)
    return standards.check_source(src, { path = path or 'a.ts', rules = rules or { 'cap/dbg' }, config = cfg })
  end

  it('keeps the first ones reported up to the cap and counts the others', function()
    standards.load(p)
    local f, problems, capped = check(debuggers(7), { max_findings_per_rule = 3 })
    assert.same({ 1, 2, 3 }, lines_of(f))
    assert.same({}, problems)
    assert.same({ { path = 'a.ts', rule = 'cap/dbg', severity = 'error', shown = 3, not_shown = 4 } }, capped)
  end)

  it('does not count suppressed findings: they never use up the cap', function()
    standards.load(p)
    local src = table.concat({
      '// aegis-disable-next-line cap/dbg',
      'debugger;',                                 -- 2: suppressed
      'debugger; // eslint-disable-line no-debugger',  -- 3: suppressed
      '/* aegis-disable dbg */',
      'debugger;',                                 -- 5: suppressed
      '/* aegis-enable dbg */',
      'debugger;',                                 -- 7
      'debugger;',                                 -- 8
      '// eslint-disable-next-line no-console',
      'debugger;',                                 -- 10: another rule named: kept
      'debugger;',                                 -- 11: over the cap
      '/* eslint-disable */',
      'debugger;',                                 -- 13: suppressed, not counted
    }, '\n')
    local f, _, capped = check(src, { max_findings_per_rule = 3 })
    assert.same({ 7, 8, 10 }, lines_of(f))
    assert.same({ { path = 'a.ts', rule = 'cap/dbg', severity = 'error', shown = 3, not_shown = 1 } }, capped)
    -- the same file without a cap: exactly the findings kept and counted above
    f = check(src, { max_findings_per_rule = 0 })
    assert.same({ 7, 8, 10, 11 }, lines_of(f))
  end)

  it('caps each rule apart', function()
    standards.load(p)
    local f, _, capped = check(debuggers(5), { max_findings_per_rule = 2 }, { 'cap/dbg', 'cap/dbg2' })
    assert.same({ 1, 2 }, lines_of(f, 'cap/dbg'))
    assert.same({ 1, 2 }, lines_of(f, 'cap/dbg2'))
    assert.same({
      { path = 'a.ts', rule = 'cap/dbg', severity = 'error', shown = 2, not_shown = 3 },
      { path = 'a.ts', rule = 'cap/dbg2', severity = 'warning', shown = 2, not_shown = 3 },
    }, capped)
    -- under the cap for one rule only
    f, _, capped = check(debuggers(2) .. '// aegis-disable-next-line dbg2\ndebugger;\n',
      { max_findings_per_rule = 2 }, { 'cap/dbg', 'cap/dbg2' })
    assert.same({ 1, 2 }, lines_of(f, 'cap/dbg2'))
    assert.same({ { path = 'a.ts', rule = 'cap/dbg', severity = 'error', shown = 2, not_shown = 1 } }, capped)
  end)

  it('caps each file apart: one engine, the count starts again with every file', function()
    local e = standards.engine({ rules = { p }, config = { max_findings_per_rule = 2, rules = {
      ['cap/dbg2'] = 'off', ['cap/far'] = 'off', ['cap/fixed'] = 'off' } } })
    local f1, _, c1 = e:check(debuggers(3), { path = 'one.ts' })
    local f2, _, c2 = e:check(debuggers(2), { path = 'two.ts' })
    local f3, _, c3 = e:check(debuggers(4), { path = 'three.ts' })
    assert.same({ 1, 2 }, lines_of(f1))
    assert.same({ { path = 'one.ts', rule = 'cap/dbg', severity = 'error', shown = 2, not_shown = 1 } }, c1)
    assert.same({ 1, 2 }, lines_of(f2))
    assert.same({}, c2)
    assert.same({ 1, 2 }, lines_of(f3))
    assert.same({ { path = 'three.ts', rule = 'cap/dbg', severity = 'error', shown = 2, not_shown = 2 } }, c3)
  end)

  it('counts findings a rule reports on another file under that file', function()
    standards.load(p)
    local f, _, capped = check(debuggers(4), { max_findings_per_rule = 3 }, { 'cap/dbg', 'cap/far' })
    local far = {}
    for _, x in ipairs(f) do if x.rule == 'cap/far' then far[#far + 1] = x.path .. ':' .. x.line end end
    assert.same({ 'elsewhere.json:1', 'elsewhere.json:2', 'elsewhere.json:3' }, far)
    assert.same({
      { path = 'a.ts', rule = 'cap/dbg', severity = 'error', shown = 3, not_shown = 1 },
      { path = 'elsewhere.json', rule = 'cap/far', severity = 'info', shown = 3, not_shown = 1 },
    }, capped)
  end)

  it('does not ask for the fix of a finding it does not keep', function()
    standards.load(p)
    local src = ('throw 1;\n'):rep(6)
    local f, problems, capped = check(src, { max_findings_per_rule = 3 }, { 'cap/fixed' })
    assert.same({}, problems)
    assert.same({ 1, 2, 3 }, lines_of(f))
    assert.same({ start_byte = 0, end_byte = 5, text = 'throw' }, f[1].fix)
    assert.equal(3, capped[1].not_shown)
    -- suppressed findings are not asked either
    f, problems = check(('throw 1;\n'):rep(3) .. '/* aegis-disable fixed */\n' .. ('throw 1;\n'):rep(3),
      { max_findings_per_rule = 0 }, { 'cap/fixed' })
    assert.same({}, problems)
    assert.same({ 1, 2, 3 }, lines_of(f))
  end)

  it('0 means no cap', function()
    standards.load(p)
    local f, _, capped = check(debuggers(standards.MAX_FINDINGS_PER_RULE + 3), { max_findings_per_rule = 0 })
    assert.equal(standards.MAX_FINDINGS_PER_RULE + 3, #f)
    assert.same({}, capped)
  end)

  it('defaults to MAX_FINDINGS_PER_RULE (5,000), for built-in rules too', function()
    assert.equal(5000, standards.MAX_FINDINGS_PER_RULE)
    local k = standards.MAX_FINDINGS_PER_RULE + 2
    local f, _, capped = check(('var a;\n'):rep(k), {}, { 'typescript-strict/no-var' })
    assert.equal(k - 2, #f)
    assert.equal(k - 2, f[#f].line)
    assert.same({ { path = 'a.ts', rule = 'typescript-strict/no-var', severity = 'error', shown = k - 2,
      not_shown = 2 } }, capped)
  end)

  it('caps built-in rules with a check, sharing one query (a11y anchors)', function()
    -- two a11y rules report each empty <a>: both capped, each on its own count
    local src = ('const x = <a></a>;\n'):rep(6)
    local anchors = { 'a11y/anchor-has-content', 'a11y/anchor-is-valid' }
    local f, _, capped = check(src, { max_findings_per_rule = 2 }, anchors, 'a.tsx')
    assert.same({ 1, 2 }, lines_of(f, 'a11y/anchor-has-content'))
    assert.same({ 1, 2 }, lines_of(f, 'a11y/anchor-is-valid'))
    assert.same({
      { path = 'a.tsx', rule = 'a11y/anchor-has-content', severity = 'error', shown = 2, not_shown = 4 },
      { path = 'a.tsx', rule = 'a11y/anchor-is-valid', severity = 'error', shown = 2, not_shown = 4 },
    }, capped)
    -- and without the cap the same rules give all twelve findings
    f, _, capped = check(src, { max_findings_per_rule = 0 }, anchors, 'a.tsx')
    assert.equal(12, #f)
    assert.same({}, capped)
  end)

  it('refuses a cap that is not a non-negative integer (config error, exit 2)', function()
    for _, bad in ipairs({ -1, 1.5, 'x' }) do
      local ok, err = pcall(standards.engine, { rules = { 'typescript-strict/no-var' },
        config = { max_findings_per_rule = bad } })
      assert.is_false(ok)
      assert.is_true(errors.is(err))
      assert.equal('config', err.code)
      assert.equal(2, err.exit)
      assert.equal('standards: max_findings_per_rule must be a non-negative integer, got ' .. tostring(bad), err.msg)
    end
  end)

  it('declares max_findings_per_rule in the config schema', function()
    local config = require('aegis.config')
    local d = h.tmpdir()
    h.write(d .. '/ok.lua', 'return { standards = { max_findings_per_rule = 10 } }\n')
    assert.equal(10, config.load({ path = d .. '/ok.lua' }).standards.max_findings_per_rule)
    h.write(d .. '/bad.lua', 'return { standards = { max_findings_per_rule = -1 } }\n')
    local ok, err = pcall(config.load, { path = d .. '/bad.lua' })
    assert.is_false(ok)
    assert.matches('max_findings_per_rule', tostring(err))
  end)
end)
