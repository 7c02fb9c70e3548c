/*
** ag_cache.c: the hit path of the prompt cache (see ag_cache.h).
*/
#include "ag_cache.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sqlite3.h>

struct ag_cache_sha {
  EVP_MD *md;
  EVP_MD_CTX *ctx;
};

int ag_cache_sha_open (ag_cache_sha **out, char err[AG_ERRLEN]) {
  *out = NULL;
  ag_cache_sha *h = calloc(1, sizeof *h);
  if (h == NULL) return ag_seterr(err, AG_ENOMEM, "not enough memory");
  h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
  h->ctx = EVP_MD_CTX_new();
  if (h->md == NULL || h->ctx == NULL) {
    ag_cache_sha_close(h);
    return ag_seterr(err, AG_EIO, "SHA-256 unavailable");
  }
  *out = h;
  return AG_OK;
}

int ag_cache_sha_digest (ag_cache_sha *h, const void *p, size_t n,
                         unsigned char digest[AG_SHA256_LEN]) {
  unsigned int len = 0;
  if (EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1 || EVP_DigestUpdate(h->ctx, p, n) != 1 ||
      EVP_DigestFinal_ex(h->ctx, digest, &len) != 1 || len != AG_SHA256_LEN)
    return AG_EIO;
  return AG_OK;
}

int ag_cache_entry_hash (ag_cache_sha *h, const char *ns, size_t nsn, const char *key, size_t keyn,
                         const void *resp, size_t n, unsigned char digest[AG_SHA256_LEN]) {
  unsigned int len = 0;
  if (EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1 || EVP_DigestUpdate(h->ctx, ns, nsn) != 1 ||
      EVP_DigestUpdate(h->ctx, "", 1) != 1 || EVP_DigestUpdate(h->ctx, key, keyn) != 1 ||
      EVP_DigestUpdate(h->ctx, "", 1) != 1 || EVP_DigestUpdate(h->ctx, resp, n) != 1 ||
      EVP_DigestFinal_ex(h->ctx, digest, &len) != 1 || len != AG_SHA256_LEN)
    return AG_EIO;
  return AG_OK;
}

int ag_cache_sha_close (ag_cache_sha *h) {
  if (h == NULL) return AG_OK;
  EVP_MD_CTX_free(h->ctx);
  EVP_MD_free(h->md);
  free(h);
  return AG_OK;
}

struct ag_cache {
  sqlite3 *db;
  sqlite3_stmt *get;     /* SELECT response, response_hash, cost, created_at, bytes, provider, ... */
  sqlite3_stmt *check;   /* SELECT response, response_hash, cost, created_at (the hit path) */
  sqlite3_stmt *cur;     /* the statement a row was read from, until ag_cache_done */
  ag_cache_sha *sha;
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
    "SELECT response, response_hash, cost, created_at, namespace, key, bytes, provider, model, endpoint,"
    " scaffold_id, prefix_hash FROM cache_entries"
    " WHERE namespace = ?1 AND key = ?2", -1, SQLITE_PREPARE_PERSISTENT, &c->get, NULL);
  if (rc != SQLITE_OK) goto fail;
  rc = sqlite3_prepare_v3(c->db,
    "SELECT response, response_hash, cost, created_at, namespace, key FROM cache_entries"
    " WHERE namespace = ?1 AND key = ?2",
    -1, SQLITE_PREPARE_PERSISTENT, &c->check, NULL);
  if (rc != SQLITE_OK) goto fail;
  {
    int st = ag_cache_sha_open(&c->sha, err);
    if (st != AG_OK) {
      ag_cache_close(c);
      return st;
    }
  }
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
                  const char key[AG_SHA256_HEXLEN], int full, ag_cache_hit *hit,
                  char err[AG_ERRLEN]) {
  memset(hit, 0, sizeof *hit);
  sqlite3_stmt *st = full ? c->get : c->check;
  c->cur = st;
  sqlite3_bind_text(st, 1, ns, (int)nsn, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key, AG_SHA256_HEXLEN, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    ag_cache_done(c);
    return AG_ENOTFOUND;
  }
  if (rc != SQLITE_ROW) {
    int status = status_of(rc);
    ag_seterr(err, status, "%s", sqlite3_errmsg(c->db));
    ag_cache_done(c);
    return status;
  }
  /* blob first, then its size (the order SQLite documents) */
  const void *resp = sqlite3_column_blob(st, 0);
  size_t n = (size_t)sqlite3_column_bytes(st, 0);
  const unsigned char *want = sqlite3_column_text(st, 1);
  size_t wantn = (size_t)sqlite3_column_bytes(st, 1);
  unsigned char d[AG_SHA256_LEN];
  hit->response = resp != NULL ? resp : "";
  hit->response_len = resp != NULL ? n : 0;
  if (ag_cache_entry_hash(c->sha, ns, nsn, key, AG_SHA256_HEXLEN, hit->response, hit->response_len, d) != AG_OK) {
    ag_cache_done(c);
    return ag_seterr(err, AG_EIO, "SHA-256 failed");
  }
  ag_sha256_hex(d, hit->hash);
  hit->hash_ok = want != NULL && wantn == AG_SHA256_HEXLEN && memcmp(hit->hash, want, AG_SHA256_HEXLEN) == 0;
  /* the row must be the one asked for.  The hash, which covers ns and
  ** key, is what guarantees it on SQLite: the namespace and key columns of
  ** an indexed lookup are read from the index, not from the row it points
  ** at, so this comparison only catches a row whose own columns differ. */
  const unsigned char *rns = sqlite3_column_text(st, 4), *rkey = sqlite3_column_text(st, 5);
  if (rns == NULL || rkey == NULL || (size_t)sqlite3_column_bytes(st, 4) != nsn ||
      sqlite3_column_bytes(st, 5) != AG_SHA256_HEXLEN || memcmp(rns, ns, nsn) != 0 ||
      memcmp(rkey, key, AG_SHA256_HEXLEN) != 0)
    hit->hash_ok = 0;
  if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
    hit->has_cost = 1;
    hit->cost = sqlite3_column_double(st, 2);
  }
  hit->created_at = sqlite3_column_int64(st, 3);
  if (full) {
    hit->bytes = sqlite3_column_int64(st, 6);
    ag_cache_text *t[] = {&hit->provider, &hit->model, &hit->endpoint, &hit->scaffold_id, &hit->prefix_hash};
    for (int i = 0; i < 5; i++) {
      t[i]->p = (const char *)sqlite3_column_text(st, 7 + i);
      t[i]->n = (size_t)sqlite3_column_bytes(st, 7 + i);
    }
  }
  return AG_OK;
}

int ag_cache_prepare (const char *path, int busy_ms, char err[AG_ERRLEN]) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_busy_timeout(db, busy_ms);
    rc = sqlite3_exec(db, "PRAGMA trusted_schema=OFF", NULL, NULL, NULL);
  }
  sqlite3_stmt *st = NULL;
  int tables = -1, av = -1;
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM sqlite_master), auto_vacuum FROM pragma_auto_vacuum",
                            -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    tables = sqlite3_column_int(st, 0);
    av = sqlite3_column_int(st, 1);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  /* a file with no table yet: VACUUM applies the new mode, instantly */
  if (rc == SQLITE_OK && tables == 0 && av == 0)
    rc = sqlite3_exec(db, "PRAGMA auto_vacuum=INCREMENTAL; VACUUM", NULL, NULL, NULL);
  int status = AG_OK;
  if (rc != SQLITE_OK) {
    status = status_of(rc);
    ag_seterr(err, status, "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  }
  sqlite3_close_v2(db);
  return status;
}

void ag_cache_done (ag_cache *c) {
  if (c != NULL && c->cur != NULL) {
    sqlite3_reset(c->cur);
    sqlite3_clear_bindings(c->cur);
    c->cur = NULL;
  }
}

int ag_cache_close (ag_cache *c) {
  if (c == NULL) return AG_OK;
  sqlite3_finalize(c->get);
  sqlite3_finalize(c->check);
  ag_cache_sha_close(c->sha);
  sqlite3_close_v2(c->db);
  free(c);
  return AG_OK;
}
