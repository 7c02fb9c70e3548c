/*
** lhttp.c: aegis.core.http, the binding of ag_http.  Private: the
** documented API is lua/aegis/http.lua, which validates requests and hands
** this file their normalised shape:
**   {method=, url=, headers={"Name: value", ...}, body=?, ca_file=?,
**    connect_ms=, total_ms=, low_speed_bytes=, low_speed_s=, max_bytes=,
**    max_redirects=, on_event=?, keep_body=?}
**
** The session (one ag_http: a curl multi handle and its connections) is a
** userdata in the registry, so connections are reused across calls and
** closed by lua_close.  Each call keeps its C memory in a "batch" userdata
** marked to-be-closed, so a memory error while building results frees it.
** Event callbacks run under lua_pcall inside libcurl's write callback; an
** error there aborts the transfer (STYLE.md §3) and is reported after.
*/
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ag_http.h"
#include "lauxag.h"

#define HTTP_SESSION "aegis.http.Session"
#define HTTP_BATCH "aegis.http.Batch"
#define HTTP_SSE "aegis.http.Sse"

/* Registry key of the state's session (its address; the metatable's name
** is a different key). */
static const char SESSION_KEY = 0;

typedef struct LSession { ag_http *h; } LSession;

/* Where a transfer's callback is: fns[i], fns at an absolute index. */
typedef struct cbctx { lua_State *L; int fns; lua_Integer i; } cbctx;

typedef struct LBatch {
  size_t n;
  ag_http_req *reqs;    /* n requests; their outputs are owned here */
  ag_http_req **ptrs;   /* n pointers into reqs, for ag_http_run */
  const char ***lines;  /* n header arrays; strings anchored in the user value */
  cbctx *cbs;           /* n callback places */
} LBatch;

typedef struct LSse { ag_sse p; int live; } LSse;

/*
** {======================================================================
** Event callbacks
** =======================================================================
*/

/* Message handler: any error value as one line of text, no traceback. */
static int errstring (lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) return 1;
  if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    return 1;
  if (lua_type(L, 1) == LUA_TTABLE && lua_getfield(L, 1, "msg") == LUA_TSTRING)
    return 1;
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

/* [fn, ev*]: builds the event table and calls fn with it. */
static int call_event (lua_State *L) {
  const ag_sse_event *ev = (const ag_sse_event *)lua_touserdata(L, 2);
  lua_createtable(L, 0, 4);  /* [fn, ev*, t] */
  lua_pushlstring(L, ev->event, ev->event_len);
  lua_setfield(L, -2, "event");
  lua_pushlstring(L, ev->data, ev->data_len);
  lua_setfield(L, -2, "data");
  if (ev->id_len > 0) {
    lua_pushlstring(L, ev->id, ev->id_len);
    lua_setfield(L, -2, "id");
  }
  if (ev->retry >= 0) {
    lua_pushinteger(L, ev->retry);
    lua_setfield(L, -2, "retry");
  }
  lua_replace(L, 2);  /* [fn, t] */
  lua_call(L, 1, 1);  /* [result] */
  return 1;
}

/* ag_sse_fn: runs the Lua callback protected; never raises. */
static int lua_event (void *ud, const ag_sse_event *ev, char *err) {
  cbctx *c = (cbctx *)ud;
  lua_State *L = c->L;
  int st, stop;
  if (!lua_checkstack(L, 5)) {
    snprintf(err, AG_ERRLEN, "stack overflow");
    return AG_SSE_ABORT;
  }
  lua_pushcfunction(L, errstring);     /* [h]  (light C functions allocate nothing) */
  lua_pushcfunction(L, call_event);    /* [h, call] */
  lua_rawgeti(L, c->fns, c->i);        /* [h, call, fn] */
  lua_pushlightuserdata(L, (void *)ev);  /* [h, call, fn, ev*] */
  st = lua_pcall(L, 2, 1, -4);         /* [h, result or msg] */
  if (st != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    snprintf(err, AG_ERRLEN, "%s", msg ? msg : "error in error handling");
    lua_pop(L, 2);
    return AG_SSE_ABORT;
  }
  stop = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  lua_pop(L, 2);
  return stop ? AG_SSE_STOP : AG_SSE_CONTINUE;
}

/* }====================================================================== */

static int pushfail (lua_State *L, const char *msg, const char *code) {
  luaL_pushfail(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 3;
}

/*
** {======================================================================
** Session
** =======================================================================
*/

static int session_gc (lua_State *L) {
  LSession *s = (LSession *)luaL_checkudata(L, 1, HTTP_SESSION);
  ag_http_close(s->h);
  s->h = NULL;
  return 0;
}

/* The state's session, made on first use; NULL with `err` filled when
** libcurl cannot be loaded.  Leaves the stack as it found it. */
static ag_http *session (lua_State *L, char err[AG_ERRLEN]) {
  LSession *s;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SESSION_KEY) == LUA_TUSERDATA) {
    s = (LSession *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (s->h != NULL) return s->h;
  }
  else lua_pop(L, 1);
  s = (LSession *)lua_newuserdatauv(L, sizeof *s, 0);  /* [s] */
  s->h = NULL;  /* consistent before the open */
  luaL_setmetatable(L, HTTP_SESSION);
  if (ag_http_open(&s->h, err) != AG_OK) {
    lua_pop(L, 1);
    return NULL;
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &SESSION_KEY);  /* [] */
  return s->h;
}

/* close(): closes every kept connection; the next request opens anew. */
static int http_close (lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SESSION_KEY) == LUA_TUSERDATA) {
    LSession *s = (LSession *)lua_touserdata(L, -1);
    if (ag_http_busy(s->h))  /* the multi handle is in use below us */
      return luaL_error(L, "http: close cannot be called from inside an on_event callback");
    ag_http_close(s->h);
    s->h = NULL;
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &SESSION_KEY);
  return 0;
}

/* }====================================================================== */

/*
** {======================================================================
** Batches
** =======================================================================
*/

static int batch_gc (lua_State *L) {
  LBatch *b = (LBatch *)luaL_checkudata(L, 1, HTTP_BATCH);
  if (b->reqs != NULL)
    for (size_t i = 0; i < b->n; i++) ag_http_req_free(&b->reqs[i]);
  if (b->lines != NULL)
    for (size_t i = 0; i < b->n; i++) free(b->lines[i]);
  free(b->reqs);
  free(b->ptrs);
  free(b->lines);
  free(b->cbs);
  b->reqs = NULL;
  b->ptrs = NULL;
  b->lines = NULL;
  b->cbs = NULL;
  b->n = 0;
  return 0;
}

/* Pushes a to-be-closed batch for `n` requests with an anchor table as its
** user value.  Raises on memory errors (the batch frees what it got). */
static LBatch *newbatch (lua_State *L, size_t n) {
  LBatch *b = (LBatch *)lua_newuserdatauv(L, sizeof *b, 1);  /* [b] */
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, HTTP_BATCH);
  lua_toclose(L, -1);
  lua_createtable(L, 0, 0);
  lua_setiuservalue(L, -2, 1);  /* b.uv = anchors */
  b->reqs = calloc(n ? n : 1, sizeof *b->reqs);
  b->ptrs = calloc(n ? n : 1, sizeof *b->ptrs);
  b->lines = calloc(n ? n : 1, sizeof *b->lines);
  b->cbs = calloc(n ? n : 1, sizeof *b->cbs);
  if (!b->reqs || !b->ptrs || !b->lines || !b->cbs) luaL_error(L, "not enough memory");
  b->n = n;
  for (size_t i = 0; i < n; i++) b->ptrs[i] = &b->reqs[i];
  return b;
}

/* Field `k` of the table at `t` as a string kept alive by the anchor table
** at `anchors`; NULL when absent.  Raises when it is not a string. */
static const char *anchored (lua_State *L, int t, const char *k, int anchors,
                             size_t *len) {
  const char *s;
  int ty = lua_getfield(L, t, k);  /* [v] */
  if (ty == LUA_TNIL) { lua_pop(L, 1); return NULL; }
  if (ty != LUA_TSTRING) luaL_error(L, "http: request field '%s' must be a string", k);
  s = lua_tolstring(L, -1, len);
  lua_rawseti(L, anchors, (lua_Integer)lua_rawlen(L, anchors) + 1);  /* [] */
  return s;
}

static long long intfield (lua_State *L, int t, const char *k, long long dflt) {
  int isnum;
  lua_Integer v;
  if (lua_getfield(L, t, k) == LUA_TNIL) { lua_pop(L, 1); return dflt; }
  v = lua_tointegerx(L, -1, &isnum);
  if (!isnum) luaL_error(L, "http: request field '%s' must be an integer", k);
  lua_pop(L, 1);
  return (long long)v;
}

/* Reads the normalised request at `t` into batch slot `i`; its callback,
** if any, goes to fns[i+1]. */
static void readreq (lua_State *L, LBatch *b, size_t i, int t, int anchors,
                     int fns) {
  ag_http_req *r = &b->reqs[i];
  size_t len = 0, nh;
  luaL_checktype(L, t, LUA_TTABLE);
  r->method = anchored(L, t, "method", anchors, NULL);
  r->url = anchored(L, t, "url", anchors, NULL);
  if (r->method == NULL || r->url == NULL) luaL_error(L, "http: request needs method and url");
  r->body = anchored(L, t, "body", anchors, &len);
  r->body_len = r->body ? len : 0;
  r->ca_file = anchored(L, t, "ca_file", anchors, NULL);
  r->connect_ms = (long)intfield(L, t, "connect_ms", 5000);
  r->total_ms = (long)intfield(L, t, "total_ms", 600000);
  r->low_speed_bytes = (long)intfield(L, t, "low_speed_bytes", 1);
  r->low_speed_s = (long)intfield(L, t, "low_speed_s", 60);
  r->max_bytes = intfield(L, t, "max_bytes", 32LL << 20);
  r->max_redirects = (int)intfield(L, t, "max_redirects", 0);
  lua_getfield(L, t, "keep_body");
  r->keep_body = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, t, "headers") == LUA_TTABLE) {  /* [hs] */
    nh = (size_t)lua_rawlen(L, -1);
    b->lines[i] = calloc(nh ? nh : 1, sizeof(char *));
    if (b->lines[i] == NULL) luaL_error(L, "not enough memory");
    for (size_t k = 0; k < nh; k++) {
      if (lua_rawgeti(L, -1, (lua_Integer)k + 1) != LUA_TSTRING)  /* [hs, line] */
        luaL_error(L, "http: header lines must be strings");
      b->lines[i][k] = lua_tostring(L, -1);
      lua_rawseti(L, anchors, (lua_Integer)lua_rawlen(L, anchors) + 1);  /* [hs] */
    }
    r->headers = b->lines[i];
    r->nheaders = nh;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, t, "on_event") == LUA_TFUNCTION) {  /* [fn] */
    lua_rawseti(L, fns, (lua_Integer)i + 1);
    b->cbs[i].L = L;
    b->cbs[i].fns = fns;
    b->cbs[i].i = (lua_Integer)i + 1;
    r->stream = 1;
    r->on_event = lua_event;
    r->ud = &b->cbs[i];
  }
  else lua_pop(L, 1);
}

/* Pushes the response table of a request that got one. */
static void pushres (lua_State *L, const ag_http_req *r) {
  const char *p = r->headers_out.p, *end = p + r->headers_out.n;
  lua_createtable(L, 0, 8);  /* [res] */
  lua_pushinteger(L, r->status);
  lua_setfield(L, -2, "status");
  lua_createtable(L, 0, 8);  /* [res, hs] */
  while (p != NULL && p < end) {
    const char *name = p, *value = p + strlen(p) + 1;
    p = value + strlen(value) + 1;
    if (lua_getfield(L, -1, name) == LUA_TSTRING) {  /* [res, hs, old] */
      lua_pushfstring(L, "%s, %s", lua_tostring(L, -1), value);  /* a repeat */
      lua_remove(L, -2);
    }
    else {
      lua_pop(L, 1);
      lua_pushstring(L, value);
    }
    lua_setfield(L, -2, name);  /* [res, hs] */
  }
  lua_setfield(L, -2, "headers");  /* [res] */
  lua_pushlstring(L, r->body_out.p ? r->body_out.p : "", r->body_out.n);
  lua_setfield(L, -2, "body");
  lua_pushnumber(L, r->elapsed);
  lua_setfield(L, -2, "elapsed");
  if (r->stream) {
    lua_pushinteger(L, r->events);
    lua_setfield(L, -2, "events");
  }
  if (r->stopped) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "stopped");
  }
  if (r->redirects > 0) {
    lua_pushinteger(L, r->redirects);
    lua_setfield(L, -2, "redirects");
  }
}

/* Runs the batch on the session; when libcurl cannot be loaded, every
** request fails with code "unsupported".  Raises on re-entry. */
static void runbatch (lua_State *L, LBatch *b, size_t concurrency) {
  char err[AG_ERRLEN];
  ag_http *h = session(L, err);
  if (h == NULL) {
    for (size_t i = 0; i < b->n; i++) {
      b->reqs[i].code = AG_HTTP_UNSUPPORTED;
      snprintf(b->reqs[i].err, AG_ERRLEN, "%s", err);
    }
    return;
  }
  if (ag_http_run(h, b->ptrs, b->n, concurrency) == AG_EBUSY)
    luaL_error(L, "http: a request cannot be made from inside an on_event callback");
}

/* request(req) -> res | nil, msg, code */
static int http_request (lua_State *L) {
  LBatch *b;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  b = newbatch(L, 1);  /* [req, b] */
  lua_getiuservalue(L, 2, 1);  /* [req, b, anchors] */
  lua_createtable(L, 1, 0);    /* [req, b, anchors, fns] */
  readreq(L, b, 0, 1, 3, 4);
  runbatch(L, b, 1);
  if (b->reqs[0].code != AG_HTTP_OK)
    return pushfail(L, b->reqs[0].err, ag_http_codename(b->reqs[0].code));
  pushres(L, &b->reqs[0]);
  return 1;
}

/* all(reqs, concurrency) -> {res | {err=, code=}, ...} in input order */
static int http_all (lua_State *L) {
  LBatch *b;
  size_t n;
  lua_Integer conc;
  luaL_checktype(L, 1, LUA_TTABLE);
  conc = luaL_optinteger(L, 2, 16);
  luaL_argcheck(L, conc >= 1, 2, "concurrency must be at least 1");
  lua_settop(L, 2);
  n = (size_t)lua_rawlen(L, 1);
  b = newbatch(L, n);          /* [reqs, conc, b] */
  lua_getiuservalue(L, 3, 1);  /* [reqs, conc, b, anchors] */
  lua_createtable(L, (int)n, 0);  /* [reqs, conc, b, anchors, fns] */
  luaL_checkstack(L, 8, "http: all");
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (lua_Integer)i + 1);  /* [..., req] */
    readreq(L, b, i, 6, 4, 5);
    lua_pop(L, 1);
  }
  runbatch(L, b, (size_t)conc);
  lua_createtable(L, (int)n, 0);  /* [..., out] */
  for (size_t i = 0; i < n; i++) {
    const ag_http_req *r = &b->reqs[i];
    if (r->code == AG_HTTP_OK) pushres(L, r);
    else {
      lua_createtable(L, 0, 2);
      lua_pushstring(L, r->err);
      lua_setfield(L, -2, "err");
      lua_pushstring(L, ag_http_codename(r->code));
      lua_setfield(L, -2, "code");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* }====================================================================== */

/*
** {======================================================================
** SSE parser alone (for specs and fuzzing) and sleep
** =======================================================================
*/

static int sse_gc (lua_State *L) {
  LSse *s = (LSse *)luaL_checkudata(L, 1, HTTP_SSE);
  if (s->live) ag_sse_free(&s->p);
  s->live = 0;
  return 0;
}

/* sse_parse(chunks, fn) -> 'ok' | 'pending' | 'stopped' | nil, msg, 'aborted'
** Feeds each string of `chunks` in turn, calling fn(ev) as a transfer would;
** 'pending' means the input ended inside an event. */
static int http_sse_parse (lua_State *L) {
  LSse *s;
  cbctx cb;
  char err[AG_ERRLEN];
  size_t n;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  s = (LSse *)lua_newuserdatauv(L, sizeof *s, 0);  /* [chunks, fn, s] */
  s->live = 0;
  luaL_setmetatable(L, HTTP_SSE);
  lua_toclose(L, 3);
  ag_sse_init(&s->p);
  s->live = 1;
  lua_createtable(L, 1, 0);  /* [chunks, fn, s, fns] */
  lua_pushvalue(L, 2);
  lua_rawseti(L, 4, 1);
  cb.L = L;
  cb.fns = 4;
  cb.i = 1;
  n = (size_t)lua_rawlen(L, 1);
  for (size_t i = 0; i < n; i++) {
    size_t len;
    const char *chunk;
    int rc;
    lua_rawgeti(L, 1, (lua_Integer)i + 1);  /* [..., chunk] */
    chunk = lua_tolstring(L, -1, &len);
    if (chunk == NULL) luaL_error(L, "http: chunk %d is not a string", (int)i + 1);
    rc = ag_sse_feed(&s->p, chunk, len, lua_event, &cb, err);
    lua_pop(L, 1);
    if (rc == AG_SSE_STOP) { lua_pushliteral(L, "stopped"); return 1; }
    if (rc == AG_SSE_ABORT) {
      lua_pushfstring(L, "http: sse: callback: %s", err);
      return pushfail(L, lua_tostring(L, -1), "aborted");
    }
    if (rc == AG_SSE_NOMEM) luaL_error(L, "not enough memory");
  }
  lua_pushstring(L, ag_sse_pending(&s->p) ? "pending" : "ok");
  return 1;
}

/* sleep(seconds): blocks the process (nanosleep, resumed after signals). */
static int http_sleep (lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts, rem;
  luaL_argcheck(L, s >= 0 && s < 1e9, 1, "seconds must be in [0, 1e9)");
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  if (ts.tv_nsec > 999999999L) ts.tv_nsec = 999999999L;
  while (nanosleep(&ts, &rem) != 0 && errno == EINTR) ts = rem;
  return 0;
}

/* redact(url) -> url without user info, query values and fragment */
static int http_redact (lua_State *L) {
  char out[1024];
  ag_http_redact(luaL_checkstring(L, 1), out, sizeof out);
  lua_pushstring(L, out);
  return 1;
}

/* }====================================================================== */

static const luaL_Reg funcs[] = {
  {"all", http_all},
  {"close", http_close},
  {"redact", http_redact},
  {"request", http_request},
  {"sleep", http_sleep},
  {"sse_parse", http_sse_parse},
  {NULL, NULL}
};

static const luaL_Reg no_meth[] = {{NULL, NULL}};
static const luaL_Reg session_mm[] = {{"__index", NULL}, {"__gc", session_gc}, {NULL, NULL}};
static const luaL_Reg batch_mm[] = {{"__index", NULL}, {"__gc", batch_gc},
                                    {"__close", batch_gc}, {NULL, NULL}};
static const luaL_Reg sse_mm[] = {{"__index", NULL}, {"__gc", sse_gc},
                                  {"__close", sse_gc}, {NULL, NULL}};

AGLIB_API int luaopen_aegis_core_http(lua_State *L);
AGLIB_API int luaopen_aegis_core_http (lua_State *L) {
  agL_newclass(L, HTTP_SESSION, no_meth, session_mm);
  agL_newclass(L, HTTP_BATCH, no_meth, batch_mm);
  agL_newclass(L, HTTP_SSE, no_meth, sse_mm);
  luaL_newlib(L, funcs);
  return 1;
}
