/*
** ag_asan.h: AddressSanitizer for the pool allocators (ag_tsmem.c,
** ag_lmem.c).  AG_ASAN is 1 in an ASan build (gcc or clang); POISON and
** UNPOISON mark a free block of a pool as unusable and usable again, so
** ASan reports a use of a freed pool block as it would a freed malloc block.
** Both are no-ops in other builds.
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

#endif
