/*
** ag_err.c: the one table of status texts and codes.
*/
#include <stdarg.h>
#include <stdio.h>

#include "ag_err.h"

static const struct { const char *code, *text; } table[AG_NSTATUS] = {
  [AG_OK]           = {"ok", "success"},
  [AG_ENOMEM]       = {"nomem", "not enough memory"},
  [AG_EIO]          = {"io", "input/output error"},
  [AG_EBUSY]        = {"busy", "database is busy"},
  [AG_ETIMEOUT]     = {"timeout", "timed out"},
  [AG_EINVAL]       = {"invalid", "invalid argument"},
  [AG_ENOTFOUND]    = {"not_found", "not found"},
  [AG_ECORRUPT]     = {"corrupt", "data is corrupt"},
  [AG_ECONSTRAINT]  = {"constraint", "constraint violated"},
  [AG_ECONN]        = {"conn", "connection failed"},
  [AG_EPARSE]       = {"parse", "cannot parse"},
  [AG_EUNSUPPORTED] = {"unsupported", "not supported"},
  [AG_ESQL]         = {"sql", "statement failed"},
  [AG_EMEMORY]      = {"memory", "memory budget exceeded"},
};

static int valid (int status) {
  return status >= 0 && status < AG_NSTATUS;
}

const char *ag_strerror (int status) {
  return valid(status) ? table[status].text : "unknown error";
}

const char *ag_errcode (int status) {
  return valid(status) ? table[status].code : "unknown";
}

int ag_seterr (char *err, int status, const char *fmt, ...) {
  if (err != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, AG_ERRLEN, fmt, ap);
    va_end(ap);
  }
  return status;
}
