/*
** ag_curl.h: libcurl, loaded on first use (see ag_dl.h for why).
** Call through the table: `const ag_curl_api *c = ag_curl(err);`.
** Add a function here before using it.
*/
#ifndef AG_CURL_H
#define AG_CURL_H

#include <curl/curl.h>

#include "ag_err.h"

#define AG_CURL_SYMBOLS(X) \
  X(curl_version_info)

typedef struct ag_curl_api {
#define AG_CURL_FIELD(f) __typeof__(f) *f;
  AG_CURL_SYMBOLS(AG_CURL_FIELD)
#undef AG_CURL_FIELD
} ag_curl_api;

/* The libcurl table, loading libcurl.so.4 on the first call.  Borrowed;
** valid for the life of the process.  NULL with `err` filled on failure. */
const ag_curl_api *ag_curl(char err[AG_ERRLEN]);

#endif
