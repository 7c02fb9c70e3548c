/*
** last.c: aegis.core.ast, tree-sitter for TypeScript and TSX: parse with a
** budget, trees and nodes, queries with their predicates evaluated here
** (tree-sitter 0.20 leaves them to the caller), and the binding of the
** semantic diff (ag_astdiff).  The documented API is lua/aegis/ast.lua.
**
** Ownership: a Tree owns its TSTree and pins its source string (user value
** 1; tree-sitter copies nothing of it, node text is read from it).  A Node
** pins its Tree (user value 1), so the TSTree outlives every node; a closed
** tree makes its nodes raise "attempt to use a closed tree".  A Query owns
** its TSQuery, a TSQueryCursor reused by every call (so no scratch memory is
** held across a call that can raise), compiled regexes and a text buffer.
*/
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tree_sitter/api.h>

#include "ag_astdiff.h"
#include "ag_langtab.h"
#include "ag_tslex.h"
#include "ag_scope.h"
#include "ag_tsmem.h"
#include "lauxag.h"

#define AST_TREE "aegis.ast.Tree"
#define AST_NODE "aegis.ast.Node"
#define AST_QUERY "aegis.ast.Query"

const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);

static const char *const LANGS[] = {"ts", "tsx", NULL};

static const TSLanguage *language (int tsx) {
  return tsx ? tree_sitter_tsx() : tree_sitter_typescript();
}

/*
** Field names to ids.  ts_node_child_by_field_name compares the name with
** every field name of the grammar in turn (about 2,000 instructions in the
** TypeScript grammars, more than the child lookup itself); rules ask for
** fields by the thousand per file.  Per language, once (any thread): an
** open-addressing table from a hash of the name to its id.
*/
#define FIELD_SLOTS 512                          /* a power of 2, > 2 x the fields */
typedef struct fieldmap { TSFieldId id[FIELD_SLOTS]; int ok; } fieldmap;
static fieldmap FIELDS[2];
static pthread_once_t FIELDS_ONCE[2] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

static uint32_t field_hash (const char *s, size_t len) {
  uint32_t h = 2166136261u;                      /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h & (FIELD_SLOTS - 1);
}

static void fields_build (int tsx) {
  const TSLanguage *lang = language(tsx);
  uint32_t nf = ts_language_field_count(lang);
  if (2 * nf >= FIELD_SLOTS) return;             /* ok stays 0: the grammar's own lookup */
  for (uint32_t i = 1; i <= nf; i++) {
    const char *nm = ts_language_field_name_for_id(lang, (TSFieldId)i);
    if (nm == NULL) continue;
    uint32_t h = field_hash(nm, strlen(nm));
    while (FIELDS[tsx].id[h] != 0) h = (h + 1) & (FIELD_SLOTS - 1);
    FIELDS[tsx].id[h] = (TSFieldId)i;
  }
  FIELDS[tsx].ok = 1;
}
static void fields_build_ts (void) { fields_build(0); }
static void fields_build_tsx (void) { fields_build(1); }

/* The id of field `f` (len bytes) in the language, 0 for none. */
static TSFieldId field_id (int tsx, const char *f, size_t len) {
  pthread_once(&FIELDS_ONCE[tsx], tsx ? fields_build_tsx : fields_build_ts);
  const TSLanguage *lang = language(tsx);
  if (!FIELDS[tsx].ok) return ts_language_field_id_for_name(lang, f, (uint32_t)len);
  for (uint32_t h = field_hash(f, len);; h = (h + 1) & (FIELD_SLOTS - 1)) {
    TSFieldId id = FIELDS[tsx].id[h];
    if (id == 0) return 0;
    const char *nm = ts_language_field_name_for_id(lang, id);
    if (strlen(nm) == len && memcmp(nm, f, len) == 0) return id;   /* f may hold a NUL */
  }
}

/* ---------------------------------------------------------------- trees */

/* t == NULL means closed.  src/len borrow the pinned source string. */
/* sc: the scope analysis, built on first tree:scope() and freed with the
** tree; the Lua table made from it is cached in user value 2. */
/* lines: byte offsets where lines start (lines[0] = 0), nlines of them,
** made on first tree:position() and freed with the tree. */
/* pm, pcost: node:parent()'s map (below), made once the parents asked for
** cost more than walking the tree; pcost is what they cost until then. */
struct pmap;
typedef struct LTree {
  TSTree *t; const char *src; size_t len; int tsx; ag_scope *sc;
  uint32_t *lines; uint32_t nlines;
  struct pmap *pm; uint64_t pcost;
  TSTreeCursor cc; TSNode ccp; uint32_t cci; int ccnamed, ccok;  /* child_at's cursor (below) */
  lua_Integer ms;   /* the parse's time budget, also that of each cursor query on the tree */
} LTree;
typedef struct LNode { TSNode n; } LNode;

/* Nodes are made and checked by the ten thousand per file, and
** luaL_setmetatable / luaL_checkudata find the metatable by its name (a
** string looked up in the registry each time).  Instead a tree keeps the
** node metatable in its user value 3 (pushnode reads it there), and the node
** methods are closures over it (upvalue 1) with the address of NODE_MT as
** upvalue 2, the mark that upvalue 1 is the node metatable. */
static const char NODE_MT = 0;

static LTree *totree (lua_State *L, int idx) {
  return (LTree *)luaL_checkudata(L, idx, AST_TREE);
}

static LTree *checktree (lua_State *L, int idx) {
  LTree *p = totree(L, idx);
  if (p->t == NULL) luaL_error(L, "attempt to use a closed tree");
  return p;
}

/* Pushes a node of the tree at absolute index `treeidx`, or nil. */
static void pushnode (lua_State *L, TSNode n, int treeidx) {
  if (ts_node_is_null(n)) { lua_pushnil(L); return; }
  LNode *p = (LNode *)lua_newuserdatauv(L, sizeof *p, 1);  /* [node] */
  p->n = n;
  lua_getiuservalue(L, treeidx, 3);                         /* [node, mt] */
  lua_setmetatable(L, -2);                                  /* [node] */
  lua_pushvalue(L, treeidx);                                /* [node, tree] */
  lua_setiuservalue(L, -2, 1);                              /* [node] */
}

/* The node userdata at `idx`, else raises as luaL_checkudata does.  The
** stack is as it was.  In a node method (marked by upvalue 2, see NODE_MT)
** the metatable is compared with upvalue 1; anywhere else by name. */
static LNode *tonode (lua_State *L, int idx) {
  LNode *p = (LNode *)lua_touserdata(L, idx);
  if (p != NULL && lua_touserdata(L, lua_upvalueindex(2)) == (void *)&NODE_MT &&
      lua_getmetatable(L, idx)) {                            /* [mt] */
    int ok = lua_topointer(L, -1) == lua_topointer(L, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (ok) return p;
  }
  return (LNode *)luaL_checkudata(L, idx, AST_NODE);        /* raises */
}

/* The node at `idx`; pushes its tree (so the stack grows by one) and sets
** *tp.  Raises when the tree was closed. */
static TSNode checknode_at (lua_State *L, LNode *p, int idx, LTree **tp) {
  lua_getiuservalue(L, idx, 1);
  LTree *t = (LTree *)lua_touserdata(L, -1);
  if (t == NULL || t->t == NULL) luaL_error(L, "attempt to use a closed tree");
  if (tp) *tp = t;
  return p->n;
}

static TSNode checknode (lua_State *L, int idx, LTree **tp) {
  return checknode_at(L, tonode(L, idx), idx, tp);
}

/* checknode where a tree is at treeidx: the metatable is compared with
** the tree's node metatable (its user value 3), else as tonode. */
static TSNode checknode_by (lua_State *L, int idx, int treeidx, LTree **tp) {
  LNode *p = (LNode *)lua_touserdata(L, idx);
  if (p != NULL && lua_getmetatable(L, idx)) {                /* [mt] */
    lua_getiuservalue(L, treeidx, 3);                         /* [mt, node mt] */
    int ok = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (ok) return checknode_at(L, p, idx, tp);
  }
  return checknode(L, idx, tp);
}

static void pushtext (lua_State *L, const LTree *t, TSNode n) {
  uint32_t s = ts_node_start_byte(n), e = ts_node_end_byte(n);
  if (e > t->len) e = (uint32_t)t->len;
  if (s > e) s = e;
  lua_pushlstring(L, t->src + s, e - s);
}

/* tree-sitter's memory: ag_tsmem (process-wide, installed by luaopen)
** counts the bytes tree-sitter holds, and ag_tsmem_parse holds a parse to
** its memory budget (ag_tsmem.h). */

/* One parser per language for the process (one thread): a parser keeps
** its stack, its subtree pool and its arrays between parses, so reusing it
** spares their allocation on every file.  A parse that did not finish
** (timeout, memory budget) leaves the parser holding its half-built state
** to resume; the parser is deleted then, which also gives back whatever a
** hostile input made it hold, and the next parse makes a new one.  A
** finished parse resets the parser itself (ts_parser_parse's exit). */
static TSParser *parsers[2];

static TSParser *get_parser (int tsx) {
  TSParser *p = parsers[tsx];
  if (p != NULL) {
    ts_parser_reset(p);   /* no-op after a finished parse; keeps us safe otherwise */
    return p;
  }
  p = ts_parser_new();
  ag_tslex_install(p);
  if (p != NULL && !ts_parser_set_language(p, ag_langtab_dense(language(tsx)))) {
    ts_parser_delete(p);
    p = NULL;
  }
  parsers[tsx] = p;
  return p;
}

static void drop_parser (int tsx) {
  ts_parser_delete(parsers[tsx]);
  parsers[tsx] = NULL;
}

/* __gc of a sentinel the module leaves in the registry: the parsers go
** when the state closes (a second state makes new ones on its next parse) */
static int parsers_gc (lua_State *L) {
  (void)L;
  drop_parser(0);
  drop_parser(1);
  return 0;
}

/* memory() -> bytes tree-sitter holds now, the most it held at once since
** the last call (which resets it to now) */
static int ast_memory (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)ag_tsmem_held());
  lua_pushinteger(L, (lua_Integer)ag_tsmem_peak());
  return 2;
}

/* tsmem() -> {mode = 'pool'|'malloc', mapped =, used =, idle =, cold =,
** tables = 'dense'|'compact', lexer = 'quick'|'stock'}: ag_tsmem's figures
** in bytes (ag_tsmem.h), the parse tables the parser uses (ag_langtab.h)
** and its lexer's step (ag_tslex.h), for specs and benchmarks */
static int ast_tsmem (lua_State *L) {
  ag_tsmem_stats st;
  ag_tsmem_stats_get(&st);
  lua_createtable(L, 0, 7);
  lua_pushstring(L, ag_tsmem_mode());
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st.mapped);
  lua_setfield(L, -2, "mapped");
  lua_pushinteger(L, (lua_Integer)st.used);
  lua_setfield(L, -2, "used");
  lua_pushinteger(L, (lua_Integer)st.idle);
  lua_setfield(L, -2, "idle");
  lua_pushinteger(L, (lua_Integer)st.cold);
  lua_setfield(L, -2, "cold");
  lua_pushstring(L, ag_langtab_dense(language(0)) != language(0) ? "dense" : "compact");
  lua_setfield(L, -2, "tables");
  lua_pushstring(L, ag_tslex_mode());
  lua_setfield(L, -2, "lexer");
  return 1;
}

/* parse(src, lang, timeout_ms, max_bytes, name, max_memory) -> tree | nil, msg, code
** max_memory: bytes tree-sitter may hold on top of what it held before the
** parse (0: no cap). */
static int ast_parse (lua_State *L) {
  size_t len;
  const char *src = luaL_checklstring(L, 1, &len);
  int tsx = luaL_checkoption(L, 2, "ts", LANGS);
  lua_Integer ms = luaL_optinteger(L, 3, 0);
  lua_Integer cap = luaL_optinteger(L, 4, 0);
  const char *name = luaL_optstring(L, 5, "<string>");
  lua_Integer mem = luaL_optinteger(L, 6, 0);
  luaL_argcheck(L, ms >= 0, 3, "timeout must be non-negative");
  luaL_argcheck(L, cap >= 0, 4, "size limit must be non-negative");
  luaL_argcheck(L, mem >= 0, 6, "memory limit must be non-negative");
  if ((cap > 0 && (lua_Unsigned)len > (lua_Unsigned)cap) || len > UINT32_MAX - 1) {
    luaL_pushfail(L);
    lua_pushfstring(L, "ast: parse '%s': too large (%I bytes, limit %I)", name,
                    (lua_Integer)len, cap > 0 ? cap : (lua_Integer)UINT32_MAX - 1);
    lua_pushliteral(L, "too_large");
    return 3;
  }
  LTree *p = (LTree *)lua_newuserdatauv(L, sizeof *p, 3);   /* [.., tree] */
  p->t = NULL;
  p->sc = NULL;
  p->lines = NULL;
  p->nlines = 0;
  p->pm = NULL;
  p->pcost = 0;
  p->ccok = 0;
  p->ms = ms;
  p->src = src;
  p->len = len;
  p->tsx = tsx;
  luaL_setmetatable(L, AST_TREE);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);                               /* pins src */
  luaL_getmetatable(L, AST_NODE);
  lua_setiuservalue(L, -2, 3);                               /* for pushnode */
  TSParser *parser = get_parser(tsx);
  if (parser == NULL)
    return agL_pushfail(L, AG_ENOMEM, "ast: parse '%s': cannot create a parser", name);
  ts_parser_set_timeout_micros(parser, (uint64_t)ms * 1000u);
  int why;
  p->t = ag_tsmem_parse(parser, src, (uint32_t)len, (size_t)mem, &why);
  if (why == AG_TSMEM_REFUSED)
    return agL_pushfail(L, AG_ENOMEM, "ast: parse '%s': %d earlier parses were stopped over their memory budget;"
                        " no more parses in this process", name, AG_TSMEM_STOPS_MAX);
  if (why == AG_TSMEM_STOPPED) parsers[tsx] = NULL;   /* taken: never touched again */
  else if (p->t == NULL) drop_parser(tsx);
  int over = why == AG_TSMEM_STOPPED || why == AG_TSMEM_OVER;
  if (p->t == NULL && over) {
    char mib[32];
    snprintf(mib, sizeof mib, "%.4g", (double)mem / (1024.0 * 1024.0));
    luaL_pushfail(L);
    lua_pushfstring(L, "ast: parse '%s': memory budget exceeded (%s MiB)", name, mib);
    lua_pushliteral(L, "memory");
    return 3;
  }
  if (p->t == NULL)
    return agL_pushfail(L, AG_ETIMEOUT, "ast: parse '%s': timeout (%d ms)", name,
                        (int)(ms < 2000000000 ? ms : 2000000000));
  return 1;
}

/*
** Parents.  ts_node_parent walks down from the root, scanning the children
** of each ancestor for the one holding the node: cheap on real code, but
** quadratic when rules ask for the parents of the 100,000 children of one
** ERROR node, or of each level of 16,000 nested JSX elements.  So parents
** are looked up that way while their cost stays low: each lookup adds the
** child counts of the ancestors it scanned to the tree's pcost, and once
** pcost passes the source length (a walk of the tree visits fewer nodes
** than it has bytes), one cursor walk records every node's parent in a
** hash map by node id, and lookups read it.  The total is then linear in
** the tree whatever the rules ask.  Without memory for the map, lookups
** keep the slow way.
*/
/* id -> index of its parent in par (the nodes with children, in the order
** the walk entered them): 16 bytes a node, and 32 per node with children */
typedef struct pent { const void *id; uint32_t p; } pent;
typedef struct pmap { pent *e; size_t cap; TSNode *par; size_t npar, parcap; } pmap;   /* cap: a power of 2 */

static void pmap_free (pmap *m) {
  if (m == NULL) return;
  free(m->e);
  free(m->par);
  free(m);
}

static size_t pmap_slot (const pmap *m, const void *id) {
  uint64_t h = (uint64_t)(uintptr_t)id * 0x9E3779B97F4A7C15u;
  size_t i = (size_t)(h >> 17) & (m->cap - 1);
  while (m->e[i].id != NULL && m->e[i].id != id) i = (i + 1) & (m->cap - 1);
  return i;
}

/* The parent of every node under root (the root has none), or NULL
** without memory.  Sized once from the tree's count of visible nodes (load
** at most 7/8: linear probing stays short); the stack holds the par index
** of each ancestor of the cursor's node. */
static pmap *pmap_build (TSNode root) {
  size_t n = ts_node_descendant_count(root), cap = 1024;
  while (cap - cap / 8 < n + 1) cap *= 2;
  pmap *m = (pmap *)calloc(1, sizeof *m);
  size_t depth = 0, scap = 64;
  uint32_t *st = (uint32_t *)malloc(scap * sizeof *st);
  int ok = m != NULL && st != NULL && (m->e = (pent *)calloc(cap, sizeof *m->e)) != NULL;
  if (ok) m->cap = cap;
  TSTreeCursor c = ts_tree_cursor_new(root);
  while (ok) {
    TSNode x = ts_tree_cursor_current_node(&c);
    if (depth > 0) {
      pent *e = &m->e[pmap_slot(m, x.id)];
      e->id = x.id;
      e->p = st[depth - 1];
    }
    if (ts_tree_cursor_goto_first_child(&c)) {
      if (depth == scap) {
        uint32_t *g = (uint32_t *)realloc(st, 2 * scap * sizeof *st);
        if (g == NULL) { ok = 0; break; }
        st = g;
        scap *= 2;
      }
      if (m->npar == m->parcap) {
        size_t pc = m->parcap ? 2 * m->parcap : 1024;
        TSNode *g = (TSNode *)realloc(m->par, pc * sizeof *g);
        if (g == NULL) { ok = 0; break; }
        m->par = g;
        m->parcap = pc;
      }
      m->par[m->npar] = x;
      st[depth++] = (uint32_t)m->npar++;
      continue;
    }
    while (!ts_tree_cursor_goto_next_sibling(&c)) {
      if (depth == 0 || !ts_tree_cursor_goto_parent(&c)) goto done;
      depth--;
    }
  }
done:
  ts_tree_cursor_delete(&c);
  free(st);
  if (!ok) { pmap_free(m); return NULL; }
  return m;
}

/* The parent of n (a null node for the root), as ts_node_parent. */
static TSNode tree_parent (LTree *t, TSNode n) {
  if (t->pm != NULL) {
    const pent *e = &t->pm->e[pmap_slot(t->pm, n.id)];
    if (e->id != n.id) return ts_node_parent(n);   /* not a node of the walk: never */
    return t->pm->par[e->p];
  }
  TSNode node = ts_tree_root_node(t->t), next;
  if (node.id == n.id) return ts_node_parent(n);   /* null */
  uint64_t cost = 0;
  for (;;) {                                   /* ts_node_parent, counting */
    cost += ts_node_child_count(node) + 1;
    next = ts_node_child_with_descendant(node, n);
    if (ts_node_is_null(next) || next.id == n.id) break;
    node = next;
  }
  if (t->pcost == UINT64_MAX) return node;    /* the map failed once: no retry */
  t->pcost += cost;
  if (t->pcost > (uint64_t)t->len + 4096) {
    t->pm = pmap_build(ts_tree_root_node(t->t));
    if (t->pm == NULL) t->pcost = UINT64_MAX;
  }
  return node;
}

static int tree_gc (lua_State *L) {
  LTree *p = totree(L, 1);
  if (p->t != NULL) ts_tree_delete(p->t);
  p->t = NULL;
  ag_scope_free(p->sc);
  p->sc = NULL;
  free(p->lines);
  p->lines = NULL;
  p->nlines = 0;
  pmap_free(p->pm);
  p->pm = NULL;
  p->pcost = 0;
  if (p->ccok) ts_tree_cursor_delete(&p->cc);
  p->ccok = 0;
  return 0;
}

static int tree_close (lua_State *L) {
  tree_gc(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int tree_tostring (lua_State *L) {
  LTree *p = totree(L, 1);
  if (p->t == NULL) lua_pushliteral(L, "aegis.ast.Tree (closed)");
  else lua_pushfstring(L, "aegis.ast.Tree (%s, %I bytes)", LANGS[p->tsx], (lua_Integer)p->len);
  return 1;
}

static int tree_root (lua_State *L) {
  LTree *t = checktree(L, 1);
  pushnode(L, ts_tree_root_node(t->t), 1);
  return 1;
}

static int tree_lang (lua_State *L) {
  lua_pushstring(L, LANGS[checktree(L, 1)->tsx]);
  return 1;
}

/* tree:position(byte) -> line, col: 1-based line and column (in bytes) of a
** 0-based byte offset of the source (at most its length).  The line index
** is made once per tree (memchr over the source). */
static int tree_position (lua_State *L) {
  LTree *t = checktree(L, 1);
  lua_Integer b = luaL_checkinteger(L, 2);
  luaL_argcheck(L, b >= 0 && (lua_Unsigned)b <= (lua_Unsigned)t->len, 2, "byte offset out of range");
  if (t->lines == NULL) {
    uint32_t n = 1;
    const char *p = t->src, *e = t->src + t->len;
    while (p < e && (p = (const char *)memchr(p, '\n', (size_t)(e - p))) != NULL) { n++; p++; }
    uint32_t *v = (uint32_t *)malloc((size_t)n * sizeof *v);
    if (v == NULL) return luaL_error(L, "ast: position: out of memory");
    v[0] = 0;
    n = 1;
    p = t->src;
    while (p < e && (p = (const char *)memchr(p, '\n', (size_t)(e - p))) != NULL) {
      p++;
      v[n++] = (uint32_t)(p - t->src);
    }
    t->lines = v;
    t->nlines = n;
  }
  uint32_t lo = 0, hi = t->nlines - 1, x = (uint32_t)b;   /* the last line start <= x */
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (t->lines[mid] <= x) lo = mid; else hi = mid - 1;
  }
  lua_pushinteger(L, (lua_Integer)lo + 1);
  lua_pushinteger(L, (lua_Integer)(x - t->lines[lo]) + 1);
  return 2;
}

static int tree_source (lua_State *L) {
  checktree(L, 1);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

/* tree:text(node) -> string */
static int tree_text (lua_State *L) {
  LTree *t = checktree(L, 1), *nt;
  TSNode n = checknode(L, 2, &nt);
  luaL_argcheck(L, nt == t, 2, "node of another tree");
  pushtext(L, t, n);
  return 1;
}

static int is_error (TSNode n) {
  return strcmp(ts_node_type(n), "ERROR") == 0;
}

/* Pushes {kind, message, line, col, end_line, end_col, start_byte,
** end_byte, node}; lines and columns 1-based, columns in bytes. */
static void pushdiag (lua_State *L, TSNode n, int missing, int treeidx) {
  TSPoint a = ts_node_start_point(n), b = ts_node_end_point(n);
  lua_createtable(L, 0, 9);
  lua_pushstring(L, missing ? "missing" : "error");
  lua_setfield(L, -2, "kind");
  if (missing) lua_pushfstring(L, "missing '%s'", ts_node_type(n));
  else lua_pushliteral(L, "syntax error");
  lua_setfield(L, -2, "message");
  lua_pushinteger(L, (lua_Integer)a.row + 1); lua_setfield(L, -2, "line");
  lua_pushinteger(L, (lua_Integer)a.column + 1); lua_setfield(L, -2, "col");
  lua_pushinteger(L, (lua_Integer)b.row + 1); lua_setfield(L, -2, "end_line");
  lua_pushinteger(L, (lua_Integer)b.column + 1); lua_setfield(L, -2, "end_col");
  lua_pushinteger(L, ts_node_start_byte(n)); lua_setfield(L, -2, "start_byte");
  lua_pushinteger(L, ts_node_end_byte(n)); lua_setfield(L, -2, "end_byte");
  pushnode(L, n, treeidx);
  lua_setfield(L, -2, "node");
}

/* Walks the subtrees that contain errors with a cursor (node siblings and
** parents are unreliable around zero-width MISSING nodes in 0.20); stores
** up to `cap` ERROR/MISSING nodes in out and returns how many there are. */
static size_t collect_errors (TSNode root, TSNode *out, size_t cap) {
  size_t k = 0;
  TSTreeCursor c = ts_tree_cursor_new(root);
  for (;;) {
    TSNode n = ts_tree_cursor_current_node(&c);
    int down = 0;
    if (ts_node_is_missing(n) || is_error(n)) {
      if (k < cap) out[k] = n;
      k++;
    }
    else if (ts_node_has_error(n)) down = ts_tree_cursor_goto_first_child(&c);
    if (down) continue;
    while (!ts_tree_cursor_goto_next_sibling(&c)) {
      if (!ts_tree_cursor_goto_parent(&c)) { ts_tree_cursor_delete(&c); return k; }
    }
  }
}

/* tree:errors([max]) -> {diag...} in source order, total.  At most max
** diagnostics (a flood of errors in a hostile file must not cost a table
** each); total counts them all.  Two walks: count, then fill a userdata
** array, so no C memory is held while Lua may raise. */
static int tree_errors (lua_State *L) {
  LTree *t = checktree(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, LUA_MAXINTEGER);
  luaL_argcheck(L, max >= 0, 2, "max must not be negative");
  TSNode root = ts_tree_root_node(t->t);
  lua_newtable(L);
  if (!ts_node_has_error(root)) { lua_pushinteger(L, 0); return 2; }
  size_t total = collect_errors(root, NULL, 0);
  size_t n = (lua_Unsigned)max < total ? (size_t)max : total;
  TSNode *v = (TSNode *)lua_newuserdatauv(L, (n ? n : 1) * sizeof *v, 0);  /* [res, box] */
  collect_errors(root, v, n);
  for (size_t i = 0; i < n; i++) {
    luaL_checkstack(L, 4, NULL);
    pushdiag(L, v[i], ts_node_is_missing(v[i]), 1);
    lua_rawseti(L, -3, (lua_Integer)i + 1);
  }
  lua_pop(L, 1);
  lua_pushinteger(L, (lua_Integer)total);
  return 2;
}

/* ---------------------------------------------------------------- nodes */

static int node_type (lua_State *L) {
  TSNode n = checknode(L, 1, NULL);
  lua_pushstring(L, ts_node_type(n));
  return 1;
}

static int node_text (lua_State *L) {
  LTree *t;
  TSNode n = checknode(L, 1, &t);
  pushtext(L, t, n);
  return 1;
}

/* range() -> {start_byte, end_byte, start_row, start_col, end_row, end_col}
** bytes 0-based with end exclusive, rows and columns 0-based (tree-sitter's). */
static int node_range (lua_State *L) {
  TSNode n = checknode(L, 1, NULL);
  TSPoint a = ts_node_start_point(n), b = ts_node_end_point(n);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, ts_node_start_byte(n)); lua_setfield(L, -2, "start_byte");
  lua_pushinteger(L, ts_node_end_byte(n)); lua_setfield(L, -2, "end_byte");
  lua_pushinteger(L, a.row); lua_setfield(L, -2, "start_row");
  lua_pushinteger(L, a.column); lua_setfield(L, -2, "start_col");
  lua_pushinteger(L, b.row); lua_setfield(L, -2, "end_row");
  lua_pushinteger(L, b.column); lua_setfield(L, -2, "end_col");
  return 1;
}

/* byte_range() -> start_byte, end_byte: range()'s bytes without a table
** (rules ask for offsets by the thousand per file). */
static int node_byte_range (lua_State *L) {
  TSNode n = checknode(L, 1, NULL);
  lua_pushinteger(L, ts_node_start_byte(n));
  lua_pushinteger(L, ts_node_end_byte(n));
  return 2;
}

/* children() / named_children(): one cursor walk over the children into a
** userdata array, then the nodes (ts_node_child(n, i) costs O(i), so a loop
** over i is quadratic on a wide node: an ERROR node of 100,000 children).
** The cursor lives only while nothing can raise. */
static int children (lua_State *L, int named) {
  TSNode n = checknode(L, 1, NULL);
  int treeidx = lua_gettop(L);
  uint32_t c = named ? ts_node_named_child_count(n) : ts_node_child_count(n);
  lua_createtable(L, (int)(c < 1000000 ? c : 0), 0);          /* [.., list] */
  if (c == 0) return 1;
  TSNode *v = (TSNode *)lua_newuserdatauv(L, (size_t)c * sizeof *v, 0);  /* [.., list, box] */
  uint32_t k = 0;
  TSTreeCursor cur = ts_tree_cursor_new(n);
  if (ts_tree_cursor_goto_first_child(&cur)) {
    do {
      TSNode x = ts_tree_cursor_current_node(&cur);
      if (!named || ts_node_is_named(x)) v[k++] = x;
    } while (k < c && ts_tree_cursor_goto_next_sibling(&cur));
  }
  ts_tree_cursor_delete(&cur);
  for (uint32_t i = 0; i < k; i++) {
    pushnode(L, v[i], treeidx);
    lua_rawseti(L, -3, (lua_Integer)i + 1);
  }
  lua_pop(L, 1);                                               /* [.., list] */
  return 1;
}
static int node_children (lua_State *L) { return children(L, 0); }
static int node_named_children (lua_State *L) { return children(L, 1); }

static int node_child_count (lua_State *L) {
  lua_pushinteger(L, ts_node_child_count(checknode(L, 1, NULL)));
  return 1;
}
static int node_named_child_count (lua_State *L) {
  lua_pushinteger(L, ts_node_named_child_count(checknode(L, 1, NULL)));
  return 1;
}

/* Child i (0-based; of the named children when `named`) of n, which has
** more than i.  ts_node_child(n, i) costs O(i), so a loop over i is
** quadratic on a wide node: past the first few, the tree keeps a cursor on
** the last child asked for, and the next index of the same node is a step
** or a few from it (a loop forward is linear; going back starts over). */
static TSNode child_cached (LTree *t, TSNode n, uint32_t i, int named) {
  if (i < 16) return named ? ts_node_named_child(n, i) : ts_node_child(n, i);
  if (!t->ccok || !ts_node_eq(t->ccp, n) || t->ccnamed != named || t->cci > i) {
    if (t->ccok) ts_tree_cursor_reset(&t->cc, n);
    else t->cc = ts_tree_cursor_new(n);
    t->ccok = 1;
    t->ccp = n;
    t->ccnamed = named;
    t->cci = 0;
    int ok = ts_tree_cursor_goto_first_child(&t->cc);
    while (ok && named && !ts_node_is_named(ts_tree_cursor_current_node(&t->cc)))
      ok = ts_tree_cursor_goto_next_sibling(&t->cc);
    if (!ok) { t->ccok = 0; ts_tree_cursor_delete(&t->cc); return ts_node_child(n, i); }
  }
  while (t->cci < i) {
    if (!ts_tree_cursor_goto_next_sibling(&t->cc)) break;
    if (!named || ts_node_is_named(ts_tree_cursor_current_node(&t->cc))) t->cci++;
  }
  if (t->cci != i) {   /* never: the count said there are more */
    ts_tree_cursor_delete(&t->cc);
    t->ccok = 0;
    return named ? ts_node_named_child(n, i) : ts_node_child(n, i);
  }
  return ts_tree_cursor_current_node(&t->cc);
}

/* child(i) / named_child(i), i 1-based -> node | nil */
static int child_at (lua_State *L, int named) {
  LTree *t;
  TSNode n = checknode(L, 1, &t);
  int treeidx = lua_gettop(L);
  lua_Integer i = luaL_checkinteger(L, 2);
  uint32_t c = named ? ts_node_named_child_count(n) : ts_node_child_count(n);
  if (i < 1 || i > (lua_Integer)c) lua_pushnil(L);
  else pushnode(L, child_cached(t, n, (uint32_t)i - 1, named), treeidx);
  return 1;
}
static int node_child (lua_State *L) { return child_at(L, 0); }
static int node_named_child (lua_State *L) { return child_at(L, 1); }

static int node_child_by_field (lua_State *L) {
  LTree *t;
  TSNode n = checknode(L, 1, &t);
  int treeidx = lua_gettop(L);
  size_t len;
  const char *f = luaL_checklstring(L, 2, &len);
  TSFieldId id = field_id(t->tsx, f, len);
  if (id == 0) lua_pushnil(L);   /* as ts_node_child_by_field_name: no such field, no child */
  else pushnode(L, ts_node_child_by_field_id(n, id), treeidx);
  return 1;
}

/* field_name() -> the field this node fills in its parent, or nil.  Through
** a cursor: ts_node_field_name_for_child is wrong for some children in
** tree-sitter 0.20.  Nothing can raise while the cursor lives. */
static int node_field_name (lua_State *L) {
  LTree *t;
  TSNode n = checknode(L, 1, &t);
  TSNode p = tree_parent(t, n);
  const char *f = NULL;
  if (!ts_node_is_null(p)) {
    TSTreeCursor c = ts_tree_cursor_new(p);
    if (ts_tree_cursor_goto_first_child(&c)) {
      do {
        TSNode k = ts_tree_cursor_current_node(&c);
        if (ts_node_eq(k, n)) { f = ts_tree_cursor_current_field_name(&c); break; }
      } while (ts_tree_cursor_goto_next_sibling(&c));
    }
    ts_tree_cursor_delete(&c);
  }
  if (f != NULL) lua_pushstring(L, f);
  else lua_pushnil(L);
  return 1;
}

#define NODE_NAV(fname, fn) \
  static int fname (lua_State *L) { \
    TSNode n = checknode(L, 1, NULL); \
    pushnode(L, fn(n), lua_gettop(L)); \
    return 1; \
  }
static int node_parent (lua_State *L) {
  LTree *t;
  TSNode n = checknode(L, 1, &t);
  pushnode(L, tree_parent(t, n), lua_gettop(L));
  return 1;
}
NODE_NAV(node_next_sibling, ts_node_next_sibling)
NODE_NAV(node_prev_sibling, ts_node_prev_sibling)
NODE_NAV(node_next_named_sibling, ts_node_next_named_sibling)
NODE_NAV(node_prev_named_sibling, ts_node_prev_named_sibling)

#define NODE_BOOL(fname, expr) \
  static int fname (lua_State *L) { \
    TSNode n = checknode(L, 1, NULL); \
    lua_pushboolean(L, expr); \
    return 1; \
  }
NODE_BOOL(node_is_named, ts_node_is_named(n))
NODE_BOOL(node_has_error, ts_node_has_error(n))
NODE_BOOL(node_is_missing, ts_node_is_missing(n))
NODE_BOOL(node_is_error, is_error(n))

static int node_sexp (lua_State *L) {
  TSNode n = checknode(L, 1, NULL);
  char *s = ts_node_string(n);
  lua_pushstring(L, s);  /* cannot raise short of memory; then s leaks once */
  ag_tsmem_free(s);   /* tree-sitter's allocator made it */
  return 1;
}

static int node_tree (lua_State *L) {
  checknode(L, 1, NULL);
  return 1;
}

static int node_eq (lua_State *L) {
  LNode *a = tonode(L, 1);
  LNode *b = tonode(L, 2);
  lua_pushboolean(L, ts_node_eq(a->n, b->n));
  return 1;
}

static int node_tostring (lua_State *L) {
  LNode *p = (LNode *)luaL_checkudata(L, 1, AST_NODE);
  lua_getiuservalue(L, 1, 1);
  LTree *t = (LTree *)lua_touserdata(L, -1);
  if (t == NULL || t->t == NULL) lua_pushliteral(L, "aegis.ast.Node (closed tree)");
  else {
    TSPoint a = ts_node_start_point(p->n);
    lua_pushfstring(L, "aegis.ast.Node (%s %d:%d)", ts_node_type(p->n),
                    (int)a.row + 1, (int)a.column + 1);
  }
  return 1;
}

/* ---------------------------------------------------------------- scope */

static void setint (lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}


/* The scope table's methods and __index are plain C functions (made once,
** not per file): what they share is in the scope table's metatable, its
** state, at these keys: the tree, the variable cache, the variables'
** metatable, the scope cache and the scopes' metatable (the last four
** made on first use: pushvar, pushscope), and SC_MARK's address at
** SC_MARK, which tells a state from another table.  The variables' and the
** scopes' metatables hold the tree at 1. */
enum { SC_TREE = 1, SC_VCACHE, SC_VMT, SC_SCACHE, SC_SMT, SC_MARK };
static const char SCMARK = 0;

/* The tree at `idx` (a tree userdata or nil), open and analysed. */
static LTree *sctree_at (lua_State *L, int idx) {
  LTree *t = (LTree *)lua_touserdata(L, idx);
  if (t == NULL || t->t == NULL || t->sc == NULL) luaL_error(L, "attempt to use a closed tree");
  return t;
}

/* The tree of the scope table at 1 (a method's self; raises as
** luaL_checktype when it is no table), open and analysed.  Pushes the
** table's state and the tree: *st is the state's index, the tree's *st + 1. */
static LTree *sctree (lua_State *L, int *st) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_getmetatable(L, 1)) lua_pushnil(L);                 /* [.., state] */
  *st = lua_gettop(L);
  if (!lua_istable(L, -1) || lua_rawgeti(L, -1, SC_MARK) != LUA_TLIGHTUSERDATA ||
      lua_touserdata(L, -1) != (void *)&SCMARK)
    luaL_argerror(L, 1, "not a scope table");
  lua_pop(L, 1);
  lua_rawgeti(L, *st, SC_TREE);                                /* [.., state, tree] */
  return sctree_at(L, -1);
}

/* The tree of the variable or scope table at 1 (its metatable's 1: the
** table is made by pushvar or pushscope), open and analysed; pushes it. */
static LTree *elemtree (lua_State *L) {
  if (!lua_getmetatable(L, 1)) lua_pushnil(L);
  if (lua_istable(L, -1)) lua_rawgeti(L, -1, 1);
  else lua_pushnil(L);                                         /* [.., mt, tree] */
  return sctree_at(L, -1);
}

static void setbool (lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

static void pushname (lua_State *L, const ag_scope *sc, uint32_t name) {
  uint32_t n;
  const char *p = ag_scope_name(sc, name, &n);
  lua_pushlstring(L, p, n);
}

/* Pushes {node, read, write, type, typeof, init, self, self_update, scope}. */
static void pushref (lua_State *L, const ag_scope_ref *r, int treeidx) {
  lua_createtable(L, 0, 10);
  pushnode(L, r->node, treeidx);
  lua_setfield(L, -2, "node");
  setbool(L, "read", (r->flags & AG_RF_READ) != 0);
  setbool(L, "write", (r->flags & AG_RF_WRITE) != 0);
  setbool(L, "type", (r->flags & AG_RF_TYPE) != 0);
  setbool(L, "typeof", (r->flags & AG_RF_TYPEOF) != 0);
  setbool(L, "init", (r->flags & AG_RF_INIT) != 0);
  setbool(L, "self", (r->flags & AG_RF_SELF) != 0);
  setbool(L, "self_update", (r->flags & AG_RF_SELF_UPDATE) != 0);
  if (r->flags & AG_RF_PRAGMA) setbool(L, "pragma", 1);
  if (r->flags & AG_RF_PREDICATE) setbool(L, "predicate", 1);
  lua_pushinteger(L, (lua_Integer)r->scope + 1);
  lua_setfield(L, -2, "scope");
}

/* The function context of the node argument of sc:context(fn) and
** sc:context_types(fn) (NULL: not a function of the analysis); *n gets the node. */
static const ag_scope_fnctx *checkfnctx (lua_State *L, TSNode *n, int *treeidx) {
  int st;
  LTree *t = sctree(L, &st), *nt;
  *treeidx = st + 1;
  *n = checknode_by(L, 2, st + 1, &nt);
  luaL_argcheck(L, nt == t, 2, "node of another tree");
  return ag_scope_fn_context(t->sc, *n);
}

/* sc:context(fn) -> parent, from, grand, typed_ancestor, returns_function of a
** function node, or nothing. */
static int sc_context (lua_State *L) {
  TSNode n;
  int treeidx;
  const ag_scope_fnctx *c = checkfnctx(L, &n, &treeidx);
  if (c == NULL) return 0;
  pushnode(L, c->parent, treeidx);
  if (ts_node_eq(c->from, n)) lua_pushvalue(L, 2);   /* no parentheses: fn itself */
  else pushnode(L, c->from, treeidx);
  pushnode(L, c->grand, treeidx);
  lua_pushboolean(L, c->typed_ancestor);
  lua_pushboolean(L, c->returns_function);
  return 5;
}

/* sc:context_types(fn) -> the types of context()'s parent and grand (nil
** for none), typed_ancestor, returns_function, or nothing: no node is made
** (most functions are decided on these alone). */
static int sc_context_types (lua_State *L) {
  TSNode n;
  int treeidx;
  const ag_scope_fnctx *c = checkfnctx(L, &n, &treeidx);
  if (c == NULL) return 0;
  if (ts_node_is_null(c->parent)) lua_pushnil(L);
  else lua_pushstring(L, ts_node_type(c->parent));
  if (ts_node_is_null(c->grand)) lua_pushnil(L);
  else lua_pushstring(L, ts_node_type(c->grand));
  lua_pushboolean(L, c->typed_ancestor);
  lua_pushboolean(L, c->returns_function);
  return 4;
}

static const struct { const char *k; uint32_t f; } VFLAGS[] = {
  {"exported", AG_VF_EXPORTED}, {"has_init", AG_VF_INIT}, {"self", AG_VF_SELF},
  {"param_prop", AG_VF_PARAM_PROP}, {"signature", AG_VF_SIGNATURE}, {"setter", AG_VF_SETTER},
  {"type_import", AG_VF_TYPE_IMPORT}, {"used", AG_VF_USED}, {"direct", AG_VF_DIRECT},
  {"declare", AG_VF_DECLARE}, {"value", AG_VF_VALUE}, {"type", AG_VF_TYPE},
};

/* __index of a variable table: id, decl, statement, refs and the counts,
** made on each use and not kept in the table (a file of 100k variables
** kept ~25 MB more of them while its rules ran: RELIABILITY.md B2).  [t, k] */
static int var_index (lua_State *L) {
  LTree *t = elemtree(L);
  int treeidx = lua_gettop(L);
  const char *k = luaL_checkstring(L, 2);
  lua_getfield(L, 1, "index");
  lua_Integer i = lua_tointeger(L, -1) - 1;
  lua_pop(L, 1);
  uint32_t nv;
  ag_scope_counts(t->sc, NULL, &nv, NULL);
  if (i < 0 || i >= (lua_Integer)nv) return 0;
  const ag_scope_var *v = ag_scope_var_at(t->sc, (uint32_t)i);
  if (strcmp(k, "id") == 0) pushnode(L, v->id, treeidx);
  else if (strcmp(k, "decl") == 0) pushnode(L, v->decl, treeidx);
  else if (strcmp(k, "statement") == 0) pushnode(L, v->stmt, treeidx);
  else if (strcmp(k, "refs") == 0) {
    lua_createtable(L, (int)(v->nrefs < 100000 ? v->nrefs : 0), 0);
    for (uint32_t j = 0; j < v->nrefs; j++) {
      luaL_checkstack(L, 4, NULL);
      pushref(L, ag_scope_var_ref(t->sc, v, j), treeidx);
      lua_rawseti(L, -2, (lua_Integer)j + 1);
    }
  }
  else if (strcmp(k, "nrefs") == 0) { lua_pushinteger(L, v->nrefs); return 1; }
  else if (strcmp(k, "reads") == 0) { lua_pushinteger(L, v->reads); return 1; }
  else if (strcmp(k, "writes") == 0) { lua_pushinteger(L, v->writes); return 1; }
  else if (strcmp(k, "type_reads") == 0) { lua_pushinteger(L, v->type_reads); return 1; }
  else if (strcmp(k, "ndefs") == 0) { lua_pushinteger(L, v->ndefs); return 1; }
  else if (strcmp(k, "self_scope") == 0) {
    if (v->self_scope == AG_SCOPE_NONE) return 0;
    lua_pushinteger(L, (lua_Integer)v->self_scope + 1);
    return 1;
  }
  else {
    for (size_t f = 0; f < sizeof VFLAGS / sizeof *VFLAGS; f++)
      if (strcmp(k, VFLAGS[f].k) == 0) { lua_pushboolean(L, 0); return 1; }
    return 0;
  }
  return 1;
}

/* __index of a scope table: its node, made on first use. [t, k] */
static int scope_index (lua_State *L) {
  LTree *t = elemtree(L);
  int treeidx = lua_gettop(L);
  if (strcmp(luaL_checkstring(L, 2), "node") != 0) return 0;
  lua_getfield(L, 1, "index");
  lua_Integer i = lua_tointeger(L, -1) - 1;
  uint32_t ns;
  ag_scope_counts(t->sc, &ns, NULL, NULL);
  if (i < 0 || i >= (lua_Integer)ns) return 0;
  pushnode(L, ag_scope_scope_at(t->sc, (uint32_t)i)->node, treeidx);
  lua_pushvalue(L, -1);
  lua_setfield(L, 1, "node");
  return 1;
}

/* Pushes the cache at key `cache` of the state at st and leaves the
** metatable at `mt` at the index after it: both made on first use, the
** metatable with __index `index` and the tree at 1. */
static void pushcache (lua_State *L, int st, int cache, int mt, lua_CFunction index) {
  if (lua_rawgeti(L, st, cache) == LUA_TTABLE) return;        /* [.., cache] */
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawseti(L, st, cache);
  lua_createtable(L, 1, 1);                                   /* [.., cache, mt] */
  lua_pushcfunction(L, index);
  lua_setfield(L, -2, "__index");
  lua_rawgeti(L, st, SC_TREE);
  lua_rawseti(L, -2, 1);
  lua_rawseti(L, st, mt);                                     /* [.., cache] */
}

/* Entry i of the cache `which` of the state at st (made with pushcache):
** pushed, and 0 returned, when it is there; else the cache is left on the
** stack and its index returned, for the caller to make the entry. */
static int cached (lua_State *L, int st, int which, int mt, lua_CFunction index, uint32_t i) {
  luaL_checkstack(L, 5, NULL);
  pushcache(L, st, which, mt, index);                         /* [.., cache] */
  int cacheidx = lua_gettop(L);
  if (lua_rawgeti(L, cacheidx, (lua_Integer)i + 1) != LUA_TNIL) {
    lua_remove(L, cacheidx);                                  /* [.., entry] */
    return 0;
  }
  lua_pop(L, 1);
  return cacheidx;
}

/* Pushes variable i's table, made on first use and kept in the variable
** cache of the state at st (its metatable that state's SC_VMT), so
** sc.variables, sc:resolve and sc:filter give the same table for it.  Only
** the variables rules reach are made: a file has thousands. */
static void pushvar (lua_State *L, const LTree *t, uint32_t i, int st) {
  int cacheidx = cached(L, st, SC_VCACHE, SC_VMT, var_index, i);
  if (cacheidx == 0) return;                                  /* [.., var] */
  const ag_scope_var *v = ag_scope_var_at(t->sc, i);
  lua_createtable(L, 0, 8);                                   /* [.., var] */
  lua_pushlstring(L, v->name, v->name_len);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, ag_scope_var_kind_name(v->kind));
  lua_setfield(L, -2, "kind");
  setint(L, "scope", (lua_Integer)v->scope + 1);
  setint(L, "index", (lua_Integer)i + 1);
  /* only true flags are stored; var_index answers false for the others,
  ** and the counts (few rules read them): most tables stay at 8 slots */
  for (size_t f = 0; f < sizeof VFLAGS / sizeof *VFLAGS; f++)
    if (v->flags & VFLAGS[f].f) setbool(L, VFLAGS[f].k, 1);
  lua_rawgeti(L, st, SC_VMT);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawseti(L, cacheidx, (lua_Integer)i + 1);               /* [.., cache, var] */
  lua_remove(L, cacheidx);                                    /* [.., var] */
}

/* Pushes scope i's table, made on first use and kept in the scope cache
** of the state at st (its metatable that state's SC_SMT), so sc.scopes and
** sc:scope give the same table for it. */
static void pushscope (lua_State *L, const LTree *t, uint32_t i, int st) {
  int cacheidx = cached(L, st, SC_SCACHE, SC_SMT, scope_index, i);
  if (cacheidx == 0) return;                                  /* [.., scope] */
  const ag_scope_scope *s = ag_scope_scope_at(t->sc, i);
  lua_createtable(L, 0, 7);                                   /* [.., scope] */
  lua_pushstring(L, ag_scope_kind_name(s->kind));
  lua_setfield(L, -2, "kind");
  if (s->parent != AG_SCOPE_NONE) setint(L, "parent", (lua_Integer)s->parent + 1);
  setint(L, "varscope", (lua_Integer)s->varscope + 1);
  setint(L, "index", (lua_Integer)i + 1);
  setbool(L, "ambient", (s->flags & AG_SF_AMBIENT) != 0);
  setbool(L, "export_list", (s->flags & AG_SF_EXPORT_LIST) != 0);
  lua_rawgeti(L, st, SC_SMT);
  lua_setmetatable(L, -2);                                    /* node made on first use */
  lua_pushvalue(L, -1);
  lua_rawseti(L, cacheidx, (lua_Integer)i + 1);               /* [.., cache, scope] */
  lua_remove(L, cacheidx);                                    /* [.., scope] */
}

/* sc:scope(i) -> scope i's table (that of sc.scopes[i]), or nil out of
** range: a rule that looks at the scopes of a few variables makes only
** theirs (sc.scopes makes one for every scope of the file). */
static int sc_scope (lua_State *L) {
  int st;
  LTree *t = sctree(L, &st);
  lua_Integer i = luaL_checkinteger(L, 2);
  uint32_t ns;
  ag_scope_counts(t->sc, &ns, NULL, NULL);
  if (i < 1 || i > (lua_Integer)ns) return 0;
  pushscope(L, t, (uint32_t)i - 1, st);
  return 1;
}

/* sc:filter{kind =, <flag> = bool, ...} -> the variables (in source order,
** the tables of sc.variables) whose kind and flags are as given: the rules
** that look at a few kinds of variables do not make a table for each. */
static int sc_filter (lua_State *L) {
  int st;
  LTree *t = sctree(L, &st);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *kind = NULL;
  uint32_t set = 0, clear = 0;
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) {                               /* [sc, spec, k, v] */
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (k != NULL && strcmp(k, "kind") == 0) {
      luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "kind must be a string");
      kind = lua_tostring(L, -1);
    }
    else {
      size_t f = 0;
      while (f < sizeof VFLAGS / sizeof *VFLAGS && (k == NULL || strcmp(k, VFLAGS[f].k) != 0)) f++;
      if (f == sizeof VFLAGS / sizeof *VFLAGS)
        return luaL_argerror(L, 2, lua_pushfstring(L, "unknown field '%s'", k ? k : "?"));
      luaL_argcheck(L, lua_type(L, -1) == LUA_TBOOLEAN, 2, "flags must be booleans");
      if (lua_toboolean(L, -1)) set |= VFLAGS[f].f;
      else clear |= VFLAGS[f].f;
    }
    lua_pop(L, 1);
  }
  /* the kind as its number, once (AG_VK_NKINDS: a name no variable has) */
  uint32_t kid = 0;
  if (kind != NULL)
    while (kid < AG_VK_NKINDS && strcmp(ag_scope_var_kind_name(kid), kind) != 0) kid++;
  uint32_t nv;
  ag_scope_counts(t->sc, NULL, &nv, NULL);
  lua_newtable(L);                                            /* [sc, spec, out] */
  lua_Integer n = 0;
  for (uint32_t i = 0; i < nv; i++) {
    const ag_scope_var *v = ag_scope_var_at(t->sc, i);
    if ((v->flags & set) != set || (v->flags & clear) != 0) continue;
    if (kind != NULL && v->kind != kid) continue;
    pushvar(L, t, i, st);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* __index of the scope table: variables, scopes and unresolved on first
** use. [sc, k] */
static int sc_index (lua_State *L) {
  int st;
  LTree *t = sctree(L, &st);
  const char *k = luaL_checkstring(L, 2);
  int treeidx = st + 1;
  uint32_t ns, nr;
  uint32_t nv;
  ag_scope_counts(t->sc, &ns, &nv, &nr);
  if (strcmp(k, "variables") == 0) {
    lua_createtable(L, (int)(nv < 1000000 ? nv : 0), 0);     /* [sc, k, list] */
    for (uint32_t i = 0; i < nv; i++) {
      pushvar(L, t, i, st);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  }
  else if (strcmp(k, "scopes") == 0) {
    lua_createtable(L, (int)(ns < 1000000 ? ns : 0), 0);     /* [sc, k, list] */
    for (uint32_t i = 0; i < ns; i++) {
      pushscope(L, t, i, st);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  }
  else if (strcmp(k, "unresolved") == 0) {
    lua_newtable(L);
    lua_Integer n = 0;
    for (uint32_t i = 0; i < nr; i++) {
      const ag_scope_ref *r = ag_scope_ref_at_index(t->sc, i);
      if (r->var != AG_SCOPE_NONE || (r->flags & AG_RF_PRAGMA)) continue;
      luaL_checkstack(L, 4, NULL);
      pushref(L, r, treeidx);
      pushname(L, t->sc, r->name);
      lua_setfield(L, -2, "name");
      lua_rawseti(L, -2, ++n);
    }
  }
  else return 0;
  lua_pushvalue(L, -1);
  lua_setfield(L, 1, k);
  return 1;
}

/* sc:resolve(node) -> the variable an identifier refers to, or nil. */
static int sc_resolve (lua_State *L) {
  int st;
  LTree *t = sctree(L, &st), *nt;
  TSNode n = checknode_by(L, 2, st + 1, &nt);
  luaL_argcheck(L, nt == t, 2, "node of another tree");
  const ag_scope_ref *r = ag_scope_ref_at(t->sc, ts_node_start_byte(n));
  if (r == NULL || r->var == AG_SCOPE_NONE || ts_node_end_byte(r->node) != ts_node_end_byte(n))
    return 0;
  pushvar(L, t, r->var, st);
  return 1;
}


/* tree:scope() -> the scope table (cached), or nil, msg, 'nomem' */
static int tree_scope (lua_State *L) {
  LTree *t = checktree(L, 1);
  if (lua_getiuservalue(L, 1, 2) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  if (t->sc == NULL) {
    char err[AG_ERRLEN];
    int rc = ag_scope_build(ts_tree_root_node(t->t), t->src, t->len, t->tsx, &t->sc, err);
    if (rc != AG_OK) return agL_pushfail(L, rc, "ast: scope: %s", err);
  }
  static const struct { const char *k; lua_CFunction f; } FN[] = {
    {"resolve", sc_resolve}, {"context", sc_context}, {"context_types", sc_context_types},
    {"filter", sc_filter}, {"scope", sc_scope},
  };
  lua_createtable(L, 0, 5);                                   /* [tree, sc] */
  for (size_t i = 0; i < sizeof FN / sizeof *FN; i++) {
    lua_pushcfunction(L, FN[i].f);
    lua_setfield(L, -2, FN[i].k);
  }
  lua_createtable(L, SC_MARK, 1);                             /* [tree, sc, state] */
  lua_pushcfunction(L, sc_index);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, SC_TREE);
  lua_pushlightuserdata(L, (void *)&SCMARK);
  lua_rawseti(L, -2, SC_MARK);
  lua_setmetatable(L, -2);                                    /* [tree, sc] */
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, 2);                                 /* cache */
  return 1;
}

/* -------------------------------------------------------------- queries */

enum { P_EQ, P_MATCH, P_ANYOF, P_PARENT };

/* One predicate: `cap` compared with a string, another capture, a regex or
** a list of strings (steps[0..nsteps) of the query, valid while it lives). */
/* A #match? regex of a simple form, matched here instead of by regexec:
** optional `^`, then atoms, optional `$`; an atom is a literal ASCII
** character, a bracket of literal letters, digits or `_` (`[oO]`), or a
** group of literal alternatives (`(aegis|eslint)`), none followed by a
** quantifier.  For these POSIX ERE (the C locale, REG_NOSUB) has one
** reading, so the answer is regexec's. */
#define SRE_ATOMS 16
typedef struct sre_atom {
  uint8_t set[32];                /* single characters: a bitset */
  const char *alts;               /* a group: its alternatives, '|'-separated (NULL: a set) */
  uint32_t altslen;
} sre_atom;
typedef struct sre {
  int ok, bol, eol; uint32_t n;
  int must;                       /* a character every match holds (an atom of one), -1: none */
  uint8_t first[32];              /* the characters a match can start with (n > 0) */
  sre_atom a[SRE_ATOMS];
} sre;

typedef struct qpred {
  int kind, neg;
  uint32_t cap;
  int rhs_cap;                    /* 1 when rhs is a capture id (eq only) */
  uint32_t rhs;                   /* capture id, or string value id */
  int re;                         /* index into LQuery.res (match only) */
  const char *lit;                /* match only: the regex when it is a plain ASCII literal */
  uint32_t litlen;
  sre sre;                        /* match only: the regex when it has the simple form */
  const TSQueryPredicateStep *steps;
  uint32_t nsteps;
  uint8_t *parents;               /* has-parent? only: public symbol s is one of the types (parents[s]) */
  uint32_t nparents;              /* the language's symbol count */
  int parent_error;               /* has-parent? only: "ERROR" is one of them */
} qpred;

struct fast;
struct fscratch;
static void fast_free (struct fast *f);
static void fscratch_free (struct fscratch *s);
struct LQuery;
static struct fast *fast_compile (struct LQuery *p, const char *src, size_t len);
static void flat_build (struct LQuery *p, const char *src, size_t len);

typedef struct LQuery {
  TSQuery *q;                     /* NULL means closed */
  TSQueryCursor *cur;
  qpred *preds; uint32_t npreds;
  uint32_t *pstart;               /* pattern i: preds[pstart[i]..pstart[i+1]) */
  regex_t *res;
  int nre;
  char *buf;                      /* NUL-terminated copy of a text for regexec */
  size_t bufcap;
  int tsx;
  struct fast *fast;              /* the fast path (below), NULL: the cursor */
  struct fscratch *fs;            /* its scratch, made on first use */
  uint8_t *simple;                /* when fast is NULL: pattern i is a chain (simple[i]); NULL: none known */
  /* a query compiled flat (flat_build): q is its flat form, which has the
  ** patterns' captures and predicates but not their structure */
  int flat;
  char *src; uint32_t srclen;     /* its source, for whole */
  uint32_t *start;                /* where each pattern starts in src */
  TSQuery *whole;                 /* the query compiled whole, for a cursor (cursor_query) */
} LQuery;

static LQuery *toquery (lua_State *L, int idx) {
  return (LQuery *)luaL_checkudata(L, idx, AST_QUERY);
}

static void query_free (LQuery *p) {
  for (int i = 0; i < p->nre; i++) regfree(&p->res[i]);
  for (uint32_t k = 0; p->preds != NULL && k < p->npreds; k++) free(p->preds[k].parents);
  free(p->res);
  free(p->preds);
  free(p->pstart);
  free(p->buf);
  fast_free(p->fast);
  fscratch_free(p->fs);
  free(p->simple);
  free(p->src);
  free(p->start);
  if (p->whole) ts_query_delete(p->whole);
  p->fast = NULL;
  p->fs = NULL;
  if (p->cur) ts_query_cursor_delete(p->cur);
  if (p->q) ts_query_delete(p->q);
  memset(p, 0, sizeof *p);
}

static int query_gc (lua_State *L) {
  query_free(toquery(L, 1));
  return 0;
}

static int query_close (lua_State *L) {
  query_gc(L);
  lua_pushboolean(L, 1);
  return 1;
}

static LQuery *checkquery (lua_State *L, int idx) {
  LQuery *p = toquery(L, idx);
  if (p->q == NULL) luaL_error(L, "attempt to use a closed query");
  return p;
}

static const char *QERR[] = {"none", "syntax error", "invalid node type",
                             "invalid field", "invalid capture", "structure error",
                             "language error"};

/* Reads the predicates of every pattern into p->preds; on a malformed or
** unknown predicate writes a message to err and returns 0. */
static int sre_meta (char c) {
  return strchr(".[]()*+?{}|^$\\", c) != NULL || (unsigned char)c >= 0x80 || c == '\0';
}

/* Reads regex re (len bytes) into r when it has the simple form (r->ok). */
static void sre_compile (sre *r, const char *re, uint32_t len) {
  memset(r, 0, sizeof *r);
  uint32_t i = 0;
  if (i < len && re[i] == '^') { r->bol = 1; i++; }
  while (i < len) {
    char c = re[i];
    if (c == '$' && i == len - 1) { r->eol = 1; i++; break; }
    if (r->n >= SRE_ATOMS) return;
    sre_atom *a = &r->a[r->n];
    if (c == '[') {
      uint32_t j = i + 1;
      for (; j < len && re[j] != ']'; j++) {
        unsigned char b = (unsigned char)re[j];
        if (!((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '_')) return;
        a->set[b >> 3] |= (uint8_t)(1u << (b & 7));
      }
      if (j >= len || j == i + 1) return;
      i = j + 1;
    }
    else if (c == '(') {
      uint32_t j = i + 1;
      for (; j < len && re[j] != ')'; j++) {
        if (re[j] == '|') {
          if (re[j - 1] == '|' || re[j - 1] == '(') return;     /* an empty alternative */
        }
        else if (sre_meta(re[j])) return;
      }
      if (j >= len || j == i + 1 || re[j - 1] == '|') return;
      a->alts = re + i + 1;
      a->altslen = j - i - 1;
      i = j + 1;
    }
    else if (sre_meta(c)) return;
    else {
      unsigned char b = (unsigned char)c;
      a->set[b >> 3] |= (uint8_t)(1u << (b & 7));
      i++;
    }
    if (i < len && (re[i] == '*' || re[i] == '+' || re[i] == '?' || re[i] == '{')) return;
    r->n++;
  }
  r->ok = i == len;
  r->must = -1;
  for (uint32_t k = 0; k < r->n && r->must < 0; k++) {
    const sre_atom *a = &r->a[k];
    int one = -1, count = 0;
    for (int b = 0; a->alts == NULL && b < 256 && count < 2; b++)
      if (a->set[b >> 3] >> (b & 7) & 1) { one = b; count++; }
    if (count == 1) r->must = one;
  }
  if (r->n > 0 && r->a[0].alts == NULL) memcpy(r->first, r->a[0].set, sizeof r->first);
  else if (r->n > 0) {
    const char *q = r->a[0].alts, *z = q + r->a[0].altslen;
    for (int at = 1; q < z; q++) {
      if (at) r->first[(unsigned char)*q >> 3] |= (uint8_t)(1u << ((unsigned char)*q & 7));
      at = *q == '|';
    }
  }
}

/* Whether atoms k.. of r match at s (text ends at e). */
static int sre_at (const sre *r, uint32_t k, const char *s, const char *e) {
  if (k == r->n) return !r->eol || s == e;
  const sre_atom *a = &r->a[k];
  if (a->alts == NULL) {
    if (s >= e) return 0;
    unsigned char b = (unsigned char)*s;
    return (a->set[b >> 3] >> (b & 7) & 1) && sre_at(r, k + 1, s + 1, e);
  }
  const char *p = a->alts, *z = a->alts + a->altslen;
  for (;;) {
    const char *q = memchr(p, '|', (size_t)(z - p));
    if (q == NULL) q = z;
    size_t l = (size_t)(q - p);
    if ((size_t)(e - s) >= l && memcmp(s, p, l) == 0 && sre_at(r, k + 1, s + l, e)) return 1;
    if (q == z) return 0;
    p = q + 1;
  }
}

/* has-parent?'s node types as a set of the language's symbols (by name:
** a type name may be several symbols, named and anonymous); a name that is
** no symbol of the language is an error, as in a pattern. */
static int parent_set (LQuery *p, qpred *q, const char *pred, uint32_t pattern, char *err, size_t errlen) {
  const TSLanguage *lang = language(p->tsx);
  uint32_t nsym = ts_language_symbol_count(lang);
  q->parents = (uint8_t *)calloc(nsym, 1);
  if (q->parents == NULL) { snprintf(err, errlen, "out of memory"); return 0; }
  q->nparents = nsym;
  for (uint32_t a = 0; a < q->nsteps; a++) {
    uint32_t len;
    const char *want = ts_query_string_value_for_id(p->q, q->steps[a].value_id, &len);
    int found = 0;
    if (len == 5 && memcmp(want, "ERROR", 5) == 0) q->parent_error = found = 1;
    for (uint32_t sym = 1; sym < nsym; sym++) {
      const char *nm = ts_language_symbol_name(lang, (TSSymbol)sym);
      if (nm != NULL && strlen(nm) == len && memcmp(nm, want, len) == 0) {
        q->parents[sym] = 1;    /* the public symbol of a name is one of those of that name */
        found = 1;
      }
    }
    if (!found) {
      snprintf(err, errlen, "'#%s': no node type '%.*s' in pattern %u", pred, (int)(len < 64 ? len : 64), want,
               pattern + 1);
      return 0;
    }
  }
  return 1;
}

static int compile_preds (LQuery *p, char *err, size_t errlen) {
  uint32_t np = ts_query_pattern_count(p->q), total = 0, nsteps;
  for (uint32_t i = 0; i < np; i++) {
    const TSQueryPredicateStep *s = ts_query_predicates_for_pattern(p->q, i, &nsteps);
    for (uint32_t j = 0; j < nsteps; j++) if (s[j].type == TSQueryPredicateStepTypeDone) total++;
  }
  p->pstart = (uint32_t *)calloc((size_t)np + 1, sizeof *p->pstart);
  p->preds = (qpred *)calloc(total ? total : 1, sizeof *p->preds);
  p->npreds = p->preds != NULL ? total : 0;
  p->res = (regex_t *)calloc(total ? total : 1, sizeof *p->res);
  if (!p->pstart || !p->preds || !p->res) { snprintf(err, errlen, "out of memory"); return 0; }
  uint32_t k = 0;
  for (uint32_t i = 0; i < np; i++) {
    p->pstart[i] = k;
    const TSQueryPredicateStep *s = ts_query_predicates_for_pattern(p->q, i, &nsteps);
    uint32_t j = 0;
    while (j < nsteps) {
      uint32_t e = j;
      while (e < nsteps && s[e].type != TSQueryPredicateStepTypeDone) e++;
      uint32_t n = e - j, len;
      if (n == 0 || s[j].type != TSQueryPredicateStepTypeString) {
        snprintf(err, errlen, "malformed predicate in pattern %u", i + 1);
        return 0;
      }
      const char *name = ts_query_string_value_for_id(p->q, s[j].value_id, &len);
      if (len > 0 && name[len - 1] == '!') { j = e + 1; continue; }  /* directives: ignored */
      qpred *q = &p->preds[k];
      memset(q, 0, sizeof *q);
      if (strcmp(name, "eq?") == 0 || strcmp(name, "not-eq?") == 0) q->kind = P_EQ;
      else if (strcmp(name, "match?") == 0 || strcmp(name, "not-match?") == 0) q->kind = P_MATCH;
      else if (strcmp(name, "any-of?") == 0 || strcmp(name, "not-any-of?") == 0) q->kind = P_ANYOF;
      else if (strcmp(name, "has-parent?") == 0 || strcmp(name, "not-has-parent?") == 0) q->kind = P_PARENT;
      else {
        snprintf(err, errlen, "unknown predicate '#%s' in pattern %u", name, i + 1);
        return 0;
      }
      q->neg = strncmp(name, "not-", 4) == 0;
      if (n < 3 || s[j + 1].type != TSQueryPredicateStepTypeCapture ||
          (q->kind != P_ANYOF && q->kind != P_PARENT && n != 3)) {
        snprintf(err, errlen, "'#%s' expects a capture and %s in pattern %u", name,
                 q->kind == P_ANYOF ? "strings" : q->kind == P_PARENT ? "node types" : "one argument", i + 1);
        return 0;
      }
      q->cap = s[j + 1].value_id;
      if (q->kind == P_EQ) {
        q->rhs_cap = s[j + 2].type == TSQueryPredicateStepTypeCapture;
        q->rhs = s[j + 2].value_id;
      }
      else if (q->kind == P_MATCH) {
        if (s[j + 2].type != TSQueryPredicateStepTypeString) {
          snprintf(err, errlen, "'#%s' expects a regex string in pattern %u", name, i + 1);
          return 0;
        }
        const char *re = ts_query_string_value_for_id(p->q, s[j + 2].value_id, &len);
        int rc = regcomp(&p->res[p->nre], re, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
          char m[128];
          regerror(rc, &p->res[p->nre], m, sizeof m);
          snprintf(err, errlen, "bad regex '%s' in pattern %u: %s", re, i + 1, m);
          return 0;
        }
        q->re = p->nre++;
        /* a regex without metacharacters (all ASCII: the process runs in
        ** the C locale) matches where its bytes occur: no regexec */
        q->lit = NULL;
        if (len > 0 && strcspn(re, ".[]()*+?{}|^$\\") == len) {
          uint32_t c = 0;
          while (c < len && (unsigned char)re[c] < 0x80) c++;
          if (c == len) { q->lit = re; q->litlen = len; }
        }
        if (q->lit == NULL) sre_compile(&q->sre, re, len);
      }
      else {
        for (uint32_t a = j + 2; a < e; a++) {
          if (s[a].type != TSQueryPredicateStepTypeString) {
            snprintf(err, errlen, "'#%s' expects strings in pattern %u", name, i + 1);
            return 0;
          }
        }
        q->steps = s + j + 2;
        q->nsteps = n - 2;
        if (q->kind == P_PARENT && !parent_set(p, q, name, i, err, errlen)) return 0;
      }
      k++;
      j = e + 1;
    }
  }
  p->pstart[np] = k;
  return 1;
}

/* Builds query p (zeroed, its language set) from `src`: tree-sitter's
** query, its predicates, a cursor and its fast form; and the language's
** dense parse tables (trees of it are to come: made now, so that the
** copies `enforce --jobs N` forks after its queries share them).  Without
** `analyze`, a query of chains only is compiled flat (flat_build: without
** tree-sitter's analysis of its structure).  Touches no Lua state: it runs
** on a thread of its own for query_async.  0 with the message in err and
** its code in *code (p freed) when the query is bad. */
#define QBUILD_ERRLEN 320
static int query_build (LQuery *p, const char *src, size_t len, int analyze, char *err, int *code) {
  uint32_t off = 0;
  TSQueryError qe = TSQueryErrorNone;
  if (!analyze) flat_build(p, src, len);
  if (p->q == NULL) p->q = ts_query_new(language(p->tsx), src, (uint32_t)len, &off, &qe);
  if (p->q == NULL) {
    int e = (int)qe < (int)(sizeof QERR / sizeof *QERR) ? (int)qe : 1;
    snprintf(err, QBUILD_ERRLEN, "ast: query: %s at offset %d", QERR[e], (int)off);
    *code = AG_EPARSE;
    return 0;
  }
  char perr[256];
  if (!compile_preds(p, perr, sizeof perr)) {
    query_free(p);
    snprintf(err, QBUILD_ERRLEN, "ast: query: %s", perr);
    *code = AG_EPARSE;
    return 0;
  }
  p->cur = ts_query_cursor_new();
  if (p->cur == NULL) {
    query_free(p);
    snprintf(err, QBUILD_ERRLEN, "ast: query: out of memory");
    *code = AG_ENOMEM;
    return 0;
  }
  p->fast = fast_compile(p, src, len);
  ag_langtab_dense(language(p->tsx));
  return 1;
}

/* query(lang, source [, analyze]) -> query | nil, msg, 'parse'
** analyze false: flat when it can be (query_build) */
static int ast_query (lua_State *L) {
  int tsx = luaL_checkoption(L, 1, NULL, LANGS);
  size_t len;
  const char *src = luaL_checklstring(L, 2, &len);
  int analyze = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
  LQuery *p = (LQuery *)lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  luaL_setmetatable(L, AST_QUERY);
  p->tsx = tsx;
  char err[QBUILD_ERRLEN];
  int code;
  if (!query_build(p, src, len, analyze, err, &code)) return agL_pushfail(L, code, "%s", err);
  return 1;
}

/* {====================================================== a query compiled beside

   query_async(lang, source [, analyze]) -> pending
     compiles the query on a thread of its own (tree-sitter analyses the
     grammar for each query: milliseconds that enforce spends while it walks
     the directories); the thread allocates apart (ag_tsmem_detach)
   pending:get() -> query | nil, msg, code
     waits for the thread and answers as query(lang, source) would; again
     the same answer
   A pending query is waited for when collected, and fork.start refuses to
   fork while one is not (the copy would lack the thread). */

#define AST_PENDING "aegis.ast.PendingQuery"

typedef struct Pending {
  pthread_t th;
  int state;          /* P_RUNNING: a thread to join; P_DONE: built; P_TAKEN: get() made the query */
  int ok, code, analyze;
  char *src;          /* a copy of the source, for the thread */
  size_t len, held;   /* held: the bytes the thread left allocated (ag_tsmem_adopt) */
  LQuery q;
  char err[QBUILD_ERRLEN];
} Pending;
enum { P_RUNNING = 1, P_DONE, P_TAKEN };

/* The compiles run one at a time: beside a busy main thread on two cores,
** two of them at once slowed it (enforce's walk of the directories: 19 ->
** 33 ms) more than they gained. */
static pthread_mutex_t one_compile = PTHREAD_MUTEX_INITIALIZER;

static void *pending_run (void *ud) {
  Pending *w = (Pending *)ud;
  ag_tsmem_detach();
  pthread_mutex_lock(&one_compile);
  w->ok = query_build(&w->q, w->src, w->len, w->analyze, w->err, &w->code);
  pthread_mutex_unlock(&one_compile);
  w->held = ag_tsmem_detached_held();
  return NULL;
}

static void pending_join (Pending *w) {
  if (w->state == P_RUNNING) {
    pthread_join(w->th, NULL);
    ag_tsmem_adopt(w->held);
    w->state = P_DONE;
  }
  free(w->src);
  w->src = NULL;
}

static int ast_query_async (lua_State *L) {
  int tsx = luaL_checkoption(L, 1, NULL, LANGS);
  size_t len;
  const char *src = luaL_checklstring(L, 2, &len);
  Pending *w = (Pending *)lua_newuserdatauv(L, sizeof *w, 1);  /* uservalue: the query, once made */
  memset(w, 0, sizeof *w);
  luaL_setmetatable(L, AST_PENDING);
  w->q.tsx = tsx;
  w->analyze = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
  w->src = (char *)malloc(len ? len : 1);
  if (w->src == NULL) return agL_pushfail(L, AG_ENOMEM, "ast: query: out of memory");
  memcpy(w->src, src, len);
  w->len = len;
  ag_tsmem_detaching();
  if (pthread_create(&w->th, NULL, pending_run, w) == 0) {
    w->state = P_RUNNING;
  } else {  /* no thread to be had: built here and now */
    ag_tsmem_adopt(0);
    w->ok = query_build(&w->q, w->src, w->len, w->analyze, w->err, &w->code);
    w->state = P_DONE;
  }
  return 1;
}

static int pending_get (lua_State *L) {
  Pending *w = (Pending *)luaL_checkudata(L, 1, AST_PENDING);
  if (w->state != P_TAKEN) {
    pending_join(w);
    if (w->ok) {
      LQuery *p = (LQuery *)lua_newuserdatauv(L, sizeof *p, 0);
      memcpy(p, &w->q, sizeof *p);
      memset(&w->q, 0, sizeof w->q);
      luaL_setmetatable(L, AST_QUERY);
      lua_setiuservalue(L, 1, 1);
    }
    w->state = P_TAKEN;
  }
  if (!w->ok) return agL_pushfail(L, w->code, "%s", w->err);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int pending_gc (lua_State *L) {
  Pending *w = (Pending *)luaL_checkudata(L, 1, AST_PENDING);
  pending_join(w);
  if (w->state == P_DONE && w->ok) query_free(&w->q);  /* never taken */
  w->state = P_TAKEN;
  w->ok = 0;
  snprintf(w->err, sizeof w->err, "ast: query: pending query collected");
  w->code = AG_EINVAL;
  return 0;
}

static int pending_tostring (lua_State *L) {
  Pending *w = (Pending *)luaL_checkudata(L, 1, AST_PENDING);
  lua_pushfstring(L, "aegis.ast.PendingQuery (%s, %s)", w->q.tsx ? "tsx" : "ts",
                  w->state == P_RUNNING ? "compiling" : "compiled");
  return 1;
}

/* }====================================================== */

/* Text of a node as a NUL-terminated string in p->buf (NULL without memory). */
static const char *cstr (LQuery *p, const LTree *t, TSNode n, uint32_t *len) {
  uint32_t s = ts_node_start_byte(n), e = ts_node_end_byte(n);
  if (e > t->len) e = (uint32_t)t->len;
  if (s > e) s = e;
  if ((size_t)(e - s) + 1 > p->bufcap) {
    size_t c = (size_t)(e - s) + 1 + 64;
    char *b = (char *)realloc(p->buf, c);
    if (b == NULL) return NULL;
    p->buf = b;
    p->bufcap = c;
  }
  memcpy(p->buf, t->src + s, e - s);
  p->buf[e - s] = '\0';
  *len = e - s;
  return p->buf;
}

static int text_eq (const LTree *t, TSNode n, const char *s, uint32_t len) {
  uint32_t a = ts_node_start_byte(n), b = ts_node_end_byte(n);
  return b - a == len && b <= t->len && memcmp(t->src + a, s, len) == 0;
}

/* Where a match was found, for #has-parent?: on the fast path, the walker
** on the match's deepest node and the ancestor stack entries of the
** pattern's n steps; NULL for the cursor's matches (ts_node_parent). */
typedef struct fframe fframe;
typedef struct mwhere { const ag_scope_walker *c; const fframe *base; uint32_t n; } mwhere;
static TSSymbol fast_parent (const mwhere *w, TSNode n);

/* The public symbol of n's parent; 0 for the root. */
static TSSymbol parent_symbol (const mwhere *w, TSNode n) {
  if (w != NULL) return fast_parent(w, n);
  TSNode up = ts_node_parent(n);
  return ts_node_is_null(up) ? 0 : ts_node_symbol(up);
}

/* One predicate on one node; 1 when it holds (before negation). */
static int pred_node (LQuery *p, const LTree *t, const qpred *q, TSNode n,
                      const TSQueryMatch *m, const mwhere *w) {
  uint32_t len;
  if (q->kind == P_PARENT) {
    TSSymbol ps = parent_symbol(w, n);
    if (ps == (TSSymbol)-1) return q->parent_error;    /* ERROR (ts_builtin_sym_error) */
    return ps < q->nparents && q->parents[ps];
  }
  if (q->kind == P_EQ) {
    if (!q->rhs_cap) {
      const char *s = ts_query_string_value_for_id(p->q, q->rhs, &len);
      return text_eq(t, n, s, len);
    }
    for (uint16_t i = 0; i < m->capture_count; i++) {
      if (m->captures[i].index != q->rhs) continue;
      TSNode o = m->captures[i].node;
      uint32_t a = ts_node_start_byte(o), b = ts_node_end_byte(o);
      if (b > t->len) return 0;
      if (!text_eq(t, n, t->src + a, b - a)) return 0;
    }
    return 1;
  }
  if (q->kind == P_MATCH && q->lit != NULL) {
    /* as regexec on the text up to its first NUL byte */
    uint32_t a = ts_node_start_byte(n), b = ts_node_end_byte(n);
    if (b > t->len) b = (uint32_t)t->len;
    if (a > b) a = b;
    const char *s = t->src + a, *z = memchr(s, '\0', b - a), *e = z ? z : t->src + b;
    for (; (size_t)(e - s) >= q->litlen; s++) {
      s = memchr(s, q->lit[0], (size_t)(e - s) - q->litlen + 1);
      if (s == NULL) return 0;
      if (memcmp(s, q->lit, q->litlen) == 0) return 1;
    }
    return 0;
  }
  if (q->kind == P_MATCH && q->sre.ok) {
    uint32_t a = ts_node_start_byte(n), b = ts_node_end_byte(n);
    if (b > t->len) b = (uint32_t)t->len;
    if (a > b) a = b;
    const char *s = t->src + a, *z = memchr(s, '\0', b - a), *e = z ? z : t->src + b;
    const sre *r = &q->sre;
    if (r->bol || r->n == 0) return r->bol ? sre_at(r, 0, s, e) : 1;   /* unanchored, no atoms: "$" */
    if (r->must >= 0 && memchr(s, r->must, (size_t)(e - s)) == NULL) return 0;
    for (; s < e; s++) {
      unsigned char c = (unsigned char)*s;
      if ((r->first[c >> 3] >> (c & 7) & 1) && sre_at(r, 0, s, e)) return 1;
    }
    return 0;
  }
  if (q->kind == P_MATCH) {
    const char *s = cstr(p, t, n, &len);
    return s != NULL && regexec(&p->res[q->re], s, 0, NULL, 0) == 0;
  }
  for (uint32_t i = 0; i < q->nsteps; i++) {
    const char *s = ts_query_string_value_for_id(p->q, q->steps[i].value_id, &len);
    if (text_eq(t, n, s, len)) return 1;
  }
  return 0;
}

/* Every predicate of the match's pattern holds for every node of its capture. */
static int match_ok (LQuery *p, const LTree *t, const TSQueryMatch *m, const mwhere *w) {
  for (uint32_t k = p->pstart[m->pattern_index]; k < p->pstart[m->pattern_index + 1]; k++) {
    const qpred *q = &p->preds[k];
    for (uint16_t i = 0; i < m->capture_count; i++) {
      if (m->captures[i].index != q->cap) continue;
      if (pred_node(p, t, q, m->captures[i].node, m, w) == q->neg) return 0;
    }
  }
  return 1;
}

/* -------------------------------------------------- query: the fast path */

/* Most rule queries are chains: every pattern one node, or a node with one
** child pattern (under a field or not), and so on, with captures and text
** predicates.  Such a query is answered by one walk of the tree (the
** walker of ag_scope.h) and a stack of the visible ancestors: at each node, the
** patterns whose last (deepest) step has its symbol are checked upwards
** against the stack.  That costs a fraction of a TSQueryCursor walk in
** tree-sitter 0.20 and gives the same matches in the same order (a match
** is complete at its deepest node, in document order; at one node the
** pattern that started higher comes first, then the lower pattern index).
** With the scope analysis, the walk skips the leaves of symbols no step
** has (fast.want): no match ends at them and no node is under them.
** A query with any pattern outside that subset (wildcards, quantifiers,
** alternations, anchors, several child patterns, supertypes, ERROR) keeps
** the TSQueryCursor.  Negated fields `!f` are in the subset: a step with
** them matches only a node with no child under those fields, as the
** cursor checks them (ts_node_child_by_field_id).  The subset is read from the
** query's source text, which tree-sitter has already validated. */

#define FAST_STEPS 8
#define FAST_CAPS 4
#define FAST_NEG 4

typedef struct fstep {
  TSSymbol sym;
  TSFieldId field;                /* field it must sit under in its parent (0: any) */
  uint32_t ncap;
  uint32_t cap[FAST_CAPS];        /* capture ids */
  uint32_t nneg;
  TSFieldId neg[FAST_NEG];        /* negated fields: no child under them */
} fstep;

typedef struct fpat { fstep s[FAST_STEPS]; uint32_t n, index; } fpat;

typedef struct fast {
  fpat *pats;                     /* in pattern order */
  uint32_t npat, nsym;
  uint32_t *head;                 /* symbol s: order[head[s]..head[s+1]) end there */
  uint32_t *order;                /* pattern indexes: longer chain first, then index */
  uint8_t *needfield;             /* symbol s sits under a field in some step */
  uint8_t *want;                  /* symbol s is the symbol of some step; 2: only ever the */
  TSSymbol *parents;              /* last step of chains, under parents[s * AG_SCOPE_PARENTS ..] */
  uint8_t *skip; uint32_t nskip;  /* the walk without the scope analysis: ag_scope_walk_skip */
} fast;

struct fframe { TSNode node; TSSymbol sym; TSFieldId field; };

/* The parent of the node of one of the match's steps: step i's parent is
** n - i visible levels above the walker's node (a chain's steps are
** parent and child). */
static TSSymbol fast_parent (const mwhere *w, TSNode n) {
  for (uint32_t i = 0; i < w->n; i++)
    if (w->base[i].node.id == n.id) return ag_scope_walker_up(w->c, w->n - i);
  return 0;
}
typedef struct fmatch { uint32_t pattern, first, ncap; } fmatch;

/* Scratch of a fast walk, kept on the query between calls (freed with it). */
typedef struct fscratch {
  fframe *stk; size_t nstk, capstk;
  fmatch *m; size_t nm, capm;
  TSQueryCapture *c; size_t nc, capc;
} fscratch;

static void fast_free (fast *f) {
  if (f == NULL) return;
  free(f->pats);
  free(f->head);
  free(f->order);
  free(f->needfield);
  free(f->want);
  free(f->parents);
  free(f->skip);
  free(f);
}

/* A growing text (flat_build's); bad once memory ran short. */
typedef struct fbuf { char *s; size_t n, cap; int bad; } fbuf;

static void fb_add (fbuf *b, const char *s, size_t n) {
  if (b == NULL || b->bad) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *ns = (char *)realloc(b->s, cap);
    if (ns == NULL) { b->bad = 1; return; }
    b->s = ns;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}

/* The scanner of a query's source: q gives the capture ids (NULL when
** flat_build scans before any query is made: the pattern's flat form is
** written to out instead). */
typedef struct qscan { const char *s, *e; const TSLanguage *lang; TSQuery *q; fbuf *out; } qscan;

static void qs_skip (qscan *x) {
  while (x->s < x->e) {
    char c = *x->s;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') x->s++;
    else if (c == ';') { while (x->s < x->e && *x->s != '\n') x->s++; }
    else break;
  }
}

/* tree-sitter's identifier characters (ASCII: anything else ends the fast path) */
static int qs_identc (char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '.' || c == '?' || c == '!';
}

static size_t qs_ident (const qscan *x) {
  const char *p = x->s;
  while (p < x->e && qs_identc(*p)) p++;
  return (size_t)(p - x->s);
}

/* Captures after a node: `@name` any times; 0 on a quantifier or too many. */
static int qs_caps (qscan *x, fstep *st) {
  for (;;) {
    qs_skip(x);
    if (x->s < x->e && (*x->s == '*' || *x->s == '+' || *x->s == '?')) return 0;
    if (x->s >= x->e || *x->s != '@') return 1;
    x->s++;
    size_t k = qs_ident(x);
    if (k == 0 || st->ncap >= FAST_CAPS) return 0;
    if (x->q == NULL) {
      fb_add(x->out, " @", 2);
      fb_add(x->out, x->s, k);
      st->ncap++;
      x->s += k;
      continue;
    }
    uint32_t n = ts_query_capture_count(x->q), id = n;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t len;
      const char *nm = ts_query_capture_name_for_id(x->q, i, &len);
      if (len == k && memcmp(nm, x->s, k) == 0) { id = i; break; }
    }
    if (id == n) return 0;
    st->cap[st->ncap++] = id;
    x->s += k;
  }
}

/* A predicate `(#name args..)`: skipped (compile_preds has read it), or
** copied to the flat form. */
static int qs_pred (qscan *x) {
  const char *from = x->s;
  int depth = 0;
  do {
    char c = *x->s;
    if (c == '"') {
      x->s++;
      while (x->s < x->e && *x->s != '"') x->s += (*x->s == '\\') ? 2 : 1;
      if (x->s >= x->e) return 0;
    }
    else if (c == '(') depth++;
    else if (c == ')') depth--;
    x->s++;
  } while (depth > 0 && x->s < x->e);
  if (depth != 0) return 0;
  if (x->q == NULL) {
    fb_add(x->out, " ", 1);
    fb_add(x->out, from, (size_t)(x->s - from));
  }
  return 1;
}

/* One node pattern (and its single child chain) appended to pat. */
static int qs_node (qscan *x, fpat *pat, TSFieldId field) {
  if (pat->n >= FAST_STEPS || x->s >= x->e) return 0;
  int root = pat->n == 0 && x->q == NULL;  /* the flat form's one node */
  fstep *st = &pat->s[pat->n++];
  memset(st, 0, sizeof *st);
  st->field = field;
  if (*x->s == '"') {
    const char *b = ++x->s;
    while (x->s < x->e && *x->s != '"') { if (*x->s == '\\') return 0; x->s++; }
    if (x->s >= x->e) return 0;
    uint32_t len = (uint32_t)(x->s - b);
    x->s++;
    TSSymbol sym = ts_language_symbol_for_name(x->lang, b, len, false);
    if (sym == 0 || ts_language_symbol_type(x->lang, sym) != TSSymbolTypeAnonymous) return 0;
    st->sym = sym;
    if (root) {
      fb_add(x->out, "(", 1);
      fb_add(x->out, b - 1, len + 2);
    }
    return qs_caps(x, st);
  }
  if (*x->s != '(') return 0;
  x->s++;
  qs_skip(x);
  size_t k = qs_ident(x);
  if (k == 0 || (k == 1 && *x->s == '_') || (k == 5 && memcmp(x->s, "ERROR", 5) == 0)) return 0;
  TSSymbol sym = ts_language_symbol_for_name(x->lang, x->s, (uint32_t)k, true);
  if (sym == 0 || ts_language_symbol_type(x->lang, sym) != TSSymbolTypeRegular) return 0;
  st->sym = sym;
  if (root) {
    fb_add(x->out, "((", 2);
    fb_add(x->out, x->s, k);
    fb_add(x->out, ")", 1);
  }
  x->s += k;
  int kids = 0;
  for (;;) {
    qs_skip(x);
    if (x->s >= x->e) return 0;
    char c = *x->s;
    if (c == ')') { x->s++; break; }
    if (c == '!') {                                  /* a negated field */
      x->s++;
      k = qs_ident(x);
      if (k == 0 || st->nneg >= FAST_NEG) return 0;
      TSFieldId nf = ts_language_field_id_for_name(x->lang, x->s, (uint32_t)k);
      if (nf == 0) return 0;
      st->neg[st->nneg++] = nf;
      x->s += k;
      continue;
    }
    TSFieldId f = 0;
    if (qs_identc(c)) {
      const char *nm = x->s;
      k = qs_ident(x);
      x->s += k;
      qs_skip(x);
      if (x->s >= x->e || *x->s != ':') return 0;
      x->s++;
      qs_skip(x);
      f = ts_language_field_id_for_name(x->lang, nm, (uint32_t)k);
      if (f == 0) return 0;
    }
    if (x->s >= x->e || (*x->s != '(' && *x->s != '"')) return 0;
    if (*x->s == '(' && x->s + 1 < x->e && x->s[1] == '#') return 0;
    if (kids++ > 0) return 0;
    if (!qs_node(x, pat, f)) return 0;
  }
  return qs_caps(x, st);
}

/* The pattern at x's position, or 0 when outside the subset. */
static int qs_pattern_at (qscan *x, fpat *pat) {
  qs_skip(x);
  if (x->s >= x->e) return 0;
  const char *p = x->s + 1;
  while (p < x->e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  if (*x->s == '(' && p < x->e && (*p == '(' || *p == '"')) {  /* a group: node + predicates */
    x->s = p;
    if (*p == '(' && p + 1 < x->e && p[1] == '#') return 0;
    if (!qs_node(x, pat, 0)) return 0;
    for (;;) {
      qs_skip(x);
      if (x->s >= x->e) return 0;
      if (*x->s == ')') { x->s++; break; }
      if (*x->s == '(' && x->s + 1 < x->e && x->s[1] == '#') { if (!qs_pred(x)) return 0; }
      else return 0;                                             /* a sequence */
    }
    qs_skip(x);
    if (x->s < x->e && (*x->s == '@' || *x->s == '*' || *x->s == '+' || *x->s == '?')) return 0;
  }
  else if (!qs_node(x, pat, 0)) return 0;
  return pat->n > 0;
}

/* Pattern i from its source text [s, e), or 0 when outside the subset. */
static int qs_pattern (qscan *x, fpat *pat) {
  if (!qs_pattern_at(x, pat)) return 0;
  qs_skip(x);
  return x->s == x->e;
}

/* A query compiled flat.  tree-sitter analyses every pattern with a child
** against the grammar's parse tables when it compiles a query, to refuse a
** structure that can never occur (ts_query__analyze_patterns): ~0.5 ms a
** pattern, tens of ms a language for ui-theme-tokens's chains, most of the
** CPU of an `enforce` run on a few files.  The fast path reads the chains
** from the source and never uses that analysis.  So a query of chains
** only, asked for without the analysis (the built-in rulepacks' queries,
** whose structure their specs test), is compiled from its flat form: each
** pattern one node with all the pattern's captures in their order and its
** predicates, `((call_expression) @fn @call (#eq? @fn "eval"))`, which
** gives tree-sitter's pattern indexes, capture ids and predicates of the
** query itself at the cost of a plain pattern (and with the language's
** copy that has no parse states, ag_langtab_names, without tree-sitter's
** scan of them).  The names of the other steps and fields are checked by
** the scan (a name of no symbol or field leaves the query to tree-sitter,
** which reports it).  The cursor, which needs the real patterns, gets the
** query compiled whole on first use (cursor_query).  Leaves p->q NULL when
** the query is not of chains only, its flat form does not compile, or
** memory is short. */
static void flat_build (LQuery *p, const char *src, size_t len) {
  const TSLanguage *lang = language(p->tsx);
  fbuf out = {NULL, 0, 0, 0};
  uint32_t *start = NULL, n = 0, cap = 0;
  qscan x = {src, src + len, lang, NULL, &out};
  for (;;) {
    qs_skip(&x);
    if (x.s >= x.e) break;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      uint32_t *ns = (uint32_t *)realloc(start, cap * sizeof *start);
      if (ns == NULL) goto fail;
      start = ns;
    }
    start[n++] = (uint32_t)(x.s - src);
    fpat pat;
    pat.n = 0;
    if (!qs_pattern_at(&x, &pat)) goto fail;
    fb_add(&out, ")\n", 2);
  }
  if (n == 0 || out.bad || len > UINT32_MAX) goto fail;
  uint32_t off = 0;
  TSQueryError qe = TSQueryErrorNone;
  const TSLanguage *names = ag_langtab_names(lang);  /* no parse states to scan */
  TSQuery *q = ts_query_new(names != NULL ? names : lang, out.s, (uint32_t)out.n, &off, &qe);
  if (q == NULL) goto fail;
  p->src = (char *)malloc(len ? len : 1);
  if (ts_query_pattern_count(q) != n || p->src == NULL) {
    ts_query_delete(q);
    free(p->src);
    p->src = NULL;
    goto fail;
  }
  memcpy(p->src, src, len);
  p->srclen = (uint32_t)len;
  p->start = start;
  p->q = q;
  p->flat = 1;
  free(out.s);
  return;
fail:
  free(out.s);
  free(start);
}

/* Where pattern i starts in the query's source. */
static uint32_t pattern_start (const LQuery *p, uint32_t i) {
  return p->flat ? p->start[i] : ts_query_start_byte_for_pattern(p->q, i);
}

/* Narrows f->want (every step's symbol, 1) to 2 for a symbol that is only
** ever the last step of chains of two steps or more, under at most
** AG_SCOPE_PARENTS parent symbols, listed in f->parents: a node of it under
** another parent ends no match and is under none (`(jsx_attribute
** (property_identifier) @h)` wants no property name of a member expression;
** property names are 11 % of the named nodes of the enforce bench corpus).
** The walk then visits such a node only under one of them
** (ag_scope_build_visit). */
static void want_parents (fast *f) {
  for (uint32_t i = 0; i < f->npat; i++) {
    const fpat *pt = &f->pats[i];
    for (uint32_t j = 0; j + 1 < pt->n; j++) f->want[pt->s[j].sym] = 3;       /* 3: not narrowed */
    if (pt->n == 1) f->want[pt->s[0].sym] = 3;
  }
  for (uint32_t i = 0; i < f->npat; i++) {
    const fpat *pt = &f->pats[i];
    if (pt->n < 2) continue;
    TSSymbol last = pt->s[pt->n - 1].sym, up = pt->s[pt->n - 2].sym;
    if (f->want[last] == 3) continue;
    TSSymbol *ps = &f->parents[(size_t)last * AG_SCOPE_PARENTS];
    int k = 0;
    while (k < AG_SCOPE_PARENTS && ps[k] != 0 && ps[k] != up) k++;
    if (k == AG_SCOPE_PARENTS) { f->want[last] = 3; continue; }           /* too many parents */
    ps[k] = up;
    f->want[last] = 2;
  }
  for (uint32_t s = 0; s < f->nsym; s++)
    if (f->want[s] == 3) f->want[s] = 1;
}

/* The fast form of p's query (source src, len bytes), or NULL when a
** pattern is outside the subset or memory is short (the cursor then).
** Without a fast form, p->simple (when memory allows) tells which patterns
** are in the subset: a caller may move the others to a query of their own. */
static fast *fast_compile (LQuery *p, const char *src, size_t len) {
  const TSLanguage *lang = language(p->tsx);
  uint32_t np = ts_query_pattern_count(p->q), nsym = ts_language_symbol_count(lang);
  if (np == 0) return NULL;
  fast *f = (fast *)calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  f->pats = (fpat *)calloc(np, sizeof *f->pats);
  f->head = (uint32_t *)calloc((size_t)nsym + 1, sizeof *f->head);
  f->order = (uint32_t *)calloc(np, sizeof *f->order);
  f->needfield = (uint8_t *)calloc(nsym, 1);
  f->want = (uint8_t *)calloc(nsym, 1);
  f->parents = (TSSymbol *)calloc((size_t)nsym * AG_SCOPE_PARENTS, sizeof *f->parents);
  f->npat = np;
  f->nsym = nsym;
  if (!f->pats || !f->head || !f->order || !f->needfield || !f->want || !f->parents) {
    fast_free(f);
    return NULL;
  }
  uint8_t *simple = (uint8_t *)calloc(np, 1);
  int all = 1;
  for (uint32_t i = 0; i < np; i++) {
    uint32_t a = pattern_start(p, i);
    uint32_t b = i + 1 < np ? pattern_start(p, i + 1) : (uint32_t)len;
    if (a > b || b > len) { free(simple); fast_free(f); return NULL; }
    qscan x = {src + a, src + b, lang, p->q, NULL};
    fpat *pat = &f->pats[i];
    pat->index = i;
    int ok = qs_pattern(&x, pat) && pat->n > 0;
    for (uint32_t s = 0; ok && s < pat->n; s++) ok = pat->s[s].sym < nsym;
    if (!ok) { all = 0; if (simple == NULL) break; continue; }
    if (simple != NULL) simple[i] = 1;
    for (uint32_t s = 0; s < pat->n; s++) {
      if (pat->s[s].field) f->needfield[pat->s[s].sym] = 1;
      f->want[pat->s[s].sym] = 1;
    }
  }
  if (!all) { p->simple = simple; fast_free(f); return NULL; }
  free(simple);
  want_parents(f);
  f->skip = ag_scope_walk_skip(lang, f->want, nsym, &f->nskip);
  if (f->skip == NULL) { fast_free(f); return NULL; }
  /* counting sort by the last step's symbol; within one, longer chains first */
  for (uint32_t i = 0; i < np; i++) f->head[f->pats[i].s[f->pats[i].n - 1].sym + 1]++;
  for (uint32_t s = 0; s < nsym; s++) f->head[s + 1] += f->head[s];
  uint32_t *fill = (uint32_t *)calloc(nsym, sizeof *fill);
  if (fill == NULL) { fast_free(f); return NULL; }
  for (uint32_t len_ = FAST_STEPS; len_ >= 1; len_--)
    for (uint32_t i = 0; i < np; i++) {
      const fpat *pt = &f->pats[i];
      if (pt->n != len_) continue;
      TSSymbol s = pt->s[pt->n - 1].sym;
      f->order[f->head[s] + fill[s]++] = i;
    }
  free(fill);
  return f;
}

static void fscratch_free (fscratch *s) {
  if (s == NULL) return;
  free(s->stk);
  free(s->m);
  free(s->c);
  free(s);
}

/* Grows *buf (of *cap elements of size sz) to hold n; 0 without memory. */
static int grow (void **buf, size_t *cap, size_t n, size_t sz) {
  if (n <= *cap) return 1;
  size_t c = *cap ? *cap * 2 : 64;
  while (c < n) c *= 2;
  void *b = realloc(*buf, c * sz);
  if (b == NULL) return 0;
  *buf = b;
  *cap = c;
  return 1;
}

/* The walk's state: the query and tree whose matches go to p->fs. */
typedef struct fwalk { LQuery *p; const LTree *t; } fwalk;

/* Enters node n (symbol sym, at depth, cursor c on it): keeps the ancestor
** stack and records the matches that end at n.  0 without memory. */
static int fast_enter (void *ud, TSNode n, TSSymbol sym, uint32_t depth, const ag_scope_walker *c) {
  const fwalk *w = (const fwalk *)ud;
  LQuery *p = w->p;
  const fast *f = p->fast;
  fscratch *S = p->fs;
  if (!grow((void **)&S->stk, &S->capstk, (size_t)depth + 1, sizeof *S->stk)) return 0;
  S->nstk = (size_t)depth + 1;
  /* ancestors the walk did not visit (symbols no step names): no chain
  ** goes through them (UINT16_MAX is no symbol of a step) */
  for (uint32_t g = ag_scope_walker_gap(c); g < depth; g++) S->stk[g].sym = UINT16_MAX;
  fframe *fr = &S->stk[depth];
  fr->node = n;
  fr->sym = sym;
  fr->field = (sym < f->nsym && f->needfield[sym]) ? ag_scope_walker_field(c) : 0;
  if (sym >= f->nsym) return 1;
  for (uint32_t o = f->head[sym]; o < f->head[sym + 1]; o++) {
    const fpat *pt = &f->pats[f->order[o]];
    if (pt->n > S->nstk) continue;
    const fframe *base = S->stk + (S->nstk - pt->n);
    uint32_t i, ncap = 0;
    for (i = 0; i < pt->n; i++) {
      if (base[i].sym != pt->s[i].sym) break;
      if (i > 0 && pt->s[i].field && base[i].field != pt->s[i].field) break;
      ncap += pt->s[i].ncap;
    }
    for (uint32_t j = 0; i == pt->n && j < pt->n; j++)
      for (uint32_t g = 0; g < pt->s[j].nneg; g++)
        if (!ts_node_is_null(ts_node_child_by_field_id(base[j].node, pt->s[j].neg[g]))) { i = 0; break; }
    if (i < pt->n) continue;
    if (!grow((void **)&S->c, &S->capc, S->nc + ncap, sizeof *S->c)) return 0;
    TSQueryCapture *cap = S->c + S->nc;
    uint32_t k = 0;
    for (i = 0; i < pt->n; i++)
      for (uint32_t j = 0; j < pt->s[i].ncap; j++) {
        cap[k].node = base[i].node;
        cap[k].index = pt->s[i].cap[j];
        k++;
      }
    TSQueryMatch m = {0, (uint16_t)pt->index, (uint16_t)ncap, cap};
    mwhere at = {c, base, pt->n};
    if (!match_ok(p, w->t, &m, &at)) continue;
    if (!grow((void **)&S->m, &S->capm, S->nm + 1, sizeof *S->m)) return 0;
    S->m[S->nm].pattern = pt->index;
    S->m[S->nm].first = (uint32_t)S->nc;
    S->m[S->nm].ncap = ncap;
    S->nm++;
    S->nc += ncap;
  }
  return 1;
}

/* Walks the tree once and collects the matches of p's fast form into
** p->fs (no Lua call: nothing here can raise); with sc, builds the scope
** analysis of the tree in the same walk into *sc.  Returns AG_OK or
** AG_ENOMEM. */
static int fast_walk (LQuery *p, const LTree *t, ag_scope **sc) {
  fscratch *S = p->fs;
  S->nstk = S->nm = S->nc = 0;
  fwalk w = {p, t};
  if (sc != NULL) {
    char err[AG_ERRLEN];
    return ag_scope_build_visit(ts_tree_root_node(t->t), t->src, t->len, t->tsx, fast_enter, &w,
                                p->fast->want, p->fast->parents, p->fast->nsym, sc, err);
  }
  return ag_scope_walk_want(ts_tree_root_node(t->t), fast_enter, &w, p->fast->want, p->fast->parents,
                            p->fast->nsym, p->fast->skip, p->fast->nskip);
}

/* The tree or node at arg 2: pushes the tree userdata, returns the node. */
static TSNode target (lua_State *L, LQuery *p, LTree **tp) {
  TSNode n;
  if (luaL_testudata(L, 2, AST_TREE)) {
    LTree *t = checktree(L, 2);
    lua_pushvalue(L, 2);
    n = ts_tree_root_node(t->t);
    *tp = t;
  }
  else if (luaL_testudata(L, 2, AST_NODE)) n = checknode(L, 2, tp);
  else { luaL_typeerror(L, 2, "aegis.ast.Tree or aegis.ast.Node"); return (TSNode){0}; }
  luaL_argcheck(L, (*tp)->tsx == p->tsx, 2, "tree of another language");
  return n;
}

static void pushcapname (lua_State *L, LQuery *p, uint32_t id) {
  uint32_t len;
  const char *s = ts_query_capture_name_for_id(p->q, id, &len);
  lua_pushlstring(L, s, len);
}

/* Registry key of the metatable of one-capture matches. */
static const char MATCH1 = 0;

/* __index of a one-capture match: its list {{name =, node =}}, made from
** its captures on first use and kept in it (most matches have one capture,
** and most rules never read the list).  [m, k] */
static int match1_index (lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "list") != 0) return 0;
  if (lua_getfield(L, 1, "captures") != LUA_TTABLE) return 0;  /* [m, k, caps] */
  lua_createtable(L, 1, 0);                                     /* [m, k, caps, list] */
  lua_pushnil(L);
  if (lua_next(L, -3)) {                                        /* [m, k, caps, list, name, node] */
    lua_createtable(L, 0, 2);
    lua_insert(L, -3);                                          /* [.., list, entry, name, node] */
    lua_setfield(L, -3, "node");
    lua_setfield(L, -2, "name");
    lua_rawseti(L, -2, 1);                                      /* [m, k, caps, list] */
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, 1, "list");
  return 1;
}

/* Pushes the table of match m: {pattern=, captures={name=node}, list={{name=, node=}}}
** (with one capture, list is made on first use: its metatable, the
** registry's MATCH1, is at m1idx, fetched once per q:matches). */
static void pushmatch (lua_State *L, LQuery *p, const TSQueryMatch *m, int treeidx, int m1idx) {
  luaL_checkstack(L, 8, NULL);
  lua_createtable(L, 0, 3);                        /* [.., match] */
  lua_pushinteger(L, (lua_Integer)m->pattern_index + 1);
  lua_setfield(L, -2, "pattern");
  if (m->capture_count == 1) {
    lua_createtable(L, 0, 1);                      /* [.., match, caps] */
    pushcapname(L, p, m->captures[0].index);
    pushnode(L, m->captures[0].node, treeidx);
    lua_rawset(L, -3);
    lua_setfield(L, -2, "captures");
    lua_pushvalue(L, m1idx);
    lua_setmetatable(L, -2);
    return;
  }
  lua_createtable(L, 0, m->capture_count);         /* [.., match, caps] */
  lua_createtable(L, m->capture_count, 0);         /* [.., match, caps, list] */
  for (uint16_t i = 0; i < m->capture_count; i++) {
    pushcapname(L, p, m->captures[i].index);       /* [.., caps, list, name] */
    pushnode(L, m->captures[i].node, treeidx);     /* [.., caps, list, name, node] */
    lua_pushvalue(L, -2);
    if (lua_rawget(L, -5) == LUA_TNIL) {           /* first node wins */
      lua_pop(L, 1);
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_rawset(L, -6);
    }
    else lua_pop(L, 1);
    lua_createtable(L, 0, 2);                      /* [.., caps, list, name, node, entry] */
    lua_insert(L, -3);                             /* [.., caps, list, entry, name, node] */
    lua_setfield(L, -3, "node");
    lua_setfield(L, -2, "name");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -3, "list");
  lua_setfield(L, -2, "captures");
}

/* A query cursor takes time quadratic in the depth on some trees (an
** ERROR node over 65,000 unclosed parentheses: ts_tree_cursor_current_status
** scans the cursor's stack at each step), in one C call no hook can stop:
** it runs under the time budget of the tree's parse, checked by tree-sitter
** every 100 steps through this callback. */
typedef struct qbudget { double deadline; int halted; } qbudget;

static bool query_progress (TSQueryCursorState *st) {
  qbudget *b = (qbudget *)st->payload;
  if (b->deadline > 0 && agL_monotonic() > b->deadline) b->halted = 1;
  return b->halted != 0;
}

/* The query a cursor runs: p's own, or for a flat query (flat_build) the
** query compiled whole, made on first use: tree-sitter's error then (a
** pattern whose structure cannot occur) is raised here. */
static TSQuery *cursor_query (lua_State *L, LQuery *p) {
  if (!p->flat) return p->q;
  if (p->whole == NULL) {
    uint32_t off = 0;
    TSQueryError qe = TSQueryErrorNone;
    TSQuery *q = ts_query_new(language(p->tsx), p->src, p->srclen, &off, &qe);
    if (q == NULL) {
      int e = (int)qe < (int)(sizeof QERR / sizeof *QERR) ? (int)qe : 1;
      luaL_error(L, "ast: query: %s at offset %d", QERR[e], (int)off);
    }
    if (ts_query_capture_count(q) != ts_query_capture_count(p->q) ||
        ts_query_pattern_count(q) != ts_query_pattern_count(p->q)) {
      ts_query_delete(q);
      luaL_error(L, "ast: query: its flat form and the whole query differ");
    }
    p->whole = q;
  }
  return p->whole;
}

static void cursor_exec (lua_State *L, LQuery *p, const LTree *t, TSNode n, qbudget *b, TSQueryCursorOptions *o) {
  TSQuery *q = cursor_query(L, p);
  b->deadline = t->ms > 0 ? agL_monotonic() + (double)t->ms / 1000.0 : 0;
  b->halted = 0;
  o->payload = b;
  o->progress_callback = query_progress;
  ts_query_cursor_exec_with_options(p->cur, q, n, o);
}

static int query_timeout (lua_State *L, const LTree *t) {
  return agL_pushfail(L, AG_ETIMEOUT, "ast: query: timeout (%d ms)",
                      (int)(t->ms < 2000000000 ? t->ms : 2000000000));
}

static const char *const MODES[] = {"auto", "cursor", "walk", NULL};

/* q:matches(tree|node [, mode [, scope]]) -> {{pattern=, captures={name=node}, list={{name=, node=}}}}
** mode 'auto' (default) takes the fast path for a whole tree when the query
** has one, 'cursor' always the TSQueryCursor, 'walk' the fast path (an
** error when the query has none, or for a node).  scope true: when the fast
** path runs and the tree has no scope analysis yet, it is built in the same
** walk (tree:scope() then only makes its tables). */
static int query_matches (lua_State *L) {
  LQuery *p = checkquery(L, 1);
  int mode = luaL_checkoption(L, 3, "auto", MODES);
  int withscope = lua_toboolean(L, 4);
  LTree *t;
  int whole = luaL_testudata(L, 2, AST_TREE) != NULL;
  TSNode n = target(L, p, &t);
  int treeidx = lua_gettop(L);
  if (mode == 2) {
    luaL_argcheck(L, p->fast != NULL, 3, "query has no fast path");
    luaL_argcheck(L, whole, 2, "the fast path runs on a whole tree");
  }
  if (p->fast != NULL && whole && mode != 1) {
    if (p->fs == NULL) {
      p->fs = (fscratch *)calloc(1, sizeof *p->fs);
      if (p->fs == NULL) return luaL_error(L, "ast: query: out of memory");
    }
    ag_scope *sc = NULL;
    int rc = fast_walk(p, t, withscope && t->sc == NULL ? &sc : NULL);
    if (rc != AG_OK && withscope) rc = fast_walk(p, t, NULL);  /* tree:scope() will tell */
    if (rc != AG_OK) return luaL_error(L, "ast: query: out of memory");
    if (sc != NULL) t->sc = sc;
    fscratch *S = p->fs;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &MATCH1);
    int m1idx = lua_gettop(L);
    lua_createtable(L, (int)(S->nm < 1000000 ? S->nm : 1000000), 0);
    for (size_t i = 0; i < S->nm; i++) {
      TSQueryMatch m = {0, (uint16_t)S->m[i].pattern, (uint16_t)S->m[i].ncap, S->c + S->m[i].first};
      pushmatch(L, p, &m, treeidx, m1idx);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &MATCH1);
  int m1idx = lua_gettop(L);
  lua_newtable(L);
  lua_Integer k = 0;
  qbudget b;
  TSQueryCursorOptions o;
  cursor_exec(L, p, t, n, &b, &o);
  TSQueryMatch m;
  while (ts_query_cursor_next_match(p->cur, &m)) {
    if (!match_ok(p, t, &m, NULL)) continue;
    pushmatch(L, p, &m, treeidx, m1idx);
    lua_rawseti(L, -2, ++k);
  }
  if (b.halted) return query_timeout(L, t);
  return 1;
}

/* q:fast([i]) -> whether q:matches(tree) takes the fast path; with i,
** whether pattern i (1-based) is in the fast path's subset (a chain) */
static int query_fast (lua_State *L) {
  LQuery *p = checkquery(L, 1);
  if (lua_isnoneornil(L, 2)) {
    lua_pushboolean(L, p->fast != NULL);
    return 1;
  }
  lua_Integer i = luaL_checkinteger(L, 2);
  luaL_argcheck(L, i >= 1 && i <= (lua_Integer)ts_query_pattern_count(p->q), 2, "no such pattern");
  lua_pushboolean(L, p->fast != NULL || (p->simple != NULL && p->simple[i - 1]));
  return 1;
}

/* q:pattern_start(i) -> byte offset (0-based) where pattern i (1-based)
** starts in the query's source */
static int query_pattern_start (lua_State *L) {
  LQuery *p = checkquery(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  luaL_argcheck(L, i >= 1 && i <= (lua_Integer)ts_query_pattern_count(p->q), 2, "no such pattern");
  lua_pushinteger(L, (lua_Integer)pattern_start(p, (uint32_t)(i - 1)));
  return 1;
}

/* q:pattern_count() -> number of patterns */
static int query_pattern_count (lua_State *L) {
  LQuery *p = checkquery(L, 1);
  lua_pushinteger(L, (lua_Integer)ts_query_pattern_count(p->q));
  return 1;
}

/* q:captures(tree|node) -> {{name=, node=, pattern=}} in document order */
static int query_captures (lua_State *L) {
  LQuery *p = checkquery(L, 1);
  LTree *t;
  TSNode n = target(L, p, &t);
  int treeidx = lua_gettop(L);
  lua_newtable(L);
  lua_Integer k = 0;
  qbudget b;
  TSQueryCursorOptions o;
  cursor_exec(L, p, t, n, &b, &o);
  TSQueryMatch m;
  uint32_t ci;
  while (ts_query_cursor_next_capture(p->cur, &m, &ci)) {
    if (!match_ok(p, t, &m, NULL)) { ts_query_cursor_remove_match(p->cur, m.id); continue; }
    luaL_checkstack(L, 4, NULL);
    lua_createtable(L, 0, 3);
    pushcapname(L, p, m.captures[ci].index);
    lua_setfield(L, -2, "name");
    pushnode(L, m.captures[ci].node, treeidx);
    lua_setfield(L, -2, "node");
    lua_pushinteger(L, (lua_Integer)m.pattern_index + 1);
    lua_setfield(L, -2, "pattern");
    lua_rawseti(L, -2, ++k);
  }
  if (b.halted) return query_timeout(L, t);
  return 1;
}

static int query_names (lua_State *L) {
  LQuery *p = checkquery(L, 1);
  uint32_t c = ts_query_capture_count(p->q);
  lua_createtable(L, (int)c, 0);
  for (uint32_t i = 0; i < c; i++) {
    pushcapname(L, p, i);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int query_tostring (lua_State *L) {
  LQuery *p = toquery(L, 1);
  if (p->q == NULL) lua_pushliteral(L, "aegis.ast.Query (closed)");
  else lua_pushfstring(L, "aegis.ast.Query (%s, %d patterns%s)", LANGS[p->tsx],
                       (int)ts_query_pattern_count(p->q), p->flat ? ", structure not analysed" : "");
  return 1;
}

/* ----------------------------------------------------------------- diff */

static int parse_fail (lua_State *L, int rc, const char *which, const char *err) {
  luaL_pushfail(L);
  lua_pushfstring(L, "ast: diff '%s': %s", which, err);
  lua_pushstring(L, rc == AG_EINVAL ? "too_large" : ag_errcode(rc));
  return 3;
}


static void pushspan (lua_State *L, const ag_astdiff *d, int side, uint32_t id) {
  ag_astdiff_node nd;
  ag_astdiff_nodeinfo(d, side, id, &nd);
  lua_createtable(L, 0, 5);
  setint(L, "start_byte", nd.sbyte);
  setint(L, "end_byte", nd.ebyte);
  setint(L, "line", (lua_Integer)nd.srow + 1);
  setint(L, "end_line", (lua_Integer)nd.erow + 1);
  setint(L, "size", nd.size);
}

static const char *const ACTS[] = {"insert", "delete", "update", "move", "rename"};

/* diff(a, b, lang, comments, verify, timeout_ms, max_bytes, max_memory)
**   -> {same, src_nodes, dst_nodes, counts, actions, renames, moves, summary,
**       verified?} | nil, msg, code */
static int ast_diff (lua_State *L) {
  size_t la, lb;
  const char *a = luaL_checklstring(L, 1, &la);
  const char *b = luaL_checklstring(L, 2, &lb);
  int tsx = luaL_checkoption(L, 3, "ts", LANGS);
  ag_astdiff_opts o;
  memset(&o, 0, sizeof o);
  o.tsx = tsx;
  o.comments = lua_toboolean(L, 4);
  int verify = lua_toboolean(L, 5);
  lua_Integer ms = luaL_optinteger(L, 6, 0), cap = luaL_optinteger(L, 7, 0), mem = luaL_optinteger(L, 8, 0);
  luaL_argcheck(L, ms >= 0, 6, "timeout must be non-negative");
  luaL_argcheck(L, cap >= 0, 7, "size limit must be non-negative");
  luaL_argcheck(L, mem >= 0, 8, "memory limit must be non-negative");
  o.timeout_us = (uint64_t)ms * 1000u;
  o.max_bytes = (uint64_t)cap;
  o.max_memory = (size_t)mem;
  /* The diff lives in a box so a raise while building the result frees it. */
  ag_astdiff **box = (ag_astdiff **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, "aegis.ast.DiffBox");
  int boxidx = lua_gettop(L);
  char err[AG_ERRLEN];
  int side = 0;
  int rc = ag_astdiff_run(a, la, b, lb, &o, box, &side, err);
  if (rc != AG_OK) return parse_fail(L, rc, side == 1 ? "a" : side == 2 ? "b" : "-", err);
  ag_astdiff *d = *box;
  ag_astdiff_counts c;
  ag_astdiff_getcounts(d, &c);
  lua_createtable(L, 0, 10);                                  /* [.., res] */
  lua_pushboolean(L, c.total == 0);
  lua_setfield(L, -2, "same");
  setint(L, "src_nodes", c.src_nodes);
  setint(L, "dst_nodes", c.dst_nodes);
  lua_createtable(L, 0, 5);
  setint(L, "insert", c.n[AG_ASTDIFF_INSERT]);
  setint(L, "delete", c.n[AG_ASTDIFF_DELETE]);
  setint(L, "update", c.n[AG_ASTDIFF_UPDATE]);
  setint(L, "move", c.n[AG_ASTDIFF_MOVE]);
  setint(L, "rename", c.n[AG_ASTDIFF_RENAME]);
  lua_setfield(L, -2, "counts");
  lua_newtable(L);                                            /* actions */
  lua_newtable(L);                                            /* renames */
  lua_newtable(L);                                            /* moves */
  int resi = lua_gettop(L) - 3;
  lua_Integer na = 0, nr = 0, nm = 0;
  size_t total = ag_astdiff_nactions(d);
  for (size_t i = 0; i < total; i++) {
    ag_astdiff_action ac;
    ag_astdiff_getaction(d, i, &ac);
    luaL_checkstack(L, 8, NULL);
    lua_createtable(L, 0, 8);                                 /* [.., act] */
    lua_pushstring(L, ACTS[ac.kind]);
    lua_setfield(L, -2, "action");
    if (ac.type) { lua_pushstring(L, ac.type); lua_setfield(L, -2, "type"); }
    if (ac.src != AG_ASTDIFF_NONE) { pushspan(L, d, 0, ac.src); lua_setfield(L, -2, "src"); }
    if (ac.dst != AG_ASTDIFF_NONE) { pushspan(L, d, 1, ac.dst); lua_setfield(L, -2, "dst"); }
    if (ac.from) { lua_pushlstring(L, ac.from, ac.from_len); lua_setfield(L, -2, "from"); }
    if (ac.to) { lua_pushlstring(L, ac.to, ac.to_len); lua_setfield(L, -2, "to"); }
    if (ac.kind == AG_ASTDIFF_RENAME) setint(L, "n", ac.n);
    if (ac.kind == AG_ASTDIFF_INSERT || ac.kind == AG_ASTDIFF_DELETE ||
        ac.kind == AG_ASTDIFF_MOVE) setint(L, "nodes", ac.n);
    if (ac.kind == AG_ASTDIFF_RENAME) {
      lua_createtable(L, 0, 3);
      lua_pushlstring(L, ac.from, ac.from_len); lua_setfield(L, -2, "from");
      lua_pushlstring(L, ac.to, ac.to_len); lua_setfield(L, -2, "to");
      setint(L, "n", ac.n);
      lua_rawseti(L, resi + 2, ++nr);
    }
    if (ac.kind == AG_ASTDIFF_MOVE) {
      lua_createtable(L, 0, 2);
      lua_getfield(L, -2, "src"); lua_setfield(L, -2, "src");
      lua_getfield(L, -2, "dst"); lua_setfield(L, -2, "dst");
      lua_rawseti(L, resi + 3, ++nm);
    }
    lua_rawseti(L, resi + 1, ++na);
  }
  lua_setfield(L, resi, "moves");
  lua_setfield(L, resi, "renames");
  lua_setfield(L, resi, "actions");
  /* declarations */
  lua_newtable(L);
  size_t nd = ag_astdiff_ndecls(d);
  for (size_t i = 0; i < nd; i++) {
    ag_astdiff_decl dc;
    ag_astdiff_getdecl(d, i, &dc);
    luaL_checkstack(L, 6, NULL);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, dc.kind); lua_setfield(L, -2, "kind");
    lua_pushlstring(L, dc.name, dc.name_len); lua_setfield(L, -2, "name");
    lua_pushstring(L, dc.change); lua_setfield(L, -2, "change");
    if (dc.to) { lua_pushlstring(L, dc.to, dc.to_len); lua_setfield(L, -2, "to"); }
    if (dc.src != AG_ASTDIFF_NONE) { pushspan(L, d, 0, dc.src); lua_setfield(L, -2, "src"); }
    if (dc.dst != AG_ASTDIFF_NONE) { pushspan(L, d, 1, dc.dst); lua_setfield(L, -2, "dst"); }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, resi, "summary");
  if (verify) {
    lua_pushboolean(L, ag_astdiff_verify(d) == AG_OK);
    lua_setfield(L, resi, "verified");
  }
  ag_astdiff_free(d);
  *box = NULL;
  lua_remove(L, boxidx);
  return 1;
}

static int box_gc (lua_State *L) {
  ag_astdiff **box = (ag_astdiff **)luaL_checkudata(L, 1, "aegis.ast.DiffBox");
  ag_astdiff_free(*box);
  *box = NULL;
  return 0;
}

/* ----------------------------------------------------------------- open */

static const luaL_Reg funcs[] = {
  {"parse", ast_parse}, {"query", ast_query}, {"query_async", ast_query_async},
  {"diff", ast_diff}, {"memory", ast_memory},
  {"tsmem", ast_tsmem},
  {NULL, NULL}
};
static const luaL_Reg tree_meth[] = {
  {"root", tree_root}, {"errors", tree_errors}, {"text", tree_text},
  {"lang", tree_lang}, {"source", tree_source}, {"close", tree_close},
  {"scope", tree_scope}, {"position", tree_position}, {NULL, NULL}
};
static const luaL_Reg tree_meta[] = {
  {"__index", NULL}, {"__gc", tree_gc}, {"__close", tree_gc},
  {"__tostring", tree_tostring}, {NULL, NULL}
};
static const luaL_Reg node_meth[] = {
  {"type", node_type}, {"text", node_text}, {"range", node_range}, {"byte_range", node_byte_range},
  {"children", node_children}, {"named_children", node_named_children},
  {"child_count", node_child_count}, {"named_child_count", node_named_child_count},
  {"child", node_child}, {"named_child", node_named_child},
  {"child_by_field", node_child_by_field}, {"field_name", node_field_name},
  {"parent", node_parent}, {"next_sibling", node_next_sibling},
  {"prev_sibling", node_prev_sibling}, {"next_named_sibling", node_next_named_sibling},
  {"prev_named_sibling", node_prev_named_sibling}, {"is_named", node_is_named},
  {"has_error", node_has_error}, {"is_missing", node_is_missing},
  {"is_error", node_is_error}, {"sexp", node_sexp}, {"tree", node_tree}, {NULL, NULL}
};
static const luaL_Reg node_meta[] = {
  {"__index", NULL}, {"__eq", node_eq}, {"__tostring", node_tostring}, {NULL, NULL}
};
static const luaL_Reg query_meth[] = {
  {"matches", query_matches}, {"captures", query_captures},
  {"capture_names", query_names}, {"close", query_close}, {"fast", query_fast},
  {"pattern_count", query_pattern_count}, {"pattern_start", query_pattern_start}, {NULL, NULL}
};
static const luaL_Reg query_meta[] = {
  {"__index", NULL}, {"__gc", query_gc}, {"__close", query_gc},
  {"__tostring", query_tostring}, {NULL, NULL}
};
static const luaL_Reg pending_meth[] = {{"get", pending_get}, {NULL, NULL}};
static const luaL_Reg pending_meta[] = {
  {"__index", NULL}, {"__gc", pending_gc}, {"__tostring", pending_tostring}, {NULL, NULL}
};
static const luaL_Reg box_meth[] = {{NULL, NULL}};
static const luaL_Reg box_meta[] = {
  {"__index", NULL}, {"__gc", box_gc}, {"__close", box_gc}, {NULL, NULL}
};

AGLIB_API int luaopen_aegis_core_ast(lua_State *L);
AGLIB_API int luaopen_aegis_core_ast (lua_State *L) {
  /* before tree-sitter allocates anything here; the same functions again
  ** when a second state opens the module */
  ag_tsmem_install();
  agL_newclass(L, AST_TREE, tree_meth, tree_meta);
  agL_newclass(L, AST_NODE, node_meth, node_meta);
  luaL_getmetatable(L, AST_NODE);                  /* [mt] */
  lua_getfield(L, -1, "__index");                  /* [mt, methods] */
  lua_pushvalue(L, -2);
  lua_pushlightuserdata(L, (void *)&NODE_MT);      /* [mt, methods, mt, mark] */
  luaL_setfuncs(L, node_meth, 2);                  /* the methods again, as closures (see NODE_MT) */
  lua_pop(L, 2);
  agL_newclass(L, AST_QUERY, query_meth, query_meta);
  agL_newclass(L, AST_PENDING, pending_meth, pending_meta);
  agL_newclass(L, "aegis.ast.DiffBox", box_meth, box_meta);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, match1_index);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &MATCH1);
  lua_newuserdatauv(L, 1, 0);                  /* the parsers' sentinel */
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, parsers_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, parsers);
  luaL_newlib(L, funcs);
  return 1;
}
