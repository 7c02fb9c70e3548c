-- Acceptance (issue 4): a scaffold-heavy workload — many requests sharing
-- requirements, file map and style guide, with varying tasks — against the
-- provider emulator shows a stable-scaffold hit rate above 80 % in
-- `aegis-run cache analyze --json`, and the emulator reports provider-side
-- cached tokens on every request after the first with the same stable
-- prefix (Anthropic and OpenAI, and the self-hosted vLLM, SGLang and
-- llama.cpp), on SQLite and PostgreSQL.
local h = require('spec.helpers')
local emu = require('spec.fixtures.emulator.client')
local cache = require('aegis.cache')
local json = require('aegis.json')
local scaffold = require('aegis.scaffold')
local store = require('aegis.store')
local uuid = require('aegis.uuid')

local TASKS = 20

local function fresh(b)
  if b.name == 'sqlite' then return 'sqlite:' .. h.tmpdir() .. '/cache.db' end
  local schema = 'cache_workload_' .. uuid.v4():gsub('-', '')
  local db = assert(store.open(b.url))
  assert(db:exec('CREATE SCHEMA ' .. schema))
  db:close()
  return b.url .. (b.url:find('?', 1, true) and '&' or '?') .. 'options=-csearch_path%3D' .. schema
end

-- The shared stable blocks: about 9 KB, well above the 1024-token minimum
-- of both providers (4 bytes a token).
local REQUIREMENTS = {}
for i = 1, 60 do
  REQUIREMENTS[i] = ('R%02d. The parser module handles case %d of the grammar and reports its errors with line and'
    .. ' column.'):format(i, i)
end
REQUIREMENTS = table.concat(REQUIREMENTS, '\n')
local FILE_MAP = {}
for i = 1, 40 do FILE_MAP[i] = ('src/module%02d.ts  exports parse%02d, check%02d'):format(i, i, i) end
FILE_MAP = table.concat(FILE_MAP, '\n')
local STYLE = string.rep('Strict TypeScript, no any, named exports, one test file per module. ', 20)

local KEYS = { OPENAI_API_KEY = 'sk-test-openai', ANTHROPIC_API_KEY = 'sk-ant-test' }
local function getenv(name)
  return KEYS[name] or os.getenv(name)
end

-- Warnings of the provider calls: self-hosted models have no price.
local function on_warning(msg)
  assert(msg:find('^cost unknown: no price for %a+ model'), 'unexpected warning: ' .. msg)
end

local function request(provider, model, base_url, task)
  return {
    name = 'module-file', provider = provider, model = model, base_url = base_url, getenv = getenv,
    on_warning = on_warning,
    blocks = {
      { kind = 'requirements', stability = 'stable', content = REQUIREMENTS },
      { kind = 'file_map', stability = 'stable', content = FILE_MAP },
      { kind = 'style_guide', stability = 'stable', content = STYLE },
      { kind = 'task', stability = 'volatile', content = task },
    },
    params = { max_tokens = 64 },
  }
end

describe('scaffold-heavy workload through the cache', function()
  local e
  lazy_setup(function() e = emu.start({ '--report-cached' }) end)
  lazy_teardown(function() if e then e:stop() end end)

  for _, b in ipairs(h.store_backends()) do
    it('reuses stable scaffolds and gets provider prefix-cache hits (' .. b.name .. ')', function()
      if not h.needs(b) then return end
      local url = fresh(b)
      e:reset()
      local c = assert(cache.open(url, { warn = function(msg) error('unexpected warning: ' .. msg) end }))
      local providers = {
        { name = 'anthropic', model = 'claude-sonnet-4-5', base = e.base.anthropic, min = 1024 },
        { name = 'openai', model = 'gpt-5.4', base = e.base.openai, min = 1024 },
        { name = 'vllm', model = 'Qwen/Qwen3-8B', base = e.url .. '/vllm', min = 16 },
        { name = 'sglang', model = 'Qwen/Qwen3-8B', base = e.url .. '/sglang', min = 1 },
        { name = 'llamacpp', model = 'qwen3-8b', base = e.base.llamacpp, min = 1 },
      }
      for _, p in ipairs(providers) do
        for i = 1, TASKS do
          local r = assert(scaffold.resolve(request(p.name, p.model, p.base, ('Write src/module%02d.ts'):format(i)),
            { cache = c }))
          assert.same({}, r.warnings)
          assert.equal(i > 1, r.cache.prefix, p.name .. ' request ' .. i .. ': ' .. r.cache.prefix_reason)
          local res = assert(c:call(r.request, { scaffold = r }))
          assert.equal('miss', res.cache)
          if i == 1 then
            assert.equal(0, res.usage.cached_input)
          else
            -- the emulator served the stable prefix from its prefix cache
            assert.is_true(res.usage.cached_input >= p.min,
              ('%s request %d: %s cached tokens'):format(p.name, i, tostring(res.usage.cached_input)))
          end
          c:flush()  -- so the next resolve sees this call in cache_events
        end
        -- the same tasks again: answered by the response cache
        for i = 1, 5 do
          local r = assert(scaffold.resolve(request(p.name, p.model, p.base, ('Write src/module%02d.ts'):format(i)),
            { cache = c }))
          assert.is_true(r.cache.response)
          assert.equal('hit', assert(c:call(r.request, { scaffold = r })).cache)
        end
      end
      c:close()
      local n = #providers
      assert.equal(n * TASKS, #e:log())

      local out = h.run({ 'cache', 'analyze', '--performance', '--json', '--store', url })
      assert.equal(0, out.code, out.stderr)
      local a = assert(json.decode(out.stdout))
      local ss = a.performance.stable_scaffold
      assert.equal(n * (TASKS + 5), ss.requests)
      assert.equal(n * (TASKS + 5) - n, ss.prefix_seen)
      assert.is_true(ss.hit_rate > 0.8, 'stable-scaffold hit rate ' .. tostring(ss.hit_rate))
      assert.equal(n * 5, a.hits)
      assert.equal(n * TASKS, a.misses)
      local pp = a.performance.provider_prefix
      for _, p in ipairs(providers) do
        local name = p.name
        assert.same({ calls = TASKS, predicted_hits = TASKS - 1, observed_hits = TASKS - 1 },
          { calls = pp.by_provider[name].calls, predicted_hits = pp.by_provider[name].predicted_hits,
            observed_hits = pp.by_provider[name].observed_hits })
      end
      assert.same({}, a.performance.breakers)
      assert.equal(n, #a.by_scaffold)
      assert.equal('module-file', a.by_scaffold[1].name)
    end)
  end
end)
