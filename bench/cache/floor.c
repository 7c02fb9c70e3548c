/*
** floor.c: the physical floor of a cache hit, for bench/cache/run.sh.
** Per hit: SHA-256 of the whole request (canonical JSON, prompt texts
** included), one point read of (response, response_hash) by key through
** the sqlite3 C API on a prepared statement, SHA-256 of the response
** compared with the stored hash (which covers "default", NUL, the key, NUL
** and the response: docs/cache.md; 72 bytes more than the response).  The same file and settings as aegis (WAL,
** mmap_size=0, cell_size_check=ON).
** usage: floor DB SIZE_NAME REQUESTS N  -> prints CPU microseconds per hit
** (process CPU time, the median of 9 rounds of N/9 hits, as
** aegis_bench.lua measures).  Reads DB.req.SIZE_NAME.<i> (the request) and
** DB.key.SIZE_NAME.<i> (its entry's key) for i = 1..REQUESTS.
*/
#define OPENSSL_SUPPRESS_DEPRECATED  /* SHA256_Init & co: the plain digest, no EVP set-up */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>
#include <sqlite3.h>

static void hex (const unsigned char d[SHA256_DIGEST_LENGTH], char out[65]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[64] = '\0';
}

static double now_us (void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static char *slurp (const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)n + 1);
  if (p == NULL || fread(p, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(p); return NULL; }
  fclose(f);
  *len = (size_t)n;
  return p;
}

static int cmp (const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main (int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: floor DB SIZE_NAME REQUESTS N\n"); return 2; }
  int nreq = atoi(argv[3]), n = atoi(argv[4]);
  char **reqs = calloc((size_t)nreq, sizeof *reqs), **keys = calloc((size_t)nreq, sizeof *keys);
  size_t *lens = calloc((size_t)nreq, sizeof *lens), klen;
  char path[4096];
  for (int i = 0; i < nreq; i++) {
    snprintf(path, sizeof path, "%s.req.%s.%d", argv[1], argv[2], i + 1);
    if ((reqs[i] = slurp(path, &lens[i])) == NULL) { fprintf(stderr, "floor: cannot read %s\n", path); return 1; }
    snprintf(path, sizeof path, "%s.key.%s.%d", argv[1], argv[2], i + 1);
    if ((keys[i] = slurp(path, &klen)) == NULL || klen != 64) {
      fprintf(stderr, "floor: cannot read %s\n", path);
      return 1;
    }
  }
  sqlite3 *db;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    fprintf(stderr, "floor: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_busy_timeout(db, 10000);
  sqlite3_exec(db, "PRAGMA mmap_size=0; PRAGMA cell_size_check=ON; PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v3(db, "SELECT response, response_hash FROM cache_entries WHERE namespace = ?1 AND key = ?2",
                         -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "floor: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  double rounds[9];
  long bad = 0;
  for (int r = -1; r < 9; r++) {
    int per = r < 0 ? 50 : (n / 9 > 0 ? n / 9 : 1);
    double t0 = now_us();
    for (int k = 0; k < per; k++) {
      int i = (k + r + 5) % nreq;
      unsigned char d[SHA256_DIGEST_LENGTH];
      char reqhash[65], got[65];
      SHA256((const unsigned char *)reqs[i], lens[i], d);
      hex(d, reqhash);
      sqlite3_bind_text(st, 1, "default", -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, keys[i], 64, SQLITE_STATIC);
      if (sqlite3_step(st) == SQLITE_ROW) {
        const void *resp = sqlite3_column_blob(st, 0);
        int rn = sqlite3_column_bytes(st, 0);
        const unsigned char *want = sqlite3_column_text(st, 1);
        SHA256_CTX sc;
        SHA256_Init(&sc);
        SHA256_Update(&sc, "default", 8);              /* with its NUL */
        SHA256_Update(&sc, keys[i], 64);
        SHA256_Update(&sc, "", 1);
        SHA256_Update(&sc, resp, (size_t)rn);
        SHA256_Final(d, &sc);
        hex(d, got);
        if (want == NULL || memcmp(got, want, 64) != 0 || reqhash[0] == '\0') bad++;
      } else {
        bad++;
      }
      sqlite3_reset(st);
    }
    if (r >= 0) rounds[r] = (now_us() - t0) / per;
  }
  qsort(rounds, 9, sizeof rounds[0], cmp);
  if (bad) { fprintf(stderr, "floor: %ld hits missed or failed their check\n", bad); return 1; }
  printf("%.3f\n", rounds[4]);
  sqlite3_finalize(st);
  sqlite3_close_v2(db);
  for (int i = 0; i < nreq; i++) free(reqs[i]), free(keys[i]);
  free(reqs);
  free(keys);
  free(lens);
  return 0;
}
