/*
** ag_http.h: HTTP transfers over libcurl (loaded on first use, ag_curl.h),
** many at once through one curl multi handle, with Server-Sent Events
** parsed as the bytes arrive.  No Lua types here: the binding is lhttp.c.
**
** Transport rules that no caller can change: TLS peer and host
** verification on; only http and https, for the first URL and for
** redirects; libcurl never follows a redirect itself (ag_http_run does,
** when asked, and drops credentials when the origin changes); no signals.
*/
#ifndef AG_HTTP_H
#define AG_HTTP_H

#include <stddef.h>

#include "ag_err.h"

/* Why a transfer failed.  ag_http_codename gives the stable string that
** reaches Lua as the third result of `nil, msg, code`. */
typedef enum ag_http_code {
  AG_HTTP_OK = 0,
  AG_HTTP_TIMEOUT,      /* connect, total or low-speed deadline passed */
  AG_HTTP_CONN,         /* DNS, refused, reset, nothing received */
  AG_HTTP_TLS,          /* handshake or certificate verification failed */
  AG_HTTP_TOO_LARGE,    /* body past max_bytes (no partial result) */
  AG_HTTP_ABORTED,      /* the event callback raised an error */
  AG_HTTP_TRUNCATED,    /* the body ended early, or a stream mid-event */
  AG_HTTP_REDIRECT,     /* a redirect was refused (scheme, count) */
  AG_HTTP_PROTO,        /* the server broke HTTP, or curl failed otherwise */
  AG_HTTP_NOMEM,        /* out of memory */
  AG_HTTP_UNSUPPORTED,  /* libcurl cannot be loaded */
  AG_HTTP_NCODES
} ag_http_code;

/* "timeout", "conn", "tls", ...  Static; never NULL. */
const char *ag_http_codename(int code);

/* A growable byte buffer.  Zero-initialised is empty; free with ag_buf_free. */
typedef struct ag_buf { char *p; size_t n, cap; } ag_buf;
void ag_buf_free(ag_buf *b);

/*
** {======================================================================
** Server-Sent Events (WHATWG HTML "event stream interpretation")
** =======================================================================
*/

/* One event.  Borrowed: valid only during the callback.  `event` is
** "message" when the stream named none; `id` is the last event id seen
** (id_len 0 when none); `retry` is the last retry: value, -1 if none. */
typedef struct ag_sse_event {
  const char *event; size_t event_len;
  const char *data; size_t data_len;
  const char *id; size_t id_len;
  long retry;
} ag_sse_event;

/* What a callback returns: go on, stop the stream (not an error), or
** abort it (the callback wrote why into `err`, AG_ERRLEN bytes). */
enum { AG_SSE_CONTINUE = 0, AG_SSE_STOP = 1, AG_SSE_ABORT = -1, AG_SSE_NOMEM = -2 };
typedef int (*ag_sse_fn)(void *ud, const ag_sse_event *ev, char *err);

typedef struct ag_sse {
  ag_buf line;     /* the line being read, without its end */
  ag_buf data;     /* data: values, each followed by \n */
  ag_buf event;    /* event: value; empty means "message" */
  ag_buf id;       /* last id: value; kept across events */
  long retry;      /* last retry: value, -1 when none */
  int cr;          /* the last byte was CR: an LF right after it is part of it */
  int started;     /* a line was read (only the first may start with a BOM) */
  int infield;     /* a field line came since the last blank line */
} ag_sse;

/* Makes `p` an empty parser. */
void ag_sse_init(ag_sse *p);

/*
** Feeds `n` bytes (any split: a line end may straddle two calls) and calls
** `fn` for each complete event.  Returns AG_SSE_CONTINUE, or what stopped
** the feed: AG_SSE_STOP / AG_SSE_ABORT from the callback, AG_SSE_NOMEM.
** After a non-zero return the parser must not be fed again.
*/
int ag_sse_feed(ag_sse *p, const char *s, size_t n, ag_sse_fn fn, void *ud,
                char *err);

/* Non-zero when the bytes so far end inside an event: a partial line, or
** fields not yet dispatched by a blank line.  At end of stream such an
** event is discarded (WHATWG) and the stream counts as truncated. */
int ag_sse_pending(const ag_sse *p);

/* Frees the parser's buffers; `p` may then be initialised again. */
void ag_sse_free(ag_sse *p);

/* }====================================================================== */

/*
** {======================================================================
** Transfers
** =======================================================================
*/

/* One request and, after ag_http_run, its outcome.  The caller fills the
** input fields (everything borrowed until ag_http_run returns; `body` is
** sent without copying) and zeroes the rest; free the outputs with
** ag_http_req_free. */
typedef struct ag_http_req {
  /* in */
  const char *method;            /* "GET", "POST", ... (upper case) */
  const char *url;               /* http:// or https:// */
  const char *const *headers;    /* `nheaders` lines "Name: value" */
  size_t nheaders;
  const char *body;              /* NULL: no body */
  size_t body_len;
  const char *ca_file;           /* NULL: the system's CA bundle */
  long connect_ms, total_ms;     /* deadlines; 0: libcurl's default */
  long low_speed_bytes, low_speed_s;  /* abort below bytes/s for s seconds */
  long long max_bytes;           /* body cap (decoded bytes); < 0: none */
  int max_redirects;             /* 0: a 3xx is the result */
  int stream;                    /* parse a 2xx body as SSE into on_event */
  int keep_body;                 /* with stream: keep the raw body too */
  ag_sse_fn on_event;
  void *ud;                      /* on_event's first argument */
  /* out */
  int code;                      /* ag_http_code; AG_HTTP_OK: a response */
  char err[AG_ERRLEN];           /* "http: GET '<url>': <why>" when code != OK */
  long status;
  ag_buf headers_out;            /* "name\0value\0"..., names lower case, in
                                    order, repeats not merged */
  ag_buf body_out;
  double elapsed;                /* seconds, every hop included */
  long events;                   /* events dispatched */
  int stopped;                   /* the callback stopped the stream */
  int redirects;                 /* hops followed */
} ag_http_req;

/* Frees a request's outputs (headers_out, body_out); keeps the inputs. */
void ag_http_req_free(ag_http_req *r);

/* A session: one curl multi handle (so connections, DNS and TLS sessions
** are reused across calls) and the idle easy handles. */
typedef struct ag_http ag_http;

/* Loads libcurl on first use and makes a session; `*out` is NULL on
** failure (AG_EUNSUPPORTED: no libcurl, AG_ENOMEM).  Caller owns the
** session; free with ag_http_close. */
int ag_http_open(ag_http **out, char err[AG_ERRLEN]);

/* Closes every connection and frees the session.  NULL is a no-op.  Not
** while ag_http_run runs on it (from a callback): see ag_http_busy. */
int ag_http_close(ag_http *h);

/* Non-zero while ag_http_run runs on `h` (so inside its callbacks). */
int ag_http_busy(const ag_http *h);

/*
** Runs `n` requests, at most `concurrency` in flight at once, and fills
** each one's outputs (its `code` says whether it got a response).  The
** callbacks run inside libcurl's; they must not raise, and must not call
** ag_http_run on the same session: that returns AG_EBUSY at once.
** Returns AG_OK, or AG_EBUSY.
*/
int ag_http_run(ag_http *h, ag_http_req *const *reqs, size_t n,
                size_t concurrency);

/*
** Writes `url` for messages into `out` (size `size`, always terminated):
** scheme, host, port and path, without user info, fragment or query (a
** query shows as "?..."), since keys sometimes travel there.
*/
void ag_http_redact(const char *url, char *out, size_t size);

/* }====================================================================== */

#endif
