/*
** walkcheck.c: checks the walker of runtime/ag_scope.c (ag_scope_walk, which
** reads tree-sitter's internal subtrees) against tree-sitter's own
** TSTreeCursor: for every file named on stdin (one path a line), the same
** nodes in the same order, with the same TSNode values, public symbols,
** depths and field ids, walking from the root and from the root's first
** named child.  Run by bench/enforce/walkcheck.sh; worth running after any
** change of the tree-sitter runtime (tools/tsruntime.sh).  Exit 1 on any
** difference.  Files ending in .tsx are parsed as TSX, others as TypeScript
** (WALKCHECK_TSX=1: all as TSX).
*/
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tree_sitter/api.h>

#include "ag_scope.h"

const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);

typedef struct rec { TSNode n; TSSymbol sym; uint32_t depth; TSFieldId f; } rec;
typedef struct recs { rec *r; size_t n, cap; } recs;

static int visit (void *ud, TSNode n, TSSymbol sym, uint32_t depth, const ag_scope_walker *w) {
  recs *R = (recs *)ud;
  if (R->n == R->cap) {
    size_t c = R->cap ? R->cap * 2 : 1024;
    rec *p = (rec *)realloc(R->r, c * sizeof *p);
    if (p == NULL) return 0;
    R->r = p;
    R->cap = c;
  }
  R->r[R->n++] = (rec){n, sym, depth, ag_scope_walker_field(w)};
  return 1;
}

/* 1 when the walk from root matches the cursor's; reports the first difference. */
static int check (const char *path, TSNode root, recs *R) {
  R->n = 0;
  if (ag_scope_walk(root, visit, R) != 0) { fprintf(stderr, "%s: out of memory\n", path); return 0; }
  TSTreeCursor c = ts_tree_cursor_new(root);
  size_t i = 0;
  uint32_t depth = 0;
  int ok = 1;
  for (;;) {
    TSNode n = ts_tree_cursor_current_node(&c);
    if (i >= R->n || memcmp(&n, &R->r[i].n, sizeof n) != 0 || ts_node_symbol(n) != R->r[i].sym ||
        depth != R->r[i].depth || ts_tree_cursor_current_field_id(&c) != R->r[i].f) {
      fprintf(stderr, "%s: node %zu differs\n", path, i);
      ok = 0;
      break;
    }
    i++;
    if (ts_tree_cursor_goto_first_child(&c)) { depth++; continue; }
    while (!ts_tree_cursor_goto_next_sibling(&c)) {
      if (!ts_tree_cursor_goto_parent(&c)) goto done;
      depth--;
    }
  }
done:
  if (ok && i != R->n) { fprintf(stderr, "%s: cursor %zu nodes, walker %zu\n", path, i, R->n); ok = 0; }
  ts_tree_cursor_delete(&c);
  return ok;
}

int main (void) {
  long files = 0, nodes = 0, bad = 0;
  int all_tsx = getenv("WALKCHECK_TSX") != NULL;
  char path[4096];
  recs R = {NULL, 0, 0};
  while (fgets(path, sizeof path, stdin)) {
    path[strcspn(path, "\n")] = '\0';
    if (path[0] == '\0') continue;
    FILE *f = fopen(path, "rb");
    if (f == NULL) { fprintf(stderr, "%s: cannot open\n", path); bad++; continue; }
    char *src = NULL;
    size_t len = 0, cap = 0, k;
    char buf[65536];
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
      if (len + k > cap) {
        cap = (len + k) * 2;
        char *p = (char *)realloc(src, cap);
        if (p == NULL) { fprintf(stderr, "out of memory\n"); return 2; }
        src = p;
      }
      memcpy(src + len, buf, k);
      len += k;
    }
    fclose(f);
    size_t pl = strlen(path);
    int tsx = all_tsx || (pl > 4 && strcmp(path + pl - 4, ".tsx") == 0);
    TSParser *p = ts_parser_new();
    ts_parser_set_language(p, tsx ? tree_sitter_tsx() : tree_sitter_typescript());
    TSTree *t = ts_parser_parse_string(p, NULL, src ? src : "", (uint32_t)len);
    TSNode root = ts_tree_root_node(t);
    if (!check(path, root, &R)) bad++;
    nodes += (long)R.n;
    TSNode inner = ts_node_named_child(root, 0);
    if (!ts_node_is_null(inner) && !check(path, inner, &R)) bad++;
    files++;
    ts_tree_delete(t);
    ts_parser_delete(p);
    free(src);
  }
  free(R.r);
  printf("walkcheck: %ld files, %ld nodes, %ld differences\n", files, nodes, bad);
  return bad != 0;
}
