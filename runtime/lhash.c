/*
** lhash.c: aegis.core.hash, the binding of ag_sha256.  The documented API
** is lua/aegis/hash.lua.
*/
#include <string.h>

#include "ag_sha256.h"
#include "lauxag.h"

#define HASH_SHA256 "aegis.hash.Sha256"

/* h == NULL means finished or collected (the luaL_Stream idea). */
typedef struct LSha256 { ag_sha256 *h; } LSha256;

/* Strings only: luaL_checklstring would quietly hash tostring(42). */
static const char *checkbytes (lua_State *L, int arg, size_t *len) {
  if (lua_type(L, arg) != LUA_TSTRING) luaL_typeerror(L, arg, "string");
  return lua_tolstring(L, arg, len);
}

static void pushhex (lua_State *L, const unsigned char d[AG_SHA256_LEN]) {
  char hex[AG_SHA256_HEXLEN + 1];
  ag_sha256_hex(d, hex);
  lua_pushlstring(L, hex, AG_SHA256_HEXLEN);
}

/* sha256(s) -> hex */
static int hash_sha256 (lua_State *L) {
  size_t n;
  const char *s = checkbytes(L, 1, &n);
  unsigned char d[AG_SHA256_LEN];
  if (ag_sha256_buf(s, n, d) != AG_OK) return luaL_error(L, "hash: SHA-256 failed");
  pushhex(L, d);
  return 1;
}

/* sha256_raw(s) -> 32 bytes */
static int hash_sha256_raw (lua_State *L) {
  size_t n;
  const char *s = checkbytes(L, 1, &n);
  unsigned char d[AG_SHA256_LEN];
  if (ag_sha256_buf(s, n, d) != AG_OK) return luaL_error(L, "hash: SHA-256 failed");
  lua_pushlstring(L, (const char *)d, AG_SHA256_LEN);
  return 1;
}

/* sha256_file(path) -> hex | nil, msg, code */
static int hash_sha256_file (lua_State *L) {
  size_t n;
  const char *path = checkbytes(L, 1, &n);
  luaL_argcheck(L, strlen(path) == n, 1, "path contains a NUL byte");
  unsigned char d[AG_SHA256_LEN];
  char err[AG_ERRLEN];
  int rc = ag_sha256_file(path, d, err);
  if (rc != AG_OK) return agL_pushfail(L, rc, "hash: %s", err);
  pushhex(L, d);
  return 1;
}

/* sha256_new() -> aegis.hash.Sha256 */
static int hash_sha256_new (lua_State *L) {
  char err[AG_ERRLEN];
  LSha256 *p = (LSha256 *)lua_newuserdatauv(L, sizeof *p, 0);
  p->h = NULL;  /* consistent if the open below fails */
  luaL_setmetatable(L, HASH_SHA256);
  if (ag_sha256_open(&p->h, err) != AG_OK)
    return luaL_error(L, "hash: %s", err);
  return 1;
}

static LSha256 *tohasher (lua_State *L) {
  return (LSha256 *)luaL_checkudata(L, 1, HASH_SHA256);
}

static ag_sha256 *checklive (lua_State *L) {
  LSha256 *p = tohasher(L);
  if (p->h == NULL) luaL_error(L, "attempt to use a finished hasher");
  return p->h;
}

/* hasher:update(s) -> hasher */
static int h_update (lua_State *L) {
  ag_sha256 *h = checklive(L);
  size_t n;
  const char *s = checkbytes(L, 2, &n);
  if (ag_sha256_update(h, s, n) != AG_OK) return luaL_error(L, "hash: SHA-256 update failed");
  lua_settop(L, 1);  /* [self], for chaining */
  return 1;
}

/* Finishes the hasher into `d`; it is released whatever the outcome. */
static void finish (lua_State *L, unsigned char d[AG_SHA256_LEN]) {
  ag_sha256 *h = checklive(L);
  int rc = ag_sha256_final(h, d);
  ag_sha256_close(h);
  tohasher(L)->h = NULL;
  if (rc != AG_OK) luaL_error(L, "hash: SHA-256 final failed");
}

/* hasher:hex() -> hex; finishes the hasher */
static int h_hex (lua_State *L) {
  unsigned char d[AG_SHA256_LEN];
  finish(L, d);
  pushhex(L, d);
  return 1;
}

/* hasher:raw() -> 32 bytes; finishes the hasher */
static int h_raw (lua_State *L) {
  unsigned char d[AG_SHA256_LEN];
  finish(L, d);
  lua_pushlstring(L, (const char *)d, AG_SHA256_LEN);
  return 1;
}

/* __gc and __close: silent and idempotent */
static int h_gc (lua_State *L) {
  LSha256 *p = tohasher(L);
  ag_sha256_close(p->h);
  p->h = NULL;
  return 0;
}

static int h_tostring (lua_State *L) {
  LSha256 *p = tohasher(L);
  if (p->h == NULL) lua_pushstring(L, HASH_SHA256 " (finished)");
  else lua_pushfstring(L, HASH_SHA256 " (%p)", (void *)p->h);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"sha256", hash_sha256},
  {"sha256_file", hash_sha256_file},
  {"sha256_new", hash_sha256_new},
  {"sha256_raw", hash_sha256_raw},
  {NULL, NULL}
};

static const luaL_Reg meth[] = {
  {"hex", h_hex},
  {"raw", h_raw},
  {"update", h_update},
  {NULL, NULL}
};

static const luaL_Reg metameth[] = {
  {"__index", NULL},  /* placeholder: the method table */
  {"__gc", h_gc},
  {"__close", h_gc},
  {"__tostring", h_tostring},
  {NULL, NULL}
};

AGLIB_API int luaopen_aegis_core_hash(lua_State *L);
AGLIB_API int luaopen_aegis_core_hash (lua_State *L) {
  agL_newclass(L, HASH_SHA256, meth, metameth);
  luaL_newlib(L, funcs);
  return 1;
}
