-- Our parse against tree-sitter's stock one: the parser reads dense copies
-- of the grammar's parse tables (runtime/ag_langtab.c) and lexes with a
-- quicker step for ASCII (runtime/ag_tslex.c). Each must give the same
-- trees as tree-sitter as shipped (AEGIS_TS_TABLES=compact,
-- AEGIS_TS_LEXER=stock): the same shape and the same position of every
-- node, as TypeScript and as TSX, over every AST and enforce fuzz seed, the
-- AST diff fixtures and inputs made for the lexer's edge cases (and, once,
-- over the whole bench corpus: docs/benchmarks.md).
-- Both settings are read once per process, so each side is a process.
local h = require('spec.helpers')

-- A spec that writes, for each file of the list and each language, its
-- tree (S-expression, then every node, anonymous ones too, with its byte
-- range and its start and end points; or the parse failure) to OUT, after
-- a first line naming the tables and the lexer.
local DUMP = [[
local ast = require('aegis.ast')
describe('dump', function() it('dumps', function()
  local out = assert(io.open(os.getenv('OUT'), 'wb'))
  local m = require('aegis.core.ast').tsmem()
  out:write(m.tables, ' ', m.lexer, '\n')
  local function nodes(n, buf)
    local r = n:range()
    buf[#buf + 1] = ('%s %d %d %d:%d %d:%d'):format(n:type(), r.start_byte, r.end_byte,
      r.start_row, r.start_col, r.end_row, r.end_col)
    for _, c in ipairs(n:children()) do nodes(c, buf) end
    return buf
  end
  for path in io.lines(os.getenv('LIST')) do
    local f = assert(io.open(path, 'rb'))
    local src = f:read('a')
    f:close()
    for _, lang in ipairs({ 'ts', 'tsx' }) do
      local t, err = ast.parse(src, { lang = lang, budget = { bytes = 0, ms = 60000 } })
      out:write(path, ' ', lang, '\n')
      if t then
        out:write(t:root():sexp(), '\n', table.concat(nodes(t:root(), {}), '\n'), '\n')
        t:close()
      else
        out:write('failed: ', tostring(err), '\n')
      end
    end
  end
  out:close()
end) end)
]]

-- What the quick lexer step leaves to tree-sitter's, or must tell apart:
-- newlines of every kind, a byte order mark, UTF-8 of two to four bytes in
-- names, strings, templates, comments and JSX text, bytes that are not
-- UTF-8, NUL bytes, tabs, the end of the text right after a token, and
-- nothing at all.
local EDGES = {
  ['crlf.ts'] = 'const a = 1;\r\nlet b = "x";\r\n\r\nfunction f(): void {\r\n  return;\r\n}\r\n',
  ['cr.ts'] = 'const a = 1;\rconst b = 2;\r',
  ['bom.ts'] = '\239\187\191export const x = 1;\n',
  ['bom-only.ts'] = '\239\187\191',
  ['utf8.tsx'] = 'const caf\195\169 = "na\195\175ve \226\130\172 \240\159\152\128";\n'
    .. 'const t = `\226\156\147 ${caf\195\169} \240\159\154\128`;\n// \195\169t\195\169 \226\128\148 fin\n'
    .. 'export const E = () => <p title="\195\169">\195\169l\195\168ve \240\159\142\137 {caf\195\169}</p>;\n',
  ['invalid-utf8.ts'] = 'const s = "\255\254";\nconst \192\128 = 1;\n/* \237\160\128 */ let z = 2;\n',
  ['nul.ts'] = 'const a = "\0";\nlet \0 = 1;\n',
  ['tabs.ts'] = '\tconst a =\t1;\n\t\tfunction\tf() {}\n',
  ['no-final-newline.ts'] = 'export default 42',
  ['ends-in-utf8.ts'] = 'const x = "\195\169"',
  ['ends-mid-utf8.ts'] = 'const x = 1; // \226\130',
  ['empty.ts'] = '',
  ['only-newlines.ts'] = '\n\n\r\n\n',
}

local function files_under(dirs)
  local list = {}
  for _, d in ipairs(dirs) do
    local p = io.popen('find ' .. h.shell_quote(d) .. ' -type f | sort')
    for line in p:lines() do list[#list + 1] = line end
    p:close()
  end
  return list
end

-- The dump's lines, for naming the first difference (assert.equal would
-- print two huge strings).
local function first_difference(a, b)
  local la, lb = {}, {}
  for l in a:gmatch('[^\n]*\n') do la[#la + 1] = l end
  for l in b:gmatch('[^\n]*\n') do lb[#lb + 1] = l end
  for i = 1, math.max(#la, #lb) do
    if la[i] ~= lb[i] then return ('line %d: %q against %q'):format(i, tostring(la[i]), tostring(lb[i])) end
  end
end

describe('our parse', function()
  it('uses dense tables and the quick lexer step by default, and gives the trees tree-sitter gives', function()
    -- (not fuzz/regressions: hostile inputs whose parse the memory budget stops, on both sides alike;
    -- ast_hostile_spec has them)
    local files = files_under({ 'fuzz/corpus/ast', 'fuzz/corpus/ast_parse', 'fuzz/corpus/enforce',
      'spec/fixtures/astdiff' })
    assert.is_true(#files >= 50, 'inputs: ' .. #files)
    local dir = h.tmpdir()
    for name, src in pairs(EDGES) do files[#files + 1] = h.write(dir .. '/' .. name, src) end
    local spec = h.write(dir .. '/dump_spec.lua', DUMP)
    local list = h.write(dir .. '/list.txt', table.concat(files, '\n') .. '\n')
    local sides = {
      { name = 'default', env = {}, head = 'dense quick' },
      { name = 'stock tables', env = { AEGIS_TS_TABLES = 'compact' }, head = 'compact quick' },
      { name = 'stock lexer', env = { AEGIS_TS_LEXER = 'stock' }, head = 'dense stock' },
      { name = 'stock', env = { AEGIS_TS_TABLES = 'compact', AEGIS_TS_LEXER = 'stock' }, head = 'compact stock' },
    }
    local dumps = {}
    for i, side in ipairs(sides) do
      local env = { OUT = dir .. '/trees-' .. i .. '.txt', LIST = list }
      for k, v in pairs(side.env) do env[k] = v end
      local r = h.run({ 'test', spec }, { env = env })
      assert.equal(0, r.code, r.stdout .. r.stderr)
      local d = h.read(env.OUT)
      assert.equal(side.head, d:match('^([^\n]*)\n'), side.name)
      dumps[i] = d:gsub('^[^\n]*\n', '')
    end
    local stock = dumps[#sides]
    -- every file, both languages, parsed: a tree, or the same failure on every side
    local parsed = select(2, stock:gsub('\n%(', ''))
    assert.is_true(#stock > 100000 and parsed >= #files, ('dump of %d bytes, %d trees'):format(#stock, parsed))
    for i = 1, #sides - 1 do
      if dumps[i] ~= stock then
        error(sides[i].name .. ' differs from stock at ' .. first_difference(dumps[i], stock))
      end
    end
  end)

  it('keeps the positions the stock lexer gives on every kind of line end and character', function()
    -- the same inputs, parsed here (quick) and checked against what the text itself says
    local ast = require('aegis.ast')
    local src = EDGES['utf8.tsx']
    local t = assert(ast.parse(src, { lang = 'tsx' }))
    local decl = t:root():named_child(1)
    local r = decl:range()
    assert.same({ 0, 0, 0, #'const caf\195\169 = "na\195\175ve \226\130\172 \240\159\152\128";' },
      { r.start_row, r.start_col, r.end_row, r.end_col })
    t:close()
    t = assert(ast.parse(EDGES['crlf.ts'], { lang = 'ts' }))
    local fn = t:root():named_child(3)
    assert.equal('function_declaration', fn:type())
    r = fn:range()
    assert.same({ 3, 0, 5, 1 }, { r.start_row, r.start_col, r.end_row, r.end_col })
    t:close()
  end)
end)
