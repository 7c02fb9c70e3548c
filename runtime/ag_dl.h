/*
** ag_dl.h: libraries loaded on first use.
**
** libpq and libcurl bring ~30 shared libraries with them (Kerberos, LDAP,
** GnuTLS, ...) whose loading alone costs ~5 ms per process: more than the
** whole start-up budget of `aegis-run -e ''`.  So neither is linked: each is
** dlopen'ed the first time a PostgreSQL store or an HTTP request needs it,
** and its functions are called through a table of typed pointers
** (ag_pq.h, ag_curl.h).  Their headers are still used for the types.
*/
#ifndef AG_DL_H
#define AG_DL_H

#include "ag_err.h"

/*
** Opens the first of `sonames` (NULL-ended) that loads.  Returns the handle,
** or NULL with `err` naming the library and dlerror's reason.  The handle
** is never closed: the library stays for the life of the process.
*/
void *ag_dl_open(const char *const sonames[], char err[AG_ERRLEN]);

/* dlsym as a function pointer; NULL with `err` filled when missing. */
void (*ag_dl_sym(void *handle, const char *name, char err[AG_ERRLEN]))(void);

#endif
