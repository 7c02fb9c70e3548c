/*
** luuid.c: aegis.core.uuid, random (version 4) and time-ordered (version
** 6, RFC 9562 section 5.6) UUIDs.  The documented API is
** lua/aegis/uuid.lua.
*/
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "lauxag.h"

/* 100 ns intervals from 1582-10-15 (the Gregorian epoch) to 1970-01-01. */
#define GREGORIAN_OFFSET 0x01B21DD213814000ULL
#define TS_LIMIT (1ULL << 60)  /* the timestamp field is 60 bits */

/* Last v6 timestamp handed out, for monotonic ids within the process. */
static _Atomic uint64_t last_ts;

static void randbytes (lua_State *L, unsigned char *p, int n) {
  if (RAND_bytes(p, n) != 1) luaL_error(L, "uuid: random generator failed");
}

static void pushuuid (lua_State *L, const unsigned char b[16]) {
  static const char hex[] = "0123456789abcdef";
  char s[36];
  int j = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s[j++] = '-';
    s[j++] = hex[b[i] >> 4];
    s[j++] = hex[b[i] & 0xf];
  }
  lua_pushlstring(L, s, sizeof s);
}

/* v4() -> string */
static int uuid_v4 (lua_State *L) {
  unsigned char b[16];
  randbytes(L, b, 16);
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);  /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);  /* variant 10 */
  pushuuid(L, b);
  return 1;
}

/*
** Now in 100 ns ticks since 1582, made strictly greater than every value
** handed out before (two calls within one tick still sort in order), the
** way LangGraph's uuid6 does it.  Atomic in case threads ever share it.
*/
static uint64_t next_ts (void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 10000000u + (uint64_t)ts.tv_nsec / 100u
                 + GREGORIAN_OFFSET;
  uint64_t last = atomic_load(&last_ts), next;
  do {
    next = now > last ? now : last + 1;
  } while (!atomic_compare_exchange_weak(&last_ts, &last, next));
  return next;
}

/* v6([seconds]) -> string; given seconds since the epoch, that time is
** used as is and the monotonic state is neither read nor changed. */
static int uuid_v6 (lua_State *L) {
  uint64_t t;
  unsigned char b[16];
  if (lua_isnoneornil(L, 1)) t = next_ts();
  else {
    /* In integers where it matters: ticks since 1582 pass 2^53 in 1610,
    ** so a double would drop the low bits of a current timestamp. */
    lua_Number secs = luaL_checknumber(L, 1);
    luaL_argcheck(L, secs >= -(lua_Number)(GREGORIAN_OFFSET / 10000000) &&
                     secs < (lua_Number)((TS_LIMIT - GREGORIAN_OFFSET) / 10000000), 1,
                  "time out of the UUID range (1582..5236)");
    lua_Number whole = floor(secs);
    int64_t frac = (int64_t)llround((secs - whole) * 1e7);  /* 0..1e7 */
    t = (uint64_t)((int64_t)whole * 10000000 + frac + (int64_t)GREGORIAN_OFFSET);
  }
  randbytes(L, b + 8, 8);  /* clock sequence and node: random */
  b[0] = (unsigned char)(t >> 52);
  b[1] = (unsigned char)(t >> 44);
  b[2] = (unsigned char)(t >> 36);
  b[3] = (unsigned char)(t >> 28);
  b[4] = (unsigned char)(t >> 20);
  b[5] = (unsigned char)(t >> 12);
  b[6] = (unsigned char)(0x60 | ((t >> 8) & 0x0f));  /* version 6 */
  b[7] = (unsigned char)t;
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);  /* variant 10 */
  pushuuid(L, b);
  return 1;
}

static int hexval (char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = (char)(c | 0x20);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Parses "8-4-4-4-12" hex into b; 0 when s is not a UUID. */
static int parse (const char *s, size_t n, unsigned char b[16]) {
  if (n != 36) return 0;
  for (int i = 0, j = 0; i < 16; i++) {
    if (j == 8 || j == 13 || j == 18 || j == 23) {
      if (s[j++] != '-') return 0;
    }
    int hi = hexval(s[j++]), lo = hexval(s[j++]);
    if (hi < 0 || lo < 0) return 0;
    b[i] = (unsigned char)(hi << 4 | lo);
  }
  return 1;
}

/* time(id) -> seconds since the epoch, of a version 6 UUID */
static int uuid_time (lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned char b[16] = {0};
  luaL_argcheck(L, parse(s, n, b) && (b[6] >> 4) == 6, 1, "not a version 6 UUID");
  uint64_t t = 0;
  for (int i = 0; i < 6; i++) t = t << 8 | b[i];
  t = t << 12 | (uint64_t)(b[6] & 0x0f) << 8 | b[7];
  int64_t d = (int64_t)t - (int64_t)GREGORIAN_OFFSET;  /* ticks since 1970 */
  int64_t whole = d / 10000000, frac = d % 10000000;
  if (frac < 0) whole--, frac += 10000000;  /* floor division */
  lua_pushnumber(L, (lua_Number)whole + (lua_Number)frac / 1e7);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"time", uuid_time},
  {"v4", uuid_v4},
  {"v6", uuid_v6},
  {NULL, NULL}
};

AGLIB_API int luaopen_aegis_core_uuid(lua_State *L);
AGLIB_API int luaopen_aegis_core_uuid (lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
