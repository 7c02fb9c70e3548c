/*
** fuzz/harness.c: the libFuzzer entry point shared by every fuzz target.
**
** A target is a Lua file fuzz/targets/<name>.lua returning one function,
** run(data), which feeds `data` to our C code through the bindings and
** asserts what must hold.  The harness builds the state exactly as
** aegis-run does (ag_host_new + ag_host_setup: same allocator, same preload
** of every aegis.core.* binding, same embedded Lua), so a target drives
** the code paths a user or a rulepack reaches, not a copy of them; the
** same target file is replayed by spec/functional/fuzz_replay_spec.lua
** through bin/aegis-run, which needs no clang.
**
** Why a Lua driver rather than calling the C functions directly: runtime/
** last.c exports only luaopen_aegis_core_ast (everything else is static,
** STYLE.md §1), and most of what it does (predicates, node pinning, the
** closed-tree checks, error tables) is the binding itself.  Driving it
** through lua_pcall covers all of it; the cost, a few Lua calls per node,
** stays well under the 1 ms per input the exec/s floor allows.
**
** Findings: a sanitizer report, a crash, or run() raising (an assertion in
** the target, or a binding raising where it must return nil, msg, code)
** aborts, so libFuzzer saves the input as a crasher.
*/
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lua.h>
#include <lauxlib.h>

#include "host.h"
#include "lauxag.h"

#ifndef FUZZ_DRIVER
#error "compile with -DFUZZ_DRIVER='\"/path/to/fuzz/targets/<name>.lua\"'"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *state;   /* lives for the whole process */
static int run_ref = LUA_NOREF;

/* Protected: sets the state up and leaves the target's run function. */
static int setup (lua_State *L) {
  ag_host_setup(L, 0, NULL);
  if (luaL_loadfile(L, FUZZ_DRIVER) != LUA_OK) return lua_error(L);
  lua_call(L, 0, 1);                               /* [run] */
  luaL_checktype(L, -1, LUA_TFUNCTION);
  return 1;
}

int LLVMFuzzerInitialize (int *argc, char ***argv) {
  (void)argc; (void)argv;
  state = ag_host_new();
  if (state == NULL) { fputs("fuzz: not enough memory\n", stderr); abort(); }
  lua_pushcfunction(state, setup);
  if (agL_pcall(state, 0, 1) != LUA_OK) {
    fprintf(stderr, "fuzz: loading %s: %s\n", FUZZ_DRIVER, lua_tostring(state, -1));
    abort();
  }
  run_ref = luaL_ref(state, LUA_REGISTRYINDEX);  /* [] */
  return 0;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  lua_State *L = state;
  lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);      /* [run] */
  lua_pushlstring(L, (const char *)data, size);    /* [run, data] */
  if (agL_pcall(L, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz: %s: %s\n", FUZZ_DRIVER, lua_tostring(L, -1));
    fflush(stderr);
    abort();
  }
  /* Every tree, query and buffer of this input is freed before the next
  ** one, so leaks show up per input and memory stays flat. */
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
