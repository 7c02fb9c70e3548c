-- aegis.artifact: content-addressed artifacts and their links, on both backends.
local h = require('spec.helpers')

local artifact = require('aegis.artifact')
local hash = require('aegis.hash')
local store = require('aegis.store')
local uuid = require('aegis.uuid')

-- A fresh store: a new SQLite file, or a new schema on the shared PostgreSQL.
local function open(b)
  if b.name == 'sqlite' then
    local path = h.tmpdir() .. '/aegis.db'
    return assert(store.open('sqlite:' .. path)), path
  end
  local db = assert(store.open(b.url))
  local schema = 'artifact_spec_' .. uuid.v4():gsub('-', '')
  assert(db:exec('CREATE SCHEMA ' .. schema))
  assert(db:exec('SET search_path TO ' .. schema))
  return db
end

local function count(db, sql, ...)
  return assert(db:first('SELECT count(*) AS n FROM ' .. sql, ...)).n
end

describe('aegis.artifact', function()
  for _, b in ipairs(h.store_backends()) do
    describe(b.name, function()
      it('stores bytes under their SHA-256 and reads them back', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local bytes = 'a\0b\255\n' .. string.rep('x', 70000)
        local hx, new = artifact.put(bytes, { db = db, media_type = 'application/octet-stream' })
        assert.equal(hash.sha256(bytes), hx)
        assert.is_true(new)
        assert.equal(bytes, artifact.get(hx, db))
        local info = assert(artifact.info(hx, db))
        assert.equal(hx, info.hash)
        assert.equal(#bytes, info.size)
        assert.equal('application/octet-stream', info.media_type)
        assert.matches('^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$', info.created_at)
        assert(artifact.schemas.artifact:parse(info))
        assert.equal('', artifact.get(assert(artifact.put('', { db = db })), db))
      end)

      it('deduplicates: the same bytes are stored once', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local h1, new1 = artifact.put('same bytes', { db = db })
        local h2, new2 = artifact.put('same bytes', { db = db, media_type = 'text/plain' })
        assert.equal(h1, h2)
        assert.is_true(new1)
        assert.is_false(new2)
        assert.equal(1, count(db, 'artifacts WHERE hash = $1', h1))
        assert.is_nil(assert(artifact.info(h1, db)).media_type)  -- the first copy's record is kept
      end)

      it('gives plain nil for an artifact that is not there', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local absent = hash.sha256('never stored')
        local v, msg = artifact.get(absent, db)
        assert.is_nil(v)
        assert.is_nil(msg)
        v, msg = artifact.info(absent, db)
        assert.is_nil(v)
        assert.is_nil(msg)
        assert.same({}, assert(artifact.links(absent, db)))
      end)

      it('never returns damaged bytes: a flipped byte or a cut blob is corrupt, and put repairs it', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local bytes = 'generated file contents\n'
        local hx = assert(artifact.put(bytes, { db = db }))
        local flipped = bytes:sub(1, 4) .. string.char(bytes:byte(5) ~ 1) .. bytes:sub(6)
        assert.equal(1, db:exec('UPDATE artifacts SET content = $1 WHERE hash = $2', store.blob(flipped), hx))
        local v, msg, code = artifact.get(hx, db)
        assert.is_nil(v)
        assert.equal(("artifact: get '%s': stored bytes do not match their hash (24 bytes stored, 24 recorded)")
          :format(hx), msg)
        assert.equal('corrupt', code)

        assert(db:exec('UPDATE artifacts SET content = $1 WHERE hash = $2', store.blob(bytes:sub(1, 10)), hx))
        v, msg, code = artifact.get(hx, db)
        assert.is_nil(v)
        assert.matches('%(10 bytes stored, 24 recorded%)$', msg)
        assert.equal('corrupt', code)

        local again, new = artifact.put(bytes, { db = db })
        assert.equal(hx, again)
        assert.is_false(new)
        assert.equal(bytes, artifact.get(hx, db))
      end)

      it('links artifacts to spans, checkpoints, threads, paths, scaffolds and traces, once each', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local hx = assert(artifact.put('export const x = 1\n', {
          db = db, path = 'src/x.ts', checkpoint = 'ck-1', span = 'span-1', thread = 'run-1',
          scaffold_id = 'scaffold-1', blocks = { 'block-a', 'block-b' },
        }))
        assert.is_true(artifact.link({ db = db, hash = hx, checkpoint = 'ck-2', role = 'input', trace = 'tr-1' }))
        -- the same link again, and the same put again, record nothing new
        assert.is_true(artifact.link({ db = db, hash = hx, checkpoint = 'ck-2', role = 'input', trace = 'tr-1' }))
        assert(artifact.put('export const x = 1\n', {
          db = db, path = 'src/x.ts', checkpoint = 'ck-1', span = 'span-1', thread = 'run-1',
          scaffold_id = 'scaffold-1', blocks = { 'block-a', 'block-b' },
        }))
        local links = assert(artifact.links(hx, db))
        assert.equal(2, #links)
        local l = links[1]
        assert.same({ 'output', 'src/x.ts', 'ck-1', 'span-1', 'run-1', 'scaffold-1', { 'block-a', 'block-b' } },
          { l.role, l.path, l.checkpoint, l.span, l.thread, l.scaffold_id, l.blocks })
        assert.is_nil(l.trace)
        assert(artifact.schemas.artifact_link:parse(l))
        assert.same({ 'input', 'ck-2', 'tr-1' }, { links[2].role, links[2].checkpoint, links[2].trace })

        local by_ck = assert(artifact.linked({ db = db, checkpoint = 'ck-1' }))
        assert.equal(1, #by_ck)
        assert.equal(hx, by_ck[1].hash)
        assert.equal(19, by_ck[1].size)
        assert.equal(1, #assert(artifact.linked({ db = db, trace = 'tr-1', checkpoint = 'ck-2' })))
        assert.equal(0, #assert(artifact.linked({ db = db, trace = 'tr-1', checkpoint = 'ck-1' })))
        assert.equal(1, #assert(artifact.linked({ db = db, span = 'span-1', thread = 'run-1' })))
      end)

      it('refuses to link an artifact that is not stored', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local absent = hash.sha256('nothing')
        local ok, msg, code = artifact.link({ db = db, hash = absent, checkpoint = 'ck' })
        assert.is_nil(ok)
        assert.equal(("artifact: link '%s': no such artifact"):format(absent), msg)
        assert.equal('not_found', code)
      end)

      it('returns the store failure as nil, msg, code', function()
        if not h.needs(b) then return end
        local db <close> = open(b)
        local hx = assert(artifact.put('x', { db = db }))
        assert(db:exec('DROP TABLE artifact_links'))
        local v, msg, code = artifact.links(hx, db)
        assert.is_nil(v)
        assert.matches('artifact_links', msg)
        assert.equal('sql', code)
        v, msg, code = artifact.put('y', { db = db, checkpoint = 'c' })
        assert.is_nil(v)
        assert.matches('artifact_links', msg)
        assert.equal('sql', code)
        assert.is_nil(artifact.info(hash.sha256('y'), db))  -- the failed put stored nothing
      end)
    end)
  end

  it('uses the default store ($AEGIS_STORE) when given no db, opening and closing it per call', function()
    local dir = h.tmpdir()
    local spec = h.write(dir .. '/default_store_spec.lua', [[
      describe('default store', function()
        it('works', function()
          local artifact = require('aegis.artifact')
          local trace = require('aegis.trace')
          local hx = assert(artifact.put('via the default store', { checkpoint = 'ck' }))
          assert.equal('via the default store', artifact.get(hx))
          assert.equal(1, #assert(artifact.links(hx)))
          assert(trace.scratch({ thread = 't', kind = 'note', text = 'n' }))
          assert.equal(1, #assert(trace.scratchpad({ thread = 't' })))
          assert.equal('ck', assert(trace.provenance(hx)).checkpoints[1].id)
        end)
      end)]])
    local lua_dir = os.getenv('AEGIS_LUA_DIR')  -- relative to here; the child runs elsewhere
    if lua_dir and lua_dir:sub(1, 1) ~= '/' then lua_dir = os.getenv('PWD') .. '/' .. lua_dir end
    local r = h.run({ 'test', spec }, { cwd = dir,
      env = { AEGIS_STORE = 'sqlite:' .. dir .. '/default.db', AEGIS_LUA_DIR = lua_dir or false } })
    assert.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches('1 passed, 0 failed', r.stdout)
    local db <close> = assert(store.open('sqlite:' .. dir .. '/default.db'))
    assert.equal(1, assert(db:first('SELECT count(*) AS n FROM artifacts')).n)
  end)

  it('raises on misuse', function()
    local hx = hash.sha256('x')
    assert.error_matches(function() artifact.put(5) end, "bad argument #1 to 'put' %(string expected, got number%)")
    assert.error_matches(function() artifact.put('x', 5) end, "bad argument #2 to 'put' %(table expected")
    assert.error_matches(function() artifact.put('x', { media_type = 1 }) end, 'media_type must be a string')
    assert.error_matches(function() artifact.put('x', { db = 'sqlite:x' }) end, 'db must be an aegis.store handle')
    local put = artifact.put
    assert.error_matches(function() put('x', { checkpoint = '' }) end, 'checkpoint must be a non%-empty string')
    assert.error_matches(function() put('x', { blocks = 'b' }) end, 'blocks must be a list of block hashes')
    assert.error_matches(function() put('x', { path = 'p', blocks = { 1 } }) end, 'blocks%[1%] must be a string')
    assert.error_matches(function() artifact.get('abc') end,
      "bad argument #1 to 'get' %(SHA%-256 hex expected, got 'abc'%)")
    assert.error_matches(function() artifact.get(hx:upper()) end, 'SHA%-256 hex expected')
    assert.error_matches(function() artifact.info(nil) end,
      "bad argument #1 to 'info' %(SHA%-256 hex expected, got nil%)")
    assert.error_matches(function() artifact.links(1) end, "bad argument #1 to 'links'")
    assert.error_matches(function() artifact.link('x') end, "bad argument #1 to 'link' %(table expected")
    assert.error_matches(function() artifact.link({ hash = hx, role = 'made' }) end,
      "role must be 'output' or 'input', got 'made'")
    assert.error_matches(function() artifact.linked({}) end, 'give checkpoint, thread, span or trace')
    assert.error_matches(function() artifact.linked({ span = 1 }) end, 'span must be a string')
  end)
end)
