/*
** ag_cache.h: the hit path of the prompt cache, in C.
**
** aegis.cache keeps its entries in the store (aegis.store); this is a
** second, read-only-in-practice SQLite connection to the same file that
** answers the one question a cache hit asks, with one prepared statement:
** "the response of (namespace, key), and does it match its SHA-256?".
** Writes, rotation and PostgreSQL go through aegis.store.  No Lua types.
*/
#ifndef AG_CACHE_H
#define AG_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ag_err.h"
#include "ag_sha256.h"

typedef struct ag_cache ag_cache;

/*
** Opens `path` (an existing SQLite file: no create, no symbolic link) with
** the store's safety settings: DEFENSIVE, trusted_schema=OFF,
** cell_size_check=ON, mmap_size=0, no ATTACH, the busy timeout given (ms).
** On failure sets *out = NULL and returns AG_EIO, AG_ECORRUPT, AG_EBUSY or
** AG_ESQL with the detail in `err`.  Caller owns the result; free with
** ag_cache_close.
*/
int ag_cache_open(const char *path, int busy_ms, ag_cache **out,
                  char err[AG_ERRLEN]);

/*
** Readies a SQLite file the store has just created for the cache: when it
** holds no table yet, sets auto_vacuum=INCREMENTAL (and VACUUMs, which an
** empty file takes at once) so rotation can give pages back with
** incremental_vacuum.  A file that has tables is left as it is.  AG_OK, or
** an error with the detail in `err`.
*/
int ag_cache_prepare(const char *path, int busy_ms, char err[AG_ERRLEN]);

/* What ag_cache_get found.  `response` is borrowed: valid until
** ag_cache_done or the next ag_cache_get on the same handle. */
typedef struct ag_cache_text { const char *p; size_t n; } ag_cache_text;  /* p NULL: SQL NULL */

typedef struct ag_cache_hit {
  const void *response;
  size_t response_len;
  int hash_ok;          /* ag_cache_entry_hash of the bytes read == stored response_hash */
  char hash[AG_SHA256_HEXLEN + 1];   /* that hash, hex */
  int has_cost;
  double cost;
  int64_t created_at;   /* ms since 1970 */
  int64_t bytes;
  ag_cache_text provider, model, endpoint, scaffold_id, prefix_hash;
} ag_cache_hit;

/*
** Reads (ns, key): AG_OK with *hit filled, AG_ENOTFOUND when there is no
** such entry, or an error (AG_EBUSY, AG_ECORRUPT, AG_EIO, AG_ESQL) with the
** detail in `err`.  The row read must carry (ns, key) itself: a damaged
** index pointing at another entry's row reads as hash_ok = 0, never as
** that entry's answer.  Without `full` only the response, its check, cost and
** created_at are read (the hit path); bytes and the text columns are left
** zero.  Call ag_cache_done after reading *hit.
*/
int ag_cache_get(ag_cache *c, const char *ns, size_t nsn,
                 const char key[AG_SHA256_HEXLEN], int full, ag_cache_hit *hit,
                 char err[AG_ERRLEN]);

/* Ends the read (resets the statement, so no read transaction stays open). */
void ag_cache_done(ag_cache *c);

/* Closes; NULL is a no-op.  AG_OK. */
int ag_cache_close(ag_cache *c);

/*
** A SHA-256 context kept for many digests: the algorithm is fetched once
** and the context reused, which saves OpenSSL 3's per-digest set-up (a
** third of the time of a short digest).  One user at a time.
*/
typedef struct ag_cache_sha ag_cache_sha;

/* On failure sets *out = NULL and returns AG_ENOMEM or AG_EIO.  Caller
** owns the result; free with ag_cache_sha_close. */
int ag_cache_sha_open(ag_cache_sha **out, char err[AG_ERRLEN]);

/* Digest of `n` bytes at `p`.  AG_OK, or AG_EIO when OpenSSL fails. */
int ag_cache_sha_digest(ag_cache_sha *h, const void *p, size_t n,
                        unsigned char digest[AG_SHA256_LEN]);

/* NULL is a no-op.  AG_OK. */
int ag_cache_sha_close(ag_cache_sha *h);

/* An entry's response hash: SHA-256 of ns, a NUL, key, a NUL and the
** response bytes (the key is in it so that another entry's row cannot
** verify as this one's; cache.lua's response_hash is the same). */
int ag_cache_entry_hash(ag_cache_sha *h, const char *ns, size_t nsn, const char *key, size_t keyn,
                        const void *resp, size_t n, unsigned char digest[AG_SHA256_LEN]);

#endif
