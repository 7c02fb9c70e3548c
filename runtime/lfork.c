/*
** lfork.c: aegis.core.fork, work shared with forked copies of this process.
**
**   fork.start(fn) -> child | nil, msg, code
**     runs fn() in a forked copy of this process and hands back the string
**     it returns through a pipe; the copy ends with _exit (no finalizers,
**     no atexit handlers, no stdio flushed twice)
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
** threads and no interval timer (lsandbox.c resets its record of the timer
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
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lauxag.h"

#define CHILD "aegis.fork.Child"
#define PIPE_CHUNK (1 << 20)   /* the pipe's size, and a read */
#define COUNTER "aegis.fork.Counter"

/* {====================================================== children */

typedef struct Child {
  pid_t pid;  /* 0 once reaped */
  int fd;     /* read end of the pipe; -1 once closed */
} Child;

static int write_all (int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The frame a copy writes: FRAME_HEAD bytes (how fn ended: 'r' returned,
** 'e' raised; the payload's length, 8 bytes little-endian), the payload. */
#define FRAME_HEAD 9

/* In the copy: runs the function at index 1, writes its string (or the
** error) to `fd` in a frame, closes `fd`, and ends.  Never returns. */
static void run_copy (lua_State *L, int fd, pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(125);
  lua_settop(L, 1);
  int st = agL_pcall(L, 0, 1);
  size_t n = 0;
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  if (s == NULL) {
    s = st == LUA_OK ? "the function did not return a string" : "error object is not a string";
    n = strlen(s);
    st = LUA_ERRRUN;
  }
  unsigned char head[FRAME_HEAD];
  head[0] = st == LUA_OK ? 'r' : 'e';
  for (int i = 0; i < 8; i++) head[1 + i] = (unsigned char)((uint64_t)n >> (8 * i));
  int wrote = write_all(fd, (const char *)head, sizeof head) == 0 && write_all(fd, s, n) == 0;
  close(fd);
  _exit(!wrote ? 124 : st == LUA_OK ? 0 : 1);
}

static int fork_start (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
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

static int child_wait (lua_State *L) {
  Child *c = checkchild(L);
  luaL_argcheck(L, c->fd >= 0, 1, "already waited for");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int rerr = 0;
  for (;;) {
    char *p = luaL_prepbuffsize(&b, PIPE_CHUNK);
    ssize_t r = read(c->fd, p, PIPE_CHUNK);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) rerr = errno;
    if (r <= 0) break;
    luaL_addsize(&b, (size_t)r);
  }
  close(c->fd);
  c->fd = -1;
  luaL_pushresult(&b);                             /* [child, frame] */
  size_t len;
  const unsigned char *f = (const unsigned char *)lua_tolstring(L, -1, &len);
  uint64_t n = 0;
  if (rerr == 0 && len >= FRAME_HEAD) {
    for (int i = 0; i < 8; i++) n |= (uint64_t)f[1 + i] << (8 * i);
  }
  if (rerr == 0 && len >= FRAME_HEAD && n == len - FRAME_HEAD && (f[0] == 'r' || f[0] == 'e')) {
    int raised = f[0] == 'e';
    lua_pushlstring(L, (const char *)f + FRAME_HEAD, (size_t)n);
    int status;
    if (waitpid(c->pid, &status, WNOHANG) == c->pid) c->pid = 0;  /* else: reaped by child_gc */
    if (!raised) return 1;
    luaL_pushfail(L);                              /* the copy's message whole: it may hold NUL bytes */
    lua_insert(L, -2);                             /* [child, frame, fail, message] */
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
