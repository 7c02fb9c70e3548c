-- typescript-strict: strict TypeScript, with the meaning and the default options of the typescript-eslint
-- (8.x) and ESLint core (9.x) rules of the same names. docs/rulepacks/typescript-strict.md describes
-- every rule and its few differences from ESLint.
--
-- no-unused-vars and prefer-const run on the scope analysis of aegis.ast (ctx.scope(), built in C once
-- per file); the others are tree-sitter queries with small checks. Where ESLint's code decides on its
-- ESTree parents, the checks below walk the tree-sitter parents the same way, skipping parentheses
-- (ESTree has no node for them).

--{====================================================================== helpers

-- The parent of `node`, parentheses skipped (ESTree keeps no ParenthesizedExpression).
-- Walks of the ancestors are bounded (LIMIT steps): tree-sitter 0.20 finds a parent by walking down from
-- the root, so an unbounded walk on a hostile nesting would be cubic. Past the bound the rules answer as
-- if the walk had found nothing (docs/rulepacks/typescript-strict.md).
local LIMIT = 64

local function up(node)
  local p = node:parent()
  local t = p and p:type()
  for _ = 1, LIMIT do
    if t ~= 'parenthesized_expression' then break end
    node = p
    p = p:parent()
    t = p and p:type()
  end
  return p, node, t   -- t: p's type
end

-- The first named child of `node` that is not a decorator (ESLint starts class members after them).
local function after_decorators(node)
  for _, c in ipairs(node:children()) do
    if c:type() ~= 'decorator' then return c end
  end
  return node
end

-- A JavaScript regular expression source (an ESLint *Pattern option) as a matcher. The common forms
-- are translated to Lua patterns: anchors, `.`, classes `[...]`, `\d \w \s` and escaped characters,
-- the quantifiers `* + ?`, and top-level alternation `a|b`. Anything else (groups, `{n,m}`,
-- lookaround) is refused with an error naming the option, rather than matched wrongly.
local regex_memo = {}  -- source -> matcher (the options are the same for every file)

local function js_regex(src, optname)
  if src == nil or src == false or src == '' then return nil end
  if type(src) ~= 'string' then error(('option %s: string expected'):format(optname), 0) end
  local memo = regex_memo[src]
  if memo then return memo end
  local alts = {}
  for alt in (src .. '|'):gmatch('(.-)|') do
    local out, i, n = {}, 1, #alt
    while i <= n do
      local c = alt:sub(i, i)
      if c == '\\' then
        local d = alt:sub(i + 1, i + 1)
        local map = { d = '%d', w = '[%w_]', s = '%s', D = '%D', W = '[^%w_]', S = '%S' }
        out[#out + 1] = map[d] or ('%' .. d):gsub('^%%(%w)$', '%1')
        i = i + 2
      elseif c == '[' then
        local j = alt:find(']', i + 2, true)
        if not j then error(('option %s: unsupported regular expression %q'):format(optname, src), 0) end
        local body = alt:sub(i + 1, j - 1):gsub('\\d', '%%d'):gsub('\\w', '%%w_'):gsub('\\s', '%%s')
          :gsub('\\(.)', '%%%1')
        out[#out + 1] = '[' .. body .. ']'
        i = j + 1
      elseif c == '(' or c == ')' or c == '{' then
        error(('option %s: unsupported regular expression %q'):format(optname, src), 0)
      elseif c == '^' and i == 1 then
        out[#out + 1] = '^'
        i = i + 1
      elseif c == '$' and i == n then
        out[#out + 1] = '$'
        i = i + 1
      elseif c == '*' or c == '+' or c == '?' then
        out[#out + 1] = c == '*' and '*' or c == '+' and '+' or '?'
        i = i + 1
      elseif c == '.' then
        out[#out + 1] = '.'
        i = i + 1
      elseif c:match('%w') then
        out[#out + 1] = c
        i = i + 1
      else
        out[#out + 1] = '%' .. c
        i = i + 1
      end
    end
    alts[#alts + 1] = table.concat(out)
  end
  local function matcher(s)
    for _, p in ipairs(alts) do
      if s:find(p) then return true end
    end
    return false
  end
  regex_memo[src] = matcher
  return matcher
end

--}======================================================================

--{====================================================================== ban-ts-comment

-- The number of characters of `s` (UTF-8 code points; ESLint counts graphemes).
local function strlen(s)
  return utf8.len(s) or #s
end

local function trim(s)
  return (s:gsub('^%s+', ''):gsub('%s+$', ''))
end

-- typescript-eslint's findDirectiveInComment: {directive =, description =} or nil.
local function directive_of(text)
  if text:sub(1, 2) == '//' then
    local value = text:sub(3)
    local whole = '//' .. value
    for _, d in ipairs({ 'check', 'nocheck' }) do
      local desc = whole:match('^///?%s*@ts%-' .. d .. '([^\r\n]*)$')
      if desc then return { directive = d, description = desc } end
    end
    for _, d in ipairs({ 'expect-error', 'ignore' }) do
      local desc = value:match('^/*%s*@ts%-' .. d:gsub('%-', '%%-') .. '([^\r\n]*)')
      if desc then return { directive = d, description = desc } end
    end
    return nil
  end
  if text:sub(1, 2) ~= '/*' then return nil end
  local value = text:sub(3, -3)
  local last = value:match('([^\n]*)$') or value
  for _, d in ipairs({ 'expect-error', 'ignore' }) do
    local desc = last:match('^%s*[/*]*%s*@ts%-' .. d:gsub('%-', '%%-') .. '([^\r\n]*)')
    if desc then return { directive = d, description = desc } end
  end
  return nil
end

local function ban_ts_comment(ctx, match)
  local node = match.captures.comment
  local text = node:text()
  if not text:find('@ts-', 1, true) then return nil end
  local m = directive_of(text)
  if not m then return nil end
  local o = ctx.options or {}
  local option = o['ts-' .. m.directive]
  if option == true then
    if m.directive == 'ignore' then
      return 'Use "@ts-expect-error" instead of "@ts-ignore", as "@ts-ignore" will do nothing if the '
        .. 'following line is error-free.'
    end
    return ('Do not use "@ts-%s" because it alters compilation errors.'):format(m.directive)
  end
  local format = type(option) == 'table' and option.descriptionFormat or nil
  if option == 'allow-with-description' or format then
    local min = o.minimumDescriptionLength or 3
    if strlen(trim(m.description)) < min then
      return ('Include a description after the "@ts-%s" directive to explain why the @ts-%s is '
        .. 'necessary. The description must be %d characters or longer.'):format(m.directive, m.directive, min)
    end
    if format and not js_regex(format, 'descriptionFormat')(m.description) then
      return ('The description for the "@ts-%s" directive must match the %s format.'):format(m.directive, format)
    end
  end
  return nil
end

--}======================================================================

--{====================================================================== no-explicit-any

-- `...args: any[]` / `...args: Array<any>` (typescript-eslint's ignoreRestArgs).
local function in_rest_args(node)
  local p = node:parent()
  if p and p:type() == 'array_type' then p = p:parent()
  elseif p and p:type() == 'type_arguments' then
    local g = p:parent()
    if not (g and g:type() == 'generic_type' and g:named_child(1):text():match('^R?e?a?d?o?n?l?y?Array$')) then
      return false
    end
    p = g:parent()
  else
    return false
  end
  if not (p and p:type() == 'type_annotation') then return false end
  local param = p:parent()
  if not (param and (param:type() == 'required_parameter' or param:type() == 'optional_parameter')) then
    return false
  end
  local pat = param:child_by_field('pattern')
  return pat ~= nil and pat:type() == 'rest_pattern'
end

-- The query's #eq? has checked the text. `true` reports the match's node (the capture), without a table.
local function no_explicit_any(ctx, match)
  if (ctx.options or {}).ignoreRestArgs and in_rest_args(match.captures.any) then return nil end
  return true
end

--}======================================================================

--{====================================================================== no-non-null-assertion

-- tree-sitter-typescript 0.23 gives the postfix `!` a lower precedence than ESLint's parser: `a > b!` is
-- (a > b)!, `+x.y!.z()!` is ((+x.y)!.z())!, `<T>x!` is (<T>x)!. The operand ESLint sees starts at the
-- rightmost operand of the lowest-precedence expression at the head of the member/call chain under `!`.
local OPERAND = {
  binary_expression = 'right', unary_expression = 'argument', await_expression = true,
  ternary_expression = 'alternative', assignment_expression = 'right', augmented_assignment_expression = 'right',
  yield_expression = true, spread_element = true, type_assertion = true,
}
local CHAIN = { call_expression = 'function', member_expression = 'object', subscript_expression = 'object' }

local function operand_start(n)
  local start, head = n, n
  for _ = 1, 10000 do
    local t = head:type()
    local how = OPERAND[t]
    if how then
      local nxt = how == true and head:named_child(head:named_child_count()) or head:child_by_field(how)
      if not nxt then return start end
      start, head = nxt, nxt
    elseif CHAIN[t] then
      head = head:child_by_field(CHAIN[t])
    elseif t == 'non_null_expression' then
      head = head:named_child(1)
    else
      return start
    end
    if not head then return start end
  end
  return start
end

local function no_non_null_assertion(_, match)
  local node = match.captures.report
  local inner = node:named_child(1)
  if not inner then return true end        -- the match's node (@report)
  local start = operand_start(inner)
  if start == inner then return true end
  local _, e = node:byte_range()
  return { start_byte = start:byte_range(), end_byte = e }
end

--}======================================================================

--{====================================================================== explicit-function-return-type

local FUNCTION = {
  function_declaration = true, generator_function_declaration = true, function_expression = true,
  generator_function = true, arrow_function = true, method_definition = true,
}
local EXPRESSION_FUNCTION = { function_expression = true, generator_function = true, arrow_function = true }

-- The return statements of `fn` (not those of nested functions), or, when `stop` is given, stops at
-- the first one for which stop(ret) is true and returns nil.
local function returns_of(fn, stop)
  local body = fn:child_by_field('body')
  local out, stack = {}, { body }
  while #stack > 0 do
    local n = table.remove(stack)
    local t = n:type()
    if t == 'return_statement' then
      if stop and stop(n) then return nil end
      out[#out + 1] = n
    elseif not FUNCTION[t] and t ~= 'class_declaration' and t ~= 'class' then
      local kids = n:named_children()
      for i = #kids, 1, -1 do stack[#stack + 1] = kids[i] end
    end
  end
  return out
end

local function strip_parens(n)
  while n and n:type() == 'parenthesized_expression' do n = n:named_child(1) end
  return n
end

-- doesImmediatelyReturnFunctionExpression
local function returns_function(fn)
  local body = fn:child_by_field('body')
  if not body then return false end
  if fn:type() == 'arrow_function' and body:type() ~= 'statement_block' then
    return EXPRESSION_FUNCTION[strip_parens(body):type()] or false
  end
  local rets = returns_of(fn, function(r)
    local arg = strip_parens(r:named_child(1))
    return not (arg and EXPRESSION_FUNCTION[arg:type()])
  end)
  return rets ~= nil and #rets > 0
end

-- The checks below take the type of a node they were given with it (`t` for the function, `pt` for
-- its parent): each node:type() is a call into C, and most functions are decided in a few of them.

-- isTypedParent(parent, callee): `parent` has type `pt`; `from` is its child on the way up.
local function typed_parent(parent, pt, from, callee, grand)
  if pt == 'as_expression' or pt == 'type_assertion' then return true end   -- isTypeAssertion (not satisfies)
  if pt == 'variable_declarator' or pt == 'public_field_definition' then
    return parent:child_by_field('type') ~= nil
  end
  if pt == 'required_parameter' or pt == 'optional_parameter' then   -- AssignmentPattern, left typed
    local v = parent:child_by_field('value')
    return v ~= nil and v == from and parent:child_by_field('type') ~= nil
  end
  if pt == 'arguments' then               -- a CallExpression argument (a NewExpression's is not here)
    local call = grand or parent:parent()
    return call ~= nil and call:type() == 'call_expression'
  end
  if pt == 'call_expression' then return callee == nil or parent:child_by_field('function') ~= callee end
  if pt == 'jsx_expression' then return true end
  if pt == 'spread_element' then                  -- <X {...{ f: () => 1 }} />: a JSXSpreadAttribute
    local p = parent:parent()
    return p ~= nil and p:type() == 'jsx_expression'
  end
  return false
end

-- isPropertyOfObjectWithType: `prop` (of type `t`) is a pair or an object method. `obj`, when the
-- caller knows it, is prop's parent (asking tree-sitter for a parent walks down from the root).
local function property_of_typed_object(prop, t, obj, depth)
  depth = (depth or 0) + 1
  if depth > LIMIT then return false end
  if t ~= 'pair' and t ~= 'method_definition' and t ~= 'shorthand_property_identifier' then return false end
  obj = obj or prop:parent()
  if not obj or obj:type() ~= 'object' then return false end
  local parent, from, pt = up(obj)
  if not parent then return false end
  return typed_parent(parent, pt, from) or property_of_typed_object(parent, pt, nil, depth)
end

-- `x as const` / `<const>x` (isConstAssertion); `t` is n's type
local function is_const_assertion(n, t)
  if t == 'as_expression' then
    local last = n:child(n:child_count())
    return last ~= nil and not last:is_named() and last:type() == 'const'
  end
  if t == 'type_assertion' then
    local ta = n:named_child(1)
    return ta ~= nil and ta:text():match('^<%s*const%s*>$') ~= nil
  end
  return false
end

-- isValidFunctionExpressionReturnType (allowTypedFunctionExpressions is on when this is called).
-- `body` is an arrow function's body (the caller asks for it once).
local function valid_expression(fn, t, o, parent, pt, from, grand, body)
  if t == 'method_definition' then
    -- the FunctionExpression of a method: its ESTree parent is the MethodDefinition or the Property;
    -- the method's parent is never a parenthesis, so `parent` is its tree-sitter parent
    if property_of_typed_object(fn, t, parent) then return true end
  elseif parent then
    -- a pair's parent is never a parenthesis either: `grand` is the pair's parent
    local obj = pt == 'pair' and grand or nil
    if typed_parent(parent, pt, from, from, grand) or property_of_typed_object(parent, pt, obj) then return true end
    if pt == 'arguments' and (grand or parent:parent()):type() == 'new_expression' then return true end
  end
  if o.allowExpressions then
    if t == 'method_definition' then
      if parent and pt == 'object' then return true end  -- a Property, not a MethodDefinition
    elseif parent then
      if pt ~= 'variable_declarator' and pt ~= 'public_field_definition' and pt ~= 'export_statement' then
        return true
      end
    end
  end
  if o.allowDirectConstAssertionInArrowFunctions and t == 'arrow_function' then
    -- parentheses and `satisfies` around the body, in any order, each node's type asked once
    local b = body
    local bt = b and b:type()
    while bt == 'parenthesized_expression' or bt == 'satisfies_expression' do
      b = b:named_child(1)
      bt = b and b:type()
    end
    if b and is_const_assertion(b, bt) then return true end
  end
  return false
end

-- ancestorHasReturnType
local function ancestor_has_return_type(fn, t, parent, pt, typed_ancestor)
  if t == 'method_definition' then
    return false          -- its ESTree parent is the Property/MethodDefinition, whose value is itself
  end
  local ancestor, at = parent, pt
  if at == 'pair' then ancestor, at = fn, t end
  if not ancestor then return false end
  local is_return = at == 'return_statement'
  local bodyless = at == 'arrow_function' and (ancestor:child_by_field('body') or ancestor):type() ~= 'statement_block'

  if not is_return and not bodyless then return false end
  if typed_ancestor ~= nil then return typed_ancestor end
  for _ = 1, LIMIT do
    if not ancestor then break end
    local a = ancestor:type()
    if FUNCTION[a] then
      if ancestor:child_by_field('return_type') then return true end
    elseif a == 'variable_declarator' or a == 'public_field_definition' then
      return ancestor:child_by_field('type') ~= nil
    elseif a == 'expression_statement' then
      return false
    end
    ancestor = ancestor:parent()
  end
  return false
end

-- ASCII white space but line ends (a byte): what may sit between an arrow's `=>` and its body on one
-- line, short of a comment. (Across a line end, a `=>` could be the end of a line comment.)
local BLANK = { [9] = true, [11] = true, [12] = true, [32] = true }

-- getFunctionHeadLoc: start_byte, end_byte of the function's head, or the one token it is (`=>`).
-- `body` is the function's body node, `source` the file's text.
local function head(fn, t, parent, pt, body, source)
  if t == 'arrow_function' and pt ~= 'public_field_definition' and pt ~= 'pair' then
    -- the `=>` token: the last token before the body (no return type here), read off the source when
    -- only white space on the same line separates them (a block comment ends in `*/`); else the arrow's
    -- children are asked (a node each)
    local k = body:byte_range()
    local b = source:byte(k)
    while BLANK[b] do
      k = k - 1
      b = source:byte(k)
    end
    if b == 62 and source:byte(k - 1) == 61 then return k - 2, k end   -- '=>' at bytes k-2, k-1
    for i = 1, fn:child_count() do
      local c = fn:child(i)
      if c:type() == '=>' then return c end
    end
  end
  local params = fn:child_by_field('parameters') or fn:child_by_field('parameter')
  local start = fn:byte_range()
  local paren = params and params:byte_range() or start
  if t == 'method_definition' then return start, paren end
  if pt == 'public_field_definition' then return after_decorators(parent):byte_range(), paren end
  if pt == 'pair' then return parent:byte_range(), paren end
  return start, paren
end

local function is_constructor_or_setter(fn, t, p, pt, source)
  if t ~= 'method_definition' then return false end
  local name = fn:child_by_field('name')
  -- a `set` keyword comes before the name: only when the text before it holds "set" are the
  -- children asked for (fn:children() makes a node for each)
  local before = true
  if name ~= nil then
    local sb, nb = fn:byte_range(), name:byte_range()
    before = nb > sb and source:sub(sb + 1, nb):find('set', 1, true) ~= nil
  end
  if before then
    for _, c in ipairs(fn:children()) do
      if not c:is_named() and c:type() == 'set' then return true end
    end
  end
  if name == nil or p == nil or pt ~= 'class_body' then return false end
  local s = name:text()
  return s == 'constructor' or s == '"constructor"' or s == "'constructor'"
end

-- isAllowedFunction (allowedNames, allowIIFEs, allowFunctionsWithoutTypeParameters)
local function allowed_function(fn, t, o, parent, pt, from)
  if o.allowFunctionsWithoutTypeParameters and not fn:child_by_field('type_parameters') then return true end
  if o.allowIIFEs and parent and pt == 'call_expression' and parent:child_by_field('function') == from then
    return true
  end
  local names = o.allowedNames
  if type(names) ~= 'table' or #names == 0 then return false end
  local name
  local id = fn:child_by_field('name')
  if id and t ~= 'method_definition' then name = id:text()
  elseif t == 'method_definition' then
    if id and id:type() == 'property_identifier' then name = id:text() end
  elseif parent then
    if pt == 'variable_declarator' then
      local n = parent:child_by_field('name')
      if n and n:type() == 'identifier' then name = n:text() end
    elseif pt == 'pair' or pt == 'public_field_definition' then
      local k = parent:child_by_field(pt == 'pair' and 'key' or 'name')
      if k and k:type() == 'property_identifier' then name = k:text() end
    end
  end
  if not name then return false end
  for _, n in ipairs(names) do
    if n == name then return true end
  end
  return false
end

-- The node type of each pattern of the rule's query (match.pattern), in order: no call into C for it.
local PATTERN_TYPE = {
  'function_declaration', 'generator_function_declaration', 'function_expression', 'generator_function',
  'arrow_function', 'method_definition',
}

-- The rule's query for its options. A function with a return type is valid on every path of the check:
-- the query leaves it out (a negated field, checked in C) rather than calling the check for it. With
-- allowTypedFunctionExpressions, so is a function expression whose parent is an argument list, a JSX
-- expression or a type assertion (the check's first test; two thirds of the functions of the bench
-- corpus): #not-has-parent?, checked in C, leaves those out too.
local function explicit_function_return_type_query(o)
  -- per language: TSX has no `<T>x` assertion, TypeScript no JSX
  local function text(parents)
    local typed = o.allowTypedFunctionExpressions and (' (#not-has-parent? @fn %s)'):format(parents) or ''
    return ('(function_declaration !return_type) @fn\n'
      .. '(generator_function_declaration !return_type) @fn\n'
      .. '((function_expression !return_type) @fn%s)\n'
      .. '((generator_function !return_type) @fn%s)\n'
      .. '((arrow_function !return_type) @fn%s)\n'
      .. '(method_definition !return_type) @fn'):format(typed, typed, typed)
  end
  return {
    ts = text('"arguments" "as_expression" "type_assertion"'),
    tsx = text('"arguments" "jsx_expression" "as_expression"'),
  }
end

local function explicit_function_return_type(ctx, match)
  local fn = match.captures.fn
  local t = PATTERN_TYPE[match.pattern]
  -- a function with a return type is valid on every path below: the query (!return_type) leaves it out;
  -- one without a body (overloads, declare, abstract) is valid too, which is asked last (every path but
  -- the finding returns nil without the body)
  local o = ctx.options or {}
  local declaration = t == 'function_declaration' or t == 'generator_function_declaration'
  -- an arrow function's body, asked for once (nil until then)
  local body
  if not declaration and o.allowConciseArrowFunctionExpressionsStartingWithVoid and t == 'arrow_function' then
    body = fn:child_by_field('body')
    if body and body:type() == 'unary_expression' and body:text():match('^void[%s%(]') then return nil end
  end
  local sc = ctx.scope()
  -- the type of the parent (parentheses skipped), without making its node
  local pt = sc:context_types(fn)
  -- most functions are arguments of calls or JSX attribute values: typed contexts (isTypedParent),
  -- told from the types of the parent and grandparent alone (no nodes made); every other path that
  -- returns before the typed-context test returns nil too
  -- (an argument of a new expression is valid too, below; `arguments` has no other parent but ERROR, and
  -- the query's #not-has-parent? leaves out those under one of these parents directly, as this does)
  if not declaration and o.allowTypedFunctionExpressions and t ~= 'method_definition'
     and (pt == 'jsx_expression' or pt == 'as_expression' or pt == 'type_assertion' or pt == 'arguments') then
    return nil
  end
  -- the parent, the node under it, the grandparent and the answer of the ancestor walk, recorded by the
  -- scope walk: tree-sitter 0.20 finds a parent by walking down from the root, O(depth) per step
  local parent, from, grand, typed_ancestor, hof = sc:context(fn)
  if not parent then parent, from, pt = up(fn) end
  if allowed_function(fn, t, o, parent, pt, from) then return nil end
  -- a declaration has no typed context
  if not declaration and o.allowTypedFunctionExpressions then
    if t == 'arrow_function' and body == nil and o.allowDirectConstAssertionInArrowFunctions then
      body = fn:child_by_field('body')
    end
    if valid_expression(fn, t, o, parent, pt, from, grand, body)
       or ancestor_has_return_type(fn, t, parent, pt, typed_ancestor) then
      return nil
    end
  end
  if is_constructor_or_setter(fn, t, parent, pt, ctx.source) then return nil end
  if o.allowHigherOrderFunctions then
    if hof == nil then hof = returns_function(fn) end
    if hof then return nil end
  end
  if body == nil then
    body = fn:child_by_field('body')
    if not body then return nil end
  end
  local s, e = head(fn, t, parent, pt, body, ctx.source)
  if e == nil then return { node = s, message = 'Missing return type on function.' } end
  return { start_byte = s, end_byte = e, message = 'Missing return type on function.' }
end

--}======================================================================

--{====================================================================== scope rules

local PATTERN = {
  object_pattern = true, array_pattern = true, assignment_pattern = true, object_assignment_pattern = true,
  rest_pattern = true, pair_pattern = true,
}

-- The node above the patterns an identifier sits in (ESLint's walk up PATTERN_TYPE nodes), and its type.
local function above_patterns(id)
  local n = id:parent()
  local t = n and n:type()
  while n and (PATTERN[t] or t == 'parenthesized_expression') do
    n = n:parent()
    t = n and n:type()
  end
  return n, t
end

local DECLARATION_HOST = { program = true, statement_block = true, switch_case = true, switch_default = true }

-- canBecomeVariableDeclaration; `n` is the node above the patterns the identifier is in, `t` its type
local function can_become_declaration(n, t)
  if not n then return false end
  if t == 'variable_declarator' or t == 'for_in_statement' and n:child_by_field('kind') then return true end
  if t ~= 'assignment_expression' and t ~= 'augmented_assignment_expression' then return false end
  local p, _, pt = up(n)
  if not (p and pt == 'expression_statement') then return false end
  local host = p:parent()
  local ht = host and host:type()
  if not (host and DECLARATION_HOST[ht]) then return false end
  if ht == 'statement_block' then
    local hp = host:parent()
    if hp and (hp:type() == 'internal_module' or hp:type() == 'module') then return false end
  end
  return true
end

-- Member expressions assigned by a destructuring pattern (hasMemberExpressionAssignment).
local function has_member_target(pattern)
  local stack = { pattern }
  while #stack > 0 do
    local n = table.remove(stack)
    local t = n:type()
    if t == 'member_expression' or t == 'subscript_expression' then return true end
    if t == 'object_pattern' or t == 'array_pattern' or t == 'rest_pattern' or t == 'parenthesized_expression'
       or t == 'non_null_expression' then
      for _, c in ipairs(n:named_children()) do stack[#stack + 1] = c end
    elseif t == 'pair_pattern' then
      stack[#stack + 1] = n:child_by_field('value')
    elseif t == 'assignment_pattern' or t == 'object_assignment_pattern' then
      stack[#stack + 1] = n:child_by_field('left')
    end
  end
  return false
end

-- The names a destructuring assignment's top-level properties/elements assign (ESLint reads
-- `prop.value.name` / `element.name`: plain identifiers only).
local function top_level_targets(pattern)
  local out = {}
  for _, c in ipairs(pattern:named_children()) do
    local t = c:type()
    if pattern:type() == 'object_pattern' then
      if t == 'shorthand_property_identifier_pattern' then out[#out + 1] = c
      elseif t == 'pair_pattern' then
        local v = c:child_by_field('value')
        if v and v:type() == 'identifier' then out[#out + 1] = v end
      end
    elseif t == 'identifier' then
      out[#out + 1] = c
    end
  end
  return out
end

-- ESLint prefer-const's getIdentifierIfShouldBeConst for one `let` variable: the node to report, or nil.
-- The node above the patterns of a write reference of v: for the initializer of a plain `let x = ...`
-- or `for (let x of ...)`, its declaration, without asking for parents (tree-sitter 0.20 walks down
-- from the root for each).
-- Returns the host and its type. init_host is the host of an initializer's write at `node`.
local function init_host(v, node)
  local d = v.decl
  local t = d:type()
  if t == 'for_in_statement' and d:child_by_field('left') == node then return d, t end
  if t == 'variable_declarator' and d:child_by_field('name') == node then return d, t end
  return above_patterns(node)
end

local function write_host(v, r)
  if r.init then return init_host(v, r.node) end
  return above_patterns(r.node)
end

local function should_be_const(sc, v, o)
  local writer, read_before, writer_host, host_type
  for _, r in ipairs(v.refs) do
    if r.write then
      if writer and writer.node ~= r.node then return nil end
      local host, ht = write_host(v, r)
      if host and ht == 'assignment_expression' then
        local left = strip_parens(host:child_by_field('left'))
        if left and (left:type() == 'object_pattern' or left:type() == 'array_pattern') then
          for _, id in ipairs(top_level_targets(left)) do
            local w = sc:resolve(id)
            if w and w ~= v and (w.kind == 'param' or w.scope ~= v.scope) then return nil end
          end
          if has_member_target(left) then return nil end
        end
      end
      writer, writer_host, host_type = r, host, ht
    elseif r.read and not writer then
      if o.ignoreReadBeforeAssign then return nil end
      read_before = true
    end
  end
  if not writer or writer.scope ~= v.scope or not can_become_declaration(writer_host, host_type) then return nil end
  if read_before then return v.id end
  return writer.node
end

-- The variables a destructuring declaration or assignment writes at once (ESLint's groups): with
-- destructuring 'all', a group is reported only when every member should be const.
local function group_key(node)
  local host, t = above_patterns(node)
  if t == 'variable_declarator' or t == 'assignment_expression' or t == 'augmented_assignment_expression'
     or (t == 'for_in_statement' and host:child_by_field('kind')) then
    local sb, eb = host:byte_range()
    return sb .. ':' .. eb
  end
  return nil
end

local LET = { kind = 'let' }   -- sc:filter specs (read only)

local function prefer_const(ctx)
  local sc = ctx.scope()
  local o = ctx.options or {}
  local all = o.destructuring == 'all'
  local groups, order = {}, {}
  -- only `let` variables can be reported: the scope analysis makes tables for those alone
  for _, v in ipairs(sc:filter(LET)) do
    -- one write in all (the initializer, or one assignment): anything else is never const, and is
    -- looked at only for the groups of destructuring 'all' (a false flag and a count are each a call
    -- into C: read once)
    local writes = v.writes
    local has_init = v.has_init
    local candidate
    if has_init then candidate = writes == 0 else candidate = writes == 1 end
    if v.kind == 'let' and (candidate or all) then
      -- `for (let i = 0; ...)`: told by the source before the declaration (asking for the parent costs a
      -- walk down from the root in tree-sitter 0.20)
      local st = v.statement
      local for_init = false
      local lexical = st:type() == 'lexical_declaration'
      if lexical then
        local sb = st:byte_range()
        local before = ctx.source:sub(math.max(1, sb - 24), sb)
        for_init = before:match('%f[%w_$]for%s*%(%s*$') ~= nil
      end
      if not for_init then
        local id
        if candidate and not all and has_init and writes == 0 and lexical and not o.ignoreReadBeforeAssign
           and v.ndefs == 1 then
          -- `let x = ...` (or a pattern) written by its initializer alone, declared once: its one write
          -- is the initializer's, at v.id in v's scope, and a read before it would make the same node
          -- reported (v.id), so its refs (a table and a node each) are not asked for
          local vid = v.id
          local host, ht = init_host(v, vid)
          if ht ~= 'assignment_expression' then
            id = can_become_declaration(host, ht) and vid or nil
          else
            id = should_be_const(sc, v, o)
          end
        else
          id = candidate and should_be_const(sc, v, o) or nil
        end
        if not all then
          -- destructuring 'any': every variable that should be const is reported, grouped or not
          if id then
            ctx.report({ node = id, message = ("'%s' is never reassigned. Use 'const' instead."):format(v.name) })
          end
        else
          -- group membership: every write of the variable that has a destructuring host
          local seen = {}
          for _, r in ipairs(v.refs) do
            if r.write then
              local k = group_key(r.node)
              if k and not seen[k] then
                seen[k] = true
                if not groups[k] then groups[k] = {}; order[#order + 1] = k end
                local g = groups[k]
                g[#g + 1] = { id = id, name = v.name }
              end
            end
          end
        end
      end
    end
  end
  for _, k in ipairs(order) do
    local g = groups[k]
    local ok = true
    for _, e in ipairs(g) do if not e.id then ok = false end end
    if ok then
      for _, e in ipairs(g) do
        ctx.report({ node = e.id, message = ("'%s' is never reassigned. Use 'const' instead."):format(e.name) })
      end
    end
  end
end

local DECLARED_KINDS = {
  var = true, let = true, const = true, using = true, class = true, ['function'] = true, enum = true,
  namespace = true, interface = true, type = true,
}

-- isAfterLastUsedArg: no later parameter of the same function is referenced (or marked used).
-- `params` maps a function scope to its parameters in order (built once per file).
local function after_last_used_arg(params, v)
  local list = params[v.scope]
  local seen = false
  for _, w in ipairs(list) do
    if seen and (w.nrefs > 0 or w.param_prop) then return false end
    if w == v then seen = true end
  end
  return true
end

local PARAM = { kind = 'param' }
-- no-unused-vars' candidates: a variable used, exported, or one of the kinds never reported is left out
local UNUSED = { used = false, exported = false, self = false, param_prop = false, signature = false, setter = false }

local function params_by_scope(sc)
  local t = {}
  for _, w in ipairs(sc:filter(PARAM)) do
    if w.kind == 'param' then
      local l = t[w.scope]
      if not l then l = {}; t[w.scope] = l end
      l[#l + 1] = w
    end
  end
  return t
end

-- `for (const k in o) return;` / `k; for (k in o) { return; }`: ESLint counts the loop variable as used
-- when the loop body is a single return statement.
local function body_is_return(loop)
  local body = loop:child_by_field('body')
  if body and body:type() == 'statement_block' then
    if body:named_child_count() ~= 1 then return false end
    body = body:named_child(1)
  end
  return body ~= nil and body:type() == 'return_statement'
end

-- The kinds of variable a for-in/of loop declares (the others' statement is never the loop: it is not
-- asked for, each v.statement makes a node).
local FOR_KINDS = { var = true, let = true, const = true, using = true }

-- `k` is v.kind, `refs` v.refs (each read of v.refs makes the table again).
local function for_in_returns(v, k, refs)
  local st = FOR_KINDS[k] and v.statement
  if st and st:type() == 'for_in_statement' then
    local left = st:child_by_field('left')
    if left and left == v.id then return body_is_return(st) end
  end
  for _, r in ipairs(refs) do
    if r.write and not r.init then
      local p = r.node:parent()
      if p and p:type() == 'for_in_statement' and p:child_by_field('left') == r.node then
        return body_is_return(p)
      end
    end
  end
  return false
end

-- A name in an object pattern that ends with a rest element (ignoreRestSiblings): `{ a, ...rest }`.
local function has_rest_sibling(id)
  local p = id:parent()
  if p and p:type() == 'pair_pattern' then p = p:parent() end
  if not (p and p:type() == 'object_pattern') then return false end
  for i = p:named_child_count(), 1, -1 do
    local c = p:named_child(i)
    if c:type() ~= 'comment' then return c:type() == 'rest_pattern' end
  end
  return false
end

local function in_array_pattern(id)
  local p = id:parent()
  return p ~= nil and p:type() == 'array_pattern'
end

local function has_static_block(decl)
  local body = decl:child_by_field('body')
  if not body then return false end
  for _, c in ipairs(body:named_children()) do
    if c:type() == 'class_static_block' then return true end
  end
  return false
end

local function no_unused_vars(ctx)
  local sc = ctx.scope()
  local o = ctx.options or {}
  local vars_re = js_regex(o.varsIgnorePattern, 'varsIgnorePattern')
  local args_re = js_regex(o.argsIgnorePattern, 'argsIgnorePattern')
  local caught_re = js_regex(o.caughtErrorsIgnorePattern, 'caughtErrorsIgnorePattern')
  local array_re = js_regex(o.destructuredArrayIgnorePattern, 'destructuredArrayIgnorePattern')
  local dts   -- whether the file is a declaration file, asked on first need
  local params
  -- a variable used, exported, or one of the kinds never reported is skipped: the scope analysis makes
  -- tables for the others alone (their false flags are not read again: each is a call into C)
  local vars = sc:filter(UNUSED)
  for _, v in ipairs(vars) do
    local k = v.kind
    if k == 'enum_member' then goto continue end
    do
      -- sc:scope(i) makes that scope's table alone (sc.scopes makes them all)
      local s = sc:scope(v.scope)
      if (s.kind == 'namespace' or s.kind == 'module') and not s.export_list then
        if dts == nil then dts = ctx.path:match('%.d%.[mc]?tsx?$') ~= nil end
        if (dts or s.ambient) and DECLARED_KINDS[k] then goto continue end
      end
      if array_re and array_re(v.name) then
        local hit = in_array_pattern(v.id)
        for _, r in ipairs(hit and {} or v.refs) do
          if in_array_pattern(r.node) then hit = true; break end
        end
        if hit then goto continue end
      end
      if k == 'class' and o.ignoreClassWithStaticInitBlock and has_static_block(v.decl) then goto continue end
      if k == 'using' and o.ignoreUsingDeclarations then goto continue end
      local pattern, what
      if k == 'catch' then
        if o.caughtErrors == 'none' then goto continue end
        if caught_re and caught_re(v.name) then goto continue end
        pattern, what = o.caughtErrorsIgnorePattern, 'caught errors'
      elseif k == 'param' then
        if o.args == 'none' then goto continue end
        if args_re and args_re(v.name) then goto continue end
        params = params or params_by_scope(sc)
        if (o.args or 'after-used') == 'after-used' and v.direct and not after_last_used_arg(params, v) then
          goto continue
        end
        pattern, what = o.argsIgnorePattern, 'args'
      else
        -- vars = 'local' skips the global scope, which a module does not have
        if vars_re and vars_re(v.name) then goto continue end
        pattern, what = o.varsIgnorePattern, 'vars'
      end
      local refs = v.refs
      if for_in_returns(v, k, refs) then goto continue end
      if o.ignoreRestSiblings then
        local rest = has_rest_sibling(v.id)
        for _, r in ipairs(rest and {} or refs) do
          if has_rest_sibling(r.node) then rest = true; break end
        end
        if rest then goto continue end
      end
      local only_type, written = false, false
      for _, r in ipairs(refs) do
        if r.typeof or r.predicate then only_type = true end
        if r.write then written = true end
      end
      if only_type and k == 'import' then goto continue end
      -- the last write from the variable's own function, else the declaration
      local at = v.id
      local vs = s.varscope
      for _, r in ipairs(refs) do
        if r.write and sc:scope(r.scope).varscope == vs then at = r.node end
      end
      local additional = pattern and (". Allowed unused %s must match /%s/u"):format(what, pattern) or ''
      ctx.report({
        node = at,
        message = ("'%s' is %s but %s%s."):format(v.name, written and 'assigned a value' or 'defined',
          only_type and 'only used as a type' or 'never used', additional),
      })
    end
    ::continue::
  end
end

--}======================================================================

--{====================================================================== tsconfig-strict

local function tsconfig_strict(ctx)
  local cfg = ctx.tsconfig()
  if cfg == nil then return nil end
  local path = cfg.path
  if cfg.error then
    ctx.report({ path = path, line = 1, col = 1,
      message = ('tsconfig.json cannot be read (%s): "compilerOptions.strict" must be true'):format(cfg.error) })
    return nil
  end
  local co = cfg.compilerOptions
  local strict = nil
  if type(co) == 'table' then strict = co.strict end
  if strict == true then return nil end
  -- a config that extends another and does not set strict itself takes the base's value, which
  -- ctx.tsconfig() does not resolve: no finding rather than a guess
  if strict == nil and cfg.extends ~= nil then return nil end
  ctx.report({
    path = path, line = 1, col = 1,
    message = strict == false
      and 'tsconfig.json sets "compilerOptions.strict" to false: it must be true'
      or 'tsconfig.json does not set "compilerOptions.strict": true',
  })
  return nil
end

--}======================================================================

return {
  name = 'typescript-strict',
  version = '1.0.0',
  description = 'Strict TypeScript: no any, no unchecked suppressions, explicit return types, '
    .. 'const and no var, no unused variables, a strict tsconfig',
  rules = {
    {
      id = 'no-explicit-any',
      severity = 'error',
      description = 'Unexpected any. Specify a different type.',
      eslint = '@typescript-eslint/no-explicit-any',
      query = [[ ((predefined_type) @any (#eq? @any "any")) ]],
      check = no_explicit_any,
      options = { fixToUnknown = false, ignoreRestArgs = false },
    },
    {
      id = 'ban-ts-comment',
      severity = 'error',
      description = 'Do not use @ts-ignore or @ts-nocheck, and describe every @ts-expect-error',
      eslint = '@typescript-eslint/ban-ts-comment',
      query = [[ ((comment) @comment (#match? @comment "@ts-")) ]],
      check = ban_ts_comment,
      options = {
        ['ts-expect-error'] = 'allow-with-description', ['ts-ignore'] = true, ['ts-nocheck'] = true,
        ['ts-check'] = false, minimumDescriptionLength = 3,
      },
    },
    {
      id = 'no-non-null-assertion',
      severity = 'error',
      description = 'Forbidden non-null assertion.',
      eslint = '@typescript-eslint/no-non-null-assertion',
      query = [[ (non_null_expression) @report ]],
      check = no_non_null_assertion,
    },
    {
      id = 'explicit-function-return-type',
      severity = 'error',
      description = 'Missing return type on function.',
      eslint = '@typescript-eslint/explicit-function-return-type',
      query = explicit_function_return_type_query,
      check = explicit_function_return_type,
      options = {
        allowConciseArrowFunctionExpressionsStartingWithVoid = false,
        allowDirectConstAssertionInArrowFunctions = true,
        allowedNames = {},
        allowExpressions = false,
        allowFunctionsWithoutTypeParameters = false,
        allowHigherOrderFunctions = true,
        allowIIFEs = false,
        allowTypedFunctionExpressions = true,
      },
    },
    {
      id = 'prefer-const',
      severity = 'error',
      description = 'Use const for variables that are never reassigned after declared',
      eslint = 'prefer-const',
      query = [[ (program) @program ]],
      check = function(ctx) prefer_const(ctx) end,
      options = { destructuring = 'any', ignoreReadBeforeAssign = false },
    },
    {
      id = 'no-var',
      severity = 'error',
      description = 'Unexpected var, use let or const instead.',
      eslint = 'no-var',
      query = [[
        (variable_declaration) @decl
        (for_in_statement kind: "var" @decl)
      ]],
      check = function(ctx, match)
        -- `declare var x` starts at `declare` in ESTree; the source is read instead of asking for the
        -- parent (tree-sitter 0.20 walks down from the root for it)
        local node = match.captures.decl
        local sb, eb = node:byte_range()
        local before = ctx.source:sub(math.max(1, sb - 40), sb)
        local kw = before:match('()declare%s+$')
        if kw then
          return { start_byte = sb - (#before - kw + 1), end_byte = eb }
        end
        return { node = node }
      end,
    },
    {
      id = 'no-unused-vars',
      severity = 'error',
      description = 'Variables, parameters and caught errors must be used',
      eslint = '@typescript-eslint/no-unused-vars',
      query = [[ (program) @program ]],
      check = function(ctx) no_unused_vars(ctx) end,
      options = {
        vars = 'all', args = 'after-used', caughtErrors = 'all',
        varsIgnorePattern = '^_', argsIgnorePattern = '^_', caughtErrorsIgnorePattern = '^_',
      },
    },
    {
      id = 'tsconfig-strict',
      severity = 'error',
      description = 'The project tsconfig.json sets "compilerOptions.strict": true',
      query = [[ (program) @program ]],
      check = function(ctx) tsconfig_strict(ctx) end,
    },
  },
}
