--- The modules that own stored tables or data models. They declare them
--- when loaded (`store.register`, `schema.register`, `config.declare`);
--- `aegis-run store migrate` and `aegis-run schema export` load them all
--- through `modules.load_all` first. Add a module here when it owns either.
local M = {}

--- Names of the modules that own tables or data models, in load order.
M.owners = {
  'aegis.config', 'aegis.artifact', 'aegis.trace', 'aegis.checkpoint', 'aegis.provider', 'aegis.cache',
  'aegis.scaffold',
}

--- Loads every owner module this build has. One that is not built (yet) is
--- skipped; one that fails to load is a bug, and raises.
---@return string[] loaded The names that were loaded
function M.load_all()
  local loaded = {}
  for _, name in ipairs(M.owners) do
    local ok, err = pcall(require, name)
    if ok then
      loaded[#loaded + 1] = name
    elseif not tostring(err):find("module '" .. name .. "' not found", 1, true) then
      error(err, 0)
    end
  end
  return loaded
end

return M
