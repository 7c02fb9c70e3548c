-- Specs of the team-style rulepack: passing and failing snippets per rule,
-- run with `aegis-run test spec` in this directory. check_source parses the
-- snippet, runs the rule's query and check, and returns the findings.
local standards = require('aegis.standards')

local PACK = 'rulepacks/team-style.lua'

local function check(src, rule, config)
  local findings, problems = standards.check_source(src, { path = 'x.ts', rules = { PACK }, config = config or {} })
  assert.same({}, problems)
  local out = {}
  for _, f in ipairs(findings) do
    if f.rule == 'team-style/' .. rule then out[#out + 1] = ('%d:%d %s'):format(f.line, f.col, f.message) end
  end
  return out, findings
end

describe('team-style', function()
  describe('no-console-log', function()
    it('flags console.log and console.debug', function()
      assert.same({ '1:9 Use the logger (lib/log.ts) instead of console.log',
                    '2:9 Use the logger (lib/log.ts) instead of console.log' },
        check('console.log(1);\nconsole.debug(2);\n', 'no-console-log'))
    end)
    it('passes console.error and other objects', function()
      assert.same({}, check('console.error(1);\nlogger.log(2);\n', 'no-console-log'))
    end)
    it('is silenced by the ESLint comment teams already have', function()
      assert.same({}, check('// eslint-disable-next-line no-console\nconsole.log(1);\n', 'no-console-log'))
    end)
  end)

  describe('max-params', function()
    it('flags functions, methods and arrows with too many parameters', function()
      assert.same({
        '1:11 f has 4 parameters (at most 3); pass an object',
        '2:12 m has 4 parameters (at most 3); pass an object',
        '3:11 arrow function has 4 parameters (at most 3); pass an object',
      }, check('function f(a, b, c, d) {}\nclass K { m(a, b, c, d) {} }\nconst g = (a, b, c, d) => 0;\n', 'max-params'))
    end)
    it('passes up to the maximum, which config can raise', function()
      assert.same({}, check('function f(a, b, c) {}\n', 'max-params'))
      assert.same({}, check('function f(a, b, c, d) {}\n', 'max-params',
        { rules = { ['team-style/max-params'] = { options = { max = 4 } } } }))
    end)
  end)

  describe('no-money-float', function()
    it('flags parseFloat of an amount and offers a fix', function()
      local out, all = check('const c = parseFloat(order.amount);\n', 'no-money-float')
      assert.same({ '1:11 Amounts are integer cents: parseFloat on an amount loses money' }, out)
      assert.same({ start_byte = 10, end_byte = 34, text = 'toCents(order.amount)' }, all[1].fix)
    end)
    it('passes parseFloat of other values', function()
      assert.same({}, check('const r = parseFloat(ratio);\n', 'no-money-float'))
    end)
  end)
end)
