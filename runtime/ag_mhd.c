/*
** ag_mhd.c: resolves the libmicrohttpd table once.
*/
#include <stddef.h>

#include "ag_mhd.h"
#include "ag_dl.h"

static ag_mhd_api api;
static int loaded;          /* 0: not tried, 1: ready, -1: failed */
static char failure[AG_ERRLEN];

static int load (void) {
  static const char *const sonames[] = {"libmicrohttpd.so.12", "libmicrohttpd.so", NULL};
  void *h = ag_dl_open(sonames, failure);
  if (h == NULL) return -1;
#define AG_MHD_RESOLVE(f) { \
    void (*p)(void) = ag_dl_sym(h, #f, failure); \
    if (p == NULL) return -1; \
    api.f = (__typeof__(api.f))p;  /* back to its real type */ \
  }
  AG_MHD_SYMBOLS(AG_MHD_RESOLVE)
#undef AG_MHD_RESOLVE
  return 1;
}

const ag_mhd_api *ag_mhd (char err[AG_ERRLEN]) {
  if (loaded == 0) loaded = load();
  if (loaded > 0) return &api;
  ag_seterr(err, AG_EUNSUPPORTED, "httpd: %s", failure);
  return NULL;
}
