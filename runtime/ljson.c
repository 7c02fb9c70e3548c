/*
** ljson.c: aegis.core.json, the JSON encoder (RFC 8785 canonical form,
** optionally indented) and the two passes around lua-cjson's decoder.
** The documented API is lua/aegis/json.lua.
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
static size_t utf8seq (const unsigned char *s, size_t n) {
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
  for (size_t i = 0, len; i < n; i += len)
    if ((len = utf8seq(s + i, n - i)) == 0) return 0;
  return 1;
}

/* Code point of the valid sequence at s; advances *i past it. */
static uint32_t utf8cp (const unsigned char *s, size_t *i) {
  const unsigned char *p = s + *i;
  uint32_t c = p[0];
  if (c < 0x80) { *i += 1; return c; }
  if (c < 0xe0) { *i += 2; return ((c & 0x1f) << 6) | (p[1] & 0x3f); }
  if (c < 0xf0) {
    *i += 3;
    return ((c & 0x0f) << 12) | ((uint32_t)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
  }
  *i += 4;
  return ((c & 0x07) << 18) | ((uint32_t)(p[1] & 0x3f) << 12) |
         ((uint32_t)(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
}

/*
** RFC 8785 sorts keys by their UTF-16 code units.  That is code point
** order except that supplementary characters (surrogate pairs, D800-DBFF
** first) sort before U+E000..U+FFFF; the weight moves those BMP code
** points above every supplementary one.
*/
static uint32_t utf16weight (uint32_t cp) {
  return (cp >= 0xe000 && cp <= 0xffff) ? cp + 0x200000 : cp;
}

typedef struct Key { const char *s; size_t n; } Key;

/* qsort comparator over valid UTF-8 keys, in UTF-16 code unit order. */
static int keycmp (const void *va, const void *vb) {
  const Key *ka = (const Key *)va, *kb = (const Key *)vb;
  const unsigned char *a = (const unsigned char *)ka->s;
  const unsigned char *b = (const unsigned char *)kb->s;
  size_t i = 0, j = 0;
  while (i < ka->n && j < kb->n) {
    if (a[i] < 0x80 && b[j] < 0x80) {
      if (a[i] != b[j]) return a[i] < b[j] ? -1 : 1;
      i++, j++;
      continue;
    }
    uint32_t x = utf16weight(utf8cp(a, &i)), y = utf16weight(utf8cp(b, &j));
    if (x != y) return x < y ? -1 : 1;
  }
  return (i < ka->n) - (j < kb->n);  /* a prefix sorts first */
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
} Enc;

static void *grow (lua_State *L, Enc *E, void *p, size_t *cap, size_t need,
                   size_t elem) {
  size_t ncap = *cap ? *cap : 16;
  while (ncap < need) ncap *= 2;
  void *np = E->alloc(E->ud, p, *cap * elem, ncap * elem);
  if (np == NULL) luaL_error(L, "json: not enough memory");
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

static void put (lua_State *L, Enc *E, const char *s, size_t n) {
  if (E->cap - E->len < n)
    E->buf = grow(L, E, E->buf, &E->cap, E->len + n, 1);
  memcpy(E->buf + E->len, s, n);
  E->len += n;
}

#define putlit(L, E, s) put(L, E, "" s, sizeof(s) - 1)

static void putc_ (lua_State *L, Enc *E, char c) {
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
  putc_(L, E, '"');
  while (i < n) {
    unsigned c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) { i++; continue; }
    if (c >= 0x80) {
      size_t len = utf8seq(s + i, n - i);
      if (len > 0) { i += len; continue; }
      if (!lenient) return 0;
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
  lua_pushlstring(L, E->buf, E->len);
  return lua_error(L);
}

static void newline (lua_State *L, Enc *E, int depth) {
  if (E->indent == 0) return;
  putc_(L, E, '\n');
  for (int i = 0; i < depth * E->indent; i++) putc_(L, E, ' ');
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
  qsort(E->keys + base, n, sizeof(Key), keycmp);
  putc_(L, E, '{');
  for (size_t i = 0; i < n; i++) {
    Key k = E->keys[base + i];  /* a copy: E->keys may move */
    Seg *g = &E->path[E->depth - 1];
    if (i > 0) putc_(L, E, ',');
    newline(L, E, E->depth);
    g->key = k.s, g->klen = k.n;
    putstring(L, E, k.s, k.n, 0);  /* validated when collected */
    if (E->indent) putlit(L, E, ": ");
    else putc_(L, E, ':');
    lua_pushlstring(L, k.s, k.n);
    lua_rawget(L, t);  /* [.., value] */
    encode(L, E, lua_gettop(L));
    lua_pop(L, 1);
  }
  newline(L, E, E->depth - 1);
  putc_(L, E, '}');
}

/*
** Sorts out what table `t` is from its keys (raw access: no metamethod
** runs, so no Lua code can change the table while it is written).
** String keys are collected on E->keys; their strings stay alive as keys
** of `t`, which is on the stack.
*/
static void encode_table (lua_State *L, Enc *E, int t) {
  lua_Integer nint = 0, minint = LUA_MAXINTEGER, maxint = 0;
  size_t base = E->nkeys;
  int marked = 0;
  luaL_checkstack(L, 4, "json: nesting too deep");
  if (lua_getmetatable(L, t)) {  /* [.., mt] */
    marked = lua_rawequal(L, -1, ARRAYMT);
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, t)) {  /* [.., key, value] */
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      Key k;
      k.s = lua_tolstring(L, -1, &k.n);
      if (E->nkeys == E->capkeys)
        E->keys = grow(L, E, E->keys, &E->capkeys, E->nkeys + 1, sizeof(Key));
      E->keys[E->nkeys++] = k;
    }
    else if (lua_isinteger(L, -1)) {
      lua_Integer i = lua_tointeger(L, -1);
      nint++;
      if (i < minint) minint = i;
      if (i > maxint) maxint = i;
    }
    else
      encerror(L, E, "cannot encode a %s key",
               lua_type(L, -1) == LUA_TNUMBER ? "float" : luaL_typename(L, -1));
  }
  if (E->nkeys > base && (nint > 0 || marked))
    encerror(L, E, "cannot encode a table that mixes array and object keys");
  if (nint > 0 && (minint != 1 || maxint != nint))
    encerror(L, E, "cannot encode a sparse array (keys are not 1..n)");
  for (size_t i = base; i < E->nkeys; i++)
    if (!validutf8(E->keys[i].s, E->keys[i].n))
      encerror(L, E, "cannot encode a key that is not valid UTF-8");
  enter(L, E, t);
  if (nint > 0 || marked) encode_array(L, E, t, nint);
  else encode_object(L, E, t, base);
  E->nkeys = base;
  E->depth--;
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
      char b[AG_JSONNUM_MAX > 32 ? AG_JSONNUM_MAX : 32];
      if (lua_isinteger(L, idx)) {
        put(L, E, b, (size_t)snprintf(b, sizeof b, LUA_INTEGER_FMT,
                                      lua_tointeger(L, idx)));
        break;
      }
      double x = lua_tonumber(L, idx);
      if (isnan(x)) encerror(L, E, "cannot encode NaN");
      if (isinf(x)) encerror(L, E, "cannot encode %s", x > 0 ? "Infinity" : "-Infinity");
      put(L, E, b, ag_jsonnum_format(x, b));
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

/* encode(v [, indent]) -> string */
static int json_encode (lua_State *L) {
  lua_Integer indent = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, indent >= 0 && indent <= MAXINDENT, 2,
                "indent must be in 0..16");
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  Enc *E = (Enc *)lua_newuserdatauv(L, sizeof *E, 0);  /* [v, box] */
  memset(E, 0, sizeof *E);
  E->alloc = lua_getallocf(L, &E->ud);
  E->indent = (int)indent;
  luaL_setmetatable(L, JSON_ENCODER);
  encode(L, E, 1);
  lua_pushlstring(L, E->buf, E->len);  /* [v, box, json] */
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
  luaL_setfuncs(L, funcs, 1);             /* upvalue 1: the array mt */
  return 1;
}
