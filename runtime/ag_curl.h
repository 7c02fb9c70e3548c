/*
** ag_curl.h: libcurl, loaded on first use (see ag_dl.h for why).
** Call through the table: `const ag_curl_api *c = ag_curl(err);`.
** Add a function here before using it.  curl.h turns curl_easy_setopt and
** curl_easy_getinfo into type-checking macros under GCC: call them through
** the table in parentheses, `(c->curl_easy_setopt)(h, opt, v)`, and pass
** exactly the type each option takes (long, curl_off_t, pointer).
*/
#ifndef AG_CURL_H
#define AG_CURL_H

#include <curl/curl.h>

#include "ag_err.h"

#define AG_CURL_SYMBOLS(X) \
  X(curl_version_info) \
  X(curl_global_init) \
  X(curl_easy_init) \
  X(curl_easy_cleanup) \
  X(curl_easy_reset) \
  X(curl_easy_setopt) \
  X(curl_easy_getinfo) \
  X(curl_easy_strerror) \
  X(curl_multi_init) \
  X(curl_multi_cleanup) \
  X(curl_multi_add_handle) \
  X(curl_multi_remove_handle) \
  X(curl_multi_setopt) \
  X(curl_multi_perform) \
  X(curl_multi_poll) \
  X(curl_multi_info_read) \
  X(curl_multi_strerror) \
  X(curl_slist_append) \
  X(curl_slist_free_all) \
  X(curl_url) \
  X(curl_url_set) \
  X(curl_url_get) \
  X(curl_url_cleanup) \
  X(curl_free)

typedef struct ag_curl_api {
#define AG_CURL_FIELD(f) __typeof__(f) *f;
  AG_CURL_SYMBOLS(AG_CURL_FIELD)
#undef AG_CURL_FIELD
} ag_curl_api;

/* The libcurl table, loading libcurl.so.4 on the first call.  Borrowed;
** valid for the life of the process.  NULL with `err` filled on failure. */
const ag_curl_api *ag_curl(char err[AG_ERRLEN]);

#endif
