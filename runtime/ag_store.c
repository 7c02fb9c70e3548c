/*
** ag_store.c: the store's generic half: URL dispatch and redaction, the
** prepared-statement cache, the one-running-statement rule and the
** transaction levels (BEGIN / SAVEPOINT) shared by both backends.
*/
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ag_store.h"

void ag_store_opts_init (ag_store_opts *o) {
  memset(o, 0, sizeof *o);
  o->busy_timeout = 10.0;
  o->connect_timeout = 5.0;
  o->statement_timeout = 25.0;  /* + 5 s client grace: a dead server is seen within 30 s (F8) */
  o->lock_timeout = 10.0;
}

/*
** {======================================================
** URLs
** =======================================================
*/

static int has_prefix (const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int is_pg (const char *url) {
  return has_prefix(url, "postgres://") || has_prefix(url, "postgresql://") ||
         strchr(url, '=') != NULL;
}

int ag_store_open (const char *url, const ag_store_opts *o, ag_store **out,
                   char err[AG_ERRLEN]) {
  ag_store_opts defaults;
  *out = NULL;
  if (o == NULL) {
    ag_store_opts_init(&defaults);
    o = &defaults;
  }
  if (has_prefix(url, "sqlite:"))
    return ag_store__sqlite_open(url + 7, o, out, err);
  if (is_pg(url))
    return ag_store__pg_open(url, o, out, err);
  return ag_seterr(err, AG_EINVAL,
                   "unknown store URL (expected sqlite:PATH or postgres://...)");
}

const char *ag_store_kind (const ag_store *s) {
  return s->be->kind;
}

int ag_store_synchronous (const ag_store *s) {
  return s->opts.synchronous;
}

/* Output for ag_store_redact: counts what it cannot store, like snprintf. */
typedef struct rbuf { char *p; size_t size, n; } rbuf;

static void put (rbuf *b, const char *s, size_t n) {
  if (b->n < b->size) {
    size_t room = b->size - b->n;
    memcpy(b->p + b->n, s, n < room ? n : room);
  }
  b->n += n;
}

/* `?a=1&password=x&b=2`: replaces the value of every password parameter. */
static void redact_query (rbuf *b, const char *q) {
  while (*q) {
    size_t n = strcspn(q, "&");
    if (n >= 9 && strncmp(q, "password=", 9) == 0) put(b, "password=***", 12);
    else put(b, q, n);
    q += n;
    if (*q == '&') put(b, q++, 1);
  }
}

/*
** scheme://[user[:password]@]host.../db?params.  The userinfo ends at the
** first '@' before any '/', as libpq reads it.
*/
static void redact_url (rbuf *b, const char *url) {
  const char *p = strstr(url, "://") + 3;
  put(b, url, (size_t)(p - url));
  const char *at = p + strcspn(p, "@/");
  if (*at == '@') {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon != NULL) {
      put(b, p, (size_t)(colon + 1 - p));
      put(b, "***", 3);
    }
    else put(b, p, (size_t)(at - p));
    p = at;
  }
  const char *q = strchr(p, '?');
  if (q == NULL) {
    put(b, p, strlen(p));
    return;
  }
  put(b, p, (size_t)(q + 1 - p));
  redact_query(b, q + 1);
}

/* key = value pairs; values may be single-quoted with backslash escapes. */
static void redact_conninfo (rbuf *b, const char *s) {
  size_t i = 0;
  while (s[i]) {
    size_t start = i;
    while (isspace((unsigned char)s[i])) i++;
    size_t key = i;
    while (s[i] && s[i] != '=' && !isspace((unsigned char)s[i])) i++;
    size_t keylen = i - key;
    while (isspace((unsigned char)s[i])) i++;
    if (s[i] == '=') {
      i++;
      while (isspace((unsigned char)s[i])) i++;
    }
    put(b, s + start, i - start);
    size_t val = i;
    if (s[i] == '\'') {
      for (i++; s[i] && s[i] != '\''; i++)
        if (s[i] == '\\' && s[i + 1]) i++;
      if (s[i] == '\'') i++;
    }
    else {
      for (; s[i] && !isspace((unsigned char)s[i]); i++)
        if (s[i] == '\\' && s[i + 1]) i++;
    }
    if (keylen == 8 && strncmp(s + key, "password", 8) == 0 && i > val)
      put(b, "***", 3);
    else
      put(b, s + val, i - val);
  }
}

size_t ag_store_redact (const char *url, char *buf, size_t size) {
  rbuf b = {buf, size, 0};
  if (strstr(url, "://") != NULL) redact_url(&b, url);
  else if (strchr(url, '=') != NULL) redact_conninfo(&b, url);
  else put(&b, url, strlen(url));
  if (size > 0) buf[b.n < size ? b.n : size - 1] = '\0';
  return b.n;
}

/* }====================================================== */


/*
** {======================================================
** Statement cache (a small array: 64 hash compares beat a hash table here)
** =======================================================
*/

static uint64_t hash_sql (const char *s, size_t n) {
  uint64_t h = 14695981039346656037u;  /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211u;
  }
  return h;
}

ag_store_stmt *ag_store__cache_find (ag_store *s, const char *sql, size_t len) {
  uint64_t h = hash_sql(sql, len);
  for (int i = 0; i < s->ncache; i++) {
    ag_store_stmt *e = &s->cache[i];
    if (e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0) {
      e->used = ++s->tick;
      return e;
    }
  }
  return NULL;
}

void ag_store__cache_drop (ag_store *s, ag_store_stmt *e) {
  s->be->evict(s, e);
  free(e->sql);
  free(e->map);
  *e = s->cache[--s->ncache];  /* the last entry fills the hole */
}

void ag_store__cache_clear (ag_store *s) {
  while (s->ncache > 0)
    ag_store__cache_drop(s, &s->cache[s->ncache - 1]);
}

ag_store_stmt *ag_store__cache_add (ag_store *s, const char *sql, size_t len) {
  char *copy = malloc(len + 1);
  if (copy == NULL) return NULL;
  memcpy(copy, sql, len);
  copy[len] = '\0';
  if (s->ncache == AG_STORE_CACHE) {
    ag_store_stmt *old = &s->cache[0];
    for (int i = 1; i < s->ncache; i++)
      if (s->cache[i].used < old->used) old = &s->cache[i];
    ag_store__cache_drop(s, old);
  }
  ag_store_stmt *e = &s->cache[s->ncache++];
  memset(e, 0, sizeof *e);
  e->sql = copy;
  e->len = len;
  e->hash = hash_sql(sql, len);
  e->used = ++s->tick;
  return e;
}

/* }====================================================== */


/*
** {======================================================
** Shared helpers for backends
** =======================================================
*/

double ag_store__random (ag_store *s) {
  uint64_t x = s->rng;  /* xorshift64* */
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s->rng = x;
  return (double)((x * 2685821657736338717u) >> 11) / 9007199254740992.0;
}

void ag_store__sleep (double seconds) {
  if (seconds <= 0) return;
  struct timespec ts;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) ;
}

double ag_store__now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ag_store__init (ag_store *s, const ag_store_backend *be,
                     const ag_store_opts *o) {
  memset(s, 0, sizeof *s);
  s->be = be;
  s->opts = *o;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  s->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
           ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)s;
  if (s->rng == 0) s->rng = 88172645463325252u;
}

/* }====================================================== */


/*
** {======================================================
** Statements
** =======================================================
*/

static int lost_error (ag_store *s, char *err) {
  if (s->lost == AG_ECONN)
    return ag_seterr(err, AG_ECONN,
                     "the connection was lost inside a transaction, which is rolled back");
  return ag_seterr(err, s->lost,
                   "the transaction was rolled back by an earlier error or ended by hand");
}

/*
** Notices a transaction that ended underneath its level: afterwards every
** statement fails (lost_error) until the levels are rolled back, so work
** meant for a transaction never runs in autocommit instead.
*/
static void check_lost (ag_store *s) {
  if (s->depth > 0 && !s->lost) {
    int st = s->be->txstatus(s);
    if (st <= 0) s->lost = st < 0 ? AG_ECONN : AG_ESQL;
  }
}

static void end_active (ag_store *s) {
  if (s->active) {
    s->be->reset(s);
    s->active = 0;
  }
}

/* Before a caller's statement: end the running one, refuse in a lost tx,
** and refuse text with NUL bytes (PostgreSQL would cut it silently). */
static int before (ag_store *s, const ag_store_value *p, int n, char *err) {
  end_active(s);
  check_lost(s);
  if (s->lost) return lost_error(s, err);
  for (int i = 0; i < n; i++)
    if (p[i].type == AG_STORE_TEXT && memchr(p[i].u.s.p, '\0', p[i].u.s.n) != NULL)
      return ag_seterr(err, AG_EINVAL,
                       "value $%d is text with a NUL byte (pass bytes as a blob)", i + 1);
  return AG_OK;
}

/* After a statement or COMMIT that may have committed: the backend's
** durability step, outside transactions only (a COMMIT inside one is yet
** to come). */
static int after_commit (ag_store *s, char *err) {
  if (s->after_commit == NULL || s->depth > 0) return AG_OK;
  return s->after_commit(s, err);
}

int ag_store_exec (ag_store *s, const char *sql, size_t len,
                   const ag_store_value *p, int n, int64_t *changes,
                   char err[AG_ERRLEN]) {
  *changes = 0;
  int rc = before(s, p, n, err);
  if (rc) return rc;
  rc = s->be->exec(s, sql, len, p, n, changes, err);
  return rc ? rc : after_commit(s, err);
}

int ag_store_query (ag_store *s, const char *sql, size_t len,
                    const ag_store_value *p, int n, char err[AG_ERRLEN]) {
  int rc = before(s, p, n, err);
  if (rc) return rc;
  rc = s->be->query(s, sql, len, p, n, err);
  s->active = (rc == AG_OK);
  return rc;
}

int ag_store_step (ag_store *s, int *row, char err[AG_ERRLEN]) {
  *row = 0;
  if (!s->active) return AG_OK;
  int rc = s->be->step(s, row, err);
  if (rc || !*row) end_active(s);
  if (rc == AG_OK && !*row) rc = after_commit(s, err);
  return rc;
}

int ag_store_ncolumns (ag_store *s) {
  return s->active ? s->be->ncolumns(s) : 0;
}

const char *ag_store_column_name (ag_store *s, int i) {
  return s->be->column_name(s, i);
}

int ag_store_column (ag_store *s, int i, ag_store_value *v, char err[AG_ERRLEN]) {
  return s->be->column(s, i, v, err);
}

void ag_store_reset (ag_store *s) {
  end_active(s);
}

int ag_store_finish (ag_store *s, char err[AG_ERRLEN]) {
  end_active(s);
  return after_commit(s, err);
}

/* }====================================================== */


/*
** {======================================================
** Transactions
** =======================================================
*/

/* Runs one transaction-control statement; no parameters, no lost check. */
static int control (ag_store *s, const char *fmt, int level, char *err) {
  char sql[64];
  int64_t changes;
  int n = snprintf(sql, sizeof sql, fmt, level);
  return s->be->exec(s, sql, (size_t)n, NULL, 0, &changes, err);
}

/* Closes the innermost level, whatever state it is in.  Never leaves it
** open: a level whose transaction is gone only needs forgetting. */
static int rollback_one (ag_store *s, char *err) {
  int rc = AG_OK;
  check_lost(s);
  if (!s->lost) {
    if (s->depth == 1)
      rc = control(s, "ROLLBACK", 0, err);
    else {
      rc = control(s, "ROLLBACK TO SAVEPOINT aegis_%d", s->depth, err);
      if (rc == AG_OK) rc = control(s, "RELEASE SAVEPOINT aegis_%d", s->depth, err);
    }
  }
  if (--s->depth == 0) s->lost = 0;
  else if (rc) s->lost = rc;  /* the outer levels cannot trust this one */
  return rc;
}

int ag_store_begin (ag_store *s, const char *lock_key, int *level,
                    char err[AG_ERRLEN]) {
  *level = 0;
  int rc = before(s, NULL, 0, err);
  if (rc) return rc;
  int outer = s->depth == 0;
  if (outer) {
    rc = s->be->begin(s, lock_key, err);  /* takes the lock too */
    if (rc) {
      /* BEGIN may have gone through and the lock not: roll back what there
      ** is (a ROLLBACK outside a transaction only warns) */
      if (lock_key != NULL && s->be->lock != NULL) {
        s->depth++;
        rollback_one(s, NULL);
      }
      return rc;
    }
  } else
    rc = control(s, "SAVEPOINT aegis_%d", s->depth + 1, err);
  if (rc) return rc;
  s->depth++;
  if (!outer && lock_key != NULL && s->be->lock != NULL) {
    rc = s->be->lock(s, lock_key, err);
    if (rc) {
      rollback_one(s, NULL);
      return rc;
    }
  }
  *level = s->depth;
  return AG_OK;
}

int ag_store_commit (ag_store *s, int level, char err[AG_ERRLEN]) {
  end_active(s);
  if (level < 1 || level > s->depth)
    return ag_seterr(err, AG_EINVAL, "no open transaction at level %d", level);
  while (s->depth > level) rollback_one(s, NULL);  /* inner levels left open */
  check_lost(s);
  if (s->lost) {
    int rc = lost_error(s, err);
    rollback_one(s, NULL);
    return rc;
  }
  if (level == 1 && s->be->txstatus(s) == 2) {
    /* PostgreSQL answers COMMIT of an aborted transaction with ROLLBACK and
    ** no error: say so instead of reporting success */
    rollback_one(s, NULL);
    return ag_seterr(err, AG_ESQL,
                     "the transaction was aborted by an earlier error and is rolled back");
  }
  int rc = level == 1 ? control(s, "COMMIT", 0, err)
                      : control(s, "RELEASE SAVEPOINT aegis_%d", level, err);
  if (rc == AG_OK) {
    s->depth--;
    return after_commit(s, err);
  }
  rollback_one(s, NULL);  /* a failed COMMIT may leave the transaction open */
  return rc;
}

int ag_store_rollback (ag_store *s, int level, char err[AG_ERRLEN]) {
  end_active(s);
  if (level < 1 || level > s->depth) return AG_OK;  /* already closed */
  while (s->depth > level) rollback_one(s, NULL);
  return rollback_one(s, err);
}

int ag_store_depth (const ag_store *s) {
  return s->depth;
}

int ag_store_batch (ag_store *s, const ag_store_item *items, int n,
                    const char *lock_key, int *failed, char err[AG_ERRLEN]) {
  *failed = -1;
  int rc = before(s, NULL, 0, err);
  if (rc) return rc;
  if (s->batch == NULL || s->depth > 0)
    return ag_seterr(err, AG_EUNSUPPORTED, "no pipelined batch here (use a transaction)");
  if (n < 1 || n > AG_STORE_BATCH_MAX)
    return ag_seterr(err, AG_EINVAL, "a batch holds 1 to %d statements, got %d",
                     AG_STORE_BATCH_MAX, n);
  for (int i = 0; i < n; i++)
    if ((rc = before(s, items[i].p, items[i].n, err)) != AG_OK) {
      *failed = i + 1;
      return rc;
    }
  rc = s->batch(s, items, n, lock_key, failed, err);
  return rc ? rc : after_commit(s, err);
}

int ag_store_next (ag_store *s, char err[AG_ERRLEN]) {
  end_active(s);
  if (s->next == NULL) return ag_seterr(err, AG_ENOTFOUND, "no batch results");
  int rc = s->next(s, err);
  s->active = (rc == AG_OK);
  return rc;
}

/* }====================================================== */


int ag_store_close (ag_store *s) {
  if (s == NULL) return AG_OK;
  end_active(s);
  s->be->close(s);  /* clears the cache, frees s */
  return AG_OK;
}
