--- Raw clocks: monotonic time for measuring intervals, wall-clock time for
--- stamping. (Pipelines read time through their journal, not from here.)
local core = require('aegis.core.clock')

local M = {}

--- Gets seconds on the monotonic clock (CLOCK_MONOTONIC): only differences
--- between two readings mean anything.
---@return number seconds
function M.monotonic()
  local t = core.monotonic()
  return t
end

--- Gets integer nanoseconds on the monotonic clock (CLOCK_MONOTONIC).
---@return integer nanoseconds
function M.monotonic_ns()
  local t = core.monotonic_ns()
  return t
end

--- Gets the wall-clock time (CLOCK_REALTIME) in seconds since 1970-01-01 UTC.
---@return number seconds
function M.now()
  local t = core.now()
  return t
end

return M
