local h = require('spec.helpers')
local json = require('aegis.json')

for _, backend in ipairs(h.store_backends()) do
  describe('aegis-run checkpoint on ' .. backend.name, function()
    local dir, url, thread
    before_each(function()
      dir = h.tmpdir()
      url = backend.url
      thread = 'cli-' .. require('aegis.uuid').v4()
    end)
    local function run(args, opts)
      local a = { 'checkpoint' }
      for _, x in ipairs(args) do a[#a + 1] = x end
      a[#a + 1] = '--store'
      a[#a + 1] = url
      opts = opts or {}
      opts.cwd = opts.cwd or dir
      return h.run(a, opts)
    end

    it('saves, shows, lists, branches, logs and diffs', function()
      if not h.needs(backend) then return end
      h.write(dir .. '/s1.json', '{"goal": "todo", "files": []}')
      local r = run({ 'save', '--name', 'p1', '--state', 's1.json', '--thread', thread })
      assert.equal(0, r.code, r.stderr)
      local id1 = r.stdout:match('^(%S+)\n$')
      assert.truthy(id1)
      r = run({ 'save', '--name', 'm1', '--state', '-', '--thread', thread, '--layer', 'module', '--module', 'api',
        '--json' }, { stdin = '{"module": "api"}' })
      assert.equal(0, r.code, r.stderr)
      local m1 = assert(json.decode(r.stdout))
      assert.equal('module:api', m1.namespace)
      assert.equal(thread, m1.thread)
      assert.equal(json.null, m1.parent)
      assert.equal('module', m1.metadata.layer)
      assert.equal(id1, m1.metadata.parents[''])

      r = run({ 'branch', '--from', 'p1', '--name', 'alt', '--state', '-', '--thread', thread, '--json' },
        { stdin = '{"goal": "notes", "files": ["a.ts"]}' })
      assert.equal(0, r.code, r.stderr)
      local alt = assert(json.decode(r.stdout))
      assert.equal(id1, alt.parent)
      assert.equal('fork', alt.metadata.source)

      r = run({ 'show', 'alt', '--json', '--thread', thread })
      assert.equal(0, r.code, r.stderr)
      local shown = assert(json.decode(r.stdout))
      assert.equal(alt.id, shown.id)
      assert.same({ goal = 'notes', files = { 'a.ts' } }, shown.state)
      assert.equal(4, shown.checkpoint.v)

      r = run({ 'show', 'p1', '--thread', thread })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find('name:      p1', 1, true))
      assert.truthy(r.stdout:find('"goal": "todo"', 1, true))

      r = run({ 'list', '--thread', thread, '--json' })
      assert.equal(0, r.code, r.stderr)
      local list = assert(json.decode(r.stdout))
      assert.equal(3, #list)
      assert.same({ alt.id, m1.id, id1 }, { list[1].id, list[2].id, list[3].id })

      r = run({ 'log', thread })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find('[alt] (branch)', 1, true), r.stdout)
      assert.truthy(r.stdout:find('module:api step 0 [m1]', 1, true), r.stdout)
      r = run({ 'log', thread, '--json' })
      local log = assert(json.decode(r.stdout))
      assert.equal(2, #log.roots)

      r = run({ 'diff', 'p1', 'alt', '--thread', thread })
      assert.equal(0, r.code, r.stderr)
      assert.equal('~ files\n~ goal\n', r.stdout)
    end)

    it('shows provenance: the artifacts, scaffold and blocks linked to the checkpoint', function()
      if not h.needs(backend) then return end
      local checkpoint = require('aegis.checkpoint')
      local has_trace, trace = pcall(require, 'aegis.trace')
      local id
      do
        local db <close> = assert(checkpoint.open(url))
        id = assert(checkpoint.save({ db = db, thread = thread, state = { code = 'x' }, name = 'p',
          scaffold_id = 'sc-1', span_key = 'sp-1' })).id
        if has_trace and trace.provenance_of_checkpoint then
          assert(require('aegis.artifact').put('export {}\n', { db = db, checkpoint = id, thread = thread,
            path = 'src/a.ts', span = 'sp-1', scaffold_id = 'sc-1', blocks = { 'b1', 'b2' } }))
        end
      end
      local r = run({ 'show', 'p', '--thread', thread, '--provenance', '--json' })
      assert.equal(0, r.code, r.stderr)
      local shown = assert(json.decode(r.stdout))
      if has_trace and trace.provenance_of_checkpoint then
        local p = shown.provenance
        assert.is_true(p.checkpoint.found)
        assert.equal(thread, p.checkpoint.thread)
        assert.equal('sc-1', p.checkpoint.metadata.scaffold_id)
        assert.equal(1, #p.artifacts)
        assert.equal('src/a.ts', p.artifacts[1].path)
        assert.equal('sc-1', p.scaffolds[1].id)
        assert.same({ 'b1', 'b2' }, { p.scaffolds[1].blocks[1].hash, p.scaffolds[1].blocks[2].hash })
        r = run({ 'show', id, '--thread', thread, '--provenance' })
        assert.equal(0, r.code, r.stderr)
        assert.truthy(r.stdout:find('provenance:', 1, true), r.stdout)
        assert.truthy(r.stdout:find('src/a.ts', 1, true), r.stdout)
      else
        assert.truthy(shown.provenance.error:find('provenance not available', 1, true))
      end
    end)

    it('fails with exit 1 and one line for a missing checkpoint or a taken name', function()
      if not h.needs(backend) then return end
      local r = run({ 'show', 'nope', '--thread', thread })
      assert.equal(1, r.code)
      assert.equal("aegis-run: checkpoint show: no checkpoint 'nope' in thread '" .. thread .. "'\n", r.stderr)
      assert.equal(0, run({ 'save', '--name', 'x', '--state', '-', '--thread', thread }, { stdin = '{}' }).code)
      r = run({ 'save', '--name', 'x', '--state', '-', '--thread', thread }, { stdin = '{}' })
      assert.equal(1, r.code)
      assert.equal(("aegis-run: checkpoint: save '%s': a checkpoint named 'x' already exists in thread '%s'\n")
        :format(thread, thread), r.stderr)
      r = run({ 'branch', '--from', 'nope', '--name', 'y', '--thread', thread })
      assert.equal(1, r.code)
      assert.equal("aegis-run: checkpoint: branch 'nope': no such checkpoint\n", r.stderr)
    end)

    it('fails with exit 2 on bad usage', function()
      if not h.needs(backend) then return end
      local cases = {
        { { 'save', '--state', '-' }, 'checkpoint save: --name is required' },
        { { 'save', '--name', 'n' }, 'checkpoint save: --state FILE (or - for stdin) is required' },
        { { 'save', '--name', 'n', '--state', '-', '--layer', 'task' },
          "checkpoint save: --layer must be plan, module or file, not 'task'" },
        { { 'save', '--name', 'n', '--state', '-', '--layer', 'module' },
          'checkpoint save: --layer module needs --module ID' },
        { { 'save', '--name', 'latest', '--state', '-' },
          "checkpoint save: --name 'latest' would be read as an id or 'latest'" },
        { { 'branch', '--name', 'n' }, 'checkpoint branch: --from REF is required' },
        { { 'show' }, 'checkpoint show: missing REF (an id, a name or latest)' },
        { { 'diff', 'a' }, 'checkpoint diff: needs two checkpoints, A and B' },
        { { 'list', '--bogus' }, "checkpoint list: unknown option '--bogus' (see aegis-run checkpoint --help)" },
        { { 'frob' }, "checkpoint: unknown command 'frob' (list, show, save, branch, log, diff or serve)" },
      }
      for _, c in ipairs(cases) do
        local r = run(c[1], { stdin = '{}' })
        assert.equal(2, r.code, table.concat(c[1], ' '))
        assert.equal('aegis-run: ' .. c[2] .. '\n', r.stderr)
      end
      local r = run({ 'save', '--name', 'n', '--state', '-' }, { stdin = '[1]' })
      assert.equal(2, r.code)
      assert.equal("aegis-run: checkpoint save: state '-': a JSON object of channel values expected\n", r.stderr)
      r = run({ 'save', '--name', 'n', '--state', '-' }, { stdin = '{' })
      assert.equal(2, r.code)
      assert.truthy(r.stderr:find("^aegis%-run: checkpoint save: state '%-': json: "), r.stderr)
      r = run({ 'save', '--name', 'n', '--state', 'missing.json' })
      assert.equal(1, r.code)
      assert.equal("aegis-run: checkpoint save: read 'missing.json': No such file or directory\n", r.stderr)
    end)

    it('prints help and exits 0', function()
      if not h.needs(backend) then return end
      local r = h.run({ 'checkpoint', '--help' })
      assert.equal(0, r.code)
      assert.truthy(r.stdout:find('usage: aegis-run checkpoint list', 1, true))
      r = h.run({ 'checkpoint', 'save', '--help' })
      assert.equal(0, r.code)
    end)

    it('answers the serve protocol, one JSON line per request', function()
      if not h.needs(backend) then return end
      local reqs = table.concat({
        json.canonical({ op = 'put', seq = 1, thread = thread, ns = '', checkpoint = { v = 4,
          id = '1f0a0000-0000-6000-8000-000000000001', ts = '2026-01-01T00:00:00.000Z', channel_values = { a = 1 },
          channel_versions = { a = 1 }, versions_seen = {} },
          metadata = { source = 'input', step = -1, parents = {} }, new_versions = { a = 1 } }),
        json.canonical({ op = 'get_tuple', seq = 2, thread = thread }),
        json.canonical({ op = 'nope', seq = 3 }),
        'not json',
      }, '\n') .. '\n'
      local r = run({ 'serve' }, { stdin = reqs })
      assert.equal(0, r.code, r.stderr)
      local lines = {}
      for l in r.stdout:gmatch('[^\n]+') do lines[#lines + 1] = assert(json.decode(l)) end
      assert.equal(4, #lines)
      assert.is_true(lines[1].ok)
      assert.equal(1, lines[2].result.checkpoint.channel_values.a)
      assert.is_false(lines[3].ok)
      assert.equal("checkpoint serve: unknown op 'nope'", lines[3].error)
      assert.is_false(lines[4].ok)
      assert.equal('invalid', lines[4].code)
    end)
  end)
end

describe('aegis-run checkpoint with a bad store', function()
  it('exits 2 with the store message', function()
    local r = h.run({ 'checkpoint', 'list', '--store', 'nope:x' })
    assert.equal(2, r.code)
    assert.equal("aegis-run: store: open 'nope:x': unknown store URL (expected sqlite:PATH or postgres://...)\n",
      r.stderr)
  end)
end)
