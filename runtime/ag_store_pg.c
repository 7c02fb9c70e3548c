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
** When that is known before a statement is sent, PQreset is safe.  When a
** statement fails with it, the connection is reset and the statement run
** once more only outside a transaction; inside one, the failure is
** reported (`conn`) and ag_store.c keeps the transaction's level failing
** until it is rolled back.  After a reset the server has forgotten every
** prepared statement, so the cache is cleared and statements re-prepared.
*/
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct pg_store {
  ag_store base;            /* first: a pg_store is an ag_store */
  PGconn *conn;
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
  return pq->PQstatus(s->conn) == CONNECTION_BAD;
}

/* Turns a failed result (NULL too) into a status and message. */
static int fail (pg_store *s, PGresult *res, char *err) {
  if (lost(s)) return first_line(err, AG_ECONN, pq->PQerrorMessage(s->conn));
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

/* What the session needs after every (re)connect. */
static int session_setup (pg_store *s, char *err) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SET statement_timeout = %ld; SET lock_timeout = %ld; SET bytea_output = 'hex'",
           (long)(s->base.opts.statement_timeout * 1000),
           (long)(s->base.opts.lock_timeout * 1000));
  PGresult *res = pq->PQexec(s->conn, sql);
  int rc = ok(res) ? AG_OK : fail(s, res, err);
  pq->PQclear(res);
  return rc;
}

static int reconnect (pg_store *s, char *err) {
  s->forget = 1;
  ag_store__cache_clear(&s->base);
  s->forget = 0;
  pq->PQreset(s->conn);
  if (lost(s)) return first_line(err, AG_ECONN, pq->PQerrorMessage(s->conn));
  return session_setup(s, err);
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
  PGresult *res = pq->PQprepare(s->conn, name, sql, 0, NULL);
  if (!ok(res)) {
    int rc = fail(s, res, err);
    pq->PQclear(res);
    return rc;
  }
  pq->PQclear(res);
  res = pq->PQdescribePrepared(s->conn, name);
  if (!ok(res)) {
    int rc = fail(s, res, err);
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
** Runs `sql` and returns its result in *out: PQexec (several statements
** allowed) when `simple`, else the cached prepared statement.  Handles a
** lost connection as the header comment says.
*/
static int run (pg_store *s, const char *sql, size_t len, const ag_store_value *p,
                int n, int simple, PGresult **out, char *err) {
  int retried = 0, rc;
  *out = NULL;
  for (;;) {
    if (lost(s)) {  /* known before sending: a reset is safe outside a transaction */
      if (s->base.depth > 0) return first_line(err, AG_ECONN, pq->PQerrorMessage(s->conn));
      if ((rc = reconnect(s, err)) != AG_OK) return rc;
    }
    int was_idle = idle(s);
    PGresult *res = NULL;
    ag_store_stmt *e = NULL;
    if (simple) res = pq->PQexec(s->conn, sql);
    else {
      if ((rc = prepare(s, sql, len, &e, err)) != AG_OK) {
        if (rc == AG_ECONN && lost(s) && was_idle && !retried++) continue;
        return rc;
      }
      if (e->nparams != n)
        return ag_seterr(err, AG_EINVAL, "the statement takes %d parameter%s, got %d value%s",
                         e->nparams, e->nparams == 1 ? "" : "s", n, n == 1 ? "" : "s");
      if ((rc = set_params(s, p, n, err)) != AG_OK) return rc;
      char name[32];
      snprintf(name, sizeof name, "aegis_%u", e->id);
      res = pq->PQexecPrepared(s->conn, name, n, s->values, s->lengths, s->formats, 0);
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

static int pg_begin (ag_store *b, char *err) {
  int64_t changes;
  return pg_exec(b, "BEGIN", 5, NULL, 0, &changes, err);
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
  pq->PQclear(pq->PQexec(s->conn, sql));
}

static void pg_close (ag_store *b) {
  pg_store *s = PG(b);
  s->forget = 1;  /* the session's end frees the server's statements */
  ag_store__cache_clear(b);
  pq->PQclear(s->res);
  pq->PQfinish(s->conn);
  free(s->buf);
  free(s->values);
  free(s->lengths);
  free(s->formats);
  free(s->num);
  free(s);
}

static const ag_store_backend pg_backend = {
  "postgres", pg_exec, pg_query, pg_step, pg_ncolumns, pg_column_name,
  pg_column, pg_reset, pg_begin, pg_lock, pg_txstatus, pg_evict, pg_close,
};

/* NOTICEs ("table does not exist, skipping") are not ours to print: libpq's
** default writes them to stderr, in the middle of a CLI's output. */
static void ignore_notice (void *arg, const char *message) {
  (void)arg;
  (void)message;
}

/*
** Our connection settings come before `dbname` (the URL or conninfo,
** expanded by libpq), so the URL can override them; libpq takes the last
** value of a repeated keyword.
*/
int ag_store__pg_open (const char *conninfo, const ag_store_opts *o,
                       ag_store **out, char *err) {
  char timeout[32];
  long secs = (long)ceil(o->connect_timeout);
  snprintf(timeout, sizeof timeout, "%ld", secs > 0 ? secs : 0);
  const char *const keys[] = {
    "application_name", "client_encoding", "connect_timeout", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
    "dbname", NULL,
  };
  const char *const values[] = {
    "aegis-run", "UTF8", timeout, "1", "10", "5", "3", "30000", conninfo, NULL,
  };
  *out = NULL;
  if (pq == NULL && (pq = ag_pq(err)) == NULL) return AG_EUNSUPPORTED;
  pg_store *s = calloc(1, sizeof *s);
  if (s == NULL) return ag_seterr(err, AG_ENOMEM, "not enough memory");
  ag_store__init(&s->base, &pg_backend, o);
  s->forget = 1;  /* until connected, nothing is prepared */
  s->conn = pq->PQconnectdbParams(keys, values, 1);
  int rc;
  if (s->conn == NULL) rc = ag_seterr(err, AG_ENOMEM, "not enough memory");
  else if (lost(s)) rc = first_line(err, AG_ECONN, pq->PQerrorMessage(s->conn));
  else {
    pq->PQsetNoticeProcessor(s->conn, ignore_notice, NULL);  /* kept by PQreset */
    rc = session_setup(s, err);
  }
  if (rc != AG_OK) {
    pq->PQfinish(s->conn);
    free(s);
    return rc;
  }
  s->forget = 0;
  *out = &s->base;
  return AG_OK;
}
