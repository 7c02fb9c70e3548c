local h = require('spec.helpers')
local config = require('aegis.config')
local provider = require('aegis.provider')

local util = provider.util

-- An AEGIS_PATH directory with these providers/<name>.lua files.
local function adapters(files)
  local dir = h.tmpdir()
  os.execute('mkdir -p ' .. h.shell_quote(dir .. '/providers'))
  for name, src in pairs(files) do h.write(dir .. '/providers/' .. name .. '.lua', src) end
  return dir
end

local MINIMAL = [[
return {
  name = 'mine',
  base_url = 'http://127.0.0.1:1/x',
  build_request = function(r) return { method = 'POST', path = '/gen', body = { m = r.model } } end,
  parse_response = function(res) return { text = res.json.out, usage = {} } end,
  parse_stream_event = function() return nil end,
  classify_error = function(res) return { retryable = false } end,
}
]]

local function task(text)
  return { { kind = 'task', stability = 'volatile', content = text or 'T' } }
end

describe('aegis.provider', function()
  describe('load', function()
    it('loads each built-in adapter', function()
      for _, name in ipairs({ 'openai', 'anthropic', 'vllm', 'sglang', 'llamacpp' }) do
        local a, err = provider.load(name)
        assert.is_nil(err)
        assert.equal(name, a.name)
        for _, f in ipairs({ 'build_request', 'parse_response', 'parse_stream_event', 'classify_error' }) do
          assert.is_function(a[f], name .. '.' .. f)
        end
      end
      local names = provider.list()
      for _, name in ipairs({ 'anthropic', 'llamacpp', 'openai', 'sglang', 'vllm' }) do
        assert.is_truthy(table.concat(names, ' '):find(name, 1, true))
      end
    end)

    it('prefers an adapter on AEGIS_PATH over the built-in one', function()
      local dir = adapters({ openai = MINIMAL })
      local a = assert(provider.load('openai', dir))
      assert.equal('mine', a.name)
    end)

    it('looks in the config\'s paths before AEGIS_PATH', function()
      local dir = adapters({ mine = MINIMAL })
      local cdir = h.tmpdir()
      h.write(cdir .. '/aegis.config.lua', ('return { paths = { %q } }'):format(dir))
      config.load({ path = cdir .. '/aegis.config.lua' })
      local a, err = provider.load('mine')
      config.reset()
      assert.is_nil(err)
      assert.equal('mine', a.name)
    end)

    it('returns not_found for an unknown adapter', function()
      local a, err, code = provider.load('nope', h.tmpdir())
      assert.is_nil(a)
      assert.equal('not_found', code)
      assert.matches("^path: no provider 'nope' in AEGIS_PATH", err)
    end)

    it('returns adapter errors for a broken adapter', function()
      local dir = adapters({
        notable = 'return 42',
        nofn = "return { build_request = function() end }",
        boom = "error('boom')",
        escape = "return io.open('/etc/passwd')",
      })
      local a, err, code = provider.load('notable', dir)
      assert.is_nil(a)
      assert.equal('adapter', code)
      assert.matches("^provider: load '.*/providers/notable.lua': must return a table, got number$", err)
      local _
      _, err = provider.load('nofn', dir)
      assert.matches('parse_response must be a function$', err)
      _, err = provider.load('boom', dir)
      assert.matches("^provider: load '.*/providers/boom.lua': .*boom.lua:1: boom$", err)
      _, err = provider.load('escape', dir)
      assert.matches("sandbox: undefined global 'io'", err)
    end)

    it('runs adapters in the sandbox, where API keys cannot be read', function()
      local dir = adapters({ peek = [[
        local key = os.getenv('OPENAI_API_KEY')
        return { build_request = function() return key end, parse_response = print,
          parse_stream_event = print, classify_error = print }
      ]] })
      local a = assert(provider.load('peek', dir))
      assert.is_nil(a.build_request())
    end)

    it('gives adapters read-only helpers', function()
      local dir = adapters({ evil = [[
        local ctx = ...
        ctx.util.count = function() return 0 end
      ]] })
      local _, err = provider.load('evil', dir)
      assert.matches('provider: ctx.util is read%-only', err)
    end)

    it('lets an adapter build on another one through ctx.require', function()
      local dir = adapters({ compat = [[
        local ctx = ...
        local openai = ctx.require('openai')
        return { name = 'compat', build_request = function(r)
          return { path = '/v1/chat/completions', body = openai.chat.body(r, { max_field = 'max_tokens' }) } end,
          parse_response = openai.chat.parse, parse_stream_event = openai.chat.stream_event,
          classify_error = ctx.util.classify_http }
      ]] })
      local a = assert(provider.load('compat', dir))
      local req = a.build_request({ model = 'm', blocks = task('hi'), params = {} })
      assert.same({ { role = 'user', content = 'hi' } }, req.body.messages)
    end)

    it('stops an adapter that loops, with the budget', function()
      local dir = adapters({ loop = 'while true do end' })
      local saved = provider.budget
      provider.budget = { instructions = 100000, seconds = 5, memory = 0 }
      local a, err = provider.load('loop', dir)
      provider.budget = saved
      assert.is_nil(a)
      assert.matches('instruction budget exceeded', err)
    end)
  end)

  describe('util', function()
    it('counts only non-negative integers; anything else is unknown', function()
      assert.equal(3, util.count(3))
      assert.equal(3, util.count(3.0))
      assert.equal(0, util.count(0))
      assert.is_nil(util.count(nil))
      assert.is_nil(util.count(-1))
      assert.is_nil(util.count(1.5))
      assert.is_nil(util.count('3'))
      assert.is_nil(util.count(require('aegis.json').null))
    end)

    it('sums counts, nil when one is unknown', function()
      assert.equal(6, util.sum(1, 2, 3))
      assert.is_nil(util.sum(1, nil, 3))
    end)

    it('renders the stable prefix and the volatile part', function()
      local r = util.render({ system = 'S', blocks = {
        { kind = 'a', stability = 'stable', content = 'A' }, { kind = 'b', stability = 'stable', content = 'B' },
        { kind = 'c', stability = 'volatile', content = 'C' }, { kind = 'd', stability = 'volatile',
          content = 'D' } } })
      assert.equal('S\n\nA\n\nB', r.prefix)
      assert.equal('C\n\nD', r.volatile)
      assert.equal(2, #r.stable)
      local e = util.render({ blocks = {} })
      assert.is_nil(e.prefix)
      assert.is_nil(e.volatile)
    end)

    it('joins URLs with one slash', function()
      assert.equal('http://h/v1/x', util.join_url('http://h/v1/', '/x'))
      assert.equal('http://h/v1/x', util.join_url('http://h/v1', 'x'))
    end)
  end)

  describe('redact', function()
    local key = 'sk-' .. 'ant-api03-' .. ('A'):rep(40)
    it('removes the key in its literal, URL-encoded, JSON-escaped and base64 forms', function()
      local b64 = 'c2stYW50LWFwaTAzLUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE='
      local s = provider.redact('a ' .. key .. ' b ' .. b64 .. ' c', key)
      assert.equal('a [redacted] b [redacted] c', s)
      local slashy = 'k/y+z=' .. ('B'):rep(10)
      assert.equal('x [redacted] [redacted]',
        provider.redact('x k%2Fy%2Bz%3D' .. ('B'):rep(10) .. ' k\\/y+z=' .. ('B'):rep(10), slashy))
    end)
    it('leaves text alone without a key', function()
      assert.equal('abc', provider.redact('abc', nil))
      assert.equal(5, provider.redact(5, key))
    end)
  end)

  describe('build', function()
    it('gives the request without credentials', function()
      local req, err = provider.build({ provider = 'openai', model = 'gpt-5.4', blocks = task('hi'),
        getenv = function(n) return n == 'OPENAI_API_KEY' and 'sk-secret-000' or nil end })
      assert.is_nil(err)
      assert.equal('https://api.openai.com/v1/chat/completions', req.url)
      assert.is_nil(req.headers.authorization)
    end)

    it('takes the base URL from the argument, then the environment, then the default', function()
      local env = { OPENAI_BASE_URL = 'http://127.0.0.1:9/openai/v1' }
      local getenv = function(n) return env[n] end
      local req = provider.build({ provider = 'openai', model = 'm', blocks = task(), getenv = getenv })
      assert.equal('http://127.0.0.1:9/openai/v1/chat/completions', req.url)
      req = provider.build({ provider = 'openai', model = 'm', blocks = task(), getenv = getenv,
        base_url = 'http://127.0.0.1:8/v1/' })
      assert.equal('http://127.0.0.1:8/v1/chat/completions', req.url)
      req = provider.build({ provider = 'anthropic', model = 'm', blocks = task(), getenv = function() end })
      assert.equal('https://api.anthropic.com/v1/messages', req.url)
    end)

    it('takes base URL and options from aegis.config.lua', function()
      local dir = h.tmpdir()
      h.write(dir .. '/aegis.config.lua', [[return { providers = {
        anthropic = { base_url = 'http://127.0.0.1:7/anthropic', options = { version = '2026-10-21' } } } }]])
      config.load({ path = dir .. '/aegis.config.lua' })
      local ok, req = pcall(provider.build, { provider = 'anthropic', model = 'm', blocks = task(),
        params = { temperature = 1 }, getenv = function() end })
      config.reset()
      assert.is_true(ok, req)
      assert.equal('http://127.0.0.1:7/anthropic/v1/messages', req.url)
      assert.equal('2026-10-21', req.headers['anthropic-version'])
      assert.is_nil(req.body.temperature)
    end)

    it('reports an adapter error as code adapter', function()
      local req, err = provider.build({ provider = 'openai', model = 'm', blocks = {}, getenv = function() end })
      assert.is_nil(req)
      assert.equal('adapter', err.code)
      assert.equal("provider: adapter 'openai' build_request: openai: the request has no user turn "
        .. '(no volatile block and no messages)', err.msg)
    end)

    it('reports an unknown provider as a config error', function()
      local req, err = provider.build({ provider = 'nope', model = 'm', blocks = task(), aegis_path = h.tmpdir() })
      assert.is_nil(req)
      assert.equal('config', err.code)
      assert.equal(2, err.exit)
    end)

    it('raises on a malformed request', function()
      assert.error_matches(function() provider.build({ provider = 'openai', blocks = task() }) end,
        "bad argument #1 to 'build' %(model must be a non%-empty string%)")
      assert.error_matches(function()
        provider.build({ provider = 'openai', model = 'm', blocks = {
          { kind = 't', stability = 'volatile', content = 'v' }, { kind = 's', stability = 'stable',
            content = 's' } } })
      end, 'blocks%[2%] is stable after a volatile block')
      assert.error_matches(function()
        provider.build({ provider = 'openai', model = 'm', blocks = { { kind = 't', stability = 'sometimes',
          content = 'v' } } })
      end, "blocks%[1%].stability must be 'stable' or 'volatile'")
      assert.error_matches(function()
        provider.build({ provider = 'openai', model = 'm', blocks = task(), cache = { ttl = '24h' } })
      end, "cache.ttl must be '5m' or '1h'")
      assert.error_matches(function() provider.build('openai') end,
        "bad argument #1 to 'build' %(table expected, got string%)")
    end)
  end)

  describe('normalize_usage', function()
    it('keeps the five fields, counts only', function()
      assert.same({ input = 1, output = 2 }, provider.normalize_usage({ input = 1, output = 2, total = 3,
        cached_input = -1 }))
      assert.same({}, provider.normalize_usage(nil))
    end)
  end)
end)
