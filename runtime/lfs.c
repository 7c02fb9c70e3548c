/*
** lfs.c: aegis.core.fs, small POSIX file primitives for the trusted host
** (never for scripts: aegis.sandbox hides aegis.fs).  The documented API
** is lua/aegis/fs.lua.
**
** Failures return `nil, "fs: <action> '<path>': <strerror>", code`, code
** "not_found" for ENOENT and "io" for everything else (EACCES, EEXIST,
** ENOTDIR, ...).  stat's "nothing there" (ENOENT) is a plain nil.
**
** read and readdir hold an fd or a DIR* across calls that can raise (a
** memory error while the result grows); both live in a box userdata whose
** __gc closes them, so an error cannot leak them (lauxlib's UBox idea).
*/
#define _GNU_SOURCE  /* getdents64, struct dirent64's d_type and the DT_* values */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "lauxag.h"

#define FS_BOX "aegis.fs.Box"

/* Bytes read at a time once the size from fstat is used up. */
#define READ_CHUNK 65536

/* Attempts at a fresh temporary name before write_atomic gives up. */
#define TMP_TRIES 100

/* Longest part of the target's name kept in the temporary's name, so the
** temporary stays under NAME_MAX (255) whatever the target is called. */
#define TMP_BASE_MAX 128

/* An fd or a DIR* owned while a result is built; -1 / NULL: none. */
typedef struct Box { int fd; DIR *dir; } Box;

static Box *newbox (lua_State *L) {
  Box *b = (Box *)lua_newuserdatauv(L, sizeof *b, 0);
  b->fd = -1;
  b->dir = NULL;
  luaL_setmetatable(L, FS_BOX);
  return b;
}

static void closebox (Box *b) {
  if (b->fd >= 0) close(b->fd);
  if (b->dir != NULL) closedir(b->dir);
  b->fd = -1;
  b->dir = NULL;
}

/* __gc and __close: silent and idempotent */
static int box_gc (lua_State *L) {
  closebox((Box *)luaL_checkudata(L, 1, FS_BOX));
  return 0;
}

/* Strings only (a number is not a path), without NUL bytes. */
static const char *checkpath (lua_State *L, int arg) {
  size_t n;
  if (lua_type(L, arg) != LUA_TSTRING) luaL_typeerror(L, arg, "string");
  const char *s = lua_tolstring(L, arg, &n);
  luaL_argcheck(L, strlen(s) == n, arg, "path contains a NUL byte");
  return s;
}

/* nil, "fs: <action> '<path>': <strerror(e)>", code */
static int fail (lua_State *L, int e, const char *action, const char *path) {
  return agL_pushfail(L, e == ENOENT ? AG_ENOTFOUND : AG_EIO,
                      "fs: %s '%s': %s", action, path, strerror(e));
}

/* Sorts strings byte by byte (strcmp), never by locale. */
static int cmpname (const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
** readdir(path) -> {name...} | nil, msg, code
** The names in the directory but "." and "..", sorted by bytes.
*/
static int fs_readdir (lua_State *L) {
  const char *path = checkpath(L, 1);
  lua_settop(L, 1);
  Box *b = newbox(L);                            /* [path, box] */
  b->dir = opendir(path);
  if (b->dir == NULL) return fail(L, errno, "readdir", path);
  lua_newtable(L);                               /* [path, box, names] */
  lua_Integer n = 0;
  struct dirent *e;
  for (;;) {
    errno = 0;  /* readdir's end and its failure differ only by errno */
    e = readdir(b->dir);
    if (e == NULL) break;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, 3, ++n);
  }
  if (errno != 0) {
    int err = errno;
    closebox(b);
    return fail(L, err, "readdir", path);
  }
  closebox(b);
  /* Sort pointers to the names; `names` keeps the strings alive. */
  const char **v = (const char **)lua_newuserdatauv(L, (size_t)n * sizeof *v, 0);
  for (lua_Integer i = 0; i < n; i++) {          /* [path, box, names, v] */
    lua_rawgeti(L, 3, i + 1);
    v[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  qsort(v, (size_t)n, sizeof *v, cmpname);
  lua_createtable(L, (int)n, 0);                 /* [path, box, names, v, sorted] */
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, 5, i + 1);
  }
  return 1;
}

/* One entry of scan: its name (at `off` in the name pool, `len` bytes;
** `name` once the pool stops moving), its kind, and its size (-1:
** unknown). */
typedef struct Entry {
  const char *name;
  size_t off, len;
  int kind;
  lua_Integer size;
} Entry;

/* Kinds of entries, and the strings scan reports them as. */
enum { K_FILE, K_DIR, K_LINK, K_OTHER, K_UNKNOWN, K_COUNT };
static const char *const kindname[K_COUNT] = {"file", "directory", "link", "other", "unknown"};

static int kindofmode (mode_t m) {
  if (S_ISREG(m)) return K_FILE;
  if (S_ISDIR(m)) return K_DIR;
  if (S_ISLNK(m)) return K_LINK;
  return K_OTHER;
}

/* d_type as a kind; K_UNKNOWN when the file system did not say. */
static int kindofdtype (unsigned char t) {
  switch (t) {
    case DT_REG: return K_FILE;
    case DT_DIR: return K_DIR;
    case DT_LNK: return K_LINK;
    case DT_UNKNOWN: return K_UNKNOWN;
    default: return K_OTHER;
  }
}

/* By bytes, a directory's name as if it ended in '/': a depth-first walk
** that takes entries in this order meets paths in byte order ("a.b" <
** "a/x" < "a0": '.' < '/' < '0'), so it need not sort what it finds. */
static int cmpentry (const void *a, const void *b) {
  const Entry *x = (const Entry *)a, *y = (const Entry *)b;
  const unsigned char *p = (const unsigned char *)x->name;
  const unsigned char *q = (const unsigned char *)y->name;
  while (*p != '\0' && *p == *q) p++, q++;
  unsigned cp = *p != '\0' ? *p : x->kind == K_DIR ? '/' : 0;
  unsigned cq = *q != '\0' ? *q : y->kind == K_DIR ? '/' : 0;
  return (cp > cq) - (cp < cq);
}

/* A userdata of `want` bytes holding the first `keep` bytes of `old`,
** put at stack index `idx` in place of the old one (now garbage). */
static void *regrow (lua_State *L, int idx, const void *old, size_t keep, size_t want) {
  void *p = lua_newuserdatauv(L, want, 0);
  if (keep > 0) memcpy(p, old, keep);
  lua_replace(L, idx);
  return p;
}

/* Bytes of directory records read at a time (getdents64). */
#define DENTS_BUF 32768

/* Entries scan keeps on the C stack before it takes memory from Lua. */
#define SCAN_SMALL 64

/*
** scan(path, sizes?) -> {names = {...}, types = {...}, sizes = {...}?} | nil, msg, code
** readdir with each entry's kind, sorted by name as readdir above but
** for directories, which sort as if their names ended in '/' (cmpentry).
** types[i] is what names[i] is itself (a link is "link", not followed):
** "file", "directory", "link", "other", or "unknown" when the file system
** gives no d_type and fstatat fails too (the entry went away meanwhile,
** or the directory is readable but not searchable).  The kind comes from
** d_type, without a stat, wherever the file system gives it.  With
** `sizes`, sizes[i] is the size in bytes of each regular file (one
** fstatat relative to the open directory, cheaper than a stat by path)
** and false for everything else or when that fstatat fails.
** The records are read with getdents64 (Linux, glibc 2.30) rather than
** readdir: one open and no fstat or 32 KiB DIR allocation per directory.
** Upvalues: the strings of kindname, in order.
** Stack while reading: [path, sizes, box, entries, pool].
*/
static int fs_scan (lua_State *L) {
  const char *path = checkpath(L, 1);
  int wantsize = lua_toboolean(L, 2);
  lua_settop(L, 2);
  Box *b = newbox(L);                            /* [path, sizes, box] */
  do b->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC); while (b->fd < 0 && errno == EINTR);
  if (b->fd < 0) return fail(L, errno, "scan", path);
  /* Entries and names go to these arrays on the C stack while they fit
  ** (most directories), then to userdata that double as needed. */
  Entry small[SCAN_SMALL];
  char smallpool[SCAN_SMALL * 16];
  size_t cap = SCAN_SMALL, n = 0, poolcap = sizeof smallpool, used = 0;
  Entry *v = small;
  char *pool = smallpool;
  lua_pushnil(L);                                /* [.., box, nil (v when grown)] */
  lua_pushnil(L);                                /* [.., box, v, nil (pool when grown)] */
  _Alignas(struct dirent64) char buf[DENTS_BUF];
  int err = 0;
  for (;;) {
    ssize_t got = getdents64(b->fd, buf, sizeof buf);
    if (got < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (got == 0) break;
    for (size_t at = 0; at < (size_t)got;) {
      const struct dirent64 *e = (const struct dirent64 *)(void *)(buf + at);
      at += e->d_reclen;
      const char *nm = e->d_name;
      if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))) continue;
      size_t len = strlen(nm);
      if (n == cap) {
        v = (Entry *)regrow(L, 4, v, n * sizeof *v, 2 * cap * sizeof *v);
        cap *= 2;
      }
      if (poolcap - used < len + 1) {
        while (poolcap - used < len + 1) poolcap *= 2;
        pool = (char *)regrow(L, 5, pool, used, poolcap);
      }
      memcpy(pool + used, nm, len + 1);
      int kind = kindofdtype(e->d_type);
      lua_Integer size = -1;
      if (kind == K_UNKNOWN || (wantsize && kind == K_FILE)) {
        struct stat st;
        if (fstatat(b->fd, nm, &st, AT_SYMLINK_NOFOLLOW) == 0) {
          kind = kindofmode(st.st_mode);
          if (kind == K_FILE) size = (lua_Integer)st.st_size;
        }
      }
      v[n].off = used;
      v[n].len = len;
      v[n].kind = kind;
      v[n].size = size;
      used += len + 1;
      n++;
    }
  }
  closebox(b);
  if (err != 0) return fail(L, err, "scan", path);
  for (size_t i = 0; i < n; i++) v[i].name = pool + v[i].off;
  qsort(v, n, sizeof *v, cmpentry);
  lua_createtable(L, 0, 3);                      /* [.., pool, res] */
  int res = lua_gettop(L);
  lua_createtable(L, (int)n, 0);                 /* [.., res, names] */
  for (size_t i = 0; i < n; i++) {
    lua_pushlstring(L, v[i].name, v[i].len);
    lua_rawseti(L, res + 1, (lua_Integer)i + 1);
  }
  lua_setfield(L, res, "names");
  lua_createtable(L, (int)n, 0);                 /* [.., res, types] */
  for (size_t i = 0; i < n; i++) {
    lua_pushvalue(L, lua_upvalueindex(v[i].kind + 1));  /* kindname[kind] */
    lua_rawseti(L, res + 1, (lua_Integer)i + 1);
  }
  lua_setfield(L, res, "types");
  if (wantsize) {
    lua_createtable(L, (int)n, 0);               /* [.., res, sizes] */
    for (size_t i = 0; i < n; i++) {
      if (v[i].size >= 0) lua_pushinteger(L, v[i].size);
      else lua_pushboolean(L, 0);
      lua_rawseti(L, res + 1, (lua_Integer)i + 1);
    }
    lua_setfield(L, res, "sizes");
  }
  return 1;                                      /* res */
}

/*
** mkdir(path, mode?) -> true | nil, msg, code
** mkdir(2) as it is: mode (default 0755) is filtered by the umask, and an
** existing path, directory or not, fails with EEXIST ("File exists").
** aegis.fs.mkdir's `parents` option is the one that accepts a directory
** already there.
*/
static int fs_mkdir (lua_State *L) {
  const char *path = checkpath(L, 1);
  lua_Integer mode = luaL_optinteger(L, 2, 0755);
  luaL_argcheck(L, mode >= 0 && mode <= 07777, 2, "mode must be 0 to 0o7777");
  if (mkdir(path, (mode_t)mode) != 0) return fail(L, errno, "mkdir", path);
  lua_pushboolean(L, 1);
  return 1;
}

static const char *kindof (mode_t m) {
  return kindname[kindofmode(m)];
}

/*
** stat(path, follow?) -> {type, size, mtime, mode} | nil | nil, msg, code
** Follows symbolic links unless follow is false (lstat; only then is type
** ever "link").  type: "file", "directory", "link" or "other"; size in
** bytes; mtime in seconds since 1970 (a float, to the nanosecond the
** double keeps); mode the permission bits (0 to 0o7777).  Nothing at the
** path (ENOENT) is a plain nil.
*/
static int fs_stat (lua_State *L) {
  const char *path = checkpath(L, 1);
  int follow = lua_isnoneornil(L, 2) || lua_toboolean(L, 2);
  struct stat st;
  int rc = follow ? stat(path, &st) : lstat(path, &st);
  if (rc != 0) {
    if (errno == ENOENT) {
      lua_pushnil(L);
      return 1;
    }
    return fail(L, errno, "stat", path);
  }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kindof(st.st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec * 1e-9);
  lua_setfield(L, -2, "mtime");
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_setfield(L, -2, "mode");
  return 1;
}

/*
** exists(path) -> boolean | nil, msg, code
** stat(2) found something; false when nothing is there: ENOENT, or
** ENOTDIR (a path through a regular file, "a/b" with "a" a file, names
** nothing either, as for test -e).
*/
static int fs_exists (lua_State *L) {
  const char *path = checkpath(L, 1);
  struct stat st;
  if (stat(path, &st) == 0) lua_pushboolean(L, 1);
  else if (errno == ENOENT || errno == ENOTDIR) lua_pushboolean(L, 0);
  else return fail(L, errno, "stat", path);
  return 1;
}

/* getcwd() -> string | nil, msg, code */
static int fs_getcwd (lua_State *L) {
  char buf[PATH_MAX];
  if (getcwd(buf, sizeof buf) == NULL) {
    int e = errno;
    return agL_pushfail(L, e == ENOENT ? AG_ENOTFOUND : AG_EIO, "fs: getcwd: %s", strerror(e));
  }
  lua_pushstring(L, buf);
  return 1;
}

/*
** read(path) -> string | nil, msg, code
** The whole file.  A directory opens but fails to read: EISDIR.
*/
static int fs_read (lua_State *L) {
  const char *path = checkpath(L, 1);
  lua_settop(L, 1);
  Box *b = newbox(L);                            /* [path, box] */
  do b->fd = open(path, O_RDONLY | O_CLOEXEC); while (b->fd < 0 && errno == EINTR);
  if (b->fd < 0) return fail(L, errno, "read", path);
  struct stat st;
  size_t want = READ_CHUNK;
  int sized = 0;  /* want is the size fstat gave */
  if (fstat(b->fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
      (unsigned long long)st.st_size < (unsigned long long)((size_t)-1 / 2)) {
    want = (size_t)st.st_size;  /* one read, one allocation */
    sized = 1;
  }
  luaL_Buffer buf;
  luaL_buffinit(L, &buf);                        /* [path, box, ...buffer] */
  int err = 0;
  for (;;) {
    char *p = luaL_prepbuffsize(&buf, want);
    ssize_t r = read(b->fd, p, want);
    if (r < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (r == 0) break;
    luaL_addsize(&buf, (size_t)r);
    if (sized && (size_t)r == want) {
      /* Read to the size fstat gave: look for the end with a small read
      ** rather than growing the buffer (a copy of the whole file) for it. */
      char probe[256];
      do r = read(b->fd, probe, sizeof probe); while (r < 0 && errno == EINTR);
      if (r < 0) {
        err = errno;
        break;
      }
      if (r == 0) break;
      luaL_addlstring(&buf, probe, (size_t)r);  /* it grew meanwhile */
    }
    sized = 0;
    want = READ_CHUNK;
  }
  closebox(b);
  if (err != 0) return fail(L, err, "read", path);
  luaL_pushresult(&buf);
  return 1;
}

/* write(2) of all n bytes; 0 or an errno. */
static int writeall (int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/*
** write_atomic(path, data) -> true | nil, msg, code
** Writes data to a new file next to `path` (".<name>.<pid>.<n>.tmp", so
** the rename stays on one file system), fsyncs it, and renames it over
** `path`: a reader, or a crash at any point, sees the old file or the new
** one, never a part.  The directory is fsynced too, so the rename itself
** survives a power loss.  A file replaced keeps its permission bits; a new
** one gets 0666 filtered by the umask, as with fopen.  A symbolic link at
** `path` is replaced, not followed.  On failure the temporary is removed
** and `path` is as it was.
*/
static int fs_write_atomic (lua_State *L) {
  const char *path = checkpath(L, 1);
  size_t len;
  if (lua_type(L, 2) != LUA_TSTRING) luaL_typeerror(L, 2, "string");
  const char *data = lua_tolstring(L, 2, &len);
  lua_settop(L, 2);
  const char *slash = strrchr(path, '/');
  size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;  /* with the '/' */
  const char *base = path + dirlen;
  size_t baselen = strlen(base);
  if (baselen == 0) return fail(L, EISDIR, "write", path);  /* "x/", as open(2) says */
  if (baselen > TMP_BASE_MAX) baselen = TMP_BASE_MAX;
  /* Every string is built before the first fd is opened: nothing below
  ** that point can raise. */
  if (dirlen == 0) lua_pushliteral(L, ".");
  else lua_pushlstring(L, path, dirlen);         /* [path, data, dir] */
  const char *dir = lua_tostring(L, 3);
  static unsigned counter = 0;  /* one state per process: no lock needed */
  long pid = (long)getpid();
  int fd = -1, err = EEXIST;
  const char *tmp = NULL;
  for (int i = 0; i < TMP_TRIES && fd < 0; i++) {
    char suffix[64];
    snprintf(suffix, sizeof suffix, ".%ld.%u.tmp", pid, counter++);
    lua_settop(L, 3);
    luaL_Buffer nb;
    luaL_buffinit(L, &nb);
    luaL_addlstring(&nb, path, dirlen);
    luaL_addchar(&nb, '.');
    luaL_addlstring(&nb, base, baselen);
    luaL_addstring(&nb, suffix);
    luaL_pushresult(&nb);                        /* [path, data, dir, tmp] */
    tmp = lua_tostring(L, 4);
    do fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno != EEXIST) return fail(L, errno, "write", path);
  }
  if (fd < 0) return fail(L, err, "write", path);
  err = 0;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
      fchmod(fd, st.st_mode & 07777) != 0)
    err = errno;
  if (err == 0) err = writeall(fd, data, len);
  if (err == 0 && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && err == 0) err = errno;  /* NFS reports write errors here */
  if (err == 0 && rename(tmp, path) != 0) err = errno;
  if (err != 0) {
    unlink(tmp);
    return fail(L, err, "write", path);
  }
  /* The file is whole and in place; a failed directory fsync can only lose
  ** the rename in a power cut, leaving the old whole file: not an error. */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"exists", fs_exists},
  {"getcwd", fs_getcwd},
  {"mkdir", fs_mkdir},
  {"read", fs_read},
  {"readdir", fs_readdir},
  {"stat", fs_stat},
  {"write_atomic", fs_write_atomic},
  {NULL, NULL}
};

static const luaL_Reg boxmeta[] = {
  {"__gc", box_gc},
  {"__close", box_gc},
  {NULL, NULL}
};

AGLIB_API int luaopen_aegis_core_fs(lua_State *L);
AGLIB_API int luaopen_aegis_core_fs (lua_State *L) {
  luaL_newmetatable(L, FS_BOX);                  /* [mt] */
  luaL_setfuncs(L, boxmeta, 0);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);                         /* [M] */
  for (int k = 0; k < K_COUNT; k++) lua_pushstring(L, kindname[k]);
  lua_pushcclosure(L, fs_scan, K_COUNT);         /* [M, scan] */
  lua_setfield(L, -2, "scan");
  return 1;
}
