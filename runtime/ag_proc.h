/*
** ag_proc.h: runs a program (argv, no shell) in its own process group with
** an explicit environment, feeds it stdin, captures stdout and stderr up to
** a cap each, and enforces a timeout on the whole group (SIGTERM, then
** SIGKILL after a grace period).  No Lua types.
**
** When the child exits, whatever is left in its process group is killed
** (SIGKILL) before the child is reaped: nothing a tool starts outlives
** it, unless it left the group (setsid).
**
** The child is started with posix_spawn: its own process group, default
** signal dispositions, an empty signal mask, every descriptor above 2
** closed.  The parent polls the three pipes (and a pidfd when the kernel
** has them), so large outputs and large inputs never deadlock, and it
** always reaps the child: no zombie is left behind.
**
** Resource limits (rlimit_as, rlimit_cpu) are set with prlimit(2) right
** after the spawn, before a byte of stdin is written: a child that takes
** its work from stdin (an aegis-run worker) runs that work under them.
** posix_spawn has no rlimit attribute, and a fork+exec path only for this
** would double the spawning code.
*/
#ifndef AG_PROC_H
#define AG_PROC_H

#include <stddef.h>

#include "ag_err.h"

/* What to run.  Borrowed: every pointer must stay valid during the call. */
typedef struct ag_proc_spec {
  char *const *argv;  /* NULL-terminated; argv[0] is a path when it holds a
                      ** '/', else a name looked up in `path` */
  char *const *envp;  /* the child's whole environment, NULL-terminated
                      ** "NAME=value" strings; NULL: an empty environment */
  const char *path;   /* directories searched for argv[0] (PATH syntax);
                      ** NULL: "/usr/local/bin:/usr/bin:/bin" */
  const char *cwd;    /* working directory of the child; NULL: ours */
  const char *in;     /* bytes written to the child's stdin, then closed */
  size_t in_len;
  double timeout;     /* seconds before the group is sent SIGTERM; <= 0: none */
  double grace;       /* seconds from SIGTERM to SIGKILL, and how long the
                      ** pipes are still read after the child exits while
                      ** something outside its group holds them */
  size_t cap;         /* bytes kept of stdout and of stderr, each */
  size_t rlimit_as;   /* RLIMIT_AS of the child, bytes; 0: inherited.  Not
                      ** applied in AddressSanitizer builds (ASan reserves
                      ** terabytes of address space up front) */
  double rlimit_cpu;  /* RLIMIT_CPU of the child, seconds (soft limit:
                      ** SIGXCPU; hard limit one second later: SIGKILL);
                      ** 0: inherited */
} ag_proc_spec;

/* What happened.  Caller owns `out` and `err`; free with ag_proc_result_free. */
typedef struct ag_proc_result {
  char *out, *err;            /* captured bytes (not NUL-terminated; may be NULL when empty) */
  size_t out_len, err_len;    /* bytes kept (<= cap) */
  size_t out_total, err_total;/* bytes the child wrote */
  size_t in_written;          /* stdin bytes the child took before closing it */
  int exit_code;              /* exit status, or -1 when a signal ended it */
  int signal;                 /* the signal that ended it, or 0 */
  int timed_out;              /* the timeout passed and the group was signalled */
  int pipes_held;             /* after the child exited, something outside
                              ** its group held stdout or stderr open past
                              ** `grace`; reading stopped there */
  double seconds;             /* wall time from spawn to reaping */
} ag_proc_result;

/*
** Runs `spec` to completion and fills `*res` (zeroed first).  Returns
** AG_OK when the program ran (whatever its exit status), or on failure
** with a message in `err` and nothing to free:
**   AG_ENOTFOUND  the program (or the working directory) does not exist
**   AG_EINVAL     argv is empty
**   AG_EIO        it could not be started (permission, not an executable,
**                 out of descriptors or processes)
**   AG_ENOMEM     a buffer could not be grown (the child is killed and reaped)
**   AG_EIO        also: the resource limits could not be set (the child is
**                 killed and reaped)
** Messages name the thing: "program 'x' not found", "cwd '/d': No such file
** or directory", "start '/bin/x': Permission denied".
*/
int ag_proc_run(const ag_proc_spec *spec, ag_proc_result *res, char err[AG_ERRLEN]);

/* Frees the buffers of `res` and zeroes it.  NULL is a no-op. */
void ag_proc_result_free(ag_proc_result *res);

#endif
