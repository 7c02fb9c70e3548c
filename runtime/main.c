/*
** main.c: aegis-run's entry point.  Everything past building the state is
** Lua (lua/aegis/cli/init.lua), entered once, under agL_pcall.
*/
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "ag_asan.h"
#include "host.h"
#include "lauxag.h"

typedef struct { int argc; char **argv; int code; int quick; } args;

/* Runs protected: sets up the state and calls require('aegis.cli').main. */
static int pmain (lua_State *L) {
  args *a = (args *)lua_touserdata(L, 1);
  ag_host_setup(L, a->argc, a->argv);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "aegis.cli");
  lua_call(L, 1, 1);              /* [cli] */
  lua_getfield(L, -1, "main");    /* [cli, main] */
  lua_getglobal(L, "arg");        /* [cli, main, arg] */
  lua_call(L, 1, 2);              /* [cli, code, quick] */
  a->code = (int)luaL_optinteger(L, -2, 0);
  a->quick = lua_toboolean(L, -1);
  return 0;
}

/*
** tree-sitter frees a parser's GLR stack recursively (stack_node_release,
** one frame per node with more than one link).  After a parse stopped by its
** time or memory budget on hostile input (`1<a><a>...`, 70,000 of them, in
** TSX) that recursion needed more than 4 MiB of stack: within 2x of the
** default 8 MiB in a release build, past it in a sanitizer build.  The main
** thread's stack grows on demand up to RLIMIT_STACK as it is when it grows,
** and the kernel leaves at least 128 MiB free below it for that, so the soft
** limit is raised to STACK_WANT (never lowered; up to the hard limit).
*/
#define STACK_WANT ((rlim_t)64 * 1024 * 1024)

static void roomy_stack (void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_STACK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= STACK_WANT) return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= STACK_WANT ? STACK_WANT : rl.rlim_max;
  setrlimit(RLIMIT_STACK, &rl);
}

int main (int argc, char **argv) {
  args a = {argc, argv, 1, 0};
  roomy_stack();
  lua_State *L = ag_host_new();
  if (L == NULL) {
    fputs("aegis-run: not enough memory\n", stderr);  /* the state itself */
    return 1;
  }
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &a);
  if (agL_pcall(L, 1, 0) != LUA_OK) {
    /* cli.main handles its own errors; this is the last resort */
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "aegis-run: %s\n", msg ? msg : "(no message)");
    fflush(stderr);
    a.code = 1;
    a.quick = 0;
  }
  /* A command that leaves nothing for finalizers to do (cli.main's second
  ** result: enforce, whose every file, process and output is closed by
  ** then) ends here: closing the state frees its objects one by one,
  ** 22-25 ms after an enforce run over 4,000 files (its findings), which
  ** the kernel does at once.  Under a leak checker the state is closed, so
  ** that it sees everything freed. */
  if (a.quick && !ag_leak_checked()) {
    fflush(NULL);
    _exit(a.code);
  }
  ag_host_close(L);
  return a.code;
}
