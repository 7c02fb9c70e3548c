--- Helpers shared by the cache reliability and single-flight specs: the
--- entry a name stands for (the worker scripts beside this file compute the
--- same), running workers as processes, reading their output, and checking
--- a cache file from outside.
local h = require('spec.helpers')
local cache = require('aegis.cache')
local hash = require('aegis.hash')
local store = require('aegis.store')

local M = {}

local q = h.shell_quote

--- Directory of the worker scripts.
M.dir = 'spec/support/cache'

--- The cache key of an entry name (writer.lua's `key`).
function M.key(name) return hash.sha256('aegis-cachetest:' .. name) end

--- The text of an entry name, `len` bytes (writer.lua's `fill`).
function M.fill(name, len)
  local unit = name .. '|'
  return unit:rep(len // #unit + 1):sub(1, len)
end

--- The length writer.lua gives entry `i` of a run with SIZE `size`.
function M.len(i, size) return size + (i * 37) % (size // 2 + 1) end

--- A shell command line running a worker script with `args`.
---@param script string file name under spec/support/cache
---@param args string[]
---@param env? table<string, string> extra environment
---@param limit? number seconds after which the worker is killed (-9), so a
---  hang fails the spec instead of stalling it; nil for none (never with an
---  outer `timeout` or a `kill` of $!: those would reach only this one)
function M.cmd(script, args, env, limit)
  local parts = {}
  if script == 'calls.lua' then
    -- a script cannot choose where a call goes: the emulator's address
    -- reaches it as the adapter's base URL variable
    env = env or {}
    env.OPENAI_BASE_URL = args[2]
  end
  if limit then parts[#parts + 1] = ('timeout -s KILL %d'):format(limit) end
  if env then
    parts[#parts + 1] = 'env'
    local names = {}
    for k in pairs(env) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do parts[#parts + 1] = k .. '=' .. q(env[k]) end
  end
  parts[#parts + 1] = q(h.bin)
  parts[#parts + 1] = q(M.dir .. '/' .. script)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  return table.concat(parts, ' ')
end

--- Runs shell text with bash; returns true when it exited 0.
function M.bash(script)
  return os.execute('bash -c ' .. q(script)) == true
end

--- Fails the spec loudly unless scripts can reach `aegis.cache` (the
--- workers are sandboxed scripts: `cache` must be in the public list of
--- lua/aegis/init.lua).
function M.require_public()
  local r = h.run({ '-e', 'assert(aegis.cache ~= nil and aegis.cache.open ~= nil)' })
  assert(r.code == 0, 'aegis.cache is not reachable from scripts (add cache to the public list in '
    .. 'lua/aegis/init.lua); the worker scripts need it: ' .. tostring(r.stderr))
end

--- Parses `ack NAME LEN` lines (and the rest) of a writer's output.
---@return table<string, integer> acked name -> length
---@return string[] fails the `fail ...` lines
---@return table? stats the `stats put` line's figures
function M.writer_output(text)
  local acked, fails, stats = {}, {}, nil
  for line in (text or ''):gmatch('[^\n]+') do
    local name, len = line:match('^ack (%S+) (%d+)$')
    if name then
      acked[name] = tonumber(len)
    elseif line:find('^fail ') then
      fails[#fails + 1] = line
    elseif line:find('^stats ') then
      stats = M.stats_line(line)
    end
  end
  return acked, fails, stats
end

--- The `k=v` figures of a `stats ...` line.
function M.stats_line(line)
  local t = { kind = line:match('^stats (%S+)') }
  for k, v in line:gmatch('(%w+)=([%d.]+)') do t[k] = tonumber(v) end
  return t
end

--- Opens the file as a plain store (not through aegis.cache) and gives
--- PRAGMA integrity_check's first line.
function M.integrity(path)
  local db <close> = assert(store.open('sqlite:' .. path))
  local row = assert(db:first('PRAGMA integrity_check'))
  return row.integrity_check
end

--- Re-hashes every stored response, reading the rows with a plain store
--- (a full scan: the key columns come from the rows themselves); gives the
--- number of rows and a list of the keys whose stored hash does not match
--- `cache.response_hash(namespace, key, response)`.
function M.scan(path)
  local db <close> = assert(store.open('sqlite:' .. path))
  local rows = assert(db:query('SELECT namespace, key, response, response_hash FROM cache_entries'))
  local bad = {}
  for _, r in ipairs(rows) do
    if type(r.response) ~= 'string' or cache.response_hash(r.namespace, r.key, r.response) ~= r.response_hash then
      bad[#bad + 1] = r.key
    end
  end
  return #rows, bad
end

--- Size of a file in bytes, 0 when absent.
function M.size(path)
  local f = io.open(path, 'rb')
  if not f then return 0 end
  local n = f:seek('end')
  f:close()
  return n
end

--- Percentile `p` (0..1) of a sorted list.
function M.pct(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

return M
