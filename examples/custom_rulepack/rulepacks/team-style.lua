-- team-style: the house rules of one team, as a rulepack.
--
-- A rulepack is a Lua file returning {name, version, description, rules}.
-- It runs in the sandbox (no io, os, require): rules see the code only
-- through the tree-sitter query matches and `ctx` (docs/rulepacks.md).
return {
  name = 'team-style',
  version = '1.0.0',
  description = 'House rules of the payments team',
  rules = {
    -- No check: every match of the query is a finding, at the capture
    -- named `report` (else the first capture), with the description.
    {
      id = 'no-console-log',
      severity = 'warning',
      description = 'Use the logger (lib/log.ts) instead of console.log',
      eslint = 'no-console',  -- `// eslint-disable-next-line no-console` silences it too
      query = [[
        (call_expression
          function: (member_expression
            object: (identifier) @obj (#eq? @obj "console")
            property: (property_identifier) @report (#any-of? @report "log" "debug")))
      ]],
    },
    -- A check decides, and may return its own message.
    {
      id = 'max-params',
      severity = 'error',
      description = 'Functions take at most options.max parameters; pass an object instead',
      options = { max = 3 },
      query = [[
        (function_declaration name: (identifier) @name parameters: (formal_parameters) @params)
        (method_definition name: (property_identifier) @name parameters: (formal_parameters) @params)
        (arrow_function parameters: (formal_parameters) @params)
      ]],
      check = function(ctx, m)
        local n = m.captures.params:named_child_count()
        if n <= ctx.options.max then return nil end
        local name = m.captures.name and ctx.text(m.captures.name) or 'arrow function'
        return { node = m.captures.params,
                 message = ('%s has %d parameters (at most %d); pass an object'):format(name, n, ctx.options.max) }
      end,
    },
    -- A fix: `aegis-run enforce --format json` carries it with the finding.
    {
      id = 'no-money-float',
      severity = 'error',
      description = 'Amounts are integer cents: parseFloat on an amount loses money',
      query = [[
        ((call_expression
           function: (identifier) @fn (#eq? @fn "parseFloat")
           arguments: (arguments (_) @arg)) @call
         (#match? @arg "(amount|price|total)"))
      ]],
      fix = function(ctx, m)
        local r = m.captures.call:range()
        return { start_byte = r.start_byte, end_byte = r.end_byte,
                 text = ('toCents(%s)'):format(ctx.text(m.captures.arg)) }
      end,
    },
  },
}
