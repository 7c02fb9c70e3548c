/*
** lsandbox.c: aegis.core.sandbox, the C half of the script sandbox.
**
** Two jobs, neither of which Lua code can do for itself:
**  - closes the `("").dump` hole once for the whole state: the string
**    metatable's __index becomes a copy of the string library without
**    `dump` (and with a `rep` that cannot spin on empty strings), and the
**    metatable answers getmetatable with false;
**  - runs a function under a budget (`call`): a count hook shared by every
**    coroutine the function creates checks an instruction limit and a
**    wall-clock deadline, and the host allocator's limit caps memory;
**    `timed` keeps only the deadline and the memory cap, with no hook
**    until a timer (SIGALRM) fires at the deadline and installs it: no
**    cost per instruction, for code we trust but must not let hang.
** The documented API is lua/aegis/sandbox.lua.
*/
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <lua.h>
#include <lauxlib.h>

#include "host.h"
#include "lauxag.h"

/*
** The hook runs every HOOK_EVERY VM instructions.  In 5.4 any count hook
** makes the VM call luaG_traceexec on every instruction, so the cost
** (about 2x on a tight arithmetic loop, within noise on string-heavy code;
** docs/sandbox.md) is the same for 100, 1000 or 100000; 1000 keeps the
** overshoot past a limit small and the clock reads rare.
*/
#define HOOK_EVERY 1000

/* Marks the table the message handler returns (registry-free: address). */
static const char handled_key = 0;

/*
** {======================================================
** Budgeted calls
** =======================================================
*/

enum { TRIP_NONE = 0, TRIP_INSTRUCTIONS, TRIP_TIME };

/*
** One budgeted call.  Lives on the C stack of sandbox_call; `current`
** points at the innermost one, so the hook (which gets no user data) and
** the message handler find it.  One process runs one state, and a
** budgeted call never yields, so a static pointer is enough.
*/
typedef struct run {
  lua_Integer limit;       /* instructions; 0: none */
  lua_Integer count;       /* instructions so far, in every thread of the run */
  double seconds;          /* as given, for the message */
  double deadline;         /* monotonic seconds; 0: none */
  int tripped;             /* TRIP_*: once set, every instruction raises */
  lua_Integer trip_limit;  /* the limit that ran out (maybe an enclosing run's) */
  double trip_seconds;     /* the deadline's seconds, likewise */
  lua_Integer memory;      /* bytes, as given; 0: no cap of its own */
  size_t cap;              /* the allocator limit this run set; 0: none */
  const char *source;      /* the chunk's source ("@x.lua"), to find its frames */
  int timed;               /* the deadline is kept by the timer, not the count hook */
  char where[LUA_IDSIZE + 24];  /* "x.lua:3:" where the budget ran out */
  struct run *prev;        /* enclosing run, for nested calls */
} run;

static run *current = NULL;

/*
** The timer of timed runs.  While one runs, timed_L is the thread that
** called it and SIGALRM is due at the innermost timed deadline; the
** handler sets `fired` and installs the hook on timed_L, which then checks
** the deadlines as for any run.  lua_sethook is safe in a signal handler
** (lua.c's SIGINT handler does the same).  A coroutine the run resumes
** does not get the hook: the run stops when control is back in timed_L
** (the code that runs timed, the built-in rulepacks, makes none).
**
** The timer is not disarmed when a run ends: `armed` remembers the
** deadline it is set for, and a run whose deadline is later keeps it (it
** fires early, the hook sees no deadline passed and arms the timer again).
** A rule check is a few microseconds; two setitimer calls around each were
** most of enforce's system time (39,000 calls over the bench corpus).  A
** stale alarm after the last run only sets `fired` (SA_RESTART; the
** process's own poll and sleep loops retry on EINTR).
*/
static lua_State *volatile timed_L = NULL;
static volatile sig_atomic_t fired = 0;
static int alarm_installed = 0;
static double armed = 0;   /* monotonic deadline the timer is set for; 0: none */

static void hook (lua_State *L, lua_Debug *ar);

/* A forked copy (aegis.core.fork) starts with no interval timer: it
** forgets the deadline the parent's was set for, so its first timed run
** arms one.  Registered once, with pthread_atfork. */
static void forget_timer (void) {
  armed = 0;
  fired = 0;
}

static void on_alarm (int sig) {
  (void)sig;
  lua_State *L = timed_L;
  fired = 1;
  if (L != NULL) lua_sethook(L, hook, LUA_MASKCOUNT, 1);
}

/* Arms the timer for `deadline` (monotonic seconds; 0: disarms). */
static void arm (double deadline) {
  struct itimerval it;
  armed = deadline;
  memset(&it, 0, sizeof it);
  if (deadline > 0) {
    double d = deadline - agL_monotonic();
    if (d < 1e-6) d = 1e-6;
    it.it_value.tv_sec = (time_t)d;
    it.it_value.tv_usec = (suseconds_t)((d - (double)it.it_value.tv_sec) * 1e6);
    if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0) it.it_value.tv_usec = 1;
  }
  setitimer(ITIMER_REAL, &it, NULL);
}

/* The earliest deadline of the timed runs in the chain from r, or 0. */
static double timed_deadline (const run *r) {
  double d = 0;
  for (; r != NULL; r = r->prev)
    if (r->timed && r->deadline > 0 && (d == 0 || r->deadline < d)) d = r->deadline;
  return d;
}

/* Makes the timer fire no later than the earliest timed deadline of the
** chain from r: arms it only when it is off (it fired since it was set)
** or set for later. */
static void arm_for (const run *r) {
  double d = timed_deadline(r);
  if (fired) {
    fired = 0;
    armed = 0;
  }
  if (d > 0 && (armed == 0 || armed > d)) arm(d);
}

/*
** Records where the budget ran out: the innermost frame of the script's
** own chunk (so a loop stopped inside an aegis module called by the
** script still names the script's line), else the running function.
*/
static void setwhere (lua_State *L, lua_Debug *ar, run *r) {
  lua_Debug up;
  r->where[0] = '\0';
  for (int level = 0; lua_getstack(L, level, &up); level++) {
    if (lua_getinfo(L, "Sl", &up) && up.currentline > 0 &&
        strcmp(up.source, r->source) == 0) {
      snprintf(r->where, sizeof r->where, "%s:%d:", up.short_src, up.currentline);
      return;
    }
  }
  if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
    snprintf(r->where, sizeof r->where, "%s:%d:", ar->short_src, ar->currentline);
}

/*
** The count hook.  Coroutines created during the run inherit it
** (lua_newthread copies the creator's hook), so the counter is the run's,
** not the thread's.  A thread left with the hook after its run ended
** (a coroutine that escaped) drops it.  Once the budget is out the hook
** re-arms at count 1 and raises on every instruction, so a pcall in the
** script cannot swallow the error (Redis script_lua.c does the same).
*/
static void hook (lua_State *L, lua_Debug *ar) {
  run *r = current;
  if (r == NULL) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (!r->tripped) {
    int every = lua_gethookcount(L);
    double now = 0;
    for (run *p = r; p != NULL && !r->tripped; p = p->prev) {
      p->count += every;  /* a nested run's instructions are its parents' too */
      if (p->limit > 0 && p->count > p->limit) {
        r->tripped = TRIP_INSTRUCTIONS;
        r->trip_limit = p->limit;
      }
      else if (p->deadline > 0) {
        if (now == 0) now = agL_monotonic();
        if (now > p->deadline) {
          r->tripped = TRIP_TIME;
          r->trip_seconds = p->seconds;
        }
      }
    }
    if (!r->tripped) {
      int counted = 0;
      for (run *p = r; p != NULL; p = p->prev)
        if (p->limit > 0 || (p->deadline > 0 && !p->timed)) counted = 1;
      if (!counted) {           /* only timed runs: the timer fired early */
        fired = 0;
        lua_sethook(L, NULL, 0, 0);
        arm(timed_deadline(r));
      }
      else if (every != HOOK_EVERY)  /* a coroutine left at 1 by an earlier run */
        lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
      return;
    }
    setwhere(L, ar, r);
  }
  lua_sethook(L, hook, LUA_MASKCOUNT, 1);
  lua_pushliteral(L, "sandbox: budget exceeded");  /* replaced by call's message */
  lua_error(L);
}

/*
** "x.lua:3: " for the innermost frame of the script's own chunk, or ""
** (pushed).  Gives a position to errors raised with a non-string value.
*/
static void pushwhere (lua_State *L, const char *source) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 &&
        source != NULL && strcmp(ar.source, source) == 0) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(L, "");
}

/* __tostring of the value at 1, under its own pcall: [.., s] or [..] */
static int calltostring (lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/*
** Message handler of the budgeted call.  Runs on the failing thread with
** the hook still armed; it is C, so the hook never fires in it, and a
** user __tostring it calls runs under its own pcall (and the budget).
** Returns {msg = string, traceback = string, value = original} marked
** with handled_key, or the bare value when the budget ran out (the caller
** builds that message).  Stack: [value].
*/
static int msgh (lua_State *L) {
  run *r = current;
  if (r == NULL || r->tripped) return 1;
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING)
    lua_pushvalue(L, 1);                                 /* [v, msg] */
  else {
    pushwhere(L, r->source);                             /* [v, where] */
    int ok = 0;
    if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushcfunction(L, calltostring);
      lua_pushvalue(L, 1);
      ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING;
      if (!ok) lua_pop(L, 1);
    }
    if (!ok && lua_type(L, 1) == LUA_TNUMBER) {
      lua_pushvalue(L, 1);
      lua_tostring(L, -1);
      ok = 1;
    }
    if (!ok)
      lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    lua_concat(L, 2);                                    /* [v, msg] */
    if (r->tripped) return 1;  /* the budget ran out inside __tostring */
  }
  lua_createtable(L, 0, 4);                              /* [v, msg, t] */
  lua_pushvalue(L, 2);                                   /* the message whole (NUL bytes too), */
  lua_pushliteral(L, "\n");
  luaL_traceback(L, L, NULL, 1);                         /* then the traceback alone */
  lua_concat(L, 3);
  lua_setfield(L, -2, "traceback");
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "msg");
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "value");
  lua_pushboolean(L, 1);
  lua_rawsetp(L, -2, &handled_key);
  return 1;
}

/*
** Whether the error at idx (a string, or the msg of msgh's table) ends
** with `tail`.  Raw reads: no metamethod of the script runs here, outside
** its budget.
*/
static int endswith (lua_State *L, int idx, const char *tail) {
  int t;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_pushliteral(L, "msg");
    t = lua_rawget(L, idx);
  }
  else {
    lua_pushvalue(L, idx);
    t = lua_type(L, -1);
  }
  int r = 0;
  if (t == LUA_TSTRING) {
    size_t n, k = strlen(tail);
    const char *s = lua_tolstring(L, -1, &n);
    r = n >= k && memcmp(s + n - k, tail, k) == 0;
  }
  lua_pop(L, 1);
  return r;
}

/* "%.4g" of x in buf: budgets read "0.5 s", "64 MiB". */
static const char *fmtnum (char *buf, size_t n, double x) {
  snprintf(buf, n, "%.4g", x);
  return buf;
}

/*
** call(instructions, seconds, memory, source, f, ...)
**   -> true, ...results
**   -> false, kind, msg, traceback|nil, value
** Runs f(...) under the budget: `instructions` (0: no limit), `seconds` of
** wall time (0: none), `memory` bytes on top of what the state uses now
** (0: no cap).  kind is "runtime", "budget" or "memory".  `source` is the
** chunk name of the script ("@x.lua"), used to give non-string errors a
** position.  The hook and the memory limit the thread had before are put
** back on every path.
*/
static int budgeted (lua_State *L, lua_Integer limit, double seconds, lua_Integer memory,
                     const char *source, int timed) {
  int nargs = lua_gettop(L) - 5;
  char num[32];
  ag_alloc *a = ag_host_alloc(L);
  size_t oldlimit = a->limit;
  lua_Hook oldhook = lua_gethook(L);
  int oldmask = lua_gethookmask(L);
  int oldcount = lua_gethookcount(L);
  run r;
  memset(&r, 0, sizeof r);
  r.limit = limit;
  r.seconds = seconds;
  r.memory = memory;
  r.deadline = seconds > 0 ? agL_monotonic() + seconds : 0;
  r.source = source;
  r.timed = timed && r.deadline > 0;
  r.prev = current;
  lua_pushcfunction(L, msgh);
  lua_insert(L, 5);                              /* [.., msgh, f, args...] */
  if (memory > 0) {
    size_t cap = a->used + (size_t)memory;
    if (cap < a->used) cap = (size_t)-1;         /* overflow: no cap */
    if (oldlimit == 0 || cap < oldlimit) a->limit = r.cap = cap;
  }
  size_t inforce = a->limit, hits = a->limit_hits;
  /* no limit anywhere in the chain: no hook, so no per-instruction cost */
  int hooked = 0;
  for (run *p = &r; p != NULL; p = p->prev)
    if (p->limit > 0 || (p->deadline > 0 && !p->timed)) hooked = 1;
  lua_State *oldtimed = timed_L;
  if (r.timed) {
    if (!alarm_installed) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_alarm;
      sa.sa_flags = SA_RESTART;
      sigemptyset(&sa.sa_mask);
      sigaction(SIGALRM, &sa, NULL);
      alarm_installed = 1;
    }
    timed_L = L;             /* before arm_for reads `fired`: a signal in between sets the hook */
  }
  current = &r;
  if (hooked) lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
  if (r.timed) arm_for(&r);
  int status = lua_pcall(L, nargs, LUA_MULTRET, 5);
  /* restore before anything that can allocate or raise: timed_L first, so
  ** that the timer (left armed) cannot set a hook on L after the old one is
  ** back; then the timer made due for an enclosing timed run (it is already
  ** unless it fired during this run: maybe past, it fires at once and its
  ** hook stops that run) */
  if (r.timed) timed_L = oldtimed;
  if (hooked || r.timed) lua_sethook(L, oldhook, oldmask, oldcount);
  current = r.prev;
  if (r.timed) arm_for(r.prev);
  a->limit = oldlimit;
  if (status == LUA_OK && !r.tripped) {
    int nres = lua_gettop(L) - 5;
    luaL_checkstack(L, 1, "too many results");
    lua_pushboolean(L, 1);
    lua_replace(L, 5);                           /* msgh -> true */
    return nres + 1;
  }
  lua_settop(L, 6);  /* [.., msgh, err]; err is the first result when the
                     ** script ended normally after a coroutine of it ran
                     ** out of budget */
  lua_pushboolean(L, 0);
  if (r.tripped) {
    lua_pushliteral(L, "budget");
    const char *where = r.where[0] ? r.where : "";
    const char *sp = r.where[0] ? " " : "";
    if (r.tripped == TRIP_INSTRUCTIONS)
      lua_pushfstring(L, "%s%ssandbox: instruction budget exceeded (%I instructions)",
                      where, sp, (LUAI_UACINT)r.trip_limit);
    else
      lua_pushfstring(L, "%s%ssandbox: time budget exceeded (%s s)", where, sp,
                      fmtnum(num, sizeof num, r.trip_seconds));
    lua_pushnil(L);
    lua_pushnil(L);
    return 5;
  }
  /* a memory error that crossed a coroutine boundary arrives as a runtime
  ** error with Lua's fixed message (lua_error cannot keep LUA_ERRMEM).
  ** Only a refusal by the limit is a budget stop, and the budget to name
  ** is the one whose limit was in force: an enclosing run's may be the
  ** tighter one.  Anything else is the machine running out. */
  int capped = a->limit_hits != hits;
  if (status == LUA_ERRMEM || ((memory > 0 || capped) && endswith(L, 6, "not enough memory"))) {
    const run *owner = NULL;
    for (const run *p = &r; capped && p != NULL && owner == NULL; p = p->prev)
      if (p->cap != 0 && p->cap == inforce) owner = p;
    lua_pushliteral(L, "memory");
    if (owner != NULL)
      lua_pushfstring(L, "sandbox: memory budget exceeded (%s MiB)",
                      fmtnum(num, sizeof num, (double)owner->memory / (1024.0 * 1024.0)));
    else
      lua_pushliteral(L, "sandbox: not enough memory");
    lua_pushnil(L);
    lua_pushnil(L);
    return 5;
  }
  lua_pushliteral(L, "runtime");                 /* [.., err, false, kind] */
  if (lua_type(L, 6) == LUA_TTABLE &&
      lua_rawgetp(L, 6, &handled_key) == LUA_TBOOLEAN) {
    lua_pop(L, 1);
    lua_getfield(L, 6, "msg");
    lua_getfield(L, 6, "traceback");
    lua_getfield(L, 6, "value");
    return 5;
  }
  if (lua_type(L, 6) == LUA_TTABLE) lua_pop(L, 1);  /* the rawgetp result */
  /* LUA_ERRERR, or an error the handler could not wrap */
  if (status == LUA_ERRERR)
    lua_pushliteral(L, "sandbox: error in error handling");
  else if (lua_type(L, 6) == LUA_TSTRING)
    lua_pushvalue(L, 6);
  else
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 6));
  lua_pushnil(L);
  lua_pushvalue(L, 6);
  return 5;
}

static int sandbox_call (lua_State *L) {
  lua_Integer limit = luaL_checkinteger(L, 1);
  double seconds = luaL_checknumber(L, 2);
  lua_Integer memory = luaL_checkinteger(L, 3);
  const char *source = luaL_checkstring(L, 4);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  luaL_argcheck(L, limit >= 0, 1, "must be non-negative");
  luaL_argcheck(L, seconds >= 0, 2, "must be non-negative");
  luaL_argcheck(L, memory >= 0, 3, "must be non-negative");
  return budgeted(L, limit, seconds, memory, source, 0);
}

/*
** timed(seconds, memory, source, f, ...): as call(0, seconds, memory,
** source, f, ...) (the same results, "budget" with "time budget exceeded"
** when the deadline passes), without the count hook: a timer installs it
** at the deadline.  For code that is trusted but must not hang (built-in
** rulepacks): the count hook slows every Lua instruction about twice.
*/
static int sandbox_timed (lua_State *L) {
  double seconds = luaL_checknumber(L, 1);
  lua_Integer memory = luaL_checkinteger(L, 2);
  const char *source = luaL_checkstring(L, 3);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  luaL_argcheck(L, seconds >= 0, 1, "must be non-negative");
  luaL_argcheck(L, memory >= 0, 2, "must be non-negative");
  lua_pushinteger(L, 0);
  lua_insert(L, 1);                              /* [0, seconds, memory, source, f, ...] */
  return budgeted(L, 0, seconds, memory, source, 1);
}

/* }====================================================== */


/*
** {======================================================
** The string metatable
** =======================================================
*/

/*
** string.rep that returns at once when the result is empty.  The stock
** one loops n times even then, inside one C call the hook cannot stop:
** ("").rep("", math.maxinteger) would hang the host.  Upvalue 1: the
** stock rep.
*/
static int str_rep (lua_State *L) {
  size_t l, lsep;
  luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  if (n <= 0 || l + lsep == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/*
** Makes the string metatable's __index a copy of the string library
** without `dump` (and with the safe `rep`), and sets __metatable = false
** so getmetatable("") no longer hands out the metatable.  Host code keeps
** string.dump through the global `string`.  Idempotent: a second call
** copies the copy.  Pushes the copy.
*/
static void protectstrings (lua_State *L) {
  lua_pushliteral(L, "");
  if (!lua_getmetatable(L, -1))                  /* [s, mt] */
    luaL_error(L, "sandbox: strings have no metatable");
  lua_remove(L, -2);                             /* [mt] */
  lua_newtable(L);                               /* [mt, copy] */
  if (lua_getfield(L, -2, "__index") == LUA_TTABLE) {  /* [mt, copy, lib] */
    lua_pushnil(L);
    while (lua_next(L, -2)) {                    /* [mt, copy, lib, k, v] */
      lua_pushvalue(L, -2);
      lua_insert(L, -2);                         /* [mt, copy, lib, k, k, v] */
      lua_rawset(L, -5);
    }
  }
  lua_pop(L, 1);                                 /* [mt, copy] */
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  if (lua_getfield(L, -1, "rep") == LUA_TFUNCTION &&  /* [mt, copy, rep] */
      lua_tocfunction(L, -1) != str_rep) {       /* not wrapped yet */
    lua_pushcclosure(L, str_rep, 1);
    lua_setfield(L, -2, "rep");
  }
  else lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");                /* mt.__index = copy */
  lua_pushboolean(L, 0);
  lua_setfield(L, -3, "__metatable");            /* getmetatable("") -> false */
  lua_remove(L, -2);                             /* [copy] */
}

/* }====================================================== */


/*
** tripped() -> boolean: whether the innermost run's budget ran out.  The
** error the hook raises reaches message handlers with hooks off (lua_error
** inside a hook), so aegis.sandbox's xpcall and coroutine wrappers check
** this before running any script code there.
*/
static int sandbox_tripped (lua_State *L) {
  lua_pushboolean(L, current != NULL && current->tripped);
  return 1;
}

/*
** charge(n): counts n instructions against the innermost run and its
** parents, for work done in C on the script's behalf (table.move slices);
** the next hook call stops the run if that went over.  No-op outside a run.
*/
static int sandbox_charge (lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0, 1, "must be non-negative");
  for (run *p = current; p != NULL; p = p->prev) p->count += n;
  return 0;
}

/* instructions() -> instructions counted so far in the innermost run, or nil */
static int sandbox_instructions (lua_State *L) {
  if (current == NULL) lua_pushnil(L);
  else lua_pushinteger(L, current->count);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"call", sandbox_call},
  {"timed", sandbox_timed},
  {"charge", sandbox_charge},
  {"instructions", sandbox_instructions},
  {"tripped", sandbox_tripped},
  {NULL, NULL}
};

AGLIB_API int luaopen_aegis_core_sandbox(lua_State *L);
AGLIB_API int luaopen_aegis_core_sandbox (lua_State *L) {
  static int atfork_set = 0;
  if (!atfork_set && pthread_atfork(NULL, NULL, forget_timer) == 0) atfork_set = 1;
  luaL_newlib(L, funcs);                         /* [M] */
  protectstrings(L);                             /* [M, copy] */
  lua_setfield(L, -2, "string");                 /* M.string = copy */
  lua_pushinteger(L, HOOK_EVERY);
  lua_setfield(L, -2, "hook_every");
  return 1;
}
