/*
** ag_cache.c: the hit path of the prompt cache (see ag_cache.h).
*/
#include "ag_cache.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

struct ag_cache {
  sqlite3 *db;
  sqlite3_stmt *get;   /* SELECT response, response_hash, cost, created_at, bytes, provider, ... */
};

static int status_of (int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY: case SQLITE_LOCKED: return AG_EBUSY;
    case SQLITE_CORRUPT: case SQLITE_NOTADB: return AG_ECORRUPT;
    case SQLITE_IOERR: case SQLITE_CANTOPEN: case SQLITE_FULL: case SQLITE_PERM:
    case SQLITE_READONLY: return AG_EIO;
    case SQLITE_NOMEM: return AG_ENOMEM;
    default: return AG_ESQL;
  }
}

int ag_cache_open (const char *path, int busy_ms, ag_cache **out,
                   char err[AG_ERRLEN]) {
  *out = NULL;
  ag_cache *c = calloc(1, sizeof *c);
  if (c == NULL) return ag_seterr(err, AG_ENOMEM, "not enough memory");
  int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
  if (rc != SQLITE_OK) goto fail;
  sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
  sqlite3_limit(c->db, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_busy_timeout(c->db, busy_ms);
  rc = sqlite3_exec(c->db, "PRAGMA trusted_schema=OFF; PRAGMA cell_size_check=ON; PRAGMA mmap_size=0;"
                    "PRAGMA query_only=ON", NULL, NULL, NULL);
  if (rc != SQLITE_OK) goto fail;
  rc = sqlite3_prepare_v3(c->db,
    "SELECT response, response_hash, cost, created_at, bytes, provider, model, endpoint, scaffold_id,"
    " prefix_hash FROM cache_entries"
    " WHERE namespace = ?1 AND key = ?2", -1, SQLITE_PREPARE_PERSISTENT, &c->get, NULL);
  if (rc != SQLITE_OK) goto fail;
  *out = c;
  return AG_OK;
fail:
  {
    int st = status_of(rc);
    ag_seterr(err, st, "%s", c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    ag_cache_close(c);
    return st;
  }
}

int ag_cache_get (ag_cache *c, const char *ns, size_t nsn,
                  const char key[AG_SHA256_HEXLEN], ag_cache_hit *hit,
                  char err[AG_ERRLEN]) {
  memset(hit, 0, sizeof *hit);
  sqlite3_bind_text(c->get, 1, ns, (int)nsn, SQLITE_STATIC);
  sqlite3_bind_text(c->get, 2, key, AG_SHA256_HEXLEN, SQLITE_STATIC);
  int rc = sqlite3_step(c->get);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(c->get);
    return AG_ENOTFOUND;
  }
  if (rc != SQLITE_ROW) {
    int st = status_of(rc);
    ag_seterr(err, st, "%s", sqlite3_errmsg(c->db));
    sqlite3_reset(c->get);
    return st;
  }
  /* blob first, then its size (the order SQLite documents) */
  const void *resp = sqlite3_column_blob(c->get, 0);
  size_t n = (size_t)sqlite3_column_bytes(c->get, 0);
  const unsigned char *want = sqlite3_column_text(c->get, 1);
  size_t wantn = (size_t)sqlite3_column_bytes(c->get, 1);
  unsigned char d[AG_SHA256_LEN];
  char got[AG_SHA256_HEXLEN + 1];
  hit->response = resp != NULL ? resp : "";
  hit->response_len = resp != NULL ? n : 0;
  if (ag_sha256_buf(hit->response, hit->response_len, d) != AG_OK) {
    sqlite3_reset(c->get);
    return ag_seterr(err, AG_ENOMEM, "SHA-256 failed");
  }
  ag_sha256_hex(d, got);
  hit->hash_ok = want != NULL && wantn == AG_SHA256_HEXLEN && memcmp(got, want, AG_SHA256_HEXLEN) == 0;
  if (sqlite3_column_type(c->get, 2) != SQLITE_NULL) {
    hit->has_cost = 1;
    hit->cost = sqlite3_column_double(c->get, 2);
  }
  hit->created_at = sqlite3_column_int64(c->get, 3);
  hit->bytes = sqlite3_column_int64(c->get, 4);
  ag_cache_text *t[] = {&hit->provider, &hit->model, &hit->endpoint, &hit->scaffold_id, &hit->prefix_hash};
  for (int i = 0; i < 5; i++) {
    t[i]->p = (const char *)sqlite3_column_text(c->get, 5 + i);
    t[i]->n = (size_t)sqlite3_column_bytes(c->get, 5 + i);
  }
  return AG_OK;
}

void ag_cache_done (ag_cache *c) {
  if (c != NULL && c->get != NULL) {
    sqlite3_reset(c->get);
    sqlite3_clear_bindings(c->get);
  }
}

int ag_cache_close (ag_cache *c) {
  if (c == NULL) return AG_OK;
  sqlite3_finalize(c->get);
  sqlite3_close_v2(c->db);
  free(c);
  return AG_OK;
}
