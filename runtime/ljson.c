/*
** ljson.c: aegis.core.json, the JSON encoder (RFC 8785 canonical form,
** optionally indented), a one-pass decoder for strict JSON, and the two
** passes around lua-cjson's decoder that json.lua falls back on for the
** rest (and for its error messages).  The documented API is
** lua/aegis/json.lua.
**
** Lua <-> JSON conventions (docs/core.md):
**   - a NULL light userdata (cjson.null) is null;
**   - a table whose keys are exactly 1..n (n >= 1), or any table carrying
**     the shared array metatable, is an array; any other table of string
**     keys is an object (an empty unmarked table is {});
**   - Lua integers are written exactly; floats as ECMAScript writes them.
*/
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ag_jsonnum.h"
#include "lauxag.h"

#define JSON_ENCODER "aegis.json.Encoder"  /* private scratch userdata */
#define MAXDEPTH 1000                     /* same as cjson's decoder */
#define MAXINDENT 16
#define ARRAYMT lua_upvalueindex(1)       /* every function's upvalue */
#define CACHE lua_upvalueindex(2)         /* the cached encoder state */
#define KEEPBUF 65536  /* the cached state keeps an output buffer this big */

/*
** Decoder sentinel: the one string the pre-pass writes in place of each
** empty array (see json_prepare).  It holds bytes 0xFF, which never occur
** in valid UTF-8; the pre-pass refuses input that is not valid UTF-8 and
** cjson's \u escapes only produce valid UTF-8, so no decoded string from
** the input can equal it.
*/
#define SENTINEL "\xff" "aegis.json:empty-array" "\xff"
#define SENTINEL_LEN (sizeof(SENTINEL) - 1)


/*
** {======================================================
** UTF-8
** =======================================================
*/

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none:
** no overlongs, no surrogates, nothing above U+10FFFF. */
static inline size_t utf8seq (const unsigned char *s, size_t n) {
  unsigned c = s[0];
  unsigned lo = 0x80, hi = 0xbf;
  size_t len;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) len = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;
    else if (c == 0xed) hi = 0x9f;
  }
  else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;
    else if (c == 0xf4) hi = 0x8f;
  }
  else return 0;
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xbf) return 0;
  return len;
}

static int validutf8 (const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, len;
  while (i < n) {
    while (i + 8 <= n) {  /* ASCII 8 bytes at a time */
      uint64_t v;
      memcpy(&v, s + i, 8);
      if (v & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    if (s[i] < 0x80) { i++; continue; }
    if ((len = utf8seq(s + i, n - i)) == 0) return 0;
    i += len;
  }
  return 1;
}

/* The high bit of each byte of v (8 bytes of text, little endian) that
** is below 0x20, '"', '\\' or >= 0x80.  Past the lowest such byte the
** bits may be false alarms (borrows); the lowest one is exact. */
static uint64_t special8 (uint64_t v) {
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
  uint64_t ctl = (v - ones * 0x20) & ~v;
  uint64_t quo = (q - ones) & ~q;
  uint64_t bsl = (b - ones) & ~b;
  return (ctl | quo | bsl | v) & high;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FIRSTBYTE(m) ((size_t)__builtin_ctzll(m) >> 3)  /* of a special8 mask */
#endif

/* plain[c]: whether JSON strings take byte c as it is (ASCII, >= 0x20,
** not '"' or '\\'). */
static const unsigned char plain[256] = {
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x00 */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x10 */
  1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x20 */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x30 */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x40 */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,  /* 0x50 */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x60 */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x70 */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x80 */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x90 */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0xa0 */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0xb0 */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0xc0 */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0xd0 */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0xe0 */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0xf0 */
};

/* Length of the run of plain bytes at s (n bytes). */
static size_t plainrun (const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i + 8 <= n) {
    uint64_t v, m;
    memcpy(&v, s + i, 8);
    if ((m = special8(v)) != 0) {
#ifdef FIRSTBYTE
      return i + FIRSTBYTE(m);
#else
      break;
#endif
    }
    i += 8;
  }
  if (i + 8 > n && i < n && n >= 8) {  /* the last 8, overlapping checked ones */
    uint64_t v;
    memcpy(&v, s + n - 8, 8);
    if (!special8(v)) return n;
  }
  while (i < n && plain[s[i]]) i++;
  return i;
}

/* An object key; `v` is the stack index of its value, 0 when the value
** was not kept (no stack room) and is looked up again; `plain`: all its
** bytes are plain (so it is written as it is). */
typedef struct Key { const char *s; size_t n; int v; int plain; } Key;

/*
** Order of valid UTF-8 keys by UTF-16 code units.  Byte order is code
** point order, and the strings agree up to their first differing byte,
** so that byte starts a character in both or continues one whose lead
** bytes are equal.  The orders differ only there, between a lead byte
** 0xee/0xef (U+E000..U+FFFF) and one of 0xf0..0xf4 (above U+FFFF).
*/
static int keycmp (const Key *ka, const Key *kb) {
  size_t n = ka->n < kb->n ? ka->n : kb->n, i = 0;
  const unsigned char *a = (const unsigned char *)ka->s, *b = (const unsigned char *)kb->s;
  while (i < n && a[i] == b[i]) i++;  /* keys are short: no memcmp call */
  if (i == n) return (ka->n > n) - (kb->n > n);  /* a prefix sorts first */
  if (a[i] >= 0xee && b[i] >= 0xee && (a[i] >= 0xf0) != (b[i] >= 0xf0))
    return a[i] >= 0xf0 ? -1 : 1;
  return a[i] < b[i] ? -1 : 1;
}

static int keycmp_q (const void *a, const void *b) {
  return keycmp((const Key *)a, (const Key *)b);
}

/* Sorts keys (all distinct): insertion sort for the usual few. */
static void sortkeys (Key *k, size_t n) {
  if (n > 24) {
    qsort(k, n, sizeof(Key), keycmp_q);
    return;
  }
  for (size_t i = 1; i < n; i++) {
    Key x = k[i];
    size_t j = i;
    for (; j > 0 && keycmp(&k[j - 1], &x) > 0; j--) k[j] = k[j - 1];
    k[j] = x;
  }
}

/* }====================================================== */


/*
** {======================================================
** Encoder
** =======================================================
*/

/* One step of the path from the root: an object key or a Lua index. */
typedef struct Seg { const char *key; size_t klen; lua_Integer idx; } Seg;

/*
** Encoder state, a userdata so that everything it holds is freed by
** __gc if encoding raises.  Memory comes from the state's allocator (so
** the host's limit applies).  `seen` and `path` have one entry per open
** table; `keys` is a stack of the sorted keys of every open object.
*/
typedef struct Enc {
  lua_Alloc alloc;
  void *ud;
  char *buf;            /* output */
  size_t len, cap;
  Key *keys;
  size_t nkeys, capkeys;
  const void **seen;    /* open tables, outermost first (cycle check) */
  Seg *path;            /* path[i]: step from open table i to its child */
  size_t capseen, cappath;
  int depth;
  int indent;
  int level;            /* levels the value sits at in an enclosing document */
  int busy;             /* the cached state, in use (see json_encode) */
} Enc;

static void *grow (lua_State *L, Enc *E, void *p, size_t *cap, size_t need,
                   size_t elem) {
  size_t ncap = *cap ? *cap : 16;
  while (ncap < need) ncap *= 2;
  void *np = E->alloc(E->ud, p, *cap * elem, ncap * elem);
  if (np == NULL) {
    E->busy = 0;
    luaL_error(L, "json: not enough memory");
  }
  *cap = ncap;
  return np;
}

static void release (Enc *E) {
  if (E->buf) E->alloc(E->ud, E->buf, E->cap, 0);
  if (E->keys) E->alloc(E->ud, E->keys, E->capkeys * sizeof(Key), 0);
  if (E->seen) E->alloc(E->ud, E->seen, E->capseen * sizeof(void *), 0);
  if (E->path) E->alloc(E->ud, E->path, E->cappath * sizeof(Seg), 0);
  E->buf = NULL, E->keys = NULL, E->seen = NULL, E->path = NULL;
  E->cap = E->capkeys = E->capseen = E->cappath = 0;
}

static int enc_gc (lua_State *L) {
  release((Enc *)luaL_checkudata(L, 1, JSON_ENCODER));
  return 0;
}

/* Pushes a new encoder state (a box that frees its buffers on __gc). */
static Enc *newenc (lua_State *L, int indent) {
  Enc *E = (Enc *)lua_newuserdatauv(L, sizeof *E, 0);
  memset(E, 0, sizeof *E);
  E->alloc = lua_getallocf(L, &E->ud);
  E->indent = indent;
  luaL_setmetatable(L, JSON_ENCODER);
  return E;
}

/* Room for n more bytes of output. */
static inline void reserve (lua_State *L, Enc *E, size_t n) {
  if (E->cap - E->len < n)
    E->buf = grow(L, E, E->buf, &E->cap, E->len + n, 1);
}

static inline void put (lua_State *L, Enc *E, const char *s, size_t n) {
  if (n == 0) return;  /* E->buf may still be NULL */
  reserve(L, E, n);
  memcpy(E->buf + E->len, s, n);
  E->len += n;
}

#define putlit(L, E, s) put(L, E, "" s, sizeof(s) - 1)

static inline void putc_ (lua_State *L, Enc *E, char c) {
  if (E->len == E->cap) E->buf = grow(L, E, E->buf, &E->cap, E->len + 1, 1);
  E->buf[E->len++] = c;
}

/*
** Writes s as a JSON string with RFC 8785's minimal escaping.  Returns 0
** when s is not valid UTF-8, unless `lenient` (error messages), which
** writes each offending byte as \xNN instead.
*/
static int putstring (lua_State *L, Enc *E, const char *str, size_t n,
                      int lenient) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, run = 0;  /* s[run..i) is pending literal text */
  reserve(L, E, n + 2);   /* enough unless something is escaped */
  E->buf[E->len++] = '"';
  for (;;) {
    i += plainrun(s + i, n - i);
    if (i >= n) break;
    unsigned c = s[i];
    if (c >= 0x80) {  /* a run of non-ASCII characters */
      size_t len;
      while ((len = utf8seq(s + i, n - i)) > 0 && (i += len) < n && s[i] >= 0x80) {}
      if (len > 0) continue;
      if (!lenient) return 0;
      c = s[i];
    }
    put(L, E, (const char *)s + run, i - run);
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t elen = 2;
    switch (c) {
      case '"': esc[1] = '"'; break;
      case '\\': esc[1] = '\\'; break;
      case '\b': esc[1] = 'b'; break;
      case '\t': esc[1] = 't'; break;
      case '\n': esc[1] = 'n'; break;
      case '\f': esc[1] = 'f'; break;
      case '\r': esc[1] = 'r'; break;
      default:
        if (c < 0x20) {
          memcpy(esc, "\\u00", 4);
          esc[4] = hex[c >> 4], esc[5] = hex[c & 0xf];
          elen = 6;
        }
        else {  /* lenient: a byte that is not UTF-8 */
          esc[1] = 'x', esc[2] = hex[c >> 4], esc[3] = hex[c & 0xf];
          elen = 4;
        }
    }
    put(L, E, esc, elen);
    run = ++i;
  }
  put(L, E, (const char *)s + run, i - run);
  putc_(L, E, '"');
  return 1;
}

static int isalpha_ (char c) {
  return c == '_' || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* Keys that read as Lua/JS identifiers print as ".key" in paths. */
static int isident (const char *s, size_t n) {
  if (n == 0 || !isalpha_(s[0])) return 0;
  for (size_t i = 1; i < n; i++)
    if (!isalpha_(s[i]) && !(s[i] >= '0' && s[i] <= '9')) return 0;
  return 1;
}

static void putseg (lua_State *L, Enc *E, const Seg *g) {
  if (g->key == NULL) {
    char b[32];
    put(L, E, b, (size_t)snprintf(b, sizeof b, "[" LUA_INTEGER_FMT "]", g->idx));
  }
  else if (isident(g->key, g->klen)) {
    putc_(L, E, '.');
    put(L, E, g->key, g->klen);
  }
  else {
    putc_(L, E, '[');
    putstring(L, E, g->key, g->klen, 1);
    putc_(L, E, ']');
  }
}

/*
** Raises "json: <what> at <path>".  The path names Lua indices (1-based),
** so "$.a[2]" is t.a[2]; past 16 steps its middle is elided.  Reuses the
** output buffer: the encoding is abandoned anyway.
*/
static int encerror (lua_State *L, Enc *E, const char *fmt, ...) {
  char what[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  E->len = 0;
  putlit(L, E, "json: ");
  put(L, E, what, strlen(what));
  putlit(L, E, " at $");
  for (int i = 0; i < E->depth; i++) {
    if (E->depth > 16 && i == 8) {
      putlit(L, E, "...");
      i = E->depth - 8;
    }
    putseg(L, E, &E->path[i]);
  }
  E->busy = 0;  /* as in json_encode: the copy is made before any finalizer */
  lua_pushlstring(L, E->buf, E->len);
  return lua_error(L);
}

static void newline (lua_State *L, Enc *E, int depth) {
  if (E->indent == 0) return;
  size_t n = (size_t)(depth + E->level) * (size_t)E->indent;
  reserve(L, E, n + 1);
  E->buf[E->len++] = '\n';
  memset(E->buf + E->len, ' ', n);
  E->len += n;
}

static void encode (lua_State *L, Enc *E, int idx);

/*
** Opens table `idx` as a level, after the depth and cycle checks (a table
** met twice side by side is fine; one inside itself is not).
*/
static void enter (lua_State *L, Enc *E, int idx) {
  const void *p = lua_topointer(L, idx);
  if (E->depth >= MAXDEPTH)
    encerror(L, E, "nesting deeper than %d levels", MAXDEPTH);
  for (int i = 0; i < E->depth; i++)
    if (E->seen[i] == p) encerror(L, E, "cannot encode a cycle");
  if ((size_t)E->depth == E->capseen)
    E->seen = grow(L, E, E->seen, &E->capseen, E->capseen + 1, sizeof(void *));
  if ((size_t)E->depth == E->cappath)
    E->path = grow(L, E, E->path, &E->cappath, E->cappath + 1, sizeof(Seg));
  E->seen[E->depth++] = p;
}

static void encode_array (lua_State *L, Enc *E, int t, lua_Integer n) {
  if (n == 0) { putlit(L, E, "[]"); return; }
  putc_(L, E, '[');
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1) putc_(L, E, ',');
    newline(L, E, E->depth);
    Seg *g = &E->path[E->depth - 1];
    g->key = NULL, g->idx = i;
    lua_rawgeti(L, t, i);
    encode(L, E, lua_gettop(L));
    lua_pop(L, 1);
  }
  newline(L, E, E->depth - 1);
  putc_(L, E, ']');
}

/* The object's keys were pushed on E->keys from `base`; sorts them. */
static void encode_object (lua_State *L, Enc *E, int t, size_t base) {
  size_t n = E->nkeys - base;
  if (n == 0) { putlit(L, E, "{}"); return; }
  sortkeys(E->keys + base, n);
  putc_(L, E, '{');
  for (size_t i = 0; i < n; i++) {
    Key k = E->keys[base + i];  /* a copy: E->keys may move */
    Seg *g = &E->path[E->depth - 1];
    if (i > 0) putc_(L, E, ',');
    newline(L, E, E->depth);
    g->key = k.s, g->klen = k.n;
    if (k.plain) {
      reserve(L, E, k.n + 2);
      E->buf[E->len++] = '"';
      memcpy(E->buf + E->len, k.s, k.n);
      E->len += k.n;
      E->buf[E->len++] = '"';
    }
    else putstring(L, E, k.s, k.n, 0);  /* validated when collected */
    if (E->indent) putlit(L, E, ": ");
    else putc_(L, E, ':');
    if (k.v != 0) encode(L, E, k.v);
    else {
      lua_pushlstring(L, k.s, k.n);
      lua_rawget(L, t);  /* [.., value] */
      encode(L, E, lua_gettop(L));
      lua_pop(L, 1);
    }
  }
  newline(L, E, E->depth - 1);
  putc_(L, E, '}');
}

/*
** Sorts out what table `t` is from its keys (raw access: no metamethod
** runs, so no Lua code can change the table while it is written).
** String keys are collected on E->keys, and while there is stack room
** each with its value left on the stack (key, value, key, value, ...;
** the strings stay alive there and as keys of `t`); the stack is back
** to its height on return.
*/
static void encode_table (lua_State *L, Enc *E, int t) {
  lua_Integer nint = 0, minint = LUA_MAXINTEGER, maxint = 0;
  size_t base = E->nkeys;
  int marked = 0, keep = 1, top = lua_gettop(L);
  if (!lua_checkstack(L, 4)) {
    E->busy = 0;
    luaL_checkstack(L, 4, "json: nesting too deep");  /* raises */
  }
  if (lua_getmetatable(L, t)) {  /* [.., mt] */
    marked = lua_rawequal(L, -1, ARRAYMT);
    lua_pop(L, 1);
  }
  int sp = top + 1;  /* the key lua_next takes */
  lua_pushnil(L);
  while (lua_next(L, t)) {  /* [.., key, value] */
    int kt = lua_type(L, -2);
    if (kt == LUA_TSTRING) {
      Key k;
      k.s = lua_tolstring(L, -2, &k.n);
      if (E->nkeys == E->capkeys)
        E->keys = grow(L, E, E->keys, &E->capkeys, E->nkeys + 1, sizeof(Key));
      /* room for 16 more pairs at a time (2 slots each, 2 for lua_next) */
      if (keep && (E->nkeys - base) % 16 == 0 && !lua_checkstack(L, 40)) keep = 0;
      if (keep) {
        k.v = sp + 1;
        lua_pushvalue(L, -2);  /* [.., key, value, key] */
        sp += 2;
      }
      else {
        k.v = 0;
        lua_pop(L, 1);
      }
      E->keys[E->nkeys++] = k;
      continue;
    }
    lua_pop(L, 1);  /* [.., key] */
    if (kt == LUA_TNUMBER && lua_isinteger(L, -1)) {
      lua_Integer i = lua_tointeger(L, -1);
      nint++;
      if (i < minint) minint = i;
      if (i > maxint) maxint = i;
    }
    else
      encerror(L, E, "cannot encode a %s key",
               kt == LUA_TNUMBER ? "float" : luaL_typename(L, -1));
  }
  if (E->nkeys > base && (nint > 0 || marked))
    encerror(L, E, "cannot encode a table that mixes array and object keys");
  if (nint > 0 && (minint != 1 || maxint != nint))
    encerror(L, E, "cannot encode a sparse array (keys are not 1..n)");
  for (size_t i = base; i < E->nkeys; i++) {
    Key *k = &E->keys[i];
    k->plain = plainrun((const unsigned char *)k->s, k->n) == k->n;
    if (!k->plain && !validutf8(k->s, k->n))
      encerror(L, E, "cannot encode a key that is not valid UTF-8");
  }
  enter(L, E, t);
  if (nint > 0 || marked) encode_array(L, E, t, nint);
  else encode_object(L, E, t, base);
  E->nkeys = base;
  E->depth--;
  lua_settop(L, top);
}

/* Writes integer i in decimal. */
static void putint (lua_State *L, Enc *E, lua_Integer i) {
  char b[24], *p = b + sizeof b;
  lua_Unsigned u = i < 0 ? 0u - (lua_Unsigned)i : (lua_Unsigned)i;
  do { *--p = (char)('0' + u % 10); u /= 10; } while (u > 0);
  if (i < 0) *--p = '-';
  put(L, E, p, (size_t)(b + sizeof b - p));
}

static void encode (lua_State *L, Enc *E, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      encerror(L, E, "cannot encode nil (use json.null)");
      break;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx)) putlit(L, E, "true");
      else putlit(L, E, "false");
      break;
    case LUA_TNUMBER: {
      if (lua_isinteger(L, idx)) {
        putint(L, E, lua_tointeger(L, idx));
        break;
      }
      double x = lua_tonumber(L, idx);
      if (isnan(x)) encerror(L, E, "cannot encode NaN");
      if (isinf(x)) encerror(L, E, "cannot encode %s", x > 0 ? "Infinity" : "-Infinity");
      reserve(L, E, AG_JSONNUM_MAX);
      E->len += ag_jsonnum_format(x, E->buf + E->len);
      break;
    }
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (!putstring(L, E, s, n, 0))
        encerror(L, E, "cannot encode a string that is not valid UTF-8");
      break;
    }
    case LUA_TTABLE:
      encode_table(L, E, idx);
      break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) {
        putlit(L, E, "null");
        break;
      }
      /* FALLTHROUGH */
    default:
      encerror(L, E, "cannot encode a %s", luaL_typename(L, idx));
  }
}

/* encode(v [, indent [, level]]) -> string
** level: the depth v sits at in an enclosing document indented so; its
** lines after the first are indented for it (the first is where the
** document puts it) */
static int json_encode (lua_State *L) {
  lua_Integer indent = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, indent >= 0 && indent <= MAXINDENT, 2,
                "indent must be in 0..16");
  lua_Integer level = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, level >= 0 && level <= MAXDEPTH, 3, "level must be in 0..1000");
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  /* The state cached in the closure keeps its buffers from call to call.
  ** A finalizer that runs during encoding may encode too: it finds the
  ** cache busy and takes a state of its own.  Errors raised here clear
  ** `busy` on the way out (one that is not, an allocation failure inside
  ** Lua, only leaves the cache unused from then on). */
  Enc *E = (Enc *)lua_touserdata(L, CACHE);
  int cached = !E->busy;
  if (cached) {
    E->busy = 1;
    E->len = E->nkeys = 0;
    E->depth = 0;
    E->indent = (int)indent;
  }
  else E = newenc(L, (int)indent);  /* [v, box] */
  E->level = (int)level;
  encode(L, E, 1);
  /* Not busy before the copy: a finalizer can run only once the copy is
  ** made (at the GC step that ends lua_pushlstring). */
  E->busy = 0;
  lua_pushlstring(L, E->buf ? E->buf : "", E->len);  /* [v, (box,) json] */
  if (!cached || E->cap > KEEPBUF || E->capkeys > 4096 || E->capseen > 256)
    release(E);  /* now rather than at the next collection */
  return 1;
}

/* canonical(v) -> string: the RFC 8785 form */
static int json_canonical (lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  return json_encode(L);
}

/* }====================================================== */


/*
** {======================================================
** Decoding: the passes before and after cjson.decode
** =======================================================
**
** cjson decodes `[]` and `{}` to the same empty table, so an empty array
** would come back as an object.  json_prepare rewrites every empty array
** outside strings, `[` whitespace `]`, to `["<SENTINEL>"]` (same nesting,
** so cjson's depth limit is unchanged), and json_finish turns each
** one-element array holding exactly SENTINEL back into an empty marked
** array.  SENTINEL cannot come from the input (see its definition).
*/

static int isspace_json (unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The `]` closing an empty array opened at s[i] == '[', or 0. */
static size_t emptyarray (const unsigned char *s, size_t n, size_t i) {
  size_t j = i + 1;
  while (j < n && isspace_json(s[j])) j++;
  return (j < n && s[j] == ']') ? j : 0;
}

/* nil, "json: <what> at character <i + 1>", "parse" */
static int prepfail (lua_State *L, const char *what, size_t i) {
  return agL_pushfail(L, AG_EPARSE, "json: %s at character %zu", what, i + 1);
}

/*
** prepare(s) -> text | nil, msg, 'parse'.  Refuses NUL bytes (cjson reads
** up to the first one) and invalid UTF-8 (RFC 8259 text is UTF-8), and
** rewrites empty arrays.  Returns s itself when it has none.
*/
static int json_prepare (lua_State *L) {
  size_t n, nempty = 0;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  int instr = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned c = s[i];
    if (c == 0)
      return prepfail(L, "NUL byte", i);
    if (c >= 0x80) {
      size_t len = utf8seq(s + i, n - i);
      if (len == 0)
        return prepfail(L, "invalid UTF-8", i);
      i += len - 1;
    }
    else if (instr) {
      if (c == '"') instr = 0;
      else if (c == '\\' && i + 1 < n && s[i + 1] != 0 && s[i + 1] < 0x80) i++;
    }
    else if (c == '"') instr = 1;
    else if (c == '[' && emptyarray(s, n, i)) nempty++;
  }
  if (nempty == 0) {
    lua_settop(L, 1);
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  instr = 0;
  for (size_t i = 0; i < n; i++) {  /* the input is known to be valid now */
    unsigned c = s[i];
    size_t close;
    if (instr) {
      if (c == '"') instr = 0;
      else if (c == '\\' && i + 1 < n && s[i + 1] < 0x80) {
        luaL_addchar(&b, (char)c);
        c = s[++i];
      }
    }
    else if (c == '"') instr = 1;
    else if (c == '[' && (close = emptyarray(s, n, i)) != 0) {
      luaL_addstring(&b, "[\"" SENTINEL "\"]");
      i = close;
      continue;
    }
    luaL_addchar(&b, (char)c);
  }
  luaL_pushresult(&b);
  return 1;
}

static int issentinel (lua_State *L, int idx) {
  size_t len;
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING) return 0;
  s = lua_tolstring(L, idx, &len);
  return len == SENTINEL_LEN && memcmp(s, SENTINEL, len) == 0;
}

/*
** Fixes the decoded value on top of the stack, replacing it when needed:
** integral floats within +-2^53 become integers (cjson makes every number
** a float), arrays get the array metatable, sentinel arrays become empty.
** Returns 0, -1 for a number out of the double range (cjson gives inf),
** or -2 past MAXDEPTH levels: cjson's own limit already stops that for
** decoded text, but finish() takes any value, and a cyclic or very deep
** table would otherwise overflow the C stack.
*/
static int fixup (lua_State *L, int depth) {
  int t = lua_gettop(L);
  switch (lua_type(L, t)) {
    case LUA_TNUMBER: {
      if (lua_isinteger(L, t)) return 0;
      double x = lua_tonumber(L, t);
      if (!isfinite(x)) return -1;
      if (x == floor(x) && fabs(x) <= 9007199254740992.0) {
        lua_pop(L, 1);
        lua_pushinteger(L, (lua_Integer)x);
      }
      return 0;
    }
    case LUA_TTABLE:
      if (depth > MAXDEPTH) return -2;
      luaL_checkstack(L, 4, "json: nesting too deep");
      if (lua_rawgeti(L, t, 1) != LUA_TNIL) {  /* arrays: cjson gives objects string keys */
        int sentinel = issentinel(L, -1);
        lua_Integer n = (lua_Integer)lua_rawlen(L, t);
        lua_pop(L, 1);
        if (sentinel && n == 1) {
          lua_pushnil(L);
          lua_rawseti(L, t, 1);  /* the empty array */
        }
        else {
          for (lua_Integer i = 1; i <= n; i++) {
            int rc;
            lua_rawgeti(L, t, i);
            if ((rc = fixup(L, depth + 1)) != 0) return rc;
            lua_rawseti(L, t, i);
          }
        }
        lua_pushvalue(L, ARRAYMT);
        lua_setmetatable(L, t);
      }
      else {
        lua_pop(L, 1);
        lua_pushnil(L);
        while (lua_next(L, t)) {  /* [t, key, value] */
          int rc = fixup(L, depth + 1);
          if (rc != 0) return rc;
          lua_pushvalue(L, -2);  /* [t, key, value', key] */
          lua_insert(L, -2);     /* [t, key, key, value'] */
          lua_rawset(L, t);      /* changing an existing field is allowed */
        }
      }
      return 0;
    default:
      return 0;
  }
}

/* finish(v) -> v | nil, msg, 'parse' */
static int json_finish (lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  switch (fixup(L, 1)) {
    case 0: return 1;
    case -1: return agL_pushfail(L, AG_EPARSE, "json: number out of range");
    default: return agL_pushfail(L, AG_EPARSE, "json: nesting deeper than %d levels", MAXDEPTH);
  }
}

/* }====================================================== */


/*
** {======================================================
** Decoder: one pass from text to Lua values
** =======================================================
**
** json_decode reads RFC 8259 text straight into tables, giving what the
** slow path (json_prepare, cjson.decode, json_finish) gives.  It only
** takes what it is sure of: strict JSON, valid UTF-8, escapes other than
** lone surrogates (\u0000 gives a NUL byte, as in cjson), finite numbers,
** nesting up to MAXDEPTH.  On anything else it returns false and json.lua
** runs the slow path, which then gives the same value or the same error
** as ever.  So it never has to reproduce cjson's error messages, only its
** values (spec/unit/json_property_spec.lua holds the two side by side).
**
** Values of an open array or object wait on the Lua stack and go into
** their table in batches (one sized lua_createtable for most arrays and
** objects; no rehash while filling it).
*/

#define BATCH 512  /* values (arrays) or pairs (objects) held on the stack */

typedef struct Dec {
  lua_State *L;
  const unsigned char *p, *end;
  Enc *scratch;          /* its buf holds strings that have escapes */
  int slot;              /* the stack slot for scratch's box */
  int depth;
} Dec;

static void skipws (Dec *D) {
  if (D->p < D->end && *D->p > ' ') return;  /* the usual: none */
  while (D->p < D->end && (*D->p == ' ' || *D->p == '\n' || *D->p == '\r' || *D->p == '\t'))
    D->p++;
}

static int hex4 (const unsigned char *s, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = s[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') d = (c | 0x20) - 'a' + 10;
    else return 0;
    v = v << 4 | d;
  }
  *out = v;
  return 1;
}

static void scratch_put (Dec *D, const void *s, size_t n) {
  Enc *E = D->scratch;
  if (n == 0) return;  /* E->buf may still be NULL */
  if (E->cap - E->len < n) E->buf = grow(D->L, E, E->buf, &E->cap, E->len + n, 1);
  memcpy(E->buf + E->len, s, n);
  E->len += n;
}

/* A string; D->p is just past its opening quote.  Pushes it: straight
** from the text unless it has escapes, else from the scratch buffer. */
static int dec_string (Dec *D) {
  const unsigned char *s = D->p, *end = D->end, *q = s;
  size_t i;
  for (;;) {
    q += plainrun(q, (size_t)(end - q));
    if (q >= end) return 0;
    if (*q == '"') {  /* the common case: nothing to undo */
      lua_pushlstring(D->L, (const char *)s, (size_t)(q - s));
      D->p = q + 1;
      return 1;
    }
    if (*q == '\\') break;
    if (*q < 0x80) return 0;  /* a control character, NUL included */
    size_t len;  /* a run of non-ASCII characters */
    while ((len = utf8seq(q, (size_t)(end - q))) > 0 && (q += len) < end && *q >= 0x80) {}
    if (len == 0) return 0;
  }
  i = (size_t)(q - s);
  if (D->scratch == NULL) {  /* made on the first escape */
    D->scratch = newenc(D->L, 0);
    lua_replace(D->L, D->slot);
  }
  Enc *E = D->scratch;
  E->len = 0;
  for (;;) {
    scratch_put(D, s, i);
    s += i;
    if (s >= end) return 0;
    unsigned c = *s;
    if (c == '"') break;
    if (c >= 0x80) {
      size_t len = utf8seq(s, (size_t)(end - s));
      if (len == 0) return 0;
      scratch_put(D, s, len);
      s += len;
    }
    else if (c == '\\') {
      char ch;
      if (end - s < 2) return 0;
      switch (s[1]) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
          uint32_t cp, lo;
          unsigned char u[4];
          size_t ulen;
          if (end - s < 6 || !hex4(s + 2, &cp)) return 0;
          s += 6;
          if (cp >= 0xdc00 && cp <= 0xdfff) return 0;
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - s < 6 || s[0] != '\\' || s[1] != 'u' || !hex4(s + 2, &lo) ||
                lo < 0xdc00 || lo > 0xdfff) return 0;
            s += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          if (cp < 0x80) u[0] = (unsigned char)cp, ulen = 1;
          else if (cp < 0x800) {
            u[0] = (unsigned char)(0xc0 | cp >> 6), u[1] = (unsigned char)(0x80 | (cp & 0x3f));
            ulen = 2;
          }
          else if (cp < 0x10000) {
            u[0] = (unsigned char)(0xe0 | cp >> 12);
            u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            u[2] = (unsigned char)(0x80 | (cp & 0x3f));
            ulen = 3;
          }
          else {
            u[0] = (unsigned char)(0xf0 | cp >> 18);
            u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
            u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            u[3] = (unsigned char)(0x80 | (cp & 0x3f));
            ulen = 4;
          }
          scratch_put(D, u, ulen);
          goto next;
        }
        default: return 0;
      }
      scratch_put(D, &ch, 1);
      s += 2;
    }
    else return 0;  /* a control character, NUL included */
  next:
    i = plainrun(s, (size_t)(end - s));
  }
  lua_pushlstring(D->L, E->buf, E->len);
  D->p = s + 1;
  return 1;
}

/*
** A number, pushed as json_finish leaves it: an integer when integral
** and within +-2^53, else a float.  Its value is strtod's (what cjson
** uses), computed exactly without strtod for up to 15 significant digits
** and a power of ten within 10^+-22 (both exact doubles: one correctly
** rounded multiply or divide).
*/
static int dec_number (Dec *D) {
  static const double p10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
    1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
  };
  const unsigned char *s = D->p, *end = D->end, *start = s;
  int neg = 0, ndig = 0, exact = 1;
  long long fracdig = 0;  /* a string can hold more than INT_MAX digits */
  uint64_t m = 0;
  long long ex = 0;
  if (s < end && *s == '-') neg = 1, s++;
  if (s >= end || *s < '0' || *s > '9') return 0;
  if (*s == '0') {
    s++;
    if (s < end && *s >= '0' && *s <= '9') return 0;  /* leading zero */
  }
  else {
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
      if (ndig < 19) m = m * 10 + (uint64_t)(*s - '0');
      else exact = 0;
      ndig++;
    }
  }
  if (s < end && *s == '.') {
    s++;
    if (s >= end || *s < '0' || *s > '9') return 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
      if (m == 0 && *s == '0') { fracdig++; continue; }  /* 0.000ddd */
      if (ndig < 19) m = m * 10 + (uint64_t)(*s - '0'), fracdig++;
      else exact = 0;
      ndig++;
    }
  }
  if (s < end && (*s == 'e' || *s == 'E')) {
    int eneg = 0;
    s++;
    if (s < end && (*s == '+' || *s == '-')) eneg = (*s == '-'), s++;
    if (s >= end || *s < '0' || *s > '9') return 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
      if (ex < 100000) ex = ex * 10 + (*s - '0');
      else exact = 0;  /* too big to track: strtod decides */
    }
    if (eneg) ex = -ex;
  }
  D->p = s;
  double x;
  long long e10 = ex - fracdig;
  if (exact && m <= ((uint64_t)1 << 53) && e10 >= -22 && e10 <= 22) {
    if (e10 == 0 && fracdig == 0 && ex == 0) {  /* a plain integer */
      lua_Integer i = (lua_Integer)m;
      lua_pushinteger(D->L, neg ? -i : i);
      return 1;
    }
    x = e10 >= 0 ? (double)m * p10[e10] : (double)m / p10[-e10];
    if (neg) x = -x;
  }
  else {
    /* strtod stops where the grammar did: a JSON delimiter or the
    ** string's terminating NUL follows the number. */
    char *ep;
    x = strtod((const char *)start, &ep);
    if ((const unsigned char *)ep != s) return 0;
  }
  if (!isfinite(x)) return 0;
  if (x == floor(x) && fabs(x) <= 9007199254740992.0)
    lua_pushinteger(D->L, (lua_Integer)x);
  else
    lua_pushnumber(D->L, x);
  return 1;
}

static int dec_value (Dec *D);

/* Moves the n values above slot t into its table (made on the first
** batch: sized for it, or exactly when it is the only one). */
static void flush_array (lua_State *L, int t, int n, lua_Integer *total) {
  if (lua_type(L, t) != LUA_TTABLE) {
    lua_createtable(L, n, 0);
    lua_replace(L, t);
    /* its array part holds them all: set them from the top down */
    for (int i = n; i >= 1; i--) lua_rawseti(L, t, i);
    *total = n;
    return;
  }
  for (int i = 1; i <= n; i++) {
    lua_pushvalue(L, t + i);
    lua_rawseti(L, t, *total + i);
  }
  *total += n;
  lua_settop(L, t);
}

static int dec_array (Dec *D) {
  lua_State *L = D->L;
  int t, n = 0;
  lua_Integer total = 0;
  if (++D->depth > MAXDEPTH || !lua_checkstack(L, 4)) return 0;
  lua_pushnil(L);  /* [.., slot for the table] */
  t = lua_gettop(L);
  skipws(D);
  if (D->p < D->end && *D->p == ']') D->p++;
  else {
    for (;;) {
      /* room for 16 more values at a time (a value nets one slot) */
      if (n == BATCH || (n % 16 == 0 && !lua_checkstack(L, 40))) {
        flush_array(L, t, n, &total);
        n = 0;
        if (!lua_checkstack(L, 40)) return 0;
      }
      if (!dec_value(D)) return 0;
      n++;
      skipws(D);
      if (D->p >= D->end) return 0;
      if (*D->p == ',') { D->p++; continue; }
      if (*D->p == ']') { D->p++; break; }
      return 0;
    }
  }
  flush_array(L, t, n, &total);
  lua_pushvalue(L, ARRAYMT);
  lua_setmetatable(L, t);
  D->depth--;
  return 1;
}

static void flush_object (lua_State *L, int t, int n) {
  if (lua_type(L, t) != LUA_TTABLE) {
    lua_createtable(L, 0, n);
    lua_replace(L, t);
  }
  for (int i = 0; i < n; i++) {  /* in order: the last duplicate wins */
    lua_pushvalue(L, t + 1 + 2 * i);
    lua_pushvalue(L, t + 2 + 2 * i);
    lua_rawset(L, t);
  }
  lua_settop(L, t);
}

static int dec_object (Dec *D) {
  lua_State *L = D->L;
  int t, n = 0;
  if (++D->depth > MAXDEPTH || !lua_checkstack(L, 4)) return 0;
  lua_pushnil(L);  /* [.., slot for the table] */
  t = lua_gettop(L);
  skipws(D);
  if (D->p < D->end && *D->p == '}') D->p++;
  else {
    for (;;) {
      /* room for 16 more pairs at a time */
      if (n == BATCH || (n % 16 == 0 && !lua_checkstack(L, 40))) {
        flush_object(L, t, n);
        n = 0;
        if (!lua_checkstack(L, 40)) return 0;
      }
      if (D->p >= D->end || *D->p != '"') return 0;
      D->p++;
      if (!dec_string(D)) return 0;
      skipws(D);
      if (D->p >= D->end || *D->p != ':') return 0;
      D->p++;
      if (!dec_value(D)) return 0;
      n++;
      skipws(D);
      if (D->p >= D->end) return 0;
      if (*D->p == ',') { D->p++; skipws(D); continue; }
      if (*D->p == '}') { D->p++; break; }
      return 0;
    }
  }
  flush_object(L, t, n);
  D->depth--;
  return 1;
}

static int literal (Dec *D, const char *word, size_t n) {
  if ((size_t)(D->end - D->p) < n || memcmp(D->p, word, n) != 0) return 0;
  D->p += n;
  return 1;
}

static int dec_value (Dec *D) {
  skipws(D);
  if (D->p >= D->end) return 0;
  switch (*D->p) {
    case '{': D->p++; return dec_object(D);
    case '[': D->p++; return dec_array(D);
    case '"': D->p++; return dec_string(D);
    case 't':
      if (!literal(D, "true", 4)) return 0;
      lua_pushboolean(D->L, 1);
      return 1;
    case 'f':
      if (!literal(D, "false", 5)) return 0;
      lua_pushboolean(D->L, 0);
      return 1;
    case 'n':
      if (!literal(D, "null", 4)) return 0;
      lua_pushlightuserdata(D->L, NULL);
      return 1;
    default:
      return dec_number(D);
  }
}

/*
** decode(s) -> true, value | false: false when the fast path declines
** (json.lua then takes the slow path).  Raises only on memory errors.
*/
static int json_decode (lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  Dec D;
  lua_settop(L, 1);
  D.L = L;
  D.p = (const unsigned char *)s;
  D.end = D.p + n;
  D.depth = 0;
  D.scratch = NULL;
  lua_pushnil(L);          /* [s, slot for the scratch box] */
  D.slot = 2;
  lua_pushboolean(L, 1);   /* [s, slot, true] */
  int ok = dec_value(&D);  /* [s, slot, true, value] */
  if (ok) {
    skipws(&D);
    ok = D.p == D.end;
  }
  if (D.scratch) release(D.scratch);
  if (ok) return 2;
  lua_pushboolean(L, 0);
  return 1;
}

/* }====================================================== */


/* array(t) -> t, marked as an array */
static int json_array (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getmetatable(L, 1)) {
    luaL_argcheck(L, lua_rawequal(L, -1, ARRAYMT), 1, "table already has a metatable");
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  lua_pushvalue(L, ARRAYMT);
  lua_setmetatable(L, 1);
  return 1;
}

/* is_array(v) -> boolean: whether encode writes v as an array */
static int json_is_array (lua_State *L) {
  int yes = 0;
  luaL_checkany(L, 1);
  if (lua_type(L, 1) == LUA_TTABLE) {
    if (lua_getmetatable(L, 1)) {
      yes = lua_rawequal(L, -1, ARRAYMT);
      lua_pop(L, 1);
    }
    if (!yes) {
      lua_Integer n = 0, max = 0;
      int ok = 1;
      lua_pushnil(L);
      while (lua_next(L, 1)) {  /* [t, key, value] */
        lua_pop(L, 1);
        lua_Integer i;
        if (!lua_isinteger(L, -1) || (i = lua_tointeger(L, -1)) < 1) {
          ok = 0;
          lua_pop(L, 1);
          break;
        }
        n++;
        if (i > max) max = i;
      }
      yes = ok && n > 0 && max == n;
    }
  }
  lua_pushboolean(L, yes);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"array", json_array},
  {"canonical", json_canonical},
  {"decode", json_decode},
  {"encode", json_encode},
  {"finish", json_finish},
  {"is_array", json_is_array},
  {"prepare", json_prepare},
  {NULL, NULL}
};

AGLIB_API int luaopen_aegis_core_json(lua_State *L);
AGLIB_API int luaopen_aegis_core_json (lua_State *L) {
  if (luaL_newmetatable(L, JSON_ENCODER)) {  /* [box mt] */
    lua_pushcfunction(L, enc_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, enc_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  /* The array metatable lives in the registry, so every copy of this
  ** module (and aegis.json) marks arrays with the same table. */
  if (lua_getfield(L, LUA_REGISTRYINDEX, "aegis.json.array") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "aegis.json.array");
  }                                       /* [array mt] */
  luaL_newlibtable(L, funcs);             /* [array mt, lib] */
  lua_insert(L, -2);                      /* [lib, array mt] */
  newenc(L, 0);                           /* [lib, array mt, encoder] */
  luaL_setfuncs(L, funcs, 2);             /* upvalues: the array mt, the encoder */
  return 1;
}
