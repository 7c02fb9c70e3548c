local h = require('spec.helpers')
local json = require('aegis.json')

local DIR = os.getenv('PWD') .. '/spec/fixtures/astdiff/'

local function f(name) return DIR .. name end

describe('aegis-run diff', function()
  it('exits 0 and says so when the files mean the same', function()
    local r = h.run({ 'diff', f('format.a.ts'), f('format.b.ts') })
    assert.equal(0, r.code)
    assert.equal(f('format.a.ts') .. ' and ' .. f('format.b.ts') .. ' are the same (no semantic change)\n', r.stdout)
    assert.equal('', r.stderr)
  end)

  it('prints the summary first, then the changes with line numbers, and exits 1', function()
    local r = h.run({ 'diff', 'class.a.ts', 'class.b.ts' }, { cwd = DIR })
    assert.equal(1, r.code)
    local lines = {}
    for l in r.stdout:gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert.equal('class.a.ts -> class.b.ts: 8 insert, 0 delete, 0 update, 4 move, 1 rename', lines[1])
    assert.equal('declarations:', lines[2])
    assert.equal('  class Queue body changed  (1-15 -> 1-16)', lines[3])
    assert.truthy(r.stdout:find('  type Id renamed to Key  (18 -> 19)\n', 1, true))
    assert.truthy(r.stdout:find('  enum Mode added  (+20)\n', 1, true))
    assert.truthy(r.stdout:find('\nchanges:\n  move   method_definition 12-14 -> 4-6 [15 nodes]\n', 1, true))
    assert.truthy(r.stdout:find('  rename type_identifier 18 -> 19  Id -> Key (1 occurrences)\n', 1, true))
    assert.falsy(r.stdout:find('\27[', 1, true))   -- not a terminal: no colour
  end)

  it('shows updates and renames with their labels', function()
    local r = h.run({ 'diff', 'rename.a.ts', 'rename.b.ts' }, { cwd = DIR })
    assert.equal(1, r.code)
    assert.truthy(r.stdout:find('  rename identifier 2 -> 2  sum -> acc (3 occurrences)\n', 1, true))
    r = h.run({ 'diff', 'update.a.ts', 'update.b.ts' }, { cwd = DIR })
    assert.truthy(r.stdout:find('  update number 1 -> 1  3 -> 5\n', 1, true))
  end)

  it('prints one JSON object with byte offsets', function()
    local r = h.run({ 'diff', '--format', 'json', f('move.a.ts'), f('move.b.ts') })
    assert.equal(1, r.code)
    assert.equal(1, select(2, r.stdout:gsub('\n', '')))
    local j = assert(json.decode(r.stdout))
    assert.same({
      same = false,
      counts = { insert = 0, delete = 0, update = 0, move = 1, rename = 0 },
      moves = { { src = { 0, 38 }, dst = { 119, 157 } } },
      renames = {},
      actions = { { action = 'move', type = 'function_declaration', src = { 0, 38 }, dst = { 119, 157 }, n = 11 } },
      src_nodes = j.src_nodes, dst_nodes = j.dst_nodes,
    }, j)
    assert.is_true(j.src_nodes > 30)
    r = h.run({ 'diff', '--format=json', f('format.a.ts'), f('format.b.ts') })
    assert.equal(0, r.code)
    assert.is_true(json.decode(r.stdout).same)
  end)

  it('takes --lang and --comments', function()
    -- JSX in a .ts file only parses as TSX
    local dir = h.tmpdir()
    h.write(dir .. '/a.ts', 'const e = <b>hi</b>;\n')
    h.write(dir .. '/b.ts', 'const e = <b>ho</b>;\n')
    local r = h.run({ 'diff', '--lang', 'tsx', '--format', 'json', 'a.ts', 'b.ts' }, { cwd = dir })
    assert.equal(1, r.code)
    local j = json.decode(r.stdout)
    assert.same({ 'update', 'hi', 'ho' }, { j.actions[1].action, j.actions[1].from, j.actions[1].to })
    r = h.run({ 'diff', f('comments.a.ts'), f('comments.b.ts') })
    assert.equal(0, r.code)
    r = h.run({ 'diff', '--comments', f('comments.a.ts'), f('comments.b.ts') })
    assert.equal(1, r.code)
    assert.truthy(r.stdout:find('update comment', 1, true))
  end)

  it('colours on a terminal, unless NO_COLOR is set', function()
    local cmd = h.shell_quote(h.bin) .. ' diff ' .. h.shell_quote(f('move.a.ts')) .. ' '
      .. h.shell_quote(f('move.b.ts'))
    local r = h.run({ '-qec', cmd, '/dev/null' }, { bin = '/usr/bin/script', env = { NO_COLOR = false } })
    assert.equal(1, r.code)
    assert.truthy(r.stdout:find('\27[36mmove  \27[0m', 1, true))
    r = h.run({ '-qec', cmd, '/dev/null' }, { bin = '/usr/bin/script', env = { NO_COLOR = '1' } })
    assert.equal(1, r.code)
    assert.truthy(r.stdout:find('move   function_declaration', 1, true))
    assert.falsy(r.stdout:find('\27[', 1, true))
  end)

  it('exits 2 on usage errors and unreadable files', function()
    local cases = {
      { { 'diff', f('move.a.ts') }, 'aegis-run: diff: expected two files A and B (see aegis-run diff --help)\n' },
      { { 'diff', '--format', 'xml', 'a', 'b' }, "aegis-run: diff: unknown format 'xml' (expected text or json)\n" },
      { { 'diff', '--lang', 'js', 'a', 'b' }, "aegis-run: diff: unknown language 'js' (expected ts or tsx)\n" },
      { { 'diff', '--lang' }, 'aegis-run: diff: --lang needs a value (see aegis-run diff --help)\n' },
      { { 'diff', '--frob', 'a', 'b' }, "aegis-run: diff: unknown option '--frob' (see aegis-run diff --help)\n" },
      { { 'diff', f('nope.ts'), f('move.b.ts') },
        "aegis-run: diff: read '" .. f('nope.ts') .. "': No such file or directory\n" },
      { { 'diff', DIR, f('move.b.ts') }, "aegis-run: diff: read '" .. DIR .. "': is a directory\n" },
    }
    for _, c in ipairs(cases) do
      local r = h.run(c[1])
      assert.equal(2, r.code, table.concat(c[1], ' '))
      assert.equal(c[2], r.stderr)
      assert.equal('', r.stdout)
    end
  end)

  it('has a help text', function()
    local r = h.run({ 'diff', '--help' })
    assert.equal(0, r.code)
    assert.truthy(r.stdout:find('usage: aegis-run diff A B', 1, true))
  end)
end)
