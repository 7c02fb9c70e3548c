/*
** faultinj.c: an LD_PRELOAD shim that fails the Nth call of one kind, once
** or from then on, for RELIABILITY.md F3 (I/O errors and allocation
** failures under SQLite).  libfiu (Debian fiu-utils) can fail a call once
** or always, or at random, but not "the Nth one", which is what walking
** every fault point N = 1..K needs; hence this shim.  Test tooling only:
** never linked into aegis-run.
**
** Build:  cc -shared -fPIC -O1 -o faultinj.so tools/faultinj.c -ldl
** Use:    LD_PRELOAD=faultinj.so AEGIS_FAULT=pwrite:3[:forever] \
**         AEGIS_FAULT_PATH=/tmp/dir AEGIS_FAULT_LOG=/tmp/log aegis-run ...
** (with an ASan binary add ASAN_OPTIONS=verify_asan_link_order=0).
**
** Kinds, each counted on its own:
**   open      open()/open64()/openat() of a path under $AEGIS_FAULT_PATH
**   pwrite    pwrite()/pwrite64()/write() on a file under $AEGIS_FAULT_PATH
**   fdatasync fdatasync()/fsync() on a file under $AEGIS_FAULT_PATH
**   ftruncate ftruncate()/ftruncate64() on a file under $AEGIS_FAULT_PATH
**   malloc    SQLite's own allocations (xMalloc and growing xRealloc,
**             through SQLITE_CONFIG_MALLOC, installed before main)
** AEGIS_FAULT=count injects nothing and only counts.  The failing call
** returns -1 with errno $AEGIS_FAULT_ERRNO (default EIO; "ENOSPC" and
** "EFBIG" are understood too), or NULL for malloc.
**
** At exit the shim appends one line to $AEGIS_FAULT_LOG:
**   calls open=3 pwrite=17 fdatasync=2 ftruncate=1 malloc=1201 injected=1
** `injected` is how many calls it failed, so a test can tell a fault that
** hit from one whose N was never reached.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum { K_OPEN, K_PWRITE, K_SYNC, K_TRUNC, K_MALLOC, K_N };
static const char *const kind_names[K_N] = {"open", "pwrite", "fdatasync", "ftruncate", "malloc"};

static int target = -1;        /* kind to fail, -1: none (count only) */
static long fail_at = 0;       /* the Nth call of that kind fails */
static int forever = 0;        /* and every later one too */
static int fail_errno = EIO;
static const char *under = NULL;
static size_t under_len = 0;
static long counts[K_N];
static long injected = 0;

/* Whether this call of `kind` fails; counts it either way. */
static int hit (int kind) {
  long n = __atomic_add_fetch(&counts[kind], 1, __ATOMIC_SEQ_CST);
  if (kind != target) return 0;
  if (n == fail_at || (forever && n > fail_at)) {
    __atomic_add_fetch(&injected, 1, __ATOMIC_SEQ_CST);
    return 1;
  }
  return 0;
}

static int path_matches (const char *path) {
  return under != NULL && path != NULL && strncmp(path, under, under_len) == 0;
}

static int fd_matches (int fd) {
  char link[64], path[4096];
  if (under == NULL) return 0;
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  return path_matches(path);
}

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef int (*sync_fn)(int);
typedef int (*trunc_fn)(int, off_t);

/* The real function, looked up once (the shim is first in the search). */
#define NEXT(name, type) \
  static type next_##name; \
  if (next_##name == NULL) next_##name = (type)dlsym(RTLD_NEXT, #name)

/*
** {======================================================
** System calls
** =======================================================
*/

/* open's mode argument exists only with O_CREAT or O_TMPFILE. */
#define OPEN_MODE(flags, mode) do { \
    if ((flags) & (O_CREAT | O_TMPFILE)) { \
      va_list ap; va_start(ap, flags); mode = (mode_t)va_arg(ap, int); va_end(ap); \
    } } while (0)

int open (const char *path, int flags, ...);
int open (const char *path, int flags, ...) {
  mode_t mode = 0;
  OPEN_MODE(flags, mode);
  NEXT(open, open_fn);
  if (path_matches(path) && hit(K_OPEN)) { errno = fail_errno; return -1; }
  return next_open(path, flags, mode);
}

int open64 (const char *path, int flags, ...);
int open64 (const char *path, int flags, ...) {
  mode_t mode = 0;
  OPEN_MODE(flags, mode);
  NEXT(open64, open_fn);
  if (path_matches(path) && hit(K_OPEN)) { errno = fail_errno; return -1; }
  return next_open64(path, flags, mode);
}

int openat (int dirfd, const char *path, int flags, ...);
int openat (int dirfd, const char *path, int flags, ...) {
  mode_t mode = 0;
  OPEN_MODE(flags, mode);
  NEXT(openat, openat_fn);
  if (path_matches(path) && hit(K_OPEN)) { errno = fail_errno; return -1; }
  return next_openat(dirfd, path, flags, mode);
}

ssize_t pwrite (int fd, const void *buf, size_t n, off_t off);
ssize_t pwrite (int fd, const void *buf, size_t n, off_t off) {
  NEXT(pwrite, pwrite_fn);
  if (fd_matches(fd) && hit(K_PWRITE)) { errno = fail_errno; return -1; }
  return next_pwrite(fd, buf, n, off);
}

ssize_t pwrite64 (int fd, const void *buf, size_t n, off_t off);
ssize_t pwrite64 (int fd, const void *buf, size_t n, off_t off) {
  NEXT(pwrite64, pwrite_fn);
  if (fd_matches(fd) && hit(K_PWRITE)) { errno = fail_errno; return -1; }
  return next_pwrite64(fd, buf, n, off);
}

ssize_t write (int fd, const void *buf, size_t n);
ssize_t write (int fd, const void *buf, size_t n) {
  NEXT(write, write_fn);
  /* stdout and stderr are never files under test */
  if (fd > 2 && fd_matches(fd) && hit(K_PWRITE)) { errno = fail_errno; return -1; }
  return next_write(fd, buf, n);
}

int fdatasync (int fd);
int fdatasync (int fd) {
  NEXT(fdatasync, sync_fn);
  if (fd_matches(fd) && hit(K_SYNC)) { errno = fail_errno; return -1; }
  return next_fdatasync(fd);
}

int fsync (int fd);
int fsync (int fd) {
  NEXT(fsync, sync_fn);
  if (fd_matches(fd) && hit(K_SYNC)) { errno = fail_errno; return -1; }
  return next_fsync(fd);
}

int ftruncate (int fd, off_t len);
int ftruncate (int fd, off_t len) {
  NEXT(ftruncate, trunc_fn);
  if (fd_matches(fd) && hit(K_TRUNC)) { errno = fail_errno; return -1; }
  return next_ftruncate(fd, len);
}

int ftruncate64 (int fd, off_t len);
int ftruncate64 (int fd, off_t len) {
  NEXT(ftruncate64, trunc_fn);
  if (fd_matches(fd) && hit(K_TRUNC)) { errno = fail_errno; return -1; }
  return next_ftruncate64(fd, len);
}

/* }====================================================== */


/*
** {======================================================
** SQLite's allocator
** =======================================================
*/

/* The layout of sqlite3_mem_methods (sqlite3.h), declared here so the
** shim needs no SQLite headers and no link against libsqlite3. */
typedef struct mem_methods {
  void *(*xMalloc)(int);
  void (*xFree)(void *);
  void *(*xRealloc)(void *, int);
  int (*xSize)(void *);
  int (*xRoundup)(int);
  int (*xInit)(void *);
  void (*xShutdown)(void *);
  void *pAppData;
} mem_methods;

#define SQLITE_CONFIG_MALLOC 4
#define SQLITE_CONFIG_GETMALLOC 5

static mem_methods orig;

static void *wrap_malloc (int n) {
  if (hit(K_MALLOC)) return NULL;
  return orig.xMalloc(n);
}

static void *wrap_realloc (void *p, int n) {
  if (n > orig.xSize(p) && hit(K_MALLOC)) return NULL;
  return orig.xRealloc(p, n);
}

static void install_sqlite_malloc (void) {
  typedef int (*config_fn)(int, ...);
  config_fn config = (config_fn)dlsym(RTLD_DEFAULT, "sqlite3_config");
  if (config == NULL) return;  /* a process without SQLite */
  if (config(SQLITE_CONFIG_GETMALLOC, &orig) != 0 || orig.xMalloc == NULL) return;
  static mem_methods wrapped;
  wrapped = orig;
  wrapped.xMalloc = wrap_malloc;
  wrapped.xRealloc = wrap_realloc;
  if (config(SQLITE_CONFIG_MALLOC, &wrapped) != 0)
    fprintf(stderr, "faultinj: SQLITE_CONFIG_MALLOC refused (SQLite already initialised)\n");
}

/* }====================================================== */


__attribute__((constructor)) static void faultinj_init (void) {
  const char *spec = getenv("AEGIS_FAULT");
  under = getenv("AEGIS_FAULT_PATH");
  if (under != NULL && *under == '\0') under = NULL;
  if (under != NULL) under_len = strlen(under);
  const char *e = getenv("AEGIS_FAULT_ERRNO");
  if (e != NULL) {
    if (strcmp(e, "ENOSPC") == 0) fail_errno = ENOSPC;
    else if (strcmp(e, "EFBIG") == 0) fail_errno = EFBIG;
    else if (strcmp(e, "EIO") != 0) fail_errno = atoi(e);
  }
  if (spec != NULL && strcmp(spec, "count") != 0) {
    char kind[32];
    long n = 0;
    char mode[16] = "";
    if (sscanf(spec, "%31[a-z]:%ld:%15s", kind, &n, mode) >= 2) {
      for (int k = 0; k < K_N; k++)
        if (strcmp(kind, kind_names[k]) == 0) target = k;
      fail_at = n;
      forever = strcmp(mode, "forever") == 0;
    }
    if (target < 0 || fail_at < 1) {
      fprintf(stderr, "faultinj: bad AEGIS_FAULT '%s' (KIND:N[:forever])\n", spec);
      _exit(97);
    }
  }
  install_sqlite_malloc();
}

__attribute__((destructor)) static void faultinj_fini (void) {
  const char *log = getenv("AEGIS_FAULT_LOG");
  if (log == NULL || *log == '\0') return;
  /* append with the real calls: this file may be under the path tested */
  NEXT(open, open_fn);
  NEXT(write, write_fn);
  int fd = next_open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return;
  char line[256];
  int n = snprintf(line, sizeof line, "calls open=%ld pwrite=%ld fdatasync=%ld ftruncate=%ld malloc=%ld injected=%ld\n",
                   counts[K_OPEN], counts[K_PWRITE], counts[K_SYNC], counts[K_TRUNC], counts[K_MALLOC], injected);
  if (n > 0) (void)next_write(fd, line, (size_t)n);
  close(fd);
}
