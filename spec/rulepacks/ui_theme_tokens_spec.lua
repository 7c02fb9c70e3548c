-- The ui-theme-tokens rulepack: hard-coded colours, spacing and font sizes in style props, CSS-in-JS objects
-- and CSS-in-JS templates, with theme tokens from config.

local standards = require('aegis.standards')

local function run(rule, src, config, path)
  local findings, problems = standards.check_source(src, { path = path or 'a.tsx',
    rules = { 'ui-theme-tokens/' .. rule }, config = config })
  for _, p in ipairs(problems or {}) do
    if p.kind ~= 'syntax' then error('problem: ' .. tostring(p.message)) end
  end
  return findings
end

-- The source text of each finding.
local function texts(src, findings)
  local t = {}
  for i, f in ipairs(findings) do t[i] = src:sub(f.start_byte + 1, f.end_byte) end
  return t
end

local TOKENS = { theme = { tokens = {
  colors = { primary = '#0a84ff', text = { main = '#1c1c1e' } },
  space = { 4, 8, '1rem' },
  fontSizes = { body = '14px', small = 12 },
} } }

describe('rulepack ui-theme-tokens', function()
  describe('no-hardcoded-color', function()
    local rule = 'no-hardcoded-color'

    it('reports hex, rgb(), hsl() and named colours in a style prop', function()
      local src = [[const a = <div style={{ color: '#fff', background: 'rgba(0, 0, 0, .5)', borderColor: 'RED',
  outline: '1px solid hsl(10 20% 30%)', fill: '#ffffff80' }} />;]]
      local fs = run(rule, src)
      assert.same({ '#fff', 'rgba(0, 0, 0, .5)', 'RED', 'hsl(10 20% 30%)', '#ffffff80' }, texts(src, fs))
      assert.equal('ui-theme-tokens/no-hardcoded-color', fs[1].rule)
      assert.equal('warning', fs[1].severity)
      assert.equal("hard-coded colour '#fff': use a theme token", fs[1].message)
      assert.equal(1, fs[1].line)
      assert.equal(33, fs[1].col)
    end)

    it('reports colours in sx and css props, styled/css objects and nested selectors', function()
      local src = [[
const A = <Box sx={{ color: 'white', '&:hover': { bgcolor: '#000' } }} />;
const B = <div css={{ color: dark ? '#111' : 'navy' }} />;
const C = styled.div({ color: 'tomato' });
const D = styled(Button)(({ theme }) => ({ border: `1px solid #ccc`, color: theme.palette.text }));
const E = css({ ':focus': { outlineColor: 'rgb(0 0 255)' } });
const F = StyleSheet.create({ root: { color: '#abc' } });
]]
      assert.same({ 'white', '#000', '#111', 'navy', 'tomato', '#ccc', 'rgb(0 0 255)', '#abc' },
        texts(src, run(rule, src)))
    end)

    it('reports colours in CSS-in-JS templates, after substitutions too', function()
      local src = 'const A = styled.div`\n  color: #fff;\n  border: 1px solid ${(p) => p.theme.line};\n'
        .. '  background: linear-gradient(red, ${(p) => p.to});\n  &:hover { color: rebeccapurple; }\n`;\n'
        .. 'const B = css`box-shadow: 0 0 2px hsla(0, 0%, 0%, 0.2);`;\n'
        .. 'const C = createGlobalStyle`body { background-color: ivory; }`;\n'
        .. 'const D = styled.span<Props>`color: #123456;`;\n'
        .. 'const E = keyframes`from { color: black; } to { color: white; }`;\n'
      local fs = run(rule, src)
      assert.same({ '#fff', 'red', 'rebeccapurple', 'hsla(0, 0%, 0%, 0.2)', 'ivory', '#123456', 'black', 'white' },
        texts(src, fs))
      assert.equal(2, fs[1].line)
      assert.equal(10, fs[1].col)
    end)

    it('passes theme references, var(), tokens and non-colour words', function()
      local src = [[
const A = <div style={{ color: theme.palette.primary, background: 'var(--bg, #fff)', fontFamily: 'Orange Sans' }} />;
const B = <div style={{ color: '#0a84ff', borderColor: 'text.main', outline: 'none', fill: 'currentColor' }} />;
const C = styled.div`color: ${(p) => p.theme.text}; background: var(--surface);`;
const D = { color: '#fff' };
const E = <div className="red" title="#fff" />;
const F = <div style={{ gridArea: 'header', transition: 'color 0.2s', content: '"#"', fill: 'url(#fade)' }} />;
]]
      assert.same({}, texts(src, run(rule, src, TOKENS)))
    end)

    it('checks .ts files (CSS-in-JS without JSX)', function()
      local src = "export const button = css`color: #fff;`;\nexport const s = styled.a({ color: 'red' });\n"
      assert.same({ '#fff', 'red' }, texts(src, run(rule, src, nil, 'styles.ts')))
    end)

    it('allows the values in the `allow` option', function()
      local src = [[const a = <div style={{ color: '#fff', background: 'black' }} />;]]
      local c = { rules = { ['ui-theme-tokens/no-hardcoded-color'] = { options = { allow = { '#FFF' } } } } }
      assert.same({ 'black' }, texts(src, run(rule, src, c)))
    end)
  end)

  describe('no-hardcoded-spacing', function()
    local rule = 'no-hardcoded-spacing'

    it('reports px/rem/em lengths and bare numbers on spacing properties', function()
      local src = [[const a = <div style={{ margin: 8, padding: '4px 1rem', gap: '0.5em', top: -2,
  marginInlineStart: '2px' }} />;]]
      local fs = run(rule, src)
      assert.same({ '8', '4px', '1rem', '0.5em', '-2', '2px' }, texts(src, fs))
      assert.equal("hard-coded spacing '8': use a theme spacing token", fs[1].message)
    end)

    it('reports lengths in templates and nested objects', function()
      local src = 'const A = styled.div`\n  margin: 0 auto 16px;\n  padding-left: ${(p) => p.gap}px;\n'
        .. '  @media (max-width: 600px) { row-gap: 2rem; }\n`;\n'
        .. "const B = css({ '&:first-child': { paddingTop: 12 } });\n"
      assert.same({ '16px', '2rem', '12' }, texts(src, run(rule, src)))
    end)

    it('passes zero, auto, percentages, theme values, tokens and non-spacing properties', function()
      local src = [[
const A = <div style={{ margin: 0, padding: '0px', left: '50%', top: 'auto', width: 300, height: '10px' }} />;
const B = <div style={{ margin: theme.spacing(2), padding: 'var(--space-2)', gap: 8, rowGap: '1rem' }} />;
const C = styled.div`margin: ${(p) => p.theme.space[2]}; border-width: 1px;`;
]]
      assert.same({}, texts(src, run(rule, src, TOKENS)))
    end)

    it('checks the extra `properties` given in options', function()
      local src = [[const a = <div style={{ borderRadius: 6, width: '10px', outlineOffset: '2px' }} />;]]
      local c = { rules = { ['ui-theme-tokens/no-hardcoded-spacing'] = { options = {
        properties = { 'borderRadius', 'outline-offset' } } } } }
      assert.same({ '6', '2px' }, texts(src, run(rule, src, c)))
      assert.same({}, texts(src, run(rule, src)))
    end)

    it('treats bare numbers in sx as theme spacing steps, but not strings', function()
      local src = [[const a = <Box sx={{ p: 2, mx: 1, mt: '12px' }} />;]]
      assert.same({ '12px' }, texts(src, run(rule, src)))
    end)
  end)

  describe('no-hardcoded-font-size', function()
    local rule = 'no-hardcoded-font-size'

    it('reports px/rem/em/pt sizes and bare numbers on font-size and font', function()
      local src = [[const a = <p style={{ fontSize: 13, font: 'bold 1.2rem/1.5 serif' }} />;
const B = styled.h1`font-size: 32pt;`;
const C = css({ 'font-size': '2em' });]]
      local fs = run(rule, src)
      assert.same({ '13', '1.2rem', '32pt', '2em' }, texts(src, fs))
      assert.equal("hard-coded font size '13': use a theme font-size token", fs[1].message)
    end)

    it('passes theme values, tokens, keywords and percentages', function()
      local src = [[
const A = <p style={{ fontSize: theme.typography.body, lineHeight: '20px' }} />;
const B = <p style={{ fontSize: '14px' }} />;
const C = <p style={{ fontSize: 12 }} />;
const D = styled.p`font-size: ${(p) => p.theme.fontSizes.small}; font-size: larger; font-size: 120%;`;
const E = <p style={{ fontSize: 'var(--fs-body)' }} />;
]]
      assert.same({}, texts(src, run(rule, src, TOKENS)))
    end)
  end)
end)
