/*
** host.h: the lua_State that aegis-run runs in.
*/
#ifndef AG_HOST_H
#define AG_HOST_H

#include <stddef.h>
#include <lua.h>

/*
** The allocator's state, reachable from any binding via lua_getallocf.
** `limit` caps `used` while sandboxed code runs (0: no cap).  `fail_after`
** (AEGIS_ALLOC_FAIL_AFTER=n, read when the state is created) lets the first
** n allocations that grow memory succeed and fails every one after them,
** as ltests.c's countlimit does, to drive out-of-memory paths in tests: n
** = 0 fails the state's very first allocation.  Frees always succeed.
*/
typedef struct ag_alloc {
  size_t used;
  size_t peak;
  size_t limit;
  size_t limit_hits; /* growths refused because of `limit`, ever */
  long fail_after;   /* growths left before all fail; < 0: never */
} ag_alloc;

/* A C module compiled in: "aegis.core.hash" -> luaopen_aegis_core_hash. */
typedef struct ag_module { const char *name; lua_CFunction open; } ag_module;

/* A Lua or data file compiled in, keyed by its path in the repository. */
typedef struct ag_embedded {
  const char *path;
  const char *data;
  size_t len;
} ag_embedded;

extern const ag_module ag_modules[];      /* build/gen/modules.c; NULL-ended */
extern const ag_embedded ag_embedded_files[];  /* build/gen/embed.c; sorted */

/* Creates the state with aegis's allocator.  NULL when out of memory. */
lua_State *ag_host_new(void);

/* Closes the state.  NULL is a no-op. */
void ag_host_close(lua_State *L);

/* Opens the standard libraries, preloads every aegis module and installs
** the searcher for embedded Lua.  Raises on failure. */
void ag_host_setup(lua_State *L, int argc, char **argv);

/* The allocator state of L. Borrowed; valid while L is open. */
ag_alloc *ag_host_alloc(lua_State *L);

/* The embedded file at `path`, or NULL. Borrowed; static. */
const ag_embedded *ag_host_embedded(const char *path);

#endif
