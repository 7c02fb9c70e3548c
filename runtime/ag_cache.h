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

/* What ag_cache_get found.  `response` is borrowed: valid until
** ag_cache_done or the next ag_cache_get on the same handle. */
typedef struct ag_cache_text { const char *p; size_t n; } ag_cache_text;  /* p NULL: SQL NULL */

typedef struct ag_cache_hit {
  const void *response;
  size_t response_len;
  int hash_ok;          /* SHA-256 of response == stored response_hash */
  int has_cost;
  double cost;
  int64_t created_at;   /* ms since 1970 */
  int64_t bytes;
  ag_cache_text provider, model, endpoint, scaffold_id, prefix_hash;
} ag_cache_hit;

/*
** Reads (ns, key): AG_OK with *hit filled, AG_ENOTFOUND when there is no
** such entry, or an error (AG_EBUSY, AG_ECORRUPT, AG_EIO, AG_ESQL) with the
** detail in `err`.  Call ag_cache_done after reading *hit.
*/
int ag_cache_get(ag_cache *c, const char *ns, size_t nsn,
                 const char key[AG_SHA256_HEXLEN], ag_cache_hit *hit,
                 char err[AG_ERRLEN]);

/* Ends the read (resets the statement, so no read transaction stays open). */
void ag_cache_done(ag_cache *c);

/* Closes; NULL is a no-op.  AG_OK. */
int ag_cache_close(ag_cache *c);

#endif
