/*
** host.c: builds the lua_State: allocator, standard libraries, preloaded
** C modules, and a searcher that finds aegis's Lua modules compiled into
** the binary (or on disk under $AEGIS_LUA_DIR, for development).
*/
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "ag_lmem.h"
#include "host.h"
#include "lauxag.h"

int luaopen_cjson(lua_State *L);  /* lua-cjson, linked in */

/*
** {======================================================
** Allocator
** =======================================================
*/

static void *l_alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  ag_alloc *a = (ag_alloc *)ud;
  if (ptr == NULL) osize = 0;  /* osize is a type tag for new blocks */
  if (nsize == 0) {
    ag_lmem_realloc(ptr, osize, 0);
    a->used -= osize;
    return NULL;
  }
  if (nsize > osize) {
    size_t grow = nsize - osize;
    /* As ltests.c's countlimit: once the count runs out, every growth
    ** fails, so Lua's emergency collection and retry fail too and the
    ** memory error really reaches the code under test. */
    if (a->fail_after >= 0) {
      if (a->fail_after == 0) return NULL;
      a->fail_after--;
    }
    if (a->limit != 0 && a->used + grow > a->limit) {
      a->limit_hits++;  /* tells a budget stop from a real shortage */
      return NULL;
    }
  }
  void *p = ag_lmem_realloc(ptr, osize, nsize);
  if (p == NULL) return NULL;
  a->used = a->used - osize + nsize;
  if (a->used > a->peak) a->peak = a->used;
  return p;
}

/* One state per process: its allocator state is static, so nothing of it
** is left to free when a script ends the process with os.exit. */
static ag_alloc the_alloc;

lua_State *ag_host_new (void) {
  ag_alloc *a = &the_alloc;
  memset(a, 0, sizeof *a);
  const char *fail = getenv("AEGIS_ALLOC_FAIL_AFTER");
  char *end = NULL;
  a->fail_after = -1;
  if (fail != NULL && *fail != '\0') {  /* a test knob: ignore anything but a count */
    long n = strtol(fail, &end, 10);
    if (*end == '\0' && n >= 0) a->fail_after = n;
  }
  lua_State *L = lua_newstate(l_alloc, a);
  if (L == NULL) return NULL;
  lua_setwarnf(L, NULL, NULL);
  return L;
}

ag_alloc *ag_host_alloc (lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return (ag_alloc *)ud;
}

void ag_host_close (lua_State *L) {
  if (L != NULL) lua_close(L);
}

/* }====================================================== */


/*
** {======================================================
** Embedded Lua
** =======================================================
*/

static size_t nembedded (void) {
  static size_t n = (size_t)-1;
  if (n == (size_t)-1)
    for (n = 0; ag_embedded_files[n].path != NULL; n++) ;
  return n;
}

const ag_embedded *ag_host_embedded (const char *path) {
  size_t lo = 0, hi = nembedded();
  while (lo < hi) {  /* the generator sorts by path (strcmp order) */
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(path, ag_embedded_files[mid].path);
    if (c == 0) return &ag_embedded_files[mid];
    if (c < 0) hi = mid; else lo = mid + 1;
  }
  return NULL;
}

/*
** Searcher for "aegis" and "aegis.*" (package.searchers[2], after the
** preload table that holds the C modules).  Tries `<name>.lua` then
** `<name>/init.lua`, on disk under $AEGIS_LUA_DIR when that is set (as
** source), else in the binary under "lua/" (as bytecode).  Chunk names
** are real paths, so tracebacks read "lua/aegis/cli/init.lua:12:".
*/
static int searcher_aegis (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (strcmp(name, "aegis") != 0 && strncmp(name, "aegis.", 6) != 0)
    return 0;
  const char *dir = getenv("AEGIS_LUA_DIR");
  const char *base = luaL_gsub(L, name, ".", "/");  /* [name, base] */
  static const char *const forms[] = {"%s/%s.lua", "%s/%s/init.lua"};
  for (int i = 0; i < 2; i++) {
    const char *path = lua_pushfstring(L, forms[i],
                                       dir != NULL && *dir ? dir : "lua", base);
    int status;
    if (dir != NULL && *dir) {
      status = luaL_loadfilex(L, path, "t");
      if (status == LUA_ERRFILE) { lua_pop(L, 2); continue; }
    }
    else {
      const ag_embedded *e = ag_host_embedded(path);
      if (e == NULL) { lua_pop(L, 1); continue; }
      /* bytecode made at build time by tools/embed.lua; it carries its
      ** own chunk name, "@lua/aegis/..." */
      status = luaL_loadbufferx(L, e->data, e->len, path, "b");
    }
    if (status == LUA_ERRMEM)  /* as it is: a handler can tell it apart */
      return lua_error(L);
    if (status != LUA_OK)
      return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                        name, path, lua_tostring(L, -1));
    lua_insert(L, -2);  /* [name, base, loader, path] */
    return 2;
  }
  lua_pushfstring(L, "no embedded module '%s'", name);
  return 1;
}

/* }====================================================== */


void ag_host_setup (lua_State *L, int argc, char **argv) {
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);  /* [preload] */
  for (const ag_module *m = ag_modules; m->name != NULL; m++) {
    lua_pushcfunction(L, m->open);
    lua_setfield(L, -2, m->name);
  }
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  lua_pop(L, 1);
  /* package.searchers: insert ours at position 2 */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");  /* [package, searchers] */
  for (lua_Integer i = (lua_Integer)luaL_len(L, -1); i >= 2; i--) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcfunction(L, searcher_aegis);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
  /* the global `arg`, as lua.c builds it: arg[0] is the program */
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");
}
