--- Fuzz target `sandbox`: the in-process sandbox rulepacks and scripts run
--- in (lua/aegis/sandbox.lua, runtime/lsandbox.c: the budget hook, the
--- memory cap, the string metatable), with the input as a script.
---
--- Input: the script's text. Checks: sandbox.run returns true or nil and an
--- error whose code is syntax, runtime, budget or memory, with a message;
--- it never raises; and afterwards the host is intact: the string
--- metatable, string.dump, the host's globals and the loaded modules are
--- what they were. Known limit (docs/sandbox.md, STYLE.md §6): one C call
--- (a pattern bomb) is not stopped by the hook; libFuzzer's -timeout
--- reports it, and untrusted code runs in a killed worker instead.
local sandbox = require('aegis.sandbox')

local BUDGET = { instructions = 200000, seconds = 1, memory = 8 * 1024 * 1024 }
local CODES = { syntax = true, runtime = true, budget = true, memory = true }

local string_mt = debug.getmetatable('')   -- getmetatable sees its __metatable guard
local string_index = string_mt.__index
local dump = string.dump
local host_globals = {}
for k, v in pairs(_G) do host_globals[k] = v end
local loaded = {}
for k, v in pairs(package.loaded) do loaded[k] = v end

return function(data)
  local ok, err = sandbox.run({ source = data, name = 'fuzz.lua', budget = BUDGET })
  if not ok then
    assert(type(err) == 'table' and CODES[err.code], 'error code: ' .. tostring(err and err.code))
    assert(type(err.msg) == 'string' and err.msg ~= '', 'error message')
  end
  assert(debug.getmetatable('') == string_mt and string_mt.__index == string_index, 'string metatable changed')
  assert(string.dump == dump, 'string.dump changed')
  for k, v in pairs(host_globals) do assert(rawget(_G, k) == v, 'host global changed: ' .. tostring(k)) end
  for k in pairs(_G) do assert(host_globals[k] ~= nil, 'host global added: ' .. tostring(k)) end
  for k, v in pairs(loaded) do assert(package.loaded[k] == v, 'module changed: ' .. tostring(k)) end
end
