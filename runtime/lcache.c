/*
** lcache.c: aegis.core.cache, the binding of ag_cache (the C hit path of
** the prompt cache).  Private: lua/aegis/cache.lua is the documented API.
**
**   core.open(path, busy_ms)      -> conn | nil, msg, code
**   conn:get(ns, key [, known])   -> key, hash_ok, meta, text, cost, created_at, bytes,
**                                    provider, model, endpoint, scaffold_id, prefix_hash, hash
**                                    key, nil                   (no entry)
**                                    key, false, msg, code      (the read failed)
**   conn:check(ns, key, known)    -> ok, meta, text, cost, created_at, hash: the hit
**                                    path's short form (no key, no other columns;
**                                    hash only when it is not `known`); nil (no
**                                    entry); false, msg, code (the read failed)
**   conn:close()                  -> true (also __close, __gc)
**   core.key(blocks, messages, system, head, middle, params, tail,
**            sample_index, stream, want_text)  -> key [, text] | nil
**
** `key` builds the canonical text cache.lua's canonical_text builds, for
** the usual shape (blocks of kind/stability/content/breakpoint, messages
** of role/content, names in printable ASCII, stable blocks first), hashes
** it and returns the key; for anything else it returns nil and the Lua code
** checks the request (raising on misuse) and builds the text.
** `head`, `middle`, `params` and `tail` are the request's fixed parts,
** already canonical (cache.lua keeps them per provider and model).
**   core.prepare(path, busy_ms)   -> true | nil, msg, code: auto_vacuum=INCREMENTAL
**                                    on a file with no table yet (ag_cache_prepare)
**   core.params(defaults, params) -> ',"params":{...}' | nil
** `params` over `defaults`, in canonical JSON, for flat tables of
** printable-ASCII names and values that are booleans, numbers or
** printable-ASCII strings; nil for anything else (the Lua code encodes it).
**
** `get` reads the entry on a prepared statement and checks the response
** against its stored SHA-256, in one call: the whole of a cache hit but
** decoding the small metadata.  The response is `<canonical JSON of the
** metadata>\n<text>` (canonical JSON has no raw newline); `meta` and
** `text` are its two parts, `text` nil when there is no newline.  hash_ok false: the bytes failed their
** check (meta and text are then nil).  `known`: the response hash of a
** copy the caller already holds; when the bytes read verify against that
** same hash, meta is `true` and text nil (nothing to copy or decode).
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxag.h"
#include "ag_cache.h"

#define CACHE_CONN "aegis.cache.Conn"

typedef struct LConn { ag_cache *c; } LConn;   /* c == NULL means closed */

static ag_cache *checkopen (lua_State *L) {
  LConn *p = (LConn *)luaL_checkudata(L, 1, CACHE_CONN);
  if (p->c == NULL) luaL_error(L, "attempt to use a closed cache connection");
  return p->c;
}

static int cache_open (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer busy = luaL_optinteger(L, 2, 10000);
  luaL_argcheck(L, busy >= 0 && busy <= 3600000, 2, "busy timeout out of range");
  LConn *p = (LConn *)lua_newuserdatauv(L, sizeof *p, 0);
  p->c = NULL;                                   /* consistent if the open fails */
  luaL_setmetatable(L, CACHE_CONN);
  char err[AG_ERRLEN];
  int rc = ag_cache_open(path, (int)busy, &p->c, err);
  if (rc != AG_OK) return agL_pushfail(L, rc, "cache: open '%s': %s", path, err);
  return 1;
}

/* Pushes the outcome of ag_cache_get after the key (already pushed). */
static int pushhit (lua_State *L, ag_cache *c, const char *ns, size_t nsn, const char *key,
                    const char *known, size_t knownn) {
  ag_cache_hit hit;
  char err[AG_ERRLEN];
  int rc = ag_cache_get(c, ns, nsn, key, 1, &hit, err);
  if (rc == AG_ENOTFOUND) {
    lua_pushnil(L);
    return 2;
  }
  if (rc != AG_OK) {
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "cache: get '%s': %s", key, err);
    lua_pushstring(L, ag_errcode(rc));
    return 4;
  }
  /* copies the borrowed bytes before the statement is reset */
  luaL_checkstack(L, 13, NULL);
  lua_pushboolean(L, hit.hash_ok);                            /* [key, ok] */
  const char *r = (const char *)hit.response;
  const char *nl = hit.hash_ok ? memchr(r, '\n', hit.response_len) : NULL;
  int same = hit.hash_ok && known != NULL && knownn == AG_SHA256_HEXLEN &&
             memcmp(known, hit.hash, AG_SHA256_HEXLEN) == 0;
  if (same) {
    lua_pushboolean(L, 1);                                    /* [.., true] */
    lua_pushnil(L);
  }
  else if (nl != NULL) {
    lua_pushlstring(L, r, (size_t)(nl - r));                  /* [.., meta] */
    lua_pushlstring(L, nl + 1, hit.response_len - (size_t)(nl - r) - 1);   /* [.., text] */
  }
  else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  if (hit.has_cost) lua_pushnumber(L, hit.cost); else lua_pushnil(L);
  lua_pushinteger(L, (lua_Integer)hit.created_at);
  lua_pushinteger(L, (lua_Integer)hit.bytes);
  const ag_cache_text *t[] = {&hit.provider, &hit.model, &hit.endpoint, &hit.scaffold_id, &hit.prefix_hash};
  for (int i = 0; i < 5; i++) {
    if (t[i]->p != NULL) lua_pushlstring(L, t[i]->p, t[i]->n); else lua_pushnil(L);
  }
  if (hit.hash_ok) lua_pushlstring(L, hit.hash, AG_SHA256_HEXLEN); else lua_pushnil(L);
  ag_cache_done(c);
  return 13;
}

static int conn_check (lua_State *L) {
  ag_cache *c = checkopen(L);
  size_t nsn, kn, knownn = 0;
  const char *ns = luaL_checklstring(L, 2, &nsn);
  const char *key = luaL_checklstring(L, 3, &kn);
  luaL_argcheck(L, kn == AG_SHA256_HEXLEN, 3, "key must be 64 hex digits");
  const char *known = luaL_optlstring(L, 4, NULL, &knownn);
  ag_cache_hit hit;
  char err[AG_ERRLEN];
  int rc = ag_cache_get(c, ns, nsn, key, 0, &hit, err);
  if (rc == AG_ENOTFOUND) return 0;
  if (rc != AG_OK) {
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "cache: get '%s': %s", key, err);
    lua_pushstring(L, ag_errcode(rc));
    return 3;
  }
  lua_pushboolean(L, hit.hash_ok);                            /* [ok] */
  const char *r = (const char *)hit.response;
  const char *nl = hit.hash_ok ? memchr(r, '\n', hit.response_len) : NULL;
  int same = hit.hash_ok && known != NULL && knownn == AG_SHA256_HEXLEN &&
             memcmp(known, hit.hash, AG_SHA256_HEXLEN) == 0;
  if (same) {
    lua_pushboolean(L, 1);
    lua_pushnil(L);
  }
  else if (nl != NULL) {
    lua_pushlstring(L, r, (size_t)(nl - r));                  /* [ok, meta] */
    lua_pushlstring(L, nl + 1, hit.response_len - (size_t)(nl - r) - 1);   /* [ok, meta, text] */
  }
  else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  if (hit.has_cost) lua_pushnumber(L, hit.cost); else lua_pushnil(L);
  lua_pushinteger(L, (lua_Integer)hit.created_at);
  if (hit.hash_ok && !same) lua_pushlstring(L, hit.hash, AG_SHA256_HEXLEN); else lua_pushnil(L);
  ag_cache_done(c);
  return 6;
}

static int conn_get (lua_State *L) {
  ag_cache *c = checkopen(L);
  size_t nsn, kn;
  const char *ns = luaL_checklstring(L, 2, &nsn);
  const char *key = luaL_checklstring(L, 3, &kn);
  luaL_argcheck(L, kn == AG_SHA256_HEXLEN, 3, "key must be 64 hex digits");
  size_t knownn = 0;
  const char *known = luaL_optlstring(L, 4, NULL, &knownn);
  lua_pushvalue(L, 3);                           /* [.., key] */
  return pushhit(L, c, ns, nsn, key, known, knownn);
}

/* Appends `"name":` ... helpers for core.key: a JSON string of printable
** ASCII (no quote, no backslash) needs no escaping, so it is copied. */
static int plainascii (const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return 0;
  }
  return 1;
}

#define CACHE_SHA "aegis.cache.Sha"

typedef struct LSha { ag_cache_sha *h; } LSha;

/* The module's hasher: upvalue 1 of core.key (one Lua state, one user). */
static ag_cache_sha *hasher (lua_State *L) {
  LSha *p = (LSha *)lua_touserdata(L, lua_upvalueindex(1));
  if (p == NULL || p->h == NULL) luaL_error(L, "cache: SHA-256 unavailable");
  return p->h;
}

static void addhash (luaL_Buffer *b, ag_cache_sha *h, const char *s, size_t n) {
  unsigned char d[AG_SHA256_LEN];
  char hex[AG_SHA256_HEXLEN + 1];
  if (ag_cache_sha_digest(h, s, n, d) != AG_OK) luaL_error(b->L, "cache: SHA-256 failed");
  ag_sha256_hex(d, hex);
  luaL_addlstring(b, hex, AG_SHA256_HEXLEN);
}

static int sha_gc (lua_State *L) {
  LSha *p = (LSha *)luaL_checkudata(L, 1, CACHE_SHA);
  ag_cache_sha_close(p->h);
  p->h = NULL;
  return 0;
}

/* Field `k` of the table at `t` if it is a plain string: its bytes, else
** NULL (absent: *present = 0).  Leaves the stack as it was. */
static const char *plainfield (lua_State *L, int t, const char *k, size_t *n, int *present) {
  int ty = lua_getfield(L, t, k);
  *present = ty != LUA_TNIL;
  const char *s = NULL;
  if (ty == LUA_TSTRING) {
    s = lua_tolstring(L, -1, n);
    if (!plainascii(s, *n)) s = NULL;
  }
  lua_pop(L, 1);   /* the string stays alive: the table still holds it */
  return s;
}

/* true when every key of the table at `t` is one of `names` with a value
** of the matching Lua type. */
static int onlyfields (lua_State *L, int t, const char *const names[], const int types[]) {
  lua_pushnil(L);
  while (lua_next(L, t)) {                       /* [.., k, v] */
    int ok = 0;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      for (int i = 0; names[i] != NULL; i++)
        if (strcmp(k, names[i]) == 0) { ok = lua_type(L, -1) == types[i]; break; }
    }
    lua_pop(L, 1);                               /* [.., k] */
    if (!ok) { lua_pop(L, 1); return 0; }
  }
  return 1;
}

static const char *const blockf[] = {"kind", "stability", "content", "breakpoint", NULL};
static const int blockt[] = {LUA_TSTRING, LUA_TSTRING, LUA_TSTRING, LUA_TBOOLEAN};
static const char *const msgf[] = {"role", "content", NULL};
static const int msgt[] = {LUA_TSTRING, LUA_TSTRING};

static int cache_key (lua_State *L) {
  size_t headn, midn, paramsn, tailn;
  const char *head = luaL_checklstring(L, 4, &headn);
  const char *middle = luaL_checklstring(L, 5, &midn);
  const char *params = luaL_optlstring(L, 6, "", &paramsn);
  const char *tail = luaL_checklstring(L, 7, &tailn);
  lua_Integer si = luaL_checkinteger(L, 8);
  int stream = lua_toboolean(L, 9);
  int want_text = lua_toboolean(L, 10);
  ag_cache_sha *h = hasher(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);                          /* the buffer may sit on the stack: use absolute indices */
  lua_Integer nb = lua_istable(L, 1) ? luaL_len(L, 1) : 0;
  int volatile_seen = 0;
  for (lua_Integer i = 1; i <= nb; i++) {
    if (lua_rawgeti(L, 1, i) != LUA_TTABLE) return 0;   /* odd shape: the Lua code decides */
    int t = lua_gettop(L);
    size_t cn, kn = 0, sn = 0;
    int pk, ps;
    if (!onlyfields(L, t, blockf, blockt)) return 0;
    lua_getfield(L, t, "content");
    const char *content = lua_tolstring(L, -1, &cn);
    lua_pop(L, 1);
    if (content == NULL) return 0;
    const char *kind = plainfield(L, t, "kind", &kn, &pk);
    const char *stab = plainfield(L, t, "stability", &sn, &ps);
    if ((pk && kind == NULL) || (ps && stab == NULL)) return 0;
    /* what provider.call checks: a stability, stable blocks first (else the
    ** Lua code raises the argument error) */
    if (stab == NULL) return 0;
    if (sn == 8 && memcmp(stab, "volatile", 8) == 0) volatile_seen = 1;
    else if (!(sn == 6 && memcmp(stab, "stable", 6) == 0) || volatile_seen) return 0;
    int bp = lua_getfield(L, t, "breakpoint");
    int bpv = lua_toboolean(L, -1);
    lua_pop(L, 2);                               /* the breakpoint, the block */
    luaL_addstring(&b, i == 1 ? "{\"blocks\":[{" : ",{");
    if (bp != LUA_TNIL) luaL_addstring(&b, bpv ? "\"breakpoint\":true," : "\"breakpoint\":false,");
    luaL_addstring(&b, "\"content_sha256\":\"");
    addhash(&b, h, content, cn);
    luaL_addchar(&b, '"');
    if (kind) { luaL_addstring(&b, ",\"kind\":\""); luaL_addlstring(&b, kind, kn); luaL_addchar(&b, '"'); }
    if (stab) { luaL_addstring(&b, ",\"stability\":\""); luaL_addlstring(&b, stab, sn); luaL_addchar(&b, '"'); }
    luaL_addchar(&b, '}');
  }
  luaL_addstring(&b, nb > 0 ? "]," : "{");
  luaL_addlstring(&b, head, headn);
  lua_Integer nm = lua_istable(L, 2) ? luaL_len(L, 2) : 0;
  for (lua_Integer i = 1; i <= nm; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE) return 0;
    int t = lua_gettop(L);
    size_t cn, rn = 0;
    int pr;
    if (!onlyfields(L, t, msgf, msgt)) return 0;
    lua_getfield(L, t, "content");
    const char *content = lua_tolstring(L, -1, &cn);
    lua_pop(L, 1);
    const char *role = plainfield(L, t, "role", &rn, &pr);
    lua_pop(L, 1);                               /* the message */
    if (content == NULL || role == NULL) return 0;
    luaL_addstring(&b, i == 1 ? ",\"messages\":[{\"content_sha256\":\"" : ",{\"content_sha256\":\"");
    addhash(&b, h, content, cn);
    luaL_addstring(&b, "\",\"role\":\"");
    luaL_addlstring(&b, role, rn);
    luaL_addstring(&b, "\"}");
  }
  if (nm > 0) luaL_addchar(&b, ']');
  luaL_addlstring(&b, middle, midn);
  luaL_addlstring(&b, params, paramsn);
  luaL_addlstring(&b, tail, tailn);
  char num[32];
  snprintf(num, sizeof num, "%lld", (long long)si);
  luaL_addstring(&b, num);
  luaL_addstring(&b, stream ? ",\"stream\":true" : ",\"stream\":false");
  if (lua_type(L, 3) == LUA_TSTRING) {
    size_t n;
    const char *sys = lua_tolstring(L, 3, &n);
    luaL_addstring(&b, ",\"system_sha256\":\"");
    addhash(&b, h, sys, n);
    luaL_addchar(&b, '"');
  }
  else if (!lua_isnoneornil(L, 3)) return 0;
  luaL_addchar(&b, '}');
  /* hashed where it was built: a hit does not need the text itself */
  unsigned char d[AG_SHA256_LEN];
  char key[AG_SHA256_HEXLEN + 1];
  if (ag_cache_sha_digest(h, luaL_buffaddr(&b), luaL_bufflen(&b), d) != AG_OK)
    return luaL_error(L, "cache: SHA-256 failed");
  ag_sha256_hex(d, key);
  if (!want_text) {
    lua_pushlstring(L, key, AG_SHA256_HEXLEN);   /* [.., key] */
    return 1;
  }
  luaL_pushresult(&b);                           /* [.., text] */
  lua_pushlstring(L, key, AG_SHA256_HEXLEN);     /* [.., text, key] */
  lua_insert(L, -2);                             /* [.., key, text] */
  return 2;
}

/*
** A finite double as ECMAScript's Number::toString writes it (RFC 8785
** section 3.2.2.3): the shortest digits that read back as the same double,
** placed by the exponent rules of ECMA-262 7.1.12.1.  0 when not finite.
*/
static int esnum (double v, char out[40]) {
  if (!isfinite(v)) return 0;
  if (v == 0) { strcpy(out, "0"); return 1; }   /* -0 too */
  char buf[40];
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, sizeof buf, "%.*e", p - 1, v);
    if (strtod(buf, NULL) == v) break;
  }
  char digits[24];
  int k = 0, neg = 0, i = 0;
  if (buf[i] == '-') { neg = 1; i++; }
  for (; buf[i] != 'e'; i++)
    if (buf[i] != '.') digits[k++] = buf[i];
  int e = atoi(buf + i + 1);
  while (k > 1 && digits[k - 1] == '0') k--;   /* %e may pad with zeros */
  int n = e + 1;
  char *o = out;
  if (neg) *o++ = '-';
  if (k <= n && n <= 21) {
    memcpy(o, digits, (size_t)k); o += k;
    for (int j = k; j < n; j++) *o++ = '0';
  }
  else if (0 < n && n <= 21) {
    memcpy(o, digits, (size_t)n); o += n;
    *o++ = '.';
    memcpy(o, digits + n, (size_t)(k - n)); o += k - n;
  }
  else if (-6 < n && n <= 0) {
    *o++ = '0'; *o++ = '.';
    for (int j = 0; j < -n; j++) *o++ = '0';
    memcpy(o, digits, (size_t)k); o += k;
  }
  else {
    *o++ = digits[0];
    if (k > 1) { *o++ = '.'; memcpy(o, digits + 1, (size_t)(k - 1)); o += k - 1; }
    o += sprintf(o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
  }
  *o = '\0';
  return 1;
}

#define MAXPARAMS 64

typedef struct Param { const char *k; int src; } Param;   /* src: 1 defaults, 2 params */

static int paramcmp (const void *a, const void *b) {
  return strcmp(((const Param *)a)->k, ((const Param *)b)->k);
}

/* Collects the plain keys of the table at `t` into ps (overriding equal
** names); 0 for a key that is not a plain string or too many keys. */
static int collect (lua_State *L, int t, int src, Param *ps, int *n) {
  if (lua_isnoneornil(L, t)) return 1;
  if (!lua_istable(L, t)) return 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {                       /* [.., k, v] */
    lua_pop(L, 1);                               /* [.., k] */
    size_t kn;
    if (lua_type(L, -1) != LUA_TSTRING) { lua_pop(L, 1); return 0; }
    const char *k = lua_tolstring(L, -1, &kn);
    if (kn == 0 || !plainascii(k, kn) || strlen(k) != kn) { lua_pop(L, 1); return 0; }
    int found = 0;
    for (int i = 0; i < *n; i++)
      if (strcmp(ps[i].k, k) == 0) { ps[i].src = src; found = 1; break; }
    if (!found) {
      if (*n == MAXPARAMS) { lua_pop(L, 1); return 0; }
      ps[*n].k = k;                              /* alive: the table holds it */
      ps[*n].src = src;
      (*n)++;
    }
  }
  return 1;
}

static int cache_params (lua_State *L) {
  Param ps[MAXPARAMS];
  int n = 0;
  if (!collect(L, 1, 1, ps, &n) || !collect(L, 2, 2, ps, &n)) return 0;
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  qsort(ps, (size_t)n, sizeof ps[0], paramcmp);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, ",\"params\":{");
  for (int i = 0; i < n; i++) {
    lua_getfield(L, ps[i].src, ps[i].k);         /* [.., v] */
    char num[40];
    const char *sv = NULL;
    size_t sn = 0;
    int quote = 0;
    switch (lua_type(L, -1)) {
      case LUA_TBOOLEAN:
        sv = lua_toboolean(L, -1) ? "true" : "false";
        sn = strlen(sv);
        break;
      case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) {
          lua_Integer iv = lua_tointeger(L, -1);
          if (iv > ((lua_Integer)1 << 53) || iv < -((lua_Integer)1 << 53)) return 0;
          snprintf(num, sizeof num, "%lld", (long long)iv);
        }
        else if (!esnum(lua_tonumber(L, -1), num)) return 0;
        sv = num;
        sn = strlen(num);
        break;
      case LUA_TSTRING:
        sv = lua_tolstring(L, -1, &sn);
        if (!plainascii(sv, sn)) return 0;
        quote = 1;
        break;
      default:
        return 0;
    }
    lua_pop(L, 1);   /* strings stay alive: the table holds them */
    if (i > 0) luaL_addchar(&b, ',');
    luaL_addchar(&b, '"');
    luaL_addstring(&b, ps[i].k);
    luaL_addstring(&b, "\":");
    if (quote) luaL_addchar(&b, '"');
    luaL_addlstring(&b, sv, sn);
    if (quote) luaL_addchar(&b, '"');
  }
  luaL_addchar(&b, '}');
  luaL_pushresult(&b);
  return 1;
}

/* core.prepare(path, busy_ms) -> true | nil, msg, code */
static int cache_prepare (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer busy = luaL_optinteger(L, 2, 10000);
  luaL_argcheck(L, busy >= 0 && busy <= 3600000, 2, "busy timeout out of range");
  char err[AG_ERRLEN];
  int rc = ag_cache_prepare(path, (int)busy, err);
  if (rc != AG_OK) return agL_pushfail(L, rc, "cache: prepare '%s': %s", path, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int conn_gc (lua_State *L) {
  LConn *p = (LConn *)luaL_checkudata(L, 1, CACHE_CONN);
  ag_cache_close(p->c);
  p->c = NULL;
  return 0;
}

static int conn_close (lua_State *L) {
  conn_gc(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int conn_tostring (lua_State *L) {
  LConn *p = (LConn *)luaL_checkudata(L, 1, CACHE_CONN);
  lua_pushfstring(L, "%s (%s)", CACHE_CONN, p->c ? "open" : "closed");
  return 1;
}

static const luaL_Reg funcs[] = {{"key", cache_key}, {"open", cache_open}, {"params", cache_params},
                                 {"prepare", cache_prepare}, {NULL, NULL}};
static const luaL_Reg meth[] = {{"check", conn_check}, {"close", conn_close}, {"get", conn_get}, {NULL, NULL}};
static const luaL_Reg metameth[] = {{"__index", NULL}, {"__gc", conn_gc}, {"__close", conn_gc},
                                    {"__tostring", conn_tostring}, {NULL, NULL}};

AGLIB_API int luaopen_aegis_core_cache(lua_State *L);
AGLIB_API int luaopen_aegis_core_cache (lua_State *L) {
  static const luaL_Reg shameta[] = {{"__gc", sha_gc}, {NULL, NULL}};
  agL_newclass(L, CACHE_CONN, meth, metameth);
  luaL_newmetatable(L, CACHE_SHA);               /* [mt] */
  luaL_setfuncs(L, shameta, 0);
  lua_pop(L, 1);
  luaL_newlibtable(L, funcs);                    /* [lib] */
  LSha *p = (LSha *)lua_newuserdatauv(L, sizeof *p, 0);   /* [lib, sha] */
  p->h = NULL;
  luaL_setmetatable(L, CACHE_SHA);
  char err[AG_ERRLEN];
  if (ag_cache_sha_open(&p->h, err) != AG_OK) return luaL_error(L, "cache: %s", err);
  luaL_setfuncs(L, funcs, 1);                    /* [lib]: the hasher is every function's upvalue */
  return 1;
}
