---@meta
-- luacheck: ignore
error('Cannot require a meta file')

--- A streaming SHA-256 hasher from `aegis.hash.sha256_new()`. Holds one
--- OpenSSL digest context, freed when the hasher finishes, is collected, or
--- leaves a `<close>` scope.
---@class aegis.hash.Sha256
local Sha256 = {}

--- Feeds bytes to the hasher.
---@param s string
---@return aegis.hash.Sha256 self
function Sha256:update(s) end

--- Finishes the hasher and gets the digest as 64 lowercase hex digits.
---@return string hex
function Sha256:hex() end

--- Finishes the hasher and gets the digest as 32 raw bytes.
---@return string digest
function Sha256:raw() end
