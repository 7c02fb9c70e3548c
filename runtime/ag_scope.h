/*
** ag_scope.h: scope analysis of a TypeScript/TSX tree-sitter tree (the
** tree-sitter-typescript 0.23 grammar): scopes, declared variables, and
** references resolved to them, built in one iterative walk (no recursion on
** the tree's depth) plus a linear resolution pass.  No Lua types here; the
** binding is tree:scope() in last.c, documented in docs/ast.md.
**
** The model follows ESLint's scope manager as typescript-eslint extends it,
** because the rules built on it (no-unused-vars, prefer-const) must agree
** with those tools:
**   - scopes: module, function (every function, method, arrow, signature
**     and function type), block, class, catch, for (only with let/const),
**     switch, namespace (namespace/module bodies, `declare global`), enum,
**     type (interfaces and type aliases), static (class static blocks);
**   - `var` goes to the nearest function/module/namespace/static scope;
**     everything else, function declarations included, to the current one;
**   - one variable per (scope, name): repeated declarations and TypeScript
**     declaration merging add definitions to it;
**   - a value reference resolves to the innermost variable with a value
**     meaning, a type reference to one with a type meaning (class, enum,
**     import and namespace have both);
**   - references include the write of an initializer (flag INIT);
**   - in TSX every JSX element also reads `React` (typescript-eslint's
**     default jsxPragma).
*/
#ifndef AG_SCOPE_H
#define AG_SCOPE_H

#include <stddef.h>
#include <stdint.h>

#include <tree_sitter/api.h>

#include "ag_err.h"

#define AG_SCOPE_NONE UINT32_MAX

typedef struct ag_scope ag_scope;

enum {  /* scope kinds; names in ag_scope_kind_name */
  AG_SK_MODULE, AG_SK_FUNCTION, AG_SK_BLOCK, AG_SK_CLASS, AG_SK_CATCH, AG_SK_FOR,
  AG_SK_SWITCH, AG_SK_NAMESPACE, AG_SK_ENUM, AG_SK_TYPE, AG_SK_STATIC, AG_SK_NKINDS
};

enum {  /* variable kinds; names in ag_scope_var_kind_name */
  AG_VK_VAR, AG_VK_LET, AG_VK_CONST, AG_VK_USING, AG_VK_PARAM, AG_VK_FUNCTION, AG_VK_CLASS,
  AG_VK_IMPORT, AG_VK_CATCH, AG_VK_ENUM, AG_VK_TYPE, AG_VK_INTERFACE, AG_VK_NAMESPACE,
  AG_VK_TYPE_PARAM, AG_VK_ENUM_MEMBER, AG_VK_NKINDS
};

enum {  /* ag_scope_var.flags */
  AG_VF_EXPORTED = 1 << 0,     /* declared by an export statement */
  AG_VF_INIT = 1 << 1,         /* has an initializer (or for-in/of, default) */
  AG_VF_VALUE = 1 << 2,        /* has a value meaning */
  AG_VF_TYPE = 1 << 3,         /* has a type meaning */
  AG_VF_SELF = 1 << 4,         /* a class's or function expression's own name, inside it */
  AG_VF_PARAM_PROP = 1 << 5,   /* constructor parameter property (private x) */
  AG_VF_SIGNATURE = 1 << 6,    /* parameter of a body-less signature or function type */
  AG_VF_SETTER = 1 << 7,       /* parameter of a setter */
  AG_VF_TYPE_IMPORT = 1 << 8,  /* every definition is an `import type` */
  AG_VF_USED = 1 << 9,         /* read by a reference typescript-eslint counts as a use */
  AG_VF_DIRECT = 1 << 10,      /* parameter that is a plain identifier (no default, no pattern) */
  AG_VF_DECLARE = 1 << 11      /* inside a `declare` (ambient) declaration */
};

enum {  /* ag_scope_ref.flags */
  AG_RF_READ = 1 << 0,
  AG_RF_WRITE = 1 << 1,
  AG_RF_TYPE = 1 << 2,         /* in a type position */
  AG_RF_TYPEOF = 1 << 3,       /* inside `typeof x` in a type */
  AG_RF_INIT = 1 << 4,         /* the write of a declaration's initializer */
  AG_RF_SELF = 1 << 5,         /* inside the resolved variable's own declaration */
  AG_RF_SELF_UPDATE = 1 << 6,  /* x++ or x += 1 whose value is unused */
  AG_RF_PRAGMA = 1 << 7,       /* implicit `React` read of a JSX element */
  AG_RF_LOOP = 1 << 8,         /* inside a loop of its function */
  AG_RF_PREDICATE = 1 << 9     /* the `x` of a type predicate `x is T` / `asserts x` */
};

enum {  /* ag_scope_scope.flags */
  AG_SF_AMBIENT = 1 << 0,      /* body of a `declare`d namespace/module or `declare global` */
  AG_SF_EXPORT_LIST = 1 << 1   /* has export {..}, export * from, export =, export default <name> */
};

typedef struct ag_scope_scope {
  TSNode node;                 /* the node that opens it */
  uint32_t kind, flags;
  uint32_t parent;             /* AG_SCOPE_NONE for the module scope */
  uint32_t varscope;           /* nearest function/module/namespace/static scope (itself if one) */
  uint32_t end;                /* scopes [index, end) are it and its descendants */
} ag_scope_scope;

typedef struct ag_scope_var {
  const char *name;            /* borrowed from the source; not NUL-terminated */
  uint32_t name_len;
  uint32_t kind, flags, scope;
  uint32_t ndefs;              /* declarations merged into it */
  TSNode id, decl, stmt;       /* of the first declaration */
  uint32_t reads, writes, type_reads;
  uint32_t self_scope;         /* scope of its own body (function, type, enum, namespace) */
  uint32_t first_ref, nrefs;   /* its references: ag_scope_var_ref(s, v, 0..nrefs) */
} ag_scope_var;

typedef struct ag_scope_ref {
  TSNode node;                 /* identifier (or the JSX element for PRAGMA) */
  uint32_t var;                /* AG_SCOPE_NONE when unresolved */
  uint32_t scope;              /* scope it occurs in */
  uint32_t flags;
  uint32_t name;               /* name id: ag_scope_name */
  uint32_t rhs_start, rhs_end; /* for `x = rhs` as a statement: rhs bytes (0, 0 otherwise) */
} ag_scope_ref;

/* Builds the analysis of the tree under root (a program node) parsed from
** src (borrowed: variables point into it; it must outlive the result).  The
** walk keeps its own stack on the heap, so nesting depth costs memory, not C
** stack.  Caller owns *out; free with ag_scope_free.  Fails only without
** memory (*out = NULL). */
int ag_scope_build(TSNode root, const char *src, size_t len, int tsx, ag_scope **out,
                   char err[AG_ERRLEN]);
void ag_scope_free(ag_scope *s);

/* A walk of a tree's visible nodes in preorder: the nodes a TSTreeCursor
** visits with goto_first_child / goto_next_sibling, with the same TSNode
** values and field ids, at a fraction of its per-step cost (it reads
** tree-sitter's subtrees directly; ag_scope.c).  Borrowed by visitors. */
typedef struct ag_scope_walker ag_scope_walker;

/* The field id of the walker's current node in its parent (as
** ts_tree_cursor_current_field_id), 0 when none. */
TSFieldId ag_scope_walker_field(const ag_scope_walker *w);

/* In ag_scope_build_visit's walk with a want table: the least depth of a
** node the walk entered without a visit since the previous visit (a node
** with children of a symbol not wanted), UINT32_MAX when none.  A visitor
** keeping the chain of ancestors marks its entries from there up to the
** current depth as stale: those ancestors were not visited. */
uint32_t ag_scope_walker_gap(const ag_scope_walker *w);

/* The public symbol of the k-th visible ancestor of the walker's node (k = 1:
** its parent, as ts_node_parent would give it), ts_builtin_sym_error for an
** ERROR node, 0 when the node has fewer than k visible ancestors. */
TSSymbol ag_scope_walker_up(const ag_scope_walker *w, uint32_t k);

/* A visitor of a walk: called at every node of the tree, in document order
** (in the analysis's walk, the nodes the analysis itself skips, inside
** strings, comments and other leaves, included), with the node, its public
** symbol, its depth (the root is 0) and the walker on that node (borrowed,
** for ag_scope_walker_field).  Returns 0 when out of memory (the walk then
** fails).  So another pass over the tree (rule queries) shares the one
** walk: stepping through the tree is most of the cost of a walk. */
typedef int (*ag_scope_visit)(void *ud, TSNode n, TSSymbol sym, uint32_t depth, const ag_scope_walker *w);

/* Walks root and the nodes under it (the walk never leaves it) calling
** visit at every node.  AG_OK, or AG_ENOMEM (visit returned 0, or no memory
** for the walker's stack). */
int ag_scope_walk(TSNode root, ag_scope_visit visit, void *ud);

/* ag_scope_walk visiting only the nodes a want table asks for, as
** ag_scope_build_visit's (want, parents and nwant as there; want NULL:
** every node); ag_scope_walker_gap tells a visit where ancestors went
** unvisited.  skip (nskip entries), made by ag_scope_walk_skip for the
** same want table and the tree's language, lets the walker pass the
** anonymous leaves not wanted without stopping; NULL: it stops at each.
** All borrowed for the call. */
int ag_scope_walk_want(TSNode root, ag_scope_visit visit, void *ud, const uint8_t *want,
                       const TSSymbol *parents, uint32_t nwant, const uint8_t *skip, uint32_t nskip);

/* The skip table of ag_scope_walk_want for a want table of lang (made once
** per table: it reads every symbol of the grammar), its size in *nskip;
** caller frees.  NULL without memory. */
uint8_t *ag_scope_walk_skip(const TSLanguage *lang, const uint8_t *want, uint32_t nwant, uint32_t *nskip);

/* Parents listed per symbol in ag_scope_build_visit's `parents`. */
#define AG_SCOPE_PARENTS 4

/* ag_scope_build calling visit(ud, ...) at every node (visit may be NULL)
** but the ones it does not want: with want non-NULL, a node whose public
** symbol s is below nwant and has want[s] == 0 is not visited (a visitor
** that matches chains of symbols needs no node of a symbol no chain has),
** nor one with want[s] == 2 whose parent's public symbol (as
** ag_scope_walker_up(w, 1) gives it) is not among parents[s *
** AG_SCOPE_PARENTS ...] (up to AG_SCOPE_PARENTS symbols, 0 ends the list
** sooner: a symbol only ever the last step of chains, under those), except
** an anonymous node with children and the nodes under a node the analysis
** does not enter; ag_scope_walker_gap tells the next visit where ancestors
** went unvisited.  want and parents (NULL when no want[s] is 2) are
** borrowed for the call. */
int ag_scope_build_visit(TSNode root, const char *src, size_t len, int tsx, ag_scope_visit visit,
                         void *ud, const uint8_t *want, const TSSymbol *parents, uint32_t nwant,
                         ag_scope **out, char err[AG_ERRLEN]);

/* Where a function is written: for every function declaration, function
** or generator expression, arrow function and method, its parent with
** parentheses skipped, the child of that parent it sits under (the
** outermost parenthesis, or the function), and the grandparent (null at
** the root).  Rules reading a function's ESTree parent use this: tree-sitter
** 0.20 finds a parent by walking down from the root. */
typedef struct ag_scope_fnctx {
  TSNode fn, parent, from, grand;
  /* typescript-eslint's ancestorHasReturnType walk from the parent: the
  ** nearest ancestor that is a function with a return type (1), a variable
  ** declarator or class property (1 when it has a type annotation), or an
  ** expression statement (0); 0 when there is none */
  int typed_ancestor;
  /* typescript-eslint's doesImmediatelyReturnFunctionExpression: an arrow
  ** whose body is a function, or at least one return and every return of
  ** this function (not of nested ones) returning a function expression */
  int returns_function;
  uint32_t nret, nret_fn;      /* its returns; those returning a function */
} ag_scope_fnctx;

/* The context of the function node `fn`, or NULL if it is not one. */
const ag_scope_fnctx *ag_scope_fn_context(const ag_scope *s, TSNode fn);

/* Counts of scopes, variables and references (any pointer may be NULL). */
void ag_scope_counts(const ag_scope *s, uint32_t *nscopes, uint32_t *nvars, uint32_t *nrefs);
/* The i-th scope, variable, reference (i below its count).  Borrowed, valid
** while s lives.  Scope 0 is the module scope; a variable or reference
** names its scope by index; variables and references are in source order. */
const ag_scope_scope *ag_scope_scope_at(const ag_scope *s, uint32_t i);
const ag_scope_var *ag_scope_var_at(const ag_scope *s, uint32_t i);
const ag_scope_ref *ag_scope_ref_at_index(const ag_scope *s, uint32_t i);
/* The i-th reference of variable v, in source order. */
const ag_scope_ref *ag_scope_var_ref(const ag_scope *s, const ag_scope_var *v, uint32_t i);
/* The reference whose node starts at byte `start` (identifiers only), or NULL. */
const ag_scope_ref *ag_scope_ref_at(const ag_scope *s, uint32_t start);
const char *ag_scope_name(const ag_scope *s, uint32_t name, uint32_t *len);
const char *ag_scope_kind_name(uint32_t kind);
const char *ag_scope_var_kind_name(uint32_t kind);

#endif
