/*
** ag_dl.c: dlopen/dlsym with aegis's error reporting.
*/
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <string.h>

#include "ag_dl.h"

void *ag_dl_open (const char *const sonames[], char err[AG_ERRLEN]) {
  const char *why = "no library name";
  for (const char *const *n = sonames; *n != NULL; n++) {
    void *h = dlopen(*n, RTLD_NOW | RTLD_LOCAL);
    if (h != NULL) return h;
    why = dlerror();
  }
  ag_seterr(err, AG_EUNSUPPORTED, "cannot load %s: %s", sonames[0], why);
  return NULL;
}

void (*ag_dl_sym (void *handle, const char *name, char err[AG_ERRLEN]))(void) {
  void (*f)(void);
  void *p = dlsym(handle, name);
  if (p == NULL) {
    ag_seterr(err, AG_EUNSUPPORTED, "missing symbol %s", name);
    return NULL;
  }
  memcpy(&f, &p, sizeof f);  /* POSIX: data and function pointers agree */
  return f;
}
