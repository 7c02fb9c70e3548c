--- Synthetic pairs with known truth for the semantic diff: random
--- TypeScript programs, and three transformations of any source that say
--- what the diff must find:
---   format(src, seed)  formatting only (reindent, quote style, semicolons,
---                      redundant parentheses, trailing commas, comments)
---                      -> b; truth: same, zero actions
---   move(src, seed)    one top-level declaration moved at least two places
---                      -> b, {src = {s, e}, dst = {s, e}} byte ranges
---   rename(src, seed)  a parameter or body-level local of one function
---                      renamed everywhere in that function
---                      -> b, {from, to, n}
--- Each returns nil when the source offers nothing to transform.  Needs
--- aegis.ast (run inside aegis-run: the specs and bench/astdiff/run.sh).
local ast = require('aegis.ast')

local M = {}

-- xorshift32: the same numbers everywhere, independent of math.random.
local function rng(seed)
  local s = (seed * 2654435761 + 12345) % 4294967296
  if s == 0 then s = 1 end
  return function(n)
    s = s ~ ((s << 13) & 0xffffffff)
    s = s ~ (s >> 17)
    s = s ~ ((s << 5) & 0xffffffff)
    return s % n + 1
  end
end
M.rng = rng

local WORDS = { 'alpha', 'beta', 'gamma', 'delta', 'omega', 'sigma', 'kappa', 'theta', 'lambda', 'zeta',
                'count', 'total', 'value', 'item', 'entry', 'index', 'node', 'key', 'size', 'limit' }

--- A random, syntactically valid TypeScript program (40-150 lines).
---@param seed integer
---@return string
function M.program(seed)
  local r = rng(seed)
  local out, used = {}, {}
  local function fresh(prefix)
    local n
    repeat n = prefix .. WORDS[r(#WORDS)]:gsub('^%l', string.upper) .. r(99) until not used[n]
    used[n] = true
    return n
  end
  local function expr(vars, depth)
    local k = r(depth > 1 and 4 or 7)
    if k == 1 then return vars[r(#vars)] end
    if k == 2 then return tostring(r(1000)) end
    if k == 3 then return "'" .. WORDS[r(#WORDS)] .. "'" end
    if k == 4 then return vars[r(#vars)] .. '.length' end
    if k == 5 then return expr(vars, depth + 1) .. ' + ' .. expr(vars, depth + 1) end
    if k == 6 then return 'Math.max(' .. expr(vars, depth + 1) .. ', ' .. expr(vars, depth + 1) .. ')' end
    return '[' .. expr(vars, depth + 1) .. ', ' .. expr(vars, depth + 1) .. ']'
  end
  local function body(vars, indent, n)
    local lines = {}
    local vs = { table.unpack(vars) }
    for _ = 1, n do
      local k = r(5)
      if k <= 2 then
        local v = fresh('v')
        lines[#lines + 1] = indent .. (r(2) == 1 and 'const ' or 'let ') .. v .. ' = ' .. expr(vs, 1) .. ';'
        vs[#vs + 1] = v
      elseif k == 3 then
        lines[#lines + 1] = indent .. 'if (' .. vs[r(#vs)] .. ' > ' .. r(50) .. ') {'
        lines[#lines + 1] = indent .. '  console.log(' .. expr(vs, 1) .. ');'
        lines[#lines + 1] = indent .. '}'
      elseif k == 4 then
        lines[#lines + 1] = indent .. 'for (let i = 0; i < ' .. r(10) .. '; i++) {'
        lines[#lines + 1] = indent .. '  ' .. vs[r(#vs)] .. ' = ' .. expr(vs, 1) .. ';'
        lines[#lines + 1] = indent .. '}'
      else
        lines[#lines + 1] = indent .. 'log(' .. expr(vs, 1) .. ', "' .. WORDS[r(#WORDS)] .. '");'
      end
    end
    lines[#lines + 1] = indent .. 'return ' .. vs[r(#vs)] .. ';'
    return table.concat(lines, '\n')
  end
  out[#out + 1] = "import { log } from './log';"
  local ndecl = 6 + r(8)
  for _ = 1, ndecl do
    local k = r(6)
    local exp = r(3) == 1 and 'export ' or ''
    if k <= 2 then
      local params = {}
      for p = 1, r(3) do params[p] = fresh('p') end
      local sig = {}
      for p, name in ipairs(params) do sig[p] = name .. ': any' end
      out[#out + 1] = exp .. 'function ' .. fresh('f') .. '(' .. table.concat(sig, ', ') .. '): any {'
      out[#out + 1] = body(params, '  ', 2 + r(5))
      out[#out + 1] = '}'
    elseif k == 3 then
      out[#out + 1] = exp .. 'class ' .. fresh('C') .. ' {'
      out[#out + 1] = '  private ' .. fresh('m') .. ' = ' .. r(100) .. ';'
      for _ = 1, 1 + r(2) do
        local p = fresh('a')
        out[#out + 1] = '  ' .. fresh('meth') .. '(' .. p .. ': number): number {'
        out[#out + 1] = body({ p }, '    ', 1 + r(4))
        out[#out + 1] = '  }'
      end
      out[#out + 1] = '}'
    elseif k == 4 then
      out[#out + 1] = exp .. 'interface ' .. fresh('I') .. ' {'
      for _ = 1, 1 + r(4) do out[#out + 1] = '  ' .. fresh('f') .. (r(2) == 1 and '?' or '') .. ': string;' end
      out[#out + 1] = '}'
    elseif k == 5 then
      out[#out + 1] = exp .. 'type ' .. fresh('T') .. " = '" .. WORDS[r(#WORDS)] .. "' | '"
        .. WORDS[r(#WORDS)] .. "' | number;"
    else
      local p = fresh('x')
      out[#out + 1] = exp .. 'const ' .. fresh('arrow') .. ' = (' .. p .. ': number) => {'
      out[#out + 1] = body({ p }, '  ', 1 + r(4))
      out[#out + 1] = '};'
    end
  end
  return table.concat(out, '\n') .. '\n'
end

-- Applies edits {pos (0-based byte), del (bytes), ins (text)} to s.
local function apply_edits(s, edits)
  table.sort(edits, function(a, b) return a.pos > b.pos end)
  for _, e in ipairs(edits) do
    s = s:sub(1, e.pos) .. e.ins .. s:sub(e.pos + e.del + 1)
  end
  return s
end

local function each(node, f)
  local stack = { node }
  while #stack > 0 do
    local n = table.remove(stack)
    f(n)
    local kids = n:children()
    for i = #kids, 1, -1 do stack[#stack + 1] = kids[i] end
  end
end

-- First non-blank byte after position p (0-based), or nil.
local function next_char(s, p)
  return s:match('^%s*(%S)', p + 1)
end

--- Formatting-only variant of src: same tree once normalised.
---@param src string
---@param seed integer
---@param opts? {lang?: 'ts'|'tsx'}
---@return string? b
function M.format(src, seed, opts)
  local r = rng(seed)
  local tree = ast.parse(src, { lang = opts and opts.lang })
  if not tree or tree:root():has_error() then return nil end
  local edits, protect = {}, {}
  each(tree:root(), function(n)
    local t, rg = n:type(), n:range()
    if t == 'template_string' or t == 'jsx_text' or t == 'comment' or t == 'regex' then
      protect[#protect + 1] = { rg.start_byte, rg.end_byte }
    end
    if t == 'string' and r(2) == 1 then
      local txt = n:text()
      local body = txt:sub(2, -2)
      local q = txt:sub(1, 1)
      if (q == "'" or q == '"') and not body:find('[\'"\\]') then
        local nq = q == "'" and '"' or "'"
        edits[#edits + 1] = { pos = rg.start_byte, del = #txt, ins = nq .. body .. nq }
      end
      protect[#protect + 1] = { rg.start_byte, rg.end_byte }
    elseif t == ';' and not n:is_named() and rg.end_byte > rg.start_byte and r(2) == 1 then
      local p = n:parent()
      local pt = p and p:type() or ''
      local nc = next_char(src, rg.end_byte)
      -- only where no statement can continue onto the next line
      if (pt == 'expression_statement' or pt == 'lexical_declaration' or pt == 'return_statement')
          and src:match('^[ \t]*\n', rg.end_byte + 1) and nc and not nc:match('[%(%[`%+%-/%*%.<,]') then
        edits[#edits + 1] = { pos = rg.start_byte, del = 1, ins = '' }
      end
    elseif t == 'identifier' and r(3) == 1 then
      local p = n:parent()
      local f = n:field_name()
      if p and ((p:type() == 'return_statement') or (p:type() == 'arguments')
                or (p:type() == 'binary_expression' and (f == 'left' or f == 'right'))) then
        edits[#edits + 1] = { pos = rg.start_byte, del = 0, ins = '(' }
        edits[#edits + 1] = { pos = rg.end_byte, del = 0, ins = ')' }
      end
    elseif (t == 'array' or t == 'object') and n:named_child_count() > 0 and r(2) == 1 then
      local kids = n:children()
      local last = kids[#kids - 1]
      if last and last:type() ~= ',' and kids[#kids]:type() ~= ',' then
        edits[#edits + 1] = { pos = last:range().end_byte, del = 0, ins = ',' }
      end
    end
  end)
  -- reindent and add comments, outside protected ranges
  local function protected(p)
    for _, x in ipairs(protect) do if p > x[1] and p < x[2] then return true end end
    return false
  end
  local indent = ({ '\t', '    ', ' ', '   ' })[r(4)]
  local pos = 0
  for line in src:gmatch('([^\n]*)\n?') do
    if pos >= #src then break end
    local ws = line:match('^[ \t]*')
    if not protected(pos) and #line > 0 then
      local depth = #ws:gsub('\t', '  ') // 2
      edits[#edits + 1] = { pos = pos, del = #ws, ins = indent:rep(depth) }
      if ws == '' and r(4) == 1 then
        edits[#edits + 1] = { pos = pos, del = 0, ins = '// note ' .. r(1000) .. '\n' }
      end
    end
    pos = pos + #line + 1
  end
  -- edits at the same position: replacements, then insertions in order
  for i, e in ipairs(edits) do e.seq = i end
  table.sort(edits, function(a, b)
    if a.pos ~= b.pos then return a.pos > b.pos end
    if (a.del > 0) ~= (b.del > 0) then return a.del > 0 end  -- replace the original text first
    return a.seq > b.seq
  end)
  local s = src
  for _, e in ipairs(edits) do s = s:sub(1, e.pos) .. e.ins .. s:sub(e.pos + e.del + 1) end
  return s
end

local DECL = {
  function_declaration = true, class_declaration = true, interface_declaration = true,
  type_alias_declaration = true, enum_declaration = true, abstract_class_declaration = true,
  export_statement = true, lexical_declaration = true,
}

--- One top-level declaration moved at least two statements away.
---@param src string
---@param seed integer
---@param opts? {lang?: 'ts'|'tsx'}
---@return string? b
---@return {src: integer[], dst: integer[]}? truth byte ranges [start, end) of the declaration in src and b
function M.move(src, seed, opts)
  local r = rng(seed)
  local tree = ast.parse(src, { lang = opts and opts.lang })
  if not tree or tree:root():has_error() then return nil end
  local stmts = {}
  for _, c in ipairs(tree:root():named_children()) do
    if c:type() ~= 'comment' then stmts[#stmts + 1] = c end
  end
  local texts = {}
  for i, c in ipairs(stmts) do texts[i] = c:text() end
  local cands = {}
  for i, c in ipairs(stmts) do
    local dup = false
    for j, t in ipairs(texts) do if j ~= i and t == texts[i] then dup = true end end
    if DECL[c:type()] and not dup and c:range().start_col == 0 then cands[#cands + 1] = i end
  end
  if #cands == 0 or #stmts < 4 then return nil end
  local i = cands[r(#cands)]
  local targets = {}
  for j = 1, #stmts + 1 do
    if (j < i - 1 or j > i + 2) and (j > #stmts or stmts[j]:range().start_col == 0) then targets[#targets + 1] = j end
  end
  if #targets == 0 then return nil end
  local j = targets[r(#targets)]
  local d = stmts[i]:range()
  -- the declaration with its line end
  local s0, e0 = d.start_byte, d.end_byte
  if src:sub(e0 + 1, e0 + 1) == '\n' then e0 = e0 + 1 end
  local piece = src:sub(s0 + 1, e0)
  if piece:sub(-1) ~= '\n' then piece = piece .. '\n' end
  local rest = src:sub(1, s0) .. src:sub(e0 + 1)
  local at
  if j > #stmts then
    at = #rest
    if rest:sub(-1) ~= '\n' then rest = rest .. '\n'; at = #rest end
  else
    at = stmts[j]:range().start_byte
    if at > s0 then at = at - (e0 - s0) end
  end
  local b = rest:sub(1, at) .. piece .. rest:sub(at + 1)
  return b, { src = { d.start_byte, d.end_byte }, dst = { at, at + (d.end_byte - d.start_byte) } }
end

local FUNCS = { function_declaration = true, method_definition = true, arrow_function = true,
                function_expression = true }

--- A parameter or body-level local of one function renamed in that function.
---@param src string
---@param seed integer
---@param opts? {lang?: 'ts'|'tsx'}
---@return string? b
---@return {from: string, to: string, n: integer}? truth
function M.rename(src, seed, opts)
  local r = rng(seed)
  local tree = ast.parse(src, { lang = opts and opts.lang })
  if not tree or tree:root():has_error() then return nil end
  local words = {}
  for w in src:gmatch('[%a_$][%w_$]*') do words[w] = true end
  local cands = {}
  each(tree:root(), function(n)
    if not FUNCS[n:type()] then return end
    local names = {}
    local params = n:child_by_field('parameters')
    if params then
      for _, p in ipairs(params:named_children()) do
        local pat = p:child_by_field('pattern')
        if pat and pat:type() == 'identifier' then names[#names + 1] = pat:text() end
      end
    end
    local bd = n:child_by_field('body')
    if bd and bd:type() == 'statement_block' then
      for _, st in ipairs(bd:named_children()) do
        if st:type() == 'lexical_declaration' then
          for _, dcl in ipairs(st:named_children()) do
            local nm = dcl:child_by_field('name')
            if nm and nm:type() == 'identifier' then names[#names + 1] = nm:text() end
          end
        end
      end
    end
    for _, name in ipairs(names) do cands[#cands + 1] = { fn = n, name = name } end
  end)
  -- keep names declared once in their function, never shorthand or nested
  -- functions' own declarations of the same name
  local ok = {}
  for _, c in ipairs(cands) do
    local decls, bad, occ = 0, false, {}
    each(c.fn, function(n)
      local t = n:type()
      if (t == 'shorthand_property_identifier' or t == 'shorthand_property_identifier_pattern')
          and n:text() == c.name then bad = true end
      if t == 'identifier' and n:text() == c.name then
        occ[#occ + 1] = n
        local p, f = n:parent(), n:field_name()
        if (f == 'name' and p:type() == 'variable_declarator') or (f == 'pattern') or
           (f == 'parameter') then decls = decls + 1 end
      end
      if n ~= c.fn and FUNCS[t] then
        local inner = n:child_by_field('parameters')
        if inner and inner:text():find(c.name, 1, true) then bad = true end
      end
    end)
    if decls == 1 and not bad and #occ >= 1 then c.occ = occ; ok[#ok + 1] = c end
  end
  if #ok == 0 then return nil end
  local c = ok[r(#ok)]
  local to
  repeat to = c.name .. 'Renamed' .. r(999) until not words[to]
  local edits = {}
  for _, n in ipairs(c.occ) do
    local rg = n:range()
    edits[#edits + 1] = { pos = rg.start_byte, del = rg.end_byte - rg.start_byte, ins = to }
  end
  return apply_edits(src, edits), { from = c.name, to = to, n = #c.occ }
end

--- Checks one diff result against a truth: 'same' (formatting), a move
--- truth or a rename truth; returns true or false and why.
---@param kind 'format'|'move'|'rename'
---@param d aegis.ast.Diff
---@param truth? table
---@return boolean ok
---@return string? why
function M.check(kind, d, truth)
  local c = d.counts
  local total = c.insert + c.delete + c.update + c.move + c.rename
  if kind == 'format' then
    if d.same and total == 0 then return true end
    return false, ('not same: %d actions'):format(total)
  elseif kind == 'move' then
    if total ~= 1 or c.move ~= 1 then return false, ('%d actions, %d moves'):format(total, c.move) end
    local m = d.moves[1]
    if m.src.start_byte ~= truth.src[1] or m.src.end_byte ~= truth.src[2]
        or m.dst.start_byte ~= truth.dst[1] or m.dst.end_byte ~= truth.dst[2] then
      return false, ('moved [%d,%d)->[%d,%d), expected [%d,%d)->[%d,%d)'):format(
        m.src.start_byte, m.src.end_byte, m.dst.start_byte, m.dst.end_byte,
        truth.src[1], truth.src[2], truth.dst[1], truth.dst[2])
    end
    return true
  else
    for _, x in ipairs(d.renames) do
      if x.from == truth.from and x.to == truth.to and x.n == truth.n then
        if total == 1 then return true end
        return false, ('rename found but %d actions'):format(total)
      end
    end
    return false, ('no rename %s -> %s (%d): %d updates, %d renames'):format(
      truth.from, truth.to, truth.n, c.update, c.rename)
  end
end

return M
