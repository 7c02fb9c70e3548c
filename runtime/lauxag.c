/*
** lauxag.c: helpers shared by the Lua bindings.
*/
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "lauxag.h"

/*
** vsnprintf, not lua_pushvfstring: the prototype promises printf formats
** (and the compiler checks them as such), while lua_pushfstring knows only
** a few and raises on the others ("%zu", "%ld", "%.*s", widths), which
** would turn a failure report into an unrelated error.  Two passes, with
** no va_list open while the buffer allocation may raise.
*/
int agL_pushfail (lua_State *L, int status, const char *fmt, ...) {
  va_list ap;
  luaL_Buffer b;
  luaL_pushfail(L);
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;  /* an encoding error: an empty message beats none */
  char *p = luaL_buffinitsize(L, &b, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  luaL_pushresultsize(&b, (size_t)n);
  lua_pushstring(L, ag_errcode(status));
  return 3;
}

void agL_newclass (lua_State *L, const char *tname,
                   const luaL_Reg *meth, const luaL_Reg *metameth) {
  luaL_newmetatable(L, tname);  /* [mt] (sets __name) */
  luaL_setfuncs(L, metameth, 0);
  lua_newtable(L);              /* [mt, methods] */
  luaL_setfuncs(L, meth, 0);
  lua_setfield(L, -2, "__index");  /* mt.__index = methods */
  lua_pop(L, 1);
}

/* The message is kept whole (luaL_traceback would end it at a NUL byte):
** message, newline, then the traceback alone, joined. */
int agL_traceback (lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) {
    lua_pushvalue(L, 1);
    lua_tostring(L, -1);
  }
  else if (!(luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
           && !(lua_type(L, 1) == LUA_TTABLE && lua_getfield(L, 1, "msg") == LUA_TSTRING)) {
    /* not a string: tried __tostring, then a msg field */
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  lua_pushliteral(L, "\n");
  luaL_traceback(L, L, NULL, 1);
  lua_concat(L, 3);
  return 1;
}

int agL_pcall (lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;  /* function index */
  int status;
  lua_pushcfunction(L, agL_traceback);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return status;
}

double agL_monotonic (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
