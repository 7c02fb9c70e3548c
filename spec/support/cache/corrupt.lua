--- Damage for cache files (RELIABILITY.md F5): random byte flips,
--- truncation, an empty file, a garbage `-wal`. Each function takes the
--- pristine bytes and the path to write, draws from math.random (seed it for
--- a reproducible run) and returns a short description of what it did.
local h = require('spec.helpers')

local M = {}

-- Writes `data` over the file in place (same inode: a process holding the
-- file open sees the damage).
local function overwrite(path, data)
  local f = io.open(path, 'r+b') or assert(io.open(path, 'wb'))
  f:write(data)
  f:close()
end

--- Flips `k` random bytes (each XORed with a random non-zero value).
function M.flip(pristine, path, k)
  local bytes = { pristine:byte(1, -1) }
  local at = {}
  for j = 1, k do
    local i = math.random(#bytes)
    bytes[i] = bytes[i] ~ math.random(255)
    at[j] = i - 1
  end
  local parts = {}
  for i = 1, #bytes, 4096 do parts[#parts + 1] = string.char(table.unpack(bytes, i, math.min(i + 4095, #bytes))) end
  overwrite(path, table.concat(parts))
  table.sort(at)
  return ('flip %d at %s'):format(k, table.concat(at, ',', 1, math.min(#at, 12)) .. (#at > 12 and ',...' or ''))
end

--- Cuts the file at a random length (1 .. size - 1).
function M.truncate(pristine, path)
  local n = math.random(#pristine - 1)
  h.write(path, pristine:sub(1, n))
  return 'truncate to ' .. n
end

--- Leaves an empty file.
function M.zero(_, path)
  h.write(path, '')
  return 'zero length'
end

--- Keeps the database and puts random bytes (1 .. 64 KiB) beside it as
--- its `-wal`; every few trials the garbage starts with a real WAL magic
--- number, so SQLite reads on into the frame checksums.
function M.wal(pristine, path)
  h.write(path, pristine)
  local n = math.random(65536)
  local t = {}
  for i = 1, n do t[i] = math.random(0, 255) end
  local parts = {}
  for i = 1, n, 4096 do parts[#parts + 1] = string.char(table.unpack(t, i, math.min(i + 4095, n))) end
  local garbage = table.concat(parts)
  local magic = math.random(2) == 1 and n >= 32
  if magic then garbage = '\x37\x7f\x06\x82\x00\x2d\xe2\x18' .. garbage:sub(9) end
  h.write(path .. '-wal', garbage)
  return ('garbage -wal of %d bytes%s'):format(n, magic and ' with WAL magic' or '')
end

--- The kinds, in the order trials cycle through them.
M.kinds = {
  function(p, path) return M.flip(p, path, 1) end,
  function(p, path) return M.flip(p, path, 10) end,
  function(p, path) return M.flip(p, path, 100) end,
  M.truncate,
  M.zero,
  M.wal,
}

return M
