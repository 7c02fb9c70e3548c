/*
** ag_store_sqlite.c: the SQLite backend of ag_store.
**
** Settings follow RELIABILITY.md ("Settings that these figures rest on"):
** no symlinks, WAL, a 10 s busy timeout plus jittered retries of BEGIN
** IMMEDIATE, a capped WAL file, defensive mode with untrusted schemas, no
** mmap, foreign keys on, synchronous NORMAL, FULL or GROUP (NORMAL and a
** sync of the WAL after the write lock is released: see sq_sync), PRAGMA
** optimize on close.  Parameters are written $1, $2, ...: SQLite reads
** `$1` as a named parameter, so each statement gets a map from its
** parameter slots to the caller's values, built once when it is prepared
** and cached.
*/
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ag_store.h"

typedef struct sq_store {
  ag_store base;            /* first: an sq_store is an ag_store */
  sqlite3 *db;
  sqlite3_stmt *cur;        /* the running query, reset by sq_reset */
  int busy_ms;
  int group;                /* AG_SYNC_GROUP in effect (WAL, powersafe overwrite) */
  int unsynced;             /* GROUP: a statement that writes ran since the last sync */
  int recover;              /* GROUP: a sync failed; checkpoint before trusting the WAL */
} sq_store;

#define SQ(s) ((sq_store *)(s))

/* ag_status for a SQLite result code. */
static int status_of (int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY: case SQLITE_LOCKED: return AG_EBUSY;
    case SQLITE_CONSTRAINT: return AG_ECONSTRAINT;
    case SQLITE_CORRUPT: case SQLITE_NOTADB: return AG_ECORRUPT;
    case SQLITE_IOERR: case SQLITE_CANTOPEN: case SQLITE_FULL:
    case SQLITE_READONLY: case SQLITE_PERM: case SQLITE_PROTOCOL:
      return AG_EIO;
    case SQLITE_NOMEM: return AG_ENOMEM;
    case SQLITE_INTERRUPT: return AG_ETIMEOUT;
    default: return AG_ESQL;
  }
}

static int fail (sq_store *s, int rc, char *err) {
  return ag_seterr(err, status_of(rc), "%s", sqlite3_errmsg(s->db));
}

/* Skips blanks, ';' and comments: what is left is another statement. */
static int blank_tail (const char *p) {
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' ||
           *p == ';')
      p++;
    if (p[0] == '-' && p[1] == '-') {
      p += strcspn(p, "\n");
    }
    else if (p[0] == '/' && p[1] == '*') {
      const char *end = strstr(p + 2, "*/");
      if (end == NULL) return 1;  /* SQLite accepts an unterminated comment */
      p = end + 2;
    }
    else return *p == '\0';
  }
}

/* `$<digits>` -> the number, else 0. */
static int param_number (const char *name) {
  if (name == NULL || name[0] != '$' || name[1] < '1' || name[1] > '9') return 0;
  long v = 0;
  for (const char *p = name + 1; *p; p++) {
    if (*p < '0' || *p > '9' || v > 100000) return 0;
    v = v * 10 + (*p - '0');
  }
  return (int)v;
}

#define MULTI (-1)  /* sq_prepare: the text holds more than one statement */

/*
** The cached statement for `sql` in *out (NULL for text with no statement),
** preparing and caching it on a miss.  Returns MULTI, without caching,
** when another statement follows the first.
*/
static int sq_prepare (sq_store *s, const char *sql, size_t len,
                       ag_store_stmt **out, char *err) {
  *out = ag_store__cache_find(&s->base, sql, len);
  if (*out != NULL) return AG_OK;
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  if (len > INT_MAX) return ag_seterr(err, AG_EINVAL, "statement too long");
  int rc = sqlite3_prepare_v3(s->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT,
                              &st, &tail);
  if (rc != SQLITE_OK) return fail(s, rc, err);
  if (tail != NULL && !blank_tail(tail)) {
    sqlite3_finalize(st);
    return MULTI;
  }
  if (st == NULL) return AG_OK;  /* only blanks and comments */
  int count = sqlite3_bind_parameter_count(st), nparams = 0;
  int *map = count > 0 ? malloc((size_t)count * sizeof *map) : NULL;
  if (count > 0 && map == NULL) {
    sqlite3_finalize(st);
    return ag_seterr(err, AG_ENOMEM, "not enough memory");
  }
  for (int i = 0; i < count; i++) {
    const char *name = sqlite3_bind_parameter_name(st, i + 1);
    int k = param_number(name);
    if (k == 0) {
      rc = ag_seterr(err, AG_EINVAL, "parameter '%s': write parameters as $1, $2, ...",
                     name != NULL ? name : "?");
      free(map);
      sqlite3_finalize(st);
      return rc;
    }
    map[i] = k;
    if (k > nparams) nparams = k;
  }
  ag_store_stmt *e = ag_store__cache_add(&s->base, sql, len);
  if (e == NULL) {
    free(map);
    sqlite3_finalize(st);
    return ag_seterr(err, AG_ENOMEM, "not enough memory");
  }
  e->handle = st;
  e->map = map;
  e->nmap = count;
  e->nparams = nparams;
  *out = e;
  return AG_OK;
}

static int check_count (const ag_store_stmt *e, int n, char *err) {
  int want = e != NULL ? e->nparams : 0;
  if (want == n) return AG_OK;
  return ag_seterr(err, AG_EINVAL, "the statement takes %d parameter%s, got %d value%s",
                   want, want == 1 ? "" : "s", n, n == 1 ? "" : "s");
}

/* Binds p[] through the statement's map.  SQLITE_STATIC is safe: the
** values outlive the call, and the bindings are cleared when it ends. */
static int sq_bind (sq_store *s, ag_store_stmt *e, const ag_store_value *p,
                    char *err) {
  sqlite3_stmt *st = e->handle;
  for (int i = 0; i < e->nmap; i++) {
    const ag_store_value *v = &p[e->map[i] - 1];
    int rc;
    switch (v->type) {
      case AG_STORE_INT: rc = sqlite3_bind_int64(st, i + 1, v->u.i); break;
      case AG_STORE_FLOAT: rc = sqlite3_bind_double(st, i + 1, v->u.f); break;
      case AG_STORE_BOOL: rc = sqlite3_bind_int(st, i + 1, v->u.b != 0); break;
      case AG_STORE_TEXT:
        rc = sqlite3_bind_text64(st, i + 1, v->u.s.p, v->u.s.n, SQLITE_STATIC, SQLITE_UTF8);
        break;
      case AG_STORE_BLOB:
        rc = v->u.s.n == 0 ? sqlite3_bind_zeroblob(st, i + 1, 0)  /* never a NULL */
                           : sqlite3_bind_blob64(st, i + 1, v->u.s.p, v->u.s.n, SQLITE_STATIC);
        break;
      default: rc = sqlite3_bind_null(st, i + 1); break;
    }
    if (rc != SQLITE_OK) {
      sqlite3_clear_bindings(st);
      return fail(s, rc, err);
    }
  }
  return AG_OK;
}

static void finish (sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

/* Rows changed by the statement that just ran: sqlite3_changes64 keeps
** the count of the last INSERT/UPDATE/DELETE, so a CREATE would repeat it
** unless the total moved. */
static int64_t changes_since (sq_store *s, sqlite3_int64 total0) {
  return sqlite3_total_changes64(s->db) != total0 ? sqlite3_changes64(s->db) : 0;
}

static int sq_exec (ag_store *b, const char *sql, size_t len,
                    const ag_store_value *p, int n, int64_t *changes, char *err) {
  sq_store *s = SQ(b);
  ag_store_stmt *e;
  sqlite3_int64 total0 = sqlite3_total_changes64(s->db);
  int rc = sq_prepare(s, sql, len, &e, err);
  if (rc == MULTI) {
    if (n > 0)
      return ag_seterr(err, AG_EINVAL,
                       "several statements: only exec without values runs more than one");
    char *msg = NULL;
    s->unsynced |= s->group;  /* a script may write */
    rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
      rc = ag_seterr(err, status_of(rc), "%s", msg != NULL ? msg : sqlite3_errstr(rc));
      sqlite3_free(msg);
      return rc;
    }
    *changes = changes_since(s, total0);
    return AG_OK;
  }
  if (rc) return rc;
  if ((rc = check_count(e, n, err)) != AG_OK || e == NULL) return rc;
  if ((rc = sq_bind(s, e, p, err)) != AG_OK) return rc;
  sqlite3_stmt *st = e->handle;
  if (s->group && !sqlite3_stmt_readonly(st)) s->unsynced = 1;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) ;
  if (rc != SQLITE_DONE) {
    rc = fail(s, rc, err);
    finish(st);
    return rc;
  }
  finish(st);
  *changes = changes_since(s, total0);
  return AG_OK;
}

static int sq_query (ag_store *b, const char *sql, size_t len,
                     const ag_store_value *p, int n, char *err) {
  sq_store *s = SQ(b);
  ag_store_stmt *e;
  int rc = sq_prepare(s, sql, len, &e, err);
  if (rc == MULTI)
    return ag_seterr(err, AG_EINVAL,
                     "several statements: only exec without values runs more than one");
  if (rc) return rc;
  if (e == NULL) return ag_seterr(err, AG_EINVAL, "no statement");
  if ((rc = check_count(e, n, err)) != AG_OK) return rc;
  if ((rc = sq_bind(s, e, p, err)) != AG_OK) return rc;
  s->cur = e->handle;
  if (s->group && !sqlite3_stmt_readonly(s->cur)) s->unsynced = 1;
  return AG_OK;
}

static int sq_step (ag_store *b, int *row, char *err) {
  sq_store *s = SQ(b);
  int rc = sqlite3_step(s->cur);
  if (rc == SQLITE_ROW) {
    *row = 1;
    return AG_OK;
  }
  *row = 0;
  return rc == SQLITE_DONE ? AG_OK : fail(s, rc, err);
}

static int sq_ncolumns (ag_store *b) {
  return sqlite3_column_count(SQ(b)->cur);
}

static const char *sq_column_name (ag_store *b, int i) {
  const char *name = sqlite3_column_name(SQ(b)->cur, i);
  return name != NULL ? name : "?";
}

static int sq_column (ag_store *b, int i, ag_store_value *v, char *err) {
  sq_store *s = SQ(b);
  sqlite3_stmt *st = s->cur;
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
      v->type = AG_STORE_INT;
      v->u.i = sqlite3_column_int64(st, i);
      return AG_OK;
    case SQLITE_FLOAT:
      v->type = AG_STORE_FLOAT;
      v->u.f = sqlite3_column_double(st, i);
      return AG_OK;
    case SQLITE_TEXT:
      v->type = AG_STORE_TEXT;
      v->u.s.p = (const char *)sqlite3_column_text(st, i);
      break;
    case SQLITE_BLOB:
      v->type = AG_STORE_BLOB;
      v->u.s.p = sqlite3_column_blob(st, i);
      break;
    default:
      v->type = AG_STORE_NULL;
      return AG_OK;
  }
  v->u.s.n = (size_t)sqlite3_column_bytes(st, i);  /* after the pointer, as documented */
  if (v->u.s.p == NULL) {  /* an empty blob, or no memory for a conversion */
    if (v->u.s.n > 0) return ag_seterr(err, AG_ENOMEM, "not enough memory");
    v->u.s.p = "";
  }
  return AG_OK;
}

static void sq_reset (ag_store *b) {
  sq_store *s = SQ(b);
  if (s->cur != NULL) finish(s->cur);
  s->cur = NULL;
}

/*
** BEGIN IMMEDIATE takes the write lock now, so a transaction never fails
** half-way for want of it.  The busy handler waits up to the busy timeout;
** some SQLITE_BUSY cases skip the handler (WAL recovery, a snapshot that
** cannot be upgraded), so retry those with full jitter until the same
** deadline, with the handler's wait cut to the time that is left.
*/
static int sq_begin (ag_store *b, const char *lock_key, char *err) {
  sq_store *s = SQ(b);
  (void)lock_key;  /* BEGIN IMMEDIATE already serialises writers */
  double deadline = ag_store__now() + b->opts.busy_timeout;
  double cap = 0.002;
  int64_t changes;
  int rc, unsynced = s->unsynced;  /* BEGIN IMMEDIATE is not "readonly" but writes nothing */
  for (;;) {
    rc = sq_exec(b, "BEGIN IMMEDIATE", 15, NULL, 0, &changes, err);
    double left = deadline - ag_store__now();
    if (rc != AG_EBUSY || left <= 0) break;
    ag_store__sleep(ag_store__random(b) * (cap < left ? cap : left));
    if (cap < 0.1) cap *= 2;
    left = deadline - ag_store__now();
    sqlite3_busy_timeout(s->db, left > 0 ? (int)(left * 1000) + 1 : 1);
  }
  sqlite3_busy_timeout(s->db, s->busy_ms);
  s->unsynced = unsynced;
  return rc;
}

/*
** {======================================================
** Group commit (AG_SYNC_GROUP)
** =======================================================
*/

/*
** The connection commits at synchronous=NORMAL: COMMIT appends the frames
** to the WAL and publishes them, without a sync, while holding the write
** lock.  Then, outside any transaction (the lock released, other writers
** committing meanwhile), the call that committed syncs the WAL before it
** returns, through SQLite's own file object of the WAL (the descriptor it
** writes through, the same inode, and the directory synced if SQLite
** created the file): concurrent syncs of one file share the device flush.
** Why that is as durable as FULL: docs/store.md, "Group commit".
*/
static int sync_wal (sq_store *s) {
  sqlite3_file *f = NULL;
  int rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);
  if (rc != SQLITE_OK) return rc;
  if (f == NULL || f->pMethods == NULL) return SQLITE_OK;  /* no WAL open: nothing written */
  return f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
}

/* errno of the WAL file's last failed call (0 when unknown). */
static int wal_errno (sq_store *s) {
  sqlite3_file *f = NULL;
  int e = 0;
  if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) == SQLITE_OK &&
      f != NULL && f->pMethods != NULL)
    f->pMethods->xFileControl(f, SQLITE_FCNTL_LAST_ERRNO, &e);
  return e;
}

/*
** After a failed sync Linux may have marked the pages that did not reach
** the disk clean: a later sync would succeed without writing them, and a
** power loss would leave a hole in the WAL that cuts off every commit
** after it.  So copy everything committed into the database file and sync
** it (a TRUNCATE checkpoint: it waits, within the busy timeout, for
** readers of older snapshots), then sync the emptied WAL.  Until that
** succeeds every sync of this connection runs it again instead.
*/
static int recover_wal (sq_store *s) {
  int nlog = -1, done = -1;
  int rc = sqlite3_wal_checkpoint_v2(s->db, "main", SQLITE_CHECKPOINT_TRUNCATE, &nlog, &done);
  if (rc == SQLITE_OK && nlog != 0) rc = SQLITE_BUSY;  /* not all of it */
  if (rc == SQLITE_OK) rc = sync_wal(s);
  s->recover = rc != SQLITE_OK;
  return rc;
}

static int sq_sync (ag_store *b, char *err) {
  sq_store *s = SQ(b);
  if (!s->unsynced || !sqlite3_get_autocommit(s->db)) return AG_OK;
  s->unsynced = 0;
  if (s->recover) {
    int rc = recover_wal(s);
    if (rc == SQLITE_OK) return AG_OK;
    return ag_seterr(err, AG_EIO, "committed, but not known to be on disk: an earlier sync of the WAL"
                     " failed, and checkpointing it into the database file failed too (%s)",
                     sqlite3_errstr(rc));
  }
  int rc = sync_wal(s);
  if (rc == SQLITE_OK) return AG_OK;
  int e = wal_errno(s);
  recover_wal(s);
  return ag_seterr(err, AG_EIO, "committed, but not known to be on disk: sync of the WAL failed (%s)",
                   e != 0 ? strerror(e) : sqlite3_errstr(rc));
}

/* }====================================================== */

static int sq_txstatus (ag_store *b) {
  return sqlite3_get_autocommit(SQ(b)->db) ? 0 : 1;
}

static void sq_evict (ag_store *b, ag_store_stmt *e) {
  (void)b;
  sqlite3_finalize(e->handle);
  e->handle = NULL;
}

/* PRAGMA optimize may want the write lock for ANALYZE: bounded and
** skipped when busy, so closing never waits on another writer. */
static void sq_close (ag_store *b) {
  sq_store *s = SQ(b);
  ag_store__cache_clear(b);
  if (s->db != NULL && sqlite3_get_autocommit(s->db) && !sqlite3_db_readonly(s->db, "main")) {
    sqlite3_busy_timeout(s->db, 50);
    sqlite3_exec(s->db, "PRAGMA analysis_limit=400; PRAGMA optimize", NULL, NULL, NULL);
  }
  sqlite3_close_v2(s->db);
  free(s);
}

static const ag_store_backend sqlite_backend = {
  "sqlite", sq_exec, sq_query, sq_step, sq_ncolumns, sq_column_name,
  sq_column, sq_reset, sq_begin, NULL, sq_txstatus, sq_evict, sq_close,
};


/*
** {======================================================
** Opening
** =======================================================
*/

/* Removes what a failed open created; names that do not exist are fine. */
static void remove_created (const char *path, const char *dir, int file, int mkdir_done) {
  if (file) {
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    size_t n = strlen(path);
    char *name = malloc(n + 9);
    if (name != NULL) {
      for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        snprintf(name, n + 9, "%s%s", path, suffixes[i]);
        unlink(name);
      }
      free(name);
    }
  }
  if (mkdir_done) rmdir(dir);
}

/* The directory part of `path` ("." when there is none).  Caller frees. */
static char *dir_of (const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) return strdup(".");
  if (slash == path) return strdup("/");
  size_t n = (size_t)(slash - path);
  char *d = malloc(n + 1);
  if (d != NULL) {
    memcpy(d, path, n);
    d[n] = '\0';
  }
  return d;
}

/* The pragmas that must hold on every connection, in one place. */
static int configure (sq_store *s, const ag_store_opts *o, char *err) {
  char sql[512];
  int rc;
  sqlite3_extended_result_codes(s->db, 1);
  sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
  /* Scripts reach SQL through aegis.store; ATTACH would let them open or
  ** create any file, and aegis itself never attaches. */
  sqlite3_limit(s->db, SQLITE_LIMIT_ATTACHED, 0);
  s->busy_ms = (int)(o->busy_timeout * 1000);
  sqlite3_busy_timeout(s->db, s->busy_ms);
  snprintf(sql, sizeof sql,
           "PRAGMA trusted_schema=OFF; PRAGMA cell_size_check=ON; PRAGMA mmap_size=0;"
           " PRAGMA foreign_keys=ON; PRAGMA synchronous=%s;"
           " PRAGMA journal_size_limit=67108864; PRAGMA wal_autocheckpoint=1000",
           o->synchronous == AG_SYNC_FULL ? "FULL" : "NORMAL");
  if ((rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
    return fail(s, rc, err);
  /* journal_mode is persistent; it is the first statement to read the
  ** file, so a file that is not a database fails here */
  sqlite3_stmt *st;
  rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (rc != SQLITE_OK) return fail(s, rc, err);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    rc = fail(s, rc, err);
    sqlite3_finalize(st);
    return rc;
  }
  const char *mode = (const char *)sqlite3_column_text(st, 0);
  int ok = mode != NULL && (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0);
  int wal = ok && strcmp(mode, "wal") == 0;
  if (!ok) ag_seterr(err, AG_EIO, "cannot use WAL (journal_mode is '%s')", mode ? mode : "?");
  sqlite3_finalize(st);
  if (!ok) return AG_EIO;
  if (o->synchronous == AG_SYNC_GROUP && !wal) s->base.opts.synchronous = AG_SYNC_NORMAL;
  if (o->synchronous == AG_SYNC_GROUP && wal) {
    /* Without powersafe overwrite a write after the synced frames could
    ** damage them (FULL pads each commit to a sector for that): use FULL. */
    sqlite3_file *f = NULL;
    sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER, &f);
    if (f != NULL && f->pMethods != NULL &&
        (f->pMethods->xDeviceCharacteristics(f) & SQLITE_IOCAP_POWERSAFE_OVERWRITE)) {
      s->group = 1;
      s->base.after_commit = sq_sync;
    }
    else {
      if ((rc = sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL)) != SQLITE_OK)
        return fail(s, rc, err);
      s->base.opts.synchronous = AG_SYNC_FULL;
    }
  }
  return AG_OK;
}

int ag_store__sqlite_open (const char *path, const ag_store_opts *o,
                           ag_store **out, char *err) {
  int rc = AG_OK, memory = strcmp(path, ":memory:") == 0;
  int existed = 1, made_dir = 0;
  char *dir = NULL, *fname = NULL;
  struct stat st;
  sq_store *s = NULL;
  *out = NULL;
  if (*path == '\0')
    return ag_seterr(err, AG_EINVAL, "empty path (write sqlite:PATH or sqlite::memory:)");
  if (!memory) {
    if ((dir = dir_of(path)) == NULL) goto nomem;
    if (stat(dir, &st) != 0) {
      int e = errno;
      if (e == ENOENT && o->create_dir) {
        if (mkdir(dir, 0700) == 0) made_dir = 1;
        else if ((e = errno) != EEXIST || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
          /* EEXIST and now a directory: another process made it first */
          rc = ag_seterr(err, AG_EIO, "cannot create directory '%s': %s", dir, strerror(e));
          goto done;
        }
      }
      else {
        rc = e == ENOENT ? ag_seterr(err, AG_EIO, "directory '%s' does not exist", dir)
                         : ag_seterr(err, AG_EIO, "directory '%s': %s", dir, strerror(e));
        goto done;
      }
    }
    else if (!S_ISDIR(st.st_mode)) {
      rc = ag_seterr(err, AG_EIO, "'%s' is not a directory", dir);
      goto done;
    }
    existed = lstat(path, &st) == 0 || errno != ENOENT;
  }
  /* Debian's SQLite is built with SQLITE_USE_URI: keep "file:..." a name */
  size_t n = strlen(path);
  if ((fname = malloc(n + 3)) == NULL) goto nomem;
  snprintf(fname, n + 3, "%s%s", strncmp(path, "file:", 5) == 0 ? "./" : "", path);
  if ((s = calloc(1, sizeof *s)) == NULL) goto nomem;
  ag_store__init(&s->base, &sqlite_backend, o);
  int src = sqlite3_open_v2(fname, &s->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
                            NULL);
  if (src != SQLITE_OK) {
    if (s->db == NULL) rc = ag_seterr(err, AG_ENOMEM, "not enough memory");
    else if (sqlite3_extended_errcode(s->db) == SQLITE_CANTOPEN_SYMLINK)
      rc = ag_seterr(err, AG_EIO, "is a symbolic link (refused)");
    else rc = fail(s, src, err);
    goto done;
  }
  rc = configure(s, o, err);
done:
  if (rc != AG_OK) {
    if (s != NULL) {
      sqlite3_close_v2(s->db);
      free(s);
    }
    if (!memory) remove_created(path, dir, !existed, made_dir);
  }
  else *out = &s->base;
  free(dir);
  free(fname);
  return rc;
nomem:
  rc = ag_seterr(err, AG_ENOMEM, "not enough memory");
  goto done;
}

/* }====================================================== */
