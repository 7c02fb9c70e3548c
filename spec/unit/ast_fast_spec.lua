-- The fast path of q:matches (runtime/last.c): a query whose patterns are all chains (one node, or a node
-- with one child pattern, with captures and text predicates) is answered by one tree-cursor walk instead
-- of a TSQueryCursor. It must give exactly what the cursor gives, match for match and in the same order;
-- and the scope analysis built in that same walk must equal the one built alone.
--
-- Sources: every TypeScript/TSX file of the repository, each also cut at many points (syntax errors,
-- ERROR and MISSING nodes), the snippets below, and the enforce bench corpus when
-- AEGIS_ENFORCE_CORPUS names it (a directory with files.txt, as bench/enforce builds it).

local ast = require('aegis.ast')
local fs = require('aegis.fs')
local standards = require('aegis.standards')

-- A match as a comparable string: pattern, then each capture's name, range and type, in order.
local function key(ms)
  local out = {}
  for _, m in ipairs(ms) do
    local parts = { m.pattern }
    for _, c in ipairs(m.list) do
      local r = c.node:range()
      parts[#parts + 1] = ('%s@%d-%d:%s'):format(c.name, r.start_byte, r.end_byte, c.node:type())
    end
    for name, node in pairs(m.captures) do
      local r = node:range()
      parts[#parts + 1] = ('[%s=%d-%d]'):format(name, r.start_byte, r.end_byte)
    end
    table.sort(parts, function(a, b) return tostring(a) < tostring(b) end)
    out[#out + 1] = table.concat(parts, ' ')
  end
  return out
end

-- The scope analysis as one string.
local function digest(tree)
  local sc = assert(tree:scope())
  local parts = {}
  for _, v in ipairs(sc.variables) do
    local r = v.id:range()
    local refs = {}
    for _, ref in ipairs(v.refs) do
      refs[#refs + 1] = ref.node:range().start_byte .. (ref.read and 'r' or '') .. (ref.write and 'w' or '')
        .. (ref.type and 't' or '')
    end
    parts[#parts + 1] = table.concat({ v.name, v.kind, v.scope, v.reads, v.writes, v.type_reads, r.start_byte,
      table.concat(refs, ' ') }, ',')
  end
  for _, s in ipairs(sc.scopes) do parts[#parts + 1] = s.kind .. ':' .. tostring(s.parent) end
  for _, u in ipairs(sc.unresolved) do parts[#parts + 1] = 'u:' .. u.name end
  return table.concat(parts, ';')
end

local SNIPPETS = {
  ts = {
    'var a = 1; for (var k in o) {} for (const j of xs) {} let b: any = x!.y!; const c = (<any>z)!;',
    '// aegis-disable-next-line typescript-strict/no-var\nvar x /* eslint-disable */ = 1; /* @ts-ignore */',
    'function f(a: any, ...r: any[]) { return function* g() { yield () => async () => 1; }; }',
    'class C { m() {} get p() { return 1 } set p(v) {} constructor(private q: any) {} static { var s; } }',
    'export default function () {} export const h = <T,>(x: T) => x; namespace N { var n = 1; }',
    'if (a) { let x = ; } else { for (var i = 0; i <',  -- syntax errors
    'const { a, b: [c, d = 1], ...e } = obj; a = 2; ({ a } = o); [c] = arr; e++; a = b; x = y + z;',
    'type T = { a: any } | Array<any>; interface I { f(): any; } declare function d(): any;',
    -- tokens the walk passes without a frame: `const` as a conditional type's false branch keeps one;
    -- hidden nodes holding only tokens (elisions, trailing commas, empty braces, empty for clauses)
    'type C<T> = T extends (infer U)[] ? U : const; let v = [, , a] as const; f(a, b,); import d, {} from "m";',
    'for (;;) {} type E<T> = T extends const ? [,] : T extends infer V ? V : const; class K { ; ; }',
  },
  tsx = {
    '<div onClick={f} onKeyDown={g} role="button"><img src="a.png" /><a href="#">x</a></div>',
    'const A = () => <><label htmlFor="x">L</label><input type="image" /><h1></h1><a>{t}</a></>;',
    'function B() { return <span {...{ onClick }} {...{ onMouseDown: f, style: { color: "red" } }} />; }',
    '<object><area alt="" /></object>; <h2 aria-hidden>t</h2>; <label><input /></label>;',
    '<Foo.Bar onClick={() => {}} /> <a href="javascript:void(0)" onClick={x}>y</a>',
    '<div role="presentation" onclick={h} ONCLICK={h}><label>{"a"}<',  -- syntax errors
  },
}

-- The sources to compare on: {lang, name, src}.
local function sources()
  local list = {}
  for lang, snippets in pairs(SNIPPETS) do
    for i, src in ipairs(snippets) do list[#list + 1] = { lang, lang .. ' snippet ' .. i, src } end
  end
  local p = io.popen('git ls-files "*.ts" "*.tsx" 2>/dev/null')
  local files = p and p:read('a') or ''
  if p then p:close() end
  for path in files:gmatch('[^\n]+') do
    local src = fs.read(path)
    if src then
      local lang = ast.lang_of(path) or 'ts'
      list[#list + 1] = { lang, path, src }
      -- cut at 23 points: unfinished code, ERROR and MISSING nodes
      for k = 1, 23 do
        local cut = (#src * k) // 24
        list[#list + 1] = { lang, path .. ' cut at ' .. cut, src:sub(1, cut) }
      end
    end
  end
  local corpus = os.getenv('AEGIS_ENFORCE_CORPUS')
  if corpus and corpus ~= '' then
    for line in io.lines(corpus .. '/files.txt') do
      if line ~= '' then
        list[#list + 1] = { ast.lang_of(line) or 'ts', line, assert(fs.read(corpus .. '/' .. line)) }
      end
    end
  end
  return list
end

-- The queries of the built-in rules that have the fast path, each alone, and the combined query the
-- engine builds for typescript-strict and a11y, per language.
local function queries()
  local out = { ts = {}, tsx = {} }
  local e = standards.engine({ rules = { 'typescript-strict', 'a11y', 'aegis-constitutional' }, config = {} })
  for _, lang in ipairs({ 'ts', 'tsx' }) do
    for _, r in ipairs(e.rules) do
      local src = r.query
      if type(src) == 'table' then src = src[lang] end
      if src and (r.lang == nil or r.lang == lang) then
        local q = assert(ast.query(lang, src))
        if q:fast() then out[lang][#out[lang] + 1] = { r.id, q } end
      end
    end
    local both = standards.engine({ rules = { 'typescript-strict', 'a11y' }, config = {} })
    local q = both:_lang(lang).query
    assert.is_true(q:fast(), 'the combined typescript-strict + a11y query has the fast path')
    out[lang][#out[lang] + 1] = { 'combined', q }
    out[lang][#out[lang] + 1] = { 'literal child', assert(ast.query(lang, [[
      (for_in_statement kind: "var" @decl) @stmt
      ("var" @kw)
      ((comment) @c (#not-match? @c "^//"))
      ((identifier) @a @b (#not-eq? @a "x"))
      (pair key: (property_identifier) @k) @pair
      (assignment_expression right: (identifier) @rhs)
      (binary_expression left: (identifier) @lhs)
      (arrow_function !return_type) @nort
      (method_definition !return_type !parameters) @nothing
      (variable_declarator !type value: (arrow_function !return_type !type_parameters) @untyped)
      (function_declaration !body) @overload
    ]] .. (lang == 'tsx' and '(jsx_expression (spread_element (object (pair value: (object) @o))))' or ''))) }
  end
  return out
end

describe('ast fast path', function()
  it('is taken only for chain patterns', function()
    for _, src in ipairs({
      '(program) @p', '((comment) @c (#match? @c "x"))', '(a: (identifier))', -- 3rd: not a query
      '(call_expression !arguments) @c', '(arrow_function !return_type !type_parameters) @f',
      '(pair key: (property_identifier !x) @k)',                                -- 3rd: not a field
    }) do
      local q = ast.query('ts', src)
      if q then assert.is_true(q:fast(), src) end
    end
    for _, src in ipairs({
      '(_) @x', '(identifier)* @x', '(identifier)? @x', '[(identifier) (number)] @x', '(array . (number) @x)',
      '(pair key: (_) @k value: (_) @v)', '(expression) @e', '(ERROR) @e',
      '((identifier) @a (number) @b)', '((identifier) @a) @b', '(statement_block (_)+ @s)',
    }) do
      local q = assert(ast.query('ts', src))
      assert.is_false(q:fast(), src)
    end
    local q = assert(ast.query('ts', '(program) @p'))
    assert.equal(1, q:pattern_count())
    assert.equal(2, assert(ast.query('ts', '(program) @p (comment) @c')):pattern_count())
  end)

  it('compiles a query of chains without the analysis of its structure when asked, as the same query', function()
    -- a number has no children: tree-sitter's analysis refuses the chain; without it the chain never matches,
    -- and the cursor, which needs the query whole, raises that error when first used
    local bad = '(number (identifier) @i)'
    local q, err, code = ast.query('ts', bad)
    assert.same({ nil, 'ast: query: structure error at offset 8', 'parse' }, { q, err, code })
    local flat = assert(ast.query('ts', bad, { analyze = false }))
    assert.equal('aegis.ast.Query (ts, 1 patterns, structure not analysed)', tostring(flat))
    assert.is_true(flat:fast())
    local tree = assert(ast.parse('let x = 1 + y; f(2)', { lang = 'ts' }))
    assert.same({}, flat:matches(tree))
    assert.has_error(function() flat:matches(tree, 'cursor') end, 'ast: query: structure error at offset 8')
    assert.has_error(function() flat:captures(tree) end, 'ast: query: structure error at offset 8')
    -- names, fields, captures and predicates are checked as ever, with the same messages (a capture inside
    -- the child of an unknown field is left out: tree-sitter 0.25.1 leaks its quantifiers on that error)
    for _, src in ipairs({ '(number (nope) @i)', '(call_expression nofield: (number)) @c',
        '((number) @i (#eq? @j "x"))', '((number) @i (#foo? @i "x"))', '((number) @i (#match? @i "("))',
        '(number) @i )', '[(number (identifier))] @x' }) do
      local a = { ast.query('ts', src) }
      assert.is_nil(a[1], src)
      assert.same(a, { ast.query('ts', src, { analyze = false }) }, src)
    end
    -- a query that is not chains only is analysed all the same
    assert.equal('aegis.ast.Query (ts, 1 patterns)', tostring(assert(ast.query('ts', '(_) @x', { analyze = false }))))
    -- the same patterns, pattern starts, capture names and matches as the query compiled whole
    local src = [[
      ; a comment between patterns
      (for_in_statement kind: "var" @decl) @stmt
      ("var" @kw)   ((comment) @c (#not-match? @c "^//"))
      ((identifier) @a @b (#not-eq? @a "x") (#any-of? @b "y" "f" "z"))
      (call_expression arguments: (arguments (number) @n)) @call
      ((number) @n2 (#has-parent? @n2 binary_expression) (#match? @n2 "^[0-9]$"))
      (arrow_function !return_type) @nort]]
    flat = assert(ast.query('ts', src, { analyze = false }))
    assert.matches('structure not analysed', tostring(flat))
    local whole = assert(ast.query('ts', src))
    assert.are_not.equal(whole, flat)
    assert.equal(whole:pattern_count(), flat:pattern_count())
    for p = 1, whole:pattern_count() do assert.equal(whole:pattern_start(p), flat:pattern_start(p), p) end
    assert.same(whole:capture_names(), flat:capture_names())
    tree:close()
    tree = assert(ast.parse('for (var k in o) {} // c\n/* d */ let y = 1 + 2; f(3); const g = () => 4;',
      { lang = 'ts' }))
    local want = key(whole:matches(tree, 'cursor'))
    assert.is_true(#want >= 8, #want)
    assert.same(want, key(flat:matches(tree)))
    assert.same(want, key(flat:matches(tree, 'cursor')))
    tree:close()
    -- cached apart: the analysed query serves a caller who skips the analysis, not the other way round
    assert.equal(whole, ast.query('ts', src, { analyze = false }))
    local only = '(jsx_element (jsx_opening_element (identifier) @tag))'
    local f2 = assert(ast.query('tsx', only, { analyze = false }))
    local w2 = assert(ast.query('tsx', only))
    assert.are_not.equal(f2, w2)
    assert.equal(w2, ast.query('tsx', only, { analyze = false }))
    assert.has_error(function() ast.query('ts', '(number) @n', 1) end,
      "bad argument #3 to 'query' (table expected, got number)")
  end)

  it("raises for mode 'walk' without a fast path or on a node", function()
    local tree = assert(ast.parse('let x = 1', { lang = 'ts' }))
    local slow = assert(ast.query('ts', '(_) @x'))
    assert.has_error(function() slow:matches(tree, 'walk') end,
      "bad argument #2 to 'matches' (query has no fast path)")
    local q = assert(ast.query('ts', '(identifier) @x'))
    assert.has_error(function() q:matches(tree:root(), 'walk') end,
      "bad argument #1 to 'matches' (the fast path runs on a whole tree)")
    assert.has_error(function() q:matches(tree, 'fast') end)
    -- on a node, 'auto' takes the cursor
    assert.equal(1, #q:matches(tree:root()))
    tree:close()
  end)

  it('gives what the query cursor gives, and the same scope analysis, on many sources', function()
    local qs = queries()
    local n, compared = 0, 0
    for _, s in ipairs(sources()) do
      local lang, name, src = s[1], s[2], s[3]
      local tree = assert(ast.parse(src, { lang = lang }))
      for i, pair in ipairs(qs[lang]) do
        local q = pair[2]
        -- the first query also builds the scope analysis in its walk
        local fast = key(q:matches(tree, 'walk', i == 1))
        local slow = key(q:matches(tree, 'cursor'))
        assert.same(slow, fast, name .. ': ' .. pair[1])
        compared = compared + #fast
      end
      local alone = assert(ast.parse(src, { lang = lang }))
      assert.equal(digest(alone), digest(tree), name .. ': scope analysis')
      alone:close()
      tree:close()
      n = n + 1
    end
    assert.is_true(n > 400, 'sources: ' .. n)
    assert.is_true(compared > 1000, 'matches: ' .. compared)
  end)

  it('goes into strings in the walk with the scope analysis only when the query wants what they hold', function()
    local src = 'const a = "x\\ny"; f(\'z\', `t${"u"}`); const b = <i title="a &amp; b" />;'
    local tree = assert(ast.parse(src, { lang = 'tsx' }))
    for _, text in ipairs({
      '(string_fragment) @f', '(escape_sequence) @e', '(html_character_reference) @h', "\"'\" @q",
      '(string (string_fragment) @f) @s', '(string) @s (identifier) @i',
    }) do
      local q = assert(ast.query('tsx', text))
      assert.is_true(q:fast(), text)
      local slow = key(q:matches(tree, 'cursor'))
      assert.same(slow, key(q:matches(tree, 'walk', true)), text)
      assert.is_true(#slow > 0, text)
    end
    tree:close()
  end)

  it('ends a chain at a node its walk passes without a visit', function()
    -- the walk that builds the scope analysis visits no node of a symbol that no step names: `b`'s
    -- parenthesized_expression and `d`'s call_expression sit where an array was just before; a chain must
    -- not go through the array's stale place
    local src = '[a]; (b); [c]; f(d); [[e]]; ((g)); x = [(h)];'
    local tree = assert(ast.parse(src, { lang = 'ts' }))
    local q = assert(ast.query('ts', '(array (identifier) @i) (expression_statement (array (array) @in))'))
    assert.is_true(q:fast())
    local slow = key(q:matches(tree, 'cursor'))
    assert.same(slow, key(q:matches(tree, 'walk', true)))
    assert.same(slow, key(q:matches(tree, 'walk')))
    local names = {}
    for _, m in ipairs(q:matches(tree, 'walk')) do
      if m.captures.i then names[#names + 1] = m.captures.i:text() end
    end
    assert.same({ 'a', 'c', 'e' }, names)
    tree:close()
  end)

  it('visits a node that is only ever a chain\'s last step under the parents the chains name', function()
    -- property_identifier under jsx_attribute, pair, member_expression, ...; member_expression both a parent
    -- and a last step; a one-step pattern and five parents (more than the walk lists) undo the narrowing
    local src = table.concat({
      'const o = { k: 1, m() {}, n: a.b.c }; class C { f = 1; g() { return o.k; } }',
      'const e = <div onClick={h} title={x.y} {...{ onKey: g }} />; f([z], w.v); function r() { return q.p; }',
    }, '\n')
    local tree = assert(ast.parse(src, { lang = 'tsx' }))
    for _, text in ipairs({
      '(jsx_attribute (property_identifier) @p)',
      '(jsx_attribute (property_identifier) @p) (pair key: (property_identifier) @k)',
      '(member_expression (property_identifier) @m) (call_expression (member_expression) @c)',
      '(jsx_attribute (property_identifier) @p) (property_identifier) @all',
      '(jsx_attribute (property_identifier) @p) (pair (property_identifier) @k) '
        .. '(member_expression (property_identifier) @m) (public_field_definition (property_identifier) @f) '
        .. '(method_definition (property_identifier) @d)',
      -- the member expressions of `f([z], w.v)` are not visited (their parent is no return statement):
      -- `w` must not be taken for a child of the array before them
      '(return_statement (member_expression) @m) (array (identifier) @i)',
    }) do
      local q = assert(ast.query('tsx', text))
      assert.is_true(q:fast(), text)
      local slow = key(q:matches(tree, 'cursor'))
      assert.same(slow, key(q:matches(tree, 'walk', true)), text)
      assert.same(slow, key(q:matches(tree, 'walk')), text)
      assert.is_true(#slow > 0, text)
    end
    local q = assert(ast.query('tsx', '(return_statement (member_expression) @m) (array (identifier) @i)'))
    local names = {}
    for _, m in ipairs(q:matches(tree, 'walk', true)) do
      names[#names + 1] = (m.captures.i or m.captures.m):text()
    end
    assert.same({ 'o.k', 'z', 'q.p' }, names)
    tree:close()
  end)

  it('keeps two findings at the same start (x!.y!)', function()
    local f = standards.check_source('const a = x!.y!;\n', {
      path = 'a.ts', rules = { 'typescript-strict/no-non-null-assertion' }, config = {},
    })
    assert.equal(2, #f)
    assert.same({ 1, 11, 1, 11 }, { f[1].line, f[1].col, f[2].line, f[2].col })
    assert.are_not.equal(f[1].end_col, f[2].end_col)
  end)
end)
