local h = require('spec.helpers')
local json = require('aegis.json')
local emu = require('spec.fixtures.emulator.client')

-- The official SDKs against the emulator: they parse its replies, streams,
-- usage and errors and retry as they do against the real services. The
-- packages come from $AEGIS_SDK_DIR or build/node (node_modules with openai 6.x
-- and @anthropic-ai/sdk 1.x: tools/test.sh installs them; spec/functional/sdk_spec.lua too).
describe('the official SDKs against aegis-run emulate', function()
  local dir = os.getenv('AEGIS_SDK_DIR') or (os.getenv('PWD') .. '/build/node')

  local function available()
    return os.execute('command -v node >/dev/null 2>&1') == true
      and h.read(dir .. '/node_modules/openai/package.json') ~= nil
      and h.read(dir .. '/node_modules/@anthropic-ai/sdk/package.json') ~= nil
  end

  it('parse replies, streams, usage and errors, and retry with exact attempt counts', function()
    if not available() then
      pending('needs node and the SDK packages in ' .. dir)
      return
    end
    local e = emu.start()
    finally(function() e:stop() end)
    local p = io.popen(('node spec/fixtures/emulator/sdk_check.mjs %d %s 2>&1'):format(e.port, h.shell_quote(dir)))
    local out = p:read('a')
    p:close()
    local r = assert(json.decode(out), out)
    assert.is_string(r.chat[1])
    assert.equal(0, r.chat[2])
    assert.same({ true, 24 }, r.chatStream)
    assert.same({ true, 'response.created', 'response.completed' }, r.responsesStream)
    assert.same({ 3, '429,500,200', true }, r.openaiRetries)
    assert.same({ 'RateLimitError', 429, 'insufficient_quota', 'insufficient_quota' }, r.openaiError)
    assert.equal(0, r.anthropic[3])
    assert.same({ true, r.anthropicStream[2], 'end_turn' }, r.anthropicStream)
    assert.same({ 3, '529,429,200' }, r.anthropicRetries)
    assert.same({ 'APIError', 'overloaded_error' }, r.midStream)
    assert.equal('AnthropicError', r.truncated[1])
    assert.same({ 'OverloadedError', 529, 'overloaded_error' }, r.overloaded)
    assert.is_true(r.afterReset)
  end)
end)
