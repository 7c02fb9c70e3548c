/*
** lproc.c: aegis.core.proc, the binding of ag_proc.  Private: the
** documented way to run a tool is lua/aegis/trace.lua (allow-list,
** redaction, journal, trace rows).
**
**   proc.run(argv, opts?) -> result | nil, msg, code
**     argv  {program, args...}: strings without NUL bytes
**     opts  {cwd?, env? = {"NAME=value", ...}, path?, stdin?, timeout?,
**            grace? (default 2), cap? (default 16 MiB), rlimit_as? (bytes),
**            rlimit_cpu? (seconds)}
**     result {stdout, stderr, stdout_truncated, stderr_truncated,
**             stdout_bytes, stderr_bytes, stdin_written, exit?, signal?,
**             signal_name?, timed_out, pipes_held, seconds}
**   proc.run_all({{argv, opts?}, ...}) -> {result | {error =, code =}, ...}
**     the same runs at once, one thread each (parallel workers)
*/
#define _GNU_SOURCE  /* sigabbrev_np */
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "ag_proc.h"
#include "lauxag.h"

#define PROC_BOX "aegis.proc.Result"
#define DEFAULT_CAP (16 * 1024 * 1024)
#define DEFAULT_GRACE 2.0

/* Owns the C buffers of one run until they are copied into Lua strings:
** if a push raises (out of memory), __gc still frees them. */
typedef struct LBox { ag_proc_result r; } LBox;

static int box_gc (lua_State *L) {
  LBox *b = (LBox *)luaL_checkudata(L, 1, PROC_BOX);
  ag_proc_result_free(&b->r);
  return 0;
}

/* A string without NUL bytes, from table `t` at `key` (on the stack top
** after the lua_get*).  The pointer stays valid while `t` holds it. */
static const char *cstring (lua_State *L, int arg, const char *what) {
  size_t n;
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "bad argument #%d to 'run' (%s must be a string, got %s)", arg, what, luaL_typename(L, -1));
  const char *s = lua_tolstring(L, -1, &n);
  if (strlen(s) != n) luaL_error(L, "bad argument #%d to 'run' (%s contains a NUL byte)", arg, what);
  return s;
}

/* A NULL-terminated char*[] in a userdata (collected, never leaked) from
** the sequence at `idx`; leaves the userdata on the stack. */
static char **strlist (lua_State *L, int idx, int arg, const char *what) {
  lua_Integer n = luaL_len(L, idx);
  luaL_argcheck(L, n >= 0 && n < 1000000, arg, "too many strings");
  char **v = (char **)lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    char label[64];
    snprintf(label, sizeof label, "%s[%lld]", what, (long long)i);
    v[i - 1] = (char *)cstring(L, arg, label);
    lua_pop(L, 1);  /* the table keeps the string alive */
  }
  v[n] = NULL;
  return v;
}

static const char *optfield_string (lua_State *L, int opts, const char *key) {
  const char *s = NULL;
  if (lua_getfield(L, opts, key) != LUA_TNIL) s = cstring(L, 2, key);
  lua_pop(L, 1);  /* opts keeps the string alive */
  return s;
}

static double optfield_range (lua_State *L, int opts, const char *key, double def, double max,
                              const char *maxs) {
  double d = def;
  int t = lua_getfield(L, opts, key);
  if (t != LUA_TNIL) {
    if (t != LUA_TNUMBER) luaL_error(L, "bad argument #2 to 'run' (%s must be a number)", key);
    d = lua_tonumber(L, -1);
    if (!(d >= 0) || d > max) luaL_error(L, "bad argument #2 to 'run' (%s must be between 0 and %s)", key, maxs);
  }
  lua_pop(L, 1);
  return d;
}

static double optfield_number (lua_State *L, int opts, const char *key, double def) {
  return optfield_range(L, opts, key, def, 1e9, "1e9");
}

static void setbool (lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

static void setint (lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/*
** Reads argv (at `argi`, argument `argvarg` in messages) and opts (at
** `opti`, a table, argument `arg`) into `spec`; raises
** on misuse before any C state exists.  Pushes the userdata and strings
** that must stay alive while `spec` is used (their number varies: callers
** keep the stack as it is until the run ends).
*/
static void read_spec (lua_State *L, int argi, int opti, int argvarg, int arg, ag_proc_spec *spec) {
  memset(spec, 0, sizeof *spec);
  spec->argv = strlist(L, argi, argvarg, "argv");         /* [.., argvud] */
  luaL_argcheck(L, spec->argv[0] != NULL, argvarg, "argv is empty");
  if (lua_getfield(L, opti, "env") != LUA_TNIL) {         /* [.., env] */
    luaL_argcheck(L, lua_istable(L, -1), arg, "env must be a list of 'NAME=value' strings");
    spec->envp = strlist(L, lua_gettop(L), arg, "env");   /* [.., env, envud] */
  } else {
    lua_pushnil(L);                                       /* [.., nil, nil] */
  }
  spec->cwd = optfield_string(L, opti, "cwd");
  spec->path = optfield_string(L, opti, "path");
  if (lua_getfield(L, opti, "stdin") != LUA_TNIL) {       /* [.., stdin] */
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "bad argument #%d to 'run' (stdin must be a string)", arg);
    spec->in = lua_tolstring(L, -1, &spec->in_len);       /* kept on the stack */
  }
  spec->timeout = optfield_number(L, opti, "timeout", 0);
  spec->grace = optfield_number(L, opti, "grace", DEFAULT_GRACE);
  spec->cap = (size_t)optfield_number(L, opti, "cap", DEFAULT_CAP);
  spec->rlimit_as = (size_t)optfield_range(L, opti, "rlimit_as", 0, 0x1p52, "2^52");
  spec->rlimit_cpu = optfield_number(L, opti, "rlimit_cpu", 0);
}

/* Pushes the result table of `r` (the box at `boxidx` still owns it). */
static void push_result (lua_State *L, const ag_proc_result *r) {
  lua_createtable(L, 0, 14);                             /* [.., result] */
  lua_pushlstring(L, r->out ? r->out : "", r->out_len);
  lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, r->err ? r->err : "", r->err_len);
  lua_setfield(L, -2, "stderr");
  setbool(L, "stdout_truncated", r->out_total > r->out_len);
  setbool(L, "stderr_truncated", r->err_total > r->err_len);
  setint(L, "stdout_bytes", (lua_Integer)r->out_total);
  setint(L, "stderr_bytes", (lua_Integer)r->err_total);
  setint(L, "stdin_written", (lua_Integer)r->in_written);
  if (r->signal != 0) {
    setint(L, "signal", r->signal);
    const char *abbrev = sigabbrev_np(r->signal);
    if (abbrev != NULL) {
      lua_pushstring(L, abbrev);
      lua_setfield(L, -2, "signal_name");
    }
  } else if (r->exit_code >= 0) {
    setint(L, "exit", r->exit_code);
  }
  setbool(L, "timed_out", r->timed_out);
  setbool(L, "pipes_held", r->pipes_held);
  lua_pushnumber(L, r->seconds);
  lua_setfield(L, -2, "seconds");
}

static LBox *newbox (lua_State *L) {
  LBox *b = (LBox *)lua_newuserdatauv(L, sizeof *b, 0);  /* [.., box] */
  memset(&b->r, 0, sizeof b->r);
  luaL_setmetatable(L, PROC_BOX);
  return b;
}

static int proc_run (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_newtable(L);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  /* Every check before any C state: errors raise here, nothing to free. */
  ag_proc_spec spec;
  read_spec(L, 1, 2, 1, 2, &spec);
  LBox *b = newbox(L);                                   /* [.., box] */
  char err[AG_ERRLEN];
  int rc = ag_proc_run(&spec, &b->r, err);
  if (rc != AG_OK) return agL_pushfail(L, rc, "proc: run '%s': %s", spec.argv[0], err);
  push_result(L, &b->r);                                 /* [.., box, result] */
  ag_proc_result_free(&b->r);  /* copied; the box's __gc finds nothing */
  return 1;
}

/* {====================================================== run_all */

#define MAX_ALL 256

/* One run of run_all, for its thread.  spec and the box live in Lua
** memory the calling frame keeps alive until every thread is joined. */
typedef struct job {
  ag_proc_spec spec;
  LBox *box;
  int rc;
  char err[AG_ERRLEN];
  pthread_t th;
  int started;
} job;

static void *job_main (void *arg) {
  job *j = (job *)arg;
  j->rc = ag_proc_run(&j->spec, &j->box->r, j->err);
  return NULL;
}

/*
** proc.run_all({{argv, opts?}, ...}) -> {result | {error = msg, code = code}, ...}
** Runs the programs at the same time, one thread each around ag_proc_run
** (which touches no Lua state), and returns when all have ended.  The
** parent of parallel workers: `aegis-run enforce` runs its shards so.
*/
static int proc_run_all (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_Integer n = luaL_len(L, 1);
  luaL_argcheck(L, n >= 0 && n <= MAX_ALL, 1, "between 0 and 256 runs");
  job *jobs = (job *)lua_newuserdatauv(L, sizeof(job) * (size_t)(n ? n : 1), 0);  /* [list, jobs] */
  memset(jobs, 0, sizeof(job) * (size_t)(n ? n : 1));
  for (lua_Integer i = 1; i <= n; i++) {
    luaL_checkstack(L, 8, NULL);
    lua_geti(L, 1, i);                                   /* [.., item] */
    if (!lua_istable(L, -1)) luaL_error(L, "bad argument #1 to 'run_all' (item %d must be a table)", (int)i);
    int item = lua_gettop(L);
    lua_geti(L, item, 1);                                /* [.., item, argv] */
    if (!lua_istable(L, -1)) luaL_error(L, "bad argument #1 to 'run_all' (item %d: argv must be a table)", (int)i);
    if (lua_geti(L, item, 2) == LUA_TNIL) {              /* [.., item, argv, opts] */
      lua_pop(L, 1);
      lua_newtable(L);
    }
    if (!lua_istable(L, -1)) luaL_error(L, "bad argument #1 to 'run_all' (item %d: opts must be a table)", (int)i);
    int argvi = lua_gettop(L) - 1, opti = lua_gettop(L);
    read_spec(L, argvi, opti, 1, 1, &jobs[i - 1].spec);     /* strings pinned on the stack */
    jobs[i - 1].box = newbox(L);
  }
  /* No Lua call from here until every thread is joined. */
  for (lua_Integer i = 0; i < n; i++) {
    if (pthread_create(&jobs[i].th, NULL, job_main, &jobs[i]) == 0) jobs[i].started = 1;
    else job_main(&jobs[i]);  /* no thread: run it here */
  }
  for (lua_Integer i = 0; i < n; i++)
    if (jobs[i].started) pthread_join(jobs[i].th, NULL);
  lua_createtable(L, (int)n, 0);                         /* [.., results] */
  for (lua_Integer i = 0; i < n; i++) {
    job *j = &jobs[i];
    if (j->rc == AG_OK) {
      push_result(L, &j->box->r);
      ag_proc_result_free(&j->box->r);
    } else {
      lua_createtable(L, 0, 2);
      lua_pushfstring(L, "proc: run '%s': %s", j->spec.argv[0], j->err);
      lua_setfield(L, -2, "error");
      lua_pushstring(L, ag_errcode(j->rc));
      lua_setfield(L, -2, "code");
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* }====================================================== */

static const luaL_Reg funcs[] = {{"run", proc_run}, {"run_all", proc_run_all}, {NULL, NULL}};
static const luaL_Reg boxmeth[] = {{NULL, NULL}};
static const luaL_Reg boxmeta[] = {{"__index", NULL}, {"__gc", box_gc}, {"__close", box_gc}, {NULL, NULL}};

AGLIB_API int luaopen_aegis_core_proc(lua_State *L);
AGLIB_API int luaopen_aegis_core_proc (lua_State *L) {
  agL_newclass(L, PROC_BOX, boxmeth, boxmeta);
  luaL_newlib(L, funcs);
  return 1;
}
