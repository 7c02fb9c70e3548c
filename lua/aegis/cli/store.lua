--- `aegis-run store info|migrate`: what a store is, and bringing its schema
--- forward.
local errors = require('aegis.errors')
local fs = require('aegis.fs')
local store = require('aegis.store')

local usage = [[
usage: aegis-run store info [--store URL] [--json]
       aegis-run store migrate [--store URL]

Shows or migrates the store: SQLite (sqlite:PATH) or PostgreSQL
(postgres://... or a libpq conninfo string).

commands:
  info      backend, URL (password hidden), file and size or server version,
            settings in effect, migrated components and their versions
  migrate   applies the schema migrations aegis-run knows, and says which

options:
  --store URL   the store (default: $AEGIS_STORE, else sqlite:.aegis/aegis.db)
  --json        (info) one JSON object on stdout
  -h, --help    this help]]

local info_usage = [[
usage: aegis-run store info [--store URL] [--json]

Shows the store's backend, URL (password hidden), file and size (SQLite) or
server version (PostgreSQL), journal mode and synchronous setting (SQLite)
or statement and lock timeouts (PostgreSQL), and each migrated component
with its version. --json prints one object with the fields backend, url,
path, size, wal_size, journal_mode, synchronous (SQLite), server_version,
database, statement_timeout, lock_timeout (PostgreSQL) and components
({name = version}).]]

local migrate_usage = [[
usage: aegis-run store migrate [--store URL]

Applies every schema migration aegis-run knows that the store lacks, each
in its own transaction, and prints one line per component:
"<component>: <from> -> <to>". Safe to run from several processes at once.]]

-- Parses [--store URL] [--json]; `allowed` names the flags taken.
local function parse(args, allowed, name)
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local key, value = a:match('^%-%-([%w-]+)=(.*)$')
    key = key or a:match('^%-%-([%w-]+)$')
    if a == '-h' or a == '--help' then
      o.help = true
    elseif key == 'store' and allowed.store then
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then errors.usage("store %s: option '--store' needs a URL", name) end
      end
      o.store = value
    elseif key == 'json' and allowed.json and value == nil then
      o.json = true
    else
      errors.usage("store %s: unknown argument '%s' (see aegis-run store %s --help)", name, a, name)
    end
    i = i + 1
  end
  return o
end

local function open(url)
  local db, msg = store.open(url)
  if not db then errors.config('%s', msg) end
  return db
end

local function check(ok, msg, code)
  if ok == nil then errors.raise(code or 'error', '%s', msg) end
  return ok
end

local function file_size(path)
  local st = fs.stat(path)
  return st and st.size
end

local function value(db, sql)
  local row = check(db:first(sql))
  local _, v = next(row)
  return v
end

local function describe(db, url)
  local r = { backend = db.kind, url = db.url, components = check(db:versions()) }
  if db.kind == 'sqlite' then
    r.path = url:match('^sqlite:(.*)$')
    r.size = r.path ~= ':memory:' and file_size(r.path) or 0
    r.wal_size = r.path ~= ':memory:' and file_size(r.path .. '-wal') or 0
    r.journal_mode = value(db, 'PRAGMA journal_mode')
    -- per connection, not stored in the file: the mode this command's own
    -- connection runs at ('group' shows as such, not as its NORMAL pragma)
    local sync = value(db, 'PRAGMA synchronous')
    r.synchronous = db.synchronous or ({ [0] = 'off', 'normal', 'full', 'extra' })[sync] or tostring(sync)
  else
    r.server_version = value(db, 'SHOW server_version')
    r.database = value(db, 'SELECT current_database()')
    r.statement_timeout = value(db, 'SHOW statement_timeout')
    r.lock_timeout = value(db, 'SHOW lock_timeout')
  end
  return r
end

local function info(args)
  local o = parse(args, { store = true, json = true }, 'info')
  if o.help then
    io.stdout:write(info_usage, '\n')
    return 0
  end
  local url = o.store or store.default_url()
  local db <close> = open(o.store)
  local r = describe(db, url)
  if o.json then
    io.stdout:write(require('aegis.json').encode(r), '\n')
    return 0
  end
  local lines = { ('backend:      %s'):format(r.backend), ('url:          %s'):format(r.url) }
  local function add(label, v)
    if v ~= nil then lines[#lines + 1] = ('%-13s %s'):format(label .. ':', v) end
  end
  if r.backend == 'sqlite' then
    add('path', r.path)
    add('size', ('%d bytes (wal %d bytes)'):format(r.size or 0, r.wal_size or 0))
    add('journal mode', r.journal_mode)
    add('synchronous', r.synchronous)
  else
    add('server', 'PostgreSQL ' .. r.server_version)
    add('database', r.database)
    add('timeouts', ('statement %s, lock %s'):format(r.statement_timeout, r.lock_timeout))
  end
  local names = {}
  for name in pairs(r.components) do names[#names + 1] = name end
  table.sort(names)
  if #names == 0 then add('components', '(none migrated)') end
  for i, name in ipairs(names) do
    add(i == 1 and 'components' or '', ('%s %d'):format(name, r.components[name]))
  end
  io.stdout:write(table.concat(lines, '\n'), '\n')
  return 0
end

local function migrate(args)
  local o = parse(args, { store = true }, 'migrate')
  if o.help then
    io.stdout:write(migrate_usage, '\n')
    return 0
  end
  require('aegis.modules').load_all()
  local db <close> = open(o.store)
  local done = check(store.migrate_all(db))
  if #done == 0 then
    io.stdout:write('store: no migrations registered, nothing to do\n')
  end
  for _, d in ipairs(done) do
    if d.from == d.to then
      io.stdout:write(('%s: at version %d, nothing to do\n'):format(d.component, d.to))
    else
      io.stdout:write(('%s: %d -> %d\n'):format(d.component, d.from, d.to))
    end
  end
  return 0
end

local commands = { info = info, migrate = migrate }

local function run(args)
  local sub = args[1]
  if sub == nil then errors.usage('store: missing command (info or migrate; see aegis-run store --help)') end
  local fn = commands[sub]
  if fn == nil then
    errors.usage("store: unknown command '%s' (info or migrate; see aegis-run store --help)", sub)
  end
  return fn(table.move(args, 2, #args, 1, {}))
end

return { summary = 'show or migrate the store (SQLite or PostgreSQL)', usage = usage, run = run }
