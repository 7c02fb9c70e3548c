/*
** ag_astdiff.c: semantic AST diff (see ag_astdiff.h).
**
** Phases, all iterative (no recursion on tree depth) and linear in memory:
**   1. build: tree-sitter CST -> normalised tree in preorder arrays, with a
**      hash (types+labels) and a structure hash (types only) per subtree;
**   2. top-down: isomorphic subtrees by decreasing height, unique pairs first,
**      ambiguous ones by the dice of their parents (GumTree);
**   3. bottom-up: containers by dice >= 0.5 over mapped descendants, each
**      followed by the "simple" recovery of its children: LCS of isomorphic,
**      LCS of same-structure, then types unique on both sides, recursively;
**   4. edit script (Chawathe et al.): BFS of the second tree, insert (whole
**      subtrees as one action), update, move; children aligned by a LIS
**      weighted by subtree size; deletes of whole unmapped subtrees;
**   5. renames: updates of a declared name and all its mapped references in
**      the declaration's scope become one action; declaration summary.
** Quadratic steps are bounded: LCS tables hold at most LCS_CAP cells (common
** prefix and suffix are trimmed first), ambiguous top-down groups are paired
** within a window.  Allocation failure longjmps to ag_astdiff_run, which
** frees everything the diff holds (every buffer hangs off the diff).
*/
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tree_sitter/api.h>

#include "ag_astdiff.h"
#include "ag_langtab.h"
#include "ag_tslex.h"
#include "ag_tsmem.h"

const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);

#define NONE AG_ASTDIFF_NONE
#define MIN_HEIGHT 2          /* top-down ignores leaves (GumTree's default) */
#define WINDOW 8              /* ambiguous top-down groups: pairs tried per node */
#define LCS_CAP (1u << 20)    /* cells of an LCS table */
#define DICE_MIN 0.5
#define DICE_SAMPLE 1024      /* descendants a dice coefficient looks at */
#define SCAN_MAX 1024         /* bottom-up: descendants scanned for candidates */
#define WALK_MAX 64           /* bottom-up: ancestors walked up per descendant */
#define CAND_MAX 16           /* bottom-up: candidates per node */

/* ------------------------------------------------------------ structures */

typedef struct tnode {
  uint64_t hash, shash;       /* subtree: types+labels, types only */
  uint32_t type, label, field;  /* interned; label 0 = none */
  uint32_t parent, kid0, nkid, idx;  /* idx: rank among the parent's kids */
  uint32_t size, height;
  uint32_t sbyte, ebyte, srow, erow;
} tnode;

typedef struct tree {
  tnode *n;
  uint32_t nn, cap;
  uint32_t *kids;
  const char *src;
  size_t len;
} tree;

typedef struct wnode { uint32_t type, label, parent, nk, cap; uint32_t *kids; } wnode;
typedef struct wtree { wnode *n; uint32_t nn, cap; } wtree;

typedef struct act {
  int kind;
  uint32_t w, parent, pos;
  uint32_t type, label, from;
  uint32_t payload, npayload, ids, nids;
  uint32_t src, dst, n;
} act;

typedef struct prec { uint32_t type, label, nkid; } prec;

typedef struct decl {
  const char *kind, *change;
  uint32_t src, dst, to;      /* to: label id of the new name */
} decl;

/* Max-heap of node ids by height. */
typedef struct heap { uint32_t *v; size_t n, cap; const tnode *nodes; } heap;
typedef struct cand { uint32_t a, b, pa, pb; double dice, pos; } cand;

typedef struct istr { const char *s; uint32_t len; uint64_t h; } istr;

/* Interned names the algorithm looks at. */
enum {
  K_ROOT, K_KEYWORD, K_OPERATOR, K_COMMENT, K_STRING, K_STRING_FRAGMENT,
  K_ESCAPE, K_JSX_TEXT, K_PAREN, K_BINARY, K_IDENT, K_PROP_IDENT, K_TYPE_IDENT,
  K_SHORT_PROP, K_SHORT_PROP_PAT, K_PRIV_PROP,
  /* declarations */
  K_FUNCTION, K_GENERATOR, K_CLASS, K_ABSTRACT_CLASS, K_METHOD, K_INTERFACE,
  K_TYPE_ALIAS, K_ENUM, K_MODULE, K_INTERNAL_MODULE, K_EXPORT, K_VAR_DECLARATOR,
  K_ARROW, K_FUNCTION_EXPR, K_FUNCTION_EXPR2, K_GENERATOR_EXPR, K_ABSTRACT_METHOD,
  /* scopes and declaration sites */
  K_PROGRAM, K_BLOCK, K_CLASS_BODY, K_FOR, K_FOR_IN, K_CATCH, K_REQ_PARAM,
  K_OPT_PARAM, K_TYPE_PARAM, K_ARRAY_PATTERN, K_SWITCH_BODY,
  /* fields */
  K_F_NAME, K_F_BODY, K_F_PATTERN, K_F_PARAMETER, K_F_VALUE, K_F_DECLARATION,
  K_NKNOWN
};

static const char *const KNOWN[K_NKNOWN] = {
  "#root", "keyword", "operator", "comment", "string", "string_fragment",
  "escape_sequence", "jsx_text", "parenthesized_expression", "binary_expression",
  "identifier", "property_identifier", "type_identifier",
  "shorthand_property_identifier", "shorthand_property_identifier_pattern",
  "private_property_identifier",
  "function_declaration", "generator_function_declaration", "class_declaration",
  "abstract_class_declaration", "method_definition", "interface_declaration",
  "type_alias_declaration", "enum_declaration", "module", "internal_module",
  "export_statement", "variable_declarator", "arrow_function", "function_expression",
  "function", "generator_function", "abstract_method_signature",
  "program", "statement_block", "class_body", "for_statement", "for_in_statement",
  "catch_clause", "required_parameter", "optional_parameter", "type_parameter",
  "array_pattern", "switch_body",
  "name", "body", "pattern", "parameter", "value", "declaration",
};

/* Types whose parentheses are redundant. */
static const char *const PRIMARY[] = {
  "identifier", "this", "super", "number", "string", "template_string", "true",
  "false", "null", "undefined", "member_expression", "subscript_expression",
  "call_expression", "parenthesized_expression", "array", "object", "regex",
  "non_null_expression", NULL
};

/* Anonymous tokens that carry no meaning once the tree is built. */
static const char *const PUNCT[] = {
  "(", ")", "[", "]", "{", "}", ";", ",", ".", ":", "=>", "\"", "'", "`", "${",
  "</", "/>", NULL
};

struct ag_astdiff {
  jmp_buf jb;
  /* interner: id -> string; open addressing table of ids (0 = empty) */
  istr *strs;
  uint32_t nstr, capstr;
  uint32_t *slots;
  uint32_t nslots;
  char **chunks;
  size_t nchunks, capchunks, chunkleft;
  char *chunkcur;
  uint32_t K[K_NKNOWN];
  uint32_t *symtype[2];       /* per grammar: TSSymbol -> type id + 1 */
  uint32_t nsym[2];
  /* parse state, held here so an allocation failure can release it */
  TSParser *parser;
  TSTree *ts;
  TSTreeCursor cur;
  int hascur;
  int comments, tsx;
  tree t[2];
  uint32_t *m1, *m2;
  /* edit script */
  wtree w;
  uint32_t *wm, *m2w;
  uint8_t *inw, *inb, *moved;
  act *acts;
  size_t nacts, capacts;
  prec *pay;
  size_t npay, cappay;
  uint32_t *ids;
  size_t nids, capids;
  decl *decls;
  size_t ndecls, capdecls;
  size_t counts[AG_ASTDIFF_NKINDS];
  /* scratch, reused */
  uint32_t *s[8];
  size_t scap[8];
  uint32_t *lcs;
  size_t lcscap;
  heap h1, h2;                /* top-down */
  cand *cands;
  size_t capc;
  uint8_t *gone;              /* renames: actions folded into a rename */
};

static void oom (ag_astdiff *d) { longjmp(d->jb, 1); }

static void *xrealloc (ag_astdiff *d, void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL) oom(d);
  return q;
}

/* Grows *p (elements of size es, capacity *cap) to hold at least n. */
static void grow (ag_astdiff *d, void **p, size_t *cap, size_t n, size_t es) {
  if (n <= *cap) return;
  size_t c = *cap ? *cap : 16;
  while (c < n) c *= 2;
  *p = xrealloc(d, *p, c * es);
  *cap = c;
}

static uint32_t *scratch (ag_astdiff *d, int i, size_t n) {
  grow(d, (void **)&d->s[i], &d->scap[i], n, sizeof(uint32_t));
  return d->s[i];
}

/* -------------------------------------------------------------- interner */

static uint64_t strhash (const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
  return h;
}

static uint64_t mix (uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 29);
}

static void rehash (ag_astdiff *d) {
  uint32_t ns = d->nslots ? d->nslots * 2 : 1024;
  uint32_t *sl = (uint32_t *)calloc(ns, sizeof *sl);
  if (sl == NULL) oom(d);
  for (uint32_t id = 1; id < d->nstr; id++) {
    uint32_t j = (uint32_t)d->strs[id].h & (ns - 1);
    while (sl[j]) j = (j + 1) & (ns - 1);
    sl[j] = id;
  }
  free(d->slots);
  d->slots = sl;
  d->nslots = ns;
}

static uint32_t intern (ag_astdiff *d, const char *s, size_t n) {
  uint64_t h = strhash(s, n);
  if ((d->nstr + 1) * 2 >= d->nslots) rehash(d);
  uint32_t j = (uint32_t)h & (d->nslots - 1);
  for (uint32_t id; (id = d->slots[j]) != 0; j = (j + 1) & (d->nslots - 1)) {
    const istr *e = &d->strs[id];
    if (e->h == h && e->len == n && memcmp(e->s, s, n) == 0) return id;
  }
  if (n + 1 > d->chunkleft) {
    size_t sz = n + 1 > 65536 ? n + 1 : 65536;
    grow(d, (void **)&d->chunks, &d->capchunks, d->nchunks + 1, sizeof(char *));
    d->chunkcur = (char *)malloc(sz);
    if (d->chunkcur == NULL) oom(d);
    d->chunks[d->nchunks++] = d->chunkcur;
    d->chunkleft = sz;
  }
  char *c = d->chunkcur;
  memcpy(c, s, n);
  c[n] = '\0';
  d->chunkcur += n + 1;
  d->chunkleft -= n + 1;
  size_t cap = d->capstr;
  grow(d, (void **)&d->strs, &cap, (size_t)d->nstr + 1, sizeof(istr));
  d->capstr = (uint32_t)cap;
  uint32_t id = d->nstr++;
  d->strs[id] = (istr){c, (uint32_t)n, h};
  d->slots[j] = id;
  return id;
}

static uint32_t internz (ag_astdiff *d, const char *s) { return intern(d, s, strlen(s)); }

/* ----------------------------------------------------------------- build */

static int in_list (const char *s, const char *const *list) {
  for (; *list; list++) if (strcmp(s, *list) == 0) return 1;
  return 0;
}

static uint32_t newnode (ag_astdiff *d, tree *t, uint32_t type, uint32_t label,
                         uint32_t field, uint32_t parent, TSNode n, int real) {
  size_t cap = t->cap;
  grow(d, (void **)&t->n, &cap, (size_t)t->nn + 1, sizeof(tnode));
  t->cap = (uint32_t)cap;
  tnode *x = &t->n[t->nn];
  memset(x, 0, sizeof *x);
  x->type = type;
  x->label = label;
  x->field = field;
  x->parent = parent;
  if (real) {
    x->sbyte = ts_node_start_byte(n);
    x->ebyte = ts_node_end_byte(n);
    x->srow = ts_node_start_point(n).row;
    x->erow = ts_node_end_point(n).row;
  }
  return t->nn++;
}

/* Label of a string literal: its contents without quotes, \' and \" folded. */
static uint32_t string_label (ag_astdiff *d, tree *t, TSNode n, int side) {
  size_t cap = 0, len = 0;
  char *buf = NULL;
  uint32_t c = ts_node_child_count(n);
  for (uint32_t i = 0; i < c; i++) {
    TSNode k = ts_node_child(n, i);
    const char *ty = ts_node_type(k);
    uint32_t s = ts_node_start_byte(k), e = ts_node_end_byte(k);
    if (e > t->len || s > e) continue;
    const char *p = t->src + s;
    size_t m = e - s;
    if (strcmp(ty, "escape_sequence") == 0 && m == 2 && (p[1] == '\'' || p[1] == '"')) { p++; m = 1; }
    else if (strcmp(ty, "string_fragment") != 0 && strcmp(ty, "escape_sequence") != 0) continue;
    if (len + m > cap) {
      size_t nc = (len + m) * 2 + 16;
      char *nb = (char *)realloc(buf, nc);
      if (nb == NULL) { free(buf); oom(d); }
      buf = nb;
      cap = nc;
    }
    memcpy(buf + len, p, m);
    len += m;
  }
  (void)side;
  /* quote-independent, and never equal to an identifier's label */
  uint32_t id;
  if (buf == NULL) id = intern(d, "\"", 1);
  else {
    char *nb = (char *)realloc(buf, len + 1);
    if (nb == NULL) { free(buf); oom(d); }
    buf = nb;
    memmove(buf + 1, buf, len);
    buf[0] = '"';
    id = intern(d, buf, len + 1);
    free(buf);
  }
  return id;
}

/* JSX text with whitespace runs collapsed and trimmed; 0 when blank. */
static uint32_t jsx_label (ag_astdiff *d, const char *p, size_t n) {
  char *buf = (char *)malloc(n + 1);
  if (buf == NULL) oom(d);
  size_t k = 0;
  int sp = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = p[i];
    if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') { sp = 1; continue; }
    if (sp && k > 0) buf[k++] = ' ';
    sp = 0;
    buf[k++] = ch;
  }
  uint32_t id = k ? intern(d, buf, k) : 0;
  free(buf);
  return id;
}

enum { B_DROP, B_SPLICE, B_LEAF, B_NODE };

static uint32_t type_of (ag_astdiff *d, int tsx, TSNode n) {
  TSSymbol sym = ts_node_symbol(n);
  if (sym < d->nsym[tsx]) {
    if (d->symtype[tsx][sym] == 0) d->symtype[tsx][sym] = internz(d, ts_node_type(n)) + 1;
    return d->symtype[tsx][sym] - 1;
  }
  return internz(d, ts_node_type(n));  /* ERROR */
}

static int redundant_paren (TSNode n) {
  uint32_t c = ts_node_named_child_count(n), real = 0;
  TSNode only = {0};
  for (uint32_t i = 0; i < c; i++) {
    TSNode k = ts_node_named_child(n, i);
    if (strcmp(ts_node_type(k), "comment") == 0) continue;
    only = k;
    real++;
  }
  return real == 1 && in_list(ts_node_type(only), PRIMARY);
}

/* Classifies a CST node; *type and *label get the normalised ones. */
static int classify (ag_astdiff *d, tree *t, TSNode n, uint32_t ptype, int side,
                     uint32_t *type, uint32_t *label) {
  const char *ty = ts_node_type(n);
  uint32_t s = ts_node_start_byte(n), e = ts_node_end_byte(n);
  if (e > t->len) e = (uint32_t)t->len;
  if (s > e) s = e;
  *label = 0;
  if (!ts_node_is_named(n)) {
    if (in_list(ty, PUNCT)) return B_DROP;
    if ((strcmp(ty, "<") == 0 || strcmp(ty, ">") == 0) &&
        ptype != d->K[K_BINARY])
      return B_DROP;
    if (ts_node_child_count(n) > 0) {  /* an anonymous node with kids: rare */
      *type = type_of(d, d->tsx, n);
      return B_NODE;
    }
    unsigned char c0 = (unsigned char)ty[0];
    *type = d->K[((c0 | 32) >= 'a' && (c0 | 32) <= 'z') || c0 == '_' ? K_KEYWORD : K_OPERATOR];
    *label = internz(d, ty);
    return B_LEAF;
  }
  *type = type_of(d, d->tsx, n);
  if (*type == d->K[K_COMMENT] && !d->comments) return B_DROP;
  if (*type == d->K[K_STRING]) { *label = string_label(d, t, n, side); return B_LEAF; }
  if (*type == d->K[K_JSX_TEXT]) {
    *label = jsx_label(d, t->src + s, e - s);
    return *label ? B_LEAF : B_DROP;
  }
  if (*type == d->K[K_PAREN] && redundant_paren(n)) return B_SPLICE;
  if (ts_node_child_count(n) == 0) { *label = intern(d, t->src + s, e - s); return B_LEAF; }
  return B_NODE;
}

/* Walks the CST with a cursor (kept in d for cleanup) into t: node 0 is the
** virtual root.  Then children lists, sizes, heights and hashes. */
static void build (ag_astdiff *d, tree *t, TSTree *ts, int side) {
  t->nn = 0;
  newnode(d, t, d->K[K_ROOT], 0, 0, NONE, (TSNode){0}, 0);
  TSNode root = ts_tree_root_node(ts);
  d->cur = ts_tree_cursor_new(root);
  d->hascur = 1;
  /* per cursor depth: the kept parent of the nodes at that depth, and the
  ** field a spliced wrapper passes on */
  size_t depth = 0;
  uint32_t *kp = scratch(d, 0, 64), *fo = scratch(d, 1, 64);
  kp[0] = 0;
  fo[0] = 0;
  for (;;) {
    TSNode n = ts_tree_cursor_current_node(&d->cur);
    const char *fname = ts_tree_cursor_current_field_name(&d->cur);
    uint32_t field = fo[depth] ? fo[depth] : fname ? internz(d, fname) : 0;
    uint32_t type = 0, label = 0;
    int k = classify(d, t, n, t->n[kp[depth]].type, side, &type, &label);
    uint32_t id = NONE;
    if (k == B_LEAF || k == B_NODE) id = newnode(d, t, type, label, field, kp[depth], n, 1);
    if ((k == B_NODE || k == B_SPLICE) && ts_tree_cursor_goto_first_child(&d->cur)) {
      kp = scratch(d, 0, depth + 2);
      fo = scratch(d, 1, depth + 2);
      kp[depth + 1] = k == B_NODE ? id : kp[depth];
      fo[depth + 1] = k == B_SPLICE ? field : 0;
      depth++;
      continue;
    }
    for (;;) {
      if (ts_tree_cursor_goto_next_sibling(&d->cur)) break;
      if (depth == 0 || !ts_tree_cursor_goto_parent(&d->cur)) goto done;
      depth--;
    }
  }
done:
  ts_tree_cursor_delete(&d->cur);
  d->hascur = 0;
  /* children lists: counting sort by parent, preorder keeps sibling order */
  uint32_t nn = t->nn;
  tnode *x = t->n;
  t->kids = (uint32_t *)xrealloc(d, t->kids, (size_t)nn * sizeof(uint32_t));
  for (uint32_t i = 1; i < nn; i++) x[x[i].parent].nkid++;
  uint32_t off = 0;
  for (uint32_t i = 0; i < nn; i++) { x[i].kid0 = off; off += x[i].nkid; x[i].nkid = 0; }
  for (uint32_t i = 1; i < nn; i++) {
    tnode *p = &x[x[i].parent];
    x[i].idx = p->nkid;
    t->kids[p->kid0 + p->nkid++] = i;
  }
  for (uint32_t i = nn; i-- > 0;) {
    tnode *p = &x[i];
    /* from the strings, not the ids: ids depend on which source was read
    ** first, and the canonical order of the matching must not */
    uint64_t th = d->strs[p->type].h, lh = p->label ? d->strs[p->label].h : 0;
    uint64_t h = mix(mix(th, lh), p->nkid), sh = mix(th, p->nkid);
    p->size = 1;
    p->height = 1;
    for (uint32_t j = 0; j < p->nkid; j++) {
      const tnode *c = &x[t->kids[p->kid0 + j]];
      h = mix(h, c->hash);
      sh = mix(sh, c->shash);
      p->size += c->size;
      if (c->height + 1 > p->height) p->height = c->height + 1;
    }
    p->hash = h;
    p->shash = sh;
  }
  /* the virtual root spans the program */
  if (nn > 1) {
    x[0].sbyte = x[1].sbyte; x[0].ebyte = x[1].ebyte;
    x[0].srow = x[1].srow; x[0].erow = x[1].erow;
  }
}

/* -------------------------------------------------------------- matching */

#define T1 (&d->t[0])
#define T2 (&d->t[1])

static void map (ag_astdiff *d, uint32_t a, uint32_t b) { d->m1[a] = b; d->m2[b] = a; }

static int iso (const ag_astdiff *d, uint32_t a, uint32_t b, int labels) {
  const tnode *x = T1->n, *y = T2->n;
  if ((labels ? x[a].hash != y[b].hash : x[a].shash != y[b].shash) || x[a].size != y[b].size)
    return 0;
  for (uint32_t k = 0; k < x[a].size; k++) {
    const tnode *p = &x[a + k], *q = &y[b + k];
    if (p->type != q->type || p->nkid != q->nkid || (labels && p->label != q->label)) return 0;
  }
  return 1;
}

/* Maps two same-shaped subtrees node by node (preorder ranks line up). */
static void mapsub (ag_astdiff *d, uint32_t a, uint32_t b) {
  for (uint32_t k = 0; k < T1->n[a].size; k++) map(d, a + k, b + k);
}

/* Dice coefficient of the descendants of a and b: 2 * (descendants of a
** mapped into b) / (descendants of a + of b).  Over at most DICE_SAMPLE
** descendants of a, evenly spaced (exact below that size), so that deep or
** huge containers cost O(DICE_SAMPLE) each. */
static double dice (const ag_astdiff *d, uint32_t a, uint32_t b) {
  const tnode *x = &T1->n[a], *y = &T2->n[b];
  uint32_t den = x->size - 1 + y->size - 1, c = 0;
  if (den == 0) return 0;
  uint32_t stride = (x->size - 1 + DICE_SAMPLE - 1) / DICE_SAMPLE;
  if (stride == 0) stride = 1;
  for (uint32_t i = a + 1; i < a + x->size; i += stride) {
    uint32_t m = d->m1[i];
    if (m != NONE && m > b && m < b + y->size) c++;
  }
  double v = 2.0 * c * stride / den;
  return v > 1 ? 1 : v;
}

static void hpush (ag_astdiff *d, heap *h, uint32_t id) {
  grow(d, (void **)&h->v, &h->cap, h->n + 1, sizeof(uint32_t));
  size_t i = h->n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h->nodes[h->v[p]].height >= h->nodes[id].height) break;
    h->v[i] = h->v[p];
    i = p;
  }
  h->v[i] = id;
}

static uint32_t hpop (heap *h) {
  uint32_t top = h->v[0], last = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && h->nodes[h->v[c + 1]].height > h->nodes[h->v[c]].height) c++;
    if (h->nodes[h->v[c]].height <= h->nodes[last].height) break;
    h->v[i] = h->v[c];
    i = c;
  }
  if (h->n > 0) h->v[i] = last;
  return top;
}

static uint32_t hpeek (const heap *h) { return h->n ? h->nodes[h->v[0]].height : 0; }

static void hopen (ag_astdiff *d, heap *h, const tree *t, uint32_t id) {
  for (uint32_t j = 0; j < t->n[id].nkid; j++) hpush(d, h, t->kids[t->n[id].kid0 + j]);
}


static int cmp_cand (const void *p, const void *q) {
  const cand *x = (const cand *)p, *y = (const cand *)q;
  if (x->dice != y->dice) return x->dice > y->dice ? -1 : 1;
  if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
  if (x->a != y->a) return x->a < y->a ? -1 : 1;
  return x->b < y->b ? -1 : x->b > y->b;
}

static int cmp_parents (const void *p, const void *q) {
  const cand *x = (const cand *)p, *y = (const cand *)q;
  if (x->pa != y->pa) return x->pa < y->pa ? -1 : 1;
  if (x->pb != y->pb) return x->pb < y->pb ? -1 : 1;
  if (x->a != y->a) return x->a < y->a ? -1 : 1;
  return x->b < y->b ? -1 : x->b > y->b;
}

static const tnode *g_sort_nodes;  /* qsort has no context argument */
static int cmp_hash (const void *p, const void *q) {
  const tnode *x = &g_sort_nodes[*(const uint32_t *)p], *y = &g_sort_nodes[*(const uint32_t *)q];
  if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
  return *(const uint32_t *)p < *(const uint32_t *)q ? -1 : 1;
}

static void topdown (ag_astdiff *d, heap *h1, heap *h2, cand **cands, size_t *capc) {
  size_t nc = 0;
  const tnode *x = T1->n, *y = T2->n;
  if (T1->nn > 1) hpush(d, h1, 1);
  if (T2->nn > 1) hpush(d, h2, 1);
  uint8_t *flag1 = d->inw, *flag2 = d->inb;  /* borrowed, cleared below */
  while (h1->n && h2->n) {
    uint32_t a = hpeek(h1), b = hpeek(h2);
    if ((a < b ? a : b) < MIN_HEIGHT) break;
    if (a != b) {
      heap *h = a > b ? h1 : h2;
      const tree *t = a > b ? T1 : T2;
      uint32_t ht = a > b ? a : b;
      while (h->n && hpeek(h) == ht) hopen(d, h, t, hpop(h));
      continue;
    }
    size_t n1 = 0, n2 = 0;
    while (h1->n && hpeek(h1) == a) { uint32_t *s = scratch(d, 2, n1 + 1); s[n1++] = hpop(h1); }
    while (h2->n && hpeek(h2) == a) { uint32_t *s = scratch(d, 3, n2 + 1); s[n2++] = hpop(h2); }
    uint32_t *H1 = d->s[2], *H2 = d->s[3];
    g_sort_nodes = x;
    qsort(H1, n1, sizeof *H1, cmp_hash);
    g_sort_nodes = y;
    qsort(H2, n2, sizeof *H2, cmp_hash);
    size_t i = 0, j = 0;
    while (i < n1 || j < n2) {
      size_t i2 = i, j2 = j;
      uint64_t hv;
      if (j >= n2 || (i < n1 && x[H1[i]].hash < y[H2[j]].hash)) hv = x[H1[i]].hash;
      else hv = y[H2[j]].hash;
      while (i2 < n1 && x[H1[i2]].hash == hv) i2++;
      while (j2 < n2 && y[H2[j2]].hash == hv) j2++;
      size_t g1 = i2 - i, g2 = j2 - j;
      if (g1 == 1 && g2 == 1 && iso(d, H1[i], H2[j], 1)) mapsub(d, H1[i], H2[j]);
      else if (g1 && g2) {
        for (size_t p = 0; p < g1; p++) {
          size_t c = p * g2 / g1, lo = c > WINDOW ? c - WINDOW : 0, hi = c + WINDOW + 1;
          if (hi > g2) hi = g2;
          for (size_t q = lo; q < hi; q++) {
            if (!iso(d, H1[i + p], H2[j + q], 1)) continue;
            grow(d, (void **)cands, capc, nc + 1, sizeof(cand));
            (*cands)[nc++] = (cand){H1[i + p], H2[j + q], x[H1[i + p]].parent, y[H2[j + q]].parent, 0, 0};
            flag1[H1[i + p]] = 1;
            flag2[H2[j + q]] = 1;
          }
        }
        for (size_t p = i; p < i2; p++) if (!flag1[H1[p]]) hopen(d, h1, T1, H1[p]);
        for (size_t q = j; q < j2; q++) if (!flag2[H2[q]]) hopen(d, h2, T2, H2[q]);
      }
      else {
        for (size_t p = i; p < i2; p++) hopen(d, h1, T1, H1[p]);
        for (size_t q = j; q < j2; q++) hopen(d, h2, T2, H2[q]);
      }
      i = i2;
      j = j2;
    }
  }
  /* one dice per distinct pair of parents: many candidates share them */
  if (nc > 1) qsort(*cands, nc, sizeof(cand), cmp_parents);
  for (size_t k = 0; k < nc; k++) {
    cand *c = &(*cands)[k];
    flag1[c->a] = 0;
    flag2[c->b] = 0;
    if (k > 0 && c->pa == c[-1].pa && c->pb == c[-1].pb) c->dice = c[-1].dice;
    else c->dice = dice(d, c->pa, c->pb);
    double pa = (double)c->a / T1->nn, pb = (double)c->b / T2->nn;
    c->pos = pa > pb ? pa - pb : pb - pa;
  }
  if (nc > 1) qsort(*cands, nc, sizeof(cand), cmp_cand);
  for (size_t k = 0; k < nc; k++) {
    const cand *c = &(*cands)[k];
    if (d->m1[c->a] == NONE && d->m2[c->b] == NONE) mapsub(d, c->a, c->b);
  }
}

/* LCS of c1[0..n1) and c2[0..n2) (ids of T1/T2) under eq(mode); writes the
** matched pairs to out1/out2 (capacity min(n1, n2)) and returns their count.
** Common prefix and suffix are matched directly; a middle part too large for
** LCS_CAP cells is left unmatched. */
enum { EQ_ISO, EQ_STRUCT };

/* Children already mapped to each other are equal (so the LCS keeps their
** order); unmapped ones are compared by (structural) isomorphism. */
static int eqm (const ag_astdiff *d, int mode, uint32_t a, uint32_t b) {
  if (d->m1[a] != NONE || d->m2[b] != NONE) return d->m1[a] == b;
  return iso(d, a, b, mode == EQ_ISO);
}

static size_t lcs (ag_astdiff *d, const uint32_t *c1, size_t n1, const uint32_t *c2,
                   size_t n2, int mode, uint32_t *out1, uint32_t *out2) {
  size_t k = 0, pre = 0, suf = 0;
  while (pre < n1 && pre < n2 && eqm(d, mode, c1[pre], c2[pre])) {
    out1[k] = c1[pre]; out2[k++] = c2[pre]; pre++;
  }
  while (suf < n1 - pre && suf < n2 - pre && eqm(d, mode, c1[n1 - 1 - suf], c2[n2 - 1 - suf])) suf++;
  size_t a = n1 - pre - suf, b = n2 - pre - suf;
  if (a && b && (a + 1) * (b + 1) <= LCS_CAP) {
    grow(d, (void **)&d->lcs, &d->lcscap, (a + 1) * (b + 1), sizeof(uint32_t));
    uint32_t *L = d->lcs;  /* L[i][j]: LCS of suffixes from i, j */
    for (size_t i = a + 1; i-- > 0;) {
      for (size_t j = b + 1; j-- > 0;) {
        uint32_t v;
        if (i == a || j == b) v = 0;
        else if (eqm(d, mode, c1[pre + i], c2[pre + j])) v = L[(i + 1) * (b + 1) + j + 1] + 1;
        else {
          uint32_t r = L[(i + 1) * (b + 1) + j], dn = L[i * (b + 1) + j + 1];
          v = r > dn ? r : dn;
        }
        L[i * (b + 1) + j] = v;
      }
    }
    size_t i = 0, j = 0;
    while (i < a && j < b) {
      if (eqm(d, mode, c1[pre + i], c2[pre + j])) {
        out1[k] = c1[pre + i]; out2[k++] = c2[pre + j]; i++; j++;
      }
      else if (L[(i + 1) * (b + 1) + j] >= L[i * (b + 1) + j + 1]) i++;
      else j++;
    }
  }
  for (size_t s = suf; s-- > 0;) { out1[k] = c1[n1 - 1 - s]; out2[k++] = c2[n2 - 1 - s]; }
  return k;
}

/* All children of x (side 0) or y (side 1) into scratch slot. */
static size_t kids_of (ag_astdiff *d, int side, uint32_t x, int slot) {
  const tree *t = &d->t[side];
  uint32_t *s = scratch(d, slot, t->n[x].nkid + 1);
  memcpy(s, t->kids + t->n[x].kid0, t->n[x].nkid * sizeof *s);
  return t->n[x].nkid;
}

static void push_pair (ag_astdiff *d, size_t *sp, uint32_t a, uint32_t b) {
  if (T1->n[a].nkid == 0 || T2->n[b].nkid == 0) return;
  uint32_t *st = scratch(d, 5, *sp + 2);
  st[(*sp)++] = a;
  st[(*sp)++] = b;
}

/* Maps the nodes of c1 and c2 (unmapped ones) whose type occurs exactly
** once among the unmapped of each list; leaves too unless `containers`.
** Linear: counts per type id in scratch slot 1, cleared after. */
static void unique_types (ag_astdiff *d, const uint32_t *c1, size_t n1, const uint32_t *c2,
                          size_t n2, int containers, size_t *sp) {
  uint32_t *cnt = d->s[1];  /* 3 per type: in c1, in c2, the c2 node */
  for (size_t i = 0; i < n1; i++) if (d->m1[c1[i]] == NONE) cnt[3 * T1->n[c1[i]].type]++;
  for (size_t j = 0; j < n2; j++) {
    if (d->m2[c2[j]] != NONE) continue;
    uint32_t t = T2->n[c2[j]].type;
    cnt[3 * t + 1]++;
    cnt[3 * t + 2] = c2[j];
  }
  for (size_t i = 0; i < n1; i++) {
    uint32_t a = c1[i], t = T1->n[a].type;
    if (d->m1[a] != NONE || cnt[3 * t] != 1 || cnt[3 * t + 1] != 1) continue;
    uint32_t b = cnt[3 * t + 2];
    if (d->m2[b] != NONE || (containers && (T1->n[a].nkid == 0 || T2->n[b].nkid == 0))) continue;
    map(d, a, b);
    push_pair(d, sp, a, b);
  }
  for (size_t i = 0; i < n1; i++) cnt[3 * T1->n[c1[i]].type] = 0;
  for (size_t j = 0; j < n2; j++) {
    uint32_t t = T2->n[c2[j]].type;
    cnt[3 * t + 1] = cnt[3 * t + 2] = 0;
  }
}

/* GumTree "simple" recovery under the mapped pair (x, y), with an explicit
** work stack (slot 5) instead of recursion: (1) LCS of isomorphic children;
** then between consecutive children mapped in order, (2) LCS of children of
** the same structure and (3) types unique in that stretch, so that nothing
** maps across an order already fixed; (4) containers of a type unique among
** all the unmapped children (moved and changed).  Pairs from (2)-(4) are
** recovered in turn. */
static void recover (ag_astdiff *d, uint32_t x0, uint32_t y0) {
  size_t sp = 0;
  uint32_t *cnt = scratch(d, 1, 3 * (size_t)d->nstr);
  memset(cnt, 0, 3 * (size_t)d->nstr * sizeof *cnt);
  push_pair(d, &sp, x0, y0);
  while (sp > 0) {
    uint32_t y = d->s[5][--sp], x = d->s[5][--sp];
    size_t n1 = kids_of(d, 0, x, 2), n2 = kids_of(d, 1, y, 3);
    size_t mn = n1 < n2 ? n1 : n2;
    uint32_t *o = scratch(d, 4, 2 * mn + 2);
    size_t k = lcs(d, d->s[2], n1, d->s[3], n2, EQ_ISO, o, o + mn);
    for (size_t i = 0; i < k; i++) {
      uint32_t a = d->s[4][i], b = d->s[4][mn + i];
      if (d->m1[a] == NONE) mapsub(d, a, b);
    }
    size_t ia = 0, jb = 0;
    for (;;) {
      const uint32_t *A = d->s[2], *B = d->s[3];
      size_t i2 = ia, p = n2;
      for (; i2 < n1; i2++) {
        uint32_t m = d->m1[A[i2]];
        if (m != NONE && T2->n[m].parent == y && T2->n[m].idx >= jb) { p = T2->n[m].idx; break; }
      }
      size_t s1 = 0, s2 = 0;
      uint32_t *u1 = scratch(d, 6, i2 - ia + 1), *u2 = scratch(d, 7, p - jb + 1);
      for (size_t i = ia; i < i2; i++) if (d->m1[A[i]] == NONE) u1[s1++] = A[i];
      for (size_t j = jb; j < p; j++) if (d->m2[B[j]] == NONE) u2[s2++] = B[j];
      if (s1 && s2) {
        size_t m2n = s1 < s2 ? s1 : s2;
        o = scratch(d, 4, 2 * m2n + 2);
        k = lcs(d, u1, s1, u2, s2, EQ_STRUCT, o, o + m2n);
        for (size_t i = 0; i < k; i++) {
          uint32_t a = d->s[4][i], b = d->s[4][m2n + i];
          if (d->m1[a] != NONE) continue;
          map(d, a, b);
          push_pair(d, &sp, a, b);
        }
        unique_types(d, u1, s1, u2, s2, 0, &sp);
      }
      if (i2 >= n1) break;
      ia = i2 + 1;
      jb = p + 1;
    }
    unique_types(d, d->s[2], n1, d->s[3], n2, 1, &sp);
  }
}

static void bottomup (ag_astdiff *d) {
  const tnode *x = T1->n, *y = T2->n;
  uint32_t *mark = scratch(d, 0, T2->nn), stamp = 0;
  memset(mark, 0, T2->nn * sizeof *mark);
  for (uint32_t t1 = T1->nn; t1-- > 1;) {
    if (d->m1[t1] != NONE || x[t1].nkid == 0) continue;
    uint32_t best = NONE;
    double bd = -1;
    stamp++;
    /* candidates: same-type unmapped ancestors of the partners of mapped
    ** descendants, nearest first; scan, walk and count bounded so that a
    ** deep tree costs O(nodes), not O(nodes x depth) */
    uint32_t ncand = 0, end = x[t1].size > SCAN_MAX ? t1 + 1 + SCAN_MAX : t1 + x[t1].size;
    for (uint32_t i = t1 + 1; i < end && ncand < CAND_MAX; i++) {
      if (d->m1[i] == NONE) continue;
      uint32_t steps = 0;
      for (uint32_t c = y[d->m1[i]].parent; c != NONE && c != 0 && d->s[0][c] != stamp &&
           steps < WALK_MAX && ncand < CAND_MAX; c = y[c].parent, steps++) {
        d->s[0][c] = stamp;
        if (d->m2[c] != NONE || y[c].type != x[t1].type) continue;
        ncand++;
        double dc = dice(d, t1, c);
        if (dc > bd) { bd = dc; best = c; }
      }
    }
    if (best != NONE && (bd >= DICE_MIN || (t1 == 1 && best == 1))) {
      map(d, t1, best);
      recover(d, t1, best);
    }
  }
  if (T1->nn > 1 && T2->nn > 1 && d->m1[1] == NONE && d->m2[1] == NONE &&
      x[1].type == y[1].type) {
    map(d, 1, 1);
    recover(d, 1, 1);
  }
}

/* ---------------------------------------------------------- working tree */

static uint32_t w_new (ag_astdiff *d, wtree *w, uint32_t type, uint32_t label) {
  size_t cap = w->cap;
  grow(d, (void **)&w->n, &cap, (size_t)w->nn + 1, sizeof(wnode));
  w->cap = (uint32_t)cap;
  w->n[w->nn] = (wnode){type, label, NONE, 0, 0, NULL};
  return w->nn++;
}

static void w_free (wtree *w) {
  if (w->n) for (uint32_t i = 0; i < w->nn; i++) free(w->n[i].kids);
  free(w->n);
  memset(w, 0, sizeof *w);
}

/* Inserts c as child number pos of p (pos clamped to the end). */
static void w_attach (ag_astdiff *d, wtree *w, uint32_t p, uint32_t c, uint32_t pos) {
  wnode *q = &w->n[p];
  if (q->nk + 1 > q->cap) {
    uint32_t nc = q->cap ? q->cap * 2 : 4;
    q->kids = (uint32_t *)xrealloc(d, q->kids, nc * sizeof(uint32_t));
    q->cap = nc;
  }
  if (pos > q->nk) pos = q->nk;
  memmove(q->kids + pos + 1, q->kids + pos, (q->nk - pos) * sizeof(uint32_t));
  q->kids[pos] = c;
  q->nk++;
  w->n[c].parent = p;
}

static uint32_t w_index (const wtree *w, uint32_t c) {
  const wnode *p = &w->n[w->n[c].parent];
  for (uint32_t i = 0; i < p->nk; i++) if (p->kids[i] == c) return i;
  return NONE;
}

static void w_detach (wtree *w, uint32_t c) {
  uint32_t p = w->n[c].parent;
  if (p == NONE) return;
  uint32_t i = w_index(w, c);
  wnode *q = &w->n[p];
  memmove(q->kids + i, q->kids + i + 1, (q->nk - i - 1) * sizeof(uint32_t));
  q->nk--;
  w->n[c].parent = NONE;
}

static void w_copy (ag_astdiff *d, wtree *w, const tree *t) {
  for (uint32_t i = 0; i < t->nn; i++) w_new(d, w, t->n[i].type, t->n[i].label);
  for (uint32_t i = 1; i < t->nn; i++) w_attach(d, w, t->n[i].parent, i, NONE);
}

/* -------------------------------------------------------------- script */

static act *newact (ag_astdiff *d, int kind) {
  grow(d, (void **)&d->acts, &d->capacts, d->nacts + 1, sizeof(act));
  act *a = &d->acts[d->nacts++];
  memset(a, 0, sizeof *a);
  a->kind = kind;
  a->src = a->dst = a->parent = a->pos = NONE;
  return a;
}

/* Chawathe's FindPos: just after the partner of the rightmost in-order
** sibling to the left of x, else first. */
static uint32_t findpos (ag_astdiff *d, uint32_t x) {
  const tnode *y = T2->n;
  uint32_t p = y[x].parent;
  for (uint32_t j = y[x].idx; j-- > 0;) {
    uint32_t v = T2->kids[y[p].kid0 + j];
    if (d->inb[v]) return w_index(&d->w, d->m2w[v]) + 1;
  }
  return 0;
}

/* Marks in order the children of w and x whose partners form a maximum
** weight increasing sequence (weights: subtree sizes), moves the others. */
static void align (ag_astdiff *d, uint32_t w, uint32_t x) {
  const tnode *y = T2->n;
  wnode *wn = &d->w.n[w];
  uint32_t nk = wn->nk;
  for (uint32_t i = 0; i < nk; i++) d->inw[wn->kids[i]] = 0;
  for (uint32_t j = 0; j < y[x].nkid; j++) d->inb[T2->kids[y[x].kid0 + j]] = 0;
  /* s: w's kids whose partner is a kid of x, as positions in x */
  uint32_t *seq = scratch(d, 2, nk + 1), *who = scratch(d, 3, nk + 1);
  size_t n = 0;
  for (uint32_t i = 0; i < nk; i++) {
    uint32_t c = wn->kids[i], p = d->wm[c];
    if (p != NONE && y[p].parent == x) { seq[n] = y[p].idx; who[n++] = c; }
  }
  if (n == 0) return;
  /* LIS in O(n log n) with a Fenwick tree of (best, index) over positions
  ** in x: most children in order first (each move is one action), then the
  ** largest subtrees in order; prev links give the chain */
  uint32_t m = y[x].nkid;
  uint64_t *fen = (uint64_t *)scratch(d, 4, 3 * (size_t)(m + 1) + (size_t)n + 2);
  uint32_t *fidx = (uint32_t *)(fen + (m + 1)), *prev = fidx + (m + 1);
  memset(fen, 0, (size_t)(m + 1) * sizeof *fen);
  uint64_t top = 0;
  uint32_t topi = NONE;
  for (size_t i = 0; i < n; i++) {
    uint64_t q = 0;
    uint32_t qi = NONE;
    for (uint32_t k = seq[i]; k > 0; k -= k & (0u - k))
      if (fen[k] > q) { q = fen[k]; qi = fidx[k]; }
    uint64_t v = q + ((uint64_t)1 << 32) + T2->n[d->wm[who[i]]].size;
    prev[i] = qi;
    for (uint32_t k = seq[i] + 1; k <= m; k += k & (0u - k))
      if (v > fen[k]) { fen[k] = v; fidx[k] = (uint32_t)i; }
    if (v > top) { top = v; topi = (uint32_t)i; }
  }
  for (uint32_t i = topi; i != NONE; i = prev[i]) {
    d->inw[who[i]] = 1;
    d->inb[d->wm[who[i]]] = 1;
  }
  for (uint32_t j = 0; j < y[x].nkid; j++) {
    uint32_t b = T2->kids[y[x].kid0 + j], a = d->m2w[b];
    if (a == NONE || d->inb[b] || d->w.n[a].parent != w) continue;
    w_detach(&d->w, a);
    uint32_t k = findpos(d, b);
    w_attach(d, &d->w, w, a, k);
    act *ac = newact(d, AG_ASTDIFF_MOVE);
    ac->w = a; ac->parent = w; ac->pos = k;
    ac->src = a < T1->nn ? a : NONE; ac->dst = b; ac->n = T2->n[b].size;
    d->inw[a] = 1;
    d->inb[b] = 1;
  }
}

static void script (ag_astdiff *d) {
  const tnode *y = T2->n;
  uint32_t n1 = T1->nn, n2 = T2->nn;
  w_copy(d, &d->w, T1);
  d->wm = (uint32_t *)xrealloc(d, d->wm, ((size_t)n1 + n2) * sizeof(uint32_t));
  d->m2w = (uint32_t *)xrealloc(d, d->m2w, (size_t)n2 * sizeof(uint32_t));
  for (uint32_t i = 0; i < n1; i++) d->wm[i] = d->m1[i];
  for (uint32_t i = n1; i < n1 + n2; i++) d->wm[i] = NONE;
  for (uint32_t i = 0; i < n2; i++) d->m2w[i] = d->m2[i];
  memset(d->inw, 0, (size_t)n1 + n2);
  memset(d->inb, 0, n2);
  /* mapped nodes per T2 subtree: 0 means insert it whole */
  uint32_t *mc = scratch(d, 1, n2);
  for (uint32_t i = n2; i-- > 0;) {
    mc[i] = d->m2[i] != NONE;
    for (uint32_t j = 0; j < y[i].nkid; j++) mc[i] += mc[T2->kids[y[i].kid0 + j]];
  }
  d->inw[0] = d->inb[0] = 1;
  uint32_t *q = scratch(d, 0, n2);  /* BFS queue */
  size_t qh = 0, qt = 0;
  q[qt++] = 0;
  while (qh < qt) {
    uint32_t x = d->s[0][qh++];
    int whole = 0;
    if (x != 0) {
      uint32_t z = d->m2w[y[x].parent], w = d->m2w[x];
      if (w == NONE) {
        whole = d->s[1][x] == 0;
        uint32_t k = findpos(d, x);
        uint32_t base = d->w.nn, cnt = whole ? y[x].size : 1;
        act *ac = newact(d, AG_ASTDIFF_INSERT);
        ac->w = base; ac->parent = z; ac->pos = k; ac->dst = x; ac->n = cnt;
        ac->payload = (uint32_t)d->npay; ac->npayload = cnt;
        ac->type = y[x].type; ac->label = y[x].label;
        grow(d, (void **)&d->pay, &d->cappay, d->npay + cnt, sizeof(prec));
        for (uint32_t k2 = 0; k2 < cnt; k2++) {
          const tnode *s = &y[x + k2];
          uint32_t nw = w_new(d, &d->w, s->type, s->label);
          d->pay[d->npay++] = (prec){s->type, s->label, whole ? s->nkid : 0};
          if (k2 == 0) w_attach(d, &d->w, z, nw, k);
          else w_attach(d, &d->w, base + (s->parent - x), nw, NONE);
          d->wm[nw] = x + k2;
          d->m2w[x + k2] = nw;
          d->inw[nw] = d->inb[x + k2] = 1;
        }
        w = base;
      }
      else {
        if (d->w.n[w].label != y[x].label) {
          act *ac = newact(d, AG_ASTDIFF_UPDATE);
          ac->w = w; ac->from = d->w.n[w].label; ac->label = y[x].label;
          ac->src = w; ac->dst = x; ac->n = 1;
          d->w.n[w].label = y[x].label;
        }
        if (d->w.n[w].parent != z) {
          w_detach(&d->w, w);
          uint32_t k = findpos(d, x);
          w_attach(d, &d->w, z, w, k);
          act *ac = newact(d, AG_ASTDIFF_MOVE);
          ac->w = w; ac->parent = z; ac->pos = k;
          ac->src = w < n1 ? w : NONE; ac->dst = x; ac->n = y[x].size;
          d->inw[w] = d->inb[x] = 1;
        }
      }
      if (!whole) align(d, w, x);
    }
    else align(d, 0, 0);
    if (!whole) for (uint32_t j = 0; j < y[x].nkid; j++) q[qt++] = T2->kids[y[x].kid0 + j];
  }
  /* deletes, children first: a wholly unmapped subtree of the first tree
  ** as one action (it never lost a node to a move), an unmapped node with
  ** mapped descendants alone (they have been moved out: it is a leaf now).
  ** The same grouping as inserts, so that B->A mirrors A->B. */
  const tnode *x = T1->n;
  uint32_t *mc1 = scratch(d, 1, n1);
  for (uint32_t i = n1; i-- > 0;) {
    mc1[i] = d->m1[i] != NONE;
    for (uint32_t j = 0; j < x[i].nkid; j++) mc1[i] += mc1[T1->kids[x[i].kid0 + j]];
  }
  for (uint32_t i = n1; i-- > 1;) {
    if (d->wm[i] != NONE) continue;
    uint32_t p = x[i].parent;
    if (mc1[i] == 0 && d->wm[p] == NONE && mc1[p] == 0) continue;  /* inside a whole delete */
    w_detach(&d->w, i);
    act *ac = newact(d, AG_ASTDIFF_DELETE);
    ac->w = i; ac->src = i; ac->n = mc1[i] == 0 ? x[i].size : 1;
  }
}

/* ------------------------------------------------------------- renames */

static int idclass (const ag_astdiff *d, uint32_t type) {
  const uint32_t *K = d->K;
  if (type == K[K_IDENT] || type == K[K_SHORT_PROP] || type == K[K_SHORT_PROP_PAT]) return 1;
  if (type == K[K_PROP_IDENT] || type == K[K_PRIV_PROP]) return 2;
  if (type == K[K_TYPE_IDENT]) return 3;
  return 0;
}

static int is_decl_type (const ag_astdiff *d, uint32_t ty) {
  const uint32_t *K = d->K;
  return ty == K[K_FUNCTION] || ty == K[K_GENERATOR] || ty == K[K_CLASS] ||
         ty == K[K_ABSTRACT_CLASS] || ty == K[K_METHOD] || ty == K[K_INTERFACE] ||
         ty == K[K_TYPE_ALIAS] || ty == K[K_ENUM] || ty == K[K_MODULE] ||
         ty == K[K_INTERNAL_MODULE] || ty == K[K_ABSTRACT_METHOD];
}

static int is_function_type (const ag_astdiff *d, uint32_t ty) {
  const uint32_t *K = d->K;
  return ty == K[K_FUNCTION] || ty == K[K_GENERATOR] || ty == K[K_ARROW] ||
         ty == K[K_FUNCTION_EXPR] || ty == K[K_FUNCTION_EXPR2] ||
         ty == K[K_GENERATOR_EXPR] || ty == K[K_METHOD];
}

/* Is node a of t the name a declaration introduces? */
static int declares (const ag_astdiff *d, const tree *t, uint32_t a) {
  const tnode *x = t->n;
  const uint32_t *K = d->K;
  uint32_t p = x[a].parent, f = x[a].field, pt = x[p].type;
  if (x[a].type == K[K_SHORT_PROP_PAT]) return 1;
  if (f == K[K_F_NAME])
    return is_decl_type(d, pt) || pt == K[K_VAR_DECLARATOR] || pt == K[K_TYPE_PARAM] ||
           pt == K[K_FUNCTION_EXPR] || pt == K[K_FUNCTION_EXPR2] || pt == K[K_GENERATOR_EXPR];
  if (f == K[K_F_PATTERN]) return pt == K[K_REQ_PARAM] || pt == K[K_OPT_PARAM];
  if (f == K[K_F_PARAMETER]) return pt == K[K_ARROW] || pt == K[K_CATCH];
  return pt == K[K_ARRAY_PATTERN];
}

/* The scope a declared name belongs to (scope-light: nearest block,
** function, class body, loop or program). */
static uint32_t scope_of (const ag_astdiff *d, const tree *t, uint32_t a) {
  const tnode *x = t->n;
  const uint32_t *K = d->K;
  uint32_t p = x[a].parent;
  /* a function's or class's own name lives in the enclosing scope */
  if (x[a].field == K[K_F_NAME] && is_decl_type(d, x[p].type)) p = x[p].parent;
  for (; p != NONE && p != 0; p = x[p].parent) {
    uint32_t ty = x[p].type;
    if (ty == K[K_PROGRAM] || ty == K[K_BLOCK] || ty == K[K_CLASS_BODY] || ty == K[K_FOR] ||
        ty == K[K_FOR_IN] || ty == K[K_CATCH] || ty == K[K_SWITCH_BODY] || is_function_type(d, ty) ||
        ty == K[K_INTERNAL_MODULE] || ty == K[K_MODULE])
      return p;
  }
  return 1;
}

typedef struct rcand { uint32_t act, sc, sd, cls; } rcand;

static int cmp_rcand (const void *p, const void *q) {
  const rcand *x = (const rcand *)p, *y = (const rcand *)q;
  if (x->sc != y->sc) return x->sc < y->sc ? -1 : 1;
  if (x->sd != y->sd) return x->sd < y->sd ? -1 : 1;
  return x->act < y->act ? -1 : x->act > y->act;
}

static const act *g_sort_acts;  /* qsort has no context argument */
static int cmp_upd (const void *p, const void *q) {
  const act *x = &g_sort_acts[*(const uint32_t *)p], *y = &g_sort_acts[*(const uint32_t *)q];
  if (x->from != y->from) return x->from < y->from ? -1 : 1;
  if (x->label != y->label) return x->label < y->label ? -1 : 1;
  return *(const uint32_t *)p < *(const uint32_t *)q ? -1 : 1;
}

static int cmp_u32 (const void *p, const void *q) {
  uint32_t a = *(const uint32_t *)p, b = *(const uint32_t *)q;
  return a < b ? -1 : a > b;
}

#define CONFLICT (NONE - 1)

/* For every identifier of scope [s, s + size) of a side that has a partner:
** tab[label * 4 + class] = the partner's label, or CONFLICT when they differ.
** With undo = 1, resets those entries to NONE instead. */
static void scope_table (const ag_astdiff *d, int side, uint32_t s, uint32_t *tab, int undo) {
  const tree *t = &d->t[side], *o = &d->t[!side];
  const uint32_t *m = side ? d->m2 : d->m1;
  for (uint32_t k = s; k < s + t->n[s].size; k++) {
    int c = idclass(d, t->n[k].type);
    if (!c || m[k] == NONE) continue;
    uint32_t key = t->n[k].label * 4 + (uint32_t)c, v = o->n[m[k]].label;
    if (undo) tab[key] = NONE;
    else if (tab[key] == NONE) tab[key] = v;
    else if (tab[key] != v) tab[key] = CONFLICT;
  }
}

/* Folds updates into renames: a declaring identifier updated from -> to,
** when every mapped `from` of its kind in the declaration's scope became
** `to` and every mapped `to` in the new declaration's scope was `from`
** (both trees, so that B->A finds the same renames); the updates in both
** scopes with the same from -> to become one action.  Scope checks are done
** once per pair of scopes with per-label tables, folding through the
** updates sorted by (from, to): O(scopes + updates log updates). */
static void renames (ag_astdiff *d) {
  const tnode *x = T1->n, *y = T2->n;
  size_t na = d->nacts, nc = 0, nu = 0, nok = 0;
  rcand *rc = (rcand *)scratch(d, 2, 4 * na + 4);
  uint32_t *upd = scratch(d, 3, na + 1);
  for (size_t i = 0; i < na; i++) {
    const act *u = &d->acts[i];
    if (u->kind != AG_ASTDIFF_UPDATE) continue;
    upd[nu++] = (uint32_t)i;
    int cls = idclass(d, x[u->w].type);
    if (!cls || !declares(d, T1, u->w) || !declares(d, T2, u->dst)) continue;
    rc[nc++] = (rcand){(uint32_t)i, scope_of(d, T1, u->w), scope_of(d, T2, u->dst), (uint32_t)cls};
  }
  if (nc == 0) return;
  if (nc > 1) qsort(rc, nc, sizeof *rc, cmp_rcand);
  size_t tn = 4 * (size_t)d->nstr + 4;
  uint32_t *tab1 = scratch(d, 6, tn), *tab2 = scratch(d, 7, tn);
  memset(tab1, 0xff, tn * sizeof *tab1);
  memset(tab2, 0xff, tn * sizeof *tab2);
  uint32_t *ok = scratch(d, 4, nc + 1);
  for (size_t g = 0; g < nc;) {
    size_t e = g;
    while (e < nc && rc[e].sc == rc[g].sc && rc[e].sd == rc[g].sd) e++;
    scope_table(d, 0, rc[g].sc, tab1, 0);
    scope_table(d, 1, rc[g].sd, tab2, 0);
    for (size_t k = g; k < e; k++) {
      const act *u = &d->acts[rc[k].act];
      if (tab1[u->from * 4 + rc[k].cls] == u->label && tab2[u->label * 4 + rc[k].cls] == u->from)
        ok[nok++] = (uint32_t)k;
    }
    scope_table(d, 0, rc[g].sc, tab1, 1);
    scope_table(d, 1, rc[g].sd, tab2, 1);
    g = e;
  }
  if (nok == 0) return;
  g_sort_acts = d->acts;
  if (nu > 1) qsort(upd, nu, sizeof *upd, cmp_upd);
  uint8_t *gone = d->gone = (uint8_t *)xrealloc(d, d->gone, na + 1);
  memset(gone, 0, na + 1);
  /* order the accepted by their action index */
  uint32_t *order = scratch(d, 5, 2 * nok + 2);
  for (size_t k = 0; k < nok; k++) { order[2 * k] = rc[ok[k]].act; order[2 * k + 1] = ok[k]; }
  qsort(order, nok, 2 * sizeof *order, cmp_u32);
  size_t nr = 0;
  for (size_t k = 0; k < nok; k++) {
    const rcand *r = &rc[order[2 * k + 1]];
    if (gone[r->act]) continue;
    uint32_t from = d->acts[r->act].from, to = d->acts[r->act].label;
    /* the updates with this (from, to): binary search in upd */
    size_t lo = 0, hi = nu;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      const act *v = &d->acts[upd[mid]];
      if (v->from < from || (v->from == from && v->label < to)) lo = mid + 1;
      else hi = mid;
    }
    size_t first = d->nids;
    for (size_t j = lo; j < nu; j++) {
      const act *v = &d->acts[upd[j]];
      if (v->from != from || v->label != to) break;
      if (gone[upd[j]] || v->w < r->sc || v->w >= r->sc + x[r->sc].size || v->dst < r->sd ||
          v->dst >= r->sd + y[r->sd].size || (uint32_t)idclass(d, x[v->w].type) != r->cls)
        continue;
      grow(d, (void **)&d->ids, &d->capids, d->nids + 1, sizeof(uint32_t));
      d->ids[d->nids++] = v->w;
      gone[upd[j]] = 1;
    }
    /* the rename takes the place of the declaration's update */
    act *u = &d->acts[r->act];
    u->kind = AG_ASTDIFF_RENAME;
    u->ids = (uint32_t)first;
    u->nids = (uint32_t)(d->nids - first);
    u->n = u->nids;
    gone[r->act] = 0;
    nr++;
  }
  if (nr) {
    size_t k = 0;
    for (size_t i = 0; i < na; i++) if (!gone[i]) d->acts[k++] = d->acts[i];
    d->nacts = k;
  }
}

/* --------------------------------------------------------------- summary */

static uint32_t kid_by_field (const tree *t, uint32_t a, uint32_t f) {
  for (uint32_t j = 0; j < t->n[a].nkid; j++) {
    uint32_t c = t->kids[t->n[a].kid0 + j];
    if (t->n[c].field == f) return c;
  }
  return NONE;
}

/* Declaration kind of node a, or NULL. */
static const char *decl_kind (const ag_astdiff *d, const tree *t, uint32_t a) {
  const uint32_t *K = d->K;
  uint32_t ty = t->n[a].type;
  if (ty == K[K_FUNCTION] || ty == K[K_GENERATOR]) return "function";
  if (ty == K[K_CLASS] || ty == K[K_ABSTRACT_CLASS]) return "class";
  if (ty == K[K_METHOD] || ty == K[K_ABSTRACT_METHOD]) return "method";
  if (ty == K[K_INTERFACE]) return "interface";
  if (ty == K[K_TYPE_ALIAS]) return "type";
  if (ty == K[K_ENUM]) return "enum";
  if (ty == K[K_MODULE] || ty == K[K_INTERNAL_MODULE]) return "namespace";
  if (ty == K[K_EXPORT] && kid_by_field(t, a, K[K_F_DECLARATION]) == NONE) return "export";
  if (ty == K[K_VAR_DECLARATOR]) {
    uint32_t v = kid_by_field(t, a, K[K_F_VALUE]);
    if (v != NONE && (t->n[v].type == K[K_ARROW] || t->n[v].type == K[K_FUNCTION_EXPR] ||
                      t->n[v].type == K[K_FUNCTION_EXPR2]))
      return "function";
  }
  return NULL;
}

/* Hashes of the parts of a declaration: body, and the rest but its name. */
static void decl_hashes (const ag_astdiff *d, const tree *t, uint32_t a, uint64_t *sig,
                         uint64_t *body) {
  const uint32_t *K = d->K;
  if (t->n[a].type == K[K_VAR_DECLARATOR]) {
    uint32_t v = kid_by_field(t, a, K[K_F_VALUE]);
    if (v != NONE) a = v;
  }
  *sig = 1;
  *body = 0;
  for (uint32_t j = 0; j < t->n[a].nkid; j++) {
    uint32_t c = t->kids[t->n[a].kid0 + j], f = t->n[c].field;
    if (f == K[K_F_BODY] || (f == K[K_F_VALUE] && t->n[a].type == K[K_TYPE_ALIAS]))
      *body = t->n[c].hash;
    else if (f != K[K_F_NAME]) *sig = mix(*sig, t->n[c].hash);
  }
}

static void adddecl (ag_astdiff *d, const char *kind, const char *change, uint32_t src,
                     uint32_t dst, uint32_t to) {
  grow(d, (void **)&d->decls, &d->capdecls, d->ndecls + 1, sizeof(decl));
  d->decls[d->ndecls++] = (decl){kind, change, src, dst, to};
}

/* Flags, in scratch slot `slot`, the nodes of a side that have an unmapped
** declaration among their ancestors: one preorder pass. */
static uint32_t *inside_unmapped (ag_astdiff *d, int side, int slot) {
  const tree *t = &d->t[side];
  const uint32_t *m = side ? d->m2 : d->m1;
  uint32_t *f = scratch(d, slot, t->nn);
  f[0] = 0;
  for (uint32_t i = 1; i < t->nn; i++) {
    uint32_t p = t->n[i].parent;
    f[i] = f[p] || (p != 0 && m[p] == NONE && decl_kind(d, t, p) != NULL);
  }
  return f;
}

static void summary (ag_astdiff *d) {
  const uint32_t *K = d->K;
  const uint32_t *in1 = inside_unmapped(d, 0, 6), *in2 = inside_unmapped(d, 1, 7);
  for (uint32_t a = 1; a < T1->nn; a++) {
    const char *kind = decl_kind(d, T1, a);
    if (!kind) continue;
    uint32_t b = d->m1[a];
    if (b == NONE) {
      if (!in1[a]) adddecl(d, kind, "removed", a, NONE, 0);
      continue;
    }
    if (!decl_kind(d, T2, b)) continue;
    if (strcmp(kind, "export") == 0) {
      if (T1->n[a].hash != T2->n[b].hash) adddecl(d, kind, "changed", a, b, 0);
      continue;
    }
    uint32_t na = kid_by_field(T1, a, K[K_F_NAME]), nb = kid_by_field(T2, b, K[K_F_NAME]);
    if (na != NONE && nb != NONE && T1->n[na].label != T2->n[nb].label)
      adddecl(d, kind, "renamed", a, b, T2->n[nb].label);
    uint32_t pa = T1->n[a].parent, pb = T2->n[b].parent;
    int ea = T1->n[pa].type == K[K_EXPORT], eb = T2->n[pb].type == K[K_EXPORT];
    if (ea != eb) adddecl(d, kind, eb ? "exported" : "unexported", a, b, 0);
    else if (d->moved[a]) adddecl(d, kind, "moved", a, b, 0);
    uint64_t sa, ba, sb, bb;
    decl_hashes(d, T1, a, &sa, &ba);
    decl_hashes(d, T2, b, &sb, &bb);
    if (sa != sb) adddecl(d, kind, "signature", a, b, 0);
    if (ba != bb) adddecl(d, kind, "body", a, b, 0);
  }
  for (uint32_t b = 1; b < T2->nn; b++) {
    const char *kind = decl_kind(d, T2, b);
    if (kind && d->m2[b] == NONE && !in2[b])
      adddecl(d, kind, "added", NONE, b, 0);
  }
}

/* ------------------------------------------------------------------ api */

void ag_astdiff_free (ag_astdiff *d) {
  if (d == NULL) return;
  if (d->hascur) ts_tree_cursor_delete(&d->cur);
  if (d->ts) ts_tree_delete(d->ts);
  if (d->parser) ts_parser_delete(d->parser);
  for (size_t i = 0; i < d->nchunks; i++) free(d->chunks[i]);
  free(d->chunks);
  free(d->strs);
  free(d->slots);
  free(d->symtype[0]);
  free(d->symtype[1]);
  for (int i = 0; i < 2; i++) { free(d->t[i].n); free(d->t[i].kids); }
  free(d->m1); free(d->m2);
  w_free(&d->w);
  free(d->wm); free(d->m2w);
  free(d->inw); free(d->inb); free(d->moved);
  free(d->acts); free(d->pay); free(d->ids); free(d->decls);
  for (int i = 0; i < 8; i++) free(d->s[i]);
  free(d->lcs);
  free(d->h1.v); free(d->h2.v); free(d->cands); free(d->gone);
  free(d);
}

static int parse_side (ag_astdiff *d, const ag_astdiff_opts *o, int side, const char *src,
                       size_t len, char err[AG_ERRLEN]) {
  if ((o->max_bytes && len > o->max_bytes) || len > UINT32_MAX - 1) {
    ag_seterr(err, AG_EINVAL, "too large (%zu bytes, limit %llu)", len,
              (unsigned long long)(o->max_bytes ? o->max_bytes : UINT32_MAX - 1));
    return AG_EINVAL;
  }
  ts_parser_set_timeout_micros(d->parser, o->timeout_us);
  int why;
  d->ts = ag_tsmem_parse(d->parser, src, (uint32_t)len, o->max_memory, &why);
  if (why == AG_TSMEM_STOPPED) d->parser = NULL;   /* taken: never touched again */
  if (why == AG_TSMEM_REFUSED)
    return ag_seterr(err, AG_ENOMEM, "%d earlier parses were stopped over their memory budget;"
                     " no more parses in this process", AG_TSMEM_STOPS_MAX);
  if (why == AG_TSMEM_STOPPED || why == AG_TSMEM_OVER)
    return ag_seterr(err, AG_EMEMORY, "memory budget exceeded (%.4g MiB)", (double)o->max_memory / (1024.0 * 1024.0));
  if (d->ts == NULL) {
    ag_seterr(err, AG_ETIMEOUT, "timeout (%llu ms)", (unsigned long long)(o->timeout_us / 1000));
    return AG_ETIMEOUT;
  }
  d->t[side].src = src;
  d->t[side].len = len;
  build(d, &d->t[side], d->ts, side);
  ts_tree_delete(d->ts);
  d->ts = NULL;
  return AG_OK;
}

int ag_astdiff_run (const char *a, size_t la, const char *b, size_t lb,
                    const ag_astdiff_opts *o, ag_astdiff **out, int *side,
                    char err[AG_ERRLEN]) {
  *out = NULL;
  *side = 0;
  ag_astdiff *d = (ag_astdiff *)calloc(1, sizeof *d);
  if (d == NULL) { ag_seterr(err, AG_ENOMEM, "out of memory"); return AG_ENOMEM; }
  if (setjmp(d->jb)) {
    ag_astdiff_free(d);
    ag_seterr(err, AG_ENOMEM, "out of memory");
    return AG_ENOMEM;
  }
  d->comments = o->comments;
  d->tsx = o->tsx ? 1 : 0;
  d->nstr = 1;  /* id 0: no label */
  d->capstr = 16;
  d->strs = (istr *)xrealloc(d, NULL, 16 * sizeof(istr));
  d->strs[0] = (istr){"", 0, 0};
  for (int i = 0; i < K_NKNOWN; i++) d->K[i] = internz(d, KNOWN[i]);
  const TSLanguage *lang = d->tsx ? tree_sitter_tsx() : tree_sitter_typescript();
  d->nsym[d->tsx] = ts_language_symbol_count(lang);
  d->symtype[d->tsx] = (uint32_t *)calloc(d->nsym[d->tsx] + 1, sizeof(uint32_t));
  d->parser = ts_parser_new();
  ag_tslex_install(d->parser);
  if (d->symtype[d->tsx] == NULL || d->parser == NULL || !ts_parser_set_language(d->parser, ag_langtab_dense(lang)))
    oom(d);
  int rc = parse_side(d, o, 0, a, la, err);
  if (rc == AG_OK) rc = parse_side(d, o, 1, b, lb, err);
  else *side = 1;
  if (rc != AG_OK) {
    if (*side == 0) *side = 2;
    ag_astdiff_free(d);
    return rc;
  }
  ts_parser_delete(d->parser);
  d->parser = NULL;
  uint32_t n1 = T1->nn, n2 = T2->nn;
  /* The matching runs in a canonical order (by root hash) and is inverted
  ** when the sources came the other way, so diff(B, A) uses the same
  ** mapping as diff(A, B) and is its inverse. */
  int swap = T1->n[0].hash > T2->n[0].hash;
  if (swap) { tree tmp = d->t[0]; d->t[0] = d->t[1]; d->t[1] = tmp; }
  d->m1 = (uint32_t *)xrealloc(d, NULL, (size_t)T1->nn * sizeof(uint32_t));
  d->m2 = (uint32_t *)xrealloc(d, NULL, (size_t)T2->nn * sizeof(uint32_t));
  memset(d->m1, 0xff, (size_t)T1->nn * sizeof(uint32_t));
  memset(d->m2, 0xff, (size_t)T2->nn * sizeof(uint32_t));
  d->inw = (uint8_t *)calloc((size_t)n1 + n2 + 1, 1);
  d->inb = (uint8_t *)calloc((size_t)n1 + n2 + 1, 1);
  d->moved = (uint8_t *)calloc((size_t)n1 + 1, 1);
  if (!d->inw || !d->inb || !d->moved) oom(d);
  map(d, 0, 0);
  d->h1.nodes = T1->n;
  d->h2.nodes = T2->n;
  topdown(d, &d->h1, &d->h2, &d->cands, &d->capc);
  bottomup(d);
  if (swap) {
    tree tmp = d->t[0]; d->t[0] = d->t[1]; d->t[1] = tmp;
    uint32_t *m = d->m1; d->m1 = d->m2; d->m2 = m;
  }
  script(d);
  for (size_t i = 0; i < d->nacts; i++)
    if (d->acts[i].kind == AG_ASTDIFF_MOVE && d->acts[i].w < n1) d->moved[d->acts[i].w] = 1;
  renames(d);
  summary(d);
  for (size_t i = 0; i < d->nacts; i++) d->counts[d->acts[i].kind]++;
  *out = d;
  return AG_OK;
}

void ag_astdiff_getcounts (const ag_astdiff *d, ag_astdiff_counts *c) {
  memset(c, 0, sizeof *c);
  for (int k = 0; k < AG_ASTDIFF_NKINDS; k++) c->n[k] = d->counts[k];
  c->total = d->nacts;
  c->src_nodes = T1->nn - 1;
  c->dst_nodes = T2->nn - 1;
}

size_t ag_astdiff_nactions (const ag_astdiff *d) { return d->nacts; }

static const char *str (const ag_astdiff *d, uint32_t id, size_t *len) {
  if (len) *len = d->strs[id].len;
  return d->strs[id].s;
}

void ag_astdiff_getaction (const ag_astdiff *d, size_t i, ag_astdiff_action *o) {
  const act *a = &d->acts[i];
  memset(o, 0, sizeof *o);
  o->kind = a->kind;
  o->src = a->src;
  o->dst = a->dst;
  o->n = a->n;
  uint32_t ty = a->src != NONE ? T1->n[a->src].type : a->dst != NONE ? T2->n[a->dst].type : 0;
  o->type = ty ? str(d, ty, NULL) : NULL;
  if (a->kind == AG_ASTDIFF_UPDATE || a->kind == AG_ASTDIFF_RENAME) {
    o->from = str(d, a->from, &o->from_len);
    o->to = str(d, a->label, &o->to_len);
  }
}

size_t ag_astdiff_ndecls (const ag_astdiff *d) { return d->ndecls; }

void ag_astdiff_getdecl (const ag_astdiff *d, size_t i, ag_astdiff_decl *o) {
  const decl *c = &d->decls[i];
  memset(o, 0, sizeof *o);
  o->kind = c->kind;
  o->change = c->change;
  o->src = c->src;
  o->dst = c->dst;
  int side = c->src != NONE ? 0 : 1;
  const tree *t = &d->t[side];
  uint32_t a = side ? c->dst : c->src;
  uint32_t nm = kid_by_field(t, a, d->K[K_F_NAME]);
  if (t->n[a].type == d->K[K_EXPORT] || nm == NONE) {
    /* first line of its text, at most 60 bytes */
    const char *s = t->src + t->n[a].sbyte;
    size_t n = t->n[a].ebyte - t->n[a].sbyte, k = 0;
    while (k < n && k < 60 && s[k] != '\n') k++;
    o->name = s;
    o->name_len = k;
  }
  else if (t->n[nm].label) o->name = str(d, t->n[nm].label, &o->name_len);
  else {  /* a name with children (computed property): its text */
    o->name = t->src + t->n[nm].sbyte;
    o->name_len = t->n[nm].ebyte - t->n[nm].sbyte;
  }
  if (c->to) o->to = str(d, c->to, &o->to_len);
}

void ag_astdiff_nodeinfo (const ag_astdiff *d, int side, uint32_t id, ag_astdiff_node *o) {
  const tnode *n = &d->t[side ? 1 : 0].n[id];
  o->type = d->strs[n->type].s;
  o->sbyte = n->sbyte;
  o->ebyte = n->ebyte;
  o->srow = n->srow;
  o->erow = n->erow;
  o->size = n->size;
}

/* Replays the script on a fresh copy of the first tree, then compares the
** result with the second, node by node in preorder. */
static int verify (ag_astdiff *d, wtree *w) {
  w_copy(d, w, T1);
  for (size_t i = 0; i < d->nacts; i++) {
    const act *a = &d->acts[i];
    switch (a->kind) {
    case AG_ASTDIFF_INSERT: {
      if (a->w != w->nn || a->parent >= w->nn) return AG_ECORRUPT;
      /* payload in preorder: a stack of (node, kids still to come) */
      (void)scratch(d, 0, 2 * (size_t)a->npayload + 2);
      size_t sp = 0;
      for (uint32_t k = 0; k < a->npayload; k++) {
        const prec *p = &d->pay[a->payload + k];
        uint32_t nw = w_new(d, w, p->type, p->label);
        if (k == 0) {
          if (a->pos > w->n[a->parent].nk) return AG_ECORRUPT;
          w_attach(d, w, a->parent, nw, a->pos);
        }
        else {
          if (sp == 0) return AG_ECORRUPT;
          w_attach(d, w, d->s[0][sp - 2], nw, NONE);
          if (--d->s[0][sp - 1] == 0) sp -= 2;
        }
        if (p->nkid) { d->s[0][sp++] = nw; d->s[0][sp++] = p->nkid; }
      }
      if (sp) return AG_ECORRUPT;
      break;
    }
    case AG_ASTDIFF_DELETE:
      if (a->w >= w->nn || w->n[a->w].parent == NONE) return AG_ECORRUPT;
      w_detach(w, a->w);
      break;
    case AG_ASTDIFF_UPDATE:
      if (a->w >= w->nn || w->n[a->w].label != a->from) return AG_ECORRUPT;
      w->n[a->w].label = a->label;
      break;
    case AG_ASTDIFF_RENAME:
      for (uint32_t k = 0; k < a->nids; k++) {
        uint32_t id = d->ids[a->ids + k];
        if (id >= w->nn || w->n[id].label != a->from) return AG_ECORRUPT;
        w->n[id].label = a->label;
      }
      break;
    case AG_ASTDIFF_MOVE:
      if (a->w >= w->nn || a->parent >= w->nn) return AG_ECORRUPT;
      w_detach(w, a->w);
      if (a->pos > w->n[a->parent].nk) return AG_ECORRUPT;
      w_attach(d, w, a->parent, a->w, a->pos);
      break;
    default:
      return AG_ECORRUPT;
    }
  }
  /* preorder walk of w against T2's preorder ranks */
  uint32_t *st = scratch(d, 1, 1);
  size_t sp = 0, k = 0;
  st[sp++] = 0;
  while (sp) {
    uint32_t c = d->s[1][--sp];
    if (k >= T2->nn) return AG_ECORRUPT;
    const tnode *y = &T2->n[k++];
    const wnode *x = &w->n[c];
    if (x->type != y->type || x->label != y->label || x->nk != y->nkid) return AG_ECORRUPT;
    st = scratch(d, 1, sp + x->nk + 1);
    for (uint32_t j = x->nk; j-- > 0;) st[sp++] = x->kids[j];
  }
  return k == T2->nn ? AG_OK : AG_ECORRUPT;
}

int ag_astdiff_verify (const ag_astdiff *d0) {
  ag_astdiff *d = (ag_astdiff *)d0;  /* scratch buffers only */
  wtree w = {NULL, 0, 0};
  jmp_buf save;
  memcpy(save, d->jb, sizeof save);
  volatile int rc;
  if (setjmp(d->jb)) rc = AG_ENOMEM;
  else rc = verify(d, &w);
  memcpy(d->jb, save, sizeof save);
  w_free(&w);
  return rc;
}
