/*
** ag_lmem.h: the Lua state's memory (host.c's allocator).  Blocks of up to
** 256 bytes come from size classes (16 to 256 bytes by steps of 16) cut
** from 64 KiB chunks, and a freed block goes on its class's free list for
** the next block of that class; larger blocks are malloc's.  Lua passes the
** size of every block it frees or resizes, so a block needs no header and
** its class is known without a lookup.
**
** Why: Lua's objects are small and die in crowds (a collector sweep frees
** thousands of same-size blocks at once).  glibc's per-thread cache keeps 7
** blocks per size; the rest went through its bins and their consolidation:
** 7.4 % of the CPU samples of `aegis-run enforce` over the bench corpus
** (perf), 1.6 % with this pool (docs/benchmarks.md).
**
** The cost: small blocks freed are kept for Lua, never given back to the
** system, so the process holds the most its Lua state ever had in small
** blocks at once (large blocks go back to malloc as before).
**
** Mode, chosen on the first call and never changed (a block must be freed
** by the allocator that made it):
**   - pool: the default;
**   - malloc: plain realloc/free, so AddressSanitizer, LeakSanitizer and
**     valgrind see every Lua block.  Chosen when built with ASan, under
**     valgrind (LD_PRELOAD names its vgpreload) or with AEGIS_LMEM=malloc;
**     AEGIS_LMEM=pool forces the pool (under ASan its free blocks are
**     poisoned).
*/
#ifndef AG_LMEM_H
#define AG_LMEM_H

#include <stddef.h>

/* As realloc(p, nsize) for a block of osize bytes (p NULL: a new block;
** nsize 0: frees p, returns NULL).  NULL when out of memory, p untouched. */
void *ag_lmem_realloc(void *p, size_t osize, size_t nsize);

/* "pool" or "malloc". */
const char *ag_lmem_mode(void);

/* Pool figures (0 in malloc mode), for specs: chunks taken from malloc,
** and bytes of small blocks on the free lists. */
typedef struct ag_lmem_stats { size_t chunks, free_bytes; } ag_lmem_stats;
void ag_lmem_stats_get(ag_lmem_stats *st);

#endif
