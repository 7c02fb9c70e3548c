-- enforce on one-line files (minified or generated code): the text report
-- shows a window of the line around each finding, not the whole line once
-- per finding, and SARIF columns (UTF-16 code units) are computed without
-- rescanning the line for each finding.
local h = require('spec.helpers')
local json = require('aegis.json')

local function one_line_file(stmt, n)
  local dir = h.tmpdir()
  local f = assert(io.open(dir .. '/x.ts', 'w'))
  f:write(stmt:rep(n), '\n')
  f:close()
  return dir
end

describe('aegis-run enforce on a long line', function()
  it('shows 160 bytes of the line around each finding, with the caret under it', function()
    local stmt = 'let a: any = 1; '                      -- 16 bytes, `any` at byte 8
    local dir = one_line_file(stmt, 2000)                -- a 32,000-byte line
    local r = h.run({ 'enforce', '--rulepacks', 'typescript-strict', 'x.ts' }, { cwd = dir })
    assert.equal(1, r.code, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch('[^\n]+') do lines[#lines + 1] = l end
    -- the first finding: the line's start, cut at the end
    assert.equal('x.ts:1:8 error typescript-strict/no-explicit-any Unexpected any. Specify a different type.',
      lines[1])
    assert.equal('    ' .. stmt:rep(10) .. '...', lines[2])
    assert.equal('    ' .. (' '):rep(7) .. '^~~', lines[3])
    -- the thousandth: cut at both ends, 60 bytes of context before it
    local col = 999 * 16 + 8
    local at
    for i, l in ipairs(lines) do if l:find(('^x%%.ts:1:%d '):format(col)) then at = i end end
    assert.truthy(at, 'no finding at column ' .. col)
    local from = col - 60                                -- byte of the line the window starts at
    local off = (from - 1) % #stmt + 1                   -- ... and of the statement
    assert.equal('    ...' .. stmt:rep(12):sub(off, off + 159) .. '...', lines[at + 1])
    assert.equal('    ' .. (' '):rep(3 + 60) .. '^~~', lines[at + 2])
    -- every finding costs three short lines, whatever the line's length
    assert.is_true(#r.stdout < 2000 * 400, #r.stdout .. ' bytes of output')
  end)

  it('gives SARIF columns in UTF-16 code units along a long non-ASCII line', function()
    local stmt = 'let é😀: any = 1; '  -- 21 bytes, 18 UTF-16 units (é: 2 bytes, 1 unit; 😀: 4 bytes, 2 units)
    local dir = one_line_file(stmt, 3000)
    local r = h.run({ 'enforce', '--format', 'sarif', '--rulepacks', 'typescript-strict', 'x.ts' }, { cwd = dir })
    assert.equal(1, r.code, r.stderr)
    local results = json.decode(r.stdout).runs[1].results
    local seen = 0
    for _, res in ipairs(results) do
      if res.ruleId == 'typescript-strict/no-explicit-any' then
        seen = seen + 1
        local region = res.locations[1].physicalLocation.region
        -- statement k (0-based) starts at unit 18k + 1; its `any` at unit 18k + 10
        assert.equal((seen - 1) * 18 + 10, region.startColumn)
        assert.equal(region.startColumn + 3, region.endColumn)
      end
    end
    assert.equal(3000, seen)
  end)
end)
