/*
** ag_http.c: HTTP transfers through one curl multi handle, SSE parsing,
** redirects followed by hand.
**
** Why redirects are followed here and not by libcurl: libcurl keeps custom
** headers on every hop (it only holds back its own Authorization and
** cookies when the host changes), so an `x-api-key` header would reach
** whatever host a redirect names.  ag_http_run follows a 3xx itself when
** asked, checks the target's scheme, and rebuilds the header list without
** credentials as soon as the origin (scheme, host, port) changes.
*/
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ag_curl.h"
#include "ag_http.h"

/* Idle easy handles kept for reuse; connections live in the multi handle. */
#define POOL 64
/* Connections the multi handle keeps open between calls. */
#define MAXCONNECTS 64L

static const char *const codenames[AG_HTTP_NCODES] = {
  [AG_HTTP_OK] = "ok", [AG_HTTP_TIMEOUT] = "timeout", [AG_HTTP_CONN] = "conn",
  [AG_HTTP_TLS] = "tls", [AG_HTTP_TOO_LARGE] = "too_large",
  [AG_HTTP_ABORTED] = "aborted", [AG_HTTP_TRUNCATED] = "truncated",
  [AG_HTTP_REDIRECT] = "redirect", [AG_HTTP_PROTO] = "proto",
  [AG_HTTP_NOMEM] = "nomem", [AG_HTTP_UNSUPPORTED] = "unsupported",
};

const char *ag_http_codename (int code) {
  return (code >= 0 && code < AG_HTTP_NCODES) ? codenames[code] : "unknown";
}

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
** {======================================================================
** Buffers
** =======================================================================
*/

static int buf_reserve (ag_buf *b, size_t extra) {
  size_t need, cap;
  if (b->cap - b->n >= extra) return 0;
  need = b->n + extra;
  if (need < b->n) return -1;
  cap = b->cap ? b->cap : 256;
  while (cap < need) cap = (cap > SIZE_MAX / 2) ? need : cap * 2;
  char *p = realloc(b->p, cap);
  if (p == NULL) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int buf_add (ag_buf *b, const char *s, size_t n) {
  if (n == 0) return 0;  /* also keeps memcpy away from NULL */
  if (buf_reserve(b, n)) return -1;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  return 0;
}

void ag_buf_free (ag_buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

/* }====================================================================== */

/*
** {======================================================================
** Server-Sent Events
** =======================================================================
*/

void ag_sse_init (ag_sse *p) {
  memset(p, 0, sizeof *p);
  p->retry = -1;
}

void ag_sse_free (ag_sse *p) {
  ag_buf_free(&p->line);
  ag_buf_free(&p->data);
  ag_buf_free(&p->event);
  ag_buf_free(&p->id);
}

int ag_sse_pending (const ag_sse *p) {
  return p->line.n > 0 || p->infield;
}

/* A blank line: dispatch what the fields gathered, if any data came. */
static int dispatch (ag_sse *p, ag_sse_fn fn, void *ud, char *err) {
  ag_sse_event ev;
  int rc;
  p->infield = 0;
  if (p->data.n == 0) {  /* no data: nothing to dispatch, forget the type */
    p->event.n = 0;
    return AG_SSE_CONTINUE;
  }
  ev.event = p->event.n ? p->event.p : "message";
  ev.event_len = p->event.n ? p->event.n : 7;
  ev.data = p->data.p;
  ev.data_len = p->data.n - 1;  /* without the last \n */
  ev.id = p->id.n ? p->id.p : "";
  ev.id_len = p->id.n;
  ev.retry = p->retry;
  rc = fn(ud, &ev, err);
  p->data.n = 0;
  p->event.n = 0;
  return rc;
}

static int isfield (const char *s, size_t n, const char *name) {
  return n == strlen(name) && memcmp(s, name, n) == 0;
}

/* One line, without its end. */
static int line (ag_sse *p, const char *s, size_t n, ag_sse_fn fn, void *ud,
                 char *err) {
  const char *colon, *v;
  size_t fl, vl;
  if (!p->started) {
    p->started = 1;
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
      s += 3;  /* a byte order mark may open the stream */
      n -= 3;
    }
  }
  if (n == 0) return dispatch(p, fn, ud, err);
  if (s[0] == ':') return AG_SSE_CONTINUE;  /* a comment */
  colon = memchr(s, ':', n);
  fl = colon ? (size_t)(colon - s) : n;
  v = colon ? colon + 1 : s + n;
  vl = colon ? n - fl - 1 : 0;
  if (vl > 0 && v[0] == ' ') { v++; vl--; }  /* one space, no more */
  p->infield = 1;
  if (isfield(s, fl, "data")) {
    if (buf_add(&p->data, v, vl) || buf_add(&p->data, "\n", 1)) return AG_SSE_NOMEM;
  }
  else if (isfield(s, fl, "event")) {
    p->event.n = 0;
    if (buf_add(&p->event, v, vl)) return AG_SSE_NOMEM;
  }
  else if (isfield(s, fl, "id")) {
    if (memchr(v, '\0', vl) == NULL) {  /* an id with NUL is ignored */
      p->id.n = 0;
      if (buf_add(&p->id, v, vl)) return AG_SSE_NOMEM;
    }
  }
  else if (isfield(s, fl, "retry")) {
    long r = 0;
    size_t i;
    for (i = 0; i < vl && i < 18 && v[i] >= '0' && v[i] <= '9'; i++)
      r = r * 10 + (v[i] - '0');
    if (vl > 0 && i == vl) p->retry = r;  /* only ASCII digits count */
  }
  return AG_SSE_CONTINUE;  /* other fields are ignored */
}

int ag_sse_feed (ag_sse *p, const char *s, size_t n, ag_sse_fn fn, void *ud,
                 char *err) {
  size_t i = 0;
  if (n == 0) return AG_SSE_CONTINUE;
  if (p->cr && s[0] == '\n') i = 1;  /* the LF of a CRLF split across feeds */
  p->cr = 0;
  while (i < n) {
    size_t j = i;
    int rc;
    while (j < n && s[j] != '\n' && s[j] != '\r') j++;
    if (j == n) {  /* no line end yet: keep the piece */
      if (buf_add(&p->line, s + i, n - i)) return AG_SSE_NOMEM;
      break;
    }
    if (p->line.n > 0) {  /* the line began in an earlier feed */
      if (buf_add(&p->line, s + i, j - i)) return AG_SSE_NOMEM;
      rc = line(p, p->line.p, p->line.n, fn, ud, err);
      p->line.n = 0;
    }
    else
      rc = line(p, s + i, j - i, fn, ud, err);
    if (s[j] == '\r') {
      if (j + 1 == n) p->cr = 1;
      else if (s[j + 1] == '\n') j++;
    }
    i = j + 1;
    if (rc != AG_SSE_CONTINUE) return rc;
  }
  return AG_SSE_CONTINUE;
}

/* }====================================================================== */

/*
** {======================================================================
** URLs in messages
** =======================================================================
*/

static size_t put (char *out, size_t size, size_t o, const char *s, size_t n) {
  while (n-- > 0 && o + 1 < size) out[o++] = *s++;
  return o;
}

void ag_http_redact (const char *url, char *out, size_t size) {
  const char *sep = strstr(url, "://");
  const char *auth = sep ? sep + 3 : url;
  size_t alen = strcspn(auth, "/?#");
  const char *at = NULL, *host, *path;
  size_t o = 0, plen;
  if (size == 0) return;
  for (const char *q = auth; q < auth + alen; q++) if (*q == '@') at = q;
  host = at ? at + 1 : auth;  /* user info dropped */
  o = put(out, size, o, url, (size_t)(auth - url));
  o = put(out, size, o, host, (size_t)(auth + alen - host));
  path = auth + alen;
  plen = strcspn(path, "?#");
  o = put(out, size, o, path, plen);
  if (path[plen] == '?') o = put(out, size, o, "?...", 4);
  out[o] = '\0';
}

/* }====================================================================== */

/*
** {======================================================================
** Transfers
** =======================================================================
*/

struct ag_http {
  const ag_curl_api *c;
  CURLM *multi;
  CURL *idle[POOL];
  size_t nidle;
  int busy;           /* inside ag_http_run: no re-entry from callbacks */
};

/* Why the write callback refused bytes (CURLE_WRITE_ERROR). */
enum { WHY_NONE = 0, WHY_STOPPED = -1 };  /* else an ag_http_code */

typedef struct xfer {
  ag_http_req *r;
  ag_http *h;
  CURL *easy;
  int added;                 /* easy is in the multi handle */
  struct curl_slist *hdrs;
  char *url;                 /* this hop's URL (owned) */
  const char *method;        /* this hop's method */
  int send_body;
  int strip;                 /* the origin changed: no credentials */
  long long received;
  int why;
  int seen;                  /* the first body byte of this hop came */
  int discard;               /* this hop's body is a redirect's: ignored */
  int sse_on;                /* this hop's body is parsed as events */
  ag_sse sse;
  double t0;
  char cberr[AG_ERRLEN];
  char curlerr[CURL_ERROR_SIZE];
} xfer;

static void fail (xfer *x, int code, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 3, 4)))
#endif
  ;

static void fail (xfer *x, int code, const char *fmt, ...) {
  ag_http_req *r = x->r;
  char url[256];
  va_list ap;
  int o;
  ag_http_redact(r->url, url, sizeof url);
  o = snprintf(r->err, AG_ERRLEN, "http: %s '%s': ", r->method, url);
  if (o < 0) o = 0;
  if (o < AG_ERRLEN) {
    va_start(ap, fmt);
    vsnprintf(r->err + o, (size_t)(AG_ERRLEN - o), fmt, ap);
    va_end(ap);
  }
  r->code = code;
}

/* Header names whose values are credentials: never sent to a new origin. */
static int secret (const char *line) {
  size_t n = strcspn(line, ":;");
  char name[64];
  if (n >= sizeof name) return 1;  /* an odd name: be safe */
  for (size_t i = 0; i < n; i++)
    name[i] = (char)((line[i] >= 'A' && line[i] <= 'Z') ? line[i] + 32 : line[i]);
  name[n] = '\0';
  return strcmp(name, "authorization") == 0 || strcmp(name, "cookie") == 0 ||
         strstr(name, "key") != NULL || strstr(name, "token") != NULL ||
         strstr(name, "secret") != NULL || strstr(name, "auth") != NULL;
}

static int build_headers (xfer *x) {
  const ag_curl_api *c = x->h->c;
  ag_http_req *r = x->r;
  int expect = 0, ctype = 0;
  c->curl_slist_free_all(x->hdrs);
  x->hdrs = NULL;
  for (size_t i = 0; i < r->nheaders; i++) {
    struct curl_slist *l;
    if (strncasecmp(r->headers[i], "expect", 6) == 0 &&
        (r->headers[i][6] == ':' || r->headers[i][6] == ';')) expect = 1;
    if (strncasecmp(r->headers[i], "content-type", 12) == 0 &&
        (r->headers[i][12] == ':' || r->headers[i][12] == ';')) ctype = 1;
    if (x->strip && secret(r->headers[i])) continue;
    l = c->curl_slist_append(x->hdrs, r->headers[i]);
    if (l == NULL) return -1;
    x->hdrs = l;
  }
  if (!expect) {  /* no 100-continue round trip before large bodies */
    struct curl_slist *l = c->curl_slist_append(x->hdrs, "Expect:");
    if (l == NULL) return -1;
    x->hdrs = l;
  }
  if (!ctype) {  /* no made-up form content type on bodies */
    struct curl_slist *l = c->curl_slist_append(x->hdrs, "Content-Type:");
    if (l == NULL) return -1;
    x->hdrs = l;
  }
  return 0;
}

static int is_redirect (long st) {
  return st == 301 || st == 302 || st == 303 || st == 307 || st == 308;
}

static int on_event (void *ud, const ag_sse_event *ev, char *err) {
  xfer *x = (xfer *)ud;
  x->r->events++;
  return x->r->on_event ? x->r->on_event(x->r->ud, ev, err) : AG_SSE_CONTINUE;
}

/* First body bytes of a hop: decide what they are. */
static void first_bytes (xfer *x) {
  const ag_curl_api *c = x->h->c;
  ag_http_req *r = x->r;
  long st = 0;
  char *loc = NULL;
  (c->curl_easy_getinfo)(x->easy, CURLINFO_RESPONSE_CODE, &st);
  if (r->max_redirects > 0 && is_redirect(st) &&
      (c->curl_easy_getinfo)(x->easy, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK &&
      loc != NULL)
    x->discard = 1;
  x->sse_on = r->stream && st >= 200 && st < 300;
  x->seen = 1;
}

/* libcurl's write callback: never raises, refuses bytes to stop. */
static size_t on_write (char *ptr, size_t size, size_t nmemb, void *ud) {
  xfer *x = (xfer *)ud;
  ag_http_req *r = x->r;
  size_t n = size * nmemb;
  if (!x->seen) first_bytes(x);
  if (x->discard) return n;
  x->received += (long long)n;
  if (r->max_bytes >= 0 && x->received > r->max_bytes) {
    x->why = AG_HTTP_TOO_LARGE;
    return 0;
  }
  if (x->sse_on) {
    int rc;
    if (r->keep_body && buf_add(&r->body_out, ptr, n)) { x->why = AG_HTTP_NOMEM; return 0; }
    rc = ag_sse_feed(&x->sse, ptr, n, on_event, x, x->cberr);
    if (rc == AG_SSE_CONTINUE) return n;
    x->why = rc == AG_SSE_STOP ? WHY_STOPPED :
             rc == AG_SSE_ABORT ? AG_HTTP_ABORTED : AG_HTTP_NOMEM;
    return 0;
  }
  if (buf_add(&r->body_out, ptr, n)) { x->why = AG_HTTP_NOMEM; return 0; }
  return n;
}

/* libcurl's header callback: keeps the last response's fields. */
static size_t on_header (char *buf, size_t size, size_t nitems, void *ud) {
  xfer *x = (xfer *)ud;
  ag_buf *b = &x->r->headers_out;
  size_t n = size * nitems, nl, vs, ve;
  const char *colon;
  if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {  /* a new response begins */
    b->n = 0;
    return n;
  }
  colon = memchr(buf, ':', n);
  if (colon == NULL || colon == buf) return n;  /* the blank line, or junk */
  nl = (size_t)(colon - buf);
  vs = nl + 1;
  ve = n;
  while (vs < ve && (buf[vs] == ' ' || buf[vs] == '\t')) vs++;
  while (ve > vs && (buf[ve - 1] == '\r' || buf[ve - 1] == '\n' ||
                     buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) ve--;
  if (buf_reserve(b, nl + (ve - vs) + 2)) { x->why = AG_HTTP_NOMEM; return 0; }
  /* NUL bytes from the server become spaces: the pairs are NUL-separated */
  for (size_t i = 0; i < nl; i++) {
    char ch = buf[i];
    b->p[b->n++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch ? ch : ' ';
  }
  b->p[b->n++] = '\0';
  for (size_t i = vs; i < ve; i++) b->p[b->n++] = buf[i] ? buf[i] : ' ';
  b->p[b->n++] = '\0';
  return n;
}

#define SET(o, v) do { if (rc == CURLE_OK) rc = (c->curl_easy_setopt)(e, o, v); } while (0)

/* Sets every option of this hop on a fresh (or reset) easy handle. */
static CURLcode setup (xfer *x) {
  const ag_curl_api *c = x->h->c;
  ag_http_req *r = x->r;
  CURL *e = x->easy;
  CURLcode rc = CURLE_OK;
  SET(CURLOPT_URL, x->url);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  if (r->ca_file != NULL) SET(CURLOPT_CAINFO, r->ca_file);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_PIPEWAIT, 1L);
  if (r->connect_ms > 0) SET(CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms);
  if (r->total_ms > 0) SET(CURLOPT_TIMEOUT_MS, r->total_ms);
  if (r->low_speed_bytes > 0 && r->low_speed_s > 0) {
    SET(CURLOPT_LOW_SPEED_LIMIT, r->low_speed_bytes);
    SET(CURLOPT_LOW_SPEED_TIME, r->low_speed_s);
  }
  if (r->max_bytes >= 0) SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_bytes);
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_WRITEDATA, (void *)x);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, (void *)x);
  SET(CURLOPT_PRIVATE, (void *)x);
  SET(CURLOPT_ERRORBUFFER, x->curlerr);
  if (x->send_body) {
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
    if (strcmp(x->method, "POST") != 0) SET(CURLOPT_CUSTOMREQUEST, x->method);
  }
  else if (strcmp(x->method, "GET") == 0) SET(CURLOPT_HTTPGET, 1L);
  else if (strcmp(x->method, "HEAD") == 0) SET(CURLOPT_NOBODY, 1L);
  else SET(CURLOPT_CUSTOMREQUEST, x->method);
  SET(CURLOPT_HTTPHEADER, x->hdrs);
  return rc;
}

#undef SET

/* Gives the easy handle back to the pool and frees the hop state. */
static void release (xfer *x) {
  ag_http *h = x->h;
  const ag_curl_api *c = h->c;
  if (x->easy != NULL) {
    if (x->added) (c->curl_multi_remove_handle)(h->multi, x->easy);
    c->curl_easy_reset(x->easy);  /* drops our pointers; keeps connections */
    if (h->nidle < POOL) h->idle[h->nidle++] = x->easy;
    else c->curl_easy_cleanup(x->easy);
  }
  x->easy = NULL;
  x->added = 0;
  c->curl_slist_free_all(x->hdrs);
  x->hdrs = NULL;
  free(x->url);
  x->url = NULL;
  ag_sse_free(&x->sse);
}

/* Configures and adds this hop; on failure the request is marked failed. */
static int launch (xfer *x) {
  const ag_curl_api *c = x->h->c;
  CURLcode rc;
  CURLMcode mc;
  x->received = 0;
  x->why = WHY_NONE;
  x->seen = x->discard = x->sse_on = 0;
  x->curlerr[0] = '\0';
  if (build_headers(x)) { fail(x, AG_HTTP_NOMEM, "out of memory"); return -1; }
  rc = setup(x);
  if (rc != CURLE_OK) { fail(x, AG_HTTP_PROTO, "%s", c->curl_easy_strerror(rc)); return -1; }
  mc = (c->curl_multi_add_handle)(x->h->multi, x->easy);
  if (mc != CURLM_OK) { fail(x, AG_HTTP_PROTO, "%s", c->curl_multi_strerror(mc)); return -1; }
  x->added = 1;
  x->t0 = now();
  return 0;
}

static int start (ag_http *h, xfer *x, ag_http_req *r) {
  const ag_curl_api *c = h->c;
  x->r = r;
  x->h = h;
  r->code = AG_HTTP_OK;
  r->err[0] = '\0';
  r->status = 0;
  r->headers_out.n = r->body_out.n = 0;
  r->elapsed = 0;
  r->events = 0;
  r->stopped = r->redirects = 0;
  x->method = r->method;
  x->send_body = r->body != NULL || strcmp(r->method, "POST") == 0;
  ag_sse_init(&x->sse);
  x->url = strdup(r->url);
  if (x->url == NULL) { fail(x, AG_HTTP_NOMEM, "out of memory"); return -1; }
  x->easy = h->nidle > 0 ? h->idle[--h->nidle] : c->curl_easy_init();
  if (x->easy == NULL) { fail(x, AG_HTTP_NOMEM, "cannot make a curl handle"); return -1; }
  return launch(x);
}

/* Scheme, host and port of `url` (host and port NULL when it has none);
** 0 on success.  The caller frees the parts with free_origin. */
static int origin (const ag_curl_api *c, const char *url, char *parts[3]) {
  CURLU *u = c->curl_url();
  int bad = u == NULL;
  parts[0] = parts[1] = parts[2] = NULL;
  if (!bad) bad = c->curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK;
  if (!bad) bad = c->curl_url_get(u, CURLUPART_SCHEME, &parts[0], 0) != CURLUE_OK;
  if (!bad && c->curl_url_get(u, CURLUPART_HOST, &parts[1], 0) != CURLUE_OK)
    parts[1] = NULL;  /* file:///x has none */
  if (!bad && c->curl_url_get(u, CURLUPART_PORT, &parts[2], CURLU_DEFAULT_PORT) != CURLUE_OK)
    parts[2] = NULL;  /* a scheme without ports (file:) */
  c->curl_url_cleanup(u);
  return bad;
}

static void free_origin (const ag_curl_api *c, char *parts[3]) {
  for (int i = 0; i < 3; i++) c->curl_free(parts[i]);
}

/* A followed redirect: 1 when the next hop is under way, 0 when the
** request ended (failed). */
static int follow (xfer *x, long st) {
  const ag_curl_api *c = x->h->c;
  ag_http_req *r = x->r;
  char *loc = NULL, *next, *from[3], *to[3];
  char shown[256];
  int bad, same;
  (c->curl_easy_getinfo)(x->easy, CURLINFO_REDIRECT_URL, &loc);
  if (loc == NULL) { fail(x, AG_HTTP_REDIRECT, "redirect without a target"); return 0; }
  ag_http_redact(loc, shown, sizeof shown);
  if (r->redirects >= r->max_redirects) {
    fail(x, AG_HTTP_REDIRECT, "more than %d redirects", r->max_redirects);
    return 0;
  }
  bad = origin(c, x->url, from);
  if (!bad) bad = origin(c, loc, to);
  else to[0] = to[1] = to[2] = NULL;
  if (bad) {
    free_origin(c, from);
    free_origin(c, to);
    fail(x, AG_HTTP_REDIRECT, "redirect to a malformed URL '%s' refused", shown);
    return 0;
  }
  if (strcasecmp(to[0], "http") != 0 && strcasecmp(to[0], "https") != 0) {
    fail(x, AG_HTTP_REDIRECT, "redirect to a %s: URL refused", to[0]);
    free_origin(c, from);
    free_origin(c, to);
    return 0;
  }
  same = strcasecmp(from[0], to[0]) == 0 && from[1] != NULL && to[1] != NULL &&
         strcasecmp(from[1], to[1]) == 0 &&
         from[2] != NULL && to[2] != NULL && strcmp(from[2], to[2]) == 0;
  free_origin(c, from);
  free_origin(c, to);
  next = strdup(loc);
  if (next == NULL) { fail(x, AG_HTTP_NOMEM, "out of memory"); return 0; }
  if (!same) x->strip = 1;  /* for this hop and every later one */
  if (st == 303 || ((st == 301 || st == 302) && strcmp(x->method, "POST") == 0)) {
    x->method = "GET";  /* what browsers do; 307 and 308 keep method and body */
    x->send_body = 0;
  }
  /* the next hop: same easy handle, reset; the outputs start over */
  (c->curl_multi_remove_handle)(x->h->multi, x->easy);
  x->added = 0;
  c->curl_easy_reset(x->easy);
  free(x->url);
  x->url = next;
  r->headers_out.n = r->body_out.n = 0;
  ag_sse_free(&x->sse);
  ag_sse_init(&x->sse);
  r->redirects++;
  return launch(x) == 0;
}

/* A hop ended with `rc`.  Returns 1 when the request goes on (a redirect). */
static int finish (xfer *x, CURLcode rc) {
  const ag_curl_api *c = x->h->c;
  ag_http_req *r = x->r;
  long st = 0;
  r->elapsed += now() - x->t0;
  (c->curl_easy_getinfo)(x->easy, CURLINFO_RESPONSE_CODE, &st);
  r->status = st;
  if (rc == CURLE_WRITE_ERROR && x->why != WHY_NONE) {
    switch (x->why) {
      case WHY_STOPPED: r->stopped = 1; return 0;
      case AG_HTTP_TOO_LARGE:
        fail(x, AG_HTTP_TOO_LARGE, "response larger than %lld bytes", r->max_bytes);
        return 0;
      case AG_HTTP_ABORTED: fail(x, AG_HTTP_ABORTED, "callback: %s", x->cberr); return 0;
      default: fail(x, AG_HTTP_NOMEM, "out of memory"); return 0;
    }
  }
  if (rc != CURLE_OK) {
    const char *why = x->curlerr[0] ? x->curlerr : c->curl_easy_strerror(rc);
    int code;
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT: code = AG_HTTP_TIMEOUT; break;
      case CURLE_COULDNT_RESOLVE_PROXY: case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT: case CURLE_SEND_ERROR: case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING: case CURLE_INTERFACE_FAILED: case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
        code = AG_HTTP_CONN; break;
      case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER: case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_ISSUER_ERROR: case CURLE_SSL_CRL_BADFILE:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS:
      case CURLE_SSL_SHUTDOWN_FAILED: case CURLE_USE_SSL_FAILED:
      case CURLE_SSL_ENGINE_NOTFOUND: case CURLE_SSL_ENGINE_SETFAILED:
      case CURLE_SSL_ENGINE_INITFAILED: case CURLE_SSL_CLIENTCERT:
        code = AG_HTTP_TLS; break;
      case CURLE_FILESIZE_EXCEEDED:
        fail(x, AG_HTTP_TOO_LARGE, "response larger than %lld bytes", r->max_bytes);
        return 0;
      case CURLE_PARTIAL_FILE: code = AG_HTTP_TRUNCATED; break;
      case CURLE_OUT_OF_MEMORY: code = AG_HTTP_NOMEM; break;
      default: code = AG_HTTP_PROTO; break;
    }
    fail(x, code, "%s", why);
    return 0;
  }
  if (r->max_redirects > 0 && is_redirect(st)) {  /* body or not */
    char *loc = NULL;
    (c->curl_easy_getinfo)(x->easy, CURLINFO_REDIRECT_URL, &loc);
    if (loc != NULL) return follow(x, st);
  }
  if (x->sse_on && ag_sse_pending(&x->sse)) {
    fail(x, AG_HTTP_TRUNCATED, "stream ended in the middle of an event");
    return 0;
  }
  return 0;
}

void ag_http_req_free (ag_http_req *r) {
  if (r == NULL) return;
  ag_buf_free(&r->headers_out);
  ag_buf_free(&r->body_out);
}

int ag_http_open (ag_http **out, char err[AG_ERRLEN]) {
  static int inited;
  const ag_curl_api *c;
  ag_http *h;
  *out = NULL;
  c = ag_curl(err);
  if (c == NULL) return AG_EUNSUPPORTED;
  if (!inited) {
    if (c->curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      return ag_seterr(err, AG_EUNSUPPORTED, "http: libcurl failed to initialise");
    inited = 1;
  }
  h = calloc(1, sizeof *h);
  if (h == NULL) return ag_seterr(err, AG_ENOMEM, "http: out of memory");
  h->c = c;
  h->multi = c->curl_multi_init();
  if (h->multi == NULL) {
    free(h);
    return ag_seterr(err, AG_ENOMEM, "http: cannot make a curl multi handle");
  }
  (c->curl_multi_setopt)(h->multi, CURLMOPT_MAXCONNECTS, MAXCONNECTS);
  *out = h;
  return AG_OK;
}

int ag_http_close (ag_http *h) {
  if (h == NULL) return AG_OK;
  for (size_t i = 0; i < h->nidle; i++) h->c->curl_easy_cleanup(h->idle[i]);
  h->c->curl_multi_cleanup(h->multi);
  free(h);
  return AG_OK;
}

int ag_http_busy (const ag_http *h) {
  return h != NULL && h->busy;
}

int ag_http_run (ag_http *h, ag_http_req *const *reqs, size_t n,
                 size_t concurrency) {
  const ag_curl_api *c = h->c;
  size_t next = 0, active = 0;
  xfer *xs;
  if (h->busy) return AG_EBUSY;
  if (concurrency == 0) concurrency = 1;
  xs = calloc(n ? n : 1, sizeof *xs);
  if (xs == NULL) {
    for (size_t i = 0; i < n; i++) {
      reqs[i]->code = AG_HTTP_NOMEM;
      snprintf(reqs[i]->err, AG_ERRLEN, "http: out of memory");
    }
    return AG_OK;
  }
  h->busy = 1;
  while (next < n || active > 0) {
    CURLMsg *m;
    CURLMcode mc;
    int running, queued;
    while (active < concurrency && next < n) {
      xfer *x = &xs[next];
      if (start(h, x, reqs[next]) == 0) active++;
      else release(x);
      next++;
    }
    mc = c->curl_multi_perform(h->multi, &running);
    if (mc != CURLM_OK) {  /* the multi handle is broken: fail what runs */
      for (size_t i = 0; i < next; i++)
        if (xs[i].easy != NULL) {
          fail(&xs[i], AG_HTTP_PROTO, "%s", c->curl_multi_strerror(mc));
          release(&xs[i]);
        }
      active = 0;
      continue;
    }
    while ((m = c->curl_multi_info_read(h->multi, &queued)) != NULL) {
      char *priv = NULL;
      CURLcode rc;
      xfer *x;
      if (m->msg != CURLMSG_DONE) continue;
      rc = m->data.result;  /* m is invalid once the handle is removed */
      (c->curl_easy_getinfo)(m->easy_handle, CURLINFO_PRIVATE, &priv);
      x = (xfer *)(void *)priv;
      if (!finish(x, rc)) {
        release(x);
        active--;
      }
    }
    if (active > 0) c->curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
  }
  h->busy = 0;
  free(xs);
  return AG_OK;
}

/* }====================================================================== */
