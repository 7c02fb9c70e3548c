--- busted output handler for `aegis-run test`: busted's own terminal output,
--- then one plain closing line `N passed, N failed[, N skipped]` that CI reads.
local isatty = require('aegis.core.host').isatty(1)

return function(options)
  local busted = require('busted')
  local inner = require('busted.outputHandlers.' .. (isatty and 'utfTerminal' or 'plainTerminal'))(options)
  local handler = {}

  function handler:subscribe(opts)
    inner:subscribe(opts)
    busted.subscribe({ 'suite', 'end' }, function()
      local failed = inner.failuresCount + inner.errorsCount
      local line = ('%d passed, %d failed'):format(inner.successesCount, failed)
      if inner.pendingsCount > 0 then line = line .. (', %d skipped'):format(inner.pendingsCount) end
      io.stdout:write('\n', line, '\n')
      io.stdout:flush()
      return nil, true
    end)
    return self
  end

  return handler
end
