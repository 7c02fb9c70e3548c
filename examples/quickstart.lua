-- quickstart.lua: what `make demo` runs. No API keys, no network.
-- Prompt blocks are content-addressed (SHA-256 of their text), requests get a
-- key from their canonical JSON (RFC 8785), and everything lands in the
-- embedded SQLite store at .aegis/aegis.db. Run it twice: the second run
-- finds every block already stored.
local s = aegis.schema

-- 1. A data model, checked at the boundary.
local Block = s.object({
  kind = s.enum({ 'requirements', 'file_map', 'style_guide', 'context', 'task' }),
  stability = s.enum({ 'stable', 'volatile' }):default('stable'),
  content = s.string({ min = 1 }),
}, { name = 'block' })

local blocks = {
  Block:assert({ kind = 'requirements', content = 'Parse ISO-8601 dates; reject invalid input.' }),
  Block:assert({ kind = 'style_guide', content = 'TypeScript, strict mode, no any.' }),
  Block:assert({ kind = 'task', stability = 'volatile', content = 'Write src/date.ts.' }),
}
local _, err = Block:parse({ kind = 'todo', content = '' })
print('a bad block is refused:\n  ' .. err.msg:gsub('\n', '\n  '))

-- 2. Request keys do not depend on the order a table was built in.
local a = { model = 'demo-model', temperature = 0, messages = { 'hello' } }
local b = { messages = { 'hello' }, temperature = 0, model = 'demo-model' }
local key = aegis.hash.sha256(aegis.json.canonical(a))
assert(key == aegis.hash.sha256(aegis.json.canonical(b)))
print('request key: ' .. key .. '\n  of ' .. aegis.json.canonical(a))

-- 3. Blocks stored once, by hash, in the default store.
local db <close> = assert(aegis.store.open())
assert(db:migrate('quickstart', {
  [[CREATE TABLE demo_blocks (hash TEXT PRIMARY KEY, kind TEXT NOT NULL,
                              stability TEXT NOT NULL, content TEXT NOT NULL)]],
}))
local added = db:tx(function()
  local n = 0
  for _, blk in ipairs(blocks) do
    n = n + assert(db:exec('INSERT INTO demo_blocks VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO NOTHING',
      aegis.hash.sha256(blk.content), blk.kind, blk.stability, blk.content))
  end
  return n
end)
local total = db:first('SELECT count(*) AS n FROM demo_blocks').n
print(('store %s: %d new block(s), %d in all'):format(db.url, added, total))
print('run id (uuid6, time-ordered): ' .. aegis.uuid.v6())
