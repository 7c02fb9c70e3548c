/*
** ag_store.h: one storage interface over SQLite and PostgreSQL.
**
** A store is a connection opened from a URL (`sqlite:PATH`, `postgres://...`
** or a libpq conninfo string).  Callers write one SQL dialect: parameters
** are `$1, $2, ...` on both backends.  Statements are prepared once per SQL
** text and kept in a small LRU cache per connection.  At most one statement
** runs at a time on a store: starting another, or closing, ends the current
** one (so a caller that stops reading rows early never leaves a read
** transaction open for long).
**
** No Lua types here.  The backends (ag_store_sqlite.c, ag_store_pg.c) fill
** in an ag_store_backend vtable, like Redis's function engines; the section
** "for backends" at the end is their side of the contract.
*/
#ifndef AG_STORE_H
#define AG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ag_err.h"

typedef struct ag_store ag_store;

/* What `sqlite:` resolves to when no URL is given (resolved in Lua). */
#define AG_STORE_DEFAULT_URL "sqlite:.aegis/aegis.db"

/* Statements kept prepared per connection (least recently used goes). */
#define AG_STORE_CACHE 64

/*
** SQLite durability.  NORMAL: commits are not synced (consistent after a
** power loss, the last ones may be lost).  FULL: each COMMIT syncs the WAL
** while holding the write lock.  GROUP: COMMIT at NORMAL, then, after the
** write lock is released and before the call that committed returns, the
** WAL is synced: an acknowledged commit is on disk as with FULL, while
** other writers commit meanwhile and one flush covers several commits
** (docs/store.md, "Group commit").
*/
enum { AG_SYNC_NORMAL = 0, AG_SYNC_FULL = 1, AG_SYNC_GROUP = 2 };

typedef struct ag_store_opts {
  int synchronous;          /* SQLite: AG_SYNC_* (AG_SYNC_NORMAL) */
  int create_dir;           /* SQLite: create the file's directory (one level, 0700) */
  double busy_timeout;      /* SQLite: seconds to wait for a lock (10) */
  double connect_timeout;   /* PostgreSQL: seconds to connect (5) */
  double statement_timeout; /* PostgreSQL: seconds per statement (30; 0: none) */
  double lock_timeout;      /* PostgreSQL: seconds to wait for a lock (10; 0: none) */
} ag_store_opts;

/* Fills `o` with the defaults above. */
void ag_store_opts_init(ag_store_opts *o);

typedef enum ag_store_type {
  AG_STORE_NULL = 0,
  AG_STORE_INT,
  AG_STORE_FLOAT,
  AG_STORE_TEXT,
  AG_STORE_BLOB,
  AG_STORE_BOOL
} ag_store_type;

/*
** A parameter or a column value.  For TEXT and BLOB, `s.p` is borrowed:
** a parameter's bytes must stay valid for the duration of the call that
** takes it; a column's bytes are valid until the next step, column or
** reset on the same store.
*/
typedef struct ag_store_value {
  ag_store_type type;
  union {
    int64_t i;
    double f;
    int b;
    struct { const char *p; size_t n; } s;
  } u;
} ag_store_value;

/*
** Opens the store at `url`.  On failure sets *out = NULL, writes the
** detail (no URL, no password) into `err` and returns AG_EINVAL (unknown
** URL), AG_EIO, AG_ECORRUPT, AG_EBUSY or AG_ECONN.  A SQLite file this
** call created is removed again when its initialisation fails.
** Caller owns the result; free with ag_store_close.  `o` may be NULL.
*/
int ag_store_open(const char *url, const ag_store_opts *o, ag_store **out,
                  char err[AG_ERRLEN]);

/* Ends any running statement, rolls back an open transaction, runs
** `PRAGMA optimize` (SQLite) and closes.  NULL is a no-op.  AG_OK. */
int ag_store_close(ag_store *s);

/* "sqlite" or "postgres".  Static. */
const char *ag_store_kind(const ag_store *s);

/* The SQLite durability in effect, AG_SYNC_*: GROUP falls back to FULL on
** a file system without powersafe overwrite, and to NORMAL for a database
** in memory.  AG_SYNC_NORMAL on PostgreSQL (the server decides). */
int ag_store_synchronous(const ag_store *s);

/*
** Copies `url` into `buf` (NUL-terminated, truncated to `size`) with any
** password replaced by `***`: the userinfo password and a `password`
** query parameter of a URL, the `password` keyword of a conninfo string.
** Returns the length the full result needs, like snprintf.
*/
size_t ag_store_redact(const char *url, char *buf, size_t size);

/*
** Runs `sql` (length `len`, no NUL inside) to completion with `n`
** parameters bound to $1..$n, discarding rows.  With n == 0 the text may
** hold several statements.  *changes gets the rows inserted, updated or
** deleted by the last statement (0 for others).  AG_EINVAL when the SQL's
** parameters do not match `n` or a statement with parameters is followed
** by another one.  Copies nothing it keeps: `p` is read during the call.
*/
int ag_store_exec(ag_store *s, const char *sql, size_t len,
                  const ag_store_value *p, int n, int64_t *changes,
                  char err[AG_ERRLEN]);

/*
** Starts one statement that returns rows; read them with ag_store_step
** and ag_store_column, then call ag_store_reset (the next query, exec or
** close also does).  On failure nothing is left running.
*/
int ag_store_query(ag_store *s, const char *sql, size_t len,
                   const ag_store_value *p, int n, char err[AG_ERRLEN]);

/* Moves to the next row: *row = 1 when there is one, 0 at the end (the
** statement is then reset).  On failure the statement is reset. */
int ag_store_step(ag_store *s, int *row, char err[AG_ERRLEN]);

/* Columns of the running query (0 when none). */
int ag_store_ncolumns(ag_store *s);

/* Name of column i (0-based).  Borrowed; valid until ag_store_reset. */
const char *ag_store_column_name(ag_store *s, int i);

/* Value of column i of the current row.  Borrowed; see ag_store_value. */
int ag_store_column(ag_store *s, int i, ag_store_value *v, char err[AG_ERRLEN]);

/* Ends the running statement, if any. */
void ag_store_reset(ag_store *s);

/*
** Ends the running statement like ag_store_reset and, outside a
** transaction, completes the durability of what it committed (GROUP: syncs
** the WAL).  For a caller that stops reading rows of a statement that may
** have written (INSERT ... RETURNING in autocommit).  ag_store_exec,
** ag_store_step at the last row and ag_store_commit of the outermost level
** do this themselves.  AG_EIO when the sync failed: the commit is visible
** but not known to be on disk.
*/
int ag_store_finish(ag_store *s, char err[AG_ERRLEN]);

/*
** Transactions.  ag_store_begin opens the outermost level with BEGIN
** IMMEDIATE (SQLite, retried with jitter on a residual SQLITE_BUSY until
** the busy timeout) or BEGIN (PostgreSQL), and inner levels with
** SAVEPOINTs.  With `lock_key`, PostgreSQL takes
** pg_advisory_xact_lock(hashtextextended(lock_key, 0)) (held to the end of
** the outermost level); SQLite's write lock already serialises writers.
** *level is the level opened, to hand to ag_store_commit/rollback.
**
** A level whose transaction ended underneath it (connection lost, SQLite
** rolled back after an I/O error, a COMMIT run by hand) makes every
** statement fail until it is rolled back: work never silently continues
** outside the transaction it was written for.  ag_store_commit that fails
** leaves the level rolled back; ag_store_rollback always closes the level.
*/
int ag_store_begin(ag_store *s, const char *lock_key, int *level,
                   char err[AG_ERRLEN]);
int ag_store_commit(ag_store *s, int level, char err[AG_ERRLEN]);
int ag_store_rollback(ag_store *s, int level, char err[AG_ERRLEN]);

/* Open transaction levels (0: none). */
int ag_store_depth(const ag_store *s);

/*
** Batches: several statements in one transaction and, on PostgreSQL, in
** one round trip (libpq pipeline mode: BEGIN, the advisory lock of
** `lock_key` when not NULL, the statements, COMMIT, one sync).  Only
** outside a transaction and on a backend that pipelines: AG_EUNSUPPORTED
** otherwise (callers then run the statements one by one in
** ag_store_begin/commit, which gives the same result).  At most
** AG_STORE_BATCH_MAX statements, each one statement with `n` values.
**
** On success every statement's rows are held by the store: ag_store_next
** makes the next one the running query (read it with ag_store_step and
** ag_store_column).  They are freed by the next statement, begin or close.
** On failure nothing was committed, no transaction is open, the
** connection is out of pipeline mode, and *failed says where: 0 BEGIN or
** the lock, i (1..n) statement i, n + 1 COMMIT, -1 no one statement (the
** connection, memory).  A COMMIT whose answer was lost (`conn`, `timeout`)
** has an unknown outcome, as with ag_store_commit.
*/
#define AG_STORE_BATCH_MAX 32

typedef struct ag_store_item {
  const char *sql;             /* no NUL inside */
  size_t len;
  const ag_store_value *p;     /* borrowed for the call */
  int n;
} ag_store_item;

int ag_store_batch(ag_store *s, const ag_store_item *items, int n,
                   const char *lock_key, int *failed, char err[AG_ERRLEN]);

/* Makes the next result of the last batch the running query: AG_OK, or
** AG_ENOTFOUND when there is none left. */
int ag_store_next(ag_store *s, char err[AG_ERRLEN]);


/*
** {======================================================
** For backends
** =======================================================
*/

/* One prepared statement in the cache. */
typedef struct ag_store_stmt {
  char *sql;          /* owned copy of the key */
  size_t len;
  uint64_t hash;
  uint64_t used;      /* tick of the last use, for LRU */
  int nparams;        /* highest $n */
  int *map;           /* SQLite: parameter index i+1 binds value map[i] */
  int nmap;
  void *handle;       /* SQLite: sqlite3_stmt */
  unsigned id;        /* PostgreSQL: statement name "aegis_<id>" */
} ag_store_stmt;

typedef struct ag_store_backend {
  const char *kind;
  /* rows discarded; several statements allowed when n == 0 */
  int (*exec)(ag_store *s, const char *sql, size_t len,
              const ag_store_value *p, int n, int64_t *changes, char *err);
  int (*query)(ag_store *s, const char *sql, size_t len,
               const ag_store_value *p, int n, char *err);
  int (*step)(ag_store *s, int *row, char *err);
  int (*ncolumns)(ag_store *s);
  const char *(*column_name)(ag_store *s, int i);
  int (*column)(ag_store *s, int i, ag_store_value *v, char *err);
  void (*reset)(ag_store *s);
  /* outermost level; with `lock_key` (may be NULL) also takes the lock,
  ** in the same round trip where the backend can */
  int (*begin)(ag_store *s, const char *lock_key, char *err);
  int (*lock)(ag_store *s, const char *key, char *err);  /* NULL: no-op */
  /* -1 connection lost, 0 no transaction, 1 open, 2 open but aborted */
  int (*txstatus)(ag_store *s);
  void (*evict)(ag_store *s, ag_store_stmt *e);  /* frees e->handle */
  void (*close)(ag_store *s);    /* clears the cache, closes, frees s */
} ag_store_backend;

/* The generic part, first member of each backend's own struct. */
struct ag_store {
  const ag_store_backend *be;
  ag_store_opts opts;
  int active;          /* a query is running */
  int depth;           /* open transaction levels */
  int lost;            /* status that ended the transaction under `depth` */
  uint64_t rng;        /* xorshift state for retry jitter */
  uint64_t tick;
  /* Set by a backend that has work to do after a commit (SQLite GROUP:
  ** sync the WAL); called outside any transaction after a statement or
  ** COMMIT that may have committed.  NULL (ag_store__init): nothing. */
  int (*after_commit)(ag_store *s, char *err);
  /* Set by a backend that pipelines (PostgreSQL); NULL: it does not.
  ** batch: outside a transaction only, see ag_store_batch.  next: the
  ** next batch result as the running query; AG_ENOTFOUND: none left. */
  int (*batch)(ag_store *s, const ag_store_item *items, int n,
               const char *lock_key, int *failed, char *err);
  int (*next)(ag_store *s, char *err);
  int ncache;
  ag_store_stmt cache[AG_STORE_CACHE];
};

/* The cached statement for `sql`, marked used; NULL when absent. */
ag_store_stmt *ag_store__cache_find(ag_store *s, const char *sql, size_t len);

/* A free slot for `sql` (evicting the least recently used through
** be->evict), with its key copied; the caller sets the rest.  NULL when
** out of memory. */
ag_store_stmt *ag_store__cache_add(ag_store *s, const char *sql, size_t len);

/* Drops one entry (through be->evict) or all of them. */
void ag_store__cache_drop(ag_store *s, ag_store_stmt *e);
void ag_store__cache_clear(ag_store *s);

/* A uniform random double in [0, 1), for jitter. */
double ag_store__random(ag_store *s);

/* Sleeps `seconds` (restarting after signals). */
void ag_store__sleep(double seconds);

/* Seconds on the monotonic clock. */
double ag_store__now(void);

/* Generic initialisation of the part every backend shares. */
void ag_store__init(ag_store *s, const ag_store_backend *be,
                    const ag_store_opts *o);

/* Backend constructors, called by ag_store_open with the URL's rest. */
int ag_store__sqlite_open(const char *path, const ag_store_opts *o,
                          ag_store **out, char *err);
int ag_store__pg_open(const char *conninfo, const ag_store_opts *o,
                      ag_store **out, char *err);

/* }====================================================== */

#endif
