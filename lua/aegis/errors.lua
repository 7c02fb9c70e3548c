--- Error objects shared by every aegis module.
---
--- An error is a table `{code, msg, exit, step?, retryable?}` that prints as
--- its message. Misuse raises one; expected failures return `nil, msg, code`
--- (STYLE.md §4). The CLI turns an uncaught one into one line on stderr and
--- the exit code it carries: 2 for usage and configuration, 1 otherwise.
local M = {}

---@class aegis.Error
---@field code string Stable machine code ('usage', 'config', 'budget', ...)
---@field msg string One line naming what was wrong and where
---@field exit integer Process exit code the CLI uses for it
---@field step? string Pipeline step that failed, when there is one
---@field retryable? boolean Whether trying again may succeed
local Error = { __name = 'aegis.Error' }
Error.__index = Error

function Error.__tostring(e)
  return e.msg
end

--- Exit code for an error code: configuration and usage mistakes are 2.
local exit_codes = { usage = 2, config = 2 }

--- Creates an error object.
---@param code string Stable machine code
---@param msg string Message, lowercase, no trailing period
---@param fields? table Extra fields (step, retryable, exit, ...)
---@return aegis.Error
function M.new(code, msg, fields)
  local e = setmetatable({ code = code, msg = msg, exit = exit_codes[code] or 1 }, Error)
  for k, v in pairs(fields or {}) do e[k] = v end
  return e
end

--- Tells whether a value is an aegis error object.
---@param v any
---@return boolean
function M.is(v)
  return getmetatable(v) == Error
end

--- Raises an error object with a formatted message.
---@param code string
---@param fmt string string.format pattern
function M.raise(code, fmt, ...)
  error(M.new(code, fmt:format(...)), 0)
end

--- Raises a usage error (exit code 2).
---@param fmt string
function M.usage(fmt, ...)
  M.raise('usage', fmt, ...)
end

--- Raises a configuration error (exit code 2).
---@param fmt string
function M.config(fmt, ...)
  M.raise('config', fmt, ...)
end

--- Turns the `nil, msg, code` of a failed call into a raised error, and
--- passes the results of a successful one through: `errors.check(db:exec(...))`.
function M.check(ok, msg, code, ...)
  if ok == nil then
    if M.is(msg) then error(msg, 2) end  -- already an error object (schema:parse)
    error(M.new(code or 'error', msg or 'unknown error'), 2)
  end
  return ok, msg, code, ...
end

return M
