--- Fuzz target `ast`: TypeScript and TSX parse + query (RELIABILITY.md B1)
--- through aegis.ast and runtime/last.c, as a rulepack reaches them.
---
--- Input: byte 1 picks the language (odd: tsx) and the node the scoped
--- queries run on; the rest is the source. For each input: parse under a
--- budget; check every diagnostic, walk every node (bounded) checking
--- ranges, text, children and navigation; run every query below on the
--- tree and on one node, checking every capture; scope analysis when the
--- binding has it; then close the tree and check its nodes refuse use.
--- Anything that does not hold raises, which the harness turns into a crash.
local ast = require('aegis.ast')

-- The queries (fuzz/lib/queries.lua, next to this file's directory).
local here = debug.getinfo(1, 'S').source:match('^@(.*)/targets/[^/]+$')
local Q = dofile(here .. '/lib/queries.lua')
local COMMON, TSX = Q.COMMON, Q.TSX

local queries = { ts = {}, tsx = {} }
for _, lang in ipairs({ 'ts', 'tsx' }) do
  local list = {}
  table.move(COMMON, 1, #COMMON, 1, list)
  if lang == 'tsx' then table.move(TSX, 1, #TSX, #list + 1, list) end
  for i, src in ipairs(list) do
    queries[lang][i] = assert(ast.query(lang, src))
  end
end

local MAX_NODES = 20000       -- walk bound per input (time, not correctness)
local SIBLING_NODES = 2000    -- nodes whose siblings the walk asks for (below)
local BUDGET = { ms = 2000, bytes = 1 << 20 }

local function check_range(r, len, what)
  assert(math.type(r.start_byte) == 'integer' and math.type(r.end_byte) == 'integer', what)
  assert(0 <= r.start_byte and r.start_byte <= r.end_byte and r.end_byte <= len,
    ('%s: range %d..%d outside 0..%d'):format(what, r.start_byte, r.end_byte, len))
  assert(r.start_row <= r.end_row, what .. ': rows')
end

local function check_node(src, n, within, what)
  local r = n:range()
  check_range(r, #src, what)
  assert(n:text() == src:sub(r.start_byte + 1, r.end_byte), what .. ': text')
  if within then
    assert(r.start_byte >= within.start_byte and r.end_byte <= within.end_byte,
      ('%s: %s %d..%d outside its scope %d..%d'):format(what, n:type(), r.start_byte, r.end_byte,
        within.start_byte, within.end_byte))
  end
end

local function check_errors(tree, root, src)
  local errs = tree:errors()
  assert((#errs > 0) == root:has_error(), 'errors() disagrees with has_error()')
  local last = -1
  for i, e in ipairs(errs) do
    local what = 'diagnostic ' .. i
    assert(e.kind == 'error' or e.kind == 'missing', what)
    assert(type(e.message) == 'string' and e.message ~= '', what)
    assert(e.line >= 1 and e.col >= 1 and e.end_line >= e.line, what .. ': position')
    assert(0 <= e.start_byte and e.start_byte <= e.end_byte and e.end_byte <= #src, what .. ': bytes')
    assert(e.start_byte >= last, what .. ': not in source order')
    last = e.start_byte
    assert(e.node:is_missing() == (e.kind == 'missing'), what .. ': kind')
    assert(e.kind == 'missing' or e.node:is_error(), what .. ': node')
  end
end

-- Walks the tree without recursion (inputs nest deeply); returns the nodes
-- seen. Text is compared on leaves only (an inner node's text is the span of
-- its leaves; comparing it on every node would cost depth x size).
local FIELDS = { 'name', 'body', 'left', 'value', 'no_such_field' }
local function touch(...) return select('#', ...) end  -- calls made for their checks and coverage
local function walk(root, src)
  local seen, stack, within = {}, { root }, { false }
  while #stack > 0 and #seen < MAX_NODES do
    local n, outer = table.remove(stack), table.remove(within)
    local i = #seen + 1
    seen[i] = n
    local r = n:range()
    check_range(r, #src, 'node')
    if outer then
      assert(r.start_byte >= outer.start_byte and r.end_byte <= outer.end_byte,
        ('child %s %d..%d outside its parent %d..%d'):format(n:type(), r.start_byte, r.end_byte,
          outer.start_byte, outer.end_byte))
    end
    local count = n:child_count()
    if count == 0 then
      assert(n:text() == src:sub(r.start_byte + 1, r.end_byte), 'leaf text')
    end
    touch(n:type(), n:is_named(), n:is_error(), n:is_missing(), n:has_error(),
          n:child_by_field(FIELDS[i % #FIELDS + 1]))
    if i % 8 == 1 then
      local f = n:field_name()
      assert(f == nil or type(f) == 'string')
      touch(n:parent())
      -- siblings: tree-sitter finds them from the parent, which it finds
      -- from the root (O(depth), and O(width) to scan the parent): on the
      -- first nodes only, or a deep or wide hostile tree costs depth x size
      if i <= SIBLING_NODES then
        touch(n:next_sibling(), n:prev_sibling(), n:next_named_sibling(), n:prev_named_sibling())
      end
      assert(n:child(0) == nil and n:child(count + 1) == nil, 'child() out of range')
      local named = n:named_children()
      assert(#named == n:named_child_count(), 'named_child_count')
      for j, k in ipairs(named) do
        assert(k:is_named() and k == n:named_child(j), 'named_child(i)')
      end
    end
    local kids = n:children()
    assert(#kids == count, 'child_count')
    for j = #kids, 1, -1 do
      stack[#stack + 1] = kids[j]
      within[#within + 1] = r
    end
  end
  return seen
end

-- A third of the queries' matches on the tree, and one query's captures
-- and its matches and captures on one node (the input chooses which), to
-- keep exec/s up: the C paths are the same for every query.
-- A query through tree-sitter's cursor runs under the tree's parse budget
-- and returns nil, 'ast: query: timeout (N ms)', 'timeout' past it (a
-- hostile tree: 65,000 unclosed parentheses); the rest are skipped then.
local function results(q, fn, target)
  local r, err, code = q[fn](q, target)
  if r == nil then
    assert(code == 'timeout' and err:find('^ast: query: timeout %(%d+ ms%)$'), tostring(err))
  end
  return r
end

local function run_queries(qs, tree, src, scoped, pick)
  local sr = scoped:range()
  for qi = pick % 3 + 1, #qs, 3 do
    local q, what = qs[qi], 'query ' .. qi
    local ms = results(q, 'matches', tree)
    if not ms then return end
    for _, m in ipairs(ms) do
      assert(math.type(m.pattern) == 'integer' and m.pattern >= 1, what .. ': pattern')
      for _, c in ipairs(m.list) do
        assert(type(c.name) == 'string', what .. ': capture name')
        check_node(src, c.node, nil, what .. ' @' .. c.name)
        assert(m.captures[c.name] ~= nil, what .. ': captures misses @' .. c.name)
      end
    end
  end
  local qi = pick % #qs + 1
  local q, what = qs[qi], 'query ' .. qi
  local prev = -1
  local cs = results(q, 'captures', tree)
  if not cs then return end
  for _, c in ipairs(cs) do
    local r = c.node:range()
    check_node(src, c.node, nil, what .. ' capture @' .. c.name)
    assert(r.start_byte >= prev, what .. ': captures not in document order')
    prev = r.start_byte
  end
  local sm = results(q, 'matches', scoped)
  if not sm then return end
  for _, m in ipairs(sm) do
    for _, c in ipairs(m.list) do check_node(src, c.node, sr, what .. ' (scoped) @' .. c.name) end
  end
  cs = results(q, 'captures', scoped)
  if not cs then return end
  for _, c in ipairs(cs) do
    check_node(src, c.node, sr, what .. ' (scoped capture) @' .. c.name)
  end
end

-- tree:scope() (scope analysis, runtime/ag_scope.c): every scope, variable,
-- reference and unresolved name points into the source, indices are in
-- range, and resolve() answers for identifiers the input picks.
local function check_scope(tree, src, seen, pick)
  if tree.scope == nil then return end
  local sc, err, code = tree:scope()
  if not sc then
    assert(code == 'nomem' and type(err) == 'string', 'scope failed: ' .. tostring(err))
    return
  end
  assert(tree:scope() == sc, 'scope is not cached')
  local scopes = sc.scopes
  -- any root opens the module scope, an ERROR one too (fuzz/regressions/ast/scope-error-root-*)
  assert(#scopes >= 1 and scopes[1].kind == 'module', 'no module scope')
  for i, s in ipairs(scopes) do
    assert(type(s.kind) == 'string' and s.index == i, 'scope kind/index')
    assert(s.parent == nil or (s.parent >= 1 and s.parent < i), 'scope parent')
    check_node(src, s.node, nil, 'scope node')
  end
  local function check_ref(ref, what)
    check_node(src, ref.node, nil, what)
    assert(scopes[ref.scope] ~= nil, what .. ': scope index')
  end
  for _, v in ipairs(sc.variables) do
    assert(type(v.name) == 'string' and type(v.kind) == 'string', 'variable')
    assert(scopes[v.scope] ~= nil, 'variable scope index')
    if v.id then check_node(src, v.id, nil, 'variable id') end
    if v.decl then check_node(src, v.decl, nil, 'variable decl') end
    if v.statement then check_node(src, v.statement, nil, 'variable statement') end
    for _, ref in ipairs(v.refs) do check_ref(ref, 'reference') end
  end
  for _, u in ipairs(sc.unresolved) do
    assert(type(u.name) == 'string', 'unresolved name')
    check_ref(u, 'unresolved')
  end
  for i = 1, math.min(#seen, 64) do
    local n = seen[(pick + i * 7) % #seen + 1]
    if n:type() == 'identifier' then
      local v = sc:resolve(n)
      assert(v == nil or type(v.name) == 'string', 'resolve')
    end
  end
end

return function(data)
  local flags = data:byte(1) or 0
  local src = data:sub(2)
  local lang = (flags & 1) == 1 and 'tsx' or 'ts'
  local tree, err, code = ast.parse(src, { lang = lang, budget = BUDGET })
  if not tree then
    -- only the budget may refuse a source
    assert(code == 'timeout' or code == 'too_large' or code == 'memory', tostring(err))
    assert(err:find("^ast: parse '<string>': "), err)
    return
  end
  assert(tree:lang() == lang and tree:source() == src, 'tree lang/source')
  local root = tree:root()
  check_node(src, root, nil, 'root')
  check_errors(tree, root, src)
  local seen = walk(root, src)
  if flags & 0xf0 == 0xf0 then assert(type(root:sexp()) == 'string') end
  local scoped = seen[(flags >> 1) % #seen + 1]
  run_queries(queries[lang], tree, src, scoped, flags >> 1)
  -- a query runs only on trees of its language
  local other = queries[lang == 'ts' and 'tsx' or 'ts'][1]
  local ok, e = pcall(other.matches, other, tree)
  assert(not ok and tostring(e):find('tree of another language', 1, true), 'language check')
  check_scope(tree, src, seen, flags)
  assert(tree:close() == true)
  ok, e = pcall(root.type, root)
  assert(not ok and tostring(e):find('attempt to use a closed tree', 1, true), 'closed tree')
  ok = pcall(queries[lang][1].matches, queries[lang][1], tree)
  assert(not ok, 'query on a closed tree')
  assert(tree:close() == true)
end
