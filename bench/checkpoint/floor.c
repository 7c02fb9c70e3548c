/*
** floor.c: the C floor of bench/checkpoint/run.sh.  The least any
** implementation can spend to save or load a checkpoint state's bytes on
** this machine, through the same library, file system and server as aegis
** and LangGraph: no Lua, no JavaScript, no codec, prepared statements,
** nothing else in the process.
**
**   SQLite: BEGIN IMMEDIATE; INSERT INTO floor (k, v) VALUES (?, ?); COMMIT
**     (three prepared statements, the value bound SQLITE_STATIC: no copy),
**     and SELECT v FROM floor WHERE k = ? (sqlite3_column_blob: the bytes
**     assembled from the pages, not copied again).  The connection is opened
**     as aegis's store opens one (runtime/ag_store_sqlite.c: configure):
**     the same open flags, defensive mode, busy timeout and pragmas
**     (mmap_size=0, synchronous FULL or NORMAL, journal_size_limit,
**     wal_autocheckpoint=1000, journal_mode=WAL; default page and cache
**     sizes, as aegis), and the WAL is grown first as aegis_bench.lua grows
**     aegis's (6 commits of 1.1 MB, 600 of 3,000 bytes), so no measured
**     commit extends it.
**   PostgreSQL (libpq, blocking): INSERT INTO cfloor (k, v) VALUES ($1, $2)
**     and SELECT v FROM cfloor WHERE k = $1 as prepared statements, each one
**     PQexecPrepared: Bind, Execute, Sync in one round trip, the INSERT its
**     own implicit transaction (no BEGIN / COMMIT), the bytea sent and
**     received in binary format (no escaping).  The column is compressed
**     as the server's default (pglz, as aegis's and LangGraph's tables);
**     "postgres-lz4" (run mode only) is the same with COMPRESSION lz4, a
**     per-column setting a saver could make without changing the schema.
**
** What it is not: not a checkpoint (one row of the state's JSON bytes, not
** LangGraph's rows; no parent lookup, no metadata, no decoding of what is
** loaded: the "rows floor" of aegis_bench.lua measures the rows), and not
** a bound on a different design (another database, an in-memory cache, an
** append-only file): it bounds what a saver built on these two stores and
** these settings can gain.
**
** Two modes:
**   floor run SQLITE_DIR PG_URL|- NAME:N:FILE ...
**     its own loop, nothing else running in the process: for each target
**     (sqlite-full, sqlite-normal, postgres and postgres-lz4 unless '-')
**     and each state, N saves then N loads after 2 warm-ups of each, as
**     aegis_bench.lua does;
**     prints a JSON array of {target, size, bytes, save_us, load_us}
**     (medians, microseconds).  Files: SQLITE_DIR/cfloor-{full,normal}.db.
**   floor serve CMD_FIFO REPLY_FIFO
**     one operation per command line, so that aegis_bench.lua can alternate
**     it with aegis's own (same moment, same background I/O); each reply is
**     one line, "ok ..." or the operation's time in nanoseconds:
**       sqlite PATH full|normal    open (and warm) a database
**       pg URL                     connect
**       state NAME FILE            read a state's bytes
**       save NAME KEY              insert state NAME's bytes under KEY
**       load NAME KEY              select them (length checked)
**       quit
** Any failure prints a message on stderr and exits 1.
*/
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#define MAXSTATES 8

typedef struct state {
  char name[32];
  int n;
  char *bytes;
  size_t len;
} state;

typedef struct target {
  sqlite3 *db;
  sqlite3_stmt *begin, *ins, *commit, *sel;
  PGconn *pg;
} target;

static state states[MAXSTATES];
static int nstates;

static void die (const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "floor: ");
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  exit(1);
}

static int64_t now_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *read_file (const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) die("cannot open '%s'%s", path, "");
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)n + 1);
  if (p == NULL || fread(p, 1, (size_t)n, f) != (size_t)n) die("cannot read '%s'%s", path, "");
  fclose(f);
  *len = (size_t)n;
  return p;
}

static state *find_state (const char *name) {
  for (int i = 0; i < nstates; i++)
    if (strcmp(states[i].name, name) == 0) return &states[i];
  die("no state '%s'%s", name, "");
  return NULL;
}

static void add_state (const char *name, int n, const char *file) {
  if (nstates == MAXSTATES) die("too many states%s%s", "", "");
  state *s = &states[nstates++];
  snprintf(s->name, sizeof s->name, "%s", name);
  s->n = n;
  s->bytes = read_file(file, &s->len);
}


/*
** {======================================================
** SQLite
** =======================================================
*/

static void sq_check (target *t, int rc, const char *what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    die("sqlite: %s: %s", what, sqlite3_errmsg(t->db));
}

static void sq_exec (target *t, const char *sql) {
  sq_check(t, sqlite3_exec(t->db, sql, NULL, NULL, NULL), sql);
}

static sqlite3_stmt *sq_prepare (target *t, const char *sql) {
  sqlite3_stmt *st = NULL;
  sq_check(t, sqlite3_prepare_v3(t->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL), sql);
  return st;
}

static void sq_step (target *t, sqlite3_stmt *st, int want) {
  int rc = sqlite3_step(st);
  if (rc != want) die("sqlite: step: %s%s", sqlite3_errmsg(t->db), "");
  sqlite3_reset(st);
}

/* One INSERT of `len` bytes in its own transaction. */
static void sq_save (target *t, const char *key, const void *v, size_t len) {
  sq_step(t, t->begin, SQLITE_DONE);
  sqlite3_bind_text(t->ins, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_blob64(t->ins, 2, v, len, SQLITE_STATIC);
  sq_step(t, t->ins, SQLITE_DONE);
  sq_step(t, t->commit, SQLITE_DONE);
}

static void sq_load (target *t, const char *key, size_t len) {
  sqlite3_bind_text(t->sel, 1, key, -1, SQLITE_STATIC);
  if (sqlite3_step(t->sel) != SQLITE_ROW) die("sqlite: load '%s': %s", key, sqlite3_errmsg(t->db));
  const void *p = sqlite3_column_blob(t->sel, 0);
  if ((p == NULL && len != 0) || (size_t)sqlite3_column_bytes(t->sel, 0) != len)
    die("sqlite: load '%s': wrong length%s", key, "");
  sqlite3_reset(t->sel);
}

/* As ag_store_sqlite.c's configure, then the table and aegis_bench.lua's
** warm_wal. */
static void sq_open (target *t, const char *path, const char *sync) {
  char sql[512];
  int full = strcmp(sync, "full") == 0;
  if (!full && strcmp(sync, "normal") != 0) die("sqlite: synchronous '%s'%s", sync, " (full or normal)");
  if (sqlite3_open_v2(path, &t->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
                      NULL) != SQLITE_OK)
    die("sqlite: open '%s': %s", path, t->db ? sqlite3_errmsg(t->db) : "no memory");
  sqlite3_extended_result_codes(t->db, 1);
  sqlite3_db_config(t->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
  sqlite3_limit(t->db, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_busy_timeout(t->db, 10000);
  snprintf(sql, sizeof sql,
           "PRAGMA trusted_schema=OFF; PRAGMA cell_size_check=ON; PRAGMA mmap_size=0;"
           " PRAGMA foreign_keys=ON; PRAGMA synchronous=%s;"
           " PRAGMA journal_size_limit=67108864; PRAGMA wal_autocheckpoint=1000",
           full ? "FULL" : "NORMAL");
  sq_exec(t, sql);
  sqlite3_stmt *st = sq_prepare(t, "PRAGMA journal_mode=WAL");
  if (sqlite3_step(st) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
    die("sqlite: '%s': cannot use WAL%s", path, "");
  sqlite3_finalize(st);
  sq_exec(t, "CREATE TABLE IF NOT EXISTS floor (k TEXT PRIMARY KEY, v BLOB)");
  sq_exec(t, "CREATE TABLE IF NOT EXISTS warm (k INTEGER PRIMARY KEY, v BLOB)");
  t->begin = sq_prepare(t, "BEGIN IMMEDIATE");
  t->commit = sq_prepare(t, "COMMIT");
  t->ins = sq_prepare(t, "INSERT INTO floor (k, v) VALUES (?1, ?2)");
  t->sel = sq_prepare(t, "SELECT v FROM floor WHERE k = ?1");
  sqlite3_stmt *warm = sq_prepare(t, "INSERT INTO warm (v) VALUES (?1)");
  char *big = malloc(1100000);
  if (big == NULL) die("no memory%s%s", "", "");
  for (int i = 0; i < 7; i++) {
    size_t n = i < 6 ? 1100000 : 3000;
    memset(big, i < 6 ? 'x' : 'y', n);
    for (int k = 0; k < (i < 6 ? 1 : 600); k++) {
      sq_step(t, t->begin, SQLITE_DONE);
      sqlite3_bind_blob64(warm, 1, big, n, SQLITE_STATIC);
      sq_step(t, warm, SQLITE_DONE);
      sq_step(t, t->commit, SQLITE_DONE);
    }
  }
  sqlite3_finalize(warm);
  free(big);
  sq_exec(t, "DELETE FROM warm");
}

/* }====================================================== */


/*
** {======================================================
** PostgreSQL
** =======================================================
*/

static void pg_result (target *t, PGresult *r, ExecStatusType want, const char *what) {
  if (PQresultStatus(r) != want) die("pg: %s: %s", what, PQerrorMessage(t->pg));
}

static void quiet (void *arg, const char *msg) {
  (void)arg;
  (void)msg;
}

/* Table `table` (created if missing); `lz4`: its bytea compressed with lz4
** rather than the server's default_toast_compression (pglz). */
static void pg_open (target *t, const char *url, const char *table, int lz4) {
  char sql[256];
  t->pg = PQconnectdb(url);
  if (PQstatus(t->pg) != CONNECTION_OK) die("pg: connect '%s': %s", url, PQerrorMessage(t->pg));
  PQsetNoticeProcessor(t->pg, quiet, NULL);  /* "relation already exists, skipping" */
  snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS %s (k TEXT PRIMARY KEY, v BYTEA%s)", table,
           lz4 ? " COMPRESSION lz4" : "");
  PGresult *r = PQexec(t->pg, sql);
  pg_result(t, r, PGRES_COMMAND_OK, "create");
  PQclear(r);
  snprintf(sql, sizeof sql, "INSERT INTO %s (k, v) VALUES ($1, $2)", table);
  r = PQprepare(t->pg, "ins", sql, 0, NULL);
  pg_result(t, r, PGRES_COMMAND_OK, "prepare");
  PQclear(r);
  snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE k = $1", table);
  r = PQprepare(t->pg, "sel", sql, 0, NULL);
  pg_result(t, r, PGRES_COMMAND_OK, "prepare");
  PQclear(r);
}

static void pg_save (target *t, const char *key, const char *v, size_t len) {
  const char *values[2] = {key, v};
  int lengths[2] = {0, (int)len}, formats[2] = {0, 1};
  PGresult *r = PQexecPrepared(t->pg, "ins", 2, values, lengths, formats, 1);
  pg_result(t, r, PGRES_COMMAND_OK, "insert");
  PQclear(r);
}

static void pg_load (target *t, const char *key, size_t len) {
  const char *values[1] = {key};
  PGresult *r = PQexecPrepared(t->pg, "sel", 1, values, NULL, NULL, 1);
  pg_result(t, r, PGRES_TUPLES_OK, "select");
  if (PQntuples(r) != 1 || (size_t)PQgetlength(r, 0, 0) != len) die("pg: load '%s': wrong row%s", key, "");
  PQclear(r);
}

/* }====================================================== */


static void close_target (target *t) {
  sqlite3_finalize(t->begin);
  sqlite3_finalize(t->ins);
  sqlite3_finalize(t->commit);
  sqlite3_finalize(t->sel);
  sqlite3_close_v2(t->db);
  if (t->pg != NULL) PQfinish(t->pg);
  memset(t, 0, sizeof *t);
}

/* Nanoseconds of one save (load) of state `s` under `key`. */
static int64_t save (target *t, const state *s, const char *key) {
  int64_t t0 = now_ns();
  if (t->db != NULL) sq_save(t, key, s->bytes, s->len);
  else pg_save(t, key, s->bytes, s->len);
  return now_ns() - t0;
}

static int64_t load (target *t, const state *s, const char *key) {
  int64_t t0 = now_ns();
  if (t->db != NULL) sq_load(t, key, s->len);
  else pg_load(t, key, s->len);
  return now_ns() - t0;
}

static int cmp64 (const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* The median as aegis_bench.lua takes it: t[ceil(n / 2)], 1-based. */
static double median_us (int64_t *ts, int n) {
  qsort(ts, (size_t)n, sizeof *ts, cmp64);
  return (double)ts[(n + 1) / 2 - 1] / 1e3;
}

static int run (int argc, char **argv) {
  const char *dir = argv[2], *pgurl = argv[3];
  for (int i = 4; i < argc; i++) {
    char name[32], file[4096];
    int n;
    if (sscanf(argv[i], "%31[^:]:%d:%4095s", name, &n, file) != 3 || n < 1) die("bad state '%s'%s", argv[i], "");
    add_state(name, n, file);
  }
  static const char *const names[] = {"sqlite-full", "sqlite-normal", "postgres", "postgres-lz4"};
  char key[512], path[4096];
  int first = 1;
  uint64_t run_id = (uint64_t)now_ns();
  printf("[");
  for (int k = 0; k < 4; k++) {
    target t = {0};
    if (k < 2) {
      snprintf(path, sizeof path, "%s/cfloor-%s.db", dir, k == 0 ? "full" : "normal");
      sq_open(&t, path, k == 0 ? "full" : "normal");
    }
    else if (strcmp(pgurl, "-") == 0) break;
    else pg_open(&t, pgurl, k == 2 ? "cfloor" : "cfloor_lz4", k == 3);
    for (int j = 0; j < nstates; j++) {
      state *s = &states[j];
      int64_t *ts = malloc(sizeof *ts * (size_t)s->n);
      if (ts == NULL) die("no memory%s%s", "", "");
      double save_us, load_us;
      for (int i = -2; i <= s->n; i++) {
        if (i == 0) continue;
        snprintf(key, sizeof key, "f-%s-%llu-%d", s->name, (unsigned long long)run_id, i);
        int64_t ns = save(&t, s, key);
        if (i > 0) ts[i - 1] = ns;
      }
      save_us = median_us(ts, s->n);
      for (int i = -2; i <= s->n; i++) {
        if (i == 0) continue;
        snprintf(key, sizeof key, "f-%s-%llu-%d", s->name, (unsigned long long)run_id, i > 0 ? i : 1);
        int64_t ns = load(&t, s, key);
        if (i > 0) ts[i - 1] = ns;
      }
      load_us = median_us(ts, s->n);
      free(ts);
      printf("%s{\"target\":\"%s\",\"size\":\"%s\",\"bytes\":%zu,\"save_us\":%.3f,\"load_us\":%.3f}",
             first ? "" : ",", names[k], s->name, s->len, save_us, load_us);
      first = 0;
    }
    close_target(&t);
  }
  printf("]\n");
  return 0;
}

static int serve (const char *cmdpath, const char *replypath) {
  FILE *in = fopen(cmdpath, "r");
  if (in == NULL) die("cannot open '%s'%s", cmdpath, "");
  FILE *out = fopen(replypath, "w");
  if (out == NULL) die("cannot open '%s'%s", replypath, "");
  target t = {0};
  char line[8192], a[4096], b[4096], c[64];
  while (fgets(line, sizeof line, in) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    if (sscanf(line, "sqlite %4095s %63s", a, c) == 2) {
      close_target(&t);
      sq_open(&t, a, c);
      fprintf(out, "ok\n");
    }
    else if (sscanf(line, "pg %4095s", a) == 1) {
      close_target(&t);
      pg_open(&t, a, "cfloor", 0);
      fprintf(out, "ok\n");
    }
    else if (sscanf(line, "state %4095s %4095s", a, b) == 2) {
      add_state(a, 1, b);
      fprintf(out, "ok %zu\n", states[nstates - 1].len);
    }
    else if (sscanf(line, "save %4095s %4095s", a, b) == 2)
      fprintf(out, "%lld\n", (long long)save(&t, find_state(a), b));
    else if (sscanf(line, "load %4095s %4095s", a, b) == 2)
      fprintf(out, "%lld\n", (long long)load(&t, find_state(a), b));
    else if (strcmp(line, "quit") == 0) break;
    else die("bad command '%s'%s", line, "");
    fflush(out);
  }
  close_target(&t);
  fclose(in);
  fclose(out);
  return 0;
}

int main (int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "run") == 0) return run(argc, argv);
  if (argc == 4 && strcmp(argv[1], "serve") == 0) return serve(argv[2], argv[3]);
  fprintf(stderr, "usage: floor run SQLITE_DIR PG_URL|- NAME:N:FILE ... | floor serve CMD_FIFO REPLY_FIFO\n");
  return 2;
}
