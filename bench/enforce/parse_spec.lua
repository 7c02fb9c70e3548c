-- luacheck: std +busted
-- The floor of the enforce bench: tree-sitter parsing alone over the corpus,
-- each file read and parsed once as `aegis-run enforce` does (language by
-- extension, default budget), run by bench/enforce/run.sh as
-- `aegis-run test bench/enforce/parse_spec.lua` (busted gives it the full
-- Lua library; a sandboxed script may not read files).  Not under spec/, so
-- `make test` does not run it.
-- Environment: ENFORCE_FILES (a list of files, one a line, relative to
-- ENFORCE_ROOT), ENFORCE_OUT (where to write "cpu_s files bytes nodes
-- errors": os.clock's CPU time, user + system, of the read + parse loop).
local ast = require('aegis.ast')

describe('enforce bench floor', function()
  it('parses every corpus file', function()
    local root = assert(os.getenv('ENFORCE_ROOT'), 'ENFORCE_ROOT not set')
    local list = {}
    for line in io.lines((assert(os.getenv('ENFORCE_FILES'), 'ENFORCE_FILES not set'))) do
      if line ~= '' then list[#list + 1] = root .. '/' .. line end
    end
    local files, bytes, errors = 0, 0, 0
    local c0 = os.clock()
    for _, p in ipairs(list) do
      local f = assert(io.open(p, 'rb'))
      local src = f:read('a')
      f:close()
      local tree = assert(ast.parse(src, { path = p }))
      if tree:root():has_error() then errors = errors + 1 end
      tree:close()
      files, bytes = files + 1, bytes + #src
    end
    local cpu = os.clock() - c0
    local out = assert(io.open((assert(os.getenv('ENFORCE_OUT'), 'ENFORCE_OUT not set')), 'w'))
    out:write(('%.3f %d %d %d\n'):format(cpu, files, bytes, errors))
    out:close()
    assert.is_true(files > 0)
  end)
end)
