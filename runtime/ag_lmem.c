/*
** ag_lmem.c: the Lua state's allocator (see ag_lmem.h).
**
** One Lua state per process (host.c), one thread: plain statics, no locks.
** A chunk is carved front to back (a bump pointer); a block of class c is
** 16*c bytes, so every block is 16-byte aligned as malloc's are.  The tail
** of a chunk too short for the block asked goes unused (under 256 bytes in
** 64 KiB).  Chunks are never freed: their blocks are on free lists or in
** use by Lua until the process ends; they are linked from `chunks`.
*/
#define _DEFAULT_SOURCE
#include <stdlib.h>
#include <string.h>

#include "ag_asan.h"
#include "ag_lmem.h"

#define GRAIN 16
#define SMALL_MAX 256
#define NCLASS (SMALL_MAX / GRAIN)
#define CHUNK ((size_t)64 * 1024)

static int mode = -1;             /* -1: not chosen yet; 1: pool; 0: malloc */
static void *free_list[NCLASS + 1];  /* by class 1..NCLASS; linked through each block's first word */
static char *bump, *bump_end;     /* the never-used rest of the newest chunk */
static void *chunks;              /* the newest chunk; each starts with a pointer to the one before
                                  ** (so leak checkers see them held: AEGIS_LMEM=pool under ASan) */
static size_t nchunks, free_bytes;

static int choose (void) {
  const char *e = getenv("AEGIS_LMEM");
  if (e != NULL && strcmp(e, "pool") == 0) return 1;
  if (e != NULL && strcmp(e, "malloc") == 0) return 0;
  return !ag_leak_checked();
}

/* The class of a block of n bytes (1 <= n <= SMALL_MAX). */
static inline unsigned class_of (size_t n) {
  return (unsigned)((n + GRAIN - 1) / GRAIN);
}

static void *take (unsigned c) {
  void *b = free_list[c];
  size_t size = (size_t)c * GRAIN;
  if (b != NULL) {
    UNPOISON(b, size);
    void *next = *(void **)b;
    free_list[c] = next;
    /* the list's blocks were freed by a sweep long ago: fetch the next
    ** one's line now, so the next take of this class does not wait for it */
    if (next != NULL) __builtin_prefetch(next, 1);
    free_bytes -= size;
    return b;
  }
  if ((size_t)(bump_end - bump) < size) {
    char *ch = malloc(CHUNK);
    if (ch == NULL) return NULL;
    nchunks++;
    *(void **)ch = chunks;
    chunks = ch;
    bump = ch + GRAIN;            /* after the link, blocks stay 16-byte aligned */
    bump_end = ch + CHUNK;
  }
  b = bump;
  bump += size;
  return b;
}

static void give (unsigned c, void *b) {
  *(void **)b = free_list[c];
  free_list[c] = b;
  free_bytes += (size_t)c * GRAIN;
  POISON(b, (size_t)c * GRAIN);
}

void *ag_lmem_realloc (void *p, size_t osize, size_t nsize) {
  if (mode < 0) mode = choose();
  if (!mode) {
    if (nsize == 0) {
      free(p);
      return NULL;
    }
    return realloc(p, nsize);
  }
  unsigned oc = (p != NULL && osize <= SMALL_MAX) ? class_of(osize) : 0;   /* 0: malloc's (or none) */
  unsigned nc = (nsize > 0 && nsize <= SMALL_MAX) ? class_of(nsize) : 0;
  if (nsize == 0) {
    if (oc != 0) give(oc, p);
    else free(p);
    return NULL;
  }
  if (oc != 0 && oc == nc) return p;                 /* the same class: in place */
  if (nc == 0 && (p == NULL || oc == 0)) return realloc(p, nsize);   /* large to large */
  void *q = nc != 0 ? take(nc) : malloc(nsize);
  if (q == NULL) return NULL;
  if (p != NULL) {
    memcpy(q, p, osize < nsize ? osize : nsize);
    if (oc != 0) give(oc, p);
    else free(p);
  }
  return q;
}

const char *ag_lmem_mode (void) {
  if (mode < 0) mode = choose();
  return mode ? "pool" : "malloc";
}

void ag_lmem_stats_get (ag_lmem_stats *st) {
  st->chunks = nchunks;
  st->free_bytes = free_bytes;
}
