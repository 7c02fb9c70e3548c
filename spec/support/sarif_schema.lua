--- The SARIF 2.1.0 JSON schema for specs of `aegis-run enforce --format
--- sarif`: test tooling only. The schema is the OASIS one as shipped in the
--- npm package @microsoft/jest-sarif, fetched at test time into
--- build/sarif-schema with its integrity checked, never committed; the
--- validator is python3-jsonschema.
local h = require('spec.helpers')

local M = {}

local PKG = '@microsoft/jest-sarif'
local VERSION = '1.0.0-beta.0'
local INTEGRITY = 'sha512-A1fOhPd6Ic5iDk4F9YPw1qNB4XF+7+IviR7xl8r2F6QzQkx5cpY9LsGk2rExiFIEcBbjpVnSmwWGBukASkiQ9A=='
local MEMBER = 'package/lib/schemas/sarif-2.1.0-rtm.5.json'

local CACHE = os.getenv('PWD') .. '/build/sarif-schema'

local VALIDATE = [[
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
for e in errors:
    print("/".join(str(p) for p in e.path) + ": " + e.message)
sys.exit(1 if errors else 0)
]]

local function sh(cmd)
  return os.execute(cmd) == true
end

--- The schema file (fetched once into build/), or nil and why.
---@return string? file
---@return string? why
function M.file()
  local file = CACHE .. '/' .. MEMBER
  if h.read(file) then return file end
  local q = h.shell_quote
  os.execute('mkdir -p ' .. q(CACHE))
  local tgz = CACHE .. '/microsoft-jest-sarif-' .. VERSION .. '.tgz'
  if not h.read(tgz) and not sh('cd ' .. q(CACHE) .. ' && npm pack --silent ' .. q(PKG .. '@' .. VERSION)
      .. ' >/dev/null 2>&1') then
    return nil, 'npm pack ' .. PKG .. '@' .. VERSION .. ' failed (no npm registry?)'
  end
  local p = io.popen('openssl dgst -sha512 -binary ' .. q(tgz) .. ' | base64 -w0')
  local got = 'sha512-' .. p:read('a')
  p:close()
  if got ~= INTEGRITY then
    os.remove(tgz)
    error(('%s: integrity mismatch: expected %s, got %s'):format(tgz, INTEGRITY, got))
  end
  assert(sh('cd ' .. q(CACHE) .. ' && tar xzf ' .. q(tgz) .. ' ' .. q(MEMBER)))
  return file
end

--- Validates a SARIF document: the validator's errors ('' when valid) and
--- whether it passed; or nil and why the check cannot run here (the spec
--- then calls `pending` with it).
---@param text string The SARIF document
---@return string? errors
---@return boolean|string ok_or_why
function M.validate(text)
  local file, why = M.file()
  if not file then return nil, why end
  if not sh('python3 -c "import jsonschema" >/dev/null 2>&1') then return nil, 'needs python3-jsonschema (Debian)' end
  local out = h.tmpdir()
  h.write(out .. '/doc.sarif', text)
  h.write(out .. '/validate.py', VALIDATE)
  local p = io.popen(('python3 %s %s %s 2>&1'):format(h.shell_quote(out .. '/validate.py'), h.shell_quote(file),
    h.shell_quote(out .. '/doc.sarif')))
  local errs = p:read('a')
  local ok = p:close()
  return errs, ok == true
end

return M
