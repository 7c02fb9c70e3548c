/*
** lfork.c: aegis.core.fork, work shared with forked copies of this process.
**
**   fork.start(fn) -> child | nil, msg, code
**     runs fn() in a forked copy of this process and hands back the string
**     it returns through a pipe, or the strings of the list it returns
**     joined (written piece by piece: a copy's answer of megabytes in
**     pieces is not joined into one string first); the copy ends with
**     _exit (no finalizers, no atexit handlers, no stdio flushed twice)
**   child:wait() -> string | nil, msg, code
**     reads what the copy returned; nil with the copy's error (with its
**     traceback), or "exit N" / "killed by SIGxxx" when it ended without
**     handing anything back
**   child:pid() -> integer   (0 once reaped)
**   child:close()
**     kills the copy if it still runs and reaps it (also the handle's __gc
**     and __close); after wait(), it reaps a copy that was still ending
**   fork.counter(limit) -> counter
**     a counter in memory shared with the copies forked after it
**   counter:take() -> integer | nil
**     1, 2, ... limit over all the processes together, each once; nil after
**     limit or once stopped
**   counter:stop()   every process's next take() is nil
**
** What a copy inherits is what fork(2) gives: the Lua state as it was, the
** compiled queries, open descriptors (the pipes are close-on-exec), no
** threads (start() refuses while a query compiles on one: ast.query_async)
** and no interval timer (lsandbox.c resets its record of the timer
** in a pthread_atfork handler).  Use it only where no other thread runs.
** A copy dies with its parent (PR_SET_PDEATHSIG); a child handle that is
** collected or closed without wait() kills and reaps its copy: no zombie,
** no orphan left working.
**
** The copy frames what it hands back (how fn ended, the length, the bytes)
** and closes the pipe before it ends: wait() has the whole answer as soon
** as it is written, without waiting for the kernel to tear down the copy's
** address space (9 ms for an enforce copy), which happens while the
** parent goes on; the copy is reaped then if it has ended, else when its
** handle is collected or closed.  Only a copy that ended without a whole
** frame is waited for, to tell how it ended.
**
** Why not exec'd workers: a fresh aegis-run loads its rulepacks and
** compiles their queries again before its first file, and its results
** come back as JSON for the parent to decode; a copy starts at once with
** all of it, and the parent works beside its copies instead of waiting.
*/
#define _GNU_SOURCE  /* pipe2, sigabbrev_np */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ag_tsmem.h"
#include "lauxag.h"

#define CHILD "aegis.fork.Child"
#define PIPE_CHUNK (1 << 20)   /* the pipe's size */
#define COUNTER "aegis.fork.Counter"

/* {====================================================== children */

typedef struct Child {
  pid_t pid;  /* 0 once reaped */
  int fd;     /* read end of the pipe; -1 once closed */
} Child;

/* Writes the n buffers of iov whole (iov is consumed), up to IOV_BATCH
** at a time. */
#define IOV_BATCH 1024
static int writev_all (int fd, struct iovec *iov, size_t n) {
  while (n > 0) {
    int k = n < IOV_BATCH ? (int)n : IOV_BATCH;
    ssize_t w = writev(fd, iov, k);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    size_t left = (size_t)w;
    while (n > 0 && left >= iov->iov_len) {   /* the buffers written whole */
      left -= iov->iov_len;
      iov++;
      n--;
    }
    if (left > 0) {                          /* one written in part */
      iov->iov_base = (char *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}

/* The frame a copy writes: FRAME_HEAD bytes (how fn ended: 'r' returned,
** 'e' raised; the payload's length, 8 bytes little-endian), the payload. */
#define FRAME_HEAD 9

/* In the copy: the pieces of what fn returned at the top of the stack (a
** string, or a list of strings: its items), in iov (malloc'd; the head's
** slot first, left for the caller); their count, or 0 (and *why) when it
** is neither. */
static size_t answer_pieces (lua_State *L, struct iovec **iov, size_t *total, const char **why) {
  int t = lua_type(L, -1);
  size_t k = t == LUA_TSTRING ? 1 : t == LUA_TTABLE ? (size_t)lua_rawlen(L, -1) : 0;
  *why = "the function did not return a string or a list of strings";
  if (k == 0 && t != LUA_TTABLE) return 0;
  struct iovec *v = (struct iovec *)malloc((k + 1) * sizeof *v);
  if (v == NULL) { *why = "not enough memory"; return 0; }
  *total = 0;
  for (size_t i = 0; i < k; i++) {
    size_t len;
    if (t == LUA_TTABLE && lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TSTRING) {
      free(v);
      return 0;
    }
    /* a list's strings stay reachable from it (never popped into garbage:
    ** nothing runs before they are written) */
    v[i + 1].iov_base = (void *)lua_tolstring(L, -1, &len);
    v[i + 1].iov_len = len;
    *total += len;
    if (t == LUA_TTABLE) lua_pop(L, 1);
  }
  *iov = v;
  return k + 1;
}

/* In the copy: runs the function at index 1, writes what it returned (or
** the error) to `fd` in a frame, closes `fd`, and ends.  Never returns. */
static void run_copy (lua_State *L, int fd, pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(125);
  lua_settop(L, 1);
  int st = agL_pcall(L, 0, 1);
  struct iovec one[2], *iov = one;
  size_t n = 0, k = 0;
  const char *why = "error object is not a string";
  if (st == LUA_OK) k = answer_pieces(L, &iov, &n, &why);
  else if (lua_type(L, -1) == LUA_TSTRING) {
    one[1].iov_base = (void *)lua_tolstring(L, -1, &n);
    one[1].iov_len = n;
    k = 2;
  }
  if (k == 0) {
    iov = one;
    one[1].iov_base = (void *)why;
    one[1].iov_len = n = strlen(why);
    k = 2;
    st = LUA_ERRRUN;
  }
  unsigned char head[FRAME_HEAD];
  head[0] = st == LUA_OK ? 'r' : 'e';
  for (int i = 0; i < 8; i++) head[1 + i] = (unsigned char)((uint64_t)n >> (8 * i));
  iov[0].iov_base = head;
  iov[0].iov_len = sizeof head;
  int wrote = writev_all(fd, iov, k) == 0;
  close(fd);
  _exit(!wrote ? 124 : st == LUA_OK ? 0 : 1);
}

static int fork_start (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (ag_tsmem_outstanding() > 0)   /* the copy would have its result without its thread */
    return agL_pushfail(L, AG_EINVAL, "fork: a query is still being compiled on a thread (get() it first)");
  Child *c = (Child *)lua_newuserdatauv(L, sizeof(Child), 0);
  c->pid = 0;
  c->fd = -1;
  luaL_setmetatable(L, CHILD);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return agL_pushfail(L, AG_EIO, "fork: pipe: %s", strerror(errno));
  /* an answer is megabytes (enforce's findings): 1 MiB at a time rather
  ** than 64 KiB takes 16 times fewer switches between writer and reader
  ** (best effort: the system's pipe-max-size may be lower) */
  (void)fcntl(fds[1], F_SETPIPE_SZ, PIPE_CHUNK);
  fflush(NULL);  /* nothing buffered is written twice */
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(fds[0]);
    close(fds[1]);
    return agL_pushfail(L, AG_EIO, "fork: %s", strerror(e));
  }
  if (pid == 0) {
    close(fds[0]);
    run_copy(L, fds[1], parent);
  }
  close(fds[1]);
  c->pid = pid;
  c->fd = fds[0];
  return 1;
}

static Child *checkchild (lua_State *L) {
  return (Child *)luaL_checkudata(L, 1, CHILD);
}

/* Reaps the copy; its status, or -1. */
static int reap (Child *c) {
  int status = -1;
  if (c->pid > 0) {
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {}
    c->pid = 0;
  }
  return status;
}

/* Reads up to n bytes into p: what it read (less at the end of the pipe,
** or on an error: *err). */
static size_t read_full (int fd, char *p, size_t n, int *err) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) *err = errno;
    if (r <= 0) break;
    got += (size_t)r;
  }
  return got;
}

/* The largest payload wait() takes a frame's head at its word for: the
** buffer is made at the size the head names before a byte of it is read
** (a head naming more is no copy's) */
#define FRAME_MAX ((uint64_t)1 << 40)

static int child_wait (lua_State *L) {
  Child *c = checkchild(L);
  luaL_argcheck(L, c->fd >= 0, 1, "already waited for");
  /* the head, then the payload read straight into a buffer of its size
  ** (no growing, no copy of the frame): the payload and the end of the pipe
  ** right after it make a whole frame */
  unsigned char head[FRAME_HEAD];
  int rerr = 0, whole = 0;
  uint64_t n = 0;
  if (read_full(c->fd, (char *)head, FRAME_HEAD, &rerr) == FRAME_HEAD && (head[0] == 'r' || head[0] == 'e')) {
    for (int i = 0; i < 8; i++) n |= (uint64_t)head[1 + i] << (8 * i);
    if (n <= FRAME_MAX) {
      luaL_Buffer b;
      char *p = luaL_buffinitsize(L, &b, (size_t)n);
      size_t got = read_full(c->fd, p, (size_t)n, &rerr);
      char extra;
      whole = rerr == 0 && got == n && read_full(c->fd, &extra, 1, &rerr) == 0 && rerr == 0;
      luaL_pushresultsize(&b, got);               /* [child, payload] */
    }
  }
  close(c->fd);
  c->fd = -1;
  if (whole) {
    int raised = head[0] == 'e';
    int status;
    if (waitpid(c->pid, &status, WNOHANG) == c->pid) c->pid = 0;  /* else: reaped by child_gc */
    if (!raised) return 1;
    luaL_pushfail(L);                              /* the copy's message whole: it may hold NUL bytes */
    lua_insert(L, -2);                             /* [child, fail, message] */
    lua_pushstring(L, ag_errcode(AG_EIO));
    return 3;
  }
  /* no whole frame: how the copy ended says why */
  int status = reap(c);
  if (rerr != 0) return agL_pushfail(L, AG_EIO, "read: %s", strerror(rerr));
  if (WIFSIGNALED(status)) {
    const char *name = sigabbrev_np(WTERMSIG(status));
    return agL_pushfail(L, AG_EIO, "killed by SIG%s", name ? name : "?");
  }
  return agL_pushfail(L, AG_EIO, "exit %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static int child_pid (lua_State *L) {
  lua_pushinteger(L, checkchild(L)->pid);
  return 1;
}

/* Collected or closed before wait(): the copy is not wanted any more (a
** copy that has already handed back its answer is ending: the kill is
** harmless, and it is reaped). */
static int child_gc (lua_State *L) {
  Child *c = checkchild(L);
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
  if (c->pid > 0) {
    kill(c->pid, SIGKILL);
    reap(c);
  }
  return 0;
}

/* }====================================================== */

/* {====================================================== the counter */

typedef struct Shared { long next, limit; } Shared;
typedef struct Counter { Shared *s; } Counter;

static int fork_counter (lua_State *L) {
  lua_Integer limit = luaL_checkinteger(L, 1);
  luaL_argcheck(L, limit >= 0, 1, "must not be negative");
  Counter *c = (Counter *)lua_newuserdatauv(L, sizeof(Counter), 0);
  c->s = NULL;
  luaL_setmetatable(L, COUNTER);
  void *m = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return agL_pushfail(L, AG_ENOMEM, "fork: shared counter: %s", strerror(errno));
  c->s = (Shared *)m;
  c->s->next = 0;
  c->s->limit = (long)limit;
  return 1;
}

static Shared *checkcounter (lua_State *L) {
  Counter *c = (Counter *)luaL_checkudata(L, 1, COUNTER);
  luaL_argcheck(L, c->s != NULL, 1, "counter is closed");
  return c->s;
}

static int counter_take (lua_State *L) {
  Shared *s = checkcounter(L);
  long i = __atomic_add_fetch(&s->next, 1, __ATOMIC_RELAXED);
  if (i > __atomic_load_n(&s->limit, __ATOMIC_RELAXED)) lua_pushnil(L);
  else lua_pushinteger(L, i);
  return 1;
}

static int counter_stop (lua_State *L) {
  __atomic_store_n(&checkcounter(L)->limit, 0, __ATOMIC_RELAXED);
  return 0;
}

static int counter_gc (lua_State *L) {
  Counter *c = (Counter *)luaL_checkudata(L, 1, COUNTER);
  if (c->s != NULL) munmap(c->s, sizeof(Shared));
  c->s = NULL;
  return 0;
}

/* }====================================================== */

static const luaL_Reg funcs[] = {{"start", fork_start}, {"counter", fork_counter}, {NULL, NULL}};
static const luaL_Reg child_meth[] = {{"wait", child_wait}, {"pid", child_pid}, {"close", child_gc}, {NULL, NULL}};
static const luaL_Reg child_meta[] = {{"__index", NULL}, {"__gc", child_gc}, {"__close", child_gc}, {NULL, NULL}};
static const luaL_Reg counter_meth[] = {{"take", counter_take}, {"stop", counter_stop}, {NULL, NULL}};
static const luaL_Reg counter_meta[] = {{"__index", NULL}, {"__gc", counter_gc}, {NULL, NULL}};

AGLIB_API int luaopen_aegis_core_fork(lua_State *L);
AGLIB_API int luaopen_aegis_core_fork (lua_State *L) {
  agL_newclass(L, CHILD, child_meth, child_meta);
  agL_newclass(L, COUNTER, counter_meth, counter_meta);
  luaL_newlib(L, funcs);
  return 1;
}
