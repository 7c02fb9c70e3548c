--- Fuzz target `enforce`: the standards engine end to end (aegis.standards,
--- every rule of aegis-constitutional: typescript-strict, a11y,
--- ui-theme-tokens, no-secrets, provenance), as `aegis-run enforce` runs it
--- on one file: one parse, every query in C, the rules' `check` and `fix`
--- in the sandbox, scope analysis, suppression comments.
---
--- Input: byte 1 picks the language (odd: tsx); the rest is the source.
--- Checks: findings are well formed and sorted, positions agree with the
--- source, no rule raises or runs out of budget on it (a `rule` problem is
--- a bug in a rulepack), fixes stay inside the source and applying them
--- gives a source the engine checks again without a rule problem.
local standards = require('aegis.standards')

local SEVERITY = { error = true, warning = true, info = true }
-- No project store and no tsconfig.json: the target reads no files.
local engine = standards.engine({
  rules = { 'aegis-constitutional' },
  config = { theme = { tokens = { colors = { 'primary', 'secondary' }, spacing = { 'sm', 'md' } } } },
  store_url = 'sqlite:/nonexistent/aegis-fuzz/aegis.db',
})
local PATH = { ts = '/nonexistent/aegis-fuzz/input.ts', tsx = '/nonexistent/aegis-fuzz/input.tsx' }

-- Byte offsets where lines start.
local function line_starts(src)
  local t, i = { 0 }, 1
  while true do
    local j = src:find('\n', i, true)
    if not j then return t end
    t[#t + 1] = j
    i = j + 1
  end
end

local function line_of(starts, byte)
  local lo, hi = 1, #starts
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if starts[mid] <= byte then lo = mid else hi = mid - 1 end
  end
  return lo, byte - starts[lo] + 1
end

local function check_problems(problems, what)
  for _, p in ipairs(problems) do
    assert(p.kind == 'rule' or p.kind == 'parse' or p.kind == 'syntax' or p.kind == 'read',
      what .. ': problem kind ' .. tostring(p.kind))
    assert(type(p.message) == 'string', what .. ': problem message')
    if p.kind == 'rule' then error(what .. ': ' .. p.message, 0) end
    if p.kind == 'parse' then
      assert(p.code == 'timeout' or p.code == 'too_large' or p.code == 'memory',
        what .. ': parse problem ' .. p.message)
    end
  end
end

local function check(src, lang, what)
  local findings, problems = engine:check(src, { path = PATH[lang], lang = lang })
  check_problems(problems, what)
  local starts = line_starts(src)
  local prev
  for i, f in ipairs(findings) do
    local w = ('%s: finding %d (%s)'):format(what, i, tostring(f.rule))
    assert(type(f.rule) == 'string' and f.rule:find('^[%w%-]+/[%w%-]+$'), w .. ': rule id')
    assert(SEVERITY[f.severity], w .. ': severity')
    assert(type(f.message) == 'string' and f.message ~= '', w .. ': message')
    assert(f.path == PATH[lang], w .. ': path')
    if f.path == PATH[lang] and f.start_byte then
      assert(0 <= f.start_byte and f.start_byte <= f.end_byte and f.end_byte <= #src, w .. ': bytes')
      local l, c = line_of(starts, f.start_byte)
      assert(f.line == l and f.col == c, ('%s: line/col %d:%d, bytes say %d:%d'):format(w, f.line, f.col, l, c))
      local el, ec = line_of(starts, f.end_byte)
      assert(f.end_line == el and f.end_col == ec, w .. ': end line/col')
    end
    if prev then
      local a, b = prev, f
      assert(a.path < b.path or (a.path == b.path and (a.line < b.line or (a.line == b.line and
        (a.col < b.col or (a.col == b.col and a.rule <= b.rule))))), w .. ': not sorted')
    end
    prev = f
  end
  return findings
end

-- Applies the fixes that do not overlap, last first.
local function apply_fixes(src, findings)
  local fixes = {}
  for _, f in ipairs(findings) do
    local x = f.fix
    if x then
      assert(math.type(x.start_byte) == 'integer' and math.type(x.end_byte) == 'integer'
        and type(x.text) == 'string', 'fix shape')
      assert(0 <= x.start_byte and x.start_byte <= x.end_byte and x.end_byte <= #src, 'fix outside the source')
      fixes[#fixes + 1] = x
    end
  end
  if #fixes == 0 then return nil end
  table.sort(fixes, function(a, b) return a.start_byte > b.start_byte end)
  local out, limit = src, math.huge
  for _, x in ipairs(fixes) do
    if x.end_byte <= limit then
      out = out:sub(1, x.start_byte) .. x.text .. out:sub(x.end_byte + 1)
      limit = x.start_byte
    end
  end
  return out
end

return function(data)
  local lang = ((data:byte(1) or 0) & 1) == 1 and 'tsx' or 'ts'
  local src = data:sub(2)
  local findings = check(src, lang, 'source')
  local fixed = apply_fixes(src, findings)
  if fixed then check(fixed, lang, 'fixed source') end
end
