/*
** ag_pq.c: resolves the libpq table once.
*/
#include <stddef.h>

#include "ag_dl.h"
#include "ag_pq.h"

static ag_pq_api api;
static int loaded;          /* 0: not tried, 1: ready, -1: failed */
static char failure[AG_ERRLEN];

static int load (void) {
  static const char *const sonames[] = {"libpq.so.5", NULL};
  void *h = ag_dl_open(sonames, failure);
  if (h == NULL) return -1;
#define AG_PQ_RESOLVE(f) { \
    void (*p)(void) = ag_dl_sym(h, #f, failure); \
    if (p == NULL) return -1; \
    api.f = (__typeof__(api.f))p;  /* back to its real type */ \
  }
  AG_PQ_SYMBOLS(AG_PQ_RESOLVE)
#undef AG_PQ_RESOLVE
  return 1;
}

const ag_pq_api *ag_pq (char err[AG_ERRLEN]) {
  if (loaded == 0) loaded = load();
  if (loaded > 0) return &api;
  ag_seterr(err, AG_EUNSUPPORTED, "postgres: %s", failure);
  return NULL;
}
