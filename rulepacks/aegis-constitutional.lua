-- aegis-constitutional: the team's constitution for generated code. The
-- union of typescript-strict, ui-theme-tokens and a11y (their rules keep
-- their own ids: typescript-strict/no-var, ...), plus two rules of its own:
--   aegis-constitutional/no-secrets  provider API keys in string literals,
--                                    template literals and comments
--   aegis-constitutional/provenance  a file marked as generated has an
--                                    artifact record in the project store
-- See docs/rulepacks.md.

-- Key shapes: a prefix, then a run of characters from `set` at least `min`
-- long. Lua patterns have no {n,}: the run is matched greedily and its
-- length checked. Ordered so the most specific prefix wins (sk-ant- before sk-).
local KEYS = {
  { name = 'Anthropic API key', prefix = 'sk%-ant%-', set = '[%w_%-]', min = 32 },
  { name = 'OpenAI project API key', prefix = 'sk%-proj%-', set = '[%w_%-]', min = 32 },
  { name = 'OpenAI API key', prefix = 'sk%-', set = '[%w_%-]', min = 20 },
  { name = 'AWS access key id', prefix = 'AKIA', set = '[0-9A-Z]', min = 16, max = 16 },
  { name = 'AWS temporary access key id', prefix = 'ASIA', set = '[0-9A-Z]', min = 16, max = 16 },
  { name = 'GitHub token', prefix = 'gh[pousr]_', set = '[%w]', min = 36 },
  { name = 'GitHub fine-grained token', prefix = 'github_pat_', set = '[%w_]', min = 40 },
  { name = 'Google API key', prefix = 'AIza', set = '[%w_%-]', min = 35, max = 35 },
  { name = 'Slack token', prefix = 'xox[abprs]%-', set = '[%w%-]', min = 10 },
  { name = 'Stripe secret key', prefix = '[rs]k_live_', set = '[%w]', min = 20 },
  { name = 'Hugging Face token', prefix = 'hf_', set = '[%a]', min = 34 },
  { name = 'Groq API key', prefix = 'gsk_', set = '[%w]', min = 40 },
  { name = 'xAI API key', prefix = 'xai%-', set = '[%w]', min = 40 },
}

-- A token that is a placeholder rather than a key: no digit, no letter,
-- or one character repeated ("sk-xxxxxxxx...").
local function placeholder(body)
  if not body:find('%d') or not body:find('%a') then return true end
  local first = body:sub(1, 1)
  return body:gsub('[' .. first:gsub('%p', '%%%0') .. ']', '') == ''
end

-- Every key-shaped token in `text`: {start (1-based), stop, name}; `prev`:
-- the character before `text` in the source, when `text` is a fragment.
local function find_keys(text, prev)
  local hits, taken = {}, {}
  for _, k in ipairs(KEYS) do
    local pat = '()' .. k.prefix .. '(' .. k.set .. '+)()'
    for s, body, e in text:gmatch(pat) do
      local before = s > 1 and text:sub(s - 1, s - 1) or prev or ''
      local n = #body
      if not taken[s] and not before:find('[%w_]') and n >= k.min and (k.max == nil or n == k.max)
          and not placeholder(body) then
        taken[s] = true
        hits[#hits + 1] = { s, e - 1, k.name }
      end
    end
  end
  table.sort(hits, function(a, b) return a[1] < b[1] end)
  return hits
end

local function has_marker(text, markers)
  for _, m in ipairs(markers) do
    if text:find(m, 1, true) then return true end
  end
  return false
end

return {
  name = 'aegis-constitutional',
  version = '1.0.0',
  description = 'typescript-strict, ui-theme-tokens and a11y, plus no-secrets and provenance',
  include = { 'typescript-strict', 'ui-theme-tokens', 'a11y' },
  rules = {
    {
      id = 'no-secrets',
      severity = 'error',
      description = 'Provider API keys must not appear in code; read them from the environment',
      -- the regex (POSIX, evaluated in C) keeps only literals holding a key
      -- prefix, so Lua sees a handful of candidates, not every string. The
      -- fragments of string and template literals (a key cannot span an
      -- escape or `${`), not whole literals: the text of nested templates
      -- holds each other's, so matching whole ones costs time quadratic in
      -- the nesting (and a pattern with a child keeps a query cursor state
      -- per open template).
      query = ([[
        ((string_fragment) @s (#match? @s "PREFIXES"))
        ((comment) @s (#match? @s "PREFIXES"))
      ]]):gsub('PREFIXES', 'sk-|AKIA|ASIA|gh[pousr]_|github_pat_|AIza|xox[abprs]-|[rs]k_live_|hf_|gsk_|xai-'),
      check = function(ctx, m)
        local node = m.captures.s
        local text = ctx.text(node)
        local base = node:range().start_byte
        local prev
        if node:type() == 'string_fragment' then
          if node:parent():type() == 'template_literal_type' then return nil end -- a type, not a value
          prev = ctx.source:sub(base, base)
        end
        for _, hit in ipairs(find_keys(text, prev)) do
          ctx.report({
            start_byte = base + hit[1] - 1, end_byte = base + hit[2],
            message = ('Possible %s in %s; read secrets from the environment'):format(hit[3],
              node:type() == 'comment' and 'a comment' or 'a string literal'),
          })
        end
      end,
    },
    {
      id = 'provenance',
      severity = 'error',
      description = 'A generated file must have an artifact record in the project store',
      help = 'Files whose header comment carries a generation marker (options.markers, each containing the word'
        .. ' "generated") must be stored with aegis.artifact.put by the pipeline that wrote them, with these exact'
        .. ' bytes.',
      options = { markers = { '@aegis-generated', '@generated by aegis' }, lines = 10 },
      -- markers contain the word: the regex (in C) keeps other comments out of Lua
      query = [[ ((program (comment) @c) (#match? @c "[Gg]enerated")) ]],
      check = function(ctx, m)
        local c = m.captures.c
        local r = c:range()
        if r.start_row >= ctx.options.lines or not has_marker(ctx.text(c), ctx.options.markers) then return nil end
        -- one finding per file: the first marked comment
        for _, other in ipairs(ctx.root:named_children()) do
          if other:type() == 'comment' then
            if other == c then break end
            if other:range().start_row < ctx.options.lines and has_marker(ctx.text(other), ctx.options.markers) then
              return nil
            end
          end
        end
        if ctx.artifact() then return nil end
        return 'Generated file has no artifact record in the project store (its SHA-256 is not stored);'
          .. ' store it with aegis.artifact.put or regenerate it'
      end,
    },
  },
}
