---@meta
-- luacheck: ignore
error('Cannot require a meta file')

--- aegis.core.http: the private C binding under aegis.http (runtime/lhttp.c).
--- aegis.http validates and normalises requests before they reach it.
---@class aegis.core.http
local core = {}

---@class aegis.core.http.Request
---@field method string
---@field url string
---@field headers string[] "Name: value" lines ("Name;" for an empty value)
---@field body? string
---@field ca_file? string
---@field connect_ms integer
---@field total_ms integer
---@field low_speed_bytes integer
---@field low_speed_s integer
---@field max_bytes integer
---@field max_redirects integer 0: never follow
---@field on_event? fun(ev: aegis.http.Event): boolean?
---@field keep_body? boolean

--- One transfer on the state's session (a curl multi handle kept in the registry).
---@param req aegis.core.http.Request
---@return aegis.http.Response? res
---@return string? err
---@return string? code
function core.request(req) end

--- Many transfers at once; results in input order.
---@param reqs aegis.core.http.Request[]
---@param concurrency? integer default 16
---@return (aegis.http.Response|{err: string, code: string})[]
function core.all(reqs, concurrency) end

--- Closes the session and its connections.
function core.close() end

--- nanosleep, resumed after signals.
---@param seconds number
function core.sleep(seconds) end

--- The URL as messages show it.
---@param url string
---@return string
function core.redact(url) end

--- Feeds `chunks` to the C SSE parser, calling fn per event as a transfer
--- would: 'ok', 'pending' (ended inside an event), 'stopped', or
--- nil, msg, 'aborted' when fn raised.
---@param chunks string[]
---@param fn fun(ev: aegis.http.Event): boolean?
---@return string? status
---@return string? err
---@return string? code
function core.sse_parse(chunks, fn) end
