local json = require('aegis.json')
local provider = require('aegis.provider')

local function stable(content, extra)
  local b = { kind = 'context', stability = 'stable', content = content }
  for k, v in pairs(extra or {}) do b[k] = v end
  return b
end

local function resolved(over)
  local r = {
    model = 'claude-sonnet-4-5',
    system = 'SYS',
    blocks = { stable('REQ'), stable('MAP'), { kind = 'task', stability = 'volatile', content = 'TASK' } },
    params = { temperature = 0.3, top_p = 0.9, top_k = 40, max_tokens = 1000, metadata = { user_id = 'u1' } },
    base_url = 'https://api.anthropic.com',
    options = {},
  }
  for k, v in pairs(over or {}) do r[k] = v end
  return r
end

-- Positions (1-based) of system blocks carrying cache_control, and their TTLs.
local function breakpoints(system)
  local at, ttls = {}, {}
  for i, b in ipairs(system) do
    if b.cache_control then
      at[#at + 1] = i
      ttls[#ttls + 1] = b.cache_control.ttl
      assert.equal('ephemeral', b.cache_control.type)
    end
  end
  return at, ttls
end

describe('providers/anthropic', function()
  local a = assert(provider.load('anthropic'))

  describe('build_request', function()
    it('builds a Messages request: system blocks, a breakpoint at the end of the stable prefix', function()
      local req = a.build_request(resolved())
      assert.equal('/v1/messages', req.path)
      assert.equal('2023-06-01', req.headers['anthropic-version'])
      assert.same({
        model = 'claude-sonnet-4-5',
        max_tokens = 1000,
        temperature = 0.3,
        top_p = 0.9,
        top_k = 40,
        metadata = { user_id = 'u1' },
        system = {
          { type = 'text', text = 'SYS' },
          { type = 'text', text = 'REQ' },
          { type = 'text', text = 'MAP', cache_control = { type = 'ephemeral', ttl = '5m' } },
        },
        messages = { { role = 'user', content = { { type = 'text', text = 'TASK' } } } },
      }, req.body)
      assert.is_nil(req.warnings)
    end)

    it('uses the requested TTL', function()
      local _, ttls = breakpoints(a.build_request(resolved({ cache = { ttl = '1h' } })).body.system)
      assert.same({ '1h' }, ttls)
    end)

    it('adds breakpoints on marked stable blocks', function()
      local r = resolved({ blocks = { stable('A', { breakpoint = true }), stable('B'), stable('C'),
        { kind = 'task', stability = 'volatile', content = 'T' } } })
      local at = breakpoints(a.build_request(r).body.system)
      assert.same({ 2, 4 }, at)  -- system is block 1
    end)

    it('places at most 4 breakpoints, keeping the last ones, and warns', function()
      local blocks = {}
      for i = 1, 7 do blocks[i] = stable('B' .. i, { breakpoint = true }) end
      blocks[8] = { kind = 'task', stability = 'volatile', content = 'T' }
      local req = a.build_request(resolved({ blocks = blocks }))
      local at = breakpoints(req.body.system)
      assert.same({ 5, 6, 7, 8 }, at)
      assert.same({ 'anthropic: 3 cache breakpoint(s) dropped (at most 4 per request)' }, req.warnings)
    end)

    it('places exactly 4 when 4 are asked for', function()
      local blocks = {}
      for i = 1, 4 do blocks[i] = stable('B' .. i, { breakpoint = true }) end
      blocks[5] = { kind = 'task', stability = 'volatile', content = 'T' }
      local r = resolved({ blocks = blocks })
      r.system = nil
      local req = a.build_request(r)
      assert.same({ 1, 2, 3, 4 }, (breakpoints(req.body.system)))
      assert.is_nil(req.warnings)
    end)

    it('marks the system text when there are no stable blocks, and nothing without either', function()
      local r = resolved({ blocks = { { kind = 'task', stability = 'volatile', content = 'T' } } })
      assert.same({ 1 }, (breakpoints(a.build_request(r).body.system)))
      r.system = nil
      assert.is_nil(a.build_request(r).body.system)
    end)

    it('leaves out temperature, top_p and top_k under 2026-10-21, with a warning', function()
      local req = a.build_request(resolved({ options = { version = '2026-10-21' } }))
      assert.equal('2026-10-21', req.headers['anthropic-version'])
      assert.is_nil(req.body.temperature)
      assert.is_nil(req.body.top_p)
      assert.is_nil(req.body.top_k)
      assert.equal(1000, req.body.max_tokens)
      assert.same({ 'u1' }, { req.body.metadata.user_id })
      assert.same({ 'anthropic: temperature, top_p, top_k left out '
        .. '(anthropic-version 2026-10-21 rejects sampling parameters)' },
        req.warnings)
    end)

    it('keeps sampling parameters under earlier versions, and warns of nothing without them', function()
      assert.equal(0.3, a.build_request(resolved({ options = { version = '2026-10-20' } })).body.temperature)
      local req = a.build_request(resolved({ options = { version = '2026-10-21' }, params = { max_tokens = 5 } }))
      assert.is_nil(req.warnings)
    end)

    it('defaults max_tokens, which the API requires', function()
      assert.equal(4096, a.build_request(resolved({ params = {} })).body.max_tokens)
    end)

    it('rejects a malformed version', function()
      assert.error_matches(function() a.build_request(resolved({ options = { version = 'latest' } })) end,
        "anthropic: options.version must be a date YYYY%-MM%-DD, got 'latest'")
    end)
  end)

  describe('usage', function()
    it('counts cache reads and writes into input, split by TTL', function()
      local u = a.usage({ input_tokens = 50, cache_read_input_tokens = 1000, cache_creation_input_tokens = 300,
        cache_creation = { ephemeral_5m_input_tokens = 100, ephemeral_1h_input_tokens = 200 }, output_tokens = 70 })
      assert.same({ input = 1350, cached_input = 1000, cache_write_5m = 100, cache_write_1h = 200, output = 70 }, u)
    end)

    it('gives the whole write to the TTL asked for when there is no split', function()
      local raw = { input_tokens = 5, cache_read_input_tokens = 0, cache_creation_input_tokens = 40, output_tokens = 1 }
      assert.same({ input = 45, cached_input = 0, cache_write_5m = 40, cache_write_1h = 0, output = 1 }, a.usage(raw,
        {}))
      assert.same({ input = 45, cached_input = 0, cache_write_5m = 0, cache_write_1h = 40, output = 1 },
        a.usage(raw, { cache = { ttl = '1h' } }))
    end)

    it('leaves unknown parts nil, and the total input with them', function()
      local u = a.usage({ input_tokens = 50, output_tokens = 3 })
      assert.is_nil(u.cached_input)
      assert.is_nil(u.cache_write_5m)
      assert.is_nil(u.input)
      assert.equal(3, u.output)
    end)
  end)

  describe('parse_response', function()
    it('reads the text blocks, stop reason and usage', function()
      local body = {
        id = 'msg_1', type = 'message', role = 'assistant', model = 'claude-sonnet-4-5-20250929',
        content = { { type = 'thinking', thinking = '...' }, { type = 'text', text = 'Hel' }, { type = 'text',
          text = 'lo' } },
        stop_reason = 'end_turn',
        usage = { input_tokens = 10, cache_read_input_tokens = 2048, cache_creation_input_tokens = 0,
          cache_creation = { ephemeral_5m_input_tokens = 0, ephemeral_1h_input_tokens = 0 }, output_tokens = 5 },
      }
      local out = a.parse_response({ status = 200, headers = {}, json = body, body = json.canonical(body) }, resolved())
      assert.equal('Hello', out.text)
      assert.equal('end_turn', out.finish)
      assert.same({ input = 2058, cached_input = 2048, cache_write_5m = 0, cache_write_1h = 0, output = 5 }, out.usage)
    end)

    it('returns nil and a reason for something else', function()
      local out, err = a.parse_response({ status = 200, json = { type = 'error' } }, resolved())
      assert.is_nil(out)
      assert.equal('not a message object', err)
    end)
  end)

  describe('parse_stream_event', function()
    local function ev(name, t) return { event = name, data = json.canonical(t) } end
    local function run(events)
      local state, text, done = {}, {}, false
      for _, e in ipairs(events) do
        local out = a.parse_stream_event(e, state, resolved())
        if out and out.error then return nil, out.error end
        if out and out.delta then text[#text + 1] = out.delta end
        if out and out.done then done = true end
      end
      return table.concat(text), state, done
    end

    it('follows the whole event sequence, ping included', function()
      local text, state, done = run({
        ev('message_start', { type = 'message_start', message = { id = 'm', type = 'message', role = 'assistant',
          model = 'claude-sonnet-4-5', content = json.array({}), usage = { input_tokens = 20,
            cache_read_input_tokens = 0, cache_creation_input_tokens = 1500,
            cache_creation = { ephemeral_5m_input_tokens = 1500, ephemeral_1h_input_tokens = 0 },
              output_tokens = 1 } } }),
        ev('content_block_start', { type = 'content_block_start', index = 0, content_block = { type = 'text',
          text = '' } }),
        ev('ping', { type = 'ping' }),
        ev('content_block_delta', { type = 'content_block_delta', index = 0, delta = { type = 'text_delta',
          text = 'Hi' } }),
        ev('content_block_delta', { type = 'content_block_delta', index = 0, delta = { type = 'text_delta',
          text = ' there' } }),
        ev('content_block_stop', { type = 'content_block_stop', index = 0 }),
        ev('message_delta', { type = 'message_delta', delta = { stop_reason = 'end_turn', stop_sequence = json.null },
          usage = { output_tokens = 12 } }),
        ev('message_stop', { type = 'message_stop' }),
      })
      assert.equal('Hi there', text)
      assert.is_true(done)
      assert.equal('end_turn', state.finish)
      assert.equal('claude-sonnet-4-5', state.model)
      assert.same({ input = 1520, cached_input = 0, cache_write_5m = 1500, cache_write_1h = 0, output = 12 },
        state.usage)
    end)

    it('turns a mid-stream error event into an error, retryable when overloaded', function()
      local text, err = run({
        ev('message_start', { type = 'message_start', message = { usage = { input_tokens = 1, output_tokens = 1 } } }),
        ev('content_block_delta', { type = 'content_block_delta', index = 0, delta = { type = 'text_delta',
          text = 'x' } }),
        ev('error', { type = 'error', error = { type = 'overloaded_error', message = 'Overloaded' } }),
      })
      assert.is_nil(text)
      assert.same({ message = 'Overloaded', type = 'overloaded_error', retryable = true }, err)
      local _, err2 = run({ ev('error', { type = 'error', error = { type = 'invalid_request_error',
        message = 'bad' } }) })
      assert.is_false(err2.retryable)
    end)

    it('is not done without message_stop', function()
      local text, _, done = run({
        ev('content_block_delta', { type = 'content_block_delta', index = 0, delta = { type = 'text_delta',
          text = 'x' } }),
      })
      assert.equal('x', text)
      assert.is_false(done)
    end)
  end)

  describe('classify_error', function()
    local function res(status, body, headers)
      return { status = status, headers = headers or {}, json = body, body = body and json.canonical(body) }
    end
    it('retries 429 and 529 with retry-after', function()
      local c = a.classify_error(res(529, { type = 'error', error = { type = 'overloaded_error',
        message = 'Overloaded' } }))
      assert.is_true(c.retryable)
      c = a.classify_error(res(429, { type = 'error', error = { type = 'rate_limit_error', message = 'slow down' } },
        { ['retry-after'] = '3' }))
      assert.is_true(c.retryable)
      assert.equal(3, c.wait)
    end)
    it('never retries a spend-limit refusal', function()
      local c = a.classify_error(res(429, { type = 'error', error = { type = 'rate_limit_error',
        message = 'You have reached your specified workspace API usage limits (spend limit)' } }))
      assert.is_false(c.retryable)
      assert.is_true(c.quota)
      c = a.classify_error(res(400, { type = 'error', error = { type = 'invalid_request_error',
        message = 'Your credit balance is too low to access the Anthropic API' } }))
      assert.is_false(c.retryable)
      assert.is_true(c.quota)
    end)
    it('does not retry 400, 401, 403, 404', function()
      for _, s in ipairs({ 400, 401, 403, 404 }) do assert.is_false(a.classify_error(res(s)).retryable) end
    end)
  end)
end)
