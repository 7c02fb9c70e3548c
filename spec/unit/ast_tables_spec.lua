-- The parser's dense parse tables (runtime/ag_langtab.c) against the
-- grammar's own: the same trees, as TypeScript and as TSX, over every AST
-- and enforce fuzz seed and the AST diff fixtures (and, once, over the
-- whole bench corpus: docs/benchmarks.md).
-- AEGIS_TS_TABLES is read once per process, so each side is a process.
local h = require('spec.helpers')

-- A spec that writes, for each file of the list, its tree as TypeScript and
-- as TSX (S-expression, or the parse failure) to OUT.
local DUMP = [[
local ast = require('aegis.ast')
describe('dump', function() it('dumps', function()
  local out = assert(io.open(os.getenv('OUT'), 'wb'))
  out:write(require('aegis.core.ast').tsmem().tables, '\n')
  for path in io.lines(os.getenv('LIST')) do
    local f = assert(io.open(path, 'rb'))
    local src = f:read('a')
    f:close()
    for _, lang in ipairs({ 'ts', 'tsx' }) do
      local t, err = ast.parse(src, { lang = lang, budget = { bytes = 0, ms = 60000 } })
      out:write(path, ' ', lang, '\n', t and t:root():sexp() or ('failed: ' .. tostring(err)), '\n')
      if t then t:close() end
    end
  end
  out:close()
end) end)
]]

local function files_under(dirs)
  local list = {}
  for _, d in ipairs(dirs) do
    local p = io.popen('find ' .. h.shell_quote(d) .. ' -type f | sort')
    for line in p:lines() do list[#list + 1] = line end
    p:close()
  end
  return list
end

describe('parse tables', function()
  it('are dense by default, and give the same trees as the grammar\'s own', function()
    -- (not fuzz/regressions: hostile inputs whose parse the memory budget stops, on both sides alike;
    -- ast_hostile_spec has them)
    local files = files_under({ 'fuzz/corpus/ast', 'fuzz/corpus/ast_parse', 'fuzz/corpus/enforce',
      'spec/fixtures/astdiff' })
    assert.is_true(#files >= 50, 'inputs: ' .. #files)
    local dir = h.tmpdir()
    local spec = h.write(dir .. '/dump_spec.lua', DUMP)
    local list = h.write(dir .. '/list.txt', table.concat(files, '\n') .. '\n')
    local outs = {}
    for _, tables in ipairs({ '', 'compact' }) do
      local out = dir .. '/trees-' .. (tables == '' and 'default' or tables) .. '.txt'
      local r = h.run({ 'test', spec }, { env = { OUT = out, LIST = list, AEGIS_TS_TABLES = tables } })
      assert.equal(0, r.code, r.stdout .. r.stderr)
      local f = assert(io.open(out, 'rb'))
      outs[#outs + 1] = f:read('a')
      f:close()
    end
    assert.equal('dense', outs[1]:match('^(%a+)\n'))
    assert.equal('compact', outs[2]:match('^(%a+)\n'))
    local a, b = outs[1]:gsub('^%a+\n', ''), outs[2]:gsub('^%a+\n', '')
    assert.is_true(#a > 10000 and select(2, a:gsub('\n', '')) == 4 * #files, 'dump of ' .. #a .. ' bytes')
    -- (assert.equal would print two huge strings: name the first file that differs)
    if a ~= b then
      local la, lb = {}, {}
      for l in a:gmatch('[^\n]*\n') do la[#la + 1] = l end
      for l in b:gmatch('[^\n]*\n') do lb[#lb + 1] = l end
      for i = 1, math.max(#la, #lb) do
        if la[i] ~= lb[i] then error('trees differ at ' .. tostring(la[i - (i % 2 == 0 and 1 or 0)])) end
      end
    end
  end)
end)
