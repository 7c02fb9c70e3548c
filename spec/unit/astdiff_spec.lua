local ast = require('aegis.ast')
local json = require('aegis.json')
local h = require('spec.helpers')

local DIR = 'spec/fixtures/astdiff/'
local FIXTURES = { 'format', 'insert', 'update', 'move', 'rename', 'syntax', 'class', 'comments', 'component' }

local function fixture(name)
  local ext = name == 'component' and '.tsx' or '.ts'
  return assert(h.read(DIR .. name .. '.a' .. ext)), assert(h.read(DIR .. name .. '.b' .. ext)),
    ext == '.tsx' and 'tsx' or 'ts'
end

local function diff(a, b, opts)
  opts = opts or {}
  opts.verify = true
  local d = assert(ast.diff(a, b, opts))
  assert.is_true(d.verified, 'apply(A, diff(A, B)) ~= B')
  return d
end

local function kinds(d)
  local out = {}
  for _, a in ipairs(d.actions) do out[#out + 1] = a.action .. ' ' .. a.type end
  table.sort(out)
  return out
end

local function total(c) return c.insert + c.delete + c.update + c.move + c.rename end

describe('aegis.ast.diff', function()
  describe('normalisation', function()
    it('ignores formatting, comments, quotes, parentheses, semicolons and trailing commas', function()
      local a, b = fixture('format')
      local d = diff(a, b)
      assert.is_true(d.same)
      assert.same({}, d.actions)
      assert.same({ insert = 0, delete = 0, update = 0, move = 0, rename = 0 }, d.counts)
      assert.equal(d.src_nodes, d.dst_nodes)
      for _, pair in ipairs({
        { "f('a')", 'f("a")' },
        { "s = 'it\\'s'", 's = "it\'s"' },
        { 'x = (y)', 'x = y' },
        { 'x = ((f(y)))', 'x = f(y)' },
        { 'x = [1, 2,]', 'x = [1, 2]' },
        { 'let a = 1;', 'let a = 1' },
        { 'f(a, b,)', 'f(a, b)' },
        { 'if (a) {\n  b()\n}', 'if (a) { b(); }' },
      }) do
        local r = diff(pair[1], pair[2])
        assert.is_true(r.same, pair[1] .. ' vs ' .. pair[2])
      end
    end)

    it('keeps what changes meaning', function()
      for _, pair in ipairs({
        { 'x = (a + b) * c', 'x = a + b * c' },
        { 'let a = 1', 'const a = 1' },
        { 'x = a + b', 'x = a - b' },
        { 'x = `a  b`', 'x = `a b`' },
        { "x = 'a'", "x = 'b'" },
        { 'x = a?.b', 'x = a.b' },
      }) do
        assert.is_false(diff(pair[1], pair[2]).same, pair[1] .. ' vs ' .. pair[2])
      end
    end)

    it('counts comments only when asked', function()
      local a, b = fixture('comments')
      assert.is_true(diff(a, b).same)
      local d = diff(a, b, { comments = true })
      assert.is_false(d.same)
      assert.same({ 'update comment' }, kinds(d))
      assert.equal('// first version of the comment', d.actions[1].from)
      assert.equal('// second version of the comment', d.actions[1].to)
    end)
  end)

  describe('actions', function()
    it('inserts a whole subtree as one action, and deletes it the other way', function()
      local a, b = fixture('insert')
      local d = diff(a, b)
      assert.same({ 'insert export_statement' }, kinds(d))
      local ins = d.actions[1]
      assert.equal(5, ins.dst.line)
      assert.equal(7, ins.dst.end_line)
      assert.equal(ins.dst.size, ins.nodes)
      assert.is_true(ins.nodes > 10)
      assert.is_nil(ins.src)
      local r = diff(b, a)
      assert.same({ 'delete export_statement' }, kinds(r))
      assert.same({ 5, 7 }, { r.actions[1].src.line, r.actions[1].src.end_line })
      assert.equal(1, #d.summary)
      assert.same({ 'function', 'perimeter', 'added', 5 },
        { d.summary[1].kind, d.summary[1].name, d.summary[1].change, d.summary[1].dst.line })
      assert.is_nil(d.summary[1].src)
      assert.equal('removed', r.summary[1].change)
    end)

    it('updates a label', function()
      local a, b = fixture('update')
      local d = diff(a, b)
      assert.same({ 'update number' }, kinds(d))
      local u = d.actions[1]
      assert.same({ '3', '5', 1, 1 }, { u.from, u.to, u.src.line, u.dst.line })
      assert.same({ 16, 17 }, { d.actions[1].src.start_byte, d.actions[1].src.end_byte })
    end)

    it('moves a declaration as one action, with no token moves', function()
      local a, b = fixture('move')
      local d = diff(a, b)
      assert.same({ 'move function_declaration' }, kinds(d))
      assert.same({ { src = d.actions[1].src, dst = d.actions[1].dst } }, d.moves)
      assert.same({ 1, 4 }, { d.moves[1].src.line, d.moves[1].dst.line })
      assert.equal(a:find('function first', 1, true) - 1, d.moves[1].src.start_byte)
      assert.equal(b:find('function first', 1, true) - 1, d.moves[1].dst.start_byte)
      local mv = d.moves[1]
      assert.same({ { kind = 'function', name = 'first', change = 'moved', src = mv.src, dst = mv.dst } }, d.summary)
      -- inserting statements in the middle moves nothing
      local r = diff('a(); b(); c();', 'a(); x(); y(); b(); c();')
      assert.equal(0, r.counts.move)
      assert.equal(2, r.counts.insert)
      r = diff('f(1, 2, 3)', 'f(1, 3, 4)')
      assert.same({ insert = 1, delete = 1, update = 0, move = 0, rename = 0 }, r.counts)
    end)

    it('reports a renamed local with all its references as one rename', function()
      local a, b = fixture('rename')
      local d = diff(a, b)
      assert.same({ 'rename identifier' }, kinds(d))
      assert.same({ { from = 'sum', to = 'acc', n = 3 } }, d.renames)
      assert.same({ 'sum', 'acc', 3, 2, 2 },
        { d.actions[1].from, d.actions[1].to, d.actions[1].n, d.actions[1].src.line, d.actions[1].dst.line })
      assert.equal(1, d.counts.rename)
      assert.equal(0, d.counts.update)
      -- a name only partly renamed stays a list of updates
      local p = diff('function f(a) { return a + a; }', 'function f(b) { return b + a; }')
      assert.equal(0, p.counts.rename)
      assert.equal(2, p.counts.update)
      -- a renamed declaration, in the summary
      local s = diff('export function load() {}\nload();', 'export function fetch() {}\nfetch();')
      assert.same({ { from = 'load', to = 'fetch', n = 2 } }, s.renames)
      assert.same({ 'function', 'load', 'renamed', 'fetch' },
        { s.summary[1].kind, s.summary[1].name, s.summary[1].change, s.summary[1].to })
    end)

    it('summarises declarations: signature, body, moved, renamed, exported, added', function()
      local a, b = fixture('class')
      local d = diff(a, b)
      local got = {}
      for _, s in ipairs(d.summary) do got[#got + 1] = s.kind .. ' ' .. s.name .. ' ' .. s.change end
      assert.same({
        'class Queue body', 'method push signature', 'method push body', 'method size moved',
        'interface Named unexported', 'type Id renamed', 'type Id moved', 'enum Mode added',
      }, got)
    end)

    it('diffs TSX', function()
      local a, b, lang = fixture('component')
      local d = diff(a, b, { lang = lang })
      assert.same({ 'insert jsx_element', 'update jsx_text' }, kinds(d))
      local upd = d.actions[1].action == 'update' and d.actions[1] or d.actions[2]
      assert.same({ 'Welcome back.', 'Welcome back!' }, { upd.from, upd.to })
      assert.same({ { kind = 'function', name = 'Greeting', change = 'body',
                      src = d.summary[1].src, dst = d.summary[1].dst } }, d.summary)
      assert.is_true(diff(a, a, { path = 'x.tsx' }).same)
    end)

    it('gives files with syntax errors a structured diff', function()
      local a, b = fixture('syntax')
      local d = diff(a, b)
      assert.same({ 'insert lexical_declaration', 'update number' }, kinds(d))
      assert.is_true(d.src_nodes > 20)
      local e = diff('function f( { return 1 }', 'function f( { return 2 }')
      assert.same({ 'update number' }, kinds(e))
      local n = diff('let x = ;', 'let x = 1;')
      assert.is_true(total(n.counts) >= 1)
      assert.is_true(total(n.counts) <= 3)
    end)
  end)

  describe('soundness', function()
    it('applies to B and inverts on every fixture pair, both ways', function()
      for _, name in ipairs(FIXTURES) do
        local a, b, lang = fixture(name)
        for _, comments in ipairs({ false, true }) do
          local d = diff(a, b, { lang = lang, comments = comments })
          local r = diff(b, a, { lang = lang, comments = comments })
          local c, rc = d.counts, r.counts
          assert.same({ c.insert, c.delete, c.update, c.move, c.rename },
            { rc.delete, rc.insert, rc.update, rc.move, rc.rename }, name)
          assert.equal(d.same, r.same)
          assert.same({ d.src_nodes, d.dst_nodes }, { r.dst_nodes, r.src_nodes })
        end
      end
    end)

    it('holds on pairs made from the fixtures by the synthetic transformations', function()
      local synth = dofile('bench/astdiff/synth.lua')
      for _, name in ipairs(FIXTURES) do
        local a, _, lang = fixture(name)
        for seed = 1, 3 do
          for _, kind in ipairs({ 'format', 'move', 'rename' }) do
            local b = synth[kind](a, seed, { lang = lang })
            if b then diff(a, b, { lang = lang }) end
          end
        end
      end
    end)
  end)

  describe('synthetic truth (bench/astdiff/synth.lua, 120 pairs each, checked both ways)', function()
    local synth = dofile('bench/astdiff/synth.lua')
    local function rate(kind)
      local pass, n, misses = 0, 0, {}
      for seed = 1, 120 do
        local a = synth.program(seed)
        local b, truth = synth[kind](a, seed + 1000)
        assert.is_string(b, 'no ' .. kind .. ' variant for seed ' .. seed)
        n = n + 1
        local d = diff(a, b)
        local r = diff(b, a)
        local c, rc = d.counts, r.counts
        assert.same({ c.insert, c.delete, c.update, c.move, c.rename },
          { rc.delete, rc.insert, rc.update, rc.move, rc.rename }, kind .. ' seed ' .. seed)
        local ok, why = synth.check(kind, d, truth)
        if ok then pass = pass + 1 else misses[#misses + 1] = seed .. ': ' .. why end
      end
      return pass, n, misses
    end

    it('formatting-only pairs: same with zero actions on all', function()
      local pass, n, misses = rate('format')
      assert.equal(120, n)
      assert.equal(120, pass, table.concat(misses, '\n'))
    end)

    it('one moved declaration: exactly that move on at least 117 of 120', function()
      local pass, _, misses = rate('move')
      assert.is_true(pass >= 117, table.concat(misses, '\n'))
    end)

    it('one local rename: reported as a rename on at least 110 of 120', function()
      local pass, _, misses = rate('rename')
      assert.is_true(pass >= 110, table.concat(misses, '\n'))
    end)
  end)

  describe('JSON', function()
    it('has the documented shape with byte offsets', function()
      local to_json = require('aegis.cli.diff').to_json
      local a, b = fixture('move')
      local d = diff(a, b)
      local j = json.decode(json.encode(to_json(d)))
      local keys = {}
      for k in pairs(j) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same({ 'actions', 'counts', 'dst_nodes', 'moves', 'renames', 'same', 'src_nodes' }, keys)
      assert.same({ delete = 0, insert = 0, move = 1, rename = 0, update = 0 }, j.counts)
      assert.same({ { src = { 0, 38 }, dst = { 119, 157 } } }, j.moves)
      assert.same({}, j.renames)
      assert.equal('[]', json.encode(j.renames))
      assert.same({ action = 'move', type = 'function_declaration', src = { 0, 38 }, dst = { 119, 157 }, n = 11 },
        j.actions[1])
      assert.is_false(j.same)
      local ra, rb = fixture('rename')
      local r = diff(ra, rb)
      local jr = json.decode(json.encode(to_json(r)))
      assert.same({ { from = 'sum', to = 'acc', n = 3 } }, jr.renames)
      assert.equal('rename', jr.actions[1].action)
      local s = to_json(diff('a', 'a'))
      assert.equal('{"actions":[],"counts":{"delete":0,"insert":0,"move":0,"rename":0,"update":0},'
        .. '"dst_nodes":3,"moves":[],"renames":[],"same":true,"src_nodes":3}', json.encode(s))
    end)
  end)

  describe('budget', function()
    it('holds each parse to the memory budget, even inside one step of error recovery', function()
      -- `1<a><a>...` in TSX: tree-sitter's recovery at the end of the
      -- input grows by gigabytes in one step (ast_hostile_spec); the
      -- diff's parser is stopped like ast.parse's (ag_tsmem_parse)
      local hostile = '1' .. ('<a>'):rep(3000)
      local d, err, code = ast.diff('let a = 1;', hostile, { lang = 'tsx', budget = { memory = 8 * 1024 * 1024 } })
      assert.is_nil(d)
      assert.equal("ast: diff 'b': memory budget exceeded (8 MiB)", err)
      assert.equal('memory', code)
      d, err, code = ast.diff(hostile, 'let a = 1;', { lang = 'tsx', budget = { memory = 1024 * 1024 } })
      assert.is_nil(d)
      assert.equal("ast: diff 'a': memory budget exceeded (1 MiB)", err)
      assert.equal('memory', code)
      -- and diffs go on afterwards
      d = assert(ast.diff('let a = 1;', 'let a = 2;'))
      assert.equal(1, d.counts.update)
      assert.has_error(function() ast.diff('', '', { budget = { memory = -1 } }) end,
        "bad argument #3 to 'diff' (budget.memory must be a non-negative integer)")
    end)
  end)

  describe('arguments', function()
    it('raise on misuse', function()
      assert.has_error(function() ast.diff(1, '') end, "bad argument #1 to 'diff' (string expected, got number)")
      assert.has_error(function() ast.diff('', nil) end, "bad argument #2 to 'diff' (string expected, got nil)")
      assert.has_error(function() ast.diff('', '', { lang = 'c' }) end,
        "bad argument #3 to 'diff' (lang must be 'ts' or 'tsx')")
      assert.has_error(function() ast.diff('', '', 'ts') end, "bad argument #3 to 'diff' (table expected, got string)")
    end)

    it('diff empty sources', function()
      assert.is_true(diff('', '').same)
      local d = diff('', 'x')
      assert.equal(1, d.counts.insert)
      assert.equal(1, d.src_nodes)  -- the empty program
    end)
  end)
end)
