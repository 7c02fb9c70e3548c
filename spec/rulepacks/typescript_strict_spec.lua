-- The typescript-strict rulepack: each rule with snippets that pass and snippets that fail, written
-- after the documented examples of the typescript-eslint 8 / ESLint 9 rules of the same names (their
-- default options unless a case says otherwise).

local standards = require('aegis.standards')
local h = require('spec.helpers')

local function run(rule, src, opts)
  opts = opts or {}
  local config
  if opts.options then config = { rules = { ['typescript-strict/' .. rule] = { options = opts.options } } } end
  local findings, problems = standards.check_source(src, {
    path = opts.path or 'snippet.ts', rules = { 'typescript-strict/' .. rule }, config = config,
  })
  for _, p in ipairs(problems or {}) do
    if p.kind ~= 'syntax' then error('problem: ' .. tostring(p.message)) end
  end
  return findings
end

-- valid: sources (or {src, path =, options =}) without findings; invalid: {src, at = {{line, col}, ...},
-- message = plain substring of the first finding's message, path =, options =}.
local function cases(rule, valid, invalid)
  describe(rule, function()
    for _, c in ipairs(valid) do
      if type(c) == 'string' then c = { c } end
      it('passes ' .. c[1]:gsub('\n', ' '), function()
        local fs = run(rule, c[1], c)
        assert.equal(0, #fs, fs[1] and (fs[1].line .. ':' .. fs[1].col .. ' ' .. fs[1].message))
      end)
    end
    for _, c in ipairs(invalid) do
      it('reports ' .. c[1]:gsub('\n', ' '), function()
        local fs = run(rule, c[1], c)
        local got = {}
        for _, f in ipairs(fs) do got[#got + 1] = { f.line, f.col } end
        assert.same(c.at, got)
        assert.equal('typescript-strict/' .. rule, fs[1].rule)
        assert.equal('error', fs[1].severity)
        if c.message then assert.matches(c.message, fs[1].message, 1, true) end
      end)
    end
  end)
end

describe('rulepack typescript-strict', function()
  it('has the eight rules, mapped to their ESLint names', function()
    local e = standards.engine({ rules = { 'typescript-strict' } })
    local names = {}
    for _, r in ipairs(e:rule_list()) do names[#names + 1] = r.id .. ' ' .. tostring(r.eslint) end
    table.sort(names)
    assert.same({
      'typescript-strict/ban-ts-comment @typescript-eslint/ban-ts-comment',
      'typescript-strict/explicit-function-return-type @typescript-eslint/explicit-function-return-type',
      'typescript-strict/no-explicit-any @typescript-eslint/no-explicit-any',
      'typescript-strict/no-non-null-assertion @typescript-eslint/no-non-null-assertion',
      'typescript-strict/no-unused-vars @typescript-eslint/no-unused-vars',
      'typescript-strict/no-var no-var',
      'typescript-strict/prefer-const prefer-const',
      'typescript-strict/tsconfig-strict nil',
    }, names)
  end)

  cases('no-explicit-any', {
    'const age: number = 17;',
    'function greet(): string {}',
    'function greet(param: Array<string>): string {}',
    'const x: unknown = 1; type Any = { any: 1 };',
    { 'function f(...args: any[]): void {}', options = { ignoreRestArgs = true } },
    { 'function f(...args: Array<any>): void {}', options = { ignoreRestArgs = true } },
  }, {
    { 'const age: any = "seventeen";', at = { { 1, 12 } }, message = 'Unexpected any. Specify a different type.' },
    { 'function greet(): any {}', at = { { 1, 19 } } },
    { 'function greet(param: Array<any>): string {}', at = { { 1, 29 } } },
    { 'const x = y as any;\nlet z: Record<string, any[]> = {};', at = { { 1, 16 }, { 2, 23 } } },
    { 'function f(...args: any[]): void {}', at = { { 1, 21 } } },
  })

  cases('ban-ts-comment', {
    '// just a comment containing @ts-expect-error somewhere\nconst a = 1;',
    '// @ts-expect-error: Unreachable code error\nconsole.log("hello");',
    '/* @ts-expect-error because the types are wrong */ x();',
    '// @ts-check\nconst a = 1;',
    '/*\n * @ts-expect-error\n */\nx();',
    { '// @ts-ignore: legacy\nx();', options = { ['ts-ignore'] = false } },
    { '// @ts-expect-error\nx();', options = { ['ts-expect-error'] = false } },
    { '// @ts-expect-error TS1234 because\nx();',
      options = { ['ts-expect-error'] = { descriptionFormat = '^ TS\\d+ ' } } },
  }, {
    { '// @ts-ignore\nconsole.log("hello");', at = { { 1, 1 } },
      message = 'Use "@ts-expect-error" instead of "@ts-ignore"' },
    { 'if (false) {\n  /* @ts-ignore: Unreachable code error */\n  console.log("hello");\n}', at = { { 2, 3 } } },
    { '// @ts-nocheck\nconst a = 1;', at = { { 1, 1 } }, message = 'Do not use "@ts-nocheck"' },
    { '/// @ts-nocheck', at = { { 1, 1 } } },
    { '// @ts-expect-error\nconsole.log("hello");', at = { { 1, 1 } },
      message = 'Include a description after the "@ts-expect-error" directive' },
    { '// @ts-expect-error: \nx();', at = { { 1, 1 } } },
    { '/*\n * @ts-expect-error */\nx();', at = { { 1, 1 } } },
    { 'x(); /* @ts-expect-error ok */', at = { { 1, 6 } } },
    { '// @ts-expect-error short\nx();', at = { { 1, 1 } }, options = { minimumDescriptionLength = 10 } },
    { '// @ts-expect-error because\nx();', at = { { 1, 1 } },
      options = { ['ts-expect-error'] = { descriptionFormat = '^: TS\\d+ because .+$' } },
      message = 'must match the ^: TS\\d+ because .+$ format' },
  })

  cases('no-non-null-assertion', {
    'const includesBaz = foo.bar?.includes("baz") ?? false;',
    'let x = a as string; let y = !a;',
  }, {
    { 'const includesBaz = foo.bar!.includes("baz");', at = { { 1, 21 } }, message = 'Forbidden non-null assertion.' },
    { 'x!.y!.z; a![0];', at = { { 1, 1 }, { 1, 1 }, { 1, 10 } } },
    -- where ESLint's parser binds `!` tighter than tree-sitter's grammar: the finding starts at the operand
    { 'if (a > stepSize!) {}\nconst i = +e.parent!.get("k")!;\nconst s = (<T>schema!.props!).x;',
      at = { { 1, 9 }, { 2, 12 }, { 2, 12 }, { 3, 15 }, { 3, 15 } } },
  })

  cases('no-var', {
    'let x = 1; const y = 2;',
    'for (let i = 0; i < 3; i++) {}',
  }, {
    { 'var x = "y";\nvar CONFIG = {};', at = { { 1, 1 }, { 2, 1 } },
      message = 'Unexpected var, use let or const instead.' },
    { 'for (var i = 0; i < 3; i++) {}\nfor (var k in o) {}', at = { { 1, 6 }, { 2, 6 } } },
    { 'declare global { var __x: number; }', at = { { 1, 18 } } },
    { 'export var a = 1;\ndeclare var b: number;', at = { { 1, 8 }, { 2, 1 } } },
  })

  cases('explicit-function-return-type', {
    'function test(): void { return; }',
    'var fn = function (): number { return 1; };',
    'var arrowFn = (): string => "test";',
    'class Test { constructor() {} get prop(): number { return 1; } set prop(v) {} method(): void { return; }\n'
      .. '  arrow = (): string => "arrow"; }',
    -- allowTypedFunctionExpressions
    'type FuncType = () => string;\nlet arrowFn: FuncType = () => "test";\n'
      .. 'let funcExpr: FuncType = function () { return "test"; };',
    'let asTyped = (() => "") as () => string;',
    'interface ObjectType { foo(): number; }\nlet objectProp: ObjectType = { foo: () => 1 };\n'
      .. 'let objectPropAs = { foo: () => 1 } as ObjectType;',
    'declare function functionWithArg(arg: () => number);\nfunctionWithArg(() => 1);',
    'declare function functionWithObjectArg(arg: { method: () => number });\n'
      .. 'functionWithObjectArg({ method() { return 1; } });',
    { 'const Comp: FC = () => { return <button onClick={() => {}} />; };', path = 'a.tsx' },
    'new Promise((resolve) => resolve(1));',
    'class C { private method: () => void = () => {}; }',
    'function f(cb: () => void = () => {}): void {}',
    -- allowHigherOrderFunctions
    'var arrowFn = () => (): void => {};',
    'function fn() { return function (): void {}; }',
    'function fn() { if (x) { return (): number => 1; } return (): number => 2; }',
    -- allowDirectConstAssertionInArrowFunctions
    'const func = (value: number) => ({ type: "X", value }) as const;',
    'const func = (value: number) => ({ type: "X", value }) as const satisfies R;',
    'const func = () => ((({ a: 1 }) as const) satisfies R);',
    'const func = () => <const>{ a: 1 };',
    -- setters, with modifiers or a decorator before `set`
    'class S { public static set a(v) {} @dec() set b(v) {} set /* c */ c(v) {} }',
    -- ancestors with return types
    'function outer(): () => number { return () => 1; }',
    'const x: Foo = { a: () => 1 };',
    'declare function foo(): void;\nabstract class A { abstract m(): void; }',
    { 'function test() { return; }', options = { allowedNames = { 'test' } } },
    { 'const x = () => void y();', options = { allowConciseArrowFunctionExpressionsStartingWithVoid = true } },
    { 'foo(function () {});\nconst o = { m() {} };', options = { allowExpressions = true } },
    { '(function () {})();', options = { allowIIFEs = true } },
  }, {
    { 'function test() { return; }', at = { { 1, 1 } }, message = 'Missing return type on function.' },
    { 'var fn = function () { return 1; };', at = { { 1, 10 } } },
    { 'var arrowFn = () => "test";', at = { { 1, 18 } } },
    { 'class Test {\n  method() { return; }\n  static async m2() {}\n  arrow = () => "arrow";\n}',
      at = { { 2, 3 }, { 3, 3 }, { 4, 3 } } },
    { 'const o = { m() {}, k: () => 1 };', at = { { 1, 13 }, { 1, 21 } } },
    { 'export default () => {};\nexport default function () {}', at = { { 1, 19 }, { 2, 16 } } },
    { 'const func = (value: number) => ({ type: "X", value }) as any;', at = { { 1, 30 } } },
    { 'function fn() { if (x) { return 1; } return () => 2; }', at = { { 1, 1 }, { 1, 48 } } },
    { '(function () {})();', at = { { 1, 2 } } },
    { 'foo(function () {});', at = { { 1, 5 } }, options = { allowTypedFunctionExpressions = false } },
    -- without it, the query keeps the functions under arguments and JSX expressions (#not-has-parent?)
    { 'new Promise((resolve) => resolve(1));', at = { { 1, 23 } },
      options = { allowTypedFunctionExpressions = false } },
    { 'const a = <b onClick={() => 1} />;', path = 'a.tsx', at = { { 1, 26 } },
      options = { allowTypedFunctionExpressions = false } },
    { 'x = () => 1;', at = { { 1, 8 } } },
    { 'function* gen() { yield 1; }', at = { { 1, 1 } } },
    -- "set" in the text before the name, not the keyword: `setter()`, `@set()`, `/* set */`
    { 'class S {\n  setter() {}\n  @set() m() {}\n  /* set */ static n() {}\n  public set2() {}\n}',
      at = { { 2, 3 }, { 3, 10 }, { 4, 13 }, { 5, 3 } } },
    { 'const func = () => (({ a: 1 }) satisfies R);', at = { { 1, 17 } } },
  })

  cases('prefer-const', {
    'const a = 0;',
    'let a; a = 0; a = 1;',
    'let a; if (true) { a = 0; } foo(a);',
    'for (let i = 0, end = 10; i < end; ++i) {}',
    'for (const a of [1, 2, 3]) {}',
    'let a = 1; a++;',
    'let a = 1; a += 2;',
    'let predicate; [object.type, predicate] = foo();',
    'let x; ({ x, y: obj.y } = f());',
    'let a; const b = {}; ({ a, c: b.c } = obj);',
    'function f(p) { let a; [a, p] = [1, 2]; }',
    'let a = 0; function g() { a = 1; }',
    { 'let x; console.log(x); x = 0;', options = { ignoreReadBeforeAssign = true } },
    { 'let {a, b} = obj; b = 0;', options = { destructuring = 'all' } },
    'declare let z: number;',
    -- declared twice (a syntax error for ESLint's parser): two writes
    'let a = 1;\nlet a = 2;\nfoo(a);',
  }, {
    { 'let a = 3;\nconsole.log(a);', at = { { 1, 5 } }, message = "'a' is never reassigned. Use 'const' instead." },
    { 'let a;\na = 0;\nconsole.log(a);', at = { { 2, 1 } } },
    { 'for (let i in [1, 2, 3]) { console.log(i); }', at = { { 1, 10 } } },
    { 'for (let a of [1, 2, 3]) { console.log(a); }', at = { { 1, 10 } } },
    { 'let {a = 0, b} = obj;\nb = 0;\nfoo(a, b);', at = { { 1, 6 } } },
    { 'let x;\nconsole.log(x);\nx = 0;', at = { { 1, 5 } } },
    -- read before its initializer (a hoisted function), a destructuring initializer
    { 'function g() { return a; }\nlet a = 1;\ng();', at = { { 2, 5 } } },
    { 'let { a, b: [c] } = obj;\nfoo(a, c);', at = { { 1, 7 }, { 1, 14 } } },
    { 'let a, b;\n({ a, b } = obj);', at = { { 2, 4 }, { 2, 7 } } },
    { 'let a = 1, b = 2;\nb = 3;', at = { { 1, 5 } } },
    { 'function f() {\n  let x = 1;\n  return x;\n}', at = { { 2, 7 } } },
    { 'let x;\nx += 1;', at = { { 2, 1 } } },
    { 'let timer;\nfunction initialize() { if (foo()) { clearInterval(timer); } }\n'
      .. 'timer = setInterval(initialize, 100);',
      at = { { 1, 5 } } },
  })


  cases('no-unused-vars', {
    'export const a = 1;',
    'const x = 10; alert(x);',
    'function f(a: number) { return a; } f(1);',
    'export function g(a, b) { return b; }',
    'export function g(_a, b) { return b; }',
    'export function g(a, _b) { return a; }',
    'try { x(); } catch (_e) {}',
    'const _unused = 1;',
    { 'import React from "react";\nexport const el = <div />;', path = 'a.tsx' },
    'import type { T } from "t";\nexport let v: T;',
    'import { A } from "a";\nexport type B = typeof A;',
    'interface Foo { a: number }\nexport const f: Foo = { a: 1 };',
    'export class A { constructor(private x: number, public readonly y = 2) {} }',
    'export class B { set v(value) {} }',
    'export type F = (a: number, b: string) => void;\nexport interface I { m(x: number): void; new (y: string): I; }',
    'export function h(this: Window) {}',
    'declare module "m" { const internal: number; function f(x: number): void; }',
    'declare global { interface Window { z: 1 } var g1: number; }',
    'export enum E { A = 1, B = A }',
    'export namespace N { const inner = 1; export const outer = inner; }',
    'let counter = 0;\nexport function inc() { counter += 1; return counter; }',
    'export function first(obj) { for (const k in obj) { return; } }',
    'export function firstKey(obj) { let key; for (key in obj) return; }',
    'function foo() {}\nexport { foo };',
    'const bar = 1;\nexport default bar;',
    'const baz = 1;\nexport = baz;',
    'interface Merged { a: 1 }\nexport class Merged {}',
    'export function outer() { function inner() {} return inner; }',
    { 'declare const x: number;\ninterface I {}', path = 'types.d.ts' },
    'const { a, ...rest } = obj;\nexport { a, rest };',
    'export const fn = (x: number, y: number): x is 1 => y > 0;\nexport type Pair = [left: number, right?: string];',
    'export function f<T>(x: T): T { return x; }',
    'let used = 0;\nused = used + 1;\nexport { used };',
    { 'function f(a, b) { return b; }\nf();', options = { args = 'after-used' } },
    { 'const { a, ...rest } = obj;\nexport { rest };', options = { ignoreRestSiblings = true } },
    { 'const [_a, b] = pair;\nexport { b };', options = { destructuredArrayIgnorePattern = '^_' } },
    { 'class Registered { static { register(this); } }', options = { ignoreClassWithStaticInitBlock = true } },
    { '{ using res = open(); }', options = { ignoreUsingDeclarations = true } },
  }, {
    { 'const x = 10;', at = { { 1, 7 } },
      message = "'x' is assigned a value but never used. Allowed unused vars must match /^_/u." },
    { 'let y;', at = { { 1, 5 } }, message = "'y' is defined but never used. Allowed unused vars must match /^_/u." },
    { 'let z = 1;\nz = 2;', at = { { 2, 1 } }, message = "'z' is assigned a value but never used" },
    { 'let a = 1;\na = a + 1;', at = { { 2, 1 } } },
    { 'let b = 1;\nb++;\nb += 1;', at = { { 3, 1 } } },
    { 'function foo() { foo(); }', at = { { 1, 10 } }, message = "'foo' is defined but never used" },
    { 'const g = () => { g(); };', at = { { 1, 7 } } },
    { 'export function f(a, b) { return a; }', at = { { 1, 22 } },
      message = "'b' is defined but never used. Allowed unused args must match /^_/u." },
    { 'export function f(a, b) {}', at = { { 1, 19 }, { 1, 22 } } },
    { 'export function f(a = 1, b) { return b; }', at = { { 1, 19 } }, message = "'a' is assigned a value" },
    { 'export function f(...rest) {}', at = { { 1, 22 } } },
    { 'export function f({ a, b }) { return b; }', at = { { 1, 21 } } },
    { 'try { x(); } catch (e) {}', at = { { 1, 21 } },
      message = "'e' is defined but never used. Allowed unused caught errors must match /^_/u." },
    { 'import { A, B } from "a";\nexport const x = A;', at = { { 1, 13 } } },
    { 'import * as ns from "ns";\nimport def from "d";\nimport e = require("e");',
      at = { { 1, 13 }, { 2, 8 }, { 3, 8 } } },
    { 'interface Foo { next: Foo }', at = { { 1, 11 } } },
    { 'type T = T[];', at = { { 1, 6 } } },
    { 'enum E { A, B = A }', at = { { 1, 6 } } },
    { 'namespace N { export const a = N; }', at = { { 1, 11 } } },
    { 'class C { static make() { return new C(); } }', at = { { 1, 7 } } },
    { 'export function f<T, U>(x: T): T { return x; }', at = { { 1, 22 } } },
    { 'const v = 1;\nexport type V = typeof v;', at = { { 1, 7 } },
      message = "'v' is assigned a value but only used as a type" },
    { 'declare const y: number;', at = { { 1, 15 } } },
    { 'export function isOne(x: unknown): x is 1 { return true; }', at = { { 1, 23 } },
      message = "'x' is defined but only used as a type" },
    { 'import x from "x";\ninterface I {}', path = 'types.d.ts', at = { { 1, 8 } } },
    { 'function outer() { let x = 1; function inner() { x = 2; } inner(); }\nouter();', at = { { 1, 24 } } },
    { 'const x = 1;', at = { { 1, 7 } }, options = { vars = 'all' } },
    { 'const x = 1;', at = { { 1, 7 } }, options = { vars = 'local' } },   -- a module scope is not global
    { 'const { a, ...rest } = obj;\nexport { rest };', at = { { 1, 9 } } },
    { 'const [_a, b] = pair;\nexport { b };', at = { { 1, 8 } }, options = { varsIgnorePattern = false } },
    { 'class Registered { static { register(this); } }', at = { { 1, 7 } } },
    { '{ using res = open(); }', at = { { 1, 9 } } },
    { 'for (const item of items) {}', at = { { 1, 12 } } },
    { 'export const a = <Foo />;\nconst Bar = 1;', path = 'a.tsx', at = { { 2, 7 } } },
    { 'const _x = 1;', at = { { 1, 7 } }, options = { varsIgnorePattern = false },
      message = "'_x' is assigned a value but never used." },
    { 'const ignoredX = 1, y = 2;', at = { { 1, 21 } }, options = { varsIgnorePattern = '^ignored[A-Z]|^_' } },
  })

  it('no-unused-vars refuses an ignore pattern it cannot translate, naming the option', function()
    local config = { rules = { ['typescript-strict/no-unused-vars'] = { options = { varsIgnorePattern = '^(a|b)' } } } }
    local fs, problems = standards.check_source('const a = 1;', { path = 'a.ts',
      rules = { 'typescript-strict/no-unused-vars' }, config = config })
    assert.equal(0, #fs)
    assert.equal(1, #problems)
    assert.equal('typescript-strict/no-unused-vars', problems[1].rule)
    assert.matches("option varsIgnorePattern: unsupported regular expression", problems[1].message, 1, true)
  end)

  describe('tsconfig-strict', function()
    local dir
    before_each(function() dir = h.tmpdir() end)

    local function write(p, text)
      local f = assert(io.open(p, 'w'))
      f:write(text)
      f:close()
    end

    local function check(tsconfig)
      if tsconfig then write(dir .. '/tsconfig.json', tsconfig) end
      os.execute('mkdir -p ' .. dir .. '/.git ' .. dir .. '/src')
      return run('tsconfig-strict', 'export const a = 1;', { path = dir .. '/src/a.ts' })
    end

    it('passes a strict tsconfig.json (JSONC)', function()
      assert.equal(0, #check('{\n  // strict\n  "compilerOptions": { "strict": true, },\n}\n'))
    end)
    it('passes when there is no tsconfig.json', function()
      assert.equal(0, #check(nil))
    end)
    it('passes a tsconfig that extends another without setting strict', function()
      assert.equal(0, #check('{ "extends": "./base.json" }'))
    end)
    it('reports a tsconfig.json without strict, at the tsconfig', function()
      local fs = check('{ "compilerOptions": { "target": "es2022" } }')
      assert.equal(1, #fs)
      assert.equal(dir .. '/tsconfig.json', fs[1].path)
      assert.equal(1, fs[1].line)
      assert.matches('does not set "compilerOptions.strict": true', fs[1].message, 1, true)
    end)
    it('reports strict: false', function()
      local fs = check('{ "compilerOptions": { "strict": false } }')
      assert.equal(1, #fs)
      assert.matches('sets "compilerOptions.strict" to false', fs[1].message, 1, true)
    end)
  end)
end)
