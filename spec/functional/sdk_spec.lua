-- The official SDKs against the emulator: spec/support/sdk_check.mjs, run
-- with node on the pinned openai and @anthropic-ai/sdk packages, installed
-- into build/node on first use (network to the npm registry only then).
local h = require('spec.helpers')

local PINS = { 'openai@6.49.0', '@anthropic-ai/sdk@1.14.0' }
local PREFIX = 'build/node'

local function sh(cmd)
  local p = io.popen(cmd .. ' 2>&1')
  local out = p:read('a')
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

-- Starts `aegis-run emulate --port 0`; returns its base URL and a stop function.
local function start_emulator()
  local p = io.popen("sh -c 'echo $$; exec " .. h.shell_quote(h.bin) .. " emulate --port 0' 2>&1")
  local pid = p:read('l')
  local line = p:read('l') or ''
  local function stop()
    if math.tointeger(tonumber(pid)) then os.execute('kill ' .. math.tointeger(tonumber(pid)) .. ' 2>/dev/null') end
    p:close()
  end
  local url = line:match('emulator listening on (http://127%.0%.0%.1:%d+)')
  if not url then
    stop()
    error('emulator did not start: ' .. line, 2)
  end
  return url, stop
end

local function installed()
  for _, pin in ipairs(PINS) do
    local name, version = pin:match('^(.+)@([^@]+)$')
    local f = io.open(PREFIX .. '/node_modules/' .. name .. '/package.json')
    if not f then return false end
    local text = f:read('a')
    f:close()
    if not text:find('"version": "' .. version:gsub('%p', '%%%0') .. '"') then return false end
  end
  return true
end

describe('official SDKs against the emulator', function()
  it('parse plain and streamed answers, usage and errors, and retry as against the real services', function()
    if sh('command -v node') ~= 0 then
      pending('needs node (make deps installs npm and node)')
      return
    end
    if not installed() then
      local code, out = sh('npm install --prefix ' .. PREFIX .. ' --save-exact --no-audit --no-fund --silent '
        .. table.concat(PINS, ' '))
      assert.equal(0, code, 'npm install failed: ' .. out)
    end
    local url, stop = start_emulator()
    local code, out = sh('node spec/support/sdk_check.mjs ' .. url .. ' ' .. PREFIX)
    stop()
    local summary = out:match('({"checks":[^\n]*})')
    assert.is_not_nil(summary, out)
    for line in out:gmatch('[^\n]+') do
      if line:find('"ok":false', 1, true) then error('SDK check failed: ' .. line, 0) end
    end
    assert.equal(0, code, out)
    assert.matches('"failed":0', summary)
    assert.matches('"checks":14', summary)
    assert.matches('"openai":"6.49.0"', summary)
    assert.matches('"anthropic":"1.14.0"', summary)
  end)
end)
