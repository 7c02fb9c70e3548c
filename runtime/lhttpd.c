/*
** lhttpd.c: aegis.core.httpd, a small HTTP server on libmicrohttpd for the
** provider emulator (lua/aegis/emulator/).  Private: the emulator is its
** only user.
**
** libmicrohttpd runs in "external select" mode: `server:run()` drives it
** from the calling thread, so request handlers are Lua functions called on
** that thread, each under lua_pcall (an error in one becomes a 500 and a
** line on stderr, never a crash or a longjmp through the library).
**
** A handler returns a response *plan* that C executes without Lua:
**   {status=, headers={name=value}, body=string}
**   {status=, headers=, chunks={{data=, delay=, rep=}, ...}, ending=}
** plus fault fields: reset=true (reset the connection before any byte),
** reset_after=N (reset after N body bytes), trickle=seconds (one byte per
** interval), delay=seconds (before the status line), ending='close'|'reset'
** (how a body ends: a close without the chunked terminator, or a reset).
** A `chunks` plan is sent with chunked encoding (unless chunked=false); a
** `body` with a Content-Length.
**
** Delays never block: the connection is suspended (MHD_suspend_connection)
** and resumed by the loop when its time comes, so other connections go on.
** Request bodies over `max_body` bytes are discarded and the handler sees
** `too_large = true`.  Header values reach the handler and nothing else:
** this file never prints them.
*/
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>

#include "ag_mhd.h"
#include "lauxag.h"

#define HTTPD_SERVER "aegis.httpd.Server"
#define BLOCK_SIZE (64 * 1024)

enum { END_NORMAL = 0, END_CLOSE, END_RESET };

typedef struct seg {
  char *data;               /* owned */
  size_t len;
  lua_Integer rep;          /* times the data is sent */
  double delay;             /* seconds to wait before the first byte */
} seg;

typedef struct server server;

/* One request, from its headers to its completion (MHD's con_cls).  Owned
** by the server's connection; freed by on_completed. */
typedef struct req {
  server *srv;
  struct MHD_Connection *conn;
  char *body;               /* the upload, owned */
  size_t len, cap;
  int too_large;
  int planned;              /* the handler has run */
  /* the plan */
  unsigned status;
  char **hdrs;              /* name, value, name, value...; owned */
  size_t nhdrs;             /* strings filled */
  seg *segs;                /* owned */
  size_t nsegs;
  int chunked;
  int end;                  /* END_* */
  int reset_now;
  long long reset_after;    /* -1: none */
  double trickle;           /* seconds per byte, 0: none */
  double delay;             /* before the status line */
  /* where the reader is */
  size_t si, off;
  lua_Integer ri;
  unsigned long long sent;
  int waited, paused;
  /* sleeping (suspended) */
  double wake;
  int asleep;
  struct req *prev, *next;
} req;

struct server {
  const ag_mhd_api *api;
  struct MHD_Daemon *d;
  lua_State *L;             /* the state running `run`, NULL outside it */
  int hidx;                 /* stack index of the handler inside `run` */
  size_t max_body;
  int running, stop;
  req *sleepers;            /* suspended connections, a list */
  unsigned short port;
};

typedef struct LServer { server *s; } LServer;  /* s == NULL: closed */

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
** {======================================================
** Requests and their plans (C only: no Lua here)
** =======================================================
*/

static void plan_free (req *r) {
  for (size_t i = 0; i < r->nhdrs; i++) free(r->hdrs[i]);
  free(r->hdrs);
  r->hdrs = NULL;
  r->nhdrs = 0;
  for (size_t i = 0; i < r->nsegs; i++) free(r->segs[i].data);
  free(r->segs);
  r->segs = NULL;
  r->nsegs = 0;
}

static void unsleep (req *r) {
  server *s = r->srv;
  if (!r->asleep) return;
  if (r->prev) r->prev->next = r->next; else s->sleepers = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  r->asleep = 0;
}

/* Suspends the connection for `seconds`; the loop resumes it. */
static void sleep_for (req *r, double seconds) {
  server *s = r->srv;
  r->wake = now() + seconds;
  r->asleep = 1;
  r->prev = NULL;
  r->next = s->sleepers;
  if (s->sleepers) s->sleepers->prev = r;
  s->sleepers = r;
  s->api->MHD_suspend_connection(r->conn);
}

/*
** Resets the connection (RST) now.  SO_LINGER 0 alone is not enough: MHD
** shuts the socket down for writing (a FIN) before it closes it, and the
** client would see a clean end.  connect() to AF_UNSPEC disconnects a TCP
** socket at once, with a reset on Linux; MHD's later shutdown and close
** then act on a dead socket, which is harmless.
*/
static void set_reset (req *r) {
  const union MHD_ConnectionInfo *ci =
      r->srv->api->MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci != NULL) {
    struct linger lg = {1, 0};
    struct sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNSPEC;
    setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    (void)connect(ci->connect_fd, &sa, sizeof sa);
  }
}

/* A fixed 500 when the handler failed; never fails itself (a reset if
** memory is short). */
static void plan_internal_error (req *r) {
  static const char msg[] = "{\"error\":{\"message\":\"emulator: handler error\","
                            "\"type\":\"server_error\"}}";
  plan_free(r);
  r->status = 500;
  r->chunked = 0;
  r->end = END_NORMAL;
  r->reset_after = -1;
  r->trickle = r->delay = 0;
  r->segs = calloc(1, sizeof *r->segs);
  if (r->segs == NULL || (r->segs[0].data = malloc(sizeof msg)) == NULL) {
    r->reset_now = 1;
    return;
  }
  r->nsegs = 1;
  memcpy(r->segs[0].data, msg, sizeof msg - 1);
  r->segs[0].len = sizeof msg - 1;
  r->segs[0].rep = 1;
}

/* MHD_ContentReaderCallback: the body, segment by segment. */
static ssize_t reader (void *cls, uint64_t pos, char *buf, size_t max) {
  req *r = cls;
  (void)pos;
  if (r->reset_after >= 0 && r->sent >= (unsigned long long)r->reset_after) {
    set_reset(r);
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  while (r->si < r->nsegs) {  /* skip what has nothing to send */
    seg *g = &r->segs[r->si];
    if (g->delay > 0 && !r->waited) {
      r->waited = 1;
      sleep_for(r, g->delay);
      return 0;
    }
    if (g->len > 0 && g->rep > r->ri) break;
    r->si++;
    r->ri = 0;
    r->off = 0;
    r->waited = 0;
  }
  if (r->si >= r->nsegs) {
    if (r->end == END_NORMAL) return MHD_CONTENT_READER_END_OF_STREAM;
    if (r->end == END_RESET) set_reset(r);
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  if (r->trickle > 0 && r->sent > 0 && !r->paused) {
    r->paused = 1;
    sleep_for(r, r->trickle);
    return 0;
  }
  r->paused = 0;
  seg *g = &r->segs[r->si];
  size_t n = g->len - r->off;
  if (n > max) n = max;
  if (r->trickle > 0) n = 1;
  if (r->reset_after >= 0 && (unsigned long long)r->reset_after - r->sent < n)
    n = (size_t)((unsigned long long)r->reset_after - r->sent);
  memcpy(buf, g->data + r->off, n);
  r->off += n;
  r->sent += n;
  if (r->off == g->len) {
    r->off = 0;
    if (++r->ri >= g->rep) {
      r->ri = 0;
      r->si++;
      r->waited = 0;
    }
  }
  return (ssize_t)n;
}

static enum MHD_Result respond (req *r) {
  const ag_mhd_api *api = r->srv->api;
  if (r->reset_now) {
    set_reset(r);
    return MHD_NO;  /* MHD closes the connection: with SO_LINGER 0, a reset */
  }
  uint64_t size = MHD_SIZE_UNKNOWN;
  if (!r->chunked) {
    size = 0;
    for (size_t i = 0; i < r->nsegs; i++) size += (uint64_t)r->segs[i].len * (uint64_t)r->segs[i].rep;
  }
  struct MHD_Response *resp = api->MHD_create_response_from_callback(size, BLOCK_SIZE, reader, r, NULL);
  if (resp == NULL) return MHD_NO;
  for (size_t i = 0; i + 1 < r->nhdrs; i += 2)
    api->MHD_add_response_header(resp, r->hdrs[i], r->hdrs[i + 1]);
  enum MHD_Result ret = api->MHD_queue_response(r->conn, r->status, resp);
  api->MHD_destroy_response(resp);  /* the connection keeps its reference */
  return ret;
}

/* }====================================================== */

/*
** {======================================================
** The handler call (Lua, protected)
** =======================================================
*/

typedef struct call_ctx {
  req *r;
  const char *url, *method;
} call_ctx;

static enum MHD_Result count_header (void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t key_size, const char *value, size_t value_size) {
  (void)kind; (void)key; (void)key_size; (void)value; (void)value_size;
  (*(size_t *)cls)++;
  return MHD_YES;
}

typedef struct hdr_list { size_t n, cap; const char **kv; size_t *len; } hdr_list;

static enum MHD_Result collect_header (void *cls, enum MHD_ValueKind kind, const char *key,
                                       size_t key_size, const char *value, size_t value_size) {
  hdr_list *h = cls;
  (void)kind;
  if (h->n + 2 > h->cap) return MHD_NO;
  h->kv[h->n] = key; h->len[h->n++] = key_size;
  h->kv[h->n] = value; h->len[h->n++] = value_size;
  return MHD_YES;
}

/* Copies a string into C memory; raises on a memory failure. */
static char *dupstring (lua_State *L, const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p == NULL) luaL_error(L, "httpd: out of memory");
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

static double optseconds (lua_State *L, int t, const char *field) {
  double v = 0;
  if (lua_getfield(L, t, field) != LUA_TNIL) {
    if (lua_isboolean(L, -1)) v = lua_toboolean(L, -1) ? 1.0 : 0.0;
    else if (lua_isnumber(L, -1)) v = (double)lua_tonumber(L, -1);
    else luaL_error(L, "httpd: plan.%s must be a number", field);
    if (!(v >= 0 && v < 86400)) luaL_error(L, "httpd: plan.%s out of range", field);
  }
  lua_pop(L, 1);
  return v;
}

/* Turns the plan at `t` into r's C fields.  Everything allocated is stored
** in r before the next call that may raise, so r owns it either way. */
static void read_plan (lua_State *L, int t, req *r) {
  luaL_checktype(L, t, LUA_TTABLE);
  lua_Integer status = 200;
  if (lua_getfield(L, t, "status") != LUA_TNIL) {
    status = lua_tointeger(L, -1);
    if (status < 100 || status > 999) luaL_error(L, "httpd: plan.status must be 100..999");
  }
  lua_pop(L, 1);
  r->status = (unsigned)status;
  lua_getfield(L, t, "reset");
  r->reset_now = lua_toboolean(L, -1);
  lua_pop(L, 1);
  r->reset_after = -1;
  if (lua_getfield(L, t, "reset_after") != LUA_TNIL) {
    lua_Integer n = lua_tointeger(L, -1);
    if (n < 0) luaL_error(L, "httpd: plan.reset_after must be a non-negative integer");
    r->reset_after = (long long)n;
  }
  lua_pop(L, 1);
  r->trickle = optseconds(L, t, "trickle");
  r->delay = optseconds(L, t, "delay");
  static const char *const ends[] = {"end", "close", "reset", NULL};
  lua_getfield(L, t, "ending");
  r->end = lua_isnil(L, -1) ? END_NORMAL : luaL_checkoption(L, -1, NULL, ends);
  lua_pop(L, 1);

  if (lua_getfield(L, t, "headers") == LUA_TTABLE) {
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) { n++; lua_pop(L, 1); }
    r->hdrs = calloc(2 * n + 1, sizeof *r->hdrs);
    if (r->hdrs == NULL) luaL_error(L, "httpd: out of memory");
    lua_pushnil(L);
    while (lua_next(L, -2) && r->nhdrs < 2 * n) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "httpd: plan.headers must map strings to strings");
      size_t kl, vl;
      const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
      r->hdrs[r->nhdrs] = dupstring(L, k, kl);
      r->nhdrs++;
      r->hdrs[r->nhdrs] = dupstring(L, v, vl);
      r->nhdrs++;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);

  if (lua_getfield(L, t, "chunks") == LUA_TTABLE) {
    int c = lua_gettop(L);
    size_t n = (size_t)lua_rawlen(L, c);
    lua_getfield(L, t, "chunked");  /* chunked = false: send a Content-Length */
    r->chunked = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    r->segs = calloc(n + 1, sizeof *r->segs);
    if (r->segs == NULL) luaL_error(L, "httpd: out of memory");
    for (size_t i = 0; i < n; i++) {
      if (lua_rawgeti(L, c, (lua_Integer)i + 1) != LUA_TTABLE)
        luaL_error(L, "httpd: plan.chunks[%d] must be a table", (int)i + 1);
      int e = lua_gettop(L);
      seg *g = &r->segs[i];
      r->nsegs = i + 1;
      g->rep = 1;
      if (lua_getfield(L, e, "data") != LUA_TNIL) {
        size_t len;
        const char *d = lua_tolstring(L, -1, &len);
        if (d == NULL) luaL_error(L, "httpd: plan.chunks[%d].data must be a string", (int)i + 1);
        g->data = dupstring(L, d, len);
        g->len = len;
      }
      lua_pop(L, 1);
      if (lua_getfield(L, e, "rep") != LUA_TNIL) {
        g->rep = lua_tointeger(L, -1);
        if (g->rep < 0) luaL_error(L, "httpd: plan.chunks[%d].rep must be >= 0", (int)i + 1);
      }
      lua_pop(L, 1);
      g->delay = optseconds(L, e, "delay");
      lua_pop(L, 1);  /* the chunk */
    }
  } else {
    lua_pop(L, 1);
    r->segs = calloc(1, sizeof *r->segs);
    if (r->segs == NULL) luaL_error(L, "httpd: out of memory");
    r->nsegs = 1;
    r->segs[0].rep = 1;
    if (lua_getfield(L, t, "body") != LUA_TNIL) {
      size_t len;
      const char *d = lua_tolstring(L, -1, &len);
      if (d == NULL) luaL_error(L, "httpd: plan.body must be a string");
      r->segs[0].data = dupstring(L, d, len);
      r->segs[0].len = len;
    }
  }
  lua_pop(L, 1);
}

/* Protected: [handler, call_ctx] -> builds the request, calls the handler
** and reads its plan into the req. */
static int call_handler (lua_State *L) {
  call_ctx *cc = lua_touserdata(L, 2);
  req *r = cc->r;
  const ag_mhd_api *api = r->srv->api;
  lua_settop(L, 2);
  lua_createtable(L, 0, 6);  /* [handler, ctx, request] */
  lua_pushstring(L, cc->method);
  lua_setfield(L, 3, "method");
  lua_pushstring(L, cc->url);
  lua_setfield(L, 3, "path");
  if (r->too_large) {
    lua_pushboolean(L, 1);
    lua_setfield(L, 3, "too_large");
  } else {
    lua_pushlstring(L, r->body ? r->body : "", r->len);
    lua_setfield(L, 3, "body");
  }
  /* headers: gathered in C first (no Lua inside MHD's iteration) */
  size_t n = 0;
  api->MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, count_header, &n);
  hdr_list h = {0, 2 * n, NULL, NULL};
  h.kv = lua_newuserdatauv(L, (2 * n + 1) * sizeof *h.kv, 0);   /* [.., req, kv] */
  h.len = lua_newuserdatauv(L, (2 * n + 1) * sizeof *h.len, 0); /* [.., req, kv, len] */
  api->MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, collect_header, &h);
  lua_createtable(L, 0, (int)n);  /* [.., req, kv, len, headers] */
  for (size_t i = 0; i + 1 < h.n; i += 2) {
    luaL_Buffer b;
    char *lower = luaL_buffinitsize(L, &b, h.len[i]);
    for (size_t j = 0; j < h.len[i]; j++) {
      char ch = h.kv[i][j];
      lower[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    luaL_pushresultsize(&b, h.len[i]);
    lua_pushlstring(L, h.kv[i + 1] ? h.kv[i + 1] : "", h.kv[i + 1] ? h.len[i + 1] : 0);
    lua_rawset(L, -3);
  }
  lua_setfield(L, 3, "headers");  /* [handler, ctx, request, kv, len] */
  lua_settop(L, 3);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 3);
  lua_call(L, 1, 1);              /* [handler, ctx, request, plan] */
  read_plan(L, 4, r);
  return 0;
}

static void run_handler (server *s, req *r, const char *url, const char *method) {
  lua_State *L = s->L;
  call_ctx cc = {r, url, method};
  lua_pushcfunction(L, call_handler);
  lua_pushvalue(L, s->hidx);
  lua_pushlightuserdata(L, &cc);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "emulator: %s %s: handler error: %s\n", method, url,
            msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
    plan_internal_error(r);
  }
}

/* }====================================================== */

/* MHD_AccessHandlerCallback: called on the headers, on each piece of the
** upload, then once more with nothing (and again after a resume). */
static enum MHD_Result on_request (void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls) {
  server *s = cls;
  req *r = *con_cls;
  (void)version;
  if (r == NULL) {
    r = calloc(1, sizeof *r);
    if (r == NULL) return MHD_NO;
    r->srv = s;
    r->conn = conn;
    r->reset_after = -1;
    *con_cls = r;
    return MHD_YES;
  }
  if (*upload_size > 0) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (r->too_large) return MHD_YES;
    if (r->len + n > s->max_body) {
      r->too_large = 1;
      free(r->body);
      r->body = NULL;
      r->len = r->cap = 0;
      return MHD_YES;
    }
    if (r->len + n > r->cap) {
      size_t cap = r->cap ? r->cap : 4096;
      while (cap < r->len + n) cap *= 2;
      char *p = realloc(r->body, cap);
      if (p == NULL) return MHD_NO;
      r->body = p;
      r->cap = cap;
    }
    memcpy(r->body + r->len, upload, n);
    r->len += n;
    return MHD_YES;
  }
  if (!r->planned) {
    r->planned = 1;
    if (s->L == NULL) plan_internal_error(r);  /* not inside run: cannot happen */
    else run_handler(s, r, url, method);
    if (r->delay > 0 && !r->reset_now) {
      double d = r->delay;
      r->delay = 0;
      sleep_for(r, d);
      return MHD_YES;
    }
  }
  return respond(r);
}

/* MHD_RequestCompletedCallback: the request is over, free its state. */
static void on_completed (void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe) {
  req *r = *con_cls;
  (void)cls; (void)conn; (void)toe;
  if (r == NULL) return;
  unsleep(r);
  plan_free(r);
  free(r->body);
  free(r);
  *con_cls = NULL;
}

/*
** {======================================================
** The server object
** =======================================================
*/

static LServer *toserver (lua_State *L) {
  return (LServer *)luaL_checkudata(L, 1, HTTPD_SERVER);
}

static server *checkopen (lua_State *L) {
  LServer *p = toserver(L);
  if (p->s == NULL) luaL_error(L, "attempt to use a closed server");
  return p->s;
}

static void server_free (server *s) {
  if (s == NULL) return;
  /* MHD_stop_daemon must not find suspended connections */
  while (s->sleepers) {
    req *r = s->sleepers;
    unsleep(r);
    s->api->MHD_resume_connection(r->conn);
  }
  if (s->d) s->api->MHD_stop_daemon(s->d);
  free(s);
}

/* listen(host, port, handler [, max_body]) -> server | nil, msg, code */
static int httpd_listen (lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_Integer max_body = luaL_optinteger(L, 4, 32 * 1024 * 1024);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port must be 0..65535");
  luaL_argcheck(L, max_body >= 0, 4, "max_body must be non-negative");
  struct sockaddr_in sa4;
  struct sockaddr_in6 sa6;
  memset(&sa4, 0, sizeof sa4);
  memset(&sa6, 0, sizeof sa6);
  int v6 = 0;
  if (inet_pton(AF_INET, host, &sa4.sin_addr) == 1) {
    sa4.sin_family = AF_INET;
    sa4.sin_port = htons((uint16_t)port);
  } else if (inet_pton(AF_INET6, host, &sa6.sin6_addr) == 1) {
    v6 = 1;
    sa6.sin6_family = AF_INET6;
    sa6.sin6_port = htons((uint16_t)port);
  } else {
    return agL_pushfail(L, AG_EINVAL, "httpd: listen '%s': not an IP address", host);
  }
  char err[AG_ERRLEN];
  const ag_mhd_api *api = ag_mhd(err);
  if (api == NULL) return agL_pushfail(L, AG_EUNSUPPORTED, "%s", err);

  LServer *p = (LServer *)lua_newuserdatauv(L, sizeof *p, 1);  /* [.., ud] */
  p->s = NULL;
  luaL_setmetatable(L, HTTPD_SERVER);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, 1);  /* the handler lives as long as the server */
  server *s = calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "httpd: out of memory");
  p->s = s;
  s->api = api;
  s->max_body = (size_t)max_body;
  unsigned flags = MHD_ALLOW_SUSPEND_RESUME | (v6 ? MHD_USE_IPv6 : 0);
  const struct sockaddr *sa = v6 ? (const struct sockaddr *)&sa6 : (const struct sockaddr *)&sa4;
  s->d = api->MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s,
                               MHD_OPTION_SOCK_ADDR, sa,
                               MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)300,
                               MHD_OPTION_END);  /* no SO_REUSEPORT: a taken port must fail */
  if (s->d == NULL) {
    int e = errno;
    server_free(s);
    p->s = NULL;
    return agL_pushfail(L, AG_EIO, "httpd: listen '%s' port %d: %s", host, (int)port,
                        e ? strerror(e) : "cannot start the server");
  }
  const union MHD_DaemonInfo *di = api->MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_LISTEN_FD);
  if (di != NULL) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(di->listen_fd, (struct sockaddr *)&ss, &sl) == 0)
      s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
  }
  return 1;
}

/* server:port() -> the bound port (the one picked when 0 was asked) */
static int srv_port (lua_State *L) {
  lua_pushinteger(L, checkopen(L)->port);
  return 1;
}

/* server:stop(): makes `run` return after the current step ("stopped") */
static int srv_stop (lua_State *L) {
  checkopen(L)->stop = 1;
  return 0;
}

static volatile sig_atomic_t got_signal;

static void on_signal (int sig) {
  got_signal = sig;
}

/* Resumes the connections whose time has come; returns how many. */
static int resume_due (server *s, double t) {
  int n = 0;
  req *r = s->sleepers;
  while (r != NULL) {
    req *next = r->next;
    if (r->wake <= t) {
      unsleep(r);
      s->api->MHD_resume_connection(r->conn);
      n++;
    }
    r = next;
  }
  return n;
}

/*
** server:run([opts]) -> reason: serves until `opts.seconds` have passed
** ("timeout"), `server:stop()` was called ("stopped") or, with
** `opts.signals`, SIGINT or SIGTERM arrived ("SIGINT", "SIGTERM").
** Signals are blocked except while waiting (pselect), so none is lost.
*/
static int srv_run (lua_State *L) {
  server *s = checkopen(L);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  double seconds = -1;
  int signals = 0;
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, "seconds") != LUA_TNIL) seconds = luaL_checknumber(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "signals");
    signals = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (s->running) return luaL_error(L, "httpd: the server is already running");
  lua_settop(L, 2);
  luaL_checkstack(L, 8, "httpd: run");
  lua_getiuservalue(L, 1, 1);  /* [server, opts, handler] */
  s->hidx = 3;
  s->L = L;
  s->running = 1;
  s->stop = 0;

  sigset_t block, orig;
  struct sigaction sa, old_int, old_term;
  if (signals) {
    got_signal = 0;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &orig);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  double deadline = seconds >= 0 ? now() + seconds : -1;
  const char *reason = "stopped";
  const ag_mhd_api *api = s->api;
  int failed = 0;
  char why[128] = "";
  for (;;) {
    if (s->stop) { reason = "stopped"; break; }
    if (signals && got_signal) { reason = got_signal == SIGINT ? "SIGINT" : "SIGTERM"; break; }
    double t = now();
    if (deadline >= 0 && t >= deadline) { reason = "timeout"; break; }
    /* a resumed connection needs MHD_run before MHD_get_fdset2 sees it */
    if (s->sleepers && resume_due(s, t) > 0) api->MHD_run(s->d);
    fd_set rs, ws, es;
    FD_ZERO(&rs); FD_ZERO(&ws); FD_ZERO(&es);
    MHD_socket maxfd = 0;
    if (api->MHD_get_fdset2(s->d, &rs, &ws, &es, &maxfd, FD_SETSIZE) != MHD_YES) {
      failed = 1;
      snprintf(why, sizeof why, "cannot get the sockets to wait on");
      break;
    }
    double wait = 1.0;
    MHD_UNSIGNED_LONG_LONG ms;
    if (api->MHD_get_timeout(s->d, &ms) == MHD_YES && (double)ms / 1000.0 < wait) wait = (double)ms / 1000.0;
    for (req *r = s->sleepers; r != NULL; r = r->next)
      if (r->wake - t < wait) wait = r->wake - t;
    if (deadline >= 0 && deadline - t < wait) wait = deadline - t;
    if (wait < 0) wait = 0;
    struct timespec ts;
    ts.tv_sec = (time_t)wait;
    ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
    int rc = pselect(maxfd + 1, &rs, &ws, &es, &ts, signals ? &orig : NULL);
    if (rc < 0) {
      if (errno == EINTR) continue;
      failed = 1;
      snprintf(why, sizeof why, "select: %s", strerror(errno));
      break;
    }
    api->MHD_run_from_select(s->d, &rs, &ws, &es);
  }
  s->running = 0;
  s->L = NULL;
  if (signals) {
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigprocmask(SIG_SETMASK, &orig, NULL);
  }
  if (failed) return agL_pushfail(L, AG_EIO, "httpd: run: %s", why);
  lua_pushstring(L, reason);
  return 1;
}

/* __gc and __close: silent and idempotent */
static int srv_gc (lua_State *L) {
  LServer *p = toserver(L);
  if (p->s != NULL && p->s->running) return 0;  /* cannot happen: run holds a reference */
  server_free(p->s);
  p->s = NULL;
  return 0;
}

/* server:close() -> true */
static int srv_close (lua_State *L) {
  LServer *p = toserver(L);
  if (p->s != NULL && p->s->running) return luaL_error(L, "httpd: close: the server is running");
  server_free(p->s);
  p->s = NULL;
  lua_pushboolean(L, 1);
  return 1;
}

static int srv_tostring (lua_State *L) {
  LServer *p = toserver(L);
  if (p->s == NULL) lua_pushliteral(L, "aegis.httpd.Server (closed)");
  else lua_pushfstring(L, "aegis.httpd.Server (port %d)", (int)p->s->port);
  return 1;
}

/* version() -> libmicrohttpd's version string (loads the library) */
static int httpd_version (lua_State *L) {
  char err[AG_ERRLEN];
  const ag_mhd_api *api = ag_mhd(err);
  if (api == NULL) return agL_pushfail(L, AG_EUNSUPPORTED, "%s", err);
  lua_pushstring(L, api->MHD_get_version());
  return 1;
}

/* }====================================================== */

static const luaL_Reg funcs[] = {
  {"listen", httpd_listen},
  {"version", httpd_version},
  {NULL, NULL}
};

static const luaL_Reg meth[] = {
  {"close", srv_close},
  {"port", srv_port},
  {"run", srv_run},
  {"stop", srv_stop},
  {NULL, NULL}
};

static const luaL_Reg metameth[] = {
  {"__index", NULL},
  {"__gc", srv_gc},
  {"__close", srv_gc},
  {"__tostring", srv_tostring},
  {NULL, NULL}
};

AGLIB_API int luaopen_aegis_core_httpd(lua_State *L);
AGLIB_API int luaopen_aegis_core_httpd (lua_State *L) {
  agL_newclass(L, HTTPD_SERVER, meth, metameth);
  luaL_newlib(L, funcs);
  return 1;
}
