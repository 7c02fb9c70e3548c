/*
** ag_tsmem.c: tree-sitter's allocator (see ag_tsmem.h).
**
** Pool layout.  Segments of 2 MiB, mmap'd and aligned to 2 MiB, each cut
** into 32 slabs of 64 KiB.  A slab in use serves one size class (8 to 512
** bytes by steps of 8: tree-sitter's blocks are 80-120 bytes nearly all,
** and need no more than pointer alignment); its header (64 bytes, at its
** start) holds its free list, its bump pointer into never-used space and
** its count of live blocks, so a block's slab is its address rounded down
** to 64 KiB and a block needs no header.  Whether an address is a pool block
** at all is a lookup of its segment in a small hash set: blocks of other
** sizes come from malloc (counted with malloc_usable_size), and so does a
** small block when no segment can be mapped.
**
** Each class keeps a list of its slabs that have room, most recently freed
** into first.  A slab whose last block is freed goes back to the idle slabs
** (any class can take it), unless it is the class's only slab with room
** (an alloc/free cycle of one block must not take and give a slab each
** time).  Up to IDLE_KEEP idle slabs stay resident; past that a released
** slab is given back to the OS (madvise MADV_DONTNEED: the segment stays
** mapped, its pages are dropped and come back zeroed when touched), so a
** big file's tree leaves at most IDLE_KEEP slabs resident once it is
** deleted.  Segments are never unmapped.
**
** The stacks of idle slabs and the hash set are plain malloc memory sized
** when a segment is mapped, so a release never needs memory.
*/
#define _DEFAULT_SOURCE
#include <malloc.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <tree_sitter/api.h>

#include "ag_asan.h"
#include "ag_tsmem.h"

#ifdef AG_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#define SLAB_SHIFT 16
#define SLAB ((size_t)1 << SLAB_SHIFT)
#define SEG_SHIFT 21
#define SEG ((size_t)1 << SEG_SHIFT)
#define SLABS_PER_SEG (SEG / SLAB)
#define HDR 64
#define GRAIN 8
#define SMALL_MAX 512
#define NCLASS (SMALL_MAX / GRAIN)
#define IDLE_KEEP 128   /* idle slabs kept resident: 8 MiB */

typedef struct slab {
  struct slab *next, *prev;   /* in its class's list of slabs with room */
  void *free;                 /* freed blocks, linked through their first word */
  char *bump, *end;           /* never-used blocks: [bump, end) */
  uint32_t used, size;        /* live blocks, block size */
  int listed;                 /* in its class's list */
} slab;

typedef char slab_header_fits[sizeof(slab) <= HDR ? 1 : -1];

/* ------------------------------------------------------------- counting */

static size_t held, peak, limit;
static int over;
static size_t ceiling;      /* with escape: the most held may reach (ag_tsmem_parse) */
static jmp_buf *escape;

/* Called before any allocation of n bytes, with nothing changed yet: past
** the ceiling the allocation is not made, and control goes back to the
** caller of ag_tsmem_ceiling (once: the escape is cleared first). */
static void guard (size_t n) {
  if (escape != NULL && (n > ceiling || held > ceiling - n)) {
    jmp_buf *e = escape;
    escape = NULL;
    longjmp(*e, 1);
  }
}

static void count (size_t n) {
  held += n;
  if (held > peak) peak = held;
  if (limit > 0 && held > limit) over = 1;
}

static void uncount (size_t n) {
  held = n < held ? held - n : 0;
}

static void *oom (size_t n) {
  fprintf(stderr, "tree-sitter failed to allocate %zu bytes\n", n);
  abort();
}

/* ------------------------------------------------------------- detached */

/* A thread of ag_tsmem_detach allocates with plain malloc and counts what it
** holds in its own total, touching no static of this file (the main thread
** may be using the pool meanwhile); ag_tsmem_adopt counts that total as
** held once the thread is joined, so its blocks are then what any malloc'd
** block is (pool_free and m_free uncount and free them).  A thread frees
** only blocks it made (last.c compiles a query on it). */
static __thread int detached;
static __thread size_t dheld;   /* net: made minus freed (wraps consistently) */

static void *d_malloc (size_t n) {
  void *p = malloc(n);
  if (p == NULL && n > 0) return oom(n);
  if (p) dheld += malloc_usable_size(p);
  return p;
}

/* Zeroed by writing, not by calloc: a large calloc is fresh pages that
** read as the shared zero page until written, and turning such a page into
** one of its own flushes the TLB of every CPU the process runs on (an
** interrupt for the main thread each time; tree-sitter's query analysis
** reads its calloc'd tables before it writes them). */
static void *d_calloc (size_t k, size_t n) {
  if (n != 0 && k > SIZE_MAX / n) return oom(SIZE_MAX);
  void *p = malloc(k * n);
  if (p == NULL && k > 0 && n > 0) return oom(k * n);
  if (p) {
    memset(p, 0, k * n);
    dheld += malloc_usable_size(p);
  }
  return p;
}

static void *d_realloc (void *p, size_t n) {
  size_t old = p ? malloc_usable_size(p) : 0;
  void *q = realloc(p, n);
  if (q == NULL && n > 0) return oom(n);
  dheld -= old;
  if (q) dheld += malloc_usable_size(q);
  return q;
}

static void d_free (void *p) {
  if (p == NULL) return;
  dheld -= malloc_usable_size(p);
  free(p);
}

void ag_tsmem_detach (void) {
  detached = 1;
  dheld = 0;
}

size_t ag_tsmem_detached_held (void) {
  return dheld;
}

/* ----------------------------------------------------------------- pool */

static slab *classes[NCLASS];
static slab **dirty, **clean;     /* idle slabs: resident / not resident */
static size_t ndirty, nclean, idlecap;
static uintptr_t *segs;           /* hash set of segment numbers + 1 (0: empty) */
static size_t segcap, nseg;

static size_t seg_slot (uintptr_t key) {
  size_t i = (size_t)((key * 0x9E3779B97F4A7C15u) >> 32) & (segcap - 1);
  while (segs[i] != 0 && segs[i] != key) i = (i + 1) & (segcap - 1);
  return i;
}

static int in_pool (const void *p) {
  if (nseg == 0) return 0;
  uintptr_t key = ((uintptr_t)p >> SEG_SHIFT) + 1;
  return segs[seg_slot(key)] == key;
}

/* Maps a segment and makes its slabs idle (not resident); 0 without
** memory for it or its bookkeeping. */
static int seg_new (void) {
  size_t total = (nseg + 1) * SLABS_PER_SEG;
  if (total > idlecap) {
    size_t cap = idlecap ? 2 * idlecap : 4 * SLABS_PER_SEG;
    while (cap < total) cap *= 2;
    slab **d = (slab **)realloc(dirty, cap * sizeof *d);
    if (d == NULL) return 0;
    dirty = d;
    slab **c = (slab **)realloc(clean, cap * sizeof *c);
    if (c == NULL) return 0;
    clean = c;
    idlecap = cap;
  }
  if (2 * (nseg + 1) > segcap) {   /* load at most 1/2 */
    size_t cap = segcap ? 2 * segcap : 64;
    uintptr_t *n = (uintptr_t *)calloc(cap, sizeof *n);
    if (n == NULL) return 0;
    uintptr_t *o = segs;
    size_t ocap = segcap;
    segs = n;
    segcap = cap;
    for (size_t i = 0; i < ocap; i++)
      if (o[i] != 0) segs[seg_slot(o[i])] = o[i];
    free(o);
  }
  char *m = (char *)mmap(NULL, 2 * SEG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 0;
  char *a = (char *)(((uintptr_t)m + SEG - 1) & ~(uintptr_t)(SEG - 1));
  if (a > m) munmap(m, (size_t)(a - m));
  if (m + 2 * SEG > a + SEG) munmap(a + SEG, (size_t)(m + 2 * SEG - (a + SEG)));
  uintptr_t key = ((uintptr_t)a >> SEG_SHIFT) + 1;
  segs[seg_slot(key)] = key;
  nseg++;
  POISON(a, SEG);
#ifdef AG_ASAN
  /* LeakSanitizer does not scan our mappings: a malloc'd block that only a
  ** pool block points to (a large array of a tree) would be reported */
  __lsan_register_root_region(a, SEG);
#endif
  for (size_t i = SLABS_PER_SEG; i-- > 0;) clean[nclean++] = (slab *)(a + i * SLAB);
  return 1;
}

/* An idle slab made the first (and only) slab with room of class c, or NULL. */
static slab *slab_take (size_t c) {
  slab *s;
  if (ndirty > 0) s = dirty[--ndirty];
  else if (nclean > 0 || seg_new()) s = clean[--nclean];
  else return NULL;
  UNPOISON(s, HDR);
  uint32_t size = (uint32_t)((c + 1) * GRAIN);
  s->size = size;
  s->free = NULL;
  s->used = 0;
  s->bump = (char *)s + HDR;
  s->end = s->bump + (SLAB - HDR) / size * size;
  s->prev = NULL;
  s->next = classes[c];
  if (s->next) s->next->prev = s;
  classes[c] = s;
  s->listed = 1;
  return s;
}

static void slab_unlink (slab *s, size_t c) {
  if (s->prev) s->prev->next = s->next;
  else classes[c] = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
  s->listed = 0;
}

static void slab_release (slab *s, size_t c) {
  slab_unlink(s, c);
  if (ndirty < IDLE_KEEP) {
    dirty[ndirty++] = s;
  } else {
    madvise(s, SLAB, MADV_DONTNEED);
    clean[nclean++] = s;
  }
  POISON(s, SLAB);
}

static void *small_alloc (size_t c) {
  slab *s = classes[c];
  if (s == NULL && (s = slab_take(c)) == NULL) return NULL;
  void *b;
  if (s->free != NULL) {
    b = s->free;
    UNPOISON(b, s->size);
    s->free = *(void **)b;
  } else {
    b = s->bump;
    s->bump += s->size;
    UNPOISON(b, s->size);
  }
  s->used++;
  if (s->free == NULL && s->bump == s->end) slab_unlink(s, c);
  count(s->size);
  return b;
}

static void small_free (void *b) {
  slab *s = (slab *)((uintptr_t)b & ~(uintptr_t)(SLAB - 1));
  size_t c = s->size / GRAIN - 1;
  uncount(s->size);
  *(void **)b = s->free;
  s->free = b;
  POISON(b, s->size);
  s->used--;
  if (!s->listed) {
    s->prev = NULL;
    s->next = classes[c];
    if (s->next) s->next->prev = s;
    classes[c] = s;
    s->listed = 1;
  }
  if (s->used == 0 && (classes[c] != s || s->next != NULL)) slab_release(s, c);
}

static size_t class_of (size_t n) {
  return n == 0 ? 0 : (n - 1) / GRAIN;
}

/* ---------------------------------------------------------- large blocks */

static void *big_malloc (size_t n) {
  void *p = malloc(n);
  if (p == NULL && n > 0) return oom(n);
  if (p) count(malloc_usable_size(p));
  return p;
}

static void *pool_malloc (size_t n) {
  if (detached) return d_malloc(n);
  guard(n);
  if (n <= SMALL_MAX) {
    void *b = small_alloc(class_of(n));
    if (b != NULL) return b;
  }
  return big_malloc(n);
}

static void *pool_calloc (size_t k, size_t n) {
  if (detached) return d_calloc(k, n);
  if (n != 0 && k > SIZE_MAX / n) return oom(SIZE_MAX);
  size_t t = k * n;
  guard(t);
  if (t <= SMALL_MAX) {
    void *b = small_alloc(class_of(t));
    if (b != NULL) return memset(b, 0, t);
  }
  void *p = calloc(k, n);
  if (p == NULL && t > 0) return oom(t);
  if (p) count(malloc_usable_size(p));
  return p;
}

static void pool_free (void *p) {
  if (detached) { d_free(p); return; }
  if (p == NULL) return;
  if (in_pool(p)) { small_free(p); return; }
  uncount(malloc_usable_size(p));
  free(p);
}

static void *pool_realloc (void *p, size_t n) {
  if (detached) return d_realloc(p, n);
  if (p == NULL) return pool_malloc(n);
  guard(n);
  if (in_pool(p)) {
    const slab *s = (const slab *)((uintptr_t)p & ~(uintptr_t)(SLAB - 1));
    size_t old = s->size;
    if (n <= SMALL_MAX && class_of(n) == old / GRAIN - 1) return p;
    void *q = pool_malloc(n);
    memcpy(q, p, old < n ? old : n);
    small_free(p);
    return q;
  }
  size_t old = malloc_usable_size(p);
  if (n <= SMALL_MAX) {
    void *q = small_alloc(class_of(n));
    if (q != NULL) {
      memcpy(q, p, old < n ? old : n);
      uncount(old);
      free(p);
      return q;
    }
  }
  void *q = realloc(p, n);
  if (q == NULL && n > 0) return oom(n);
  uncount(old);
  if (q) count(malloc_usable_size(q));
  return q;
}

/* ----------------------------------------------------------- malloc mode */

static void *m_malloc (size_t n) {
  if (detached) return d_malloc(n);
  guard(n);
  return big_malloc(n);
}

static void *m_calloc (size_t k, size_t n) {
  if (detached) return d_calloc(k, n);
  guard(n != 0 && k > SIZE_MAX / n ? SIZE_MAX : k * n);
  void *p = calloc(k, n);
  if (p == NULL && k > 0 && n > 0) return oom(k * n);
  if (p) count(malloc_usable_size(p));
  return p;
}

static void *m_realloc (void *p, size_t n) {
  if (detached) return d_realloc(p, n);
  guard(n);
  size_t old = p ? malloc_usable_size(p) : 0;
  void *q = realloc(p, n);
  if (q == NULL && n > 0) return oom(n);
  uncount(old);
  if (q) count(malloc_usable_size(q));
  return q;
}

static void m_free (void *p) {
  if (detached) { d_free(p); return; }
  if (p == NULL) return;
  uncount(malloc_usable_size(p));
  free(p);
}

/* ------------------------------------------------------------------ API */

static const char *mode;

void ag_tsmem_install (void) {
  if (mode == NULL) {
    const char *e = getenv("AEGIS_TSMEM");
    if (e != NULL && strcmp(e, "pool") == 0) mode = "pool";
    else if (e != NULL && strcmp(e, "malloc") == 0) mode = "malloc";
    else mode = ag_leak_checked() ? "malloc" : "pool";
  }
  if (mode[0] == 'p') ts_set_allocator(pool_malloc, pool_calloc, pool_realloc, pool_free);
  else ts_set_allocator(m_malloc, m_calloc, m_realloc, m_free);
}

const char *ag_tsmem_mode (void) {
  return mode;
}

size_t ag_tsmem_held (void) {
  return held;
}

static int outstanding;   /* threads made to detach, not yet adopted */

void ag_tsmem_detaching (void) {
  outstanding++;
}

void ag_tsmem_adopt (size_t n) {
  outstanding--;
  count(n);
}

int ag_tsmem_outstanding (void) {
  return outstanding;
}

size_t ag_tsmem_peak (void) {
  size_t p = peak;
  peak = held;
  return p;
}

static void ag_tsmem_limit (size_t n) {
  limit = n;
  over = 0;
}

static void ag_tsmem_ceiling (size_t n, jmp_buf *e) {
  ceiling = n;
  escape = n > 0 ? e : NULL;
}

/* ------------------------------------------------------- budgeted parse */

/* The parsers stopped inside a step, kept so that what they hold stays
** reachable (leak checkers do not report it).  Never read: volatile, or the
** compiler drops the array and its stores, and the parsers are lost. */
static TSParser *volatile stopped_parsers[AG_TSMEM_STOPS_MAX];
static int nstopped;

static bool parse_progress (TSParseState *st) {
  (void)st;
  return over != 0;
}

typedef struct strin { const char *s; uint32_t len; } strin;

static const char *strin_read (void *ud, uint32_t byte, TSPoint pt, uint32_t *n) {
  const strin *in = (const strin *)ud;
  (void)pt;
  if (byte >= in->len) { *n = 0; return ""; }
  *n = in->len - byte;
  return in->s + byte;
}

TSTree *ag_tsmem_parse (TSParser *parser, const char *src, uint32_t len, size_t mem, int *why) {
  *why = 0;
  if (mem > 0 && nstopped == AG_TSMEM_STOPS_MAX) { *why = AG_TSMEM_REFUSED; return NULL; }
  strin in = {src, len};
  TSInput input = {&in, strin_read, TSInputEncodingUTF8, NULL};
  TSParseOptions po = {NULL, parse_progress};
  size_t lim = 0, ceil = 0;
  if (mem > 0) {
    lim = held + mem;
    if (lim < held) lim = SIZE_MAX;   /* overflow: no cap */
    if (lim != SIZE_MAX && lim + mem / 4 > lim) ceil = lim + mem / 4;
  }
  ag_tsmem_limit(lim);
  ag_tsmem_ceiling(ceil, NULL);       /* set before setjmp: nothing read after a longjmp changes */
  TSParser *volatile taken = parser;
  TSTree *volatile t = NULL;
  volatile int stopped = 0;
  jmp_buf esc;
  if (setjmp(esc) == 0) {
    escape = ceiling > 0 ? &esc : NULL;
    t = ts_parser_parse_with_options(parser, NULL, input, po);
    ag_tsmem_ceiling(0, NULL);
  }
  else {  /* the ceiling: the parser is left mid-step */
    ag_tsmem_ceiling(0, NULL);
    stopped = 1;
    stopped_parsers[nstopped++] = taken;
  }
  int was_over = over;
  ag_tsmem_limit(0);
  if (t != NULL) return t;
  *why = stopped ? AG_TSMEM_STOPPED : was_over ? AG_TSMEM_OVER : AG_TSMEM_TIMEOUT;
  return NULL;
}

void ag_tsmem_free (void *p) {
  if (mode != NULL && mode[0] == 'p') pool_free(p);
  else m_free(p);
}

void ag_tsmem_stats_get (ag_tsmem_stats *st) {
  st->mapped = nseg * SEG;
  st->idle = ndirty * SLAB;
  st->cold = nclean * SLAB;
  st->used = st->mapped - st->idle - st->cold;
}
