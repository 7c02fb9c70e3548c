-- cache.key: what the request key covers (docs/cache.md "Keys").
local cache = require('aegis.cache')
local json = require('aegis.json')
local hash = require('aegis.hash')

local function req(extra)
  local o = {
    provider = 'openai', model = 'gpt-5.4', base_url = 'http://127.0.0.1:1/v1',
    system = 'You write TypeScript.',
    blocks = {
      { kind = 'requirements', stability = 'stable', content = 'R' },
      { kind = 'task', stability = 'volatile', content = 'Write add.ts' },
    },
    params = { max_tokens = 100 },
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function key(extra) return (assert(cache.key(req(extra)))) end

describe('aegis.cache.key', function()
  it('is the SHA-256 of the canonical request it returns', function()
    local k, canon = cache.key(req())
    assert.equal(hash.sha256(canon), k)
    assert.equal(json.canonical(json.decode(canon)), canon)
    local t = json.decode(canon)
    assert.equal('openai', t.provider)
    assert.equal('/chat/completions', t.endpoint)
    assert.equal('gpt-5.4', t.model)
    assert.equal(cache.KEY_VERSION, t.key_version)
    assert.equal(0, t.sample_index)
    assert.is_false(t.stream)
    -- prompt texts enter by their SHA-256; every other field as given
    assert.equal(hash.sha256('You write TypeScript.'), t.system_sha256)
    assert.is_nil(t.system)
    assert.same({ kind = 'task', stability = 'volatile', content_sha256 = hash.sha256('Write add.ts') }, t.blocks[2])
  end)

  it('is the same for the same request, whatever the order keys were written in', function()
    local a = key({ params = { max_tokens = 100, temperature = 0.2, seed = 7, stop = { 'x', 'y' } } })
    local p = {}
    p.stop = { 'x', 'y' }
    p.seed = 7
    p.temperature = 0.2
    p.max_tokens = 100
    assert.equal(a, key({ params = p }))
    -- 1 and 1.0 are one number in canonical JSON
    assert.equal(key({ params = { max_tokens = 100, temperature = 1 } }),
      key({ params = { max_tokens = 100, temperature = 1.0 } }))
  end)

  it('treats an omitted parameter as the provider default, not as 0', function()
    local omitted = key()
    assert.equal(omitted, key({ params = { max_tokens = 100, temperature = 1 } }))
    assert.equal(omitted, key({ params = { max_tokens = 100, top_p = 1, n = 1 } }))
    assert.not_equal(omitted, key({ params = { max_tokens = 100, temperature = 0 } }))
    local t = json.decode(select(2, cache.key(req())))
    assert.equal(1, t.params.temperature)
  end)

  it('uses each adapter its own defaults', function()
    local function k(provider, params, base)
      return (assert(cache.key({ provider = provider, model = 'm', base_url = base,
        blocks = { { kind = 'task', stability = 'volatile', content = 'x' } }, params = params })))
    end
    local a = 'http://127.0.0.1:1/anthropic'
    assert.equal(k('anthropic', {}, a), k('anthropic', { temperature = 1, max_tokens = 4096 }, a))
    assert.not_equal(k('anthropic', {}, a), k('anthropic', { temperature = 0.8 }, a))
    local l = 'http://127.0.0.1:1/llamacpp'
    assert.equal(k('llamacpp', {}, l), k('llamacpp', { temperature = 0.8, top_k = 40 }, l))
    assert.not_equal(k('llamacpp', {}, l), k('llamacpp', { temperature = 1 }, l))
    -- vLLM's sampling defaults come from the model: an omitted temperature is not assumed
    local v = 'http://127.0.0.1:1/vllm'
    assert.not_equal(k('vllm', {}, v), k('vllm', { temperature = 1 }, v))
    assert.equal(k('vllm', {}, v), k('vllm', { n = 1 }, v))
  end)

  it('changes with a parameter it does not know (fail closed)', function()
    local a = key({ params = { max_tokens = 100, x_new_knob = 'a' } })
    assert.not_equal(key(), a)
    assert.not_equal(a, key({ params = { max_tokens = 100, x_new_knob = 'b' } }))
    assert.not_equal(a, key({ params = { max_tokens = 100, x_new_knob = { nested = 'a' } } }))
  end)

  it('changes with every part of the request', function()
    local base = key()
    local variants = {
      { model = 'gpt-5.4-mini' },
      { system = 'You write Go.' },
      { blocks = { { kind = 'requirements', stability = 'stable', content = 'R2' },
        { kind = 'task', stability = 'volatile', content = 'Write add.ts' } } },
      { blocks = { { kind = 'requirements', stability = 'stable', content = 'R' },
        { kind = 'context', stability = 'volatile', content = 'Write add.ts' } } },
      { messages = { { role = 'user', content = 'and tests' } } },
      { params = { max_tokens = 101 } },
      { stream = true },
      { sample_index = 1 },
      { options = { api = 'responses' } },
      { provider = 'vllm', base_url = 'http://127.0.0.1:1/vllm' },
    }
    local seen = { [base] = true }
    for i, v in ipairs(variants) do
      local k = key(v)
      assert.is_nil(seen[k], 'variant ' .. i .. ' collided')
      seen[k] = true
    end
  end)

  it('puts the endpoint below the base URL in the key, not the host', function()
    local a = key({ base_url = 'http://127.0.0.1:1/v1' })
    assert.equal(a, key({ base_url = 'http://10.0.0.5:8000/v1' }))
    local t = json.decode(select(2, cache.key(req({ options = { api = 'responses' } }))))
    assert.equal('/responses', t.endpoint)
  end)

  it('ignores what does not change the answer: callbacks, transport, retry, provider-cache hints', function()
    local a = key()
    assert.equal(a, key({ on_delta = function() end, http = {}, retry = { sleep = function() end },
      timeout = { total = 5 }, cache = { ttl = '1h' }, on_warning = function() end }))
  end)

  it('counts empty blocks, messages and params as absent', function()
    local o = req({ params = {}, messages = {} })
    local k1 = assert(cache.key(o))
    o.params, o.messages = nil, nil
    assert.equal(k1, (cache.key(o)))
  end)

  it('keys sample_index: repeats are separate entries', function()
    local k0, k1, k2 = key({ sample_index = 0 }), key({ sample_index = 1 }), key({ sample_index = 2 })
    assert.equal(key(), k0)
    assert.not_equal(k0, k1)
    assert.not_equal(k1, k2)
  end)

  it('builds the same text json.canonical makes of the canonical request, whatever its shape', function()
    local variants = {
      {},
      { system = 'é "quoted" \\ \n\t' .. string.char(1) },
      { system = '' },
      { blocks = { { kind = 'requirements', stability = 'stable', content = 'R', breakpoint = true },
        { kind = 'ställ "x"', stability = 'stable', content = '', breakpoint = false },
        { stability = 'volatile', content = 'no kind' } } },
      { blocks = { { kind = 'task', stability = 'volatile', content = 'x', hash = 'abc', extra = { 1, 2 } } } },
      { messages = { { role = 'assistant', content = 'a' }, { role = 'user', content = 'b\u{1F600}' } } },
      { messages = { { role = 'user', content = 'b', name = 'bob' }, { content = 'no role' } } },
      { params = { temperature = 0.1, stop = { '\n', '</s>' }, ['x\u{E000}'] = 1, ['x\u{10000}'] = 2,
        logit_bias = { ['50256'] = -100 }, max_tokens = 1e3 } },
      { params = {} },
      { options = { api = 'responses', extra = { 'a' } } },
      { model = 'mödel/"x"', stream = true, sample_index = 12 },
      { provider = 'anthropic', base_url = 'http://127.0.0.1:1/anthropic', options = { version = '2026-10-21' } },
      { provider = 'llamacpp', base_url = 'http://127.0.0.1:1/llamacpp', params = { top_k = 1 } },
    }
    local fast = 0
    for i, v in ipairs(variants) do
      local t, text, ckey = cache._canonical(req(v))
      assert.equal(json.canonical(t), text, 'variant ' .. i)
      local k, ktext = cache.key(req(v))  -- built in C for the usual shapes
      assert.equal(text, ktext, 'variant ' .. i)
      assert.equal(hash.sha256(text), k, 'variant ' .. i)
      -- the C path gives the same key, or leaves the shape to Lua
      if ckey then
        fast = fast + 1
        assert.equal(hash.sha256(text), ckey, 'variant ' .. i)
      end
    end
    assert.equal(10, fast)  -- all but: an escaped kind, extra block fields, extra message fields
  end)

  it('encodes flat parameters in C exactly as json.canonical does', function()
    local core = require('aegis.core.cache')
    local values = { 0, -0.0, 1, -1, 1.0, 0.1, 0.7, 1 / 3, 2 / 3, 1e21, 1e20, 123456789012345680000, 1e-6, 1e-7,
      1.5e-7, -2.5e300, 5e-324, 1.7976931348623157e308, 2 ^ 53, -(2 ^ 53), 100, 4096, 0.000001234, 123.456,
      true, false, 'plain', '', 'a b-c_d.e' }
    local seed = 7
    for _ = 1, 300 do  -- and a few hundred doubles of every magnitude
      seed = (seed * 1103515245 + 12345) % 2147483648
      values[#values + 1] = (seed / 2147483648 - 0.5) * 10 ^ (seed % 40 - 20)
    end
    for i, v in ipairs(values) do
      local defaults = { temperature = 1, n = 1 }
      local params = { z_last = v, a_first = i, temperature = v }
      local want = {}
      for k, x in pairs(defaults) do want[k] = x end
      for k, x in pairs(params) do want[k] = x end
      assert.equal(',"params":' .. json.canonical(want), core.params(defaults, params), 'value ' .. tostring(v))
    end
    -- what it leaves to json.canonical
    assert.is_nil(core.params({}, { stop = { 'x' } }))
    assert.is_nil(core.params({}, { s = 'needs "escaping"' }))
    assert.is_nil(core.params({}, { s = 'é' }))
    assert.is_nil(core.params({}, { ['é'] = 1 }))
    assert.is_nil(core.params({}, { x = 0 / 0 }))
    assert.is_nil(core.params({}, { x = math.maxinteger }))
    assert.equal('', core.params({}, {}))
  end)

  it('raises on misuse, as provider.call does', function()
    assert.error_matches(function() cache.key('x') end, "bad argument #1 to 'key' %(table expected, got string%)")
    assert.error_matches(function() cache.key(req({ model = '' })) end,
      "bad argument #1 to 'key' %(model must be a non%-empty string%)")
    assert.error_matches(function() cache.key(req({ sample_index = -1 })) end,
      'sample_index must be a non%-negative integer')
    assert.error_matches(function()
      cache.key(req({ blocks = { { kind = 'task', stability = 'volatile', content = 'a' },
        { kind = 'r', stability = 'stable', content = 'b' } } }))
    end, 'stable after a volatile block')
    assert.error_matches(function() cache.key(req({ params = { temperature = 0 / 0 } })) end, 'json: cannot encode')
  end)

  it('returns nil, err for a provider that does not exist', function()
    local k, err = cache.key(req({ provider = 'no-such-provider' }))
    assert.is_nil(k)
    assert.equal('config', err.code)
    assert.matches("no provider 'no%-such%-provider'", err.msg)
  end)
end)
