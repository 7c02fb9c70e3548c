-- aegis.standards.sort: the order of a run's findings (path, line, column,
-- rule, message, end), by a natural merge sort over the sorted runs the
-- workers hand back; checked against table.sort with the same order.
local standards = require('aegis.standards')

local function before(a, b)
  for _, k in ipairs({ 'path', 'line', 'col', 'rule', 'message', 'end_line', 'end_col', 'end_byte' }) do
    if a[k] ~= b[k] then return a[k] < b[k] end
  end
  return false
end

local function finding(rnd)
  return { path = 'src/f' .. rnd(1, 5) .. '.ts', line = rnd(1, 30), col = rnd(1, 4),
    rule = 'p/r' .. rnd(1, 2), message = 'm' .. rnd(1, 2), end_line = rnd(1, 30), end_col = rnd(1, 4),
    end_byte = rnd(1, 1000) }
end

describe('aegis.standards.sort', function()
  it('gives the order table.sort gives, from k sorted runs, random input and sorted input', function()
    local rnd = math.random
    math.randomseed(7)
    for case = 1, 400 do
      local n = rnd(0, 300)
      local all = {}
      for i = 1, n do all[i] = finding(rnd) end
      local input
      if case % 4 == 0 then
        input = all                                    -- no order at all
      else
        local k = case % 4 == 1 and 1 or rnd(2, 9)     -- k sorted runs, as k workers return them
        local runs = {}
        for r = 1, k do runs[r] = {} end
        for i, f in ipairs(all) do table.insert(runs[i % k + 1], f) end
        input = {}
        for r = 1, k do
          table.sort(runs[r], before)
          table.move(runs[r], 1, #runs[r], #input + 1, input)
        end
      end
      local want = table.move(input, 1, #input, 1, {})
      table.sort(want, before)
      local got = standards.sort(input)
      assert.equal(input, got, 'sorts in place')
      assert.equal(#want, #got)
      for i = 1, #want do
        if not (want[i] == got[i] or not before(want[i], got[i]) and not before(got[i], want[i])) then
          error(('case %d: position %d differs'):format(case, i))
        end
      end
    end
  end)
end)
