/*
** ag_store_pg.c: the PostgreSQL backend of ag_store, over libpq.
**
** Connections carry a connect timeout, TCP keepalives and a TCP user
** timeout, and the session sets statement_timeout and lock_timeout, so
** nothing hangs (RELIABILITY.md F7, F8).  Statements with values are
** prepared by name ("aegis_<n>") and cached per connection; their
** parameter types come from the server (so `$1` in an untyped spot is
** text).  Values travel as text, except blobs, which go as binary bytea.
**
** A lost connection has no SQLSTATE: it shows as PQstatus == CONNECTION_BAD.
** When that is known before a statement is sent, a reset is safe.  When a
** statement fails with it, the connection is reset and the statement run
** once more only outside a transaction; inside one, the failure is
** reported (`conn`) and ag_store.c keeps the transaction's level failing
** until it is rolled back.  After a reset the server has forgotten every
** prepared statement, so the cache is cleared and statements re-prepared.
** "Reset" is PQfinish and a new connection with the same settings.
**
** Every statement waits with a client-side deadline (RELIABILITY.md F8):
** the connection is non-blocking, statements go out with the PQsend*
** calls, and round_trip() polls the socket until the answer is in or
** statement_timeout + GRACE seconds have passed.  The server's own
** statement_timeout answers first unless the server cannot run (a
** SIGSTOPped backend, whose kernel still acknowledges a Unix socket) or
** cannot be reached; then the connection is closed (s->conn == NULL, which
** reads as lost) and the statement fails with `timeout`.  No PQcancel: it
** opens a blocking connection of its own, which hangs on an unreachable
** server; the server's statement_timeout fires anyway when the backend
** runs again, and it then finds its client gone.
*/
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ag_pq.h"
#include "ag_store.h"

/* libpq, loaded by the first open (ag_dl.h says why). */
static const ag_pq_api *pq;

/* Type OIDs (catalog/pg_type.h, stable across versions). */
#define BOOLOID 16
#define BYTEAOID 17
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define OIDOID 26
#define FLOAT4OID 700
#define FLOAT8OID 701

/* Seconds a round trip may take beyond statement_timeout before the
** server counts as gone: time for its own cancel to reach us. */
#define GRACE 5.0

typedef struct pg_store {
  ag_store base;            /* first: a pg_store is an ag_store */
  PGconn *conn;             /* NULL: closed after a round trip timed out */
  char *conninfo;           /* the caller's URL or conninfo, for reconnecting */
  char timeout[32];         /* connect_timeout, as libpq takes it */
  PGresult *res;            /* the running query's rows */
  int row, nrows;
  unsigned next_id;         /* names of prepared statements */
  int forget;               /* evict without DEALLOCATE (reset, close) */
  char *buf;                /* decoded bytea of the last column read */
  size_t bufcap;
  /* parameters of the statement being sent, grown as needed */
  const char **values;
  int *lengths, *formats;
  char (*num)[32];
  int pcap;
  /* results of the last batch, handed out in order by pg_next */
  PGresult *bres[AG_STORE_BATCH_MAX];
  int nbres, bnext;
} pg_store;

#define PG(s) ((pg_store *)(s))

/* The first line of a libpq message, without its trailing newline. */
static int first_line (char *err, int status, const char *msg) {
  if (msg == NULL || *msg == '\0') msg = "unknown error";
  int n = (int)strcspn(msg, "\n");
  return ag_seterr(err, status, "%.*s", n, msg);
}

/* ag_status for a SQLSTATE (NULL: none was sent). */
static int status_of (const char *state) {
  if (state == NULL) return AG_ESQL;
  if (strncmp(state, "23", 2) == 0) return AG_ECONSTRAINT;
  if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) return AG_EBUSY;
  if (strcmp(state, "55P03") == 0) return AG_EBUSY;  /* lock_timeout */
  if (strcmp(state, "57014") == 0) return AG_ETIMEOUT;
  if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0) return AG_ECONN;
  return AG_ESQL;
}

static int lost (pg_store *s) {
  return s->conn == NULL || pq->PQstatus(s->conn) == CONNECTION_BAD;
}

/* Why the connection is lost (lost(s) is true). */
static int conn_error (pg_store *s, char *err) {
  if (s->conn == NULL)
    return ag_seterr(err, AG_ECONN, "the connection was closed after the server did not answer");
  return first_line(err, AG_ECONN, pq->PQerrorMessage(s->conn));
}

/* Turns a failed result (NULL too) into a status and message. */
static int fail (pg_store *s, PGresult *res, char *err) {
  if (lost(s)) return conn_error(s, err);
  const char *state = res ? pq->PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *msg = res ? pq->PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  if (msg == NULL) msg = pq->PQerrorMessage(s->conn);
  if (res == NULL && (msg == NULL || *msg == '\0')) return ag_seterr(err, AG_ENOMEM, "not enough memory");
  /* Every error the server sends has a SQLSTATE; one without is libpq's
  ** own, and after a statement was sent that means the connection went
  ** ("server closed the connection unexpectedly") before PQstatus says so. */
  if (state == NULL) return first_line(err, AG_ECONN, msg);
  return first_line(err, status_of(state), msg);
}

static int ok (PGresult *res) {
  ExecStatusType st = pq->PQresultStatus(res);
  return res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
                         st == PGRES_EMPTY_QUERY);
}

/* {======================================================
** Round trips with a deadline
** ======================================================= */

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds one round trip may take; 0: no limit (statement_timeout 0 says
** a statement may run as long as it needs, and only the server knows). */
static double patience (pg_store *s) {
  double t = s->base.opts.statement_timeout;
  return t > 0 ? t + GRACE : 0;
}

/* Waits until the socket is ready for `events` or the monotonic time
** `until` (0: never) has come: 1 ready (or in error: libpq finds out),
** 0 expired, -1 poll failed (errno). */
static int wait_socket (pg_store *s, short events, double until) {
  struct pollfd pfd;
  pfd.fd = pq->PQsocket(s->conn);
  pfd.events = events;
  if (pfd.fd < 0) return 1;  /* closed: the next libpq call reports it */
  for (;;) {
    int ms = -1;
    if (until > 0) {
      double left = until - now();
      if (left <= 0) return 0;
      ms = left > 3600 ? 3600000 : (int)ceil(left * 1000);
    }
    pfd.revents = 0;
    int n = poll(&pfd, 1, ms);
    if (n > 0) return 1;
    if (n < 0 && errno != EINTR) return -1;
  }
}

/* The server did not answer in time (w == 0) or poll failed: the
** connection cannot be trusted with another statement, so close it now
** (non-blocking: PQfinish's goodbye cannot hang on a full socket). */
static int give_up (pg_store *s, int w, double limit, char *err) {
  int rc = w == 0
    ? ag_seterr(err, AG_ETIMEOUT, "no answer from the server within %g s", limit)
    : ag_seterr(err, AG_ECONN, "waiting for the server: %s", strerror(errno));
  pq->PQfinish(s->conn);
  s->conn = NULL;
  return rc;
}

/*
** Waits for the answer to what a PQsend* call (which returned `sent`) put
** on the wire, and collects every result until NULL as libpq requires.
** *out is the first failed result, else the last one; NULL when sending
** failed (PQerrorMessage says why, and fail() reads it).  Returns AG_OK
** whatever the result says; AG_ETIMEOUT or AG_ECONN only after give_up().
*/
static int round_trip (pg_store *s, int sent, PGresult **out, char *err) {
  *out = NULL;
  if (!sent) return AG_OK;
  double limit = patience(s), until = limit > 0 ? now() + limit : 0;
  int w;
  while (pq->PQflush(s->conn) == 1) {  /* -1: lost; PQgetResult reports it */
    if ((w = wait_socket(s, POLLIN | POLLOUT, until)) <= 0) return give_up(s, w, limit, err);
    if (!pq->PQconsumeInput(s->conn)) break;
  }
  PGresult *keep = NULL;
  for (;;) {
    while (pq->PQisBusy(s->conn)) {
      if ((w = wait_socket(s, POLLIN, until)) <= 0) {
        pq->PQclear(keep);
        return give_up(s, w, limit, err);
      }
      if (!pq->PQconsumeInput(s->conn)) break;  /* lost: PQgetResult says so */
    }
    PGresult *res = pq->PQgetResult(s->conn);
    if (res == NULL) break;
    ExecStatusType st = pq->PQresultStatus(res);
    if (keep == NULL || ok(keep)) {
      pq->PQclear(keep);
      keep = res;
    } else
      pq->PQclear(res);
    /* as PQexec: COPY results repeat, and a lost connection has no more */
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH || lost(s)) break;
  }
  *out = keep;
  return AG_OK;
}

/* Runs `sql` (several statements allowed) without parameters. */
static int simple_query (pg_store *s, const char *sql, PGresult **out, char *err) {
  return round_trip(s, pq->PQsendQuery(s->conn, sql), out, err);
}

/* }====================================================== */

/* NOTICEs ("table does not exist, skipping") are not ours to print: libpq's
** default writes them to stderr, in the middle of a CLI's output. */
static void ignore_notice (void *arg, const char *message) {
  (void)arg;
  (void)message;
}

/* What the session needs after every (re)connect. */
static int session_setup (pg_store *s, char *err) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SET statement_timeout = %ld; SET lock_timeout = %ld; SET bytea_output = 'hex';"
           " SET standard_conforming_strings = on",
           (long)(s->base.opts.statement_timeout * 1000),
           (long)(s->base.opts.lock_timeout * 1000));
  PGresult *res;
  int rc = simple_query(s, sql, &res, err);
  if (rc == AG_OK && !ok(res)) rc = fail(s, res, err);
  pq->PQclear(res);
  return rc;
}

/*
** Our connection settings come before `dbname` (the URL or conninfo,
** expanded by libpq), so the URL can override them; libpq takes the last
** value of a repeated keyword.  Replaces any connection there was (as
** PQreset would; a closed one is NULL).
*/
static int connect_db (pg_store *s, char *err) {
  const char *const keys[] = {
    "application_name", "client_encoding", "connect_timeout", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
    "dbname", NULL,
  };
  const char *const values[] = {
    "aegis-run", "UTF8", s->timeout, "1", "10", "5", "3", "30000", s->conninfo, NULL,
  };
  pq->PQfinish(s->conn);
  s->conn = pq->PQconnectdbParams(keys, values, 1);
  if (s->conn == NULL) return ag_seterr(err, AG_ENOMEM, "not enough memory");
  if (lost(s)) return conn_error(s, err);
  pq->PQsetNoticeProcessor(s->conn, ignore_notice, NULL);
  if (pq->PQsetnonblocking(s->conn, 1) != 0) return conn_error(s, err);
  return session_setup(s, err);
}

static int reconnect (pg_store *s, char *err) {
  s->forget = 1;
  ag_store__cache_clear(&s->base);
  s->forget = 0;
  return connect_db(s, err);
}

/* Safe to send again after the connection broke under this statement? */
static int idle (pg_store *s) {
  return s->base.depth == 0 && pq->PQtransactionStatus(s->conn) == PQTRANS_IDLE;
}

static int grow_params (pg_store *s, int n) {
  if (n <= s->pcap) return AG_OK;
  int cap = n < 16 ? 16 : n;
  const char **values = realloc(s->values, (size_t)cap * sizeof *values);
  if (values != NULL) s->values = values;
  int *lengths = realloc(s->lengths, (size_t)cap * sizeof *lengths);
  if (lengths != NULL) s->lengths = lengths;
  int *formats = realloc(s->formats, (size_t)cap * sizeof *formats);
  if (formats != NULL) s->formats = formats;
  char (*num)[32] = realloc(s->num, (size_t)cap * sizeof *num);
  if (num != NULL) s->num = num;
  if (!values || !lengths || !formats || !num) return AG_ENOMEM;
  s->pcap = cap;
  return AG_OK;
}

/* Shortest text that reads back as the same double. */
static void format_float (char *buf, double f) {
  if (isnan(f)) { strcpy(buf, "NaN"); return; }
  if (isinf(f)) { strcpy(buf, f > 0 ? "Infinity" : "-Infinity"); return; }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, 32, "%.*g", prec, f);
    if (strtod(buf, NULL) == f) return;
  }
}

static int set_params (pg_store *s, const ag_store_value *p, int n, char *err) {
  if (grow_params(s, n) != AG_OK) return ag_seterr(err, AG_ENOMEM, "not enough memory");
  for (int i = 0; i < n; i++) {
    const ag_store_value *v = &p[i];
    s->lengths[i] = 0;
    s->formats[i] = 0;
    switch (v->type) {
      case AG_STORE_NULL: s->values[i] = NULL; break;
      case AG_STORE_INT:
        snprintf(s->num[i], 32, "%lld", (long long)v->u.i);
        s->values[i] = s->num[i];
        break;
      case AG_STORE_FLOAT:
        format_float(s->num[i], v->u.f);
        s->values[i] = s->num[i];
        break;
      case AG_STORE_BOOL: s->values[i] = v->u.b ? "t" : "f"; break;
      case AG_STORE_TEXT: s->values[i] = v->u.s.p; break;  /* NUL-terminated */
      case AG_STORE_BLOB:
        if (v->u.s.n > (size_t)0x7fffffff) return ag_seterr(err, AG_EINVAL, "blob too large");
        s->values[i] = v->u.s.p;
        s->lengths[i] = (int)v->u.s.n;
        s->formats[i] = 1;  /* binary bytea: the bytes themselves */
        break;
    }
  }
  return AG_OK;
}

/* The cached statement for `sql`, prepared and described on a miss. */
static int prepare (pg_store *s, const char *sql, size_t len, ag_store_stmt **out,
                    char *err) {
  *out = ag_store__cache_find(&s->base, sql, len);
  if (*out != NULL) return AG_OK;
  char name[32];
  unsigned id = ++s->next_id;
  snprintf(name, sizeof name, "aegis_%u", id);
  PGresult *res;
  int rc = round_trip(s, pq->PQsendPrepare(s->conn, name, sql, 0, NULL), &res, err);
  if (rc) return rc;
  if (!ok(res)) {
    rc = fail(s, res, err);
    pq->PQclear(res);
    return rc;
  }
  pq->PQclear(res);
  rc = round_trip(s, pq->PQsendDescribePrepared(s->conn, name), &res, err);
  if (rc) return rc;  /* closed: the server forgot the statement */
  if (!ok(res)) {
    rc = fail(s, res, err);
    pq->PQclear(res);
    return rc;  /* the statement leaks on the server until reset: rare */
  }
  int nparams = pq->PQnparams(res);
  pq->PQclear(res);
  ag_store_stmt *e = ag_store__cache_add(&s->base, sql, len);
  if (e == NULL) return ag_seterr(err, AG_ENOMEM, "not enough memory");
  e->id = id;
  e->nparams = nparams;
  *out = e;
  return AG_OK;
}

/*
** Runs `sql` and returns its result in *out: a simple query (several statements
** allowed) when `simple`, else the cached prepared statement.  Handles a
** lost connection as the header comment says.
*/
static void drop_batch (pg_store *s);

static int run (pg_store *s, const char *sql, size_t len, const ag_store_value *p,
                int n, int simple, PGresult **out, char *err) {
  int retried = 0, rc;
  *out = NULL;
  drop_batch(s);
  for (;;) {
    if (lost(s)) {  /* known before sending: a reset is safe outside a transaction */
      if (s->base.depth > 0) return conn_error(s, err);
      if ((rc = reconnect(s, err)) != AG_OK) return rc;
    }
    int was_idle = idle(s);
    PGresult *res = NULL;
    ag_store_stmt *e = NULL;
    if (simple) {
      if ((rc = simple_query(s, sql, &res, err)) != AG_OK) return rc;  /* gave up: no retry */
    } else {
      if ((rc = prepare(s, sql, len, &e, err)) != AG_OK) {
        if (rc == AG_ECONN && lost(s) && s->conn != NULL && was_idle && !retried++) continue;
        return rc;
      }
      if (e->nparams != n)
        return ag_seterr(err, AG_EINVAL, "the statement takes %d parameter%s, got %d value%s",
                         e->nparams, e->nparams == 1 ? "" : "s", n, n == 1 ? "" : "s");
      if ((rc = set_params(s, p, n, err)) != AG_OK) return rc;
      char name[32];
      snprintf(name, sizeof name, "aegis_%u", e->id);
      rc = round_trip(s, pq->PQsendQueryPrepared(s->conn, name, n, s->values, s->lengths,
                                                 s->formats, 0), &res, err);
      if (rc != AG_OK) return rc;  /* gave up: no retry, the statement may have run */
    }
    if (ok(res)) {
      *out = res;
      return AG_OK;
    }
    rc = fail(s, res, err);
    const char *state = res ? pq->PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int stale = state != NULL && strcmp(state, "0A000") == 0 && e != NULL;
    pq->PQclear(res);
    if (stale) ag_store__cache_drop(&s->base, e);  /* "cached plan must not change result type" */
    if ((lost(s) || stale) && was_idle && !retried++) continue;
    return rc;
  }
}

/* PQcmdTuples also counts the rows of a SELECT; changes are writes only,
** as in SQLite. */
static int writes (const char *tag) {
  return strncmp(tag, "INSERT ", 7) == 0 || strncmp(tag, "UPDATE ", 7) == 0 ||
         strncmp(tag, "DELETE ", 7) == 0 || strncmp(tag, "MERGE ", 6) == 0;
}

static int pg_exec (ag_store *b, const char *sql, size_t len,
                    const ag_store_value *p, int n, int64_t *changes, char *err) {
  pg_store *s = PG(b);
  PGresult *res;
  int rc = run(s, sql, len, p, n, n == 0, &res, err);
  if (rc) return rc;
  *changes = writes(pq->PQcmdStatus(res)) ? strtoll(pq->PQcmdTuples(res), NULL, 10) : 0;
  pq->PQclear(res);
  return AG_OK;
}

static int pg_query (ag_store *b, const char *sql, size_t len,
                     const ag_store_value *p, int n, char *err) {
  pg_store *s = PG(b);
  int rc = run(s, sql, len, p, n, 0, &s->res, err);
  if (rc) return rc;
  s->row = -1;
  s->nrows = pq->PQntuples(s->res);
  return AG_OK;
}

static int pg_step (ag_store *b, int *row, char *err) {
  pg_store *s = PG(b);
  (void)err;
  *row = ++s->row < s->nrows;
  return AG_OK;
}

static int pg_ncolumns (ag_store *b) {
  return pq->PQnfields(PG(b)->res);
}

static const char *pg_column_name (ag_store *b, int i) {
  const char *name = pq->PQfname(PG(b)->res, i);
  return name != NULL ? name : "?";
}

static int hexval (int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* bytea's hex text form "\x0a1b..." into s->buf. */
static int decode_bytea (pg_store *s, const char *t, size_t n, ag_store_value *v, char *err) {
  if (n < 2 || t[0] != '\\' || t[1] != 'x')
    return ag_seterr(err, AG_ECORRUPT, "bytea value not in hex form");
  size_t len = (n - 2) / 2;
  if (len + 1 > s->bufcap) {
    char *buf = realloc(s->buf, len + 1);
    if (buf == NULL) return ag_seterr(err, AG_ENOMEM, "not enough memory");
    s->buf = buf;
    s->bufcap = len + 1;
  }
  for (size_t i = 0; i < len; i++) {
    int hi = hexval((unsigned char)t[2 + 2 * i]), lo = hexval((unsigned char)t[3 + 2 * i]);
    if (hi < 0 || lo < 0) return ag_seterr(err, AG_ECORRUPT, "bytea value not in hex form");
    s->buf[i] = (char)(hi << 4 | lo);
  }
  v->type = AG_STORE_BLOB;
  v->u.s.p = s->buf;
  v->u.s.n = len;
  return AG_OK;
}

static int pg_column (ag_store *b, int i, ag_store_value *v, char *err) {
  pg_store *s = PG(b);
  if (pq->PQgetisnull(s->res, s->row, i)) {
    v->type = AG_STORE_NULL;
    return AG_OK;
  }
  const char *t = pq->PQgetvalue(s->res, s->row, i);
  size_t n = (size_t)pq->PQgetlength(s->res, s->row, i);
  switch (pq->PQftype(s->res, i)) {
    case INT2OID: case INT4OID: case INT8OID: case OIDOID:
      v->type = AG_STORE_INT;
      v->u.i = strtoll(t, NULL, 10);
      return AG_OK;
    case FLOAT4OID: case FLOAT8OID:
      v->type = AG_STORE_FLOAT;
      v->u.f = strtod(t, NULL);  /* reads "NaN" and "Infinity" too */
      return AG_OK;
    case BOOLOID:
      v->type = AG_STORE_BOOL;
      v->u.b = t[0] == 't';
      return AG_OK;
    case BYTEAOID:
      return decode_bytea(s, t, n, v, err);
    default:
      v->type = AG_STORE_TEXT;
      v->u.s.p = t;
      v->u.s.n = n;
      return AG_OK;
  }
}

static void pg_reset (ag_store *b) {
  pg_store *s = PG(b);
  pq->PQclear(s->res);
  s->res = NULL;
  s->row = s->nrows = 0;
}

/*
** BEGIN, and with a key the transaction's advisory lock, in one round trip:
** one simple query of two statements, the key as a literal with its quotes
** doubled (the session runs with standard_conforming_strings on, so a
** backslash is an ordinary character). A transaction that got BEGIN but
** not the lock is rolled back by ag_store_begin.
*/
static int pg_begin (ag_store *b, const char *key, char *err) {
  static const char pre[] = "BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('";
  static const char post[] = "', 0))";
  int64_t changes;
  if (key == NULL) return pg_exec(b, "BEGIN", 5, NULL, 0, &changes, err);
  size_t n = strlen(key), quotes = 0;
  for (size_t i = 0; i < n; i++) quotes += key[i] == '\'';
  size_t len = sizeof pre - 1 + n + quotes + sizeof post - 1;
  char *sql = malloc(len + 1);
  if (sql == NULL) return ag_seterr(err, AG_ENOMEM, "out of memory");
  char *w = sql;
  memcpy(w, pre, sizeof pre - 1);
  w += sizeof pre - 1;
  for (size_t i = 0; i < n; i++) {
    if (key[i] == '\'') *w++ = '\'';
    *w++ = key[i];
  }
  memcpy(w, post, sizeof post);  /* with its NUL */
  int rc = pg_exec(b, sql, len, NULL, 0, &changes, err);
  free(sql);
  return rc;
}

static int pg_lock (ag_store *b, const char *key, char *err) {
  static const char sql[] = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
  ag_store_value v;
  int64_t changes;
  v.type = AG_STORE_TEXT;
  v.u.s.p = key;
  v.u.s.n = strlen(key);
  return pg_exec(b, sql, sizeof sql - 1, &v, 1, &changes, err);
}

static int pg_txstatus (ag_store *b) {
  pg_store *s = PG(b);
  if (lost(s)) return -1;
  switch (pq->PQtransactionStatus(s->conn)) {
    case PQTRANS_IDLE: return 0;
    case PQTRANS_INERROR: return 2;
    case PQTRANS_UNKNOWN: return -1;
    default: return 1;
  }
}

/*
** DEALLOCATE fails inside an aborted transaction; then the statement stays
** on the server until the session ends, which only costs its memory.
*/
static void pg_evict (ag_store *b, ag_store_stmt *e) {
  pg_store *s = PG(b);
  PGTransactionStatusType st = pq->PQtransactionStatus(s->conn);
  if (s->forget || lost(s) || (st != PQTRANS_IDLE && st != PQTRANS_INTRANS))
    return;
  char sql[48];
  snprintf(sql, sizeof sql, "DEALLOCATE aegis_%u", e->id);
  PGresult *res;
  char err[AG_ERRLEN];
  simple_query(s, sql, &res, err);  /* a failure shows on the next statement */
  pq->PQclear(res);
}

static void pg_close (ag_store *b) {
  pg_store *s = PG(b);
  s->forget = 1;  /* the session's end frees the server's statements */
  ag_store__cache_clear(b);
  pq->PQclear(s->res);
  drop_batch(s);
  pq->PQfinish(s->conn);
  free(s->conninfo);
  free(s->buf);
  free(s->values);
  free(s->lengths);
  free(s->formats);
  free(s->num);
  free(s);
}

/*
** {======================================================
** Batches in one round trip (libpq pipeline mode)
** =======================================================
*/

/* Frees the results of the last batch not handed out yet. */
static void drop_batch (pg_store *s) {
  for (int i = s->bnext; i < s->nbres; i++) pq->PQclear(s->bres[i]);
  s->nbres = s->bnext = 0;
}

/* Closes a connection whose pipeline cannot be brought back to a known
** state (a failed send, a lost answer): it is never reused in pipeline
** mode.  `rc`/`err` already say why. */
static int abandon (pg_store *s, int rc) {
  pq->PQfinish(s->conn);
  s->conn = NULL;
  return rc;
}

/* Failure of a send call: libpq's message, then the connection goes. */
static int send_failed (pg_store *s, char *err) {
  int rc = first_line(err, AG_ECONN, pq->PQerrorMessage(s->conn));
  return abandon(s, rc);
}

/*
** One query of a pipeline: waits (until `until`, 0: no limit) for its
** results and returns the first in *out (NULL: none), clearing any more,
** up to the NULL that ends it.  For the sync (`sync`), waits for the
** PGRES_PIPELINE_SYNC result instead.  AG_OK, or a status after
** abandon() (timeout, poll failure, connection lost).
*/
static int pipe_result (pg_store *s, double until, double limit, int sync, PGresult **out,
                        char *err) {
  *out = NULL;
  int nulls = 0;
  for (;;) {
    int w;
    while (pq->PQisBusy(s->conn)) {
      if ((w = wait_socket(s, POLLIN, until)) <= 0) {
        pq->PQclear(*out);
        *out = NULL;
        return give_up(s, w, limit, err);
      }
      if (!pq->PQconsumeInput(s->conn)) break;
    }
    PGresult *res = pq->PQgetResult(s->conn);
    if (res == NULL) {
      /* the end of one query's results; the sync has no NULL before it */
      if (!sync && *out != NULL) return AG_OK;
      if (lost(s) || ++nulls > 1) {  /* libpq has nothing more to give */
        pq->PQclear(*out);
        *out = NULL;
        if (lost(s)) return abandon(s, conn_error(s, err));
        return abandon(s, first_line(err, AG_ECONN, pq->PQerrorMessage(s->conn)));
      }
      if (!sync) return AG_OK;  /* a query without results: cannot happen */
      continue;
    }
    ExecStatusType st = pq->PQresultStatus(res);
    if (sync) {
      if (st == PGRES_PIPELINE_SYNC) {
        pq->PQclear(res);
        return AG_OK;
      }
      pq->PQclear(res);  /* nothing else is due before it */
      continue;
    }
    if (*out == NULL) *out = res;
    else pq->PQclear(res);
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      int rc = ag_seterr(err, AG_EINVAL, "COPY cannot run in a batch");
      pq->PQclear(*out);
      *out = NULL;
      return abandon(s, rc);
    }
  }
}

/* Is `res` the answer of a query that ran (not failed, not skipped)? */
static int ran (PGresult *res) {
  return res != NULL && ok(res);
}

/*
** BEGIN, the lock, the statements and COMMIT, sent in pipeline mode and
** answered after one sync.  Statements are prepared first (a cache miss
** costs its own round trips, once per connection).  The client-side
** deadline covers every statement's statement_timeout plus GRACE.  An
** error aborts the rest up to the sync; the transaction is then rolled
** back (one more round trip, on that path only).  The connection leaves
** pipeline mode on every path, or is closed.
*/
static int pg_batch (ag_store *b, const ag_store_item *items, int n,
                     const char *lock_key, int *failed, char *err) {
  static const char lock_sql[] = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
  pg_store *s = PG(b);
  unsigned ids[AG_STORE_BATCH_MAX + 1];
  PGresult *res[AG_STORE_BATCH_MAX + 3];
  int rc, nq = 0;
  drop_batch(s);
  *failed = -1;
  if (lost(s) && (rc = reconnect(s, err)) != AG_OK) return rc;  /* outside a transaction */
  /* prepare (cached): the lock's statement first, then each item's.  A
  ** connection found lost here (the server restarted, an idle backend
  ** was ended) ran nothing of the batch: reconnect and prepare again, once. */
  int first = lock_key != NULL ? 0 : 1, retried = 0;
  for (int i = first; i <= n; i++) {
    const char *sql = i == 0 ? lock_sql : items[i - 1].sql;
    size_t len = i == 0 ? sizeof lock_sql - 1 : items[i - 1].len;
    int want = i == 0 ? 1 : items[i - 1].n;
    ag_store_stmt *e;
    if ((rc = prepare(s, sql, len, &e, err)) != AG_OK) {
      if (rc == AG_ECONN && s->conn != NULL && lost(s) && !retried++) {
        if ((rc = reconnect(s, err)) != AG_OK) return rc;
        i = first - 1;  /* the cache is empty: every statement again */
        continue;
      }
      *failed = i;
      return rc;
    }
    if (e->nparams != want) {
      *failed = i;
      return ag_seterr(err, AG_EINVAL, "the statement takes %d parameter%s, got %d value%s",
                       e->nparams, e->nparams == 1 ? "" : "s", want, want == 1 ? "" : "s");
    }
    ids[i] = e->id;
  }
  /* set_params cannot fail once in the pipeline: room and sizes first */
  int most = 1;
  for (int i = 0; i < n; i++) {
    if (items[i].n > most) most = items[i].n;
    for (int j = 0; j < items[i].n; j++)
      if (items[i].p[j].type == AG_STORE_BLOB && items[i].p[j].u.s.n > (size_t)0x7fffffff) {
        *failed = i + 1;
        return ag_seterr(err, AG_EINVAL, "blob too large");
      }
  }
  if (grow_params(s, most) != AG_OK) return ag_seterr(err, AG_ENOMEM, "not enough memory");
  /* a batch holds fewer statements than the cache: none was evicted */
  if (!pq->PQenterPipelineMode(s->conn)) return send_failed(s, err);
  char name[32];
  if (!pq->PQsendQueryParams(s->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
    return send_failed(s, err);
  for (int i = first; i <= n; i++) {
    ag_store_value key;
    const ag_store_value *p = &key;
    int np = 1;
    if (i == 0) {
      key.type = AG_STORE_TEXT;
      key.u.s.p = lock_key;
      key.u.s.n = strlen(lock_key);
    } else {
      p = items[i - 1].p;
      np = items[i - 1].n;
    }
    if ((rc = set_params(s, p, np, err)) != AG_OK) {
      *failed = i;
      return abandon(s, rc);  /* queries are queued: the pipeline cannot be left cleanly */
    }
    snprintf(name, sizeof name, "aegis_%u", ids[i]);
    if (!pq->PQsendQueryPrepared(s->conn, name, np, s->values, s->lengths, s->formats, 0))
      return send_failed(s, err);
  }
  if (!pq->PQsendQueryParams(s->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ||
      !pq->PQpipelineSync(s->conn))
    return send_failed(s, err);
  /* one deadline for the whole pipeline */
  double t = s->base.opts.statement_timeout;
  int total = n + 3 - first;
  double limit = t > 0 ? t * total + GRACE : 0, until = limit > 0 ? now() + limit : 0;
  int w;
  while ((w = pq->PQflush(s->conn)) == 1) {
    if ((w = wait_socket(s, POLLIN | POLLOUT, until)) <= 0) return give_up(s, w, limit, err);
    if (!pq->PQconsumeInput(s->conn)) break;
  }
  if (w < 0 && lost(s)) return abandon(s, conn_error(s, err));
  for (nq = 0; nq < total; nq++)
    if ((rc = pipe_result(s, until, limit, 0, &res[nq], err)) != AG_OK) goto lost;
  PGresult *none;
  if ((rc = pipe_result(s, until, limit, 1, &none, err)) != AG_OK) goto lost;
  if (!pq->PQexitPipelineMode(s->conn)) {
    rc = send_failed(s, err);
    goto cleanup;
  }
  /* the first query that did not run says why; statements are numbered
  ** 0 (BEGIN and the lock), 1..n, n + 1 (COMMIT) */
  for (int q = 0; q < total; q++) {
    if (ran(res[q])) continue;
    int stmt = q == 0 ? 0 : q + first - 1;  /* query q is BEGIN, [lock], items, COMMIT */
    if (stmt > n + 1) stmt = n + 1;
    *failed = stmt;
    rc = fail(s, res[q], err);
    break;
  }
  if (rc == AG_OK) {
    /* hand the statements' results over; BEGIN, lock and COMMIT go */
    for (int q = 0; q < total; q++) {
      int stmt = q + first - 1;
      if (q > 0 && stmt >= 1 && stmt <= n) s->bres[s->nbres++] = res[q];
      else pq->PQclear(res[q]);
    }
    return AG_OK;
  }
  if (!lost(s) && pq->PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
    PGresult *rb;
    char rerr[AG_ERRLEN];
    if (simple_query(s, "ROLLBACK", &rb, rerr) == AG_OK && !ok(rb) && !lost(s)) {
      pq->PQclear(rb);
      rb = NULL;
      abandon(s, rc);  /* the transaction could not be ended: never reuse it */
    }
    pq->PQclear(rb);
  }
  goto cleanup;
lost:
  /* the connection went: a statement that failed first says why better
  ** ("terminating connection due to administrator command", 57P01) */
  if (rc == AG_ECONN)
    for (int q = 0; q < nq && q < total; q++) {
      const char *state = res[q] ? pq->PQresultErrorField(res[q], PG_DIAG_SQLSTATE) : NULL;
      if (ran(res[q]) || state == NULL) continue;
      const char *msg = pq->PQresultErrorField(res[q], PG_DIAG_MESSAGE_PRIMARY);
      int stmt = q == 0 ? 0 : q + first - 1;
      *failed = stmt > n + 1 ? n + 1 : stmt;
      rc = first_line(err, status_of(state), msg);
      break;
    }
cleanup:
  for (int q = 0; q < nq && q < total; q++) pq->PQclear(res[q]);
  return rc;
}

static int pg_next (ag_store *b, char *err) {
  pg_store *s = PG(b);
  if (s->bnext >= s->nbres) return ag_seterr(err, AG_ENOTFOUND, "no batch results left");
  pq->PQclear(s->res);
  s->res = s->bres[s->bnext++];
  s->row = -1;
  s->nrows = pq->PQntuples(s->res);
  return AG_OK;
}

/* }====================================================== */

static const ag_store_backend pg_backend = {
  "postgres", pg_exec, pg_query, pg_step, pg_ncolumns, pg_column_name,
  pg_column, pg_reset, pg_begin, pg_lock, pg_txstatus, pg_evict, pg_close,
};

int ag_store__pg_open (const char *conninfo, const ag_store_opts *o,
                       ag_store **out, char *err) {
  *out = NULL;
  if (pq == NULL && (pq = ag_pq(err)) == NULL) return AG_EUNSUPPORTED;
  pg_store *s = calloc(1, sizeof *s);
  if (s == NULL || (s->conninfo = strdup(conninfo)) == NULL) {
    free(s);
    return ag_seterr(err, AG_ENOMEM, "not enough memory");
  }
  ag_store__init(&s->base, &pg_backend, o);
  s->base.batch = pg_batch;
  s->base.next = pg_next;
  long secs = (long)ceil(o->connect_timeout);
  snprintf(s->timeout, sizeof s->timeout, "%ld", secs > 0 ? secs : 0);
  s->forget = 1;  /* until connected, nothing is prepared */
  int rc = connect_db(s, err);
  if (rc != AG_OK) {
    pq->PQfinish(s->conn);
    free(s->conninfo);
    free(s);
    return rc;
  }
  s->forget = 0;
  *out = &s->base;
  return AG_OK;
}
