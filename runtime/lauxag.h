/*
** lauxag.h: helpers shared by the Lua bindings (the lauxlib of aegis).
*/
#ifndef LAUXAG_H
#define LAUXAG_H

#include <lua.h>
#include <lauxlib.h>

#include "ag_err.h"

/* Symbols every binding exports: luaopen_aegis_core_<name>.  The build
** collects them from runtime/l*.c into the preload table (build/gen). */
#define AGLIB_API __attribute__((visibility("default")))

/*
** Pushes the failure triple `nil, msg, code` and returns 3, so a binding
** can `return agL_pushfail(L, rc, "store: open '%s': %s", url, err);`.
** `code` is ag_errcode(status).  `fmt` is a C printf format (vsnprintf),
** not a lua_pushfstring one.  Modelled on luaL_fileresult.
*/
int agL_pushfail(lua_State *L, int status, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 3, 4)))
#endif
  ;

/*
** Creates metatable `tname` with `metameth` (whose "__index" entry must be
** a NULL placeholder) and a method table `meth` as its __index; also sets
** __name for error messages.  Leaves the stack as it found it.
*/
void agL_newclass(lua_State *L, const char *tname,
                  const luaL_Reg *meth, const luaL_Reg *metameth);

/*
** Message handler for lua_pcall: turns the error into a string (honouring
** __tostring; tables with a `msg` field give that) and appends a traceback.
** Error objects with __tostring are kept as they are, unless `tb` says so.
*/
int agL_traceback(lua_State *L);

/* lua_pcall with agL_traceback as the handler.  The only way into Lua. */
int agL_pcall(lua_State *L, int nargs, int nresults);

/* Seconds on the monotonic clock, as a double. */
double agL_monotonic(void);

#endif
