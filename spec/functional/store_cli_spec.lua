local h = require('spec.helpers')
local cjson = require('cjson')

local function lines(s)
  local out = {}
  for l in s:gmatch('[^\n]+') do out[#out + 1] = l end
  return out
end

describe('aegis-run store', function()
  for _, b in ipairs(h.store_backends()) do
    describe(b.name, function()
      it('info --json describes the store', function()
        if not h.needs(b) then return end
        local r = h.run({ 'store', 'info', '--store', b.url, '--json' })
        assert.equal(0, r.code, r.stderr)
        assert.equal('', r.stderr)
        local info = cjson.decode(r.stdout)
        assert.equal(b.name, info.backend)
        assert.equal(require('aegis.store').redact(b.url), info.url)
        assert.equal('table', type(info.components))
        if b.name == 'sqlite' then
          assert.equal(b.url:sub(8), info.path)
          assert.is_true(info.size > 0)
          assert.equal('wal', info.journal_mode)
          assert.equal('normal', info.synchronous)
        else
          assert.matches('^%d+', info.server_version)
          assert.equal('25s', info.statement_timeout)
          assert.equal('10s', info.lock_timeout)
          assert.equal('string', type(info.database))
        end
      end)

      it('info lists migrated components', function()
        if not h.needs(b) then return end
        local store = require('aegis.store')
        local comp = ('cli_%d'):format(math.random(1, 999999999))
        do
          local db <close> = assert(store.open(b.url))
          assert.equal(2, db:migrate(comp, { 'SELECT 1', 'SELECT 2' }))
        end
        local r = h.run({ 'store', 'info', '--store=' .. b.url, '--json' })
        assert.equal(0, r.code, r.stderr)
        assert.equal(2, cjson.decode(r.stdout).components[comp])
        r = h.run({ 'store', 'info', '--store', b.url })
        assert.equal(0, r.code, r.stderr)
        assert.matches('backend: +' .. b.name, r.stdout)
        assert.matches(comp .. ' 2\n', r.stdout, 1, true)
      end)

      it('migrate says what it did', function()
        if not h.needs(b) then return end
        local url = b.name == 'sqlite' and 'sqlite:' .. h.tmpdir() .. '/m.db' or b.url
        local r = h.run({ 'store', 'migrate', '--store', url })
        assert.equal(0, r.code, r.stderr)
        -- every module that owns tables (aegis.modules) brings them forward
        -- (the PostgreSQL server is shared by the run: other specs may have been first)
        assert.matches('^artifact: ', r.stdout)
        assert.matches('\ntrace: ', r.stdout)
        r = h.run({ 'store', 'migrate', '--store', url })
        assert.equal(0, r.code, r.stderr)
        assert.matches('^artifact: at version %d+, nothing to do\n', r.stdout)
      end)
    end)
  end

  it('creates the default store under .aegis with mode 0700', function()
    local dir = h.tmpdir()
    local r = h.run({ 'store', 'info', '--json' }, { cwd = dir, env = { AEGIS_STORE = false } })
    assert.equal(0, r.code, r.stderr)
    local info = cjson.decode(r.stdout)
    assert.equal('sqlite:.aegis/aegis.db', info.url)
    assert.is_not_nil(h.read(dir .. '/.aegis/aegis.db'))
    local p = io.popen('stat -c %a ' .. h.shell_quote(dir .. '/.aegis'))
    assert.equal('700', p:read('l'))
    p:close()
  end)

  it('takes the store from $AEGIS_STORE', function()
    local dir = h.tmpdir()
    local r = h.run({ 'store', 'info', '--json' }, { cwd = dir, env = { AEGIS_STORE = 'sqlite:env.db' } })
    assert.equal(0, r.code, r.stderr)
    assert.equal('sqlite:env.db', cjson.decode(r.stdout).url)
    assert.is_nil(h.read(dir .. '/.aegis/aegis.db'))
  end)

  it('exits 2 with one line for an unknown URL', function()
    local r = h.run({ 'store', 'info', '--store', 'mysql://u:s3cret@h/db' })
    assert.equal(2, r.code)
    assert.equal("aegis-run: store: open 'mysql://u:***@h/db': unknown store URL"
      .. ' (expected sqlite:PATH or postgres://...)\n', r.stderr)
    assert.equal('', r.stdout)
  end)

  it('exits 2 with one line, password hidden, when PostgreSQL cannot be reached', function()
    local dir = h.tmpdir() .. '/no-such-dir'
    local r = h.run({ 'store', 'migrate', '--store', 'host=' .. dir .. ' dbname=x password=s3cret' })
    assert.equal(2, r.code)
    assert.equal(1, #lines(r.stderr))
    assert.matches("^aegis%-run: store: open 'host=.* password=%*%*%*': connection to server on socket", r.stderr)
    assert.is_nil(r.stderr:find('s3cret', 1, true))
  end)

  it('exits 2 and creates nothing for a SQLite file in a missing directory', function()
    local dir = h.tmpdir()
    local r = h.run({ 'store', 'info', '--store', 'sqlite:missing/x.db' }, { cwd = dir })
    assert.equal(2, r.code)
    assert.equal("aegis-run: store: open 'sqlite:missing/x.db': directory 'missing' does not exist\n", r.stderr)
    assert.is_true(os.execute('test ! -e ' .. h.shell_quote(dir .. '/missing')))
  end)

  it('prints help for store, info and migrate', function()
    local r = h.run({ 'store', '--help' })
    assert.equal(0, r.code)
    assert.matches('^usage: aegis%-run store info %[%-%-store URL%] %[%-%-json%]\n', r.stdout)
    r = h.run({ 'store', 'info', '--help' })
    assert.equal(0, r.code)
    assert.matches('^usage: aegis%-run store info', r.stdout)
    r = h.run({ 'store', 'migrate', '-h' })
    assert.equal(0, r.code)
    assert.matches('^usage: aegis%-run store migrate', r.stdout)
    r = h.run({ '--help' })
    assert.matches('\n  store +show or migrate the store', r.stdout)
  end)

  it('refuses bad usage with exit 2', function()
    local r = h.run({ 'store' })
    assert.equal(2, r.code)
    assert.equal('aegis-run: store: missing command (info or migrate; see aegis-run store --help)\n', r.stderr)
    r = h.run({ 'store', 'frob' })
    assert.equal(2, r.code)
    assert.equal("aegis-run: store: unknown command 'frob' (info or migrate; see aegis-run store --help)\n", r.stderr)
    r = h.run({ 'store', 'info', '--frob' })
    assert.equal(2, r.code)
    assert.equal("aegis-run: store info: unknown argument '--frob' (see aegis-run store info --help)\n", r.stderr)
    r = h.run({ 'store', 'migrate', '--json' })
    assert.equal(2, r.code)
    r = h.run({ 'store', 'info', '--store' })
    assert.equal(2, r.code)
    assert.equal("aegis-run: store info: option '--store' needs a URL\n", r.stderr)
  end)
end)
