/*
** ag_tsmem.h: tree-sitter's memory, process-wide (ts_set_allocator): a pool
** of small blocks by size class in 64 KiB slabs of its own mmap'd segments,
** apart from the heap Lua and everything else use, and malloc for larger
** blocks; both counted, so a parse can be held to a memory budget.  One
** process runs tree-sitter on one thread (plain statics, no locks), but for
** threads that detach (below).
**
** Why: over thousands of files the parse trees' small blocks (subtrees,
** stack nodes, small arrays) landed in a heap the Lua objects of the
** previous file had fragmented, and glibc's malloc/free cost ~8 % of
** `enforce` (docs/ast.md).
**
** Mode, chosen once at ag_tsmem_install and never changed (a block must be
** freed by the allocator that made it):
**   - pool: the default;
**   - malloc: plain malloc, counted with malloc_usable_size, so ASan,
**     LeakSanitizer and valgrind see every tree-sitter block (a pool would
**     hide a leaked tree and reuse freed blocks without quarantine).  Chosen
**     when built with AddressSanitizer, when running under valgrind
**     (LD_PRELOAD names its vgpreload), or with AEGIS_TSMEM=malloc.
**     AEGIS_TSMEM=pool forces the pool (under ASan its free blocks are
**     poisoned, so a use of a freed block is still reported).
**
** A block tree-sitter hands out (ts_node_string's) must be freed with
** ag_tsmem_free, never free().
*/
#ifndef AG_TSMEM_H
#define AG_TSMEM_H

#include <stddef.h>
#include <stdint.h>

#include <tree_sitter/api.h>

/* Installs the allocator (ts_set_allocator); the mode is chosen on the
** first call, later calls install the same functions again. */
void ag_tsmem_install(void);

/* "pool" or "malloc" (NULL before ag_tsmem_install). */
const char *ag_tsmem_mode(void);

/* Bytes tree-sitter holds now: class sizes for pool blocks,
** malloc_usable_size for the others. */
size_t ag_tsmem_held(void);

/* The most held at once since the last call; resets it to what is held now. */
size_t ag_tsmem_peak(void);

/* A thread beside the main one (last.c compiles queries so) calls
** ag_tsmem_detach first: tree-sitter's blocks it makes and frees are then
** plain malloc, counted in its own total (ag_tsmem_detached_held, read on
** that thread), and it touches nothing the main thread uses.  The main
** thread calls ag_tsmem_detaching before it makes the thread, and once it
** has joined it, counts that total with ag_tsmem_adopt (0 for a thread that
** could not be made); the blocks are then as any malloc'd block of
** tree-sitter's.  ag_tsmem_outstanding: the threads made but not adopted
** (a process that forks with one would lose it: lfork.c refuses). */
void ag_tsmem_detach(void);
size_t ag_tsmem_detached_held(void);
void ag_tsmem_detaching(void);
void ag_tsmem_adopt(size_t n);
int ag_tsmem_outstanding(void);

/* Why ag_tsmem_parse gave no tree. */
enum {
  AG_TSMEM_TIMEOUT = 1,  /* the parser's timeout (or a cancellation); it keeps
                         ** its state to resume: reset or delete it */
  AG_TSMEM_OVER,         /* the memory budget, at a check between steps; the
                         ** same: reset or delete it */
  AG_TSMEM_STOPPED,      /* the ceiling, inside a step: the parser is taken
                         ** (kept aside, its memory held): never use it again */
  AG_TSMEM_REFUSED       /* AG_TSMEM_STOPS_MAX parsers were stopped so before:
                         ** no parse with a budget is started (the parser is
                         ** untouched) */
};
#define AG_TSMEM_STOPS_MAX 8

/* Parses src (UTF-8) with `parser`, tree-sitter holding at most `mem`
** bytes more than it holds now (0: no memory budget).  Allocations are never
** refused (tree-sitter aborts on NULL): past the budget a flag is set that
** the parse's progress callback, called between tree-sitter's steps, answers
** by cancelling.  Some steps grow without end in between (error recovery
** copying the subtrees of every path of a GLR stack: gigabytes on hostile
** TSX), so a ceiling a quarter above the budget stops them inside: an
** allocation that would pass it is not made, the allocator longjmps back
** here, and the parser, left mid-step, is taken (never used, reset or freed
** again; its memory stays held, reachable, until the process ends).  After
** AG_TSMEM_STOPS_MAX such stops, parses with a budget are refused rather than
** hold more.  Returns the tree, or NULL with *why set (above). */
TSTree *ag_tsmem_parse(TSParser *parser, const char *src, uint32_t len, size_t mem, int *why);

/* Frees a block tree-sitter allocated (NULL is fine). */
void ag_tsmem_free(void *p);

/* Pool figures (all 0 in malloc mode), for specs and benchmarks: bytes
** mapped (segments), in slabs of a size class, in idle slabs kept resident
** for reuse, and in idle slabs not resident (never touched, or given back
** to the OS with madvise). */
typedef struct ag_tsmem_stats { size_t mapped, used, idle, cold; } ag_tsmem_stats;
void ag_tsmem_stats_get(ag_tsmem_stats *st);

#endif
