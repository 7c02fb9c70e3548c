/*
** main.c: aegis-run's entry point.  Everything past building the state is
** Lua (lua/aegis/cli/init.lua), entered once, under agL_pcall.
*/
#include <stdio.h>
#include <stdlib.h>

#include <lua.h>
#include <lauxlib.h>

#include "host.h"
#include "lauxag.h"

typedef struct { int argc; char **argv; int code; } args;

/* Runs protected: sets up the state and calls require('aegis.cli').main. */
static int pmain (lua_State *L) {
  args *a = (args *)lua_touserdata(L, 1);
  ag_host_setup(L, a->argc, a->argv);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "aegis.cli");
  lua_call(L, 1, 1);              /* [cli] */
  lua_getfield(L, -1, "main");    /* [cli, main] */
  lua_getglobal(L, "arg");        /* [cli, main, arg] */
  lua_call(L, 1, 1);              /* [cli, code] */
  a->code = (int)luaL_optinteger(L, -1, 0);
  return 0;
}

int main (int argc, char **argv) {
  args a = {argc, argv, 1};
  lua_State *L = ag_host_new();
  if (L == NULL) {
    fputs("aegis-run: not enough memory\n", stderr);  /* the state itself */
    return 1;
  }
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &a);
  if (agL_pcall(L, 1, 0) != LUA_OK) {
    /* cli.main handles its own errors; this is the last resort */
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "aegis-run: %s\n", msg ? msg : "(no message)");
    fflush(stderr);
    a.code = 1;
  }
  ag_host_close(L);
  return a.code;
}
