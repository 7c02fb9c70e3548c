/*
** lcache.c: aegis.core.cache, the binding of ag_cache (the C hit path of
** the prompt cache).  Private: lua/aegis/cache.lua is the documented API.
**
**   core.open(path, busy_ms)      -> conn | nil, msg, code
**   conn:hit(ns, canon)           -> key, hash_ok, meta, text, cost, created_at, bytes,
**                                    provider, model, endpoint, scaffold_id, prefix_hash
**                                    key, nil                   (no entry)
**                                    key, false, msg, code      (the read failed)
**   conn:get(ns, key)             -> the same without hashing the request
**   conn:close()                  -> true (also __close, __gc)
**
** `hit` hashes the canonical request (the key), reads the entry on a
** prepared statement and checks the response against its stored SHA-256,
** in one call: the whole of a cache hit but decoding the small metadata.
** The response is `<canonical JSON of the metadata>\n<text>` (canonical
** JSON has no raw newline); `meta` and `text` are its two parts, `text`
** nil when there is no newline.  hash_ok false: the bytes failed their
** check (meta and text are then nil).
*/
#include <string.h>

#include "lauxag.h"
#include "ag_cache.h"

#define CACHE_CONN "aegis.cache.Conn"

typedef struct LConn { ag_cache *c; } LConn;   /* c == NULL means closed */

static ag_cache *checkopen (lua_State *L) {
  LConn *p = (LConn *)luaL_checkudata(L, 1, CACHE_CONN);
  if (p->c == NULL) luaL_error(L, "attempt to use a closed cache connection");
  return p->c;
}

static int cache_open (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer busy = luaL_optinteger(L, 2, 10000);
  luaL_argcheck(L, busy >= 0 && busy <= 3600000, 2, "busy timeout out of range");
  LConn *p = (LConn *)lua_newuserdatauv(L, sizeof *p, 0);
  p->c = NULL;                                   /* consistent if the open fails */
  luaL_setmetatable(L, CACHE_CONN);
  char err[AG_ERRLEN];
  int rc = ag_cache_open(path, (int)busy, &p->c, err);
  if (rc != AG_OK) return agL_pushfail(L, rc, "cache: open '%s': %s", path, err);
  return 1;
}

/* Pushes the outcome of ag_cache_get after the key (already pushed). */
static int pushhit (lua_State *L, ag_cache *c, const char *ns, size_t nsn, const char *key) {
  ag_cache_hit hit;
  char err[AG_ERRLEN];
  int rc = ag_cache_get(c, ns, nsn, key, &hit, err);
  if (rc == AG_ENOTFOUND) {
    lua_pushnil(L);
    return 2;
  }
  if (rc != AG_OK) {
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "cache: get '%s': %s", key, err);
    lua_pushstring(L, ag_errcode(rc));
    return 4;
  }
  /* copies the borrowed bytes before the statement is reset */
  luaL_checkstack(L, 12, NULL);
  lua_pushboolean(L, hit.hash_ok);                            /* [key, ok] */
  const char *r = (const char *)hit.response;
  const char *nl = hit.hash_ok ? memchr(r, '\n', hit.response_len) : NULL;
  if (nl != NULL) {
    lua_pushlstring(L, r, (size_t)(nl - r));                  /* [.., meta] */
    lua_pushlstring(L, nl + 1, hit.response_len - (size_t)(nl - r) - 1);   /* [.., text] */
  }
  else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  if (hit.has_cost) lua_pushnumber(L, hit.cost); else lua_pushnil(L);
  lua_pushinteger(L, (lua_Integer)hit.created_at);
  lua_pushinteger(L, (lua_Integer)hit.bytes);
  const ag_cache_text *t[] = {&hit.provider, &hit.model, &hit.endpoint, &hit.scaffold_id, &hit.prefix_hash};
  for (int i = 0; i < 5; i++) {
    if (t[i]->p != NULL) lua_pushlstring(L, t[i]->p, t[i]->n); else lua_pushnil(L);
  }
  ag_cache_done(c);
  return 12;
}

static int conn_hit (lua_State *L) {
  ag_cache *c = checkopen(L);
  size_t nsn, n;
  const char *ns = luaL_checklstring(L, 2, &nsn);
  const char *canon = luaL_checklstring(L, 3, &n);
  unsigned char d[AG_SHA256_LEN];
  char key[AG_SHA256_HEXLEN + 1];
  if (ag_sha256_buf(canon, n, d) != AG_OK) return luaL_error(L, "cache: SHA-256 failed");
  ag_sha256_hex(d, key);
  lua_pushlstring(L, key, AG_SHA256_HEXLEN);     /* [.., key] */
  return pushhit(L, c, ns, nsn, key);
}

static int conn_get (lua_State *L) {
  ag_cache *c = checkopen(L);
  size_t nsn, kn;
  const char *ns = luaL_checklstring(L, 2, &nsn);
  const char *key = luaL_checklstring(L, 3, &kn);
  luaL_argcheck(L, kn == AG_SHA256_HEXLEN, 3, "key must be 64 hex digits");
  lua_pushvalue(L, 3);                           /* [.., key] */
  return pushhit(L, c, ns, nsn, key);
}

static int conn_gc (lua_State *L) {
  LConn *p = (LConn *)luaL_checkudata(L, 1, CACHE_CONN);
  ag_cache_close(p->c);
  p->c = NULL;
  return 0;
}

static int conn_close (lua_State *L) {
  conn_gc(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int conn_tostring (lua_State *L) {
  LConn *p = (LConn *)luaL_checkudata(L, 1, CACHE_CONN);
  lua_pushfstring(L, "%s (%s)", CACHE_CONN, p->c ? "open" : "closed");
  return 1;
}

static const luaL_Reg funcs[] = {{"open", cache_open}, {NULL, NULL}};
static const luaL_Reg meth[] = {{"close", conn_close}, {"get", conn_get}, {"hit", conn_hit}, {NULL, NULL}};
static const luaL_Reg metameth[] = {{"__index", NULL}, {"__gc", conn_gc}, {"__close", conn_gc},
                                    {"__tostring", conn_tostring}, {NULL, NULL}};

AGLIB_API int luaopen_aegis_core_cache(lua_State *L);
AGLIB_API int luaopen_aegis_core_cache (lua_State *L) {
  agL_newclass(L, CACHE_CONN, meth, metameth);
  luaL_newlib(L, funcs);
  return 1;
}
