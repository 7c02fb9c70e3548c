-- `make demo` (examples/demo.sh): the main job on the embedded SQLite store,
-- against the local emulator, ends well and shows what it says it shows.
local h = require('spec.helpers')

describe('examples/demo.sh (make demo)', function()
  it('runs the quickstart, the adapters, the prompt cache and the standards gate', function()
    local r = h.run({ 'examples/demo.sh' }, { bin = 'sh', env = { AEGIS_BIN = h.bin } })
    assert.equal(0, r.code, r.stdout .. r.stderr)
    local out = r.stdout .. r.stderr
    -- the second call of a prefix is served from the emulated provider cache
    assert.matches('"cached_input":4224', out)
    -- the same prompt twice through the prompt cache: a miss, then a hit
    local miss, hit = out:find('aegis%-run: cache: miss'), out:find('aegis%-run: cache: hit')
    assert.is_truthy(miss and hit and miss < hit, out)
    assert.matches('1 hits, 1 misses, hit rate 50%.0 %%', out)
    -- the generated component breaks rules of each pack
    for _, rule in ipairs({ 'typescript%-strict/no%-var', 'typescript%-strict/no%-explicit%-any', 'a11y/alt%-text',
                            'ui%-theme%-tokens/no%-hardcoded%-color' }) do
      assert.matches('generated/Avatar%.tsx:%d+:%d+ %a+ ' .. rule, out)
    end
    assert.matches('9 errors, 2 warnings in 1 file', out)
  end)
end)
