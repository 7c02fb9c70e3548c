-- The "rows floor" of the checkpoint benches: the SQL an aegis save runs on
-- SQLite, with the rows it writes, but no codec and no Lua around it: the
-- parent lookup, then INSERT OR REPLACE of LangGraph's row (the checkpoint
-- object with its values inline, and the metadata) with bytes `row` taken
-- from an aegis save. Call it inside db:tx; `n` makes the checkpoint id.
local store = require('aegis.store')

return function(tx, thread, n, row)
  local _, m, c = tx:first('SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,'
    .. ' checkpoint, metadata FROM checkpoints WHERE thread_id = $1 AND checkpoint_ns = $2'
    .. ' ORDER BY checkpoint_id DESC LIMIT 1', thread, '')
  if m then return nil, m, c end
  return tx:exec('INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,'
    .. ' parent_checkpoint_id, type, checkpoint, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)',
    thread, '', ('1f0cd000-0000-6000-8000-%012d'):format(n), store.null, 'json', store.blob(row.checkpoint),
    store.blob(row.metadata))
end
