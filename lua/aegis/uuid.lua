--- UUIDs: random (version 4) and time-ordered (version 6, RFC 9562), as
--- lowercase "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" strings.
local core = require('aegis.core.uuid')

local M = {}

--- Creates a random UUID (version 4) from OpenSSL's RAND_bytes.
---@return string id
function M.v4()
  local id = core.v4()
  return id
end

--- Creates a time-ordered UUID (version 6, the form LangGraph uses for
--- checkpoint ids): a 60-bit count of 100 ns since 1582-10-15, high bits
--- first, then 62 random bits. Ids from one process sort strictly
--- increasing as strings, even within one clock tick. `opts.time` (seconds
--- since the epoch) fixes the timestamp instead, outside that ordering.
---@param opts? {time?: number} Seconds since 1970-01-01 to stamp instead of now
---@return string id
function M.v6(opts)
  if opts ~= nil and type(opts) ~= 'table' then
    error(("bad argument #1 to 'v6' (table expected, got %s)"):format(type(opts)), 2)
  end
  local t = opts and opts.time
  if t ~= nil and type(t) ~= 'number' then
    error(("bad argument #1 to 'v6' (time must be a number, got %s)"):format(type(t)), 2)
  end
  local id = core.v6(t)
  return id
end

--- Gets the timestamp of a version 6 UUID, in seconds since the epoch
--- (100 ns resolution). Raises when `id` is not a version 6 UUID.
---@param id string
---@return number seconds
function M.time(id)
  if type(id) ~= 'string' then
    error(("bad argument #1 to 'time' (string expected, got %s)"):format(type(id)), 2)
  end
  local t = core.time(id)
  return t
end

return M
