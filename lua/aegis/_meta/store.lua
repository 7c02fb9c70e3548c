---@meta
-- luacheck: no unused args, ignore 241
--- Declarations of the C userdata behind `aegis.store` (runtime/lstore.c).
--- The methods tx, batch, migrate, version and versions are Lua, in
--- lua/aegis/store.lua; the rest are C.
error('Cannot require a meta file')

--- Bytes to bind as BLOB (SQLite) or bytea (PostgreSQL); made by `store.blob(s)`.
---@class aegis.store.Blob
---@field [1] string the bytes

--- An open store: one connection to SQLite or PostgreSQL. Not shared across
--- processes: open it after `fork()`. Closed by `db:close()`, by leaving a
--- `<close>` scope, or by the garbage collector; a closed store raises
--- "attempt to use a closed store" on every method.
---@class aegis.store.Db
---@field kind 'sqlite'|'postgres' the backend
---@field url string the URL it was opened with, password replaced by ***
---@field synchronous? 'normal'|'full'|'group' SQLite: the durability mode in effect on this connection
local Db = {}

--- Runs a statement to completion, discarding rows. `...` binds to $1, $2, ...
--- (nil and store.null are NULL; booleans are 0/1 on SQLite; store.blob(s)
--- is bytes). Without values, `sql` may hold several statements.
---@param sql string
---@param ... nil|boolean|number|string|lightuserdata|aegis.store.Blob
---@return integer? changes rows inserted, updated or deleted by the (last) statement; 0 for others
---@return string? err `store: exec '<first line of sql>': <database message>`
---@return string? code 'sql', 'constraint', 'busy', 'timeout', 'conn', 'io', 'corrupt', 'invalid' or 'nomem'
function Db:exec(sql, ...) end

--- Runs a query and returns every row as a table keyed by column name
--- (NULL columns are absent). Integers are Lua integers, floats floats, text
--- and blobs/bytea strings (raw bytes), booleans booleans on PostgreSQL.
---@param sql string
---@param ... nil|boolean|number|string|lightuserdata|aegis.store.Blob
---@return table[]? rows
---@return string? err `store: query '<first line of sql>': <database message>`
---@return string? code
function Db:query(sql, ...) end

--- Like `query`, but returns only the first row, or nil when there is none.
---@param sql string
---@param ... nil|boolean|number|string|lightuserdata|aegis.store.Blob
---@return table? row
---@return string? err `store: first '<first line of sql>': <database message>`
---@return string? code
function Db:first(sql, ...) end

--- Closes the store: rolls back an open transaction and, on SQLite, runs
--- `PRAGMA optimize` (bounded, skipped if another writer is busy).
---@return true
function Db:close() end

--- Opens a transaction level (BEGIN, or a SAVEPOINT when nested); `db:tx` pairs it.
---@private
---@param lock_key? string
---@return integer? level
---@return string? err
---@return string? code
function Db:_begin(lock_key) end

--- Commits `level`; the level is closed whatever the result.
---@private
---@param level integer
---@return true? ok
---@return string? err
---@return string? code
function Db:_commit(level) end

--- Rolls `level` back; the level is closed whatever the result.
---@private
---@param level integer
---@return true? ok
---@return string? err
---@return string? code
function Db:_rollback(level) end

--- Gives the number of open transaction levels.
---@private
---@return integer
function Db:_depth() end

--- Runs a batch in one round trip (PostgreSQL, outside a transaction);
--- `db:batch` validates and falls back to a transaction elsewhere.
---@private
---@param stmts table[]
---@param lock_key? string
---@return table[][]? results
---@return string? err
---@return string? code
function Db:_batch(stmts, lock_key) end
