--- Fuzz target `ast_parse`: the fast path of `ast` (RELIABILITY.md B1 asks
--- for >= 1,000 exec/s): what the standards engine does with every file and
--- no more. Parse under a budget, list the diagnostics, run every query of
--- fuzz/lib/queries.lua as one compiled query (as the engine combines its
--- rules' queries) over the tree, build the scope analysis, close. The
--- checks are the cheap ones; `ast` walks every node and checks deeply.
---
--- Input: byte 1 picks the language (odd: tsx); the rest is the source.
local ast = require('aegis.ast')

local here = debug.getinfo(1, 'S').source:match('^@(.*)/targets/[^/]+$')
local Q = dofile(here .. '/lib/queries.lua')
local query = {
  ts = assert(ast.query('ts', table.concat(Q.COMMON, '\n'))),
  tsx = assert(ast.query('tsx', table.concat(Q.COMMON, '\n') .. '\n' .. table.concat(Q.TSX, '\n'))),
}
local BUDGET = { ms = 2000, bytes = 1 << 20 }

return function(data)
  local lang = ((data:byte(1) or 0) & 1) == 1 and 'tsx' or 'ts'
  local src = data:sub(2)
  local tree, err, code = ast.parse(src, { lang = lang, budget = BUDGET })
  if not tree then
    assert(code == 'timeout' or code == 'too_large' or code == 'memory', tostring(err))
    return
  end
  local n = #src
  for _, e in ipairs(tree:errors()) do
    assert(0 <= e.start_byte and e.start_byte <= e.end_byte and e.end_byte <= n, 'diagnostic bytes')
  end
  -- the combined query takes tree-sitter's cursor, which runs under the
  -- parse budget (a hostile tree: nil, 'ast: query: timeout (N ms)')
  local matches, qerr, qcode = query[lang]:matches(tree)
  assert(matches or qcode == 'timeout', tostring(qerr))
  for _, m in ipairs(matches or {}) do
    local r = m.list[1].node:range()
    assert(0 <= r.start_byte and r.start_byte <= r.end_byte and r.end_byte <= n, 'capture bytes')
  end
  local sc = tree:scope()
  assert(sc ~= nil)
  tree:close()
end
