-- aegis.trace: tool traces, scratchpads and provenance, on both backends.
local h = require('spec.helpers')

local artifact = require('aegis.artifact')
local config = require('aegis.config')
local hash = require('aegis.hash')
local json = require('aegis.json')
local runtime = require('aegis.runtime')
local store = require('aegis.store')
local trace = require('aegis.trace')
local uuid = require('aegis.uuid')

local FIXTURE = 'spec/fixtures/trace/aegis.config.lua'

-- A fresh store: a new SQLite file (its path second), or a new schema on
-- the shared PostgreSQL (so tables such as `checkpoints` made here never
-- meet another module's).
local function open(b)
  if b.name == 'sqlite' then
    local path = h.tmpdir() .. '/aegis.db'
    return assert(store.open('sqlite:' .. path)), path
  end
  local db = assert(store.open(b.url))
  local schema = 'trace_spec_' .. uuid.v4():gsub('-', '')
  assert(db:exec('CREATE SCHEMA ' .. schema))
  assert(db:exec('SET search_path TO ' .. schema))
  return db
end

local function random_word(n)
  local t = {}
  for i = 1, n do
    local k = math.random(0, 61)
    t[i] = string.char(k < 10 and 48 + k or k < 36 and 55 + k or 61 + k)
  end
  return table.concat(t)
end

describe('aegis.trace', function()
  setup(function() config.load({ path = FIXTURE }) end)
  teardown(function() config.reset() end)

  describe('run, without a store of its own', function()
    it('refuses programs that are not on tools.allow', function()
      local r, msg, code = trace.run({ argv = { 'ls', '/' } })
      assert.is_nil(r)
      assert.equal("trace: run 'ls': not on the allow-list (add it to tools.allow in aegis.config.lua)", msg)
      assert.equal('denied', code)
      -- an argv-prefix entry allows that prefix only
      r, msg, code = trace.run({ argv = { 'echo', 'other' } })
      assert.is_nil(r)
      assert.equal("trace: run 'echo': not on the allow-list (add it to tools.allow in aegis.config.lua)", msg)
      assert.equal('denied', code)
      -- a name on the list does not allow a program of that name elsewhere
      r, msg, code = trace.run({ argv = { '/tmp/sh' } })
      assert.matches('^trace: run \'/tmp/sh\': not on the allow%-list', msg)
      assert.is_nil(r)
      assert.equal('denied', code)
    end)

    it('allows nothing by default', function()
      local dir = h.tmpdir()
      config.load({ path = h.write(dir .. '/aegis.config.lua', 'return {}') })
      local ok, r, msg, code = pcall(trace.run, { argv = { 'true' } })
      config.load({ path = FIXTURE })
      assert.is_true(ok)
      assert.is_nil(r)
      assert.equal("trace: run 'true': not on the allow-list (add it to tools.allow in aegis.config.lua)", msg)
      assert.equal('denied', code)
      assert.same({ allow = {}, timeout = 600 }, trace.config_schema:parse(nil))
    end)

    it('will not copy a secret-looking variable from the environment by name', function()
      local r, msg, code = trace.run({ argv = { 'true' }, env = { 'PATH', 'OPENAI_API_KEY' } })
      assert.is_nil(r)
      assert.equal("trace: run 'true': will not pass 'OPENAI_API_KEY' from the environment (it looks like a secret); "
        .. 'give its value explicitly', msg)
      assert.equal('denied', code)
    end)

    it('raises on misuse', function()
      assert.error_matches(function() trace.run('ls') end, "bad argument #1 to 'run' %(table expected, got string%)")
      assert.error_matches(function() trace.run({ argv = {} }) end, 'argv must be a non%-empty list of strings')
      assert.error_matches(function() trace.run({ argv = { 'sh', 1 } }) end, 'argv%[2%] must be a string')
      assert.error_matches(function() trace.run({ argv = { 'sh' }, kind = 'a b' }) end, 'kind must be a word')
      assert.error_matches(function() trace.run({ argv = { 'sh' }, cwd = '' }) end, 'cwd must be a non%-empty string')
      assert.error_matches(function() trace.run({ argv = { 'sh' }, checkpoint = 3 }) end, 'checkpoint must be')
      assert.error_matches(function() trace.run({ argv = { 'sh' }, stdin = 3 }) end, 'stdin must be a string')
      assert.error_matches(function() trace.run({ argv = { 'sh' }, env = 'PATH' }) end, 'env must be a table')
      assert.error_matches(function() trace.run({ argv = { 'sh' }, env = { 'BAD NAME' } }) end,
        "env name 'BAD NAME' is not a variable name")
      assert.error_matches(function() trace.run({ argv = { 'sh' }, env = { A = 1 } }) end,
        "env value of 'A' must be a string")
      assert.error_matches(function() trace.run({ argv = { 'sh' }, timeout = -1 }) end,
        'timeout must be a non%-negative')
      assert.error_matches(function() trace.run({ argv = { 'sh' }, inputs = { '' } }) end, 'inputs%[1%] must be a path')
      assert.error_matches(function() trace.run({ argv = { 'sh' }, runtime = {} }) end,
        'runtime must be an aegis.runtime')
      assert.error_matches(function() trace.run({ argv = { 'sh' }, db = 'x' }) end, 'db must be an aegis.store handle')
      assert.error_matches(function() trace.run({ argv = { 'sh' }, max_output = 1.5 }) end, 'max_output must be')
      assert.error_matches(function() trace.get(1) end, "bad argument #1 to 'get'")
      assert.error_matches(function() trace.list({ kind = 1 }) end, 'kind must be a string')
      assert.error_matches(function() trace.list({ limit = 0 }) end, 'limit must be a positive integer')
      assert.error_matches(function() trace.scratch({ thread = 't', kind = 'diary', text = '' }) end,
        "kind must be 'note', 'code', 'test' or 'lint', got 'diary'")
      assert.error_matches(function() trace.scratch({ thread = '', kind = 'note', text = '' }) end,
        'thread must be a non%-empty string')
      assert.error_matches(function() trace.scratch({ thread = 't', kind = 'note' }) end, 'text must be a string')
      assert.error_matches(function() trace.scratchpad({}) end, 'thread must be a non%-empty string')
      assert.error_matches(function() trace.scratchpad({ thread = 't', kind = 'x' }) end, 'kind must be')
      assert.error_matches(function() trace.provenance('x') end, "bad argument #1 to 'provenance'")
      assert.error_matches(function() trace.provenance_of_checkpoint('') end, 'checkpoint id expected')
      assert.error_matches(function() trace.redact(1) end, "bad argument #1 to 'redact'")
    end)
  end)

  describe('redact', function()
    it('replaces given secrets and anything that looks like a credential', function()
      local key = 'sk-' .. string.rep('a1B_', 6)
      assert.equal('x *** y', trace.redact('x ' .. key .. ' y'))
      assert.equal('sk-short', trace.redact('sk-short'))
      assert.equal('token ***, again ***', trace.redact('token hunter2x, again hunter2x', { 'hunter2x' }))
      assert.equal('abc', trace.redact('abc', { 'abc' }))  -- too short to scrub
      assert.equal('Authorization: Bearer ***', trace.redact('Authorization: Bearer abc.def-ghi'))
      assert.equal('postgres://u:***@host/db', trace.redact('postgres://u:pw@host/db'))
      assert.equal('*** ***', trace.redact('ghp_' .. string.rep('x', 36) .. ' AKIAABCDEFGHIJKLMNOP'))
      assert.equal('a%b***', trace.redact('a%b(x.y)+%', { '(x.y)+%' }))  -- values are matched literally
    end)
  end)

  for _, b in ipairs(h.store_backends()) do
    describe(b.name, function()
      it('runs a tool and records argv, cwd, env, stdin hash, output, exit, duration and inputs', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local dir = h.tmpdir()
        h.write(dir .. '/in.txt', 'input file\n')
        local thread, ck = uuid.v4(), uuid.v6()
        local res, id = trace.run({
          db = db, argv = { 'sh', '-c', 'cat; echo "$GREETING" >&2; pwd; exit 3' }, cwd = dir, kind = 'test',
          env = { 'PATH', GREETING = 'hello' }, stdin = 'from stdin\n', inputs = { 'in.txt' },
          span = 'span-1', checkpoint = ck, thread = thread,
        })
        assert.is_table(res, id)
        assert.same({ 3, 'from stdin\n' .. dir .. '\n', 'hello\n', false, false },
          { res.exit, res.stdout, res.stderr, res.timed_out, res.replayed })
        assert.matches('^%x+%-%x+%-6%x+%-%x+%-%x+$', id)

        local row = assert(trace.get(id, db))
        assert(trace.schemas.tool_trace:parse(row))
        assert.same({ 'sh', '-c', 'cat; echo "$GREETING" >&2; pwd; exit 3' }, row.argv)
        assert.same({ 'test', 'sh', dir, 3, 'span-1', ck, thread, false },
          { row.kind, row.program, row.cwd, row.exit, row.span, row.checkpoint, row.thread, row.replayed })
        assert.same({ GREETING = 'hello', PATH = os.getenv('PATH') }, row.env)
        assert.equal(hash.sha256('from stdin\n'), row.stdin_sha256)
        assert.equal(11, row.stdin_size)
        assert.same({ { path = 'in.txt', sha256 = hash.sha256('input file\n') } }, row.inputs)
        assert.equal(res.stdout, row.stdout)
        assert.equal(res.stderr, row.stderr)
        assert.equal(res.seconds, row.duration)
        assert.is_nil(trace.get(uuid.v6(), db))
      end)

      it('records signals, timeouts and truncation as results', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local res, id = trace.run({ db = db, argv = { 'sh', '-c', 'exec sleep 30' }, timeout = 0.1 })
        assert.is_table(res, id)
        assert.same({ true, 15, 'TERM' }, { res.timed_out, res.signal, res.signal_name })
        local row = assert(trace.get(id, db))
        assert.same({ true, 15 }, { row.timed_out, row.signal })
        assert.is_nil(row.exit)

        res, id = trace.run({ db = db, argv = { 'sh', '-c', 'printf 0123456789' }, max_output = 4 })
        assert.equal('0123', res.stdout)
        assert.is_true(res.stdout_truncated)
        row = assert(trace.get(id, db))
        assert.equal('0123', row.stdout)
        assert.is_true(row.stdout_truncated)
        assert.is_false(row.stderr_truncated)
      end)

      it('fails with nil, msg, code when the tool or an input is missing, recording nothing', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local dir = h.tmpdir()
        local r, msg, code = trace.run({ db = db, argv = { 'sh' }, cwd = dir, inputs = { 'missing.ts' } })
        assert.is_nil(r)
        assert.equal(("trace: run 'sh': input 'missing.ts': open '%s/missing.ts': No such file or directory")
          :format(dir), msg)
        assert.equal('not_found', code)
        r, msg, code = trace.run({ db = db, argv = { 'sh' }, cwd = dir .. '/nope' })
        assert.is_nil(r)
        assert.equal(("trace: run 'sh': cwd '%s/nope': No such file or directory"):format(dir), msg)
        assert.equal('not_found', code)
        assert.same({}, assert(trace.list({ db = db })))
      end)

      it('keeps secrets out of the stored row, and out of the SQLite file and its WAL', function()
        if not h.needs(b) then return end
        local db <close>, path = open(b)
        local canary = 'sk-canary' .. random_word(30)
        local password = 'pw-canary-' .. random_word(12)
        local res, id = trace.run({
          db = db, kind = 'lint',
          argv = { 'sh', '-c', 'echo "$OPENAI_API_KEY $DB_PASSWORD $PLAIN $1"; echo visible-marker', 'sh', password },
          env = { OPENAI_API_KEY = canary, DB_PASSWORD = password, PLAIN = canary:sub(1, 40), LANG = 'C' },
          stdin = canary,
        })
        assert.is_table(res, id)
        -- the caller gets the real output
        assert.equal(canary .. ' ' .. password .. ' ' .. canary:sub(1, 40) .. ' ' .. password .. '\nvisible-marker\n',
          res.stdout)
        local row = assert(trace.get(id, db))
        assert.same({ OPENAI_API_KEY = '***', DB_PASSWORD = '***', PLAIN = '***', LANG = 'C' }, row.env)
        assert.same({ 'sh', '-c', 'echo "$OPENAI_API_KEY $DB_PASSWORD $PLAIN $1"; echo visible-marker', 'sh', '***' },
          row.argv)
        assert.equal('*** *** *** ***\nvisible-marker\n', row.stdout)
        local raw = json.encode(assert(db:query('SELECT * FROM tool_traces')))
        assert.truthy(raw:find('visible-marker', 1, true))
        assert.falsy(raw:find('canary', 1, true))
        if path then
          local bytes = (h.read(path) or '') .. (h.read(path .. '-wal') or '')
          assert.truthy(bytes:find('visible-marker', 1, true))  -- the search can find what is there
          assert.falsy(bytes:find('canary', 1, true))
        end
      end)

      it('lists traces by checkpoint, thread, span and kind, oldest first', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local t1, t2 = uuid.v4(), uuid.v4()
        local _, a = trace.run({ db = db, argv = { 'printf', 'a' }, thread = t1, checkpoint = 'c1', kind = 'tsc' })
        local _, b2 = trace.run({ db = db, argv = { 'printf', 'b' }, thread = t1, checkpoint = 'c2', kind = 'test' })
        local _, c = trace.run({ db = db, argv = { 'echo', 'prefix-ok' }, thread = t2, span = 's9', kind = 'test' })
        local function ids(rows)
          local t = {}
          for i, r in ipairs(rows) do t[i] = r.id end
          return t
        end
        assert.same({ a, b2, c }, ids(assert(trace.list({ db = db }))))
        assert.same({ a, b2 }, ids(assert(trace.list({ db = db, thread = t1 }))))
        assert.same({ b2 }, ids(assert(trace.list({ db = db, checkpoint = 'c2' }))))
        assert.same({ b2, c }, ids(assert(trace.list({ db = db, kind = 'test' }))))
        assert.same({ c }, ids(assert(trace.list({ db = db, span = 's9', kind = 'test' }))))
        assert.same({ a }, ids(assert(trace.list({ db = db, limit = 1 }))))
        local rows = assert(trace.list({ db = db, thread = t2 }))
        assert.is_nil(rows[1].stdout)
        rows = assert(trace.list({ db = db, thread = t2, output = true }))
        assert.equal('prefix-ok\n', rows[1].stdout)  -- an argv-prefix entry of tools.allow
      end)

      it('journals the result in record mode and replays it without running the tool', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local dir = h.tmpdir()
        local argv = { 'sh', '-c', 'echo run >> count; wc -l < count; echo ' .. ('sk-' .. random_word(24)) }
        local rec = runtime.new({ mode = 'record' })
        local live, id1 = trace.run({ db = db, argv = argv, cwd = dir, runtime = rec, kind = 'test' })
        assert.is_table(live, id1)
        local entries = rec:entries()
        assert.equal(1, #entries)
        assert.equal('tool', entries[1].kind)
        assert.matches('^%x+$', entries[1].key)
        assert.equal(0, entries[1].value.exit)
        assert.falsy(json.encode(entries):find('sk-', 1, true))  -- the journal gets the redacted output

        local rep = runtime.new({ mode = 'replay', entries = json.decode(json.encode(entries)) })
        local again, id2 = trace.run({ db = db, argv = argv, cwd = dir, runtime = rep, kind = 'test' })
        assert.is_table(again, id2)
        assert.equal('1\n***\n', again.stdout)
        assert.is_true(again.replayed)
        assert.is_true(rep:finished())
        assert.equal('run\n', h.read(dir .. '/count'))  -- not run again
        assert.is_true(assert(trace.get(id2, db)).replayed)

        -- a different command at that position is a divergence
        rep = runtime.new({ mode = 'replay', entries = entries })
        local ok, err = pcall(trace.run, { db = db, argv = { 'sh', '-c', 'echo other' }, cwd = dir, runtime = rep })
        assert.is_false(ok)
        assert.equal('replay', err.code)
        assert.matches("^runtime: replay diverged at entry 1: expected tool '%x+', got tool '%x+'$", err.msg)
        rep = runtime.new({ mode = 'replay', entries = {} })
        ok, err = pcall(trace.run, { db = db, argv = argv, cwd = dir, runtime = rep })
        assert.is_false(ok)
        assert.matches('expected end of journal, got tool', err.msg)
      end)

      it('bind gives a module whose run always goes through one runtime', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local rec = runtime.new({ mode = 'record' })
        local bound = trace.bind(rec)
        assert.equal(trace.get, bound.get)
        assert.is_nil(bound.bind)
        local res = assert(bound.run({ db = db, argv = { 'printf', 'bound' } }))
        assert.equal('bound', res.stdout)
        assert.equal(1, #rec:entries())
        assert.equal('tool', rec:entries()[1].kind)
        assert.error_matches(function() bound.run({ db = db, argv = { 'true' }, runtime = runtime.new() }) end,
          'runtime is bound to this script')
        assert.error_matches(function() bound.run('x') end, "bad argument #1 to 'run' %(table expected")
        assert.error_matches(function() trace.bind({}) end,
          "bad argument #1 to 'bind' %(aegis.runtime object expected%)")
        local rep = trace.bind(runtime.new({ mode = 'replay', entries = rec:entries() }))
        local again = assert(rep.run({ db = db, argv = { 'printf', 'bound' } }))
        assert.is_true(again.replayed)
      end)

      it('journals a failure to start so that a replay fails the same way', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local rec = runtime.new({ mode = 'record' })
        local dir = h.tmpdir()
        local r, msg, code = trace.run({ db = db, argv = { 'sh' }, cwd = dir .. '/gone', runtime = rec })
        assert.is_nil(r)
        assert.equal('not_found', code)
        local rep = runtime.new({ mode = 'replay', entries = rec:entries() })
        local r2, msg2, code2 = trace.run({ db = db, argv = { 'sh' }, cwd = dir .. '/gone', runtime = rep })
        assert.same({ nil, msg, code }, { r2, msg2, code2 })
      end)

      it('keeps scratchpads per thread in order, across sessions', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local thread, other = uuid.v4(), uuid.v4()
        local id1 = assert(trace.scratch({ db = db, thread = thread, kind = 'note', text = 'plan: parser first' }))
        local id2 = assert(trace.scratch({ db = db, thread = thread, checkpoint = 'c1', kind = 'code',
          text = 'export const k = "sk-' .. string.rep('Z', 30) .. '"' }))
        assert(trace.scratch({ db = db, thread = other, kind = 'note', text = 'elsewhere' }))
        local id3 = assert(trace.scratch({ db = db, thread = thread, checkpoint = 'c1', kind = 'lint', text = '' }))
        assert.is_true(id1 < id2 and id2 < id3)
        local pad = assert(trace.scratchpad({ db = db, thread = thread }))
        assert.same({ 'plan: parser first', 'export const k = "***"', '' }, { pad[1].text, pad[2].text, pad[3].text })
        assert.same({ 'note', 'code', 'lint' }, { pad[1].kind, pad[2].kind, pad[3].kind })
        for _, e in ipairs(pad) do assert(trace.schemas.scratchpad:parse(e)) end
        assert.equal(2, #assert(trace.scratchpad({ db = db, thread = thread, checkpoint = 'c1' })))
        assert.same({ id3 }, { assert(trace.scratchpad({ db = db, thread = thread, kind = 'lint' }))[1].id })
        assert.same({}, assert(trace.scratchpad({ db = db, thread = uuid.v4() })))
        if b.name == 'sqlite' then
          -- a later session (a new connection) reads the same pad
          local _, path = db, nil
          for _, r in ipairs(assert(db:query('PRAGMA database_list'))) do
            if r.name == 'main' then path = r.file end
          end
          local db2 <close> = assert(store.open('sqlite:' .. path))
          assert.equal(3, #assert(trace.scratchpad({ db = db2, thread = thread })))
        end
      end)

      it('gives the provenance of an artifact and of a checkpoint, naming the gaps', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local thread, ck = uuid.v4(), uuid.v6()
        local _, tid = trace.run({ db = db, argv = { 'printf', 'ok' }, kind = 'tsc', checkpoint = ck, thread = thread })
        assert(trace.scratch({ db = db, thread = thread, checkpoint = ck, kind = 'test', text = 'tests pass' }))
        local src = 'export function parse() {}\n'
        local hx = assert(artifact.put(src, { db = db, path = 'src/parser.ts', checkpoint = ck, thread = thread,
          span = 'span-file-1', scaffold_id = 'scaf-1', blocks = { 'blk-1', 'blk-2' }, trace = tid }))

        local p = assert(trace.provenance(hx, db))
        assert.equal(#src, p.artifact.size)
        assert.equal(1, #p.links)
        assert.same({ { id = ck, found = false } }, p.checkpoints)
        assert.same({ 'span-file-1' }, p.spans)
        assert.same({ { id = 'scaf-1', blocks = { { hash = 'blk-1' }, { hash = 'blk-2' } } } }, p.scaffolds)
        assert.equal(tid, p.traces[1].id)
        assert.equal('ok', p.traces[1].stdout)
        assert.equal(3, #p.gaps)
        assert.matches('no scaffolds table', p.gaps[2])
        assert.is_nil(trace.provenance(hash.sha256('absent'), db))

        local pc = assert(trace.provenance_of_checkpoint(ck, db))
        assert.same({ id = ck, found = false }, pc.checkpoint)
        assert.equal(1, #pc.artifacts)
        assert.same({ hx, 'src/parser.ts', 'output', 'span-file-1' },
          { pc.artifacts[1].hash, pc.artifacts[1].path, pc.artifacts[1].role, pc.artifacts[1].span })
        assert.same({ tid }, { pc.traces[1].id })
        assert.same({ 'tests pass' }, { pc.scratchpad[1].text })
        assert.equal('scaf-1', pc.scaffolds[1].id)
        local empty = assert(trace.provenance_of_checkpoint('no-such', db))
        assert.truthy(json.encode(empty)
          :find('^{"artifacts":%[%],"checkpoint":{"found":false,"id":"no%-such"},"gaps":%['))
      end)

      it('joins LangGraph checkpoints and the scaffolds and blocks tables when the store has them', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local thread, ck, parent = uuid.v4(), uuid.v6(), uuid.v6()
        local blob = b.name == 'sqlite' and 'BLOB' or 'JSONB'
        assert(db:exec(([[
CREATE TABLE checkpoints (thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT NULL DEFAULT '', checkpoint_id TEXT NOT NULL,
  parent_checkpoint_id TEXT, type TEXT, checkpoint %s, metadata %s,
  PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id));
CREATE TABLE scaffolds (id TEXT PRIMARY KEY, provider TEXT, model TEXT);
CREATE TABLE blocks (hash TEXT PRIMARY KEY, kind TEXT, stability TEXT);
INSERT INTO scaffolds VALUES ('scaf-meta', 'anthropic', 'claude');
INSERT INTO blocks VALUES ('blk-1', 'requirements', 'stable');]]):format(blob, blob)))
        local md = json.encode({ source = 'loop', step = 2, parents = {}, layer = 'file', name = 'parser',
          scaffold_id = 'scaf-meta', span_key = 'span-from-meta', run_id = thread })
        local v = b.name == 'sqlite' and store.blob(md) or md
        assert(db:exec('INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, '
          .. 'checkpoint, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)', thread, 'module:parser|file:parser.ts', ck,
          parent, 'json', b.name == 'sqlite' and store.blob('{}') or '{}', v))
        local hx = assert(artifact.put('code', { db = db, checkpoint = ck, blocks = { 'blk-1', 'blk-x' },
          scaffold_id = 'scaf-meta' }))

        local p = assert(trace.provenance(hx, db))
        assert.same({ 'span-from-meta' }, p.spans)
        local c = p.checkpoints[1]
        assert.same({ true, thread, 'module:parser|file:parser.ts', parent, 'file', 'scaf-meta' },
          { c.found, c.thread, c.ns, c.parent, c.metadata.layer, c.metadata.scaffold_id })
        assert.equal(1, #p.scaffolds)
        assert.same({ id = 'scaf-meta', provider = 'anthropic', model = 'claude' }, p.scaffolds[1].row)
        assert.same({ hash = 'blk-1', kind = 'requirements', stability = 'stable' }, p.scaffolds[1].blocks[1].row)
        assert.same({ hash = 'blk-x' }, p.scaffolds[1].blocks[2])
        assert.same({}, p.gaps)

        local pc = assert(trace.provenance_of_checkpoint(ck, db))
        assert.is_true(pc.checkpoint.found)
        assert.equal('parser', pc.checkpoint.metadata.name)
        assert.equal('scaf-meta', pc.scaffolds[1].id)
        assert.equal('blk-1', pc.scaffolds[1].blocks[1].hash)
      end)

      it('returns store failures as nil, msg, code', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        assert(trace.scratch({ db = db, thread = 't', kind = 'note', text = 'x' }))
        assert(db:exec('DROP TABLE scratchpads'))
        local r, msg, code = trace.scratchpad({ db = db, thread = 't' })
        assert.is_nil(r)
        assert.matches('scratchpads', msg)
        assert.equal('sql', code)
        r, _, code = trace.scratch({ db = db, thread = 't', kind = 'note', text = 'x' })
        assert.is_nil(r)
        assert.equal('sql', code)
        r, _, code = trace.provenance_of_checkpoint('c', db)
        assert.is_nil(r)
        assert.equal('sql', code)
        assert(db:exec('DROP TABLE tool_traces'))
        r, msg, code = trace.run({ db = db, argv = { 'true' } })
        assert.is_nil(r)
        assert.matches('tool_traces', msg)
        assert.equal('sql', code)
      end)
    end)
  end
end)
