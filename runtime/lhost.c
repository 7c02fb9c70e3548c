/*
** lhost.c: aegis.core.host, what the host knows about itself: the files
** compiled into the binary, library versions, and the terminal.
*/
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sqlite3.h>
#include <tree_sitter/api.h>

#include "ag_lmem.h"
#include "ag_curl.h"
#include "ag_pq.h"
#include "host.h"
#include "lauxag.h"

const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);

/* embedded(path) -> string | nil */
static int host_embedded (lua_State *L) {
  const ag_embedded *e = ag_host_embedded(luaL_checkstring(L, 1));
  if (e == NULL) lua_pushnil(L);
  else lua_pushlstring(L, e->data, e->len);
  return 1;
}

/* list(prefix) -> {path...}, sorted */
static int host_list (lua_State *L) {
  size_t n;
  const char *prefix = luaL_optlstring(L, 1, "", &n);
  lua_newtable(L);
  lua_Integer i = 0;
  for (const ag_embedded *e = ag_embedded_files; e->path != NULL; e++) {
    if (strncmp(e->path, prefix, n) == 0) {
      lua_pushstring(L, e->path);
      lua_rawseti(L, -2, ++i);
    }
  }
  return 1;
}

static void setstr (lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* versions() -> {lua=, sqlite=, libpq=, curl=, openssl=, tree_sitter=,
**               tree_sitter_abi=, tree_sitter_typescript=, typescript_abi=,
**               tsx_abi=}; the two package versions come from the Makefile,
**               which reads them from the scripts that pin them. */
static int host_versions (lua_State *L) {
  lua_newtable(L);
  setstr(L, "lua", LUA_RELEASE);
  setstr(L, "sqlite", sqlite3_libversion());
  char err[AG_ERRLEN];
  const ag_pq_api *pq = ag_pq(err);
  if (pq != NULL) {
    int v = pq->PQlibVersion();
    lua_pushfstring(L, "%d.%d", v / 10000, v % 10000);
  }
  else lua_pushstring(L, err);
  lua_setfield(L, -2, "libpq");
  const ag_curl_api *curl = ag_curl(err);
  setstr(L, "curl", curl ? curl->curl_version_info(CURLVERSION_NOW)->version : err);
  setstr(L, "openssl", OpenSSL_version(OPENSSL_VERSION));
  setstr(L, "tree_sitter", AG_TREE_SITTER_VERSION);
  setstr(L, "tree_sitter_typescript", AG_GRAMMAR_VERSION);
  lua_pushinteger(L, TREE_SITTER_LANGUAGE_VERSION);
  lua_setfield(L, -2, "tree_sitter_abi");
  lua_pushinteger(L, (lua_Integer)ts_language_version(tree_sitter_typescript()));
  lua_setfield(L, -2, "typescript_abi");
  lua_pushinteger(L, (lua_Integer)ts_language_version(tree_sitter_tsx()));
  lua_setfield(L, -2, "tsx_abi");
  return 1;
}

/* isatty(fd) -> boolean; fd 0, 1 or 2 */
static int host_isatty (lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "expected 0, 1 or 2");
  lua_pushboolean(L, isatty((int)fd));
  return 1;
}

/* memory() -> bytes in use by the Lua state, peak bytes */
static int host_memory (lua_State *L) {
  ag_alloc *a = ag_host_alloc(L);
  lua_pushinteger(L, (lua_Integer)a->used);
  lua_pushinteger(L, (lua_Integer)a->peak);
  return 2;
}

/* lmem() -> {mode = 'pool'|'malloc', chunks =, free_bytes =}: the Lua
** allocator's figures (ag_lmem.h), for specs */
static int host_lmem (lua_State *L) {
  ag_lmem_stats st;
  ag_lmem_stats_get(&st);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, ag_lmem_mode());
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st.chunks);
  lua_setfield(L, -2, "chunks");
  lua_pushinteger(L, (lua_Integer)st.free_bytes);
  lua_setfield(L, -2, "free_bytes");
  return 1;
}

static const luaL_Reg funcs[] = {
  {"embedded", host_embedded},
  {"isatty", host_isatty},
  {"list", host_list},
  {"lmem", host_lmem},
  {"memory", host_memory},
  {"versions", host_versions},
  {NULL, NULL}
};

AGLIB_API int luaopen_aegis_core_host(lua_State *L);
AGLIB_API int luaopen_aegis_core_host (lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
