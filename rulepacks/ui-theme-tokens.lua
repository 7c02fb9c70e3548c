-- ui-theme-tokens: colours, spacing and font sizes come from the theme, not from literals.
-- No ESLint equivalent; docs/rulepacks/ui-theme-tokens.md gives the exact scope.
--
-- Scope (the "style roots" the query finds in C):
--   * JSX props `style`, `sx` and `css` whose value is an object (or an array, ternary or && of objects);
--   * arguments of CSS-in-JS calls: css(...), keyframes, createGlobalStyle, injectGlobal, globalStyle, style,
--     styleVariants, makeStyles, createStyles, StyleSheet.create(...), styled.div(...), styled(X)(...),
--     styled.div.attrs(...)(...), styled(X).attrs(...)(...);
--   * the same callees used as template tags: css`...`, styled.div`...`, styled(X)`...`, styled.div<P>`...`.
-- Inside an object every property is checked, and nested objects (selectors, media queries) too; inside a
-- template every `property: value` declaration. Anything computed (theme.x, props => ..., ${...}) is left
-- alone: only literal text is a hard-coded value. A value equal to a configured token (config
-- `theme.tokens`, a list or a nested map: its values and its key paths count) is fine, and var(--x) is
-- always fine.

--{====================================================================== tables

local function set(words)
  local s = {}
  for w in words:gmatch('%S+') do s[w] = true end
  return s
end

-- CSS named colours (CSS Color 4), lowercase.
local NAMED = set('aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue '
  .. 'blueviolet brown burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk crimson cyan '
  .. 'darkblue darkcyan darkgoldenrod darkgray darkgreen darkgrey darkkhaki darkmagenta darkolivegreen '
  .. 'darkorange darkorchid darkred darksalmon darkseagreen darkslateblue darkslategray darkslategrey '
  .. 'darkturquoise darkviolet deeppink deepskyblue dimgray dimgrey dodgerblue firebrick floralwhite '
  .. 'forestgreen fuchsia gainsboro ghostwhite gold goldenrod gray green greenyellow grey honeydew hotpink '
  .. 'indianred indigo ivory khaki lavender lavenderblush lawngreen lemonchiffon lightblue lightcoral '
  .. 'lightcyan lightgoldenrodyellow lightgray lightgreen lightgrey lightpink lightsalmon lightseagreen '
  .. 'lightskyblue lightslategray lightslategrey lightsteelblue lightyellow lime limegreen linen magenta '
  .. 'maroon mediumaquamarine mediumblue mediumorchid mediumpurple mediumseagreen mediumslateblue '
  .. 'mediumspringgreen mediumturquoise mediumvioletred midnightblue mintcream mistyrose moccasin '
  .. 'navajowhite navy oldlace olive olivedrab orange orangered orchid palegoldenrod palegreen '
  .. 'paleturquoise palevioletred papayawhip peachpuff peru pink plum powderblue purple rebeccapurple red '
  .. 'rosybrown royalblue saddlebrown salmon sandybrown seagreen seashell sienna silver skyblue slateblue '
  .. 'slategray slategrey snow springgreen steelblue tan teal thistle tomato turquoise violet wheat white '
  .. 'whitesmoke yellow yellowgreen')

-- Colour functions.
local COLOR_FUNCTIONS = set('rgb rgba hsl hsla hwb lab lch oklab oklch color')

-- Properties (lowercase, without '-') whose value may name a colour. Hex and colour functions are
-- reported on every property; named colours only on these (a font called "Orange" is not a colour).
local COLOR_PROPS = set('color background backgroundcolor backgroundimage border bordercolor bordertop '
  .. 'borderright borderbottom borderleft bordertopcolor borderrightcolor borderbottomcolor borderleftcolor '
  .. 'borderblock borderblockcolor borderinline borderinlinecolor borderblockstart borderblockend '
  .. 'borderinlinestart borderinlineend borderblockstartcolor borderblockendcolor borderinlinestartcolor '
  .. 'borderinlineendcolor outline outlinecolor boxshadow textshadow fill stroke caretcolor accentcolor '
  .. 'textdecoration textdecorationcolor textemphasiscolor columnrule columnrulecolor stopcolor floodcolor '
  .. 'lightingcolor scrollbarcolor bg bgcolor borderColor')

-- Spacing properties (lowercase, without '-'); the short ones are styled-system / MUI `sx` aliases.
local SPACING_PROPS = set('margin margintop marginright marginbottom marginleft marginblock marginblockstart '
  .. 'marginblockend margininline margininlinestart margininlineend marginx marginy padding paddingtop '
  .. 'paddingright paddingbottom paddingleft paddingblock paddingblockstart paddingblockend paddinginline '
  .. 'paddinginlinestart paddinginlineend paddingx paddingy gap rowgap columngap gridgap gridrowgap '
  .. 'gridcolumngap inset insetblock insetblockstart insetblockend insetinline insetinlinestart '
  .. 'insetinlineend top right bottom left marginhorizontal marginvertical paddinghorizontal paddingvertical '
  .. 'm mt mr mb ml mx my p pt pr pb pl px py')

local FONT_SIZE_PROPS = set('fontsize font')

--}======================================================================

--{====================================================================== tokens

-- The allowed-value set of the last tokens table seen. The engine hands each check a copy of the config, so
-- one entry (not a table keyed by config, which would grow with every file) is what can be reused.
local cached_tokens, cached_allowed = nil, nil

local function norm(s)
  return (s:lower():gsub('%s+', ' '):gsub('^ ', ''):gsub(' $', ''))
end

-- The set of allowed values of a config: token values, token names and dotted key paths, normalised.
-- Numbers n also allow 'npx'.
local function tokens(ctx)
  local cfg = ctx.config
  local src = cfg and cfg.theme and cfg.theme.tokens
  if src == nil then return {} end
  if src == cached_tokens then return cached_allowed end
  local allowed = {}
  local function add(v)
    if type(v) == 'number' then
      local s = (v == math.floor(v) and math.abs(v) < 2^53) and string.format('%d', v) or tostring(v)
      allowed[s] = true
      allowed[s .. 'px'] = true
    elseif type(v) == 'string' then
      allowed[norm(v)] = true
    end
  end
  local function walk(t, prefix, depth)
    if depth > 16 then return end -- a config is data, but a cycle must not hang the check
    for k, v in pairs(t) do
      local path = type(k) == 'string' and (prefix and prefix .. '.' .. k or k) or prefix
      if type(k) == 'string' then add(k); add(path) end
      if type(v) == 'table' then walk(v, path, depth + 1) else add(v) end
    end
  end
  if type(src) == 'table' then walk(src, nil, 1) else add(src) end
  cached_tokens, cached_allowed = src, allowed
  return allowed
end

local function allowed_value(ctx, text)
  local t = tokens(ctx)
  local n = norm(text)
  if t[n] then return true end
  for _, a in ipairs((ctx.options or {}).allow or {}) do
    if norm(tostring(a)) == n then return true end
  end
  return false
end

--}======================================================================

--{====================================================================== scanners

-- Each scanner takes (prop, text, base, ctx, out, numeric) where `prop` is the normalised property name,
-- `text` the literal text of the value (substitutions blanked), `base` the byte offset of text's first
-- byte in the source, and appends { s =, e =, text = } ranges of hard-coded values to `out`.

local function blank(m) return (' '):rep(#m) end

-- Blanks var(...) (a fallback inside it is not reported) and url(...) (url(#id) is an SVG reference).
local function mask_vars(text)
  return (text:gsub('[vV][aA][rR]%s*%b()', blank):gsub('[uU][rR][lL]%s*%b()', blank))
end

local function scan_colors(prop, text, base, extra, out)
  local masked = mask_vars(text)
  local lower = masked:lower()
  local i = 1
  while true do
    local s, e = lower:find('#%x+', i)
    if not s then break end
    local len = e - s
    local before = s > 1 and lower:sub(s - 1, s - 1) or ''
    local after = lower:sub(e + 1, e + 1)
    if (len == 3 or len == 4 or len == 6 or len == 8) and not before:find('[%w_%-]') and not after:find('[%w_%-]') then
      out[#out + 1] = { s = base + s - 1, e = base + e, text = text:sub(s, e) }
    end
    i = e + 1
  end
  i = 1
  while true do
    local s, e, word = lower:find('([%a][%w%-]*)', i)
    if not s then break end
    local before = s > 1 and lower:sub(s - 1, s - 1) or ''
    if not before:find('[#%w_%-]') then
      if COLOR_FUNCTIONS[word] and lower:find('^%s*%(', e + 1) then
        local close = select(2, lower:find('^%s*%b()', e + 1))
        local fin = close or #lower
        out[#out + 1] = { s = base + s - 1, e = base + fin, text = text:sub(s, fin) }
        e = fin
      elseif NAMED[word] and (COLOR_PROPS[prop] or extra[prop]) then
        out[#out + 1] = { s = base + s - 1, e = base + e, text = text:sub(s, e) }
      end
    end
    i = e + 1
  end
end

-- Lengths in `units` (a set) inside text; zero lengths are fine.
local function scan_lengths(units, text, base, out)
  local masked = mask_vars(text):lower()
  local i = 1
  while true do
    local s, e, num, unit = masked:find('(%-?%d*%.?%d+)(%a+)', i)
    if not s then break end
    local before = s > 1 and masked:sub(s - 1, s - 1) or ''
    local after = masked:sub(e + 1, e + 1)
    if units[unit] and tonumber(num) ~= 0 and not before:find('[%w_%.#]') and not after:find('[%w_]') then
      out[#out + 1] = { s = base + s - 1, e = base + e, text = text:sub(s, e) }
    end
    i = e + 1
  end
end

local SPACING_UNITS = set('px rem em')
local FONT_UNITS = set('px rem em pt')

local function scan_spacing(prop, text, base, extra, out)
  if SPACING_PROPS[prop] or extra[prop] then scan_lengths(SPACING_UNITS, text, base, out) end
end

local function scan_font_size(prop, text, base, extra, out)
  if FONT_SIZE_PROPS[prop] or extra[prop] then scan_lengths(FONT_UNITS, text, base, out) end
end

--}======================================================================

--{====================================================================== walking style roots

local function prop_name(key)
  local t = key:type()
  local s
  if t == 'property_identifier' or t == 'identifier' then s = key:text()
  elseif t == 'string' then s = key:text():sub(2, -2)
  else return nil end
  return (s:lower():gsub('%-', ''))
end

-- The literal text of a string or template node, with substitutions blanked, and its source offset.
local function literal_text(node)
  local t = node:type()
  local r = node:range()
  local text = node:text()
  if t == 'string' then return text:sub(2, -2), r.start_byte + 1 end
  if t == 'template_string' then
    local parts, pos = {}, r.start_byte + 1
    for _, c in ipairs(node:named_children()) do
      if c:type() == 'template_substitution' then
        local cr = c:range()
        parts[#parts + 1] = text:sub(pos - r.start_byte + 1, cr.start_byte - r.start_byte)
        parts[#parts + 1] = ('\1'):rep(cr.end_byte - cr.start_byte)
        pos = cr.end_byte
      end
    end
    parts[#parts + 1] = text:sub(pos - r.start_byte + 1, #text - 1)
    return table.concat(parts), r.start_byte + 1
  end
  return nil
end

-- A numeric literal (possibly negative): its value.
local function number_value(node)
  local t = node:type()
  if t == 'number' then return tonumber((node:text():gsub('_', ''))) end
  if t == 'unary_expression' then
    local op = node:child(1):text()
    local arg = node:child_by_field('argument')
    if (op == '-' or op == '+') and arg and arg:type() == 'number' then
      local n = tonumber((arg:text():gsub('_', '')))
      return n and (op == '-' and -n or n)
    end
  end
  return nil
end

local walk_value

-- Walks an object of style properties.
local function walk_object(obj, spec, depth)
  if depth > 32 then return end
  for _, p in ipairs(obj:named_children()) do
    local t = p:type()
    if t == 'pair' then
      local key, value = p:child_by_field('key'), p:child_by_field('value')
      local prop = key and prop_name(key)
      if value then walk_value(value, prop, spec, depth + 1) end
    elseif t == 'spread_element' then
      local arg = p:named_child(1)
      if arg then walk_value(arg, nil, spec, depth + 1) end
    end
  end
end

-- Walks a property value: literals are scanned, objects walked, conditionals and arrays looked into.
walk_value = function(node, prop, spec, depth)
  if depth > 32 then return end
  local t = node:type()
  if t == 'object' then return walk_object(node, spec, depth) end
  if t == 'string' or t == 'template_string' then
    if not prop then return end
    local text, base = literal_text(node)
    if text then spec.scan(prop, text, base, node) end
    return
  end
  if t == 'number' or t == 'unary_expression' then
    local n = number_value(node)
    if n and prop then spec.number(prop, n, node) end
    return
  end
  if t == 'parenthesized_expression' or t == 'as_expression' or t == 'satisfies_expression' then
    local inner = node:named_child(1)
    if inner then walk_value(inner, prop, spec, depth + 1) end
  elseif t == 'ternary_expression' then
    local a, b = node:child_by_field('consequence'), node:child_by_field('alternative')
    if a then walk_value(a, prop, spec, depth + 1) end
    if b then walk_value(b, prop, spec, depth + 1) end
  elseif t == 'binary_expression' then
    local op = node:child_by_field('operator'):text()
    if op == '&&' or op == '||' or op == '??' then
      local r = node:child_by_field('right')
      if r then walk_value(r, prop, spec, depth + 1) end
      if op ~= '&&' then
        local l = node:child_by_field('left')
        if l then walk_value(l, prop, spec, depth + 1) end
      end
    end
  elseif t == 'array' then
    for _, c in ipairs(node:named_children()) do walk_value(c, prop, spec, depth + 1) end
  elseif t == 'arrow_function' and not prop then
    local body = node:child_by_field('body')
    if body and body:type() ~= 'statement_block' then walk_value(body, nil, spec, depth + 1) end
  end
end

-- Scans the declarations of a CSS template: `prop: value` up to ';' or '}' (not '{': that is a selector).
local function walk_css(text, base, spec)
  text = text:gsub('/%*.-%*/', function(c) return (' '):rep(#c) end)
  local i = 1
  while true do
    local s, _, name, vs, value, ve = text:find('([%a%-][%w%-]*)%s*:%s*()([^;{}]*)()', i)
    if not s then break end
    local term = text:sub(ve, ve)
    local before = s > 1 and text:sub(s - 1, s - 1) or ''
    if term ~= '{' and not before:find('[%w_&:%.#%-]') then
      spec.scan((name:lower():gsub('%-', '')), value, base + vs - 1, nil)
    end
    i = ve + 1
  end
end

-- Walks a style root captured by the query.
local function walk_root(root, spec)
  local t = root:type()
  if t == 'template_string' then
    local text, base = literal_text(root)
    return walk_css(text, base, spec)
  end
  if t == 'arguments' or t == 'jsx_expression' then
    for _, a in ipairs(root:named_children()) do walk_value(a, nil, spec, 1) end
    return
  end
  walk_value(root, nil, spec, 1)
end

--}======================================================================

--{====================================================================== rules

local CALLEES = '"css" "keyframes" "createGlobalStyle" "injectGlobal" "globalStyle" "style" "styleVariants" '
  .. '"makeStyles" "createStyles"'

-- Every pattern is a chain (one child per node, under a field), which the engine's single walk of the tree answers
-- together with the scope analysis (docs/ast.md, the fast path); the parts of a style root that a chain cannot
-- say (the call's `arguments`, the member's `property`, the attribute's value) are read from the captured node
-- in `roots` below, exactly as the query cursor would have matched them:
--   1. css(...), keyframes(...), ...           (call_expression function: (identifier) @fn arguments: (_) @root)
--   2. styled.div(...), StyleSheet.create(...) (call_expression function: (member_expression object: (identifier) @fn
--                                               property: (property_identifier) @p) arguments: (_) @root), @p ~= attrs
--   3. styled(X)(...)                          (call_expression function: (call_expression function: (identifier) @fn)
--                                               arguments: (_) @root)
--   4. styled.div.attrs(...)(...)              (call_expression function: (call_expression function:
--   5. styled(X).attrs(...)(...)                (member_expression object: [(member_expression object:
--                                               (identifier) @fn) (call_expression function: (identifier) @fn)]
--                                               property: (property_identifier) @p)) arguments: (_) @root), @p == attrs
--   6. styled.div<P>`...`                      (binary_expression left: (binary_expression left: (member_expression
--                                               object: (identifier) @fn)) right: (template_string) @root)
--   7. style={...} sx={...} css={...}          (jsx_attribute (property_identifier) @attr (jsx_expression) @root)
local CALL_QUERY = table.concat({
  '((call_expression function: (identifier) @fn) @call (#any-of? @fn ' .. CALLEES .. '))',
  '((call_expression function: (member_expression object: (identifier) @fn)) @call '
    .. '(#any-of? @fn "styled" "StyleSheet"))',
  '((call_expression function: (call_expression function: (identifier) @fn)) @call (#eq? @fn "styled"))',
  '((call_expression function: (call_expression function: (member_expression object: (member_expression '
    .. 'object: (identifier) @fn)))) @call (#eq? @fn "styled"))',
  '((call_expression function: (call_expression function: (member_expression object: (call_expression '
    .. 'function: (identifier) @fn)))) @call (#eq? @fn "styled"))',
  -- styled.div<Props>`...` in TSX parses as (styled.div < Props) > `...`
  '((binary_expression left: (binary_expression left: (member_expression object: (identifier) @fn))) @bin '
    .. '(#eq? @fn "styled"))',
}, '\n')

local JSX_QUERY = '((jsx_attribute (property_identifier) @attr) @jsx (#any-of? @attr "style" "sx" "css"))'

local QUERY = { ts = CALL_QUERY, tsx = CALL_QUERY .. '\n' .. JSX_QUERY }

-- The call's `arguments: (_)`: its arguments (or template) when named.
local function call_args(call)
  local a = call:child_by_field('arguments')
  if a and a:is_named() then return a end
  return nil
end

-- The `property: (property_identifier)` of the member expression under `function:` of `call` (`depth` calls deep).
local function member_property(call, depth)
  local f = call
  for _ = 1, depth do
    f = f and f:child_by_field('function')
  end
  local p = f and f:type() == 'member_expression' and f:child_by_field('property')
  if p and p:type() == 'property_identifier' then return p end
  return nil
end

-- The roots of the matches of the current file, by captures table: the three rules get one match table each
-- but share its captures (the engine hands them the same nodes), so the lookups below run once per match.
local roots_of = setmetatable({}, { __mode = 'k' })

-- The style roots of match m: a list of { root =, fn =, p =, attr = } (what the full pattern would capture).
local function find_roots(m)
  local c, pat = m.captures, m.pattern
  local root, p
  if pat == 1 or pat == 3 then
    root = call_args(c.call)
  elseif pat == 2 then
    p = member_property(c.call, 1)
    root = p and p:text() ~= 'attrs' and call_args(c.call) or nil
  elseif pat == 4 or pat == 5 then
    p = member_property(c.call, 2)
    root = p and p:text() == 'attrs' and call_args(c.call) or nil
  elseif pat == 6 then
    local r = c.bin:child_by_field('right')
    root = r and r:type() == 'template_string' and r or nil
  elseif pat == 7 then
    -- (jsx_attribute (property_identifier) @attr (jsx_expression) @root): a jsx_expression child after the name
    local out, after = {}, false
    for _, k in ipairs(c.jsx:named_children()) do
      if after and k:type() == 'jsx_expression' then out[#out + 1] = { root = k, attr = c.attr } end
      if k == c.attr then after = true end
    end
    return out
  end
  if not root then return {} end
  return { { root = root, fn = c.fn, p = p } }
end

local function roots(m)
  local c = m.captures
  local rs = roots_of[c]
  if rs == nil then
    rs = find_roots(m)
    roots_of[c] = rs
  end
  return rs
end

-- True when the root is the value of a `sx` prop (MUI / styled-system: numbers are theme steps there).
local function in_sx(v)
  local a = v.attr
  return a ~= nil and a:text() == 'sx'
end

-- The literal values of a style root: { prop =, text =, base = } for text and { prop =, number =, s =, e =,
-- text = } for bare numbers. The three rules walk the same roots of a file one after the other, so the
-- values of the current source are kept (byte offsets and strings only: no nodes outlive their tree).
local cached_source, cached = nil, {}

local function values_of(ctx, v)
  local root = v.root
  local r = root:range()
  if cached_source ~= ctx.source then cached_source, cached = ctx.source, {} end
  local key = r.start_byte .. ':' .. r.end_byte
  local list = cached[key]
  if list then return list end
  list = {}
  local fn, p = v.fn, v.p
  if not (root:type() == 'arguments' and fn and fn:text() == 'StyleSheet' and (not p or p:text() ~= 'create')) then
    walk_root(root, {
      scan = function(prop, text, base) list[#list + 1] = { prop = prop, text = text, base = base } end,
      number = function(prop, n, node)
        local nr = node:range()
        list[#list + 1] = { prop = prop, number = n, s = nr.start_byte, e = nr.end_byte, text = node:text() }
      end,
    })
  end
  list.sx = in_sx(v)
  cached[key] = list
  return list
end

-- Builds the check of a rule from its scanner and its handling of bare numbers.
local function make_check(scanner, numbers, message)
  local function check_root(ctx, r, extra)
    local list = values_of(ctx, r)
    for _, v in ipairs(list) do
      if v.number then
        if v.number ~= 0 and numbers(v.prop, list.sx, extra) and not allowed_value(ctx, v.text)
          and not allowed_value(ctx, v.text .. 'px') then
          ctx.report({ start_byte = v.s, end_byte = v.e, message = message:format(v.text) })
        end
      elseif not allowed_value(ctx, (v.text:gsub('\1', ' '))) then
        local out = {}
        scanner(v.prop, v.text, v.base, extra, out)
        for _, f in ipairs(out) do
          if not allowed_value(ctx, f.text) then
            ctx.report({ start_byte = f.s, end_byte = f.e, message = message:format(f.text) })
          end
        end
      end
    end
  end
  return function(ctx, m)
    local rs = roots(m)
    if #rs == 0 then return nil end
    local extra = {}
    for _, p in ipairs((ctx.options or {}).properties or {}) do
      if type(p) == 'string' then extra[(p:lower():gsub('%-', ''))] = true end
    end
    for _, r in ipairs(rs) do check_root(ctx, r, extra) end
    return nil
  end
end

-- Whether a bare number on `prop` is a hard-coded value (numbers are not colours; in sx they are spacing steps).
local function never() return false end
local function spacing_number(prop, sx, extra) return (SPACING_PROPS[prop] or extra[prop]) and not sx end
local function font_size_number(prop, _, extra) return prop == 'fontsize' or extra[prop] end

return {
  name = 'ui-theme-tokens',
  version = '1.0.0',
  description = 'Colours, spacing and font sizes in styles come from the theme (config theme.tokens)',
  rules = {
    {
      id = 'no-hardcoded-color',
      severity = 'warning',
      description = 'Colours in styles use theme tokens, not hex, rgb(), hsl() or named colours',
      help = 'Take the colour from the theme (theme.palette.x, a CSS variable, or a token listed in '
        .. 'standards.theme.tokens).',
      query = QUERY,
      check = make_check(scan_colors, never, "hard-coded colour '%s': use a theme token"),
      options = { allow = {}, properties = {} },
    },
    {
      id = 'no-hardcoded-spacing',
      severity = 'warning',
      description = 'Margins, paddings, gaps and offsets use theme spacing tokens, not px/rem/em or bare numbers',
      help = 'Take the spacing from the theme (theme.spacing(n), a CSS variable, or a token listed in '
        .. 'standards.theme.tokens).',
      query = QUERY,
      check = make_check(scan_spacing, spacing_number,
        "hard-coded spacing '%s': use a theme spacing token"),
      options = { allow = {}, properties = {} },
    },
    {
      id = 'no-hardcoded-font-size',
      severity = 'warning',
      description = 'Font sizes use theme tokens, not px/rem/em/pt or bare numbers',
      help = 'Take the font size from the theme typography (a CSS variable, or a token listed in '
        .. 'standards.theme.tokens).',
      query = QUERY,
      check = make_check(scan_font_size, font_size_number,
        "hard-coded font size '%s': use a theme font-size token"),
      options = { allow = {}, properties = {} },
    },
  },
}
