--- Replays every fuzz target's seed corpus and regressions (RELIABILITY.md
--- B1) through the aegis-run under test, one child process per target, so
--- every `make test` (and `make test-asan`, whose binary is sanitized)
--- checks them without clang. A target is fuzz/targets/<name>.lua: the same
--- file the libFuzzer harness (fuzz/harness.c) runs, which raises when an
--- invariant breaks; a crash or a sanitizer report ends the child.
---
--- fuzz/known/<target>/<input> are crashers in code that is not ours, each
--- with <input>.why saying where and what fixes it; they stay out of
--- fuzz/regressions/ (which libFuzzer loads as corpus, so it would stop at
--- once) and show here as pending until the fix lands and they move.
local h = require('spec.helpers')

local ROOT
do
  local p = io.popen('pwd')
  ROOT = p:read('l')
  p:close()
end

-- Names in `dir` (not hidden), sorted; {} when it does not exist.
local function list(dir)
  local names = {}
  local p = io.popen('ls ' .. h.shell_quote(dir) .. ' 2>/dev/null')
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  table.sort(names)
  return names
end

local targets = {}
for _, f in ipairs(list(ROOT .. '/fuzz/targets')) do
  local name = f:match('^(.+)%.lua$')
  if name then targets[#targets + 1] = name end
end

-- The child: a spec with one test per input, so a failure names the input.
local CHILD = [[
local run = dofile(%q)
local files = %s
describe(%q, function()
  for _, f in ipairs(files) do
    it(f, function()
      local fh = assert(io.open(f, 'rb'))
      local data = fh:read('a')
      fh:close()
      run(data)
      collectgarbage()
    end)
  end
end)
]]

local function quote_list(t)
  local out = {}
  for i, s in ipairs(t) do out[i] = ('%q'):format(s) end
  return '{' .. table.concat(out, ',\n') .. '}'
end

-- Runs `files` through target `t` in a child aegis-run; returns the result.
local function replay(t, files)
  local dir = h.tmpdir()
  h.write(dir .. '/replay_spec.lua', CHILD:format(ROOT .. '/fuzz/targets/' .. t .. '.lua',
    quote_list(files), 'fuzz replay ' .. t))
  local r = h.run({ 'test', dir .. '/replay_spec.lua' }, { cwd = ROOT })
  return r, (r.stdout or '') .. (r.stderr or '')
end

describe('fuzz corpus and regressions replay', function()
  it('finds the targets', function()
    assert.is_true(#targets >= 1, 'no fuzz/targets/*.lua')
  end)

  for _, t in ipairs(targets) do
    it(t .. ': every seed and every regression runs clean', function()
      local files = {}
      local corpus = ROOT .. '/fuzz/corpus/' .. t
      local regress = ROOT .. '/fuzz/regressions/' .. t
      for _, f in ipairs(list(corpus)) do files[#files + 1] = corpus .. '/' .. f end
      local nseeds = #files
      assert.is_true(nseeds > 0, 'no seeds in fuzz/corpus/' .. t)
      local keep = io.open(regress .. '/.gitkeep')
      assert.truthy(keep, 'fuzz/regressions/' .. t .. '/ is missing')
      keep:close()
      for _, f in ipairs(list(regress)) do files[#files + 1] = regress .. '/' .. f end
      local r, out = replay(t, files)
      assert.equal(0, r.code, out)
      assert.truthy(out:find(('\n?%d passed, 0 failed'):format(#files)), out)
    end)

    local known = ROOT .. '/fuzz/known/' .. t
    for _, f in ipairs(list(known)) do
      if not f:find('%.why$') then
        it(t .. ': known crasher ' .. f, function()
          local why = h.read(known .. '/' .. f .. '.why')
          assert.truthy(why, 'fuzz/known/' .. t .. '/' .. f .. '.why is missing')
          local r = replay(t, { known .. '/' .. f })
          if r.code == 0 then
            pending('passes in this binary (the target tolerates it, or only a sanitizer sees it): ' .. why)
          else
            pending(why)
          end
        end)
      end
    end
  end
end)
