--- SHA-256 over OpenSSL: of strings, of files, and streaming.
local core = require('aegis.core.hash')

local M = {}

local function check_string(v, n, fname)
  if type(v) ~= 'string' then
    error(("bad argument #%d to '%s' (string expected, got %s)"):format(n, fname, type(v)), 3)
  end
end

--- Gets the SHA-256 digest of a string as 64 lowercase hex digits.
---@param s string Bytes to hash
---@return string hex
function M.sha256(s)
  check_string(s, 1, 'sha256')
  local h = core.sha256(s)
  return h
end

--- Gets the SHA-256 digest of a string as 32 raw bytes (for HMAC and the like).
---@param s string Bytes to hash
---@return string digest 32 bytes
function M.sha256_raw(s)
  check_string(s, 1, 'sha256_raw')
  local h = core.sha256_raw(s)
  return h
end

--- Gets the SHA-256 digest of a file's contents, read in 256 KiB chunks.
---@param path string
---@return string? hex 64 lowercase hex digits
---@return string? err `hash: open '<path>': <reason>` or `hash: read ...`
---@return string? code 'not_found' when the file does not exist, else 'io'
function M.sha256_file(path)
  check_string(path, 1, 'sha256_file')
  local hex, err, code = core.sha256_file(path)
  return hex, err, code
end

--- Creates a streaming SHA-256 hasher. Feed it with `h:update(s)` (returns
--- `h`, so calls chain) and finish with `h:hex()` or `h:raw()`; a finished
--- hasher raises "attempt to use a finished hasher". It is released by the
--- collector or at scope end when declared `<close>`.
---@return aegis.hash.Sha256
function M.sha256_new()
  local h = core.sha256_new()
  return h
end

return M
