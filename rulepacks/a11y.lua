-- a11y: accessibility rules for TSX, with the meaning and the `recommended` options of the
-- eslint-plugin-jsx-a11y rules of the same names (6.10, with aria-query 5.3 and axobject-query 4.1).
-- docs/rulepacks/a11y.md describes every rule and the few deliberate differences.
--
-- Each query narrows the matches in C (element names, attribute names); `check` then decides with the
-- attribute values, which jsx-a11y reads through jsx-ast-utils: `value_of` below follows getPropValue and
-- getLiteralPropValue (a string attribute "true"/"false" is a boolean, `{undefined}` is undefined, an
-- identifier is its name, a call is a truthy string, ...).

--{====================================================================== tables

-- Turns 'a b c' into a set.
local function set(words)
  local s = {}
  for w in words:gmatch('%S+') do s[w] = true end
  return s
end

-- Elements known to the DOM (aria-query `dom`): only these are checked by the interaction rules; a
-- component (<Button>, <ui.Item>) could render anything.
local DOM_LIST = 'a abbr acronym address applet area article aside audio b base bdi bdo big blink blockquote '
  .. 'body br button canvas caption center cite code col colgroup content data datalist dd del details dfn '
  .. 'dialog dir div dl dt em embed fieldset figcaption figure font footer form frame frameset h1 h2 h3 h4 '
  .. 'h5 h6 head header hgroup hr html i iframe img input ins kbd keygen label legend li link main map mark '
  .. 'marquee menu menuitem meta meter nav noembed noscript object ol optgroup option output p param picture '
  .. 'pre progress q rp rt rtc ruby s samp script section select small source spacer span strike strong '
  .. 'style sub summary sup table tbody td textarea tfoot th thead time title tr track tt u ul var video wbr xmp'
local DOM = set(DOM_LIST)

-- ARIA 1.2 + DPUB + graphics roles. Abstract roles are not valid in `role`.
local ABSTRACT_ROLES = set('command composite input landmark range roletype section sectionhead select '
  .. 'structure widget window')
-- Concrete roles that descend from `widget`, plus toolbar (it manages focus like a widget).
local WIDGET_ROLES = set('button checkbox columnheader combobox grid gridcell link listbox menu menubar '
  .. 'menuitem menuitemcheckbox menuitemradio option progressbar radio radiogroup row rowheader scrollbar '
  .. 'searchbox slider spinbutton switch tab tablist textbox tree treegrid treeitem doc-backlink '
  .. 'doc-biblioref doc-glossref doc-noteref toolbar')
-- Concrete roles that do not descend from `widget` (toolbar is in both lists, as in jsx-a11y; the
-- interactive test always runs first).
local STRUCTURE_ROLES = set('alert alertdialog application article banner blockquote caption cell code '
  .. 'complementary contentinfo definition deletion dialog directory document emphasis feed figure form '
  .. 'generic group heading img insertion list listitem log main mark marquee math meter navigation none '
  .. 'note paragraph presentation region rowgroup search separator status strong subscript superscript '
  .. 'table tabpanel term time timer toolbar tooltip doc-abstract doc-acknowledgments doc-afterword '
  .. 'doc-appendix doc-biblioentry doc-bibliography doc-chapter doc-colophon doc-conclusion doc-cover '
  .. 'doc-credit doc-credits doc-dedication doc-endnote doc-endnotes doc-epigraph doc-epilogue doc-errata '
  .. 'doc-example doc-footnote doc-foreword doc-glossary doc-index doc-introduction doc-notice '
  .. 'doc-pagebreak doc-pagefooter doc-pageheader doc-pagelist doc-part doc-preface doc-prologue '
  .. 'doc-pullquote doc-qna doc-subtitle doc-tip doc-toc graphics-document graphics-object graphics-symbol')
local VALID_ROLES = {}
for r in pairs(WIDGET_ROLES) do VALID_ROLES[r] = true end
for r in pairs(STRUCTURE_ROLES) do VALID_ROLES[r] = true end
local ANY_ROLE = {}
for r in pairs(VALID_ROLES) do ANY_ROLE[r] = true end
for r in pairs(ABSTRACT_ROLES) do ANY_ROLE[r] = true end

-- Elements whose native semantics are interactive (a widget role in the HTML-AAM mapping, or a widget
-- object in the accessibility tree). Derived from aria-query elementRoles and axobject-query
-- elementAXObjects the way jsx-a11y's isInteractiveElement derives them; `true` means always, a list
-- means "when one of these attributes is present" (the mapping's conditions that jsx-a11y can test).
local INTERACTIVE_ELEMENT = {
  a = { 'href' }, area = { 'href' }, audio = true, button = true, canvas = true, datalist = true,
  embed = true, input = true, menuitem = true, option = true, select = true, summary = true, td = true,
  textarea = true, th = true, tr = true, video = true,
}
-- Elements whose native semantics are content or containers (isNonInteractiveElement). <header> and
-- <td> are never either: their role depends on where they are.
local STRUCTURE_ELEMENT = set('abbr address article aside blockquote br caption code dd del details dfn '
  .. 'dialog dir dl dt em fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 hr html iframe img ins '
  .. 'label legend li main mark marquee math menu meter nav ol optgroup output p pre progress ruby strong '
  .. 'sub sup table tbody tfoot thead time ul')
STRUCTURE_ELEMENT.section = { 'aria-label', 'aria-labelledby' }

--}======================================================================

--{====================================================================== values

-- JavaScript values that Lua has no equivalent for. Objects, arrays and functions are tables with `kind`.
local UNDEF = { kind = 'undefined' }
local NULL = { kind = 'null' }

local function truthy(v)
  if v == nil or v == UNDEF or v == NULL or v == false or v == '' or v == 0 then return false end
  if type(v) == 'number' and v ~= v then return false end -- NaN
  return true
end

local function nullish(v) return v == nil or v == UNDEF or v == NULL end

local js_string
-- String(v) as JavaScript computes it.
js_string = function(v)
  local t = type(v)
  if t == 'string' then return v end
  if t == 'boolean' then return tostring(v) end
  if t == 'number' then
    if v ~= v then return 'NaN' end
    if v == math.huge then return 'Infinity' end
    if v == -math.huge then return '-Infinity' end
    if v == math.floor(v) and math.abs(v) < 2^53 then return string.format('%d', v) end
    return string.format('%.17g', v)
  end
  if v == UNDEF then return 'undefined' end
  if v == NULL then return 'null' end
  if type(v) == 'table' and v.kind == 'array' then
    local parts = {}
    for i = 1, v.n do
      local e = v[i]
      parts[i] = nullish(e) and '' or js_string(e)
    end
    return table.concat(parts, ',')
  end
  return '[object Object]'
end

local function js_number(v)
  local t = type(v)
  if t == 'number' then return v end
  if t == 'boolean' then return v and 1 or 0 end
  if v == NULL then return 0 end
  if t == 'string' then
    local s = v:match('^%s*(.-)%s*$')
    if s == '' then return 0 end
    return tonumber(s) or 0 / 0
  end
  return 0 / 0
end

local ENTITIES = { amp = '&', lt = '<', gt = '>', quot = '"', apos = "'", nbsp = '\194\160' }

-- Decodes the HTML character references of JSX text and JSX attribute strings (as Babel and
-- typescript-estree do for the value they report).
local function decode_entities(s)
  if not s:find('&', 1, true) then return s end
  return (s:gsub('&(#?[%w]+);', function(e)
    local n
    if e:sub(1, 2) == '#x' or e:sub(1, 2) == '#X' then n = tonumber(e:sub(3), 16)
    elseif e:sub(1, 1) == '#' then n = tonumber(e:sub(2))
    else return ENTITIES[e] end
    if n and n < 0x110000 then return utf8.char(n) end
    return nil
  end))
end

local ESCAPES = { n = '\n', t = '\t', r = '\r', b = '\b', f = '\f', v = '\v', ['0'] = '\0' }

-- The value of a JavaScript string literal node, escapes resolved.
local function string_value(node)
  local raw = node:text():sub(2, -2)
  if not raw:find('\\', 1, true) then return raw end
  local out, i = {}, 1
  while true do
    local j = raw:find('\\', i, true)
    if not j then out[#out + 1] = raw:sub(i); break end
    out[#out + 1] = raw:sub(i, j - 1)
    local d = raw:sub(j + 1, j + 1)
    local hex, after
    if d == 'u' then
      hex, after = raw:match('^{(%x+)}()', j + 2)
      if not hex then hex, after = raw:match('^(%x%x%x%x)()', j + 2) end
    elseif d == 'x' then
      hex, after = raw:match('^(%x%x)()', j + 2)
    end
    local n = hex and tonumber(hex, 16)
    if n and n < 0x110000 then
      out[#out + 1] = utf8.char(n)
      i = after
    elseif d == '\r' or d == '\n' then -- line continuation
      i = j + ((d == '\r' and raw:sub(j + 2, j + 2) == '\n') and 3 or 2)
    else
      out[#out + 1] = ESCAPES[d] or d
      i = j + 2
    end
  end
  return table.concat(out)
end

-- A string or number literal node as jsx-ast-utils' Literal extractor gives it ('true'/'false' become booleans).
local function literal(v)
  if type(v) == 'string' then
    local l = v:lower()
    if l == 'true' then return true end
    if l == 'false' then return false end
  end
  return v
end

local GLOBAL_OBJECTS = { Array = true, Date = true, Math = true, Number = true, Object = true, String = true }

local eval

-- Evaluates an expression node as jsx-ast-utils does: `lit` selects getLiteralPropValue's rules, where
-- anything but literals, templates, `undefined`, unary and update expressions and arrays is null.
eval = function(node, lit)
  local t = node:type()
  if t == 'parenthesized_expression' then
    local inner = node:named_child(1)
    while inner and inner:type() == 'comment' do inner = inner:next_named_sibling() end
    return inner and eval(inner, lit) or NULL
  elseif t == 'string' then
    return literal(string_value(node))
  elseif t == 'number' then
    local s = node:text():gsub('_', '')
    local n = tonumber(s) or tonumber(s:match('^0[oO]([0-7]+)$') or '', 8)
      or tonumber(s:match('^0[bB]([01]+)$') or '', 2) or tonumber((s:gsub('n$', ''))) or 0
    return n
  elseif t == 'true' then return true
  elseif t == 'false' then return false
  elseif t == 'null' then return lit and 'null' or NULL
  elseif t == 'undefined' then return UNDEF
  elseif t == 'identifier' then
    if lit then return NULL end
    local name = node:text()
    if name == 'Infinity' then return math.huge end
    if GLOBAL_OBJECTS[name] then return { kind = 'object' } end
    return name
  elseif t == 'template_string' then
    local parts = {}
    for _, c in ipairs(node:named_children()) do
      local ct = c:type()
      if ct == 'string_fragment' or ct == 'escape_sequence' then
        parts[#parts + 1] = c:text()
      elseif ct == 'template_substitution' then
        local e = c:named_child(1)
        local et = e and e:type()
        if et == 'identifier' then parts[#parts + 1] = '{' .. e:text() .. '}'
        elseif et == 'undefined' then parts[#parts + 1] = 'undefined'
        elseif et and et ~= 'string' and et ~= 'number' and et ~= 'true' and et ~= 'false' and et ~= 'null'
          and et ~= 'regex' and et ~= 'template_string' then
          parts[#parts + 1] = '{Expression}'
        end
      end
    end
    return table.concat(parts)
  elseif t == 'regex' then
    return lit and NULL or { kind = 'object' }
  elseif t == 'arrow_function' or t == 'function_expression' or t == 'function' then
    return lit and NULL or { kind = 'function' }
  elseif t == 'unary_expression' then
    local op = node:child(1):text()
    local v = eval(node:child_by_field('argument'), lit)
    if op == '-' then return -js_number(v)
    elseif op == '+' then return js_number(v)
    elseif op == '!' then return not truthy(v)
    elseif op == '~' then local n = js_number(v); return (n ~= n) and -1 or -math.floor(n) - 1
    elseif op == 'delete' then return true end
    return lit and NULL or UNDEF -- typeof, void
  elseif t == 'update_expression' then
    return js_number(eval(node:child_by_field('argument'), lit))
  elseif t == 'array' then
    local a = { kind = 'array', n = 0 }
    for _, c in ipairs(node:named_children()) do
      if c:type() ~= 'comment' then
        local v = eval(c, lit)
        if not (lit and v == NULL) then a.n = a.n + 1; a[a.n] = v end
      end
    end
    return a
  elseif t == 'as_expression' then
    if lit then return NULL end
    return eval(node:named_child(1), lit)
  elseif t == 'call_expression' then
    local args = node:child_by_field('arguments')
    if args and args:type() == 'template_string' then return eval(args, lit) end -- tagged template
    if lit then return NULL end
    local fn = node:child_by_field('function')
    return (fn and js_string(eval(fn, false)) or '') .. '(...)'
  elseif t == 'shorthand_property_identifier' then
    return lit and NULL or node:text()
  end
  if lit then
    if t == 'assignment_expression' then return node:text() end
    return NULL
  end
  if t == 'binary_expression' then
    local op = node:child_by_field('operator'):text()
    local a = eval(node:child_by_field('left'), false)
    if op == '&&' then return truthy(a) and eval(node:child_by_field('right'), false) or a end
    if op == '||' then return truthy(a) and a or eval(node:child_by_field('right'), false) end
    if op == '??' then return nullish(a) and eval(node:child_by_field('right'), false) or a end
    local b = eval(node:child_by_field('right'), false)
    if op == '+' then
      if type(a) == 'string' or type(b) == 'string' or type(a) == 'table' or type(b) == 'table' then
        return js_string(a) .. js_string(b)
      end
      return js_number(a) + js_number(b)
    elseif op == '===' or op == '==' then return a == b
    elseif op == '!==' or op == '!=' then return a ~= b
    end
    return 0 / 0 -- arithmetic on names: NaN, falsy but not nullish
  elseif t == 'ternary_expression' then
    local c = eval(node:child_by_field('condition'), false)
    return eval(node:child_by_field(truthy(c) and 'consequence' or 'alternative'), false)
  elseif t == 'member_expression' or t == 'subscript_expression' or t == 'this'
    or t == 'non_null_expression' or t == 'assignment_expression' or t == 'augmented_assignment_expression'
    or t == 'jsx_element' or t == 'jsx_self_closing_element' then
    return node:text()
  elseif t == 'object' or t == 'new_expression' then
    return { kind = 'object' }
  elseif t == 'sequence_expression' then
    return { kind = 'array', n = 0 }
  end
  return NULL -- await, yield, satisfies, class, ...: jsx-ast-utils gives null
end

-- The value of an attribute (see `attributes`): getPropValue, or getLiteralPropValue when `lit`.
-- nil attribute gives undefined; an attribute without a value gives true.
local function value_of(attr, lit)
  if not attr then return UNDEF end
  local v = attr.value
  if v == nil then return true end
  local t = v:type()
  if t == 'string' then return literal(decode_entities(v:text():sub(2, -2))) end
  if t == 'jsx_expression' then
    local e = v:named_child(1)
    while e and e:type() == 'comment' do e = e:next_named_sibling() end
    if not e then return NULL end -- {} or {/* comment */}: JSXEmptyExpression
    return eval(e, lit)
  end
  if attr.pair then return eval(v, lit) end -- a property of a spread object literal
  if lit then return NULL end
  return v:text() -- <a title=<b/> />
end

--}======================================================================

--{====================================================================== elements

-- The element node's attributes in order: { name =, up = <name upper-cased>, node =, value = <value node or
-- nil> } or { spread = true, node =, object = <object node or nil> } for {...x}.
local function attributes(el)
  local list = {}
  for _, c in ipairs(el:named_children()) do
    local t = c:type()
    if t == 'jsx_attribute' then
      local n = c:named_child(1)
      local name
      if n:type() == 'jsx_namespace_name' then
        name = n:named_child(1):text() .. ':' .. n:named_child(2):text()
      else
        name = n:text()
      end
      list[#list + 1] = { name = name, up = name:upper(), node = c, value = c:named_child(2) }
    elseif t == 'jsx_expression' then
      local s = c:named_child(1)
      if s and s:type() == 'spread_element' then
        local arg = s:named_child(1)
        while arg and arg:type() == 'parenthesized_expression' do arg = arg:named_child(1) end
        list[#list + 1] = { spread = true, node = c, object = arg and arg:type() == 'object' and arg or nil }
      end
    end
  end
  return list
end

-- getProp: the first attribute named `name` (ignoring case), also found as a property of a spread
-- object literal ({...{onClick: f}}).
local function get_prop(attrs, name)
  local up = name:upper()
  for _, a in ipairs(attrs) do
    if a.spread then
      if a.object and up ~= 'KEY' then
        for _, p in ipairs(a.object:named_children()) do
          local pt = p:type()
          if pt == 'pair' then
            local k = p:child_by_field('key')
            if k:type() == 'property_identifier' and k:text():upper() == up then
              return { name = k:text(), node = p, value = p:child_by_field('value'), pair = true }
            end
          elseif pt == 'shorthand_property_identifier' and p:text():upper() == up then
            return { name = p:text(), node = p, value = p, pair = true }
          end
        end
      end
    elseif a.up == up then
      return a
    end
  end
  return nil
end

-- hasProp: an attribute (not a spread) named `name`, ignoring case.
local function has_prop(attrs, name)
  local up = name:upper()
  for _, a in ipairs(attrs) do
    if not a.spread and a.up == up then return true end
  end
  return false
end

local function has_any_prop(attrs, names)
  for _, n in ipairs(names) do
    if has_prop(attrs, n) then return true end
  end
  return false
end

local function has_spread(attrs)
  for _, a in ipairs(attrs) do
    if a.spread then return true end
  end
  return false
end

-- The element type of an opening or self-closing element node (jsx-ast-utils elementType).
local function element_type(el)
  local n = el:child_by_field('name')
  if not n then return '<>' end
  return (n:text():gsub('%s', ''))
end

-- aria-hidden is true, or an <input type="hidden">.
local function is_hidden(tag, attrs)
  if tag:upper() == 'INPUT' then
    local v = value_of(get_prop(attrs, 'type'), true)
    if type(v) == 'string' and v:upper() == 'HIDDEN' then return true end
  end
  return value_of(get_prop(attrs, 'aria-hidden'), false) == true
end

local function role_literal(attrs)
  return value_of(get_prop(attrs, 'role'), true)
end

local function is_presentation(attrs)
  local r = role_literal(attrs)
  return r == 'presentation' or r == 'none'
end

-- The first known role of a role list literal, lowercased.
local function first_role(attrs)
  local v = role_literal(attrs)
  if nullish(v) then return nil end
  for r in js_string(v):lower():gmatch('[^ ]+') do
    if ANY_ROLE[r] then return r end
  end
  return nil
end

local function is_interactive_role(attrs)
  local r = first_role(attrs)
  return r ~= nil and WIDGET_ROLES[r] == true
end

local function is_noninteractive_role(attrs)
  local r = first_role(attrs)
  return r ~= nil and STRUCTURE_ROLES[r] == true
end

local function is_abstract_role(attrs)
  local r = role_literal(attrs)
  return type(r) == 'string' and ABSTRACT_ROLES[r] == true
end

-- An attribute named exactly `name` (no case folding, as aria-query's attribute schemas compare).
local function has_exact(attrs, name)
  for _, a in ipairs(attrs) do
    if not a.spread and a.name == name then return true end
  end
  return false
end

local function matches_semantics(entry, attrs)
  if entry == true then return true end
  if not entry then return false end
  for _, name in ipairs(entry) do
    if has_exact(attrs, name) then return true end
  end
  return false
end

local function is_interactive_element(tag, attrs)
  return matches_semantics(INTERACTIVE_ELEMENT[tag], attrs)
end

local function is_noninteractive_element(tag, attrs)
  return matches_semantics(STRUCTURE_ELEMENT[tag], attrs)
end

-- The children of a jsx_element between its tags, and whether text (perhaps only white space, which the
-- ESTree keeps as JSXText and tree-sitter drops) sits between them.
local function children(el)
  local kids, size = {}, 0
  local open, close
  for _, c in ipairs(el:named_children()) do
    local t = c:type()
    if t == 'jsx_opening_element' then open = c
    elseif t == 'jsx_closing_element' then close = c
    else
      kids[#kids + 1] = c
      local r = c:range()
      size = size + (r.end_byte - r.start_byte)
    end
  end
  local gap = false
  if open and close then
    gap = close:range().start_byte - open:range().end_byte > size
  end
  return kids, gap, open
end

-- The element (jsx_element or jsx_self_closing_element) an opening element belongs to, and the node
-- holding its attributes.
local function element_of(el)
  if el:type() == 'jsx_opening_element' then return el:parent(), el end
  return el, el
end

-- hasAccessibleChild: text, an expression other than {undefined}, or an element that is not hidden;
-- or a `children` or `dangerouslySetInnerHTML` prop.
local function has_accessible_child(elem, attrs)
  if elem:type() == 'jsx_element' then
    local kids, gap = children(elem)
    if gap then return true end
    for _, c in ipairs(kids) do
      local t = c:type()
      if t == 'jsx_text' or t == 'html_character_reference' then return true end
      if t == 'jsx_expression' then
        local e = c:named_child(1)
        if not (e and e:type() == 'undefined' and c:named_child_count() == 1) then return true end
      elseif t == 'jsx_self_closing_element' then
        if not is_hidden(element_type(c), attributes(c)) then return true end
      elseif t == 'jsx_element' then
        local o = c:child_by_field('open_tag')
        if o and o:child_by_field('name') and not is_hidden(element_type(o), attributes(o)) then return true end
      end
    end
  end
  return has_any_prop(attrs, { 'dangerouslySetInnerHTML', 'children' })
end

-- Case-insensitive POSIX regex for a word.
local function ci(word)
  return (word:gsub('%a', function(c) return '[' .. c:upper() .. c:lower() .. ']' end))
end

-- 'a b' -> '"a" "b"', the arguments of #any-of?.
local function quoted(names)
  local list = {}
  for n in names:gmatch('%S+') do list[#list + 1] = '"' .. n .. '"' end
  return table.concat(list, ' ')
end

-- Two patterns (opening and self-closing elements) whose name is one of `names`.
local function elements_query(names)
  local any = quoted(names)
  return ('((jsx_opening_element name: (identifier) @tag) @el (#any-of? @tag %s))\n'
    .. '((jsx_self_closing_element name: (identifier) @tag) @el (#any-of? @tag %s))'):format(any, any)
end

-- Attributes (@h) whose name matches `regex`, with the attribute or the spread (@a) that holds the name
-- (the rule's check then looks at the element, a's parent). Starting from the attribute keeps the query
-- small: tree-sitter's compile of a query (once per process) costs about as much again per pattern over
-- (element, attribute) pairs as the checks of all the handlers of the bench corpus.
local function handler_query(regex, spread)
  local q = ('((jsx_attribute (property_identifier) @h) @a (#match? @h "%s"))'):format(regex)
  if not spread then return q end
  return q .. ('\n((jsx_expression (spread_element (object (pair key: (property_identifier) @h)))) @a '
    .. '(#match? @h "%s"))\n'
    .. '((jsx_expression (spread_element (object (shorthand_property_identifier) @h))) @a (#match? @h "%s"))')
    :format(regex, regex)
end

-- What the three handler rules find of the same attributes and elements (once per handler attribute
-- each): the element of an attribute (a parent lookup, which tree-sitter answers by walking down from
-- the root) and an element's attributes, made once per file. Only the current file's are kept (its tree
-- is the key).
local memo_tree, memo_el, memo_attrs = nil, {}, {}

local function memo_for(ctx)
  if ctx.tree ~= memo_tree then memo_tree, memo_el, memo_attrs = ctx.tree, {}, {} end
end

-- The element of a handler match (an attribute name, or a key in {...{onClick}}), and its DOM tag; nil
-- when it is not on a DOM element.
local function handler_element(ctx, m)
  memo_for(ctx)
  local a = m.captures.a
  local k = a:byte_range()          -- an attribute or a {...spread}: one starts at each byte
  local hit = memo_el[k]
  if hit == nil then
    hit = false
    local el = a:parent()
    local et = el and el:type()
    if et == 'jsx_opening_element' or et == 'jsx_self_closing_element' then
      local name = el:child_by_field('name')
      if name and name:type() == 'identifier' then
        local tag = name:text()
        if DOM[tag] then hit = { el, tag } end
      end
    end
    memo_el[k] = hit
  end
  if not hit then return nil end
  return hit[1], hit[2]
end

-- The attributes of the element of a handler match.
local function handler_attributes(ctx, el)
  memo_for(ctx)
  local k = el:byte_range()         -- an opening or a self-closing element: one starts at each byte
  local a = memo_attrs[k]
  if not a then
    a = attributes(el)
    memo_attrs[k] = a
  end
  return a
end

-- `node` is the attribute (or property of a spread object) named by `h`: it starts where its name does
-- (told by the offsets: asking for h's parent walks down from the root).
local function named_by(node, h)
  return node:byte_range() == h:byte_range()
end

-- True when `h` (the captured attribute name) is the first attribute matching `pattern` (a Lua pattern
-- over the upper-cased name): one finding per element however many handlers it has.
local function first_of(attrs, h, pattern)
  for _, a in ipairs(attrs) do
    if not a.spread and a.up:find(pattern) then
      return named_by(a.node, h)
    end
  end
  return false
end

-- Some handler in `handlers` is an attribute whose value is not null or undefined.
local function has_handler(attrs, handlers)
  for _, h in ipairs(handlers) do
    if has_prop(attrs, h) and not nullish(value_of(get_prop(attrs, h), false)) then return true end
  end
  return false
end

--}======================================================================

--{====================================================================== rules

local function label_value(attr)
  local v = value_of(attr, false)
  return not (v == UNDEF or v == '')
end

local function alt_ok(alt)
  local v = value_of(alt, false)
  return (truthy(v) and alt.value ~= nil) or v == ''
end

local ALT = {}

function ALT.img(attrs, tag)
  local alt = get_prop(attrs, 'alt')
  if not alt then
    if is_presentation(attrs) then
      return 'mark a decorative image with alt="", not with role="presentation" or role="none"'
    end
    local label = get_prop(attrs, 'aria-label')
    if label then
      if not label_value(label) then
        return 'aria-label on an image is empty: give it text (alt is the better way to label an image)'
      end
      return nil
    end
    local by = get_prop(attrs, 'aria-labelledby')
    if by then
      if not label_value(by) then
        return 'aria-labelledby on an image is empty: point it at a label (alt is the better way to label an '
          .. 'image)'
      end
      return nil
    end
    return '<' .. tag .. '> has no alt prop: describe the image, or use alt="" if it is decorative'
  end
  if alt_ok(alt) then return nil end
  return 'alt on <' .. tag .. '> has no usable value: describe the image, or use alt="" if it is decorative'
end

local function has_label(attrs)
  local l, b = get_prop(attrs, 'aria-label'), get_prop(attrs, 'aria-labelledby')
  return (l and label_value(l)) or (b and label_value(b))
end

function ALT.object(attrs, _, el)
  if has_label(attrs) or truthy(value_of(get_prop(attrs, 'title'), true)) then return nil end
  if has_accessible_child(element_of(el), attrs) then return nil end
  return '<object> has no text alternative: add inner text, a title, aria-label or aria-labelledby'
end

local function alt_or_label(attrs, message)
  if has_label(attrs) then return nil end
  local alt = get_prop(attrs, 'alt')
  if alt and alt_ok(alt) then return nil end
  return message
end

function ALT.area(attrs)
  return alt_or_label(attrs, '<area> of an image map has no text alternative: add alt, aria-label or '
    .. 'aria-labelledby')
end

ALT['input[type="image"]'] = function(attrs, tag)
  if tag == 'input' and value_of(get_prop(attrs, 'type'), false) ~= 'image' then return nil end
  return alt_or_label(attrs, '<input type="image"> has no text alternative: add alt, aria-label or '
    .. 'aria-labelledby')
end

local function list_has(list, x)
  for _, v in ipairs(list or {}) do
    if v == x then return true end
  end
  return false
end

local function alt_text(ctx, m)
  local el = m.captures.el
  local tag = m.captures.tag:text()
  local opts = ctx.options or {}
  local elements = opts.elements or { 'img', 'object', 'area', 'input[type="image"]' }
  local kind = tag == 'input' and 'input[type="image"]' or tag
  if not list_has(elements, kind) then return nil end
  local msg = ALT[kind](attributes(el), tag, el)
  return msg and { node = el, message = msg }
end

local ANCHOR_PROPS = { 'title', 'aria-label' }

local function anchor_has_content(_, m)
  local el = m.captures.el
  local attrs = attributes(el)
  if has_accessible_child(element_of(el), attrs) or has_any_prop(attrs, ANCHOR_PROPS) then return nil end
  return { node = el, message = 'anchor has no content a screen reader can announce: add text, a visible child, '
    .. 'title or aria-label' }
end

local PREFER_BUTTON = 'anchor used as a button (a click handler and no real address): use <button> and '
  .. 'style it'
local NO_HREF = 'anchor without href cannot be reached with the keyboard: give it a real address, or use '
  .. '<button> if it does not navigate'
local INVALID_HREF = "anchor href is not an address ('', '#' or javascript:): give it a real one, or use "
  .. '<button> if it does not navigate'

local function anchor_is_valid(ctx, m)
  local el = m.captures.el
  local attrs = attributes(el)
  local opts = ctx.options or {}
  local aspects = opts.aspects or { 'noHref', 'invalidHref', 'preferButton' }
  local no_href, invalid, prefer = list_has(aspects, 'noHref'), list_has(aspects, 'invalidHref'),
    list_has(aspects, 'preferButton')
  local props = { 'href' }
  for _, p in ipairs(opts.specialLink or {}) do props[#props + 1] = p end
  local values, any = {}, false
  for i, p in ipairs(props) do
    values[i] = value_of(get_prop(attrs, p), false)
    if not nullish(values[i]) then any = true end
  end
  local onclick = get_prop(attrs, 'onClick') ~= nil
  if not any then
    if has_spread(attrs) then return nil end
    if onclick then return prefer and { node = el, message = PREFER_BUTTON } or nil end
    return no_href and { node = el, message = NO_HREF } or nil
  end
  for _, v in ipairs(values) do
    if type(v) == 'string' and (v == '' or v == '#' or v:find('^[^%w_]*javascript:')) then
      if onclick and prefer then return { node = el, message = PREFER_BUTTON } end
      if invalid then return { node = el, message = INVALID_HREF } end
      return nil
    end
  end
  return nil
end

local KEY_HANDLERS = { 'onkeydown', 'onkeyup', 'onkeypress' }

local function click_events_have_key_events(ctx, m)
  local h = m.captures.h
  local el, tag = handler_element(ctx, m)
  if not el then return nil end
  local attrs = handler_attributes(ctx, el)
  -- may be {...{onClick: f}}; one finding per element: that of the first onClick (h itself when it is
  -- a shorthand property, else h's attribute or pair)
  local onclick = get_prop(attrs, 'onClick')
  if not onclick or not named_by(onclick.node, h) then return nil end
  if is_hidden(tag, attrs) or is_presentation(attrs) or is_interactive_element(tag, attrs)
    or has_any_prop(attrs, KEY_HANDLERS) then
    return nil
  end
  return { node = el, message = 'clickable element that is not natively interactive has no keyboard handler: '
    .. 'add onKeyDown, onKeyUp or onKeyPress' }
end

-- role={cond ? 'a' : 'b'}, role={x}: a role the rule cannot read (isNonLiteralProperty).
local function non_literal_role(attrs)
  local r = get_prop(attrs, 'role')
  if not r or not r.value then return false end
  local v = r.value
  if v:type() == 'string' then return false end
  if v:type() == 'jsx_expression' then
    local e = v:named_child(1)
    if e and e:type() == 'undefined' then return false end
  end
  return true
end

local STATIC_HANDLERS = { 'onClick', 'onMouseDown', 'onMouseUp', 'onKeyPress', 'onKeyDown', 'onKeyUp' }

local function no_static_element_interactions(ctx, m)
  local el, tag = handler_element(ctx, m)
  if not el then return nil end
  local attrs = handler_attributes(ctx, el)
  if not first_of(attrs, m.captures.h, '^ON') then return nil end
  local opts = ctx.options or {}
  if not has_handler(attrs, opts.handlers or STATIC_HANDLERS) or is_hidden(tag, attrs)
    or is_presentation(attrs) then
    return nil
  end
  if is_interactive_element(tag, attrs) or is_interactive_role(attrs) or is_noninteractive_element(tag, attrs)
    or is_noninteractive_role(attrs) or is_abstract_role(attrs) then
    return nil
  end
  if opts.allowExpressionValues == true and non_literal_role(attrs) then return nil end
  return { node = el, message = 'static element with a mouse or keyboard handler: use a native interactive '
    .. 'element, or give it a role and keyboard and focus support' }
end

local NONINTERACTIVE_HANDLERS = { 'onClick', 'onError', 'onLoad', 'onMouseDown', 'onMouseUp', 'onKeyPress',
  'onKeyDown', 'onKeyUp' }

local function no_noninteractive_element_interactions(ctx, m)
  local el, tag = handler_element(ctx, m)
  if not el then return nil end
  local attrs = handler_attributes(ctx, el)
  if not first_of(attrs, m.captures.h, '^ON') then return nil end
  local opts = ctx.options or {}
  local allowed = tag ~= 'handlers' and opts[tag] or nil
  if type(allowed) == 'table' then
    local kept = {}
    for _, a in ipairs(attrs) do
      if not a.spread and not list_has(allowed, a.name) then kept[#kept + 1] = a end
    end
    attrs = kept
  end
  if not has_handler(attrs, opts.handlers or NONINTERACTIVE_HANDLERS) then return nil end
  local ce = get_prop(attrs, 'contentEditable')
  if ce and ce.value and ce.value:text() == '"true"' then return nil end
  if is_hidden(tag, attrs) or is_presentation(attrs) then return nil end
  if is_interactive_element(tag, attrs) or is_interactive_role(attrs)
    or (not is_noninteractive_element(tag, attrs) and not is_noninteractive_role(attrs))
    or is_abstract_role(attrs) then
    return nil
  end
  return { node = el, message = 'non-interactive element (content or container) with a mouse or keyboard '
    .. 'handler: move the handler to an interactive element' }
end

-- minimatch for the names these options hold: '*' and '?' wildcards, no path separators.
local function glob(name, pattern)
  if not pattern:find('[%*%?%[]') then return name == pattern end
  local p = pattern:gsub('[%^%$%(%)%%%.%+%-]', '%%%0'):gsub('%*', '[^/]*'):gsub('%?', '[^/]')
  return name:find('^' .. p .. '$') ~= nil
end

local function glob_any(name, patterns)
  for _, p in ipairs(patterns) do
    if glob(name, p) then return true end
  end
  return false
end

-- The opening node of a child element, or nil for a fragment.
local function open_of(c)
  if c:type() == 'jsx_self_closing_element' then return c end
  local o = c:child_by_field('open_tag') or c:named_child(1)
  if o and o:child_by_field('name') then return o end
  return nil
end

-- mayContainChildComponent: an expression child, or an element whose type matches `name`, within `max`
-- levels.
local function may_contain(elem, names, max, depth)
  if depth > max or elem:type() ~= 'jsx_element' then return false end
  local kids = children(elem)
  for _, c in ipairs(kids) do
    local t = c:type()
    if t == 'jsx_expression' then return true end
    if t == 'jsx_element' or t == 'jsx_self_closing_element' then
      local o = open_of(c)
      if o and glob_any(element_type(o), names) then return true end
      if may_contain(c, names, max, depth + 1) then return true end
    end
  end
  return false
end

local LABELLING = { 'alt', 'aria-label', 'aria-labelledby' }

local function has_labelling_prop(attrs, extra)
  for _, a in ipairs(attrs) do
    if a.spread then return true end
    if list_has(LABELLING, a.name) or list_has(extra, a.name) then
      local v = value_of(a, false)
      if type(v) == 'string' then v = v:match('^%s*(.-)%s*$') end
      if truthy(v) then return true end
    end
  end
  return false
end

-- mayHaveAccessibleLabel, from the label element (depth 0) down to `max` levels.
local function may_have_label(node, max, extra, controls, depth)
  if depth > max then return false end
  local t = node:type()
  if t == 'jsx_expression' then return true end
  if t == 'jsx_text' then return node:text():find('%S') ~= nil end
  if t == 'html_character_reference' then
    local s = decode_entities(node:text())
    return s ~= '\194\160' and s:find('%S') ~= nil
  end
  if t ~= 'jsx_element' and t ~= 'jsx_self_closing_element' then return false end
  local o = open_of(node)
  if o then
    if has_labelling_prop(attributes(o), extra) then return true end
  end
  local kids, gap = {}, false
  if t == 'jsx_element' then kids, gap = children(node) end
  if o and #kids == 0 and not gap then
    local name = element_type(o)
    local first = name:sub(1, 1)
    if #name > 0 and first == first:upper() and not glob_any(name, controls) then return true end
  end
  for _, c in ipairs(kids) do
    if may_have_label(c, max, extra, controls, depth + 1) then return true end
  end
  return false
end

local LABEL_NO_TEXT = 'label has no text a screen reader can announce'
local LABEL_NO_CONTROL = 'label is not tied to a control: add htmlFor, or nest the input, select or textarea in it'

local CONTROLS = { 'input', 'meter', 'output', 'progress', 'select', 'textarea' }

local function label_has_associated_control(ctx, m)
  local elem = m.captures.el
  local open = elem:type() == 'jsx_element' and elem:child_by_field('open_tag') or elem
  local attrs = attributes(open)
  local opts = ctx.options or {}
  local controls = { table.unpack(CONTROLS) }
  for _, c in ipairs(opts.controlComponents or {}) do controls[#controls + 1] = c end
  local depth = math.min(opts.depth or 2, 25)
  local html_for = false
  if has_prop(attrs, 'htmlFor') then
    html_for = truthy(value_of(get_prop(attrs, 'htmlFor'), false))
  end
  if not may_have_label(elem, depth, opts.labelAttributes or {}, controls, 0) then
    return { node = open, message = LABEL_NO_TEXT }
  end
  local assert_type = opts.assert or 'either'
  local nested = may_contain(elem, controls, depth, 1)
  local bad = (assert_type == 'htmlFor' and not html_for) or (assert_type == 'nesting' and not nested)
    or (assert_type == 'both' and not (html_for and nested))
    or (assert_type == 'either' and not html_for and not nested)
  return bad and { node = open, message = LABEL_NO_CONTROL } or nil
end

local function heading_has_content(_, m)
  local el, tag = m.captures.el, m.captures.tag:text()
  local attrs = attributes(el)
  if has_accessible_child(element_of(el), attrs) or is_hidden(tag, attrs) then return nil end
  return { node = el, message = 'heading has no content a screen reader can announce' }
end

local function aria_role(ctx, m)
  local attr = m.captures.attr
  local opts = ctx.options or {}
  local el = attr:parent()
  if opts.ignoreNonDOM and not DOM[element_type(el)] then return nil end
  local v = value_of({ name = 'role', value = attr:named_child(2) }, true)
  if nullish(v) then return nil end
  local allowed = {}
  for _, r in ipairs(opts.allowedInvalidRoles or {}) do allowed[r] = true end
  local s = js_string(v)
  local i = 1
  while true do
    local j = s:find(' ', i, true)
    local r = s:sub(i, (j or 0) - 1)
    if not (allowed[r] or VALID_ROLES[r]) then
      return { node = attr, message = "role holds '" .. r .. "', which is not a valid, non-abstract ARIA role" }
    end
    if not j then return nil end
    i = j + 1
  end
end

--}======================================================================

return {
  name = 'a11y',
  version = '1.0.0',
  description = 'Accessibility of JSX: the eslint-plugin-jsx-a11y rules of the same names (recommended options)',
  rules = {
    {
      id = 'alt-text',
      severity = 'error',
      description = 'Elements that need a text alternative (img, object, area, input type="image") have one',
      eslint = 'jsx-a11y/alt-text',
      help = 'Describe the image in alt (alt="" if it is decorative); give <object> inner text or a title, <area> '
        .. 'and <input type="image"> an alt.',
      lang = 'tsx',
      query = elements_query('img object area input'),
      check = alt_text,
      options = { elements = { 'img', 'object', 'area', 'input[type="image"]' } },
    },
    {
      id = 'anchor-has-content',
      severity = 'error',
      description = 'Anchors have content that a screen reader can read',
      eslint = 'jsx-a11y/anchor-has-content',
      help = 'Put text in the link, or give it aria-label or title; children hidden with aria-hidden do not count.',
      lang = 'tsx',
      query = elements_query('a'),
      check = anchor_has_content,
    },
    {
      id = 'anchor-is-valid',
      severity = 'error',
      description = 'Anchors have a valid, navigable href and are not used as buttons',
      eslint = 'jsx-a11y/anchor-is-valid',
      help = 'Give the anchor a real address in href; an element that only runs code on click should be a <button>.',
      lang = 'tsx',
      query = elements_query('a'),
      check = anchor_is_valid,
      options = { aspects = { 'noHref', 'invalidHref', 'preferButton' }, specialLink = {} },
    },
    {
      id = 'click-events-have-key-events',
      severity = 'error',
      description = 'A clickable non-interactive element also has a keyboard handler',
      eslint = 'jsx-a11y/click-events-have-key-events',
      help = 'Keyboard users cannot click: handle onKeyDown (Enter and Space) too, or use a <button>.',
      lang = 'tsx',
      query = handler_query('^' .. ci('onclick') .. '$', true),
      check = click_events_have_key_events,
    },
    {
      id = 'no-static-element-interactions',
      severity = 'error',
      description = 'Static elements (div, span, ...) with mouse or keyboard handlers have a role',
      eslint = 'jsx-a11y/no-static-element-interactions',
      help = 'Use <button> or <a href>; if that is impossible, add a role such as role="button", tabIndex and key '
        .. 'handlers.',
      lang = 'tsx',
      query = handler_query('^' .. ci('on')),
      check = no_static_element_interactions,
      options = { allowExpressionValues = true, handlers = STATIC_HANDLERS },
    },
    {
      id = 'no-noninteractive-element-interactions',
      severity = 'error',
      description = 'Non-interactive elements (li, p, img, ...) have no mouse or keyboard handlers',
      eslint = 'jsx-a11y/no-noninteractive-element-interactions',
      help = 'Move the handler to a <button> inside the element, or give the element an interactive role if it '
        .. 'really is a control.',
      lang = 'tsx',
      query = handler_query('^' .. ci('on')),
      check = no_noninteractive_element_interactions,
      options = {
        handlers = NONINTERACTIVE_HANDLERS,
        alert = { 'onKeyUp', 'onKeyDown', 'onKeyPress' },
        body = { 'onError', 'onLoad' },
        dialog = { 'onKeyUp', 'onKeyDown', 'onKeyPress' },
        iframe = { 'onError', 'onLoad' },
        img = { 'onError', 'onLoad' },
      },
    },
    {
      id = 'label-has-associated-control',
      severity = 'error',
      description = 'A label has text and is tied to a control (htmlFor or a nested control)',
      eslint = 'jsx-a11y/label-has-associated-control',
      help = 'Give the label text and tie it to its control: htmlFor with the control\'s id, or the control nested'
        .. ' inside the label.',
      lang = 'tsx',
      query = '((jsx_element open_tag: (jsx_opening_element name: (identifier) @tag)) @el (#eq? @tag "label"))\n'
        .. '((jsx_self_closing_element name: (identifier) @tag) @el (#eq? @tag "label"))',
      check = label_has_associated_control,
      options = { assert = 'either', depth = 2, labelAttributes = {}, controlComponents = {} },
    },
    {
      id = 'heading-has-content',
      severity = 'error',
      description = 'Headings (h1-h6) have content that a screen reader can read',
      eslint = 'jsx-a11y/heading-has-content',
      help = 'Put text in the heading; an empty heading is announced as a heading with nothing in it.',
      lang = 'tsx',
      query = elements_query('h1 h2 h3 h4 h5 h6'),
      check = heading_has_content,
    },
    {
      id = 'aria-role',
      severity = 'error',
      description = 'A role attribute holds valid, non-abstract ARIA roles',
      eslint = 'jsx-a11y/aria-role',
      help = 'Use a role from WAI-ARIA 1.2 (button, link, dialog, ...), in lower case; abstract roles such as '
        .. 'range or widget are not for use in markup.',
      lang = 'tsx',
      query = '((jsx_attribute (property_identifier) @name) @attr (#match? @name "^' .. ci('role') .. '$"))',
      check = aria_role,
      options = { allowedInvalidRoles = {}, ignoreNonDOM = false },
    },
  },
}
