/*
** ag_mhd.h: libmicrohttpd, loaded on first use (see ag_dl.h for why: it
** brings GnuTLS and its dependencies, which would cost every start-up).
** Call through the table: `const ag_mhd_api *m = ag_mhd(err);`.
** Add a function here before using it.
*/
#ifndef AG_MHD_H
#define AG_MHD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "ag_err.h"

#define AG_MHD_SYMBOLS(X) \
  X(MHD_start_daemon) \
  X(MHD_stop_daemon) \
  X(MHD_get_fdset2) \
  X(MHD_get_timeout) \
  X(MHD_run) \
  X(MHD_run_from_select) \
  X(MHD_get_daemon_info) \
  X(MHD_get_connection_info) \
  X(MHD_get_connection_values_n) \
  X(MHD_create_response_from_callback) \
  X(MHD_add_response_header) \
  X(MHD_queue_response) \
  X(MHD_destroy_response) \
  X(MHD_suspend_connection) \
  X(MHD_resume_connection) \
  X(MHD_get_version)

typedef struct ag_mhd_api {
#define AG_MHD_FIELD(f) __typeof__(f) *f;
  AG_MHD_SYMBOLS(AG_MHD_FIELD)
#undef AG_MHD_FIELD
} ag_mhd_api;

/* The libmicrohttpd table, loading libmicrohttpd.so.12 on the first call.
** Borrowed; valid for the life of the process.  NULL with `err` filled on
** failure. */
const ag_mhd_api *ag_mhd(char err[AG_ERRLEN]);

#endif
