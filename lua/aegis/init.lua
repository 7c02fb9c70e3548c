--- The `aegis` table: every documented module, loaded on first use.
---
--- `aegis.hash`, `aegis.json`, `aegis.store`, ... are the modules under
--- `lua/aegis/`; reading a field requires the module of that name, so start-up
--- pays only for what a script touches.
local M = { version = '0.1.0' }

-- Public modules, reached through `aegis.<name>`. Scripts see them through
-- aegis.sandbox, which hides what touches files or the journal directly.
local public = {
  artifact = true, ast = true, cache = true, clock = true, config = true, errors = true, fs = true, hash = true,
  json = true, path = true, runtime = true, scaffold = true, schema = true, store = true, trace = true, uuid = true,
}

return setmetatable(M, {
  __index = function(t, name)
    if not public[name] then return nil end
    local mod = require('aegis.' .. name)
    rawset(t, name, mod)
    return mod
  end,
})
