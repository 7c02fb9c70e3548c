local h = require('spec.helpers')

-- Every public function of the Lua API has a doc comment, and docs/api.md is
-- what `make docs` makes of them today.
describe('the Lua API reference', function()
  local function sources()
    local p = io.popen("find lua/aegis -name '*.lua' -not -path '*/_meta/*' -not -path '*/cli/*' | sort")
    local files = {}
    for f in p:lines() do files[#files + 1] = f end
    p:close()
    files[#files + 1] = 'lua/aegis/cli/init.lua'
    return files
  end

  it('documents every public function with a --- comment right above it', function()
    local missing = {}
    for _, path in ipairs(sources()) do
      local prev, n = nil, 0
      for line in io.lines(path) do
        n = n + 1
        local name = line:match('^function ([%w_]+[.:][%a][%w_]*)%s*%(')
        if name and not name:match('[.:]_') and not (prev and prev:match('^%-%-%-')) then
          missing[#missing + 1] = ('%s:%d %s'):format(path, n, name)
        end
        prev = line
      end
    end
    assert.same({}, missing)
  end)

  it('is current (run make docs after changing a doc comment)', function()
    local out = h.tmpdir() .. '/api.md'
    local files = {}
    for _, f in ipairs(sources()) do files[#files + 1] = h.shell_quote(f) end
    assert.truthy(os.execute('lua5.4 tools/apidoc.lua ' .. table.concat(files, ' ') .. ' > ' .. h.shell_quote(out)))
    assert.equal(h.read(out), h.read('docs/api.md'))
  end)
end)
