/*
** evil_ext.c: a SQLite "extension" for RELIABILITY.md S5. Loading it is
** the code execution a crafted cache file must never achieve: its
** constructor creates the file MARKER (given with -DMARKER="..." when the
** spec compiles it), whoever loads it. Test tooling only.
*/
#include <fcntl.h>
#include <unistd.h>

int sqlite3_extension_init(void *db, char **err, const void *api);

__attribute__((constructor)) static void mark (void) {
  int fd = open(MARKER, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) close(fd);
}

int sqlite3_extension_init (void *db, char **err, const void *api) {
  (void)db; (void)err; (void)api;
  return 0;
}
