-- examples/custom_rulepack: its own specs pass, and aegis-run enforce run in
-- it reports what its README says.
local h = require('spec.helpers')
local json = require('aegis.json')

local DIR = os.getenv('PWD') .. '/examples/custom_rulepack'

describe('examples/custom_rulepack', function()
  it("passes the rulepack's own specs", function()
    local r = h.run({ 'test', 'spec' }, { cwd = DIR })
    assert.equal(0, r.code)
    assert.matches('\n7 passed, 0 failed\n$', r.stdout)
  end)

  it('reports the three rules on src/, in process (trusted), with the fix', function()
    local r = h.run({ 'enforce', '--format', 'json', 'src' }, { cwd = DIR })
    assert.equal(1, r.code)
    assert.equal('', r.stderr)
    local doc = json.decode(r.stdout)
    local got = {}
    for _, f in ipairs(doc.findings) do got[#got + 1] = ('%d:%d %s'):format(f.line, f.col, f.rule) end
    assert.same({ '1:23 team-style/max-params', '2:11 team-style/no-console-log', '3:17 team-style/no-money-float' },
      got)
    assert.equal('toCents(amount)', doc.findings[3].fix.text)
  end)
end)
