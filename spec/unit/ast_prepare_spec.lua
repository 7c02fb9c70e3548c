-- Queries compiled on a thread of their own: ast.prepare / ast.settle, and
-- the core's query_async underneath (enforce compiles its rules' queries so
-- while it lists the files). The query taken is the one query() makes; the
-- thread's memory is counted once taken; a process cannot fork while one
-- compiles.
local ast = require('aegis.ast')
local core = require('aegis.core.ast')
local fork = require('aegis.core.fork')

local SRC = [[
// aegis-disable-next-line x
function f(a: any): number { return a!; }
const g = () => { let y = 1; return y; };
]]

local PATTERN = '((predefined_type) @t (#eq? @t "any")) (non_null_expression) @nn (arrow_function) @fn '
  .. '((comment) @c (#match? @c "aegis-disable"))'

-- what a query finds in SRC: pattern, capture names and their byte ranges
local function found(q, lang)
  local tree = assert(ast.parse(SRC, { lang = lang }))
  local out = {}
  for _, m in ipairs(q:matches(tree)) do
    local caps = {}
    for name, node in pairs(m.captures) do
      local sb, eb = node:byte_range()
      caps[#caps + 1] = ('%s=%d-%d'):format(name, sb, eb)
    end
    table.sort(caps)
    out[#out + 1] = m.pattern .. ' ' .. table.concat(caps, ' ')
  end
  tree:close()
  return out
end

describe('queries compiled on a thread', function()
  it('find what the same query compiled here finds, in both languages', function()
    for _, lang in ipairs({ 'ts', 'tsx' }) do
      local here = assert(core.query(lang, PATTERN))
      local p = core.query_async(lang, PATTERN)
      assert.matches('PendingQuery', tostring(p))
      local q = assert(p:get())
      assert.equal(q, p:get())  -- again the same
      local want = found(here, lang)
      assert.equal(4, #want)
      assert.same(want, found(q, lang))
      assert.equal(here:pattern_count(), q:pattern_count())
      assert.equal(here:fast(), q:fast())
      here:close()
      q:close()
    end
  end)

  it('answer a bad query as query() does', function()
    for _, bad in ipairs({ '(nope) @x', '((identifier) @i (#frob? @i "x"))', '(identifier' }) do
      local q1, m1, c1 = core.query('ts', bad)
      local q2, m2, c2 = core.query_async('ts', bad):get()
      assert.is_nil(q1)
      assert.is_nil(q2)
      assert.equal(m1, m2)
      assert.equal(c1, c2)
    end
  end)

  it('count what the thread made once it is taken, and give it all back on close', function()
    collectgarbage()
    local base = core.memory()
    local q = assert(core.query_async('tsx', PATTERN):get())
    local held = core.memory()
    assert.is_true(held > base, 'the query holds memory')
    q:close()
    assert.equal(base, (core.memory()))
  end)

  it('are waited for when collected untaken, and many can be under way', function()
    local list = {}
    for i = 1, 12 do
      list[i] = core.query_async(i % 2 == 0 and 'ts' or 'tsx', ('(identifier) @id%d (number) @n'):format(i))
    end
    for i = 1, 4 do list[i] = false end  -- never taken
    collectgarbage()
    for i = 5, 12 do
      local q = assert(list[i]:get())
      assert.equal(2, q:pattern_count())
      q:close()
    end
    assert(fork.start(function() return 'forked' end):wait() == 'forked')
  end)

  it('keep a process from forking until they are taken', function()
    local p = core.query_async('ts', '(identifier) @a (string) @s')
    local copy, msg, code = fork.start(function() return 'x' end)
    assert.is_nil(copy)
    assert.equal('fork: a query is still being compiled on a thread (get() it first)', msg)
    assert.equal('invalid', code)
    assert(p:get()):close()
    assert.equal('x', assert(fork.start(function() return 'x' end)):wait())
  end)
end)

describe('ast.prepare', function()
  it('hands the compiled query to ast.query, which caches it as its own', function()
    local pattern = '(call_expression function: (identifier) @callee) @call'
    ast.prepare('tsx', pattern)
    ast.prepare('tsx', pattern)  -- (under way already: nothing more)
    local q = assert(ast.query('tsx', pattern))
    assert.equal(q, ast.query('tsx', pattern))
    ast.prepare('tsx', pattern)  -- (compiled already: nothing)
    assert.equal(q, ast.query('tsx', pattern))
    local tree = assert(ast.parse('f(1); g(f);', { lang = 'tsx' }))
    assert.equal(2, #q:matches(tree))
    tree:close()
  end)

  it('settle waits for every compile, after which the process may fork; a bad one is reported by query',
    function()
      ast.prepare('ts', '(template_string) @t')
      ast.prepare('ts', '(no_such_node) @x')
      assert.is_nil(fork.start(function() return '' end))
      ast.settle()
      assert.equal('ok', assert(fork.start(function() return 'ok' end)):wait())
      assert(ast.query('ts', '(template_string) @t'))
      local q, msg, code = ast.query('ts', '(no_such_node) @x')
      assert.is_nil(q)
      assert.matches('invalid node type', msg, 1, true)
      assert.equal('parse', code)
    end)

  it('rejects bad arguments as ast.query does', function()
    assert.has_error(function() ast.prepare('js', '(x)') end,
      "bad argument #1 to 'prepare' (lang must be 'ts' or 'tsx')")
    assert.has_error(function() ast.prepare('ts', 42) end, "bad argument #2 to 'prepare' (string expected, got number)")
    assert.has_error(function() ast.query('js', '(x)') end, "bad argument #1 to 'query' (lang must be 'ts' or 'tsx')")
  end)
end)
