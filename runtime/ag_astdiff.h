/*
** ag_astdiff.h: semantic diff of two TypeScript/TSX sources over their
** tree-sitter trees (GumTree family: top-down isomorphic subtrees, bottom-up
** containers by dice, simple recovery; Chawathe edit script with children
** aligned by a weighted LIS) plus renames, normalisation and a declaration
** summary.  No Lua types here; the binding is in last.c.
**
** The trees compared are normalised: comments dropped (unless asked),
** punctuation tokens dropped, string quotes and \' \" escapes folded into the
** string's label, parentheses around a primary expression spliced, JSX text
** whitespace collapsed.  Node ids are preorder ranks in each normalised tree;
** id 0 is a virtual root above the program on both sides.
*/
#ifndef AG_ASTDIFF_H
#define AG_ASTDIFF_H

#include <stddef.h>
#include <stdint.h>

#include "ag_err.h"

#define AG_ASTDIFF_NONE UINT32_MAX

enum { AG_ASTDIFF_INSERT, AG_ASTDIFF_DELETE, AG_ASTDIFF_UPDATE, AG_ASTDIFF_MOVE,
       AG_ASTDIFF_RENAME, AG_ASTDIFF_NKINDS };

typedef struct ag_astdiff ag_astdiff;

typedef struct ag_astdiff_opts {
  int tsx;                /* 1: TSX grammar for both sources */
  int comments;           /* 1: comments are nodes (and so changes) */
  uint64_t timeout_us;    /* per parse; 0 = none */
  uint64_t max_bytes;     /* per source; 0 = none (tree-sitter's 4 GiB) */
  size_t max_memory;      /* bytes tree-sitter may hold during each parse
                          ** (ag_tsmem_parse); 0 = none */
} ag_astdiff_opts;

typedef struct ag_astdiff_node {
  const char *type;       /* borrowed; valid while the diff lives */
  uint32_t sbyte, ebyte;  /* byte range in its source, end exclusive */
  uint32_t srow, erow;    /* 0-based rows */
  uint32_t size;          /* nodes in its normalised subtree */
} ag_astdiff_node;

typedef struct ag_astdiff_counts {
  size_t n[AG_ASTDIFF_NKINDS];
  size_t total;           /* actions of every kind */
  size_t src_nodes, dst_nodes;  /* normalised nodes, virtual root excluded */
} ag_astdiff_counts;

/* An action of the edit script.  src is a node of the first tree (delete,
** update, move, rename: the declaration), dst of the second (insert, update,
** move, rename), else AG_ASTDIFF_NONE.  from/to (update, rename) are borrowed
** labels.  n: subtree size for insert/delete/move, occurrences for rename. */
typedef struct ag_astdiff_action {
  int kind;
  const char *type;
  uint32_t src, dst;
  const char *from, *to;
  size_t from_len, to_len;
  uint32_t n;
} ag_astdiff_action;

/* A declaration-level change.  kind: "function", "class", "method",
** "interface", "type", "enum", "namespace", "export"; change: "added",
** "removed", "renamed" (to = new name), "moved", "signature", "body",
** "exported", "unexported".  name borrows from the sources (valid while
** both the diff and the sources given to ag_astdiff_run live). */
typedef struct ag_astdiff_decl {
  const char *kind, *change;
  const char *name, *to;
  size_t name_len, to_len;
  uint32_t src, dst;
} ag_astdiff_decl;

/*
** Parses a and b and computes the diff.  Borrows a and b for the life of the
** diff (declaration names point into them).  On failure *out = NULL, *side
** is 1 or 2 for the source that failed to parse (AG_ETIMEOUT, AG_EINVAL for
** too large) and 0 otherwise (AG_ENOMEM).  Caller owns *out; free with
** ag_astdiff_free.
*/
int ag_astdiff_run(const char *a, size_t la, const char *b, size_t lb,
                   const ag_astdiff_opts *opts, ag_astdiff **out, int *side,
                   char err[AG_ERRLEN]);

void ag_astdiff_free(ag_astdiff *d);

void ag_astdiff_getcounts(const ag_astdiff *d, ag_astdiff_counts *c);
size_t ag_astdiff_nactions(const ag_astdiff *d);
void ag_astdiff_getaction(const ag_astdiff *d, size_t i, ag_astdiff_action *a);
size_t ag_astdiff_ndecls(const ag_astdiff *d);
void ag_astdiff_getdecl(const ag_astdiff *d, size_t i, ag_astdiff_decl *out);
/* side 0: the first tree, 1: the second. */
void ag_astdiff_nodeinfo(const ag_astdiff *d, int side, uint32_t id, ag_astdiff_node *out);

/*
** Applies the edit script to a fresh copy of the first normalised tree,
** using nothing of the second but for the final comparison, and checks that
** the result equals the second tree (types, labels, shape).  AG_OK when it
** does, AG_ECORRUPT when not, AG_ENOMEM.
*/
int ag_astdiff_verify(const ag_astdiff *d);

#endif
