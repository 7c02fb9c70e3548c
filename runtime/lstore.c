/*
** lstore.c: aegis.core.store, the binding of ag_store.  Private: the
** documented API is lua/aegis/store.lua, which resolves the default URL,
** validates options and adds tx, migrate and version to the methods here.
**
** A store is a userdata holding one ag_store pointer (NULL: closed) and
** one user value, a table {kind =, url =} that __index falls back to, so
** `db.kind` and `db.url` read as fields.  Values bind from positional
** arguments: nil and store.null (any NULL light userdata, like cjson.null)
** are NULL; store.blob(s) is a table whose metatable marks bytes.
*/
#include <string.h>

#include "ag_store.h"
#include "lauxag.h"

#define STORE_DB "aegis.store.Db"
#define STORE_BLOB "aegis.store.Blob"

/* Parameters that fit here need no allocation. */
#define NSTACK 16

typedef struct LStore { ag_store *s; } LStore;

static LStore *todb (lua_State *L) {
  return (LStore *)luaL_checkudata(L, 1, STORE_DB);
}

static ag_store *checkopen (lua_State *L) {
  LStore *p = todb(L);
  if (p->s == NULL) luaL_error(L, "attempt to use a closed store");
  return p->s;
}

/* The redacted URL from the user value; pushes nothing. */
static const char *dburl (lua_State *L) {
  const char *url = "?";
  if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {  /* [uv] */
    lua_getfield(L, -1, "url");  /* [uv, url]; the table keeps it alive */
    if (lua_type(L, -1) == LUA_TSTRING) url = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return url;
}

/* Pushes `url` with its password replaced by ***. */
static const char *pushredacted (lua_State *L, const char *url) {
  luaL_Buffer b;
  size_t n = ag_store_redact(url, NULL, 0);
  char *p = luaL_buffinitsize(L, &b, n + 1);
  ag_store_redact(url, p, n + 1);
  luaL_pushresultsize(&b, n);
  return lua_tostring(L, -1);
}

/* The first line of `sql`, trimmed to 60 bytes, for messages. */
static const char *pushhead (lua_State *L, const char *sql) {
  while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r') sql++;
  size_t n = strcspn(sql, "\r\n");
  while (n > 0 && (sql[n - 1] == ' ' || sql[n - 1] == '\t')) n--;
  if (n <= 60) return lua_pushlstring(L, sql, n);
  lua_pushlstring(L, sql, 57);
  lua_pushliteral(L, "...");
  lua_concat(L, 2);
  return lua_tostring(L, -1);
}


/*
** {======================================================
** Module functions
** =======================================================
*/

static double optseconds (lua_State *L, int t, const char *key, double def) {
  double v = def;
  int type = lua_getfield(L, t, key);
  if (type != LUA_TNIL) {
    if (type != LUA_TNUMBER)
      luaL_error(L, "bad option '%s' (number expected, got %s)", key, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
    if (!(v >= 0 && v <= 1e6)) luaL_error(L, "bad option '%s' (seconds out of range)", key);
  }
  lua_pop(L, 1);
  return v;
}

/*
** open(url, opts?, create_dir?) -> db | nil, msg, code.  opts: synchronous
** ('normal'|'full'|'group'), busy_timeout, connect_timeout, statement_timeout,
** lock_timeout (seconds).  All checks come before any C state.
*/
static int store_open (lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  ag_store_opts o;
  ag_store_opts_init(&o);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "synchronous") != LUA_TNIL) {
      const char *v = lua_tostring(L, -1);
      if (lua_type(L, -1) != LUA_TSTRING ||
          (strcmp(v, "normal") != 0 && strcmp(v, "full") != 0 && strcmp(v, "group") != 0))
        luaL_error(L, "bad option 'synchronous' (expected 'normal', 'full' or 'group')");
      o.synchronous = strcmp(v, "full") == 0 ? AG_SYNC_FULL
                    : strcmp(v, "group") == 0 ? AG_SYNC_GROUP : AG_SYNC_NORMAL;
    }
    lua_pop(L, 1);
    o.busy_timeout = optseconds(L, 2, "busy_timeout", o.busy_timeout);
    o.connect_timeout = optseconds(L, 2, "connect_timeout", o.connect_timeout);
    o.statement_timeout = optseconds(L, 2, "statement_timeout", o.statement_timeout);
    o.lock_timeout = optseconds(L, 2, "lock_timeout", o.lock_timeout);
  }
  o.create_dir = lua_toboolean(L, 3);
  const char *shown = pushredacted(L, url);  /* [shown] */
  LStore *p = (LStore *)lua_newuserdatauv(L, sizeof *p, 1);  /* [shown, ud] */
  p->s = NULL;  /* closed until the open succeeds: consistent if it raises */
  luaL_setmetatable(L, STORE_DB);
  char err[AG_ERRLEN];
  int rc = ag_store_open(url, &o, &p->s, err);
  if (rc != AG_OK) return agL_pushfail(L, rc, "store: open '%s': %s", shown, err);
  lua_createtable(L, 0, 3);  /* [shown, ud, uv] */
  lua_pushstring(L, ag_store_kind(p->s));
  lua_setfield(L, -2, "kind");
  if (strcmp(ag_store_kind(p->s), "sqlite") == 0) {
    static const char *const modes[] = {"normal", "full", "group"};
    lua_pushstring(L, modes[ag_store_synchronous(p->s)]);  /* the mode in effect */
    lua_setfield(L, -2, "synchronous");
  }
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "url");
  lua_setiuservalue(L, -2, 1);  /* [shown, ud] */
  return 1;
}

/* blob(s) -> a value that binds as BLOB / bytea */
static int store_blob (lua_State *L) {
  luaL_checktype(L, 1, LUA_TSTRING);
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  luaL_setmetatable(L, STORE_BLOB);
  return 1;
}

/* redact(url) -> url with its password replaced by *** */
static int store_redact (lua_State *L) {
  pushredacted(L, luaL_checkstring(L, 1));
  return 1;
}

static int blob_tostring (lua_State *L) {
  lua_rawgeti(L, 1, 1);
  lua_pushfstring(L, STORE_BLOB " (%I bytes)", (LUAI_UACINT)luaL_len(L, -1));
  return 1;
}

/* }====================================================== */


/*
** {======================================================
** Statements
** =======================================================
*/

/* Reads argument `i` as a value to bind; raises on a type that has none. */
static void tovalue (lua_State *L, int i, ag_store_value *v) {
  switch (lua_type(L, i)) {
    case LUA_TNIL: v->type = AG_STORE_NULL; return;
    case LUA_TBOOLEAN:
      v->type = AG_STORE_BOOL;
      v->u.b = lua_toboolean(L, i);
      return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, i)) {
        v->type = AG_STORE_INT;
        v->u.i = (int64_t)lua_tointeger(L, i);
      }
      else {
        v->type = AG_STORE_FLOAT;
        v->u.f = (double)lua_tonumber(L, i);
      }
      return;
    case LUA_TSTRING:
      v->type = AG_STORE_TEXT;
      v->u.s.p = lua_tolstring(L, i, &v->u.s.n);
      return;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, i) == NULL) {
        v->type = AG_STORE_NULL;
        return;
      }
      break;
    case LUA_TTABLE:
      if (lua_getmetatable(L, i)) {  /* [mt] */
        luaL_getmetatable(L, STORE_BLOB);  /* [mt, blobmt] */
        int isblob = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (isblob && lua_rawgeti(L, i, 1) == LUA_TSTRING) {
          v->type = AG_STORE_BLOB;
          v->u.s.p = lua_tolstring(L, -1, &v->u.s.n);  /* the table keeps it */
          lua_pop(L, 1);
          return;
        }
        if (isblob) lua_pop(L, 1);
      }
      break;
  }
  luaL_argerror(L, i, lua_pushfstring(L,
    "cannot bind a %s (nil, boolean, number, string, store.null or store.blob)",
    luaL_typename(L, i)));
}

static void pushvalue (lua_State *L, const ag_store_value *v) {
  switch (v->type) {
    case AG_STORE_INT: lua_pushinteger(L, (lua_Integer)v->u.i); break;
    case AG_STORE_FLOAT: lua_pushnumber(L, (lua_Number)v->u.f); break;
    case AG_STORE_BOOL: lua_pushboolean(L, v->u.b); break;
    case AG_STORE_TEXT: case AG_STORE_BLOB: lua_pushlstring(L, v->u.s.p, v->u.s.n); break;
    default: lua_pushnil(L); break;
  }
}

enum { EXEC, QUERY, FIRST };
static const char *const actions[] = {"exec", "query", "first"};

static int stmtfail (lua_State *L, int rc, int action, const char *sql, const char *err) {
  const char *head = pushhead(L, sql);
  return agL_pushfail(L, rc, "store: %s '%s': %s", actions[action], head, err);
}

/*
** exec/query/first(sql, ...): arguments 3.. are $1..$n.  Rows become
** tables keyed by column name; NULL columns are absent.  If pushing a row
** raises (memory), the statement stays running until the next call on
** this store or its close ends it.
*/
static int run (lua_State *L, int action) {
  ag_store *s = checkopen(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, strlen(sql) == len, 2, "SQL contains a NUL byte");
  int n = lua_gettop(L) - 2;
  ag_store_value stackp[NSTACK], *p = stackp;
  if (n > NSTACK) p = (ag_store_value *)lua_newuserdatauv(L, (size_t)n * sizeof *p, 0);
  for (int i = 0; i < n; i++) tovalue(L, i + 3, &p[i]);
  char err[AG_ERRLEN];
  int rc;
  if (action == EXEC) {
    int64_t changes;
    rc = ag_store_exec(s, sql, len, p, n, &changes, err);
    if (rc) return stmtfail(L, rc, action, sql, err);
    lua_pushinteger(L, (lua_Integer)changes);
    return 1;
  }
  if ((rc = ag_store_query(s, sql, len, p, n, err)) != AG_OK)
    return stmtfail(L, rc, action, sql, err);
  int nc = ag_store_ncolumns(s);
  luaL_checkstack(L, nc + 8, "too many columns");
  int names = lua_gettop(L) + 1;
  for (int i = 0; i < nc; i++) lua_pushstring(L, ag_store_column_name(s, i));
  if (action == QUERY) lua_newtable(L);  /* [names..., rows] */
  lua_Integer k = 0;
  for (;;) {
    int row;
    if ((rc = ag_store_step(s, &row, err)) != AG_OK) return stmtfail(L, rc, action, sql, err);
    if (!row) break;
    lua_createtable(L, 0, nc);  /* [..., row] */
    for (int i = 0; i < nc; i++) {
      ag_store_value v;
      if ((rc = ag_store_column(s, i, &v, err)) != AG_OK) {
        ag_store_reset(s);
        return stmtfail(L, rc, action, sql, err);
      }
      if (v.type == AG_STORE_NULL) continue;
      lua_pushvalue(L, names + i);
      pushvalue(L, &v);
      lua_rawset(L, -3);
    }
    if (action == FIRST) {
      /* no lingering read transaction; a write ended here is synced */
      if ((rc = ag_store_finish(s, err)) != AG_OK) return stmtfail(L, rc, action, sql, err);
      return 1;
    }
    lua_rawseti(L, -2, ++k);  /* rows[k] = row */
  }
  if (action == FIRST) lua_pushnil(L);
  return 1;
}

static int db_exec (lua_State *L) { return run(L, EXEC); }
static int db_query (lua_State *L) { return run(L, QUERY); }
static int db_first (lua_State *L) { return run(L, FIRST); }

/* }====================================================== */


/*
** {======================================================
** Transactions (private: aegis.store's db:tx pairs them under pcall)
** =======================================================
*/

/* _begin(lock_key?) -> level | nil, msg, code */
static int db_begin (lua_State *L) {
  ag_store *s = checkopen(L);
  const char *key = luaL_optstring(L, 2, NULL);
  char err[AG_ERRLEN];
  int level;
  int rc = ag_store_begin(s, key, &level, err);
  if (rc) return agL_pushfail(L, rc, "store: begin '%s': %s", dburl(L), err);
  lua_pushinteger(L, level);
  return 1;
}

static int endtx (lua_State *L, int commit) {
  ag_store *s = checkopen(L);
  lua_Integer level = luaL_checkinteger(L, 2);
  luaL_argcheck(L, level >= 1 && level <= 1000000, 2, "bad transaction level");
  char err[AG_ERRLEN];
  int rc = commit ? ag_store_commit(s, (int)level, err)
                  : ag_store_rollback(s, (int)level, err);
  if (rc) return agL_pushfail(L, rc, "store: %s '%s': %s",
                              commit ? "commit" : "rollback", dburl(L), err);
  lua_pushboolean(L, 1);
  return 1;
}

/* _commit(level) -> true | nil, msg, code (the level is closed either way) */
static int db_commit (lua_State *L) { return endtx(L, 1); }

/* _rollback(level) -> true | nil, msg, code (the level is closed either way) */
static int db_rollback (lua_State *L) { return endtx(L, 0); }

/* _depth() -> open transaction levels */
static int db_depth (lua_State *L) {
  lua_pushinteger(L, ag_store_depth(checkopen(L)));
  return 1;
}

/* }====================================================== */


/*
** {======================================================
** Batches (private: aegis.store's db:batch validates and falls back)
** =======================================================
*/

/* Pushes the rows of the running query as a list; AG_OK or a status with
** `err` filled (the statement is then reset). */
static int pushrows (lua_State *L, ag_store *s, char *err) {
  int nc = ag_store_ncolumns(s), rc;
  luaL_checkstack(L, nc + 8, "too many columns");
  int names = lua_gettop(L) + 1;
  for (int i = 0; i < nc; i++) lua_pushstring(L, ag_store_column_name(s, i));
  lua_newtable(L);  /* [names..., rows] */
  lua_Integer k = 0;
  for (;;) {
    int row;
    if ((rc = ag_store_step(s, &row, err)) != AG_OK) return rc;
    if (!row) break;
    lua_createtable(L, 0, nc);  /* [names..., rows, row] */
    for (int i = 0; i < nc; i++) {
      ag_store_value v;
      if ((rc = ag_store_column(s, i, &v, err)) != AG_OK) {
        ag_store_reset(s);
        return rc;
      }
      if (v.type == AG_STORE_NULL) continue;
      lua_pushvalue(L, names + i);
      pushvalue(L, &v);
      lua_rawset(L, -3);
    }
    lua_rawseti(L, -2, ++k);
  }
  if (nc > 0) {
    lua_replace(L, names);  /* [rows, names...] */
    lua_settop(L, names);   /* [rows] */
  }
  return AG_OK;
}

/*
** _batch(list, lock_key?) -> {rows, ...} | nil, msg, code.  list[i] is
** {sql, v1, ..., n = count?} (values as for exec; `n` counts them when
** some are nil).  PostgreSQL outside a transaction only (AG_EUNSUPPORTED
** otherwise: aegis.store runs the statements in a transaction instead).
** Values are read with raw accesses, so no Lua code runs while the C side
** borrows the strings, which `list` keeps alive.
*/
static int db_batch (lua_State *L) {
  ag_store *s = checkopen(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *key = luaL_optstring(L, 3, NULL);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
  luaL_argcheck(L, n >= 1 && n <= AG_STORE_BATCH_MAX, 2, "1 to 32 statements expected");
  ag_store_item items[AG_STORE_BATCH_MAX];
  int counts[AG_STORE_BATCH_MAX], total = 0;
  for (int i = 0; i < (int)n; i++) {
    luaL_argcheck(L, lua_rawgeti(L, 2, i + 1) == LUA_TTABLE, 2, "statements must be tables");
    int count;
    if (lua_getfield(L, -1, "n") != LUA_TNIL) {
      luaL_argcheck(L, lua_isinteger(L, -1), 2, "field 'n' must be an integer");
      lua_Integer c = lua_tointeger(L, -1);
      luaL_argcheck(L, c >= 0 && c <= 65535, 2, "field 'n' out of range");
      count = (int)c;
    } else
      count = (int)lua_rawlen(L, -2) - 1;
    lua_pop(L, 1);
    luaL_argcheck(L, lua_rawgeti(L, -1, 1) == LUA_TSTRING, 2, "each statement starts with its SQL");
    items[i].sql = lua_tolstring(L, -1, &items[i].len);  /* the item table keeps it */
    luaL_argcheck(L, strlen(items[i].sql) == items[i].len, 2, "SQL contains a NUL byte");
    lua_pop(L, 2);
    counts[i] = count < 0 ? 0 : count;
    total += counts[i];
  }
  ag_store_value *vals = (ag_store_value *)lua_newuserdatauv(
      L, (size_t)(total > 0 ? total : 1) * sizeof *vals, 0);  /* [.., vals] */
  int at = 0;
  for (int i = 0; i < (int)n; i++) {
    lua_rawgeti(L, 2, i + 1);  /* [.., vals, item] */
    items[i].p = vals + at;
    items[i].n = counts[i];
    for (int j = 0; j < counts[i]; j++) {
      lua_rawgeti(L, -1, j + 2);  /* [.., vals, item, v] */
      tovalue(L, lua_gettop(L), &vals[at++]);  /* strings stay in the item */
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  char err[AG_ERRLEN];
  int failed, rc = ag_store_batch(s, items, (int)n, key, &failed, err);
  if (rc) {
    if (failed >= 1 && failed <= n) {
      const char *head = pushhead(L, items[failed - 1].sql);
      return agL_pushfail(L, rc, "store: batch #%d '%s': %s", failed, head, err);
    }
    const char *what = failed == 0 ? "batch begin" : failed > n ? "batch commit" : "batch";
    return agL_pushfail(L, rc, "store: %s '%s': %s", what, dburl(L), err);
  }
  lua_createtable(L, (int)n, 0);  /* [.., vals, out] */
  for (int i = 0; i < (int)n; i++) {
    if ((rc = ag_store_next(s, err)) != AG_OK || (rc = pushrows(L, s, err)) != AG_OK) {
      /* committed: only the rows could not be read */
      const char *head = pushhead(L, items[i].sql);
      return agL_pushfail(L, rc, "store: batch #%d '%s': reading rows: %s", i + 1, head, err);
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* }====================================================== */


/*
** {======================================================
** Handle
** =======================================================
*/

/* __gc and __close: silent and idempotent. */
static int db_gc (lua_State *L) {
  LStore *p = todb(L);
  ag_store_close(p->s);
  p->s = NULL;
  return 0;
}

static int db_close (lua_State *L) {
  checkopen(L);
  db_gc(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int db_tostring (lua_State *L) {
  LStore *p = todb(L);
  if (p->s == NULL) lua_pushliteral(L, STORE_DB " (closed)");
  else lua_pushfstring(L, STORE_DB " (%s)", dburl(L));
  return 1;
}

/* Methods first (upvalue 1), then the user value's fields. */
static int db_index (lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) return 0;
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"blob", store_blob},
  {"open", store_open},
  {"redact", store_redact},
  {NULL, NULL}
};

static const luaL_Reg meth[] = {
  {"_batch", db_batch},
  {"_begin", db_begin},
  {"_commit", db_commit},
  {"_depth", db_depth},
  {"_rollback", db_rollback},
  {"close", db_close},
  {"exec", db_exec},
  {"first", db_first},
  {"query", db_query},
  {NULL, NULL}
};

static const luaL_Reg metameth[] = {
  {"__close", db_gc},
  {"__gc", db_gc},
  {"__tostring", db_tostring},
  {NULL, NULL}
};

AGLIB_API int luaopen_aegis_core_store(lua_State *L);
AGLIB_API int luaopen_aegis_core_store (lua_State *L) {
  luaL_newmetatable(L, STORE_BLOB);  /* [blobmt] */
  lua_pushcfunction(L, blob_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newmetatable(L, STORE_DB);  /* [mt] (sets __name) */
  luaL_setfuncs(L, metameth, 0);
  luaL_newlib(L, meth);  /* [mt, methods] */
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, db_index, 1);  /* [mt, methods, index] */
  lua_setfield(L, -3, "__index");  /* mt.__index = index over methods */
  luaL_newlib(L, funcs);  /* [mt, methods, M] */
  lua_insert(L, -2);
  lua_setfield(L, -2, "Db");  /* M.Db = methods, for aegis.store to extend */
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");  /* the same value as cjson.null */
  lua_pushstring(L, AG_STORE_DEFAULT_URL);
  lua_setfield(L, -2, "DEFAULT_URL");
  lua_remove(L, -2);  /* [M] */
  return 1;
}

/* }====================================================== */
