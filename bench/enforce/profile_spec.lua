-- luacheck: std +busted
-- Where the enforce engine's time goes, over the bench corpus (not run by
-- run.sh: it checks the corpus once per rule, ~20x the cost of one run).
-- CPU seconds (os.clock: user + system) of: tree-sitter parsing alone; one
-- trivial query and a `(comment)` query over every tree (a query cursor's own
-- walk); `tree:scope()`; then, per rule, `engine:check` with that rule alone
-- less the parse (its query, checks, suppression and sorting).
-- usage: cd build/bench-enforce && ../../bin/aegis-run test ../../bench/enforce/profile_spec.lua
-- env:   ENFORCE_ROOT (default corpus), ENFORCE_FILES (default corpus/files.txt),
--        ENFORCE_RULEPACKS (default typescript-strict,a11y)
local ast = require('aegis.ast')
local standards = require('aegis.standards')

describe('enforce bench profile', function()
  it('splits the cost', function()
    local root = os.getenv('ENFORCE_ROOT') or 'corpus'
    local srcs = {}
    for line in io.lines(os.getenv('ENFORCE_FILES') or (root .. '/files.txt')) do
      local f = assert(io.open(root .. '/' .. line, 'rb'))
      srcs[#srcs + 1] = { path = line, src = f:read('a'), lang = ast.lang_of(line) }
      f:close()
    end
    local q, qc = {}, {}
    for _, l in ipairs({ 'ts', 'tsx' }) do
      q[l] = ast.query(l, '(variable_declaration "var" @r)')
      qc[l] = ast.query(l, '(comment) @c')
    end
    local tp, tq, tc, ts = 0, 0, 0, 0
    for _, s in ipairs(srcs) do
      local c0 = os.clock()
      local t = assert(ast.parse(s.src, { lang = s.lang }))
      local c1 = os.clock()
      q[s.lang]:matches(t)
      local c2 = os.clock()
      qc[s.lang]:matches(t)
      local c3 = os.clock()
      t:scope()
      local c4 = os.clock()
      t:close()
      tp, tq, tc, ts = tp + (c1 - c0), tq + (c2 - c1), tc + (c3 - c2), ts + (c4 - c3)
    end
    local function row(what, s) print(('%-70s %6.2f s  %5.0f %% of parse'):format(what, s, 100 * s / tp)) end
    print(('%d files'):format(#srcs))
    row('parse', tp)
    row('query cursor walk, one trivial pattern', tq)
    row('query (comment) @c', tc)
    row('tree:scope()', ts)
    local packs = {}
    for p in (os.getenv('ENFORCE_RULEPACKS') or 'typescript-strict,a11y'):gmatch('[^,]+') do packs[#packs + 1] = p end
    local total = 0
    for _, r in ipairs(standards.engine({ rules = packs }):rule_list()) do
      local e = standards.engine({ rules = { r.id } })
      local c0 = os.clock()
      for _, s in ipairs(srcs) do e:check(s.src, { path = s.path, lang = s.lang }) end
      local t = os.clock() - c0 - tp
      total = total + t
      row('  ' .. r.id .. ' (check less parse)', t)
    end
    row('sum of the rules alone', total)
    local e = standards.engine({ rules = packs })
    local c0 = os.clock()
    for _, s in ipairs(srcs) do e:check(s.src, { path = s.path, lang = s.lang }) end
    row('all rules in one engine (check less parse)', os.clock() - c0 - tp)
    assert.is_true(#srcs > 0)
  end)
end)
