/*
** ag_err.h: status codes shared by the whole C core.
** Every core function that can fail returns an ag_status; AG_OK is 0 so
** `if (rc)` reads as "if it failed".  ag_errcode gives the stable string
** that reaches Lua as the third result of `nil, msg, code`.
*/
#ifndef AG_ERR_H
#define AG_ERR_H

#include <stddef.h>

typedef enum ag_status {
  AG_OK = 0,
  AG_ENOMEM,        /* allocation failed */
  AG_EIO,           /* file or device error */
  AG_EBUSY,         /* database locked past its timeout */
  AG_ETIMEOUT,      /* a deadline passed */
  AG_EINVAL,        /* a caller passed something malformed */
  AG_ENOTFOUND,     /* a named thing does not exist */
  AG_ECORRUPT,      /* stored data failed a check */
  AG_ECONSTRAINT,   /* a uniqueness or foreign-key rule refused a write */
  AG_ECONN,         /* a server could not be reached or dropped us */
  AG_EPARSE,        /* text could not be parsed */
  AG_EUNSUPPORTED,  /* not available in this build or backend */
  AG_ESQL,          /* a statement was refused by the database */
  AG_EMEMORY,       /* a memory budget was exceeded (tree-sitter's, ag_tsmem) */
  AG_NSTATUS
} ag_status;

/* Size of the message buffers that core functions fill on failure. */
#define AG_ERRLEN 512

/* Human text for a status ("database is busy"). Static; never NULL. */
const char *ag_strerror(int status);

/* Stable machine code for a status ("busy"). Static; never NULL. */
const char *ag_errcode(int status);

/* snprintf into an AG_ERRLEN buffer that may be NULL; returns status. */
int ag_seterr(char *err, int status, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 3, 4)))
#endif
  ;

#endif
