/*
** ag_proc.c: the process runner behind aegis.core.proc (see ag_proc.h).
**
** One loop polls stdin (writable), stdout and stderr (readable) and, when
** the kernel offers pidfds, the child itself, so the parent never blocks
** on one pipe while the child blocks on another.  Deadlines (timeout,
** SIGKILL after the grace period, draining after exit) are points on the
** monotonic clock that bound each poll.  SIGPIPE is blocked while we write
** to the child, and a SIGPIPE we caused is consumed, so a child that
** closes stdin early costs us an EPIPE, not our life.
*/
#define _GNU_SOURCE  /* pipe2, posix_spawn_file_actions_addchdir_np, addclosefrom_np */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ag_proc.h"

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define CHUNK 65536

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes the first executable regular file `dir/name` over `path` into
** `buf`.  An empty entry means the current directory (POSIX). */
static int find_program (const char *name, const char *path, char *buf, size_t n) {
  size_t nl = strlen(name);
  const char *p = path;
  for (;;) {
    const char *end = strchr(p, ':');
    size_t dl = end ? (size_t)(end - p) : strlen(p);
    if (dl == 0) {
      if (nl + 1 <= n) memcpy(buf, name, nl + 1);
    } else if (dl + 1 + nl + 1 <= n) {
      memcpy(buf, p, dl);
      buf[dl] = '/';
      memcpy(buf + dl + 1, name, nl + 1);
    } else {
      buf[0] = '\0';
    }
    struct stat st;
    if (buf[0] != '\0' && stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
      return 1;
    if (end == NULL) return 0;
    p = end + 1;
  }
}

/* Moves `fd` to a number above 2 (so the dup2 calls in the child cannot
** clobber each other) keeping close-on-exec; returns the new fd or -1. */
static int above2 (int fd) {
  if (fd > 2) return fd;
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return nfd;
}

/* Checks before spawning that `prog` (relative to `cwd` when it is a
** relative path) is an executable regular file.  posix_spawn reports exec
** failures too, but not everywhere (under valgrind the child exits 127). */
static int check_exec (const char *prog, const char *cwd, char err[AG_ERRLEN]) {
  char full[8192];
  const char *p = prog;
  if (prog[0] != '/' && cwd != NULL) {
    if ((size_t)snprintf(full, sizeof full, "%s/%s", cwd, prog) >= sizeof full)
      return ag_seterr(err, AG_EINVAL, "program path too long");
    p = full;
  }
  struct stat st;
  if (stat(p, &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return ag_seterr(err, AG_ENOTFOUND, "program '%s' not found", prog);
    return ag_seterr(err, AG_EIO, "start '%s': %s", prog, strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return ag_seterr(err, AG_EIO, "start '%s': %s", prog, strerror(EACCES));
  if (access(p, X_OK) != 0) return ag_seterr(err, AG_EIO, "start '%s': %s", prog, strerror(errno));
  return AG_OK;
}

static void closefd (int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

/* A growing capture buffer: keeps at most `cap` bytes, counts them all. */
typedef struct sink {
  char *buf;
  size_t len, size, total, cap;
} sink;

/* Reads what `fd` has into `s`.  Returns 1 at EOF, 0 when it would block,
** -1 on ENOMEM (errno kept for other errors is treated as EOF). */
static int drain (int fd, sink *s) {
  char scratch[CHUNK];
  for (;;) {
    char *dst = scratch;
    size_t want = sizeof scratch;
    if (s->len < s->cap) {
      if (s->size - s->len < CHUNK && s->size < s->cap) {
        size_t nsize = s->size ? s->size * 2 : CHUNK;
        if (nsize > s->cap) nsize = s->cap;
        char *nb = realloc(s->buf, nsize);
        if (nb == NULL) return -1;
        s->buf = nb;
        s->size = nsize;
      }
      dst = s->buf + s->len;
      want = s->size - s->len;
      if (want > CHUNK) want = CHUNK;
    }
    ssize_t r = read(fd, dst, want);
    if (r > 0) {
      s->total += (size_t)r;
      if (dst != scratch) s->len += (size_t)r;
      continue;
    }
    if (r == 0) return 1;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return 1;  /* EIO and the like: nothing more will come */
  }
}

/* Sets the resource limits of `spec` on `pid`; 0 or an errno. */
static int set_limits (pid_t pid, const ag_proc_spec *spec, const char **which) {
#if !defined(__SANITIZE_ADDRESS__)
  if (spec->rlimit_as > 0) {
    struct rlimit r = {(rlim_t)spec->rlimit_as, (rlim_t)spec->rlimit_as};
    *which = "RLIMIT_AS";
    if (prlimit(pid, RLIMIT_AS, &r, NULL) != 0) return errno;
  }
#endif
  if (spec->rlimit_cpu > 0) {
    rlim_t soft = (rlim_t)(spec->rlimit_cpu + 0.999);
    struct rlimit r = {soft, soft + 1};
    *which = "RLIMIT_CPU";
    if (prlimit(pid, RLIMIT_CPU, &r, NULL) != 0) return errno;
  }
  return 0;
}

static int nonblock (int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int ms_until (double t, double from) {
  double ms = (t - from) * 1000.0 + 1.0;  /* round up: never wake just before */
  if (ms < 0) return 0;
  if (ms > 60000) return 60000;
  return (int)ms;
}

void ag_proc_result_free (ag_proc_result *res) {
  if (res == NULL) return;
  free(res->out);
  free(res->err);
  memset(res, 0, sizeof *res);
}

int ag_proc_run (const ag_proc_spec *spec, ag_proc_result *res, char err[AG_ERRLEN]) {
  memset(res, 0, sizeof *res);
  if (spec->argv == NULL || spec->argv[0] == NULL || spec->argv[0][0] == '\0')
    return ag_seterr(err, AG_EINVAL, "argv is empty");
  const char *name = spec->argv[0];
  char prog[4096];
  if (strchr(name, '/') != NULL) {
    if (strlen(name) >= sizeof prog) return ag_seterr(err, AG_EINVAL, "program name too long");
    memcpy(prog, name, strlen(name) + 1);
  } else if (!find_program(name, spec->path ? spec->path : DEFAULT_PATH, prog, sizeof prog)) {
    return ag_seterr(err, AG_ENOTFOUND, "program '%s' not found", name);
  }
  if (spec->cwd != NULL) {
    struct stat st;
    if (stat(spec->cwd, &st) != 0)
      return ag_seterr(err, errno == ENOENT ? AG_ENOTFOUND : AG_EIO, "cwd '%s': %s", spec->cwd, strerror(errno));
    if (!S_ISDIR(st.st_mode))
      return ag_seterr(err, AG_EIO, "cwd '%s': %s", spec->cwd, strerror(ENOTDIR));
  }
  int rc = check_exec(prog, spec->cwd, err);
  if (rc != AG_OK) return rc;

  int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
  int pidfd = -1;
  int fa_init = 0, at_init = 0, sigs_blocked = 0, epipe = 0;
  int exited = 0, status = 0, killed = 0;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t pipeset, oldmask, pending;
  sink so = {NULL, 0, 0, 0, spec->cap}, se = {NULL, 0, 0, 0, spec->cap};
  pid_t pid = -1;
  char *const empty_env[] = {NULL};

  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(er, O_CLOEXEC) != 0) {
    rc = ag_seterr(err, AG_EIO, "pipe: %s", strerror(errno));
    goto done;
  }
  for (int i = 0; i < 2; i++) {
    in[i] = above2(in[i]);
    out[i] = above2(out[i]);
    er[i] = above2(er[i]);
  }
  if (in[0] < 0 || in[1] < 0 || out[0] < 0 || out[1] < 0 || er[0] < 0 || er[1] < 0) {
    rc = ag_seterr(err, AG_EIO, "pipe: %s", strerror(errno));
    goto done;
  }
  if (nonblock(in[1]) != 0 || nonblock(out[0]) != 0 || nonblock(er[0]) != 0) {
    rc = ag_seterr(err, AG_EIO, "pipe: %s", strerror(errno));
    goto done;
  }

  int e = posix_spawn_file_actions_init(&fa);
  if (e == 0) {
    fa_init = 1;
    e = posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  }
  if (e == 0) e = posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  if (e == 0) e = posix_spawn_file_actions_adddup2(&fa, er[1], 2);
  if (e == 0) e = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  if (e == 0 && spec->cwd != NULL) e = posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
  if (e == 0) {
    e = posix_spawnattr_init(&at);
    if (e == 0) at_init = 1;
  }
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (e == 0) e = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (e == 0) e = posix_spawnattr_setpgroup(&at, 0);
  if (e == 0) e = posix_spawnattr_setsigmask(&at, &none);
  if (e == 0) e = posix_spawnattr_setsigdefault(&at, &all);
  if (e != 0) {
    rc = ag_seterr(err, e == ENOMEM ? AG_ENOMEM : AG_EIO, "spawn attributes: %s", strerror(e));
    goto done;
  }

  /* Block SIGPIPE before the child exists: it may close stdin at once. */
  sigemptyset(&pipeset);
  sigaddset(&pipeset, SIGPIPE);
  sigemptyset(&pending);
  if (pthread_sigmask(SIG_BLOCK, &pipeset, &oldmask) == 0) {
    sigs_blocked = 1;
    sigpending(&pending);
  }

  double t0 = now();
  e = posix_spawn(&pid, prog, &fa, &at, spec->argv, spec->envp ? spec->envp : empty_env);
  if (e != 0) {
    pid = -1;
    rc = e == ENOENT ? ag_seterr(err, AG_ENOTFOUND, "program '%s' not found", prog)
                     : ag_seterr(err, e == ENOMEM ? AG_ENOMEM : AG_EIO, "start '%s': %s", prog, strerror(e));
    goto done;
  }
  if (spec->rlimit_as > 0 || spec->rlimit_cpu > 0) {
    const char *which = "";
    int le = set_limits(pid, spec, &which);
    if (le != 0) {
      rc = ag_seterr(err, AG_EIO, "%s: %s", which, strerror(le));
      goto done;  /* kills and reaps the child */
    }
  }
  closefd(&in[0]);
  closefd(&out[1]);
  closefd(&er[1]);
  if (spec->in_len == 0) closefd(&in[1]);
#ifdef SYS_pidfd_open
  pidfd = (int)syscall(SYS_pidfd_open, pid, 0);  /* -1 (ENOSYS, EPERM): poll with a tick instead */
#endif

  double deadline = spec->timeout > 0 ? t0 + spec->timeout : 0;
  double kill_at = 0, drain_until = 0;
  int tick = 1;
  for (;;) {
    if (!exited) {
      /* Look without reaping: while the leader is a zombie its group id
      ** cannot be reused, so killing the group is safe.  Whatever the
      ** tool left running in its group dies with it. */
      siginfo_t si;
      memset(&si, 0, sizeof si);
      int w = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
      if (w == 0 && si.si_pid == pid) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        exited = 1;
      } else if (w < 0 && errno == ECHILD) {
        status = -1;  /* SIGCHLD ignored elsewhere: reaped by the kernel, status unknown */
        exited = 1;
      }
      if (exited) {
        res->seconds = now() - t0;
        closefd(&in[1]);
        closefd(&pidfd);
      }
    }
    if (exited && out[0] < 0 && er[0] < 0) break;

    double t = now();
    if (!exited && deadline > 0 && !res->timed_out && t >= deadline) {
      kill(-pid, SIGTERM);
      res->timed_out = 1;
      kill_at = t + spec->grace;
    }
    if (res->timed_out && !killed && t >= kill_at) {
      kill(-pid, SIGKILL);
      killed = 1;
    }
    /* The group is gone; what still holds the pipes escaped it (setsid).
    ** Give it `grace` (at least 50 ms), take what is there, stop reading. */
    if (exited && drain_until == 0) drain_until = t + (spec->grace > 0.05 ? spec->grace : 0.05);
    if (exited && t >= drain_until) {
      if (out[0] >= 0 && drain(out[0], &so) < 0) { rc = ag_seterr(err, AG_ENOMEM, "stdout: out of memory"); goto done; }
      if (er[0] >= 0 && drain(er[0], &se) < 0) { rc = ag_seterr(err, AG_ENOMEM, "stderr: out of memory"); goto done; }
      res->pipes_held = 1;
      break;
    }

    double next = 0;
#define EARLIEST(x) do { if ((x) > 0 && (next == 0 || (x) < next)) next = (x); } while (0)
    if (!exited && deadline > 0 && !res->timed_out) EARLIEST(deadline);
    if (res->timed_out && !killed) EARLIEST(kill_at);
    if (exited) EARLIEST(drain_until);
#undef EARLIEST
    int wait_ms = next > 0 ? ms_until(next, t) : -1;
    if (!exited && pidfd < 0) {
      if (wait_ms < 0 || wait_ms > tick) wait_ms = tick;
      if (tick < 50) tick *= 2;
    }

    struct pollfd pf[4];
    int n = 0, iin = -1, iout = -1, ierr = -1;
    if (in[1] >= 0) { iin = n; pf[n].fd = in[1]; pf[n].events = POLLOUT; n++; }
    if (out[0] >= 0) { iout = n; pf[n].fd = out[0]; pf[n].events = POLLIN; n++; }
    if (er[0] >= 0) { ierr = n; pf[n].fd = er[0]; pf[n].events = POLLIN; n++; }
    if (!exited && pidfd >= 0) { pf[n].fd = pidfd; pf[n].events = POLLIN; n++; }
    int pr = poll(pf, (nfds_t)n, wait_ms);
    if (pr < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      rc = ag_seterr(err, AG_EIO, "poll: %s", strerror(errno));
      goto done;
    }
    if (iin >= 0 && pf[iin].revents) {
      while (in[1] >= 0 && res->in_written < spec->in_len) {
        size_t left = spec->in_len - res->in_written;
        ssize_t w = write(in[1], spec->in + res->in_written, left > CHUNK ? CHUNK : left);
        if (w > 0) { res->in_written += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (w < 0 && errno == EPIPE) epipe = 1;
        closefd(&in[1]);  /* the child closed stdin (EPIPE) or the pipe failed */
      }
      if (res->in_written == spec->in_len) closefd(&in[1]);
    }
    int r;
    if (iout >= 0 && pf[iout].revents) {
      if ((r = drain(out[0], &so)) < 0) { rc = ag_seterr(err, AG_ENOMEM, "stdout: out of memory"); goto done; }
      if (r == 1) closefd(&out[0]);
    }
    if (ierr >= 0 && pf[ierr].revents) {
      if ((r = drain(er[0], &se)) < 0) { rc = ag_seterr(err, AG_ENOMEM, "stderr: out of memory"); goto done; }
      if (r == 1) closefd(&er[0]);
    }
  }
  pid = -1;
  if (status == -1) {
    res->exit_code = -1;
  } else if (WIFSIGNALED(status)) {
    res->exit_code = -1;
    res->signal = WTERMSIG(status);
  } else {
    res->exit_code = WEXITSTATUS(status);
  }

done:
  if (pid > 0 && !exited) {
    /* Failing mid-run: end the group and reap the child, whatever it does. */
    kill(-pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
  }
  closefd(&in[0]); closefd(&in[1]);
  closefd(&out[0]); closefd(&out[1]);
  closefd(&er[0]); closefd(&er[1]);
  closefd(&pidfd);
  if (sigs_blocked) {
    if (epipe && !sigismember(&pending, SIGPIPE)) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&pipeset, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
  }
  if (at_init) posix_spawnattr_destroy(&at);
  if (fa_init) posix_spawn_file_actions_destroy(&fa);
  if (rc != AG_OK) {
    free(so.buf);
    free(se.buf);
    memset(res, 0, sizeof *res);
    return rc;
  }
  res->out = so.buf;
  res->out_len = so.len;
  res->out_total = so.total;
  res->err = se.buf;
  res->err_len = se.len;
  res->err_total = se.total;
  return AG_OK;
}
