-- tree:scope(): the scope analysis of aegis.ast (runtime/ag_scope.c): declarations, references and
-- assignments per scope, resolved the way ESLint's scope manager (as typescript-eslint extends it) does.

local ast = require('aegis.ast')

local function scope_of(src, lang)
  local tree = assert(ast.parse(src, { lang = lang or 'ts' }))
  return assert(tree:scope()), tree
end

-- name -> list of variables with that name, in source order
local function by_name(sc)
  local t = {}
  for _, v in ipairs(sc.variables) do
    t[v.name] = t[v.name] or {}
    table.insert(t[v.name], v)
  end
  return t
end

local function var(sc, name, i)
  local l = by_name(sc)[name]
  assert(l, 'no variable ' .. name)
  return l[i or 1]
end

-- "r", "w", "rw", "t" (type), "tof" (typeof), "i" (initializer write) per reference
local function refs(v)
  local out = {}
  for _, r in ipairs(v.refs) do
    local s = (r.read and 'r' or '') .. (r.write and 'w' or '')
    if r.typeof then s = 'tof' elseif r.type then s = 't' end
    if r.init then s = 'i' end
    out[#out + 1] = s
  end
  return out
end

local function unresolved(sc)
  local out = {}
  for _, u in ipairs(sc.unresolved) do out[#out + 1] = u.name end
  return out
end

describe('aegis.ast scope', function()
  it('is built once per tree and cached', function()
    local sc, tree = scope_of('let a = 1;')
    assert.equal(sc, tree:scope())
    assert.equal('module', sc.scopes[1].kind)
    assert.equal('program', sc.scopes[1].node:type())
    assert.is_nil(sc.scopes[1].parent)
  end)

  it('gives one scope by index, the same table as sc.scopes before and after it is made', function()
    local src = 'function f(a) { { let b = a; } }\nnamespace N { export const c = 1; }'
    local sc = scope_of(src)
    local inner = assert(sc:scope(3))
    assert.equal('block', inner.kind)
    assert.equal(2, inner.parent)
    assert.equal(2, inner.varscope)
    assert.equal(3, inner.index)
    assert.is_false(inner.ambient)
    assert.is_false(inner.export_list)
    assert.equal('statement_block', inner.node:type())
    assert.equal(inner, sc:scope(3))
    assert.equal(inner, sc.scopes[3])         -- sc.scopes made after it keeps the table
    assert.equal(sc.scopes[4], sc:scope(4))   -- and sc:scope after sc.scopes gives its table
    assert.equal('namespace', sc:scope(4).kind)
    assert.equal(#sc.scopes, 4)
    assert.is_nil(sc:scope(0))
    assert.is_nil(sc:scope(5))
    assert.has_error(function() sc:scope('x') end, "bad argument #1 to 'scope' (number expected, got string)")
    assert.has_error(function() sc.scope(nil, 1) end, "bad argument #1 to 'scope' (table expected, got nil)")
    assert.has_error(function() sc.scope({}, 1) end, "bad argument #1 to 'scope' (not a scope table)")
    assert.has_error(function() sc.filter(setmetatable({}, { [6] = true }), {}) end,
      "bad argument #1 to 'filter' (not a scope table)")
  end)

  it('filters the variables by kind and flags, in source order, as the same tables', function()
    local sc = scope_of('let a = 1; const b = 2; let c; var d; function f(p) { let e = p; return e; } a; c = 3;')
    local function names(list)
      local out = {}
      for i, v in ipairs(list) do out[i] = v.name end
      return out
    end
    assert.same({ 'a', 'c', 'e' }, names(sc:filter({ kind = 'let' })))
    assert.same({ 'b' }, names(sc:filter({ kind = 'const' })))
    assert.same({ 'p' }, names(sc:filter({ kind = 'param' })))
    assert.same({}, names(sc:filter({ kind = 'no-such-kind' })))
    assert.same({ 'a', 'e' }, names(sc:filter({ kind = 'let', has_init = true })))
    assert.same({ 'c' }, names(sc:filter({ kind = 'let', has_init = false })))
    assert.same({ 'a', 'b', 'c', 'd', 'f', 'p', 'e' }, names(sc:filter({})))
    assert.equal(sc:filter({ kind = 'let' })[1], var(sc, 'a'))
    assert.has_error(function() sc:filter({ kind = 1 }) end, "bad argument #1 to 'filter' (kind must be a string)")
    assert.has_error(function() sc:filter({ nosuch = true }) end,
      "bad argument #1 to 'filter' (unknown field 'nosuch')")
  end)

  it('declares var/let/const with their declarator and statement', function()
    local sc = scope_of('var a = 1; let b; const c = 2, d = 3;')
    local a, b, c = var(sc, 'a'), var(sc, 'b'), var(sc, 'c')
    assert.equal('var', a.kind)
    assert.equal('let', b.kind)
    assert.equal('const', c.kind)
    assert.is_true(a.has_init)
    assert.is_false(b.has_init)
    assert.equal('identifier', c.id:type())
    assert.equal('c', c.id:text())
    assert.equal('variable_declarator', c.decl:type())
    assert.equal('lexical_declaration', c.statement:type())
    assert.equal(1, c.scope)
    assert.same({ 'i' }, refs(c))
  end)

  it('hoists var to the function scope, keeps let and function declarations in their block', function()
    local sc = scope_of('function f() { { var v; let l; function g() {} } }')
    local f, v, l, g = var(sc, 'f'), var(sc, 'v'), var(sc, 'l'), var(sc, 'g')
    assert.equal(1, f.scope)
    assert.equal('function', sc.scopes[v.scope].kind)
    assert.equal('function_declaration', sc.scopes[v.scope].node:type())
    assert.equal('block', sc.scopes[l.scope].kind)
    assert.equal(l.scope, g.scope)
    assert.equal(v.scope, sc.scopes[l.scope].parent)
  end)

  it('resolves references used before a hoisted declaration', function()
    local sc = scope_of('f(); x = 1; function f() {} var x;')
    assert.same({ 'r' }, refs(var(sc, 'f')))
    assert.same({ 'w' }, refs(var(sc, 'x')))
    assert.same({}, unresolved(sc))
  end)

  it('counts reads, writes, compound assignments, updates and delete', function()
    local sc = scope_of('let x = 0; x = 1; x += 2; x++; --x; y = x; delete x; [x] = a; ({ x } = b);')
    local x = var(sc, 'x')
    assert.same({ 'i', 'w', 'rw', 'rw', 'rw', 'r', 'r', 'w', 'w' }, refs(x))
    assert.equal(5, x.reads)
    assert.equal(6, x.writes)
    assert.same({ 'y', 'a', 'b' }, unresolved(sc))
  end)

  it('marks self-updates whose value is unused', function()
    local sc = scope_of('let a = 0; a++; a += 1; f(a++); b = a += 1; a ||= 2;')
    local flags = {}
    for _, r in ipairs(var(sc, 'a').refs) do flags[#flags + 1] = r.self_update end
    assert.same({ false, true, true, false, false, false }, flags)
  end)

  it('declares destructuring patterns with defaults, rest and shorthand', function()
    local sc = scope_of('const { a, b: [c, d = e], ...f } = o; let [g, , ...h] = arr; ({ i: obj.p, j = k } = q);')
    for _, n in ipairs({ 'a', 'c', 'd', 'f', 'g', 'h' }) do
      local v = var(sc, n)
      assert.is_true(v.has_init, n)
      assert.same({ 'i' }, refs(v), n)
    end
    assert.is_nil(by_name(sc).b)
    assert.same({ 'e', 'o', 'arr', 'obj', 'j', 'k', 'q' }, unresolved(sc))
    for _, u in ipairs(sc.unresolved) do
      if u.name == 'j' then assert.is_true(u.write) else assert.is_false(u.write) end
    end
  end)

  it('declares parameters: plain, default, rest, destructured, parameter properties, this', function()
    local sc = scope_of('class K { constructor(private p: number, readonly q = 1, r?: string, this: K) {} }\n'
      .. 'function f(a, b = a, { c }, ...d) { return a + c; }\nconst g = x => x;')
    local p, q, r = var(sc, 'p'), var(sc, 'q'), var(sc, 'r')
    assert.equal('param', p.kind)
    assert.is_true(p.param_prop)
    assert.is_true(q.param_prop)
    assert.is_false(r.param_prop)
    assert.is_nil(by_name(sc).this)
    local a, b, c, d = var(sc, 'a'), var(sc, 'b'), var(sc, 'c'), var(sc, 'd')
    assert.is_true(a.direct)
    assert.is_false(b.direct)
    assert.is_false(c.direct)
    assert.is_false(d.direct)
    assert.same({ 'r', 'r' }, refs(a))
    assert.same({ 'i' }, refs(b))
    assert.equal('required_parameter', a.decl:type())
    assert.equal('function_declaration', a.statement:type())
    local x = var(sc, 'x')
    assert.is_true(x.direct)
    assert.equal('arrow_function', sc.scopes[x.scope].node:type())
    assert.is_true(x.used)
  end)

  it('marks parameters of signatures, function types and setters', function()
    local sc = scope_of('interface I { m(a: number): void; (b: string): void; new (c): I }\n'
      .. 'type F = (d: number) => void;\ndeclare function h(e: number): void;\n'
      .. 'abstract class A { abstract m(f: number): void; set s(g) {} }')
    for _, n in ipairs({ 'a', 'b', 'c', 'd', 'e', 'f' }) do assert.is_true(var(sc, n).signature, n) end
    assert.is_true(var(sc, 'g').setter)
    assert.is_false(var(sc, 'g').signature)
  end)

  it('scopes class and function expression names inside themselves', function()
    local sc = scope_of('class C { m() { return new C(); } }\nconst D = class E { n() { return E; } };\n'
      .. 'const f = function g() { g(); };')
    local cs = by_name(sc).C
    assert.equal(2, #cs)
    assert.equal(1, cs[1].scope)
    assert.same({}, refs(cs[1]))
    assert.is_true(cs[2].self)
    assert.equal('class', sc.scopes[cs[2].scope].kind)
    assert.same({ 'r' }, refs(cs[2]))
    local e = var(sc, 'E')
    assert.is_true(e.self)
    assert.equal('class', sc.scopes[e.scope].kind)
    assert.is_true(var(sc, 'g').self)
    assert.same({ 'r' }, refs(var(sc, 'g')))
  end)

  it('declares every kind of import', function()
    local sc = scope_of('import D, * as NS from "m"; import { a as b, c } from "n"; import type { T } from "t";\n'
      .. 'import { type U, V } from "u"; import R = require("r"); import Q = NS.inner;')
    for _, n in ipairs({ 'D', 'NS', 'b', 'c', 'T', 'U', 'V', 'R', 'Q' }) do
      assert.equal('import', var(sc, n).kind, n)
    end
    assert.is_nil(by_name(sc).a)
    assert.is_true(var(sc, 'T').type_import)
    assert.is_true(var(sc, 'U').type_import)
    assert.is_false(var(sc, 'V').type_import)
    assert.same({ 'r' }, refs(var(sc, 'NS')))
  end)

  it('declares catch parameters in a catch scope', function()
    local sc = scope_of('try {} catch ({ message, code }) { use(message); }\ntry {} catch (e: unknown) {}')
    local m, e = var(sc, 'message'), var(sc, 'e')
    assert.equal('catch', m.kind)
    assert.equal('catch', sc.scopes[m.scope].kind)
    assert.same({ 'r' }, refs(m))
    assert.equal('catch', e.kind)
  end)

  it('declares enums and their members, type aliases, interfaces, namespaces, type parameters', function()
    local sc = scope_of('enum E { A = 1, B = A }\ntype T<P> = P[];\ninterface I<Q extends T<Q>> { x: Q }\n'
      .. 'namespace N.M { export const z = 1; }\ndeclare module "m" { const w: number; }')
    assert.equal('enum', var(sc, 'E').kind)
    assert.equal('enum_member', var(sc, 'A').kind)
    assert.same({ 'r' }, refs(var(sc, 'A')))
    assert.equal('type', var(sc, 'T').kind)
    assert.equal('interface', var(sc, 'I').kind)
    assert.equal('type_param', var(sc, 'P').kind)
    assert.same({ 't' }, refs(var(sc, 'P')))
    assert.same({ 't', 't' }, refs(var(sc, 'Q')))
    assert.equal('type', sc.scopes[var(sc, 'P').scope].kind)
    assert.equal('namespace', var(sc, 'N').kind)
    assert.is_nil(by_name(sc).M)
    assert.is_true(var(sc, 'z').exported)
    local w = var(sc, 'w')
    assert.is_true(w.declare)
    assert.is_true(sc.scopes[w.scope].ambient)
  end)

  it('keeps types and values apart, and counts typeof as a type read of a value', function()
    local sc = scope_of('const Foo = 1; type Foo = string; let a: Foo = Foo; type B = typeof Foo;')
    local foos = by_name(sc).Foo
    assert.equal(1, #foos)          -- one variable per name and scope, as in typescript-eslint
    local v = foos[1]
    assert.equal(2, v.ndefs)
    assert.is_true(v.value and v.type)
    assert.same({ 'i', 't', 'r', 'tof' }, refs(v))
    assert.equal(2, v.type_reads)
    assert.equal(1, v.reads)
    assert.same({ 'i' }, refs(var(sc, 'a')))
    -- a value reference skips a type-only variable of an inner scope
    sc = scope_of('const X = 1; function f<X>(a: X) { return X; }')
    local xs = by_name(sc).X
    assert.same({ 'i', 'r' }, refs(xs[1]))
    assert.same({ 't' }, refs(xs[2]))
  end)

  it('merges declarations of one name in one scope', function()
    local sc = scope_of('interface M { a: 1 } class M {} function f(): void; function f(x?) {} namespace f {}\n'
      .. 'var v; var v;')
    local m = var(sc, 'M')
    assert.equal(2, m.ndefs)
    assert.equal('interface', m.kind)
    assert.is_true(m.value and m.type)
    assert.equal(3, var(sc, 'f').ndefs)
    assert.equal(2, var(sc, 'v').ndefs)
    assert.is_true(by_name(sc).M[2].self)   -- the class's own name inside it
  end)

  it('marks exports and reads exported names', function()
    local sc = scope_of('export const a = 1; export function b() {} export default class C {}\n'
      .. 'const d = 1; export { d as e }; const f = 2; export default f; const g = 3; export = g;\n'
      .. 'export { h } from "m"; export * as ns from "n";')
    assert.is_true(var(sc, 'a').exported)
    assert.is_true(var(sc, 'b').exported)
    assert.is_true(var(sc, 'C').exported)
    assert.is_false(var(sc, 'd').exported)
    assert.same({ 'i', 'r' }, refs(var(sc, 'd')))
    assert.same({ 'i', 'r' }, refs(var(sc, 'f')))
    assert.same({ 'i', 'r' }, refs(var(sc, 'g')))
    assert.same({}, unresolved(sc))
    assert.is_true(sc.scopes[1].export_list)
  end)

  it('treats JSX component names as reads and intrinsic tags as nothing; JSX reads React', function()
    local sc = scope_of('import React from "react"; import Foo from "f"; import * as UI from "ui";\n'
      .. 'const el = <Foo a={x}><div /><UI.Button /></Foo>; const frag = <></>;', 'tsx')
    assert.same({ 'r' }, refs(var(sc, 'Foo')))
    assert.same({ 'r' }, refs(var(sc, 'UI')))
    local react = var(sc, 'React')
    assert.equal(4, #react.refs)
    assert.is_true(react.refs[1].pragma)
    assert.same({ 'x' }, unresolved(sc))
  end)

  it('does not treat labels, properties or member names as variables', function()
    local sc = scope_of('loop: for (;;) { break loop; }\nconst o = { p: 1, q }; o.p; o["r"];\n'
      .. 'class K { s = 1; t() {} }')
    assert.is_nil(by_name(sc).loop)
    assert.same({ 'q' }, unresolved(sc))
    assert.same({ 'i', 'r', 'r' }, refs(var(sc, 'o')))
  end)

  it('opens for scopes only for let and const heads, and gives for-of bindings a write', function()
    local sc = scope_of('for (let i = 0; i < 2; i++) {}\nfor (const x of xs) {}\nfor (var k in o) {}\nfor (y of ys) {}')
    local i, x, k = var(sc, 'i'), var(sc, 'x'), var(sc, 'k')
    assert.equal('for', sc.scopes[i.scope].kind)
    assert.equal('for', sc.scopes[x.scope].kind)
    assert.same({ 'i' }, refs(x))
    assert.equal('for_in_statement', x.statement:type())
    assert.equal(1, k.scope)
    assert.same({ 'i' }, refs(k))
    assert.same({ 'xs', 'o', 'y', 'ys' }, unresolved(sc))
  end)

  it('marks references inside the variable\'s own body as self references', function()
    local sc = scope_of('function f() { f(); }\nconst g = () => g();\ninterface I { i: I }\nenum E { A, B = E.A }\n'
      .. 'namespace N { N; }\nf(); g();')
    for _, n in ipairs({ 'f', 'g' }) do
      local v = var(sc, n)
      local selfs = {}
      for _, r in ipairs(v.refs) do if not r.init then selfs[#selfs + 1] = r.self end end
      assert.same({ true, false }, selfs, n)
      assert.is_true(v.used, n)
    end
    for _, n in ipairs({ 'I', 'E', 'N' }) do
      local v = var(sc, n)
      assert.is_true(v.refs[1].self, n)
      assert.is_false(v.used, n)
    end
  end)

  it('computes used as typescript-eslint does', function()
    local sc = scope_of('let a = 0; a = a + 1;\nlet b = 0; b++;\nlet c = 0; c += 1; use(c);\n'
      .. 'let d = 0; d = f(() => d);\nlet d2 = 0; d2 = (() => d2)();\nconst e = 1; type E = typeof e;\n'
      .. 'import type { F } from "f"; type G = typeof F;')
    assert.is_false(var(sc, 'a').used)
    assert.is_false(var(sc, 'b').used)
    assert.is_true(var(sc, 'c').used)
    assert.is_true(var(sc, 'd').used)
    assert.is_false(var(sc, 'd2').used)
    assert.is_false(var(sc, 'e').used)
    assert.is_true(var(sc, 'F').used)
  end)

  it('declares infer names in the conditional type, outside its false branch', function()
    local sc = scope_of('type A<T> = T extends (x: infer U) => infer V ? [U, V] : V;\n'
      .. 'type B<T> = (T extends any ? (a: T) => 1 : 0) extends (a: infer T) => 1 ? T : never;')
    local u, v = var(sc, 'U'), var(sc, 'V')
    assert.equal('type_param', u.kind)
    assert.equal('type', sc.scopes[u.scope].kind)
    assert.equal('conditional_type', sc.scopes[u.scope].node:type())
    assert.same({ 't' }, refs(u))
    assert.same({ 't' }, refs(v))
    assert.same({ 'V' }, unresolved(sc))
    -- the check type is inside the conditional's scope too (typescript-eslint's model)
    local ts = by_name(sc).T
    assert.same({}, refs(ts[2]))
    assert.equal(3, #ts[3].refs)
  end)

  it('does not take a variance modifier for a type parameter name', function()
    local sc = scope_of('type C<out T> = T;')
    assert.is_nil(by_name(sc).out)
  end)

  it('does not declare the labels of named tuple members', function()
    local sc = scope_of('type P = [start: number, end?: number, ...rest: string[]];')
    local names = {}
    for _, v in ipairs(sc.variables) do names[#names + 1] = v.name end
    assert.same({ 'P' }, names)
  end)

  it('supports using declarations', function()
    local sc = scope_of('{ using res = open(); }')
    local r = var(sc, 'res')
    assert.equal('using', r.kind)
    assert.equal('block', sc.scopes[r.scope].kind)
  end)

  it('resolves an identifier node to its variable', function()
    local sc, tree = scope_of('let a = 1; { let a = 2; a; } a;')
    local inner, outer = by_name(sc).a[2], by_name(sc).a[1]
    local ids = {}
    local q = assert(ast.query('ts', '(expression_statement (identifier) @id)'))
    for _, m in ipairs(q:matches(tree)) do ids[#ids + 1] = m.captures.id end
    assert.equal(inner, sc:resolve(ids[1]))
    assert.equal(outer, sc:resolve(ids[2]))
    assert.is_nil(sc:resolve(tree:root()))
    local other = assert(ast.parse('a;'))
    assert.error_matches(function() sc:resolve(other:root()) end, 'node of another tree')
  end)

  it('gives the context of every function: parent, node under it, grandparent, typed ancestor', function()
    local sc, tree = scope_of('const f = (() => 1);\nfoo(function () {});\nclass K { m() {} }\n'
      .. 'function g(): () => void { return () => {}; }\nx = () => {};')
    local q = assert(ast.query('ts', '[(arrow_function) (function_expression) (method_definition)] @fn'))
    local got = {}
    for _, m in ipairs(q:matches(tree)) do
      local p, from, grand, typed = sc:context(m.captures.fn)
      got[#got + 1] = table.concat({ p:type(), from:type(), grand and grand:type() or '-', tostring(typed) }, ' ')
    end
    assert.same({
      'variable_declarator parenthesized_expression lexical_declaration false',
      'arguments function_expression call_expression false',
      'class_body method_definition class_declaration false',
      'return_statement arrow_function statement_block true',
      'assignment_expression arrow_function expression_statement false',
    }, got)
    assert.is_nil(sc:context(tree:root()))
    sc, tree = scope_of('const a = () => () => 1;\nfunction b() { if (x) return () => 1; return function () {}; }\n'
      .. 'function c() { if (x) return 1; return () => 2; }\nfunction d() { const f = () => { return 1; }; }')
    q = assert(ast.query('ts', '[(function_declaration) (arrow_function) (function_expression)] @fn'))
    got = {}
    for _, m in ipairs(q:matches(tree)) do
      local _, _, _, _, hof = sc:context(m.captures.fn)
      got[#got + 1] = m.captures.fn:type():sub(1, 3) .. '=' .. tostring(hof)
    end
    assert.same({ 'arr=true', 'arr=false', 'fun=true', 'arr=false', 'fun=false', 'fun=false', 'arr=false',
      'fun=false', 'arr=false' }, got)
  end)

  it('gives the types of a function\'s context without its nodes', function()
    local sc, tree = scope_of('const f = (() => 1);\nfoo(function () {});\nclass K { m() {} }\n'
      .. 'function g(): () => void { return () => {}; }\nx = () => () => 1;')
    local q = assert(ast.query('ts', '[(arrow_function) (function_expression) (method_definition)] @fn'))
    for _, m in ipairs(q:matches(tree)) do
      local p, _, grand, typed, hof = sc:context(m.captures.fn)
      local pt, gt, typed2, hof2 = sc:context_types(m.captures.fn)
      assert.equal(p:type(), pt)
      assert.equal(grand:type(), gt)
      assert.equal(typed, typed2)
      assert.equal(hof, hof2)
    end
    assert.equal(6, #q:matches(tree))
    assert.is_nil(sc:context_types(tree:root()))
    local other = assert(ast.parse('() => 1'))
    local fn = other:root():named_child(1):named_child(1)
    assert.equal('arrow_function', fn:type())
    assert.error_matches(function() sc:context_types(fn) end, 'node of another tree')
    local osc = other:scope()
    local pt, gt = osc:context_types(fn)
    assert.equal('expression_statement', pt)
    assert.equal('program', gt)
    assert.has_error(function() sc:context_types({}) end,
      "bad argument #1 to 'context_types' (aegis.ast.Node expected, got table)")
  end)

  it('analyses a file with syntax errors', function()
    local sc = scope_of('let a = ; function (b) { c }')
    assert.equal('let', var(sc, 'a').kind)
    assert.is_table(sc.unresolved)
    -- a source whose root is an ERROR node (found by fuzzing): still one module scope
    local tree
    sc, tree = scope_of('e,p(m>(y={g(l{m')
    assert.equal('ERROR', tree:root():type())
    assert.equal(1, #sc.scopes)
    assert.equal('module', sc.scopes[1].kind)
    assert.equal(tree:root(), sc.scopes[1].node)
  end)

  it('raises on a closed tree', function()
    local sc, tree = scope_of('let a = 1;')
    local v = sc.variables[1]
    tree:close()
    assert.error_matches(function() return v.id end, 'attempt to use a closed tree')
    assert.error_matches(function() return sc:scope(1) end, 'attempt to use a closed tree')
    assert.error_matches(function() return sc.unresolved end, 'attempt to use a closed tree')
    assert.error_matches(function() tree:scope() end, 'attempt to use a closed tree')
  end)

  it('handles 100k-deep nesting without recursion', function()
    local n = 100000
    local budget = { ms = 60000, bytes = 0 }
    local src = ('{'):rep(n) .. 'let a = b;' .. ('}'):rep(n)
    local tree = assert(ast.parse(src, { budget = budget }))
    local sc = assert(tree:scope())
    assert.equal(n + 1, #sc.scopes)
    assert.equal('a', sc.variables[1].name)
    assert.equal(n + 1, sc.variables[1].scope)
    assert.same({ 'b' }, unresolved(sc))
    src = 'x = ' .. ('('):rep(n) .. 'y' .. (')'):rep(n) .. ';' .. ('function f(a) {'):rep(n // 10) .. 'a;'
      .. ('}'):rep(n // 10)
    tree = assert(ast.parse(src, { budget = budget }))
    sc = assert(tree:scope())
    assert.same({ 'x', 'y' }, unresolved(sc))
    assert.equal(2 * (n // 10), #sc.variables)
    assert.same({ 'r' }, refs(sc.variables[#sc.variables]))
  end)
end)
