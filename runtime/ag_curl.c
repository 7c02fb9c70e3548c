/*
** ag_curl.c: resolves the libcurl table once.
*/
#include <stddef.h>

#include "ag_curl.h"
#include "ag_dl.h"

static ag_curl_api api;
static int loaded;          /* 0: not tried, 1: ready, -1: failed */
static char failure[AG_ERRLEN];

static int load (void) {
  static const char *const sonames[] = {"libcurl.so.4", "libcurl-gnutls.so.4", NULL};
  void *h = ag_dl_open(sonames, failure);
  if (h == NULL) return -1;
#define AG_CURL_RESOLVE(f) { \
    void (*p)(void) = ag_dl_sym(h, #f, failure); \
    if (p == NULL) return -1; \
    api.f = (__typeof__(api.f))p;  /* back to its real type */ \
  }
  AG_CURL_SYMBOLS(AG_CURL_RESOLVE)
#undef AG_CURL_RESOLVE
  return 1;
}

const ag_curl_api *ag_curl (char err[AG_ERRLEN]) {
  if (loaded == 0) loaded = load();
  if (loaded > 0) return &api;
  ag_seterr(err, AG_EUNSUPPORTED, "http: %s", failure);
  return NULL;
}
