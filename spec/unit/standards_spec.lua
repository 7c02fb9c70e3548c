-- aegis.standards: rulepack loading, the combined query and its dispatch,
-- check/report/fix, ctx, config overlays, suppression comments, rule
-- failures and budgets (S2, in-process), rulepack sandbox escapes (S1).
local h = require('spec.helpers')
local standards = require('aegis.standards')
local errors = require('aegis.errors')

local dir = h.tmpdir()
local n = 0
local clock = require('aegis.clock').monotonic

-- Writes a rulepack file from its source; returns its path.
local function pack(src)
  n = n + 1
  return h.write(('%s/pack%d.lua'):format(dir, n), src)
end

local function ids(findings)
  local t = {}
  for i, f in ipairs(findings) do t[i] = ('%d:%d %s'):format(f.line, f.col, f.rule) end
  return t
end

local BASIC = [[
return {
  name = 'basic', version = '1.0.0', description = 'test pack',
  rules = {
    { id = 'no-var', severity = 'error', description = 'Use let or const instead of var', eslint = 'no-var',
      query = [=[ (variable_declaration "var" @report) ]=] },
    { id = 'no-any', severity = 'warning', description = 'no any', eslint = '@typescript-eslint/no-explicit-any',
      query = [=[ ((predefined_type) @t (#eq? @t "any")) ]=],
      check = function(ctx, m) return 'Unexpected any (' .. ctx.options.word .. ')' end,
      options = { word = 'default' } },
    { id = 'two', description = 'two patterns',
      query = [=[ (debugger_statement) @d (throw_statement) @t ]=],
      check = function(ctx, m) return 'pattern ' .. m.pattern end },
  },
}
]]

describe('aegis.standards.check_source', function()
  local basic
  setup(function() basic = pack(BASIC) end)
  before_each(function() standards.reset() end)

  it('reports matches without check at @report, with the description', function()
    local f = standards.check_source('let a = 1;\nvar b = 2;\n', { path = 'x.ts', rules = { basic }, config = {} })
    assert.same({ '2:1 basic/no-var' }, ids(f))
    assert.same({ rule = 'basic/no-var', severity = 'error', message = 'Use let or const instead of var',
      path = 'x.ts', line = 2, col = 1, end_line = 2, end_col = 4, start_byte = 11, end_byte = 14 }, f[1])
  end)

  it('selects single rules by full id and whole packs by name', function()
    local src = 'var a: any = 1;'
    assert.truthy(standards.load(basic))  -- a pack loaded from a file is then known by its name
    assert.same({ '1:8 basic/no-any' },
      ids(standards.check_source(src, { rules = { 'basic/no-any' }, config = {} })) )
  end)

  it("gives a pack's sha256, that of its source, kept once read", function()
    local p = assert(standards.load(basic))
    assert.equal(require('aegis.hash').sha256(BASIC), p.sha256)
    assert.equal(p.sha256, rawget(p, 'sha256'))
    assert.equal(p, standards.load(basic))  -- cached
  end)

  it('dispatches the combined query by pattern: a rule sees its own pattern numbers', function()
    local f = standards.check_source('debugger;\nthrow 1;\nvar x;\n', { rules = { basic }, config = {} })
    assert.same({ '1:1 basic/two', '2:1 basic/two', '3:1 basic/no-var' }, ids(f))
    assert.equal('pattern 1', f[1].message)
    assert.equal('pattern 2', f[2].message)
  end)

  it('matches a query text shared by several rules once, and gives each rule the matches', function()
    local p = pack([[
local Q = '(debugger_statement) @d'
return { name = 'shared', rules = {
  { id = 'a', description = 'A', query = Q },
  { id = 'b', description = 'B', query = Q,
    check = function(ctx, m) local n = m.pattern; m.pattern = 99; return 'b' .. n end },
  { id = 'c', description = 'C', query = Q,
    check = function(ctx, m) return 'c' .. m.pattern .. ctx.text(m.captures.d) end },
} }
]])
    local f = standards.check_source('debugger;', { rules = { p }, config = {} })
    assert.same({ '1:1 shared/a', '1:1 shared/b', '1:1 shared/c' }, ids(f))
    assert.same({ 'A', 'b1', 'c1debugger;' }, { f[1].message, f[2].message, f[3].message })
  end)

  it('orders findings totally: nested nodes at the same start sort by their end', function()
    local p = pack("return { name = 'nest', rules = {"
      .. " { id = 'm', description = 'd', query = '(member_expression) @m' } } }")
    local f = standards.check_source('a.b.c;', { rules = { p }, config = {} })
    assert.same({ 4, 6 }, { f[1].end_col, f[2].end_col })
  end)

  it('overlays severity and options from config; off drops the rule', function()
    local cfg = { rules = { ['basic/no-any'] = { severity = 'error', options = { word = 'cfg' } },
      ['basic/no-var'] = 'off' } }
    local f = standards.check_source('var a: any;', { rules = { basic }, config = cfg })
    assert.same({ '1:8 basic/no-any' }, ids(f))
    assert.equal('error', f[1].severity)
    assert.equal('Unexpected any (cfg)', f[1].message)
  end)

  it('makes the query of a rule whose query is a function of its options, for the options configured', function()
    local p = pack([[
return { name = 'qfn', rules = {
  { id = 'kw', description = 'd', options = { what = 'debugger_statement' },
    query = function(o) return '(' .. o.what .. ') @s' end },
  { id = 'per', description = 'd', options = { ts = 'debugger_statement', tsx = 'throw_statement' },
    query = function(o) return { ts = '(' .. o.ts .. ') @s', tsx = '(' .. o.tsx .. ') @s' } end },
} }
]])
    local src = 'debugger;\nthrow 1;\n'
    local function check(path, cfg)
      return ids(standards.check_source(src, { path = path, rules = { p }, config = cfg }))
    end
    assert.same({ '1:1 qfn/kw', '1:1 qfn/per' }, check('a.ts', {}))
    assert.same({ '1:1 qfn/kw', '2:1 qfn/per' }, check('a.tsx', {}))
    local cfg = { rules = { ['qfn/kw'] = { options = { what = 'throw_statement' } }, ['qfn/per'] = 'off' } }
    assert.same({ '2:1 qfn/kw' }, check('a.ts', cfg))
    -- a function that raises, loops or returns no query is the pack's error, naming the rule
    for body, msg in pairs({
      ["error('nope')"] = "rule 'bad/r': query%(options%): .*nope",
      ['while true do end'] = "rule 'bad/r': query%(options%): .*budget exceeded",   -- (time, under valgrind)
      ['return 7'] = "rule 'bad/r': query%(options%) must return a string or {ts = string, tsx = string}, got number",
    }) do
      standards.reset()
      local b = pack("return { name = 'bad', rules = { { id = 'r', description = 'd', query = function() "
        .. body .. " end } } }")
      local ok, err = pcall(standards.check_source, src, { path = 'a.ts', rules = { b }, config = {} })
      assert.is_false(ok)
      assert.is_true(errors.is(err), tostring(err))
      assert.equal(2, err.exit)
      assert.matches(msg, err.msg)
    end
  end)

  it('takes check results: true, string, table with node or bytes; and ctx.report', function()
    local p = pack([[
return { name = 'res', rules = {
  { id = 't', description = 'desc t', query = '(debugger_statement) @d', check = function() return true end },
  { id = 'tab', description = 'd', query = '(throw_statement) @t',
    check = function(ctx, m) return { start_byte = 0, end_byte = 2, message = 'bytes' } end },
  { id = 'rep', description = 'd', query = '(program) @p',
    check = function(ctx, m)
      ctx.report{ node = ctx.root, message = 'one' }
      ctx.report{ path = 'other.json', line = 3, col = 2, message = 'two' }
      return false
    end },
} }
]])
    local f = standards.check_source('debugger;\nthrow 1;', { path = 'a.ts', rules = { p }, config = {} })
    table.sort(f, function(a, b) return a.message < b.message end)
    assert.equal('bytes', f[1].message)
    assert.same({ 1, 1, 1, 3 }, { f[1].line, f[1].col, f[1].end_line, f[1].end_col })
    assert.equal('desc t', f[2].message)
    assert.equal('one', f[3].message)
    assert.same({ 'other.json', 3, 2 }, { f[4].path, f[4].line, f[4].col })
  end)

  it('attaches fixes', function()
    local p = pack([[
return { name = 'fx', rules = {
  { id = 'v', description = 'var', query = '(variable_declaration "var" @report)',
    fix = function(ctx, m) local r = m.captures.report:range()
      return { start_byte = r.start_byte, end_byte = r.end_byte, text = 'let' } end },
} }
]])
    local f = standards.check_source('var a = 1;', { rules = { p }, config = {} })
    assert.same({ start_byte = 0, end_byte = 3, text = 'let' }, f[1].fix)
  end)

  it('gives ctx: path, lang, source, options, config, text, tsconfig', function()
    local proj = h.tmpdir()
    os.execute('mkdir -p ' .. h.shell_quote(proj .. '/src') .. ' ' .. h.shell_quote(proj .. '/.git'))
    h.write(proj .. '/tsconfig.json', '{\n // comment\n "compilerOptions": { "strict": true, },\n}\n')
    local p = pack([[
return { name = 'ctx', rules = {
  { id = 'c', description = 'd', query = '(program) @p', check = function(ctx, m)
      local tc = ctx.tsconfig()
      return table.concat({ ctx.path, ctx.lang, #ctx.source, ctx.config.theme.tokens[1], ctx.text(m.captures.p),
        tostring(tc.compilerOptions.strict), tc.path }, '|')
    end },
} }
]])
    local file = proj .. '/src/a.tsx'
    local f = standards.check_source('x', { path = file, rules = { p }, config = { theme = { tokens = { 'red' } } } })
    assert.equal(table.concat({ file, 'tsx', '1', 'red', 'x', 'true', proj .. '/tsconfig.json' }, '|'), f[1].message)
  end)

  it('suppresses with aegis-disable comments, by full id, short id or all', function()
    local src = table.concat({
      'var a;',
      '// aegis-disable-next-line basic/no-var',
      'var b;',
      'var c; // aegis-disable-line no-var',  -- not a directive kind for aegis: disable-line is accepted too
      '/* aegis-disable */',
      'var d;',
      '/* aegis-enable */',
      'var e;',
      '// aegis-disable-next-line other-rule',
      'var f;',
    }, '\n')
    local f = standards.check_source(src, { rules = { basic }, config = {} })
    assert.same({ '1:1 basic/no-var', '8:1 basic/no-var', '10:1 basic/no-var' }, ids(f))
  end)

  it('honours eslint-disable comments only for rules that map to ESLint rules', function()
    local p = pack([[
return { name = 'noeslint', rules = {
  { id = 'dbg', description = 'd', query = '(debugger_statement) @d' } } }
]])
    local src = table.concat({
      '// eslint-disable-next-line no-var -- migrating',
      'var a; debugger;',
      'var b; // eslint-disable-line',
      '/* eslint-disable @typescript-eslint/no-explicit-any, no-var */',
      'let c: any; var d;',
      '/* eslint-enable @typescript-eslint/no-explicit-any, no-var */',
      'let e: any;',
    }, '\n')
    local f = standards.check_source(src, { rules = { basic, p }, config = {} })
    assert.same({ '2:8 basic/two', '2:8 noeslint/dbg', '7:8 basic/no-any' }, ids(f))
  end)

  it('reports a rule that errors with the rule and the file, and runs the others', function()
    local p = pack([[
return { name = 'bad', rules = {
  { id = 'boom', description = 'd', query = '(identifier) @i', check = function() error('kaboom') end },
  { id = 'ok', description = 'fine', query = '(debugger_statement) @d' },
} }
]])
    local f, problems = standards.check_source('x; debugger;', { path = 'f.ts', rules = { p }, config = {} })
    assert.same({ '1:4 bad/ok' }, ids(f))
    assert.equal(1, #problems)
    assert.equal('bad/boom', problems[1].rule)
    assert.equal('runtime', problems[1].code)
    assert.matches("^rule 'bad/boom' on 'f.ts': .*pack%d+%.lua:2: kaboom$", problems[1].message)
  end)

  it('maps the combined query to rules as compiling each rule alone does', function()
    -- the combined query is compiled at once when every text is whole patterns; the mapping of its
    -- patterns to rules must be the one counting each text's patterns alone gives
    local ast = require('aegis.ast')
    local e = standards.engine({ rules = { 'typescript-strict', 'a11y', 'aegis-constitutional', basic },
      config = {} })
    for _, lang in ipairs({ 'ts', 'tsx' }) do
      local l = e:_lang(lang)
      local want_owner, want_base, seen, np = {}, {}, {}, 0
      for _, r in ipairs(e.rules) do
        local src = r.query
        if type(src) == 'table' then src = src[lang] end
        if src and (r.lang == nil or r.lang == lang) then
          if seen[src] then
            table.insert(seen[src], r.id)
          else
            local g = { r.id }
            seen[src] = g
            local c = assert(ast.query(lang, src)):pattern_count()
            for p = 1, c do want_owner[np + p], want_base[np + p] = g, np end
            np = np + c
          end
        end
      end
      local got_owner = {}
      for p = 1, np do
        local ids_ = {}
        for _, r in ipairs(l.owner[p]) do ids_[#ids_ + 1] = r.id end
        got_owner[p] = ids_
      end
      assert.same(want_owner, got_owner, lang)
      for p = 1, np do assert.equal(want_base[p], l.base[p], lang .. ' pattern ' .. p) end
      assert.equal(np + 1, l.query:pattern_count(), lang .. ': and the directive pattern')
      assert.same({}, l.bad)
    end
  end)

  it('runs rules whose queries are not chains on the cursor, apart; each rule gets its own query\'s matches',
    function()
    -- a text with any pattern outside aegis.ast's fast path goes whole to a second query run by the cursor;
    -- the chains and the directive pattern keep the fast path (and the scope analysis rides its walk)
    local ast = require('aegis.ast')
    local Q = {
      var = '(variable_declaration "var" @v)',
      call = '(call_expression function: (identifier) @f arguments: (arguments (_) @arg))',
      two = '(debugger_statement) @d\n[(throw_statement) (return_statement)] @t',
      ret = '(return_statement (number) @n)',
    }
    local p = pack(([[
local seq = {}
-- each check call numbers itself (per rule and source) and lists its pattern and captures
local function rec(name)
  return function(ctx, m)
    local s = seq[name]
    if not s or s.src ~= ctx.source then s = { src = ctx.source, n = 0 }; seq[name] = s end
    s.n = s.n + 1
    local parts = {}
    for _, c in ipairs(m.list) do
      local r = c.node:range()
      parts[#parts + 1] = c.name .. '@' .. r.start_byte .. '-' .. r.end_byte
    end
    return { start_byte = 0, end_byte = 1, message = ('%%d p%%d %%s'):format(s.n, m.pattern, table.concat(parts, ' ')) }
  end
end
return { name = 'mixed', rules = {
  { id = 'var', description = 'd', query = %q, check = rec('var') },
  { id = 'call', description = 'd', query = %q, check = rec('call') },
  { id = 'two', description = 'd', query = %q, check = rec('two') },
  { id = 'call2', description = 'd', query = %q, check = rec('call2') },
  { id = 'ret', description = 'd', query = %q, check = rec('ret') },
} }
]]):format(Q.var, Q.call, Q.two, Q.call, Q.ret))
    local src = 'var a = 1;\nf(1, 2);\ng();\nfunction h() { debugger; return 1; }\nthrow x;\nf(a);\n'
    local e = standards.engine({ rules = { p }, config = {}, timings = true })
    local l = e:_lang('ts')
    assert.is_true(l.query:fast())
    assert.is_false(l.cursor.query:fast())
    local cur = {}
    for i, r in ipairs(l.cursor.rules) do cur[i] = r.id end
    assert.same({ 'mixed/call', 'mixed/two', 'mixed/call2' }, cur)
    local f, problems = e:check(src, { path = 'm.ts' })
    assert.same({}, problems)
    assert.is_number(e.timings['(query cursor)'])
    local got, want = {}, {}
    for _, x in ipairs(f) do got[#got + 1] = x.rule .. ' ' .. x.message end
    local tree = assert(ast.parse(src, { lang = 'ts' }))
    for _, id in ipairs({ 'var', 'call', 'two', 'call2', 'ret' }) do
      local ms = assert(assert(ast.query('ts', Q[id == 'call2' and 'call' or id])):matches(tree, 'cursor'))
      for i, m in ipairs(ms) do
        local parts = {}
        for _, c in ipairs(m.list) do
          local r = c.node:range()
          parts[#parts + 1] = c.name .. '@' .. r.start_byte .. '-' .. r.end_byte
        end
        want[#want + 1] = ('mixed/%s %d p%d %s'):format(id, i, m.pattern, table.concat(parts, ' '))
      end
    end
    tree:close()
    table.sort(got)
    table.sort(want)
    assert.same(want, got)
    assert.equal(1 + 3 + 3 + 3 + 1, #got)
    -- the directive comments come from the fast part and cover the cursor's rules too
    local f2 = e:check('/* aegis-disable mixed/call */\n' .. src, { path = 'm.ts' })
    local count = {}
    for _, x in ipairs(f2) do count[x.rule] = (count[x.rule] or 0) + 1 end
    assert.same({ ['mixed/var'] = 1, ['mixed/two'] = 3, ['mixed/call2'] = 3, ['mixed/ret'] = 1 }, count)
  end)

  it('q:fast(p) tells which patterns are chains when the query has no fast path', function()
    local ast = require('aegis.ast')
    local q = assert(ast.query('ts', '(debugger_statement) @d\n[(throw_statement)] @t\n(return_statement) @r'))
    assert.is_false(q:fast())
    assert.same({ true, false, true }, { q:fast(1), q:fast(2), q:fast(3) })
    assert.has_error(function() q:fast(4) end, "bad argument #1 to 'fast' (no such pattern)")
    local fq = assert(ast.query('ts', '(debugger_statement) @d'))
    assert.is_true(fq:fast())
    assert.is_true(fq:fast(1))
  end)

  it('reports a query that is valid only next to another rule\'s (a capture left over)', function()
    -- '@x' alone is not a query; after the first text it would capture its pattern
    local p = pack([[
return { name = 'split', rules = {
  { id = 'a', description = 'A', query = '(debugger_statement) @d' },
  { id = 'b', description = 'B', query = '@x' },
} }
]])
    local f, problems = standards.check_source('debugger;', { path = 'f.ts', rules = { p }, config = {} })
    assert.same({ '1:1 split/a' }, ids(f))
    assert.equal(1, #problems)
    assert.equal('query', problems[1].code)
    assert.matches("rule 'split/b': query: ", problems[1].message, 1, true)
  end)

  it('reports a query that does not compile as a problem of that rule', function()
    local p = pack([[
return { name = 'badq', rules = {
  { id = 'q', description = 'd', query = '(not_a_node) @x' },
  { id = 'ok', description = 'fine', query = '(debugger_statement) @d' },
} }
]])
    local f, problems = standards.check_source('debugger;', { path = 'f.ts', rules = { p }, config = {} })
    assert.same({ '1:1 badq/ok' }, ids(f))
    assert.equal('query', problems[1].code)
    assert.matches("rule 'badq/q': query: ast: query: invalid node type", problems[1].message, 1, true)
  end)

  it("has tree-sitter analyse the structure of queries that are not built in, not of the built-in ones", function()
    -- the built-in rulepacks' queries pass the analysis (tested here); the engine compiles them without it
    local ast = require('aegis.ast')
    local e = standards.engine({ rules = { 'aegis-constitutional' }, config = {} })
    for _, lang in ipairs({ 'ts', 'tsx' }) do
      for _, r in ipairs(e.rules) do
        local src = r.query
        if type(src) == 'table' then src = src[lang] end
        if src and (r.lang == nil or r.lang == lang) then
          local q, err = ast.query(lang, src)
          assert(q, r.id .. ' (' .. lang .. '): ' .. tostring(err))
        end
      end
      assert.matches('structure not analysed', tostring(e:_lang(lang).query), 1, true)
    end
    -- a chain that cannot occur in a pack of the user's is that rule's problem, beside a built-in pack
    local p = pack([[
return { name = 'shape', rules = {
  { id = 'never', description = 'd', query = '(number (identifier) @i)' },
  { id = 'ok', description = 'fine', query = '(debugger_statement) @d' },
} }
]])
    local f, problems = standards.check_source('debugger; var x = 1;',
      { path = 'f.ts', rules = { p, 'typescript-strict/no-var' }, config = {} })
    assert.same({ '1:1 shape/ok', '1:11 typescript-strict/no-var' }, ids(f))
    assert.equal(1, #problems)
    assert.equal('query', problems[1].code)
    assert.matches("rule 'shape/never': query: ast: query: structure error at offset 8", problems[1].message, 1, true)
  end)

  -- S2 in-process: a loop, a pcall loop and a coroutine loop are stopped
  -- within 100 ms of the budget, and the other rules still run.
  for name, body in pairs({
    loop = 'while true do end',
    pcall_loop = 'while true do pcall(function() while true do end end) end',
    coroutine_loop = 'while true do local co = coroutine.wrap(function() while true do end end); pcall(co) end',
  }) do
    it('stops a ' .. name .. ' at the time budget (S2)', function()
      local p = pack(([[
return { name = 'spin', rules = {
  { id = 'spin', description = 'd', query = '(program) @p', check = function() %s end },
  { id = 'ok', description = 'fine', query = '(debugger_statement) @d' },
} }
]]):format(body))
      local t0 = clock()
      local f, problems = standards.check_source('debugger;', { path = 'f.ts', rules = { p },
        config = { budget = { seconds = 0.2, instructions = 0 } } })
      local dt = clock() - t0
      assert.same({ '1:1 spin/ok' }, ids(f))
      assert.equal('budget', problems[1].code)
      assert.matches('time budget exceeded', problems[1].message, 1, true)
      assert.is_true(dt < 0.2 + 0.1, ('stopped after %.3f s'):format(dt))
    end)
  end

  it('stops a rule at its instruction budget', function()
    local p = pack([[
return { name = 'ins', rules = {
  { id = 'spin', description = 'd', query = '(program) @p', check = function() while true do end end } } }
]])
    local _, problems = standards.check_source('x', { rules = { p }, config = { budget = { instructions = 100000 } } })
    assert.matches("rule 'ins/spin' on 'input.ts': .*instruction budget exceeded %(100000 instructions%)",
      problems[1].message)
  end)

  it('refuses an include that cannot be found, naming it', function()
    local p = pack("return { name = 'union', include = { 'no-such-included' }, rules = {} }")
    local res, err = standards.load(p)
    assert.is_nil(res)
    assert.equal('not_found', err.code)
    assert.matches("no rulepack 'no-such-included'", err.msg, 1, true)
  end)

  it('raises clear errors for unknown packs and rules', function()
    local ok, err = pcall(standards.check_source, 'x', { rules = { 'no-such-pack' }, config = {} })
    assert.is_false(ok)
    assert.is_true(errors.is(err))
    assert.equal('not_found', err.code)
    assert.equal(2, err.exit)
    assert.matches("^standards: no rulepack 'no%-such%-pack' in AEGIS_PATH", err.msg)
    ok, err = pcall(standards.check_source, 'x', { rules = { 'basic/nope' }, config = {} })
    assert.is_false(ok)
    assert.matches("no rulepack 'basic'", err.msg, 1, true)
  end)

  it('refuses malformed rulepacks with the file named', function()
    for src, msg in pairs({
      ['return 1'] = 'must return a table, got number',
      ["return { name = 'x', rules = { { id = 'a', description = 'd', query = 3 } } }"] = "rule 'a': query must be",
      ["return { name = 'x', rules = { { id = 'a', description = 'd', query = 'x', severity = 'fatal' } } }"] =
        "rule 'a': severity must be",
      ["return { name = 'x', rules = { { id = 'a b', description = 'd', query = 'x' } } }"] = 'rules[1]: id must be',
      ["return { name = 'x', rules = { { id = 'a', query = 'x' } } }"] = "rule 'a': description must be",
    }) do
      local p = pack(src)
      local res, err = standards.load(p)
      assert.is_nil(res)
      assert.equal('rulepack', err.code)
      assert.equal(2, err.exit)
      assert.matches("rulepack '" .. p .. "': " .. msg, err.msg, 1, true)
    end
  end)

  it('says clearly when ctx.scope() is not available', function()
    local p = pack([[
return { name = 'sc', rules = {
  { id = 's', description = 'd', query = '(program) @p',
    check = function(ctx) return #ctx.scope().variables .. '' end } } }
]])
    local f, problems = standards.check_source('let x = 1;', { rules = { p }, config = {} })
    local tree = require('aegis.ast').parse('x')
    if tree.scope then
      assert.equal('1', f[1].message)
    else
      assert.matches('ctx.scope() needs tree:scope()', problems[1].message, 1, true)
    end
  end)

  it('reports syntax errors as problems and still checks the file', function()
    local f, problems = standards.check_source('var a = ;\n', { rules = { basic }, config = {} })
    assert.same({ '1:1 basic/no-var' }, ids(f))
    assert.equal('syntax', problems[#problems].kind)
  end)

  it('lists at most MAX_SYNTAX_ERRORS syntax errors of a file, then how many more', function()
    local _, problems = standards.check_source(('x = = 1;\n'):rep(standards.MAX_SYNTAX_ERRORS + 7),
      { rules = { basic }, config = {} })
    local syntax = {}
    for _, p in ipairs(problems) do if p.kind == 'syntax' then syntax[#syntax + 1] = p end end
    assert.equal(standards.MAX_SYNTAX_ERRORS + 1, #syntax)
    assert.matches('^%d+ more syntax errors not listed$', syntax[#syntax].message)
  end)

  -- the engine reads a built-in rule's report table as it is (run_rule) and places its offsets by the
  -- tree's line index without asking whether the tree is closed (make_finding)
  it("gets from built-in rules' checks plain tables of node or offsets and message, while the tree is open", function()
    local e = standards.engine({ rules = { 'typescript-strict', 'a11y' } })
    local seen, bad = 0, {}
    for _, r in ipairs(e.rules) do
      assert.is_true(r.builtin)
      local check = r.check
      if check then
        r.check = function(ctx, m)
          local res = check(ctx, m)
          if type(res) == 'table' then
            seen = seen + 1
            if getmetatable(res) ~= nil then bad[#bad + 1] = r.id .. ': metatable' end
            for k in pairs(res) do
              if k ~= 'node' and k ~= 'start_byte' and k ~= 'end_byte' and k ~= 'message' then
                bad[#bad + 1] = r.id .. ': ' .. tostring(k)
              end
            end
          end
          if res and tostring(ctx.tree) == 'aegis.ast.Tree (closed)' then bad[#bad + 1] = r.id .. ': closed' end
          return res
        end
      end
    end
    local f1 = e:check('function f(a) { return a!.b; }\nconst g = () => 1;\ndeclare var v: number;\n',
      { path = 'a.ts' })
    local f2 = e:check('export function A() { return <div onClick={() => 1}><a>x</a><img /><h1 /></div>; }\n',
      { path = 'b.tsx' })
    assert.same({}, bad)
    assert.is_true(seen >= 5)
    assert.is_true(#f1 >= 4 and #f2 >= 4)
  end)

  it('raises on misuse', function()
    assert.error_matches(function() standards.check_source(1) end, "bad argument #1 to 'check_source'")
    assert.error_matches(function() standards.check_source('x', 1) end, "bad argument #2 to 'check_source'")
  end)
end)

-- S1: a rulepack (at load time or inside check) reaching for io, os,
-- debug, string.dump, load of bytecode, or host metatables through ctx.
describe('aegis.standards rulepack sandbox (S1)', function()
  before_each(function() standards.reset() end)

  for name, expr in pairs({
    io = "io.open('/etc/passwd')",
    os_execute = "os.execute('id')",
    debug = 'debug.getinfo(1)',
    string_dump = '("").dump(ctx.text)',
    string_dump_lib = 'string.dump(ctx.text)',
    load_bytecode = 'load("\\27Lua")',
    require = "require('aegis.fs')",
    package = 'package.loaded',
    collectgarbage = "collectgarbage('count')",
    tree_metatable = 'getmetatable(ctx.tree).__index',
    node_metatable = 'getmetatable(ctx.root).__gc',
    gc_metamethod = 'setmetatable({}, { __gc = function() while true do end end })',
    aegis_fs = 'aegis.fs.read("/etc/passwd")',
    report_upvalue = 'ctx.report.__index',
  }) do
    it('refuses ' .. name .. ' inside check', function()
      local p = pack(([[
return { name = 'esc', rules = {
  { id = 'e', description = 'd', query = '(program) @p',
    check = function(ctx) local v = %s; return 'escaped ' .. tostring(v) end } } }
]]):format(expr))
      local f, problems = standards.check_source('x', { path = 'f.ts', rules = { p }, config = {} })
      assert.same({}, f)
      assert.equal(1, #problems)
      assert.equal('esc/e', problems[1].rule)
      assert.equal('runtime', problems[1].code)
    end)
  end

  it('refuses io at load time', function()
    local p = pack("io.write('x'); return { name = 'l', rules = {} }")
    local res, err = standards.load(p)
    assert.is_nil(res)
    assert.matches("sandbox: undefined global 'io'", err.msg, 1, true)
  end)

  it('refuses a bytecode rulepack', function()
    local p = h.write(dir .. '/bytecode.lua', string.dump(function() return {} end))
    local res, err = standards.load(p)
    assert.is_nil(res)
    assert.matches('binary chunks are not allowed', err.msg, 1, true)
  end)
end)

describe('aegis.standards.walk (gitignore rules)', function()
  local walk = require('aegis.standards.walk')
  local function ignored(text, rel, isdir)
    return walk.ignored({ { base = '/r/', rules = walk.parse(text) } }, '/r/' .. rel, isdir or false)
  end
  it('matches names at any depth, anchored paths only at the base', function()
    assert.is_true(ignored('*.gen.ts', 'a/b/x.gen.ts'))
    assert.is_true(ignored('/top.ts', 'top.ts'))
    assert.is_false(ignored('/top.ts', 'a/top.ts'))
    assert.is_true(ignored('a/b.ts', 'a/b.ts'))
    assert.is_false(ignored('a/b.ts', 'x/a/b.ts'))
  end)
  it('handles **, directory-only patterns, negation and the last match winning', function()
    assert.is_true(ignored('a/**/z.ts', 'a/z.ts'))
    assert.is_true(ignored('a/**/z.ts', 'a/b/c/z.ts'))
    assert.is_true(ignored('**/gen', 'x/y/gen', true))
    assert.is_true(ignored('out/', 'out', true))
    assert.is_false(ignored('out/', 'out', false))
    assert.is_false(ignored('*.ts\n!keep.ts', 'keep.ts'))
    assert.is_true(ignored('!keep.ts\n*.ts', 'keep.ts'))
    assert.is_false(ignored('d/**', 'd', true))
    assert.is_true(ignored('d/**', 'd/x.ts'))
  end)
  it('handles classes, ?, escapes, comments and trailing spaces', function()
    assert.is_true(ignored('f[0-9].ts', 'f7.ts'))
    assert.is_false(ignored('f[!0-9].ts', 'f7.ts'))
    assert.is_true(ignored('f?.ts', 'fx.ts'))
    assert.is_false(ignored('f?.ts', 'f/.ts'))
    assert.is_true(ignored('\\#x.ts', '#x.ts'))
    assert.is_false(ignored('# x.ts', 'x.ts'))
    assert.is_true(ignored('x.ts   ', 'x.ts'))
    assert.is_true(ignored('a+b.ts', 'a+b.ts'))
  end)
end)
