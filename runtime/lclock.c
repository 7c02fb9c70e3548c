/*
** lclock.c: aegis.core.clock, the raw clocks.  The documented API is
** lua/aegis/clock.lua.  (Journaled, replayable time is built on top of
** these elsewhere; this file only reads the system.)
*/
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "lauxag.h"

static struct timespec gettime (clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return ts;
}

/* monotonic() -> seconds (float) on CLOCK_MONOTONIC */
static int clock_monotonic (lua_State *L) {
  struct timespec ts = gettime(CLOCK_MONOTONIC);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

/* monotonic_ns() -> integer nanoseconds on CLOCK_MONOTONIC */
static int clock_monotonic_ns (lua_State *L) {
  struct timespec ts = gettime(CLOCK_MONOTONIC);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000000000 + ts.tv_nsec);
  return 1;
}

/* now() -> seconds since the epoch (float) on CLOCK_REALTIME */
static int clock_now (lua_State *L) {
  struct timespec ts = gettime(CLOCK_REALTIME);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"monotonic", clock_monotonic},
  {"monotonic_ns", clock_monotonic_ns},
  {"now", clock_now},
  {NULL, NULL}
};

AGLIB_API int luaopen_aegis_core_clock(lua_State *L);
AGLIB_API int luaopen_aegis_core_clock (lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
