local prices = require('aegis.prices')

local function usage(t)
  return { input = t[1], cached_input = t[2], cache_write_5m = t[3], cache_write_1h = t[4], output = t[5] }
end

local function near(want, got)
  assert.is_number(got)
  assert.is_true(math.abs(want - got) < 1e-12, ('expected %.12g, got %.12g'):format(want, got))
end

describe('aegis.prices', function()
  it('has a dated, sourced built-in table', function()
    local t = prices.builtin()
    assert.matches('^%d%d%d%d%-%d%d%-%d%d$', t.date)
    assert.matches('openai', t.source)
    assert.matches('claude', t.source)
    assert.equal('USD per 1M tokens', t.unit)
    assert.is_table(t.providers.openai.models['gpt-5.4'])
    assert.is_table(t.providers.anthropic.models['claude-sonnet-4-5'])
  end)

  it('finds a dated snapshot under its alias', function()
    assert.equal(prices.lookup('openai', 'gpt-4o'), prices.lookup('openai', 'gpt-4o-2024-08-06'))
    assert.equal(prices.lookup('anthropic', 'claude-sonnet-4-5'), prices.lookup('anthropic',
      'claude-sonnet-4-5-20250929'))
    assert.is_nil(prices.lookup('openai', 'no-such-model'))
  end)

  it('prices OpenAI usage: cached tokens are part of input, at their own rate', function()
    -- gpt-5.4: 2.5 input, 0.25 cached, 15 output per 1M
    near((1000 * 2.5 + 1000 * 0.25 + 100 * 15) / 1e6, prices.cost('openai', 'gpt-5.4', usage({ 2000, 1000, 0, 0,
      100 })))
  end)

  it('prices Anthropic usage with 5m and 1h writes', function()
    -- sonnet 4.5: 3 input, 0.3 read, 3.75 5m write, 6 1h write, 15 output
    local u = usage({ 50 + 1000 + 100 + 200, 1000, 100, 200, 70 })
    near((50 * 3 + 1000 * 0.3 + 100 * 3.75 + 200 * 6 + 70 * 15) / 1e6, prices.cost('anthropic', 'claude-sonnet-4-5', u))
  end)

  it('switches to the long-context tier above its threshold', function()
    local u = usage({ 250000, 0, 0, 0, 1000 })
    near((250000 * 6 + 1000 * 22.5) / 1e6, prices.cost('anthropic', 'claude-sonnet-4-5', u))
    near((200000 * 3 + 1000 * 15) / 1e6, prices.cost('anthropic', 'claude-sonnet-4-5', usage({ 200000, 0, 0, 0,
      1000 })))
  end)

  it('gives nil and a reason, never 0, for a model without a price', function()
    local cost, why = prices.cost('vllm', 'Qwen/Qwen3-8B', usage({ 10, nil, 0, 0, 2 }))
    assert.is_nil(cost)
    assert.equal("no price for vllm model 'Qwen/Qwen3-8B' (add it to prices in aegis.config.lua)", why)
  end)

  it('gives nil when a count the cost needs is unknown', function()
    local cost, why = prices.cost('openai', 'gpt-5.4', usage({ 10, nil, 0, 0, 2 }))
    assert.is_nil(cost)
    assert.equal("cached input of openai model 'gpt-5.4' is unknown", why)
    cost, why = prices.cost('openai', 'gpt-5.4', usage({ nil, 0, 0, 0, 2 }))
    assert.is_nil(cost)
    assert.equal("usage of openai model 'gpt-5.4' is unknown (input tokens)", why)
  end)

  it('prices an unknown part at the input rate when its rate is the input rate', function()
    local over = { vllm = { qwen = { input = 0.1, output = 0.2 } } }
    near((10 * 0.1 + 2 * 0.2) / 1e6, prices.cost('vllm', 'qwen', usage({ 10, nil, 0, 0, 2 }), { overrides = over }))
  end)

  it('lets the config override and add models', function()
    local over = { openai = { ['gpt-5.4'] = { input = 1, cached_input = 0.5, output = 2 } },
      llamacpp = { ['local'] = { input = 0, cached_input = 0, output = 0 } } }
    near((10 * 1 + 2 * 2) / 1e6, prices.cost('openai', 'gpt-5.4', usage({ 10, 0, 0, 0, 2 }), { overrides = over }))
    assert.equal(0, prices.cost('llamacpp', 'local', usage({ 10, 4, 0, 0, 2 }), { overrides = over }))
  end)

  it('refuses tokens of a class without a rate', function()
    local cost, why = prices.cost('openai', 'gpt-5.5-pro', usage({ 10, 5, 0, 0, 2 }))
    assert.is_nil(cost)
    assert.equal("no cached input price for openai model 'gpt-5.5-pro'", why)
  end)

  it('refuses inconsistent usage', function()
    local cost, why = prices.cost('openai', 'gpt-5.4', usage({ 10, 20, 0, 0, 2 }))
    assert.is_nil(cost)
    assert.matches('inconsistent', why)
  end)

  it('validates config entries with its schema', function()
    local s = require('aegis.schema')
    local schema = prices.schema(s)
    assert.is_not_nil(schema:parse({ openai = { x = { input = 1, output = 2, tiers = { { above_input_tokens = 5,
      input = 2 } } } } }))
    local ok, err = schema:parse({ openai = { x = { input = -1 } } })
    assert.is_nil(ok)
    assert.is_not_nil(err)
  end)
end)
