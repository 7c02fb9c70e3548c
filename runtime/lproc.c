/*
** lproc.c: aegis.core.proc, the binding of ag_proc.  Private: the
** documented way to run a tool is lua/aegis/trace.lua (allow-list,
** redaction, journal, trace rows).
**
**   proc.run(argv, opts?) -> result | nil, msg, code
**     argv  {program, args...}: strings without NUL bytes
**     opts  {cwd?, env? = {"NAME=value", ...}, path?, stdin?, timeout?,
**            grace? (default 2), cap? (default 16 MiB)}
**     result {stdout, stderr, stdout_truncated, stderr_truncated,
**             stdout_bytes, stderr_bytes, stdin_written, exit?, signal?,
**             signal_name?, timed_out, pipes_held, seconds}
*/
#define _GNU_SOURCE  /* sigabbrev_np */
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

static double optfield_number (lua_State *L, int opts, const char *key, double def) {
  double d = def;
  int t = lua_getfield(L, opts, key);
  if (t != LUA_TNIL) {
    if (t != LUA_TNUMBER) luaL_error(L, "bad argument #2 to 'run' (%s must be a number)", key);
    d = lua_tonumber(L, -1);
    if (!(d >= 0) || d > 1e9) luaL_error(L, "bad argument #2 to 'run' (%s must be between 0 and 1e9)", key);
  }
  lua_pop(L, 1);
  return d;
}

static void setbool (lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

static void setint (lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
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
  memset(&spec, 0, sizeof spec);
  spec.argv = strlist(L, 1, 1, "argv");                  /* [argv, opts, argvud] */
  luaL_argcheck(L, spec.argv[0] != NULL, 1, "argv is empty");
  if (lua_getfield(L, 2, "env") != LUA_TNIL) {           /* [.., env] */
    luaL_argcheck(L, lua_istable(L, -1), 2, "env must be a list of 'NAME=value' strings");
    spec.envp = strlist(L, lua_gettop(L), 2, "env");     /* [.., env, envud] */
  } else {
    lua_pushnil(L);                                      /* [.., nil, nil] */
  }
  spec.cwd = optfield_string(L, 2, "cwd");
  spec.path = optfield_string(L, 2, "path");
  if (lua_getfield(L, 2, "stdin") != LUA_TNIL) {         /* [.., stdin] */
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "bad argument #2 to 'run' (stdin must be a string)");
    spec.in = lua_tolstring(L, -1, &spec.in_len);        /* kept on the stack */
  }
  spec.timeout = optfield_number(L, 2, "timeout", 0);
  spec.grace = optfield_number(L, 2, "grace", DEFAULT_GRACE);
  double cap = optfield_number(L, 2, "cap", DEFAULT_CAP);
  spec.cap = (size_t)cap;

  LBox *b = (LBox *)lua_newuserdatauv(L, sizeof *b, 0);  /* [.., box] */
  memset(&b->r, 0, sizeof b->r);
  luaL_setmetatable(L, PROC_BOX);
  char err[AG_ERRLEN];
  int rc = ag_proc_run(&spec, &b->r, err);
  if (rc != AG_OK) return agL_pushfail(L, rc, "proc: run '%s': %s", spec.argv[0], err);

  const ag_proc_result *r = &b->r;
  lua_createtable(L, 0, 14);                             /* [.., box, result] */
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
  ag_proc_result_free(&b->r);  /* copied; the box's __gc finds nothing */
  return 1;
}

static const luaL_Reg funcs[] = {{"run", proc_run}, {NULL, NULL}};
static const luaL_Reg boxmeth[] = {{NULL, NULL}};
static const luaL_Reg boxmeta[] = {{"__index", NULL}, {"__gc", box_gc}, {"__close", box_gc}, {NULL, NULL}};

AGLIB_API int luaopen_aegis_core_proc(lua_State *L);
AGLIB_API int luaopen_aegis_core_proc (lua_State *L) {
  agL_newclass(L, PROC_BOX, boxmeth, boxmeta);
  luaL_newlib(L, funcs);
  return 1;
}
