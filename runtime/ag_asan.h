/*
** ag_asan.h: AddressSanitizer for the pool allocators (ag_tsmem.c,
** ag_lmem.c).  AG_ASAN is 1 in an ASan build (gcc or clang); POISON and
** UNPOISON mark a free block of a pool as unusable and usable again, so
** ASan reports a use of a freed pool block as it would a freed malloc block.
** Both are no-ops in other builds.  ag_leak_checked says whether a leak
** checker watches the process (this build's LeakSanitizer, or valgrind,
** known by its preload library): the pools then give way to plain malloc
** and the host closes its state at exit, so that what is freed is seen.
*/
#ifndef AG_ASAN_H
#define AG_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define AG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AG_ASAN 1
#endif
#endif

#ifdef AG_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#include <stdlib.h>
#include <string.h>

static inline int ag_leak_checked (void) {
#ifdef AG_ASAN
  return 1;
#else
  const char *pre = getenv("LD_PRELOAD");
  return pre != NULL && strstr(pre, "vgpreload") != NULL;
#endif
}

#endif
