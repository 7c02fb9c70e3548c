--- Prices of provider models, as data: `providers/prices.json` (built into
--- the binary) with the `prices` section of aegis.config.lua over it, and
--- the cost of a call from its normalised usage.
---
--- Prices are USD per million tokens, per token class: `input` (uncached
--- input), `cached_input` (cache reads), `cache_write_5m`, `cache_write_1h`,
--- `output`, and `tiers` (`{above_input_tokens = N, ...}`: rates for every
--- token of a request whose input exceeds N). A model that is not in the
--- table has an unknown cost (nil), never 0.
local host = require('aegis.core.host')
local json = require('aegis.json')

local M = {}

--- The token classes a price entry may give.
M.CLASSES = { 'input', 'cached_input', 'cache_write_5m', 'cache_write_1h', 'output' }

local builtin

--- The built-in table, decoded from `providers/prices.json`:
--- `{date, source, unit, providers = {<name> = {models = {<model> = entry}}}}`.
---@return table
function M.builtin()
  if builtin == nil then
    local text = host.embedded('providers/prices.json')
    local t = text and json.decode(text)
    builtin = type(t) == 'table' and t or { providers = {} }
  end
  return builtin
end

--- The schema of the `prices` config section (`aegis.config.lua`):
--- `{<provider> = {<model> = {input =, cached_input =, ..., tiers = {...}}}}`.
---@param s table aegis.schema
---@return aegis.schema.Schema
function M.schema(s)
  local rate = s.number({ min = 0 })
  local fields = {}
  for _, c in ipairs(M.CLASSES) do fields[c] = rate:optional() end
  local tier_fields = { above_input_tokens = s.integer({ min = 0 }) }
  for _, c in ipairs(M.CLASSES) do tier_fields[c] = rate:optional() end
  fields.tiers = s.array(s.object(tier_fields)):optional()
  return s.record(s.string(), s.record(s.string(), s.object(fields)))
end

-- A model name without a date suffix: 'gpt-4o-2024-08-06' -> 'gpt-4o',
-- 'claude-sonnet-4-5-20250929' -> 'claude-sonnet-4-5'.
local function undated(model)
  return model:match('^(.-)%-%d%d%d%d%-%d%d%-%d%d$') or model:match('^(.-)%-%d%d%d%d%d%d%d%d$')
end

--- The price entry of a model: the config's override first, then the
--- built-in table; the exact name, then the name without its date suffix.
---@param provider string
---@param model string
---@param overrides? table The `prices` config section
---@return table? entry
function M.lookup(provider, model, overrides)
  if type(provider) ~= 'string' then error("bad argument #1 to 'lookup' (string expected)", 2) end
  if type(model) ~= 'string' then error("bad argument #2 to 'lookup' (string expected)", 2) end
  local names = { model, undated(model) }
  local over = type(overrides) == 'table' and overrides[provider] or nil
  local models = (M.builtin().providers[provider] or {}).models or {}
  for _, n in ipairs(names) do
    if over and over[n] then return over[n] end
    if models[n] then return models[n] end
  end
  return nil
end

-- The rates that apply to a request with `input` tokens: the tier with the
-- highest threshold below it, falling back to the base rate per class.
local function rates_for(entry, input)
  local best
  for _, t in ipairs(entry.tiers or {}) do
    if input and input > t.above_input_tokens and (best == nil or t.above_input_tokens > best.above_input_tokens) then
      best = t
    end
  end
  if not best then return entry end
  local r = {}
  for _, c in ipairs(M.CLASSES) do r[c] = best[c] or entry[c] end
  return r
end

--- Cost in USD of a call from its normalised usage. Nil and a reason when
--- the model has no price, when a count the cost needs is unknown, or when
--- tokens of a class have no rate.
---@param provider string
---@param model string
---@param usage aegis.provider.Usage
---@param opts? {overrides?: table} `overrides`: the `prices` config section
---@return number? usd
---@return string? reason Why the cost is unknown
function M.cost(provider, model, usage, opts)
  if type(usage) ~= 'table' then error("bad argument #3 to 'cost' (table expected)", 2) end
  local entry = M.lookup(provider, model, opts and opts.overrides)
  if not entry then
    return nil, ("no price for %s model '%s' (add it to prices in aegis.config.lua)"):format(provider, model)
  end
  local input, output = usage.input, usage.output
  if input == nil or output == nil then
    return nil, ("usage of %s model '%s' is unknown (%s)"):format(provider, model,
      input == nil and 'input tokens' or 'output tokens')
  end
  local cached, w5, w1 = usage.cached_input, usage.cache_write_5m, usage.cache_write_1h
  -- an unknown part of the input can be priced only when it would cost the
  -- same as plain input
  local r = rates_for(entry, input)
  local parts = { cached_input = cached, cache_write_5m = w5, cache_write_1h = w1 }
  local plain = input
  local usd = 0
  for _, c in ipairs({ 'cached_input', 'cache_write_5m', 'cache_write_1h' }) do
    local n = parts[c]
    if n == nil then
      if r[c] ~= nil and r[c] ~= r.input then
        return nil, ("%s of %s model '%s' is unknown"):format(c:gsub('_', ' '), provider, model)
      end
    elseif n > 0 then
      if r[c] == nil then
        return nil, ("no %s price for %s model '%s'"):format(c:gsub('_', ' '), provider, model)
      end
      usd = usd + n * r[c]
      plain = plain - n
    end
  end
  if plain < 0 then
    return nil, ("usage of %s model '%s' is inconsistent (cached and written tokens exceed input)")
      :format(provider, model)
  end
  if r.input == nil or r.output == nil then
    return nil, ("no input or output price for %s model '%s'"):format(provider, model)
  end
  usd = usd + plain * r.input + output * r.output
  return usd / 1e6
end

return M
