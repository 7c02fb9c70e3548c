/*
** ag_scope.c: scope analysis over a tree-sitter TypeScript/TSX tree (see
** ag_scope.h for the model).
**
** One preorder walk (our own walker over tree-sitter's subtrees, below)
** and a heap stack of frames, one per ancestor, collects scopes,
** declarations and references.  A frame carries
** the "mode" of its position (expression, type, binding pattern, assignment
** target, ...) that decides what an identifier there means; a child's mode
** is a function of its parent's frame, its field and its own symbol
** (child_ctx), and a node's own effect (open a scope, declare, reference)
** is node_entry.  Scope enters/exits and references are logged as events;
** resolution replays them with one binding stack per name and namespace
** (value, type, either), so it is linear in the events whatever the depth,
** and hoisting needs no second walk: a scope's declarations are all known
** when the replay enters it.
*/
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ag_scope.h"

/* The walker below reads tree-sitter's own Subtree representation through
** its internal headers (the runtime is compiled from the same npm source,
** tools/tsruntime.sh, so they match it), reached from the public include
** directory.  Only this file does; only the walker section uses them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <tree_sitter/../../src/subtree.h>
#include <tree_sitter/../../src/language.h>
#include <tree_sitter/../../src/tree.h>
#pragma GCC diagnostic pop

const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);

#define NONE AG_SCOPE_NONE

/* ------------------------------------------------------------ symbols */

enum {
  S_OTHER,
  S_PROGRAM, S_IDENTIFIER, S_TYPE_IDENTIFIER, S_PROPERTY_IDENTIFIER, S_SHORTHAND_PROP,
  S_SHORTHAND_PROP_PATTERN, S_LEXICAL_DECL, S_VARIABLE_DECL, S_VARIABLE_DECLARATOR,
  S_FUNCTION_DECL, S_GENERATOR_FUNCTION_DECL, S_FUNCTION_EXPR, S_GENERATOR_FUNCTION,
  S_ARROW_FUNCTION, S_METHOD_DEF, S_FUNCTION_SIG, S_METHOD_SIG, S_ABSTRACT_METHOD_SIG,
  S_CALL_SIG, S_CONSTRUCT_SIG, S_FUNCTION_TYPE, S_CONSTRUCTOR_TYPE, S_FORMAL_PARAMETERS,
  S_REQUIRED_PARAM, S_OPTIONAL_PARAM, S_REST_PATTERN, S_OBJECT_PATTERN, S_ARRAY_PATTERN,
  S_PAIR_PATTERN, S_ASSIGNMENT_PATTERN, S_OBJECT_ASSIGNMENT_PATTERN, S_CLASS_DECL,
  S_ABSTRACT_CLASS_DECL, S_CLASS, S_CLASS_STATIC_BLOCK, S_IMPORT_STATEMENT, S_IMPORT_CLAUSE,
  S_NAMESPACE_IMPORT, S_NAMED_IMPORTS, S_IMPORT_SPECIFIER, S_IMPORT_REQUIRE_CLAUSE,
  S_IMPORT_ALIAS, S_EXPORT_STATEMENT, S_EXPORT_CLAUSE, S_EXPORT_SPECIFIER, S_NAMESPACE_EXPORT,
  S_CATCH_CLAUSE, S_STATEMENT_BLOCK, S_FOR_STATEMENT, S_FOR_IN_STATEMENT, S_WHILE, S_DO,
  S_SWITCH_BODY, S_ENUM_DECL, S_ENUM_BODY, S_ENUM_ASSIGNMENT, S_TYPE_ALIAS_DECL,
  S_INTERFACE_DECL, S_INTERNAL_MODULE, S_MODULE, S_AMBIENT_DECL, S_TYPE_PARAMETER,
  S_TYPE_QUERY, S_NESTED_TYPE_IDENTIFIER, S_NESTED_IDENTIFIER, S_TYPE_PREDICATE, S_ASSERTS,
  S_MAPPED_TYPE_CLAUSE, S_INFER_TYPE, S_INDEX_SIGNATURE, S_COMPUTED_PROPERTY_NAME,
  S_MEMBER_EXPR, S_ASSIGNMENT_EXPR, S_AUGMENTED_ASSIGNMENT_EXPR, S_UPDATE_EXPR,
  S_PARENTHESIZED_EXPR, S_NON_NULL_EXPR, S_AS_EXPR, S_SATISFIES_EXPR, S_SEQUENCE_EXPR,
  S_EXPRESSION_STATEMENT, S_JSX_OPENING, S_JSX_SELF_CLOSING, S_JSX_CLOSING,
  S_JSX_NAMESPACE_NAME, S_STRING, S_COMMENT, S_DECORATOR, S_ERROR, S_PUBLIC_FIELD_DEF,
  S_CALL_EXPR, S_NEW_EXPR, S_YIELD_EXPR, S_TYPE_ASSERTION, S_PROPERTY_SIGNATURE, S_CONDITIONAL_TYPE,
  S_RETURN_STATEMENT,
  /* nodes that start a type position */
  S_TYPE_ANNOTATION, S_TYPE_ARGUMENTS, S_TYPE_PARAMETERS, S_OPTING_TYPE_ANNOTATION,
  S_OMITTING_TYPE_ANNOTATION, S_ADDING_TYPE_ANNOTATION, S_ASSERTS_ANNOTATION,
  S_TYPE_PREDICATE_ANNOTATION, S_IMPLEMENTS_CLAUSE, S_EXTENDS_TYPE_CLAUSE, S_CONSTRAINT,
  S_DEFAULT_TYPE,
  S_COUNT
};

static const char *const SYMNAMES[S_COUNT] = {
  NULL,
  "program", "identifier", "type_identifier", "property_identifier",
  "shorthand_property_identifier", "shorthand_property_identifier_pattern",
  "lexical_declaration", "variable_declaration", "variable_declarator",
  "function_declaration", "generator_function_declaration", "function_expression",
  "generator_function", "arrow_function", "method_definition", "function_signature",
  "method_signature", "abstract_method_signature", "call_signature", "construct_signature",
  "function_type", "constructor_type", "formal_parameters", "required_parameter",
  "optional_parameter", "rest_pattern", "object_pattern", "array_pattern", "pair_pattern",
  "assignment_pattern", "object_assignment_pattern", "class_declaration",
  "abstract_class_declaration", "class", "class_static_block", "import_statement",
  "import_clause", "namespace_import", "named_imports", "import_specifier",
  "import_require_clause", "import_alias", "export_statement", "export_clause",
  "export_specifier", "namespace_export", "catch_clause", "statement_block", "for_statement",
  "for_in_statement", "while_statement", "do_statement", "switch_body", "enum_declaration",
  "enum_body", "enum_assignment", "type_alias_declaration", "interface_declaration",
  "internal_module", "module", "ambient_declaration", "type_parameter", "type_query",
  "nested_type_identifier", "nested_identifier", "type_predicate", "asserts",
  "mapped_type_clause", "infer_type", "index_signature", "computed_property_name",
  "member_expression", "assignment_expression", "augmented_assignment_expression",
  "update_expression", "parenthesized_expression", "non_null_expression", "as_expression",
  "satisfies_expression", "sequence_expression", "expression_statement",
  "jsx_opening_element", "jsx_self_closing_element", "jsx_closing_element",
  "jsx_namespace_name", "string", "comment", "decorator", "ERROR", "public_field_definition",
  "call_expression", "new_expression", "yield_expression", "type_assertion", "property_signature",
  "conditional_type", "return_statement",
  "type_annotation", "type_arguments", "type_parameters", "opting_type_annotation",
  "omitting_type_annotation", "adding_type_annotation", "asserts_annotation",
  "type_predicate_annotation", "implements_clause", "extends_type_clause", "constraint",
  "default_type",
};

enum {
  F_OTHER, F_NAME, F_VALUE, F_LEFT, F_RIGHT, F_BODY, F_PARAMETERS, F_PARAMETER, F_PATTERN,
  F_TYPE, F_RETURN_TYPE, F_DECLARATION, F_SOURCE, F_ALIAS, F_KIND, F_KEY, F_OBJECT,
  F_ARGUMENT, F_MODULE, F_INITIALIZER, F_OPERATOR, F_FUNCTION, F_CONSTRUCTOR, F_INDEX_TYPE,
  F_DECORATOR, F_ALTERNATIVE, F_COUNT
};

static const char *const FIELDNAMES[F_COUNT] = {
  NULL, "name", "value", "left", "right", "body", "parameters", "parameter", "pattern", "type",
  "return_type", "declaration", "source", "alias", "kind", "key", "object", "argument",
  "module", "initializer", "operator", "function", "constructor", "index_type", "decorator",
  "alternative",
};

/* Per language: grammar symbol -> S_*, grammar field id -> F_*, and our
** field ids back to the grammar's (for ts_node_child_by_field_id). */
typedef struct langmap {
  uint16_t *sym;
  uint8_t *named;                 /* grammar symbol -> is a named node */
  uint8_t *inert;                 /* grammar symbol -> a leaf of it needs no frame (enter) */
  uint32_t nsym;
  uint16_t field[256];
  TSFieldId gfield[F_COUNT];
  uint8_t prop[S_COUNT];          /* S_* -> P_* (the switches below, as one load) */
  uint8_t *tok;                   /* grammar symbol (below ntok) -> 1 anonymous, 2 `const`, 0 not */
  uint32_t ntok;
  TSSymbol in_string[5];          /* what a string holds (0: the grammar has no such symbol) */
  int ok;
} langmap;

enum { P_DECL = 1, P_STMT = 2, P_FIELD = 4 };

static int is_decl_sym(uint16_t s);
static int is_stmt_sym(uint16_t s);
static int needs_field(uint16_t sym);

static langmap MAPS[2];
static pthread_once_t ONCE[2] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

static void build_map (int tsx) {
  langmap *m = &MAPS[tsx];
  const TSLanguage *lang = tsx ? tree_sitter_tsx() : tree_sitter_typescript();
  m->nsym = ts_language_symbol_count(lang);
  m->sym = (uint16_t *)calloc(m->nsym + 1, sizeof *m->sym);
  m->named = (uint8_t *)calloc(m->nsym + 1, sizeof *m->named);
  m->inert = (uint8_t *)calloc(m->nsym + 1, sizeof *m->inert);
  if (m->sym == NULL || m->named == NULL || m->inert == NULL) return;
  for (uint32_t i = 0; i < m->nsym; i++) {
    TSSymbolType t = ts_language_symbol_type(lang, (TSSymbol)i);
    const char *nm = ts_language_symbol_name(lang, (TSSymbol)i);
    if (nm == NULL || t == TSSymbolTypeAnonymous) continue;
    m->named[i] = t == TSSymbolTypeRegular;
    for (int k = 1; k < S_COUNT; k++)
      if (strcmp(nm, SYMNAMES[k]) == 0) { m->sym[i] = (uint16_t)k; break; }
    /* a leaf of a symbol the analysis does not know (numbers, `this`,
    ** literals, JSX text), a property name or a comment: node_entry does
    ** nothing for it but under an enum (a member's name) or as the false
    ** branch of a conditional type, and it has no children to pass a
    ** context to (enter checks the three) */
    uint16_t k = m->sym[i];
    m->inert[i] = m->named[i] && (k == S_OTHER || k == S_PROPERTY_IDENTIFIER || k == S_COMMENT);
  }
  uint32_t nf = ts_language_field_count(lang);
  for (uint32_t i = 0; i <= nf && i < 256; i++) {
    const char *nm = ts_language_field_name_for_id(lang, (TSFieldId)i);
    if (nm == NULL) continue;
    for (int k = 1; k < F_COUNT; k++)
      if (strcmp(nm, FIELDNAMES[k]) == 0) { m->field[i] = (uint16_t)k; m->gfield[k] = (TSFieldId)i; }
  }
  m->ntok = lang->symbol_count;
  m->tok = (uint8_t *)calloc(m->ntok + 1, 1);
  if (m->tok == NULL) return;
  for (uint32_t i = 0; i < m->ntok; i++) {   /* enter's test, on the public symbol */
    TSSymbol g = lang->public_symbol_map[i];
    if (g < m->nsym && !m->named[g])
      m->tok[i] = strcmp(ts_language_symbol_name(lang, (TSSymbol)i), "const") == 0 ? 2 : 1;
  }
  static const char *const inside[] = {"string_fragment", "escape_sequence", "html_character_reference",
                                       "\"", "'"};
  for (int k = 0; k < 5; k++)
    m->in_string[k] = ts_language_symbol_for_name(lang, inside[k], (uint32_t)strlen(inside[k]), k < 3);
  for (uint16_t k = 0; k < S_COUNT; k++)
    m->prop[k] = (uint8_t)((is_decl_sym(k) ? P_DECL : 0) | (is_stmt_sym(k) ? P_STMT : 0) |
                           (needs_field(k) ? P_FIELD : 0));
  m->ok = 1;
}
static void build_ts (void) { build_map(0); }
static void build_tsx (void) { build_map(1); }

static const langmap *getmap (int tsx) {
  pthread_once(&ONCE[tsx], tsx ? build_tsx : build_ts);
  return MAPS[tsx].ok ? &MAPS[tsx] : NULL;
}

static uint16_t symof_sym (const langmap *m, TSNode n, TSSymbol s) {
  if (s < m->nsym) return m->sym[s];
  return strcmp(ts_node_type(n), "ERROR") == 0 ? S_ERROR : S_OTHER;
}

static uint16_t symof (const langmap *m, TSNode n) {
  TSSymbol s = ts_node_symbol(n);
  if (s < m->nsym) return m->sym[s];
  return strcmp(ts_node_type(n), "ERROR") == 0 ? S_ERROR : S_OTHER;
}

static int is_function_sym (uint16_t s) {
  return s >= S_FUNCTION_DECL && s <= S_CONSTRUCTOR_TYPE;
}

/* Function-likes that never have a body: their parameters are signatures. */
static int is_signature_sym (uint16_t s) {
  return s == S_FUNCTION_SIG || s == S_METHOD_SIG || s == S_ABSTRACT_METHOD_SIG ||
         s == S_CALL_SIG || s == S_CONSTRUCT_SIG || s == S_FUNCTION_TYPE ||
         s == S_CONSTRUCTOR_TYPE;
}

static int is_type_start (uint16_t s) {
  return s >= S_TYPE_ANNOTATION && s <= S_DEFAULT_TYPE;
}

/* ------------------------------------------------------------ walker */

/* A preorder walk of the visible nodes, the same nodes in the same order as
** a TSTreeCursor stepping goto_first_child / goto_next_sibling /
** goto_parent, with the same TSNode values and field ids, without the
** cursor's per-step costs (each sibling step rebuilds a child iterator,
** looks up the parent's alias sequence again and counts descendants; a
** field id search walks up the stack).  The stack holds one entry per
** ancestor, hidden ones included, as TreeCursor's does (tree_cursor.c);
** the logic mirrors ts_tree_cursor_goto_first_child_internal,
** ts_tree_cursor_goto_sibling_internal, ts_tree_cursor_goto_parent,
** ts_tree_cursor_current_node and ts_tree_cursor_current_field_id. */
typedef struct went {
  const Subtree *subtree;       /* in its parent's children array (the TSNode id) */
  Length position;
  uint32_t child_index, structural_child_index;
  TSSymbol alias;               /* from the parent's alias sequence (0: none, or extra) */
  uint8_t visible, extra;
} went;                         /* 32 bytes: one per ancestor, so deep trees count it */

/* A parent's children and alias sequence, read from its subtree where a
** scan starts (two loads each: cheaper than keeping them per entry, which
** cost 24 bytes per ancestor on trees 100,000s of levels deep). */
static inline const Subtree *w_kids (const went *P) {
  return (const Subtree *)P->subtree->ptr - P->subtree->ptr->child_count;
}
static inline uint32_t w_count (const went *P) { return P->subtree->ptr->child_count; }

/* subtree.h's accessors read through a pointer: they take a Subtree (a
** union of bit fields) by value, and GCC builds each copy with a dozen
** shifts and masks before reading one bit of it. */
#define SP_GET(p, name) ((p)->data.is_inline ? (p)->data.name : (p)->ptr->name)
static inline int sp_extra (const Subtree *p) { return SP_GET(p, extra); }
static inline int sp_visible (const Subtree *p) { return SP_GET(p, visible); }
static inline TSSymbol sp_symbol (const Subtree *p) { return SP_GET(p, symbol); }
#undef SP_GET
static inline uint32_t sp_visible_child_count (const Subtree *p) {
  return !p->data.is_inline && p->ptr->child_count > 0 ? p->ptr->visible_child_count : 0;
}
static inline Length sp_size (const Subtree *p) {
  if (p->data.is_inline) return (Length){p->data.size_bytes, {0, p->data.size_bytes}};
  return p->ptr->size;
}
static inline Length sp_padding (const Subtree *p) {
  if (p->data.is_inline)
    return (Length){p->data.padding_bytes, {p->data.padding_rows, p->data.padding_columns}};
  return p->ptr->padding;
}

struct ag_scope_walker {
  const TSTree *tree;
  const TSLanguage *lang;
  went *stk; uint32_t n, cap;
  int oom;
  /* With a skip table (the analysis's walk with a want table), a visible
  ** leaf of grammar symbol g below nskip, not aliased, with skip[g] (an
  ** anonymous token the visitor does not want) is passed over by the scan
  ** itself: such a token would get no frame, no visit and no descent
  ** (enter), so pushing it only to pop it again was waste.  The exception
  ** is enter's: a token whose nearest visible ancestor is a conditional
  ** type keeps its frame (it may be the false branch); of the anonymous
  ** tokens only `const` can be a type (node-types.json), so only its
  ** skip[g] is 2, "unless under a conditional type" (smap: public symbol
  ** -> S_*), the others' 1.  NOSKIP for ag_scope_walk: every node, as the
  ** cursor. */
  const uint8_t *skip; uint32_t nskip;   /* NOSKIP, 256: none */
  const uint16_t *smap;
  /* The field id of the node whose subtree entry is fsub (the analysis
  ** asks it first, then its visitor: ag_scope_walker_field answers the
  ** second from here).  An entry's address names one node of the tree. */
  const Subtree *fsub;
  TSFieldId fid;
  /* The least depth of a node with children that the analysis's walk
  ** entered without a visit (its symbol not wanted, see push_frame) since
  ** the last visit; UINT32_MAX: none (ag_scope_walker_gap). */
  uint32_t gap;
};

static int w_grow (ag_scope_walker *w) {
  uint32_t c = w->cap ? w->cap * 2 : 64;
  went *q = c > w->cap ? (went *)realloc(w->stk, (size_t)c * sizeof *q) : NULL;
  if (q == NULL) { w->oom = 1; return 0; }
  w->stk = q;
  w->cap = c;
  return 1;
}

static const uint8_t NOSKIP[256];       /* a skip table that passes nothing */

static int w_init (ag_scope_walker *w, TSNode root) {
  memset(w, 0, sizeof *w);
  w->gap = UINT32_MAX;
  w->skip = NOSKIP;
  w->nskip = 256;
  w->tree = root.tree;
  w->lang = root.tree->language;
  if (!w_grow(w)) return 0;
  went *e = &w->stk[w->n++];
  memset(e, 0, sizeof *e);
  e->subtree = (const Subtree *)root.id;
  e->position = (Length){root.context[0], {root.context[1], root.context[2]}};
  e->alias = (TSSymbol)root.context[3];
  e->visible = 1;
  e->extra = ts_subtree_extra(*e->subtree);
  return 1;
}

static void w_free (ag_scope_walker *w) {
  free(w->stk);
  w->stk = NULL;
  w->n = w->cap = 0;
}

/* 1 when the nearest visible entry from the top (the top itself or one of
** its hidden ancestors' parents) is a conditional type. */
static int w_under_cond (const ag_scope_walker *w) {
  uint32_t i = w->n - 1;
  while (i > 0 && !w->stk[i].visible) i--;
  const went *e = &w->stk[i];
  TSSymbol sym = e->extra ? 0 : e->alias;
  if (sym == 0) sym = sp_symbol(e->subtree);
  if (sym == ts_builtin_sym_error) return 0;
  sym = w->lang->public_symbol_map[sym];
  return sym < w->lang->symbol_count && w->smap[sym] == S_CONDITIONAL_TYPE;
}

/* Scans the children of the top entry P from child index ci (structural
** index si, position pos of that child): pushes the first visible child, or
** the first hidden one with visible descendants.  Returns 2 visible, 1
** hidden, 0 none (or out of memory: w->oom).  Inlined into its two
** callers: GCC -O2 keeps it a call otherwise, and the calls, the argument
** passing and the reloads cost ~18M instructions on the callgrind subset. */
static inline __attribute__((always_inline)) int w_scan (ag_scope_walker *w, uint32_t ci, uint32_t si, Length pos) {
  const went *P = &w->stk[w->n - 1];
  const SubtreeHeapData *pt = P->subtree->ptr;        /* a parent: never inline */
  const Subtree *kids = (const Subtree *)pt - pt->child_count;
  const TSSymbol *aseq = ts_language_alias_sequence(w->lang, pt->production_id);
  uint32_t count = pt->child_count;
  const uint8_t *skip = w->skip;
  uint32_t nskip = w->nskip;
  for (; ci < count; ci++) {
    const Subtree *c = &kids[ci];
    int extra = sp_extra(c);
    TSSymbol al = (!extra && aseq) ? aseq[si] : 0;
    int vis = sp_visible(c) || al != 0;
    if (vis || sp_visible_child_count(c) > 0) {
      if (al == 0) {
        uint8_t sk = c->data.is_inline ? skip[c->data.symbol]       /* nskip >= 256 */
                     : c->ptr->child_count == 0 && c->ptr->symbol < nskip ? skip[c->ptr->symbol] : 0;
        if (sk == 1 || (sk == 2 && !w_under_cond(w))) goto next;
      }
      if (w->n == w->cap && !w_grow(w)) return 0;
      went *e = &w->stk[w->n++];
      e->subtree = &kids[ci];
      e->position = pos;
      e->child_index = ci;
      e->structural_child_index = si;
      e->alias = al;
      e->visible = (uint8_t)vis;
      e->extra = (uint8_t)extra;
      return vis ? 2 : 1;
    }
  next:
    if (!extra) si++;
    pos = length_add(pos, sp_size(c));
    if (ci + 1 < count) pos = length_add(pos, sp_padding(&kids[ci + 1]));
  }
  return 0;
}

/* Moves from the top entry, a hidden node whose children are all passed,
** to what follows it, up to (not past) entry base - 1: pops it and scans
** its next siblings, and so on up.  w_scan's answer, 0 when nothing is left
** below base (w->n == base then). */
static __attribute__((noinline)) int w_after_hidden (ag_scope_walker *w, uint32_t base) {
  while (w->n > base) {
    uint32_t n = --w->n;
    const went *e = &w->stk[n], *P = &w->stk[n - 1];
    uint32_t ci = e->child_index + 1;
    if (ci >= w_count(P)) continue;
    Length pos = length_add(length_add(e->position, sp_size(e->subtree)), sp_padding(&w_kids(P)[ci]));
    int r = w_scan(w, ci, e->structural_child_index + (e->extra ? 0 : 1), pos);
    if (r != 0 || w->oom) return r;
  }
  return 0;
}

/* Without skip, a hidden node the scan stops at has a visible descendant
** (visible_child_count), so the descent always succeeds; with skip, its
** visible descendants may all be passed: then the walk goes on after it. */
static int w_first_child (ag_scope_walker *w) {
  uint32_t base = w->n;
  const Subtree *t = w->stk[base - 1].subtree;
  if (t->data.is_inline || t->ptr->child_count == 0) return 0;
  for (;;) {                               /* down through the hidden nodes the scans stop at */
    int r = w_scan(w, 0, 0, w->stk[w->n - 1].position);
    while (r == 0) {
      if (w->oom || w->n == base) return 0;
      r = w_after_hidden(w, base);
    }
    if (r == 2) return 1;
  }
}

/* On failure, w->n is back to where it was (the entries below it that a
** scan overwrote are hidden ones replaced by hidden ones: w_parent, which
** looks only for the nearest visible entry below the top, is unaffected). */
static int w_next_sibling (ag_scope_walker *w) {
  uint32_t initial = w->n, n = initial;    /* n in a local: stores through went may alias w->n */
  while (n > 1) {
    const went *stk = w->stk;              /* moves only when w_scan pushes */
    const went *e = &stk[--n];
    if (e->visible && n + 1 < initial) break;
    const went *P = &stk[n - 1];
    uint32_t ci = e->child_index + 1;
    if (ci >= w_count(P)) continue;
    Length pos = length_add(length_add(e->position, sp_size(e->subtree)), sp_padding(&w_kids(P)[ci]));
    w->n = n;
    int r = w_scan(w, ci, e->structural_child_index + (e->extra ? 0 : 1), pos);
    if (r == 2) return 1;
    if (r == 1) {
      if (w_first_child(w)) return 1;
      n = w->n;                            /* the hidden node: on after it */
    }
    if (w->oom) return 0;
  }
  w->n = initial;
  return 0;
}

static int w_parent (ag_scope_walker *w) {
  for (uint32_t i = w->n - 1; i-- > 0;)
    if (i == 0 || w->stk[i].visible) { w->n = i + 1; return 1; }
  return 0;
}

static inline TSNode w_node (const ag_scope_walker *w) {
  const went *e = &w->stk[w->n - 1];
  TSSymbol al = e->extra ? 0 : e->alias;
  return (TSNode){{e->position.bytes, e->position.extent.row, e->position.extent.column, al},
                  e->subtree, w->tree};
}

/* The public symbol of the current node (ts_node_symbol). */
static inline TSSymbol w_symbol (const ag_scope_walker *w) {
  const went *e = &w->stk[w->n - 1];
  TSSymbol sym = e->extra ? 0 : e->alias;
  if (sym == 0) sym = sp_symbol(e->subtree);
  return sym == ts_builtin_sym_error ? sym : w->lang->public_symbol_map[sym];
}

uint32_t ag_scope_walker_gap (const ag_scope_walker *w) {
  return w->gap;
}

TSSymbol ag_scope_walker_up (const ag_scope_walker *w, uint32_t k) {
  for (uint32_t i = w->n - 1; i-- > 0;) {
    const went *e = &w->stk[i];
    if (i != 0 && !e->visible) continue;
    if (--k > 0) continue;
    TSSymbol sym = e->extra ? 0 : e->alias;
    if (sym == 0) sym = sp_symbol(e->subtree);
    return sym == ts_builtin_sym_error ? sym : w->lang->public_symbol_map[sym];
  }
  return 0;
}

TSFieldId ag_scope_walker_field (const ag_scope_walker *w) {
  if (w->stk[w->n - 1].subtree == w->fsub) return w->fid;
  for (uint32_t i = w->n - 1; i > 0; i--) {
    const went *e = &w->stk[i], *p = &w->stk[i - 1];
    if (i != w->n - 1 && e->visible) break;
    if (e->extra) break;
    const TSFieldMapEntry *map, *end;
    ts_language_field_map(w->lang, p->subtree->ptr->production_id, &map, &end);
    for (; map < end; map++)
      if (!map->inherited && map->child_index == e->structural_child_index) return map->field_id;
  }
  return 0;
}

/* 1 when a visitor with this want table (ag_scope_build_visit) wants the
** node under the walker, of public symbol gs: every node of its symbol, or
** those under one of the parents listed. */
static inline int wants (const uint8_t *want, const TSSymbol *parents, uint32_t nwant,
                         const ag_scope_walker *c, TSSymbol gs) {
  if (want == NULL || gs >= nwant) return 1;
  uint8_t w = want[gs];
  if (w != 2 || parents == NULL) return w;
  TSSymbol up = ag_scope_walker_up(c, 1);
  const TSSymbol *ps = &parents[(size_t)gs * AG_SCOPE_PARENTS];
  for (int k = 0; k < AG_SCOPE_PARENTS && ps[k] != 0; k++)
    if (ps[k] == up) return 1;
  return 0;
}

int ag_scope_walk (TSNode root, ag_scope_visit visit, void *ud) {
  return ag_scope_walk_want(root, visit, ud, NULL, NULL, 0, NULL, 0);
}

uint8_t *ag_scope_walk_skip (const TSLanguage *lang, const uint8_t *want, uint32_t nwant, uint32_t *nskip) {
  uint32_t n = lang->symbol_count, cap = n > 256 ? n : 256;   /* an inline subtree's symbol: 8 bits */
  uint8_t *skip = (uint8_t *)calloc(cap, 1);
  if (skip == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    TSSymbol g = lang->public_symbol_map[i];
    if (g < nwant && !want[g] && ts_language_symbol_type(lang, g) == TSSymbolTypeAnonymous) skip[i] = 1;
  }
  *nskip = cap;
  return skip;
}

int ag_scope_walk_want (TSNode root, ag_scope_visit visit, void *ud, const uint8_t *want,
                        const TSSymbol *parents, uint32_t nwant, const uint8_t *skip, uint32_t nskip) {
  ag_scope_walker w;
  if (!w_init(&w, root)) return AG_ENOMEM;
  if (skip != NULL && nskip >= 256) {   /* the anonymous leaves not wanted: the walker passes them itself */
    w.skip = skip;
    w.nskip = nskip;
  }
  uint32_t depth = 0;
  int ok = 1;
  for (;;) {
    TSSymbol sym = w_symbol(&w);
    if (wants(want, parents, nwant, &w, sym)) {
      if (!visit(ud, w_node(&w), sym, depth, &w)) { ok = 0; break; }
      w.gap = UINT32_MAX;
    } else if (depth < w.gap) {
      w.gap = depth;             /* not visited: the next visit learns (ag_scope_walker_gap) */
    }
    if (w_first_child(&w)) { depth++; continue; }
    if (w.oom) { ok = 0; break; }
    while (!w_next_sibling(&w)) {
      if (w.oom || !w_parent(&w)) goto done;
      depth--;
    }
  }
done:
  if (w.oom) ok = 0;
  w_free(&w);
  return ok ? AG_OK : AG_ENOMEM;
}

/* ------------------------------------------------------------- storage */

typedef struct namerec { const char *p; uint32_t len; uint32_t hash; } namerec;

typedef struct frame {
  TSNode node;
  uint32_t scope;    /* scope of this node's references and of its children */
  uint32_t oscope;   /* the scope outside the one this node opened */
  uint32_t bscope;   /* where M_BIND declares */
  uint32_t decl, stmt;  /* frame depths of the nearest declaration/statement nodes */
  uint32_t dvar;     /* variable declared by this declarator's plain name */
  uint32_t named;    /* named children entered so far */
  uint32_t flags;
  uint16_t sym, field;
  uint8_t mode, bkind, opened, descend;
  uint8_t anc;       /* ancestorHasReturnType's answer from this node up (ag_scope_fnctx) */
  uint32_t fnrec;    /* index in fns of the function this node is (or encloses it), or NONE */
} frame;

enum { M_EXPR, M_TYPE, M_TYPEOF, M_TYPEPRED, M_EXPORT, M_BIND, M_ASSIGN, M_RW, M_NONE, M_NSNAME };

enum {  /* frame flags */
  FF_EXPORT = 1 << 0, FF_INIT = 1 << 1, FF_LOOP = 1 << 2, FF_TYPEIMPORT = 1 << 3,
  FF_PPROP = 1 << 4, FF_SIG = 1 << 5, FF_SETTER = 1 << 6, FF_DIRECT = 1 << 7,
  FF_AMBIENT = 1 << 8, FF_CLASSDECL = 1 << 9, FF_REEXPORT = 1 << 10, FF_HASVALUE = 1 << 11,
  FF_FORBIND = 1 << 12, FF_SELF = 1 << 13, FF_HASALIAS = 1 << 14, FF_USING = 1 << 15,
  FF_INPARAMS = 1 << 16,  /* a parameter of formal_parameters (not a named tuple member) */
  FF_REENTER = 1 << 17    /* false branch of a conditional type: its scope re-entered after */
};
#define FF_PAT (FF_EXPORT | FF_INIT | FF_TYPEIMPORT | FF_PPROP | FF_SIG | FF_SETTER | FF_AMBIENT)

enum { NS_VALUE = 1 << 24, NS_TYPE = 1 << 25, NS_ANY = NS_VALUE | NS_TYPE };
#define RF_PUBLIC 0xffffu

typedef struct svar {
  ag_scope_var v;
  uint32_t name_id;
  uint32_t prev[3];     /* shadowed binding per namespace during the replay */
} svar;

typedef struct sscope {
  ag_scope_scope s;
  uint32_t fn;          /* nearest function scope (itself if one), or NONE */
} sscope;

struct ag_scope {
  const char *src;
  size_t len;
  const langmap *m;
  int tsx, oom;
  ag_scope_visit visit;     /* the visitor of the walk (NULL: none), with its ud */
  void *vud;
  const uint8_t *want;      /* symbols below nwant: visit their leaves (ag_scope_build_visit) */
  const TSSymbol *parents;  /* for want 2: the parents a visited node has (AG_SCOPE_PARENTS a symbol) */
  uint32_t nwant;
  int in_strings;           /* the visitor wants a symbol a string holds (visit_below them) */
  uint8_t *skip;            /* grammar symbol -> the walker passes its leaves (ag_scope_walker.skip) */
  uint32_t nskip;
  /* names */
  namerec *names; uint32_t nnames, capnames;
  uint32_t *ntab; uint32_t ntabcap;          /* open addressing: name id + 1 */
  /* variables, with (scope, name) -> var */
  svar *vars; uint32_t nvars, capvars;
  uint64_t *vkeys; uint32_t *vvals; uint32_t vtabcap, vtabn;
  sscope *scopes; uint32_t nscopes, capscopes;
  ag_scope_ref *refs; uint32_t nrefs, caprefs;
  uint32_t *events; uint32_t nevents, capevents;
  uint32_t *byvar;                           /* ref indices grouped by variable */
  ag_scope_fnctx *fns; uint32_t nfns, capfns; /* function contexts, in preorder */
  uint32_t react;                            /* name id of "React" */
  /* walk */
  frame *fr; uint32_t nfr, capfr;
};

static int grow (void **p, uint32_t *cap, uint32_t need, size_t size) {
  if (need <= *cap) return 1;
  uint32_t c = *cap ? *cap : 16;
  while (c < need) {
    if (c > UINT32_MAX / 2) return 0;
    c *= 2;
  }
  void *q = realloc(*p, (size_t)c * size);
  if (q == NULL) return 0;
  *p = q;
  *cap = c;
  return 1;
}

static uint32_t hashbytes (const char *p, uint32_t n) {
  uint32_t h = 2166136261u;
  for (uint32_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
  return h;
}

static int rehash_names (ag_scope *s, uint32_t cap) {
  uint32_t *t = (uint32_t *)calloc(cap, sizeof *t);
  if (t == NULL) return 0;
  for (uint32_t i = 0; i < s->nnames; i++) {
    uint32_t j = s->names[i].hash & (cap - 1);
    while (t[j]) j = (j + 1) & (cap - 1);
    t[j] = i + 1;
  }
  free(s->ntab);
  s->ntab = t;
  s->ntabcap = cap;
  return 1;
}

/* Name id of the bytes p[0..n), interned; NONE without memory. */
static uint32_t intern (ag_scope *s, const char *p, uint32_t n) {
  if ((s->nnames + 1) * 2 > s->ntabcap && !rehash_names(s, s->ntabcap ? s->ntabcap * 2 : 256)) {
    s->oom = 1;
    return NONE;
  }
  uint32_t h = hashbytes(p, n), j = h & (s->ntabcap - 1);
  while (s->ntab[j]) {
    namerec *r = &s->names[s->ntab[j] - 1];
    if (r->hash == h && r->len == n && memcmp(r->p, p, n) == 0) return s->ntab[j] - 1;
    j = (j + 1) & (s->ntabcap - 1);
  }
  if (!grow((void **)&s->names, &s->capnames, s->nnames + 1, sizeof *s->names)) {
    s->oom = 1;
    return NONE;
  }
  s->names[s->nnames] = (namerec){p, n, h};
  s->ntab[j] = s->nnames + 1;
  return s->nnames++;
}

static uint32_t intern_node (ag_scope *s, TSNode n) {
  uint32_t a = ts_node_start_byte(n), b = ts_node_end_byte(n);
  if (b > s->len) b = (uint32_t)s->len;
  if (a > b) a = b;
  return intern(s, s->src + a, b - a);
}

static uint64_t vkey (uint32_t scope, uint32_t name) {
  return ((uint64_t)scope << 32) | name;
}

static uint32_t vtab_slot (const ag_scope *s, uint64_t k) {
  uint64_t h = k * 0x9E3779B97F4A7C15ull;
  return (uint32_t)(h >> 32) & (s->vtabcap - 1);
}

static int vtab_grow (ag_scope *s) {
  uint32_t cap = s->vtabcap ? s->vtabcap * 2 : 256;
  uint64_t *k = (uint64_t *)malloc((size_t)cap * sizeof *k);
  uint32_t *v = (uint32_t *)malloc((size_t)cap * sizeof *v);
  if (k == NULL || v == NULL) { free(k); free(v); return 0; }
  for (uint32_t i = 0; i < cap; i++) v[i] = NONE;
  uint64_t *ok = s->vkeys;
  uint32_t *ov = s->vvals, ocap = s->vtabcap;
  s->vkeys = k; s->vvals = v; s->vtabcap = cap;
  for (uint32_t i = 0; i < ocap; i++) {
    if (ov[i] == NONE) continue;
    uint32_t j = vtab_slot(s, ok[i]);
    while (v[j] != NONE) j = (j + 1) & (cap - 1);
    k[j] = ok[i];
    v[j] = ov[i];
  }
  free(ok);
  free(ov);
  return 1;
}

static int event (ag_scope *s, uint32_t kind, uint32_t idx) {
  if (idx >= (1u << 30) || !grow((void **)&s->events, &s->capevents, s->nevents + 1, sizeof *s->events)) {
    s->oom = 1;
    return 0;
  }
  s->events[s->nevents++] = (kind << 30) | idx;
  return 1;
}
enum { EV_REF, EV_ENTER, EV_EXIT };

/* ------------------------------------------------------------- walk */

static TSNode field_child (const ag_scope *s, TSNode n, int f) {
  TSFieldId id = s->m->gfield[f];
  if (id == 0) return (TSNode){{0, 0, 0, 0}, NULL, NULL};
  return ts_node_child_by_field_id(n, id);
}

/* 1 when ts_node_child_by_field_id would find a child under field id in
** the node of subtree t: the same search, over the subtrees, without the
** positions of the children it passes (they cost most of that call). */
static int has_field (const TSLanguage *lang, const Subtree *t, TSFieldId id) {
  for (;;) {
    if (id == 0 || t->data.is_inline || t->ptr->child_count == 0 || t->ptr->visible_child_count == 0)
      return 0;
    const TSFieldMapEntry *map, *end;
    ts_language_field_map(lang, t->ptr->production_id, &map, &end);
    if (map == end) return 0;
    while (map->field_id < id) if (++map == end) return 0;
    while (end[-1].field_id > id) if (--end == map) return 0;
    const Subtree *kids = (const Subtree *)t->ptr - t->ptr->child_count, *next = NULL;
    const TSSymbol *aseq = ts_language_alias_sequence(lang, t->ptr->production_id);
    uint32_t si = 0, count = t->ptr->child_count;
    for (uint32_t ci = 0; ci < count; ci++) {
      const Subtree *c = &kids[ci];
      if (sp_extra(c)) continue;
      TSSymbol al = aseq ? aseq[si] : 0;
      uint32_t index = si++;
      if (index < map->child_index) continue;
      if (map->inherited) {                      /* the field is in the hidden child c */
        if (map + 1 == end) { next = c; break; }
        if (has_field(lang, c, id)) return 1;
        if (++map == end) return 0;
      }
      else if (sp_visible(c) || al != 0 || sp_visible_child_count(c) > 0) return 1;
      else if (++map == end) return 0;
    }
    if (next == NULL) return 0;
    t = next;
  }
}

/* 1 when node n has no child under field f (field_child would be null). */
static int no_field (const ag_scope *s, TSNode n, int f) {
  return !has_field(n.tree->language, (const Subtree *)n.id, s->m->gfield[f]);
}

static int has_token (TSNode n, const char *tok) {
  uint32_t c = ts_node_child_count(n);
  for (uint32_t i = 0; i < c; i++) {
    TSNode k = ts_node_child(n, i);
    if (!ts_node_is_named(k) && strcmp(ts_node_type(k), tok) == 0) return 1;
  }
  return 0;
}

static int text_is (const ag_scope *s, TSNode n, const char *t) {
  uint32_t a = ts_node_start_byte(n), b = ts_node_end_byte(n);
  size_t k = strlen(t);
  return b <= s->len && b - a == k && memcmp(s->src + a, t, k) == 0;
}

static uint32_t open_scope (ag_scope *s, frame *F, uint32_t kind, uint32_t flags) {
  if (!grow((void **)&s->scopes, &s->capscopes, s->nscopes + 1, sizeof *s->scopes)) {
    s->oom = 1;
    return NONE;
  }
  uint32_t i = s->nscopes++;
  sscope *sc = &s->scopes[i];
  sc->s.node = F->node;
  sc->s.kind = kind;
  sc->s.flags = flags;
  sc->s.parent = F->scope;
  sc->s.end = i + 1;
  int isvar = kind == AG_SK_MODULE || kind == AG_SK_FUNCTION || kind == AG_SK_NAMESPACE ||
              kind == AG_SK_STATIC;
  sc->s.varscope = isvar || F->scope == NONE ? i : s->scopes[F->scope].s.varscope;
  sc->fn = kind == AG_SK_FUNCTION ? i : F->scope == NONE ? NONE : s->scopes[F->scope].fn;
  F->oscope = F->scope;
  F->scope = i;
  F->opened = 1;
  event(s, EV_ENTER, i);
  return i;
}

static uint32_t kind_ns (uint32_t kind) {
  switch (kind) {
    case AG_VK_CLASS: case AG_VK_ENUM: case AG_VK_IMPORT: case AG_VK_NAMESPACE:
      return AG_VF_VALUE | AG_VF_TYPE;
    case AG_VK_TYPE: case AG_VK_INTERFACE: case AG_VK_TYPE_PARAM:
      return AG_VF_TYPE;
    default:
      return AG_VF_VALUE;
  }
}

static void add_ref (ag_scope *s, uint32_t d, TSNode n, uint32_t name, uint32_t flags);

/* Declares the identifier at frame depth d as `kind` in scope `target`. */
static uint32_t declare (ag_scope *s, uint32_t d, uint32_t kind, uint32_t target, uint32_t ff) {
  frame *F = &s->fr[d];
  if (target == NONE) return NONE;
  uint32_t name = intern_node(s, F->node);
  if (name == NONE) return NONE;
  if ((s->vtabn + 1) * 2 > s->vtabcap && !vtab_grow(s)) { s->oom = 1; return NONE; }
  uint64_t k = vkey(target, name);
  uint32_t j = vtab_slot(s, k);
  while (s->vvals[j] != NONE && s->vkeys[j] != k) j = (j + 1) & (s->vtabcap - 1);
  uint32_t flags = kind_ns(kind);
  if (ff & FF_EXPORT) flags |= AG_VF_EXPORTED;
  if (ff & FF_INIT) flags |= AG_VF_INIT;
  if (ff & FF_SELF) flags |= AG_VF_SELF;
  if (ff & FF_PPROP) flags |= AG_VF_PARAM_PROP;
  if (ff & FF_SIG) flags |= AG_VF_SIGNATURE;
  if (ff & FF_SETTER) flags |= AG_VF_SETTER;
  if (ff & FF_DIRECT) flags |= AG_VF_DIRECT;
  if (ff & FF_AMBIENT) flags |= AG_VF_DECLARE;
  if (ff & FF_TYPEIMPORT) flags |= AG_VF_TYPE_IMPORT;
  uint32_t vi;
  if (s->vvals[j] != NONE) {
    vi = s->vvals[j];
    svar *v = &s->vars[vi];
    v->v.ndefs++;
    uint32_t ti = v->v.flags & flags & AG_VF_TYPE_IMPORT;
    v->v.flags = ((v->v.flags | flags) & ~(uint32_t)AG_VF_TYPE_IMPORT) | ti;
  }
  else {
    if (!grow((void **)&s->vars, &s->capvars, s->nvars + 1, sizeof *s->vars)) {
      s->oom = 1;
      return NONE;
    }
    vi = s->nvars++;
    svar *v = &s->vars[vi];
    memset(v, 0, sizeof *v);
    const namerec *r = &s->names[name];
    v->v.name = r->p;
    v->v.name_len = r->len;
    v->v.kind = kind;
    v->v.flags = flags;
    v->v.scope = target;
    v->v.ndefs = 1;
    v->v.id = F->node;
    v->v.decl = F->decl != NONE ? s->fr[F->decl].node : F->node;
    v->v.stmt = F->stmt != NONE ? s->fr[F->stmt].node : v->v.decl;
    v->v.self_scope = NONE;
    v->name_id = name;
    s->vkeys[j] = k;
    s->vvals[j] = vi;
    s->vtabn++;
  }
  if (ff & FF_INIT) add_ref(s, d, F->node, name, AG_RF_WRITE | AG_RF_INIT | NS_VALUE);
  return vi;
}

/* 1 when the expression at frame depth j is evaluated for nothing: an
** expression statement, or not the last of a sequence (ESLint's
** isUnusedExpression; parentheses do not count). */
static int unused_expr (const ag_scope *s, uint32_t j) {
  while (j > 0) {
    const frame *P = &s->fr[j - 1];
    if (P->sym == S_PARENTHESIZED_EXPR) { j--; continue; }
    if (P->sym == S_EXPRESSION_STATEMENT) return 1;
    if (P->sym == S_SEQUENCE_EXPR) {
      /* not the last: it ends before the sequence (no sibling search: in
      ** tree-sitter 0.20 that walks down from the root, each time) */
      if (ts_node_end_byte(s->fr[j].node) < ts_node_end_byte(P->node)) return 1;
      j--;
      continue;
    }
    return 0;
  }
  return 0;
}

static void add_ref (ag_scope *s, uint32_t d, TSNode n, uint32_t name, uint32_t flags) {
  if (name == NONE) return;
  if (!grow((void **)&s->refs, &s->caprefs, s->nrefs + 1, sizeof *s->refs)) { s->oom = 1; return; }
  const frame *F = &s->fr[d];
  ag_scope_ref *r = &s->refs[s->nrefs];
  r->node = n;
  r->var = NONE;
  r->scope = F->scope;
  r->name = name;
  r->rhs_start = r->rhs_end = 0;
  if (F->flags & FF_LOOP) flags |= AG_RF_LOOP;
  if ((flags & AG_RF_WRITE) && !(flags & AG_RF_INIT) && d > 0) {
    uint32_t j = d - 1;                          /* the parent, parentheses skipped */
    while (j > 0 && s->fr[j].sym == S_PARENTHESIZED_EXPR) j--;
    const frame *P = &s->fr[j];
    if ((P->sym == S_ASSIGNMENT_EXPR || P->sym == S_AUGMENTED_ASSIGNMENT_EXPR) &&
        s->fr[j + 1].field == F_LEFT && unused_expr(s, j)) {
      TSNode rhs = field_child(s, P->node, F_RIGHT);
      if (!ts_node_is_null(rhs)) {
        r->rhs_start = ts_node_start_byte(rhs);
        r->rhs_end = ts_node_end_byte(rhs);
      }
      if (P->sym == S_AUGMENTED_ASSIGNMENT_EXPR) {
        TSNode op = field_child(s, P->node, F_OPERATOR);
        const char *o = ts_node_is_null(op) ? "" : ts_node_type(op);
        if (strcmp(o, "&&=") && strcmp(o, "||=") && strcmp(o, "?" "?=")) flags |= AG_RF_SELF_UPDATE;
      }
    }
    else if (P->sym == S_UPDATE_EXPR && unused_expr(s, j)) flags |= AG_RF_SELF_UPDATE;
  }
  r->flags = flags;
  if (event(s, EV_REF, s->nrefs)) s->nrefs++;
}

/* Where `infer X` declares X: the scope of the nearest conditional type
** whose check or extends type holds it (typescript-eslint looks past the
** function-type scopes in between).  The search is bounded: a frame stack
** of hostile depth costs no more than 256 steps per name. */
static uint32_t infer_scope (const ag_scope *s, const frame *P) {
  uint32_t d = (uint32_t)(P - s->fr);
  for (uint32_t k = 0; k < 256 && d > 0; k++, d--) {
    const frame *A = &s->fr[d];
    if (A->sym == S_CONDITIONAL_TYPE && A->opened) return A->scope;
  }
  return P->scope;
}

/* Mode and flags of the frame F (already holding node, sym and field)
** from its parent P. */
static void child_ctx (const ag_scope *s, const frame *P, frame *F) {
  uint16_t f = F->field, c = F->sym;
  uint8_t pm = P->mode;
  int patmode = pm == M_BIND || pm == M_ASSIGN || pm == M_RW;
  F->mode = (patmode || pm == M_TYPEPRED || pm == M_EXPORT || pm == M_NSNAME) ? M_EXPR : pm;
  F->flags = P->flags & (FF_LOOP | FF_AMBIENT);
  F->bkind = P->bkind;
  F->bscope = P->bscope;
  if (pm != M_NONE && (is_type_start(c) || f == F_TYPE || f == F_RETURN_TYPE || f == F_INDEX_TYPE))
    F->mode = M_TYPE;
  if (c == S_DECORATOR || c == S_COMPUTED_PROPERTY_NAME) F->mode = M_EXPR;
  switch (P->sym) {
    case S_LEXICAL_DECL: case S_VARIABLE_DECL:
      if (c == S_VARIABLE_DECLARATOR) F->flags |= P->flags & (FF_EXPORT | FF_AMBIENT);
      break;
    case S_VARIABLE_DECLARATOR:
      if (f == F_NAME) {
        F->mode = M_BIND;
        F->flags |= P->flags & FF_PAT;
      }
      break;
    case S_EXPORT_STATEMENT:
      if (f == F_DECLARATION) F->flags |= FF_EXPORT;
      else if (f == F_VALUE) {
        if (c == S_IDENTIFIER) F->mode = M_EXPORT;
        else F->flags |= FF_EXPORT;
      }
      else if (f == F_SOURCE || c == S_NAMESPACE_EXPORT) F->mode = M_NONE;
      else if (c == S_IDENTIFIER) F->mode = M_EXPORT;
      else if (c == S_EXPORT_CLAUSE) F->mode = (P->flags & FF_REEXPORT) ? M_NONE : M_EXPORT;
      break;
    case S_EXPORT_CLAUSE:
      F->mode = pm;
      break;
    case S_EXPORT_SPECIFIER:
      F->mode = f == F_NAME ? pm : M_NONE;
      break;
    case S_AMBIENT_DECL:
      F->flags |= FF_AMBIENT | (P->flags & FF_EXPORT);
      break;
    case S_FUNCTION_DECL: case S_GENERATOR_FUNCTION_DECL: case S_FUNCTION_SIG:
    case S_FUNCTION_EXPR: case S_GENERATOR_FUNCTION: case S_ARROW_FUNCTION:
    case S_METHOD_DEF: case S_METHOD_SIG: case S_ABSTRACT_METHOD_SIG: case S_CALL_SIG:
    case S_CONSTRUCT_SIG: case S_FUNCTION_TYPE: case S_CONSTRUCTOR_TYPE:
      if (f == F_NAME) {
        if (P->sym == S_FUNCTION_DECL || P->sym == S_GENERATOR_FUNCTION_DECL ||
            P->sym == S_FUNCTION_SIG) {
          F->mode = M_BIND;
          F->bkind = AG_VK_FUNCTION;
          F->bscope = P->oscope;
          F->flags |= P->flags & FF_EXPORT;
        }
        else if (P->sym == S_FUNCTION_EXPR || P->sym == S_GENERATOR_FUNCTION) {
          F->mode = M_BIND;
          F->bkind = AG_VK_FUNCTION;
          F->bscope = P->scope;
          F->flags |= FF_SELF;
        }
        else if (c != S_COMPUTED_PROPERTY_NAME) F->mode = M_NONE;
      }
      else if (f == F_PARAMETER) {
        F->mode = M_BIND;
        F->bkind = AG_VK_PARAM;
        F->bscope = P->scope;
        F->flags |= FF_DIRECT;
      }
      else if (f == F_PARAMETERS) F->flags |= P->flags & (FF_SIG | FF_SETTER);
      break;
    case S_FORMAL_PARAMETERS:
      F->flags |= (P->flags & (FF_SIG | FF_SETTER)) | FF_INPARAMS;
      break;
    case S_REQUIRED_PARAM: case S_OPTIONAL_PARAM:
      if (!(P->flags & FF_INPARAMS)) {       /* [name: T] in a tuple type: a label */
        if (f == F_PATTERN || f == F_NAME) F->mode = M_NONE;
      }
      else if (f == F_PATTERN || f == F_NAME) {
        F->mode = M_BIND;
        F->bkind = AG_VK_PARAM;
        F->bscope = P->scope;
        F->flags |= P->flags & (FF_SIG | FF_SETTER | FF_PPROP | FF_INIT);
        if (c == S_IDENTIFIER && !(P->flags & FF_HASVALUE)) F->flags |= FF_DIRECT;
      }
      else if (f == F_VALUE) F->mode = M_EXPR;
      break;
    case S_CATCH_CLAUSE:
      if (f == F_PARAMETER) {
        F->mode = M_BIND;
        F->bkind = AG_VK_CATCH;
        F->bscope = P->scope;
      }
      break;
    case S_FOR_IN_STATEMENT:
      if (f == F_LEFT) {
        if (P->flags & FF_FORBIND) {
          F->mode = M_BIND;
          F->flags |= FF_INIT;
        }
        else F->mode = M_ASSIGN;
      }
      break;
    case S_OBJECT_PATTERN: case S_ARRAY_PATTERN: case S_REST_PATTERN:
      if (patmode) {
        F->mode = pm;
        F->flags |= P->flags & FF_PAT;
      }
      break;
    case S_PAIR_PATTERN:
      if (f == F_VALUE && patmode) {
        F->mode = pm;
        F->flags |= P->flags & FF_PAT;
      }
      else if (f == F_KEY && c != S_COMPUTED_PROPERTY_NAME) F->mode = M_NONE;
      break;
    case S_ASSIGNMENT_PATTERN: case S_OBJECT_ASSIGNMENT_PATTERN:
      if (f == F_LEFT && patmode) {
        F->mode = pm;
        F->flags |= P->flags & FF_PAT;
        if (pm == M_BIND) F->flags |= FF_INIT;
      }
      break;
    case S_PARENTHESIZED_EXPR: case S_NON_NULL_EXPR:
      if (pm == M_ASSIGN || pm == M_RW) F->mode = pm;
      break;
    case S_AS_EXPR: case S_SATISFIES_EXPR:
      if (ts_node_is_named(F->node)) {
        if (P->named > 0) F->mode = M_TYPE;
        else if (pm == M_ASSIGN || pm == M_RW) F->mode = pm;
      }
      break;
    case S_ASSIGNMENT_EXPR:
      if (f == F_LEFT) {
        if (P->flags & FF_USING) {
          F->mode = M_BIND;
          F->bkind = AG_VK_USING;
          F->bscope = P->scope;
          F->flags |= FF_INIT;
        }
        else F->mode = M_ASSIGN;
      }
      break;
    case S_AUGMENTED_ASSIGNMENT_EXPR:
      if (f == F_LEFT) F->mode = M_RW;
      break;
    case S_UPDATE_EXPR:
      if (f == F_ARGUMENT) F->mode = M_RW;
      break;
    case S_CLASS_DECL: case S_ABSTRACT_CLASS_DECL:
      if (f == F_NAME) {
        F->mode = M_BIND;
        F->bkind = AG_VK_CLASS;
        F->bscope = P->oscope;
        F->flags |= FF_CLASSDECL | (P->flags & FF_EXPORT);
      }
      break;
    case S_CLASS:
      if (f == F_NAME) {
        F->mode = M_BIND;
        F->bkind = AG_VK_CLASS;
        F->bscope = P->scope;
        F->flags |= FF_SELF;
      }
      break;
    case S_IMPORT_STATEMENT:
      F->flags |= P->flags & FF_TYPEIMPORT;
      if (f == F_SOURCE) F->mode = M_NONE;
      break;
    case S_IMPORT_CLAUSE: case S_NAMESPACE_IMPORT: case S_IMPORT_REQUIRE_CLAUSE:
      F->flags |= P->flags & FF_TYPEIMPORT;
      if (c == S_IDENTIFIER && f != F_SOURCE) {
        F->mode = M_BIND;
        F->bkind = AG_VK_IMPORT;
        F->bscope = P->scope;
      }
      else if (f == F_SOURCE) F->mode = M_NONE;
      break;
    case S_NAMED_IMPORTS:
      F->flags |= P->flags & FF_TYPEIMPORT;
      break;
    case S_IMPORT_SPECIFIER:
      if (f == F_ALIAS || (f == F_NAME && !(P->flags & FF_HASALIAS))) {
        F->mode = M_BIND;
        F->bkind = AG_VK_IMPORT;
        F->bscope = P->scope;
        F->flags |= P->flags & FF_TYPEIMPORT;
      }
      else F->mode = M_NONE;
      break;
    case S_IMPORT_ALIAS:
      if (ts_node_is_named(F->node) && P->named == 0) {
        F->mode = M_BIND;
        F->bkind = AG_VK_IMPORT;
        F->bscope = P->scope;
        F->flags |= P->flags & FF_EXPORT;
      }
      break;
    case S_ENUM_DECL:
      if (f == F_NAME) {
        F->mode = M_BIND;
        F->bkind = AG_VK_ENUM;
        F->bscope = P->oscope;
        F->flags |= P->flags & FF_EXPORT;
      }
      break;
    case S_ENUM_BODY:
      if (c == S_PROPERTY_IDENTIFIER) {
        F->mode = M_BIND;
        F->bkind = AG_VK_ENUM_MEMBER;
        F->bscope = P->scope;
      }
      break;
    case S_ENUM_ASSIGNMENT:
      if (f == F_NAME) {
        F->mode = M_BIND;
        F->bkind = AG_VK_ENUM_MEMBER;
        F->bscope = P->scope;
      }
      break;
    case S_TYPE_ALIAS_DECL: case S_INTERFACE_DECL:
      if (f == F_NAME) {
        F->mode = M_BIND;
        F->bkind = P->sym == S_TYPE_ALIAS_DECL ? AG_VK_TYPE : AG_VK_INTERFACE;
        F->bscope = P->oscope;
        F->flags |= P->flags & FF_EXPORT;
      }
      else if (f == F_VALUE || f == F_BODY) F->mode = M_TYPE;
      break;
    case S_INTERNAL_MODULE: case S_MODULE:
      if (f == F_NAME) {
        F->mode = c == S_IDENTIFIER ? M_BIND : c == S_NESTED_IDENTIFIER ? M_NSNAME : M_NONE;
        F->bkind = AG_VK_NAMESPACE;
        F->bscope = P->oscope;
        F->flags |= P->flags & FF_EXPORT;
      }
      break;
    case S_NESTED_IDENTIFIER:
      if (pm == M_NSNAME) {
        F->mode = f == F_OBJECT ? (c == S_IDENTIFIER ? M_BIND : M_NSNAME) : M_NONE;
        F->flags |= P->flags & FF_EXPORT;
      }
      else F->mode = f == F_OBJECT ? pm : M_NONE;
      break;
    case S_TYPE_PARAMETER:
      if (f == F_NAME) {
        F->mode = M_BIND;
        F->bkind = AG_VK_TYPE_PARAM;
        F->bscope = P->scope;
      }
      break;
    case S_TYPE_QUERY:
      if (c != S_TYPE_ARGUMENTS) F->mode = M_TYPEOF;
      break;
    case S_NESTED_TYPE_IDENTIFIER:
      F->mode = f == F_MODULE ? M_TYPE : M_NONE;
      break;
    case S_TYPE_PREDICATE:
      if (f == F_NAME) F->mode = M_TYPEPRED;
      break;
    case S_ASSERTS:
      if (c == S_IDENTIFIER) F->mode = M_TYPEPRED;
      break;
    case S_MAPPED_TYPE_CLAUSE:
      if (f == F_NAME) F->mode = M_NONE;
      break;
    case S_INFER_TYPE:
      if (c == S_TYPE_IDENTIFIER && P->named == 0) {
        F->mode = M_BIND;
        F->bkind = AG_VK_TYPE_PARAM;
        F->bscope = infer_scope(s, P);
      }
      break;
    case S_CONDITIONAL_TYPE:      /* the false branch is outside the scope of the infer names */
      if (f == F_ALTERNATIVE) F->scope = P->oscope;
      break;
    case S_INDEX_SIGNATURE:
      F->mode = f == F_NAME ? M_NONE : M_TYPE;
      break;
    case S_PUBLIC_FIELD_DEF:
      if (f == F_VALUE) F->mode = M_EXPR;
      break;
    case S_JSX_OPENING: case S_JSX_SELF_CLOSING:
      if (f == F_NAME) {
        if (c == S_IDENTIFIER) {
          uint32_t a = ts_node_start_byte(F->node);
          char ch = a < s->len ? s->src[a] : 'a';
          int intrinsic = (ch >= 'a' && ch <= 'z');
          uint32_t b = ts_node_end_byte(F->node);
          for (uint32_t i = a; i < b && i < s->len; i++) if (s->src[i] == '-') intrinsic = 1;
          F->mode = intrinsic ? M_NONE : M_EXPR;
        }
        else if (c == S_MEMBER_EXPR) F->mode = M_EXPR;
        else F->mode = M_NONE;
      }
      break;
    case S_JSX_CLOSING: case S_JSX_NAMESPACE_NAME: case S_STRING:
      F->mode = M_NONE;
      break;
    case S_ERROR:
      F->mode = M_EXPR;
      break;
    default:
      break;
  }
}

/* Declaration and statement nodes a declared name records. */
static int is_decl_sym (uint16_t s) {
  switch (s) {
    case S_VARIABLE_DECLARATOR: case S_REQUIRED_PARAM: case S_OPTIONAL_PARAM:
    case S_IMPORT_SPECIFIER: case S_IMPORT_CLAUSE: case S_NAMESPACE_IMPORT:
    case S_IMPORT_REQUIRE_CLAUSE: case S_IMPORT_ALIAS: case S_CATCH_CLAUSE:
    case S_CLASS_DECL: case S_ABSTRACT_CLASS_DECL: case S_CLASS: case S_ENUM_DECL:
    case S_ENUM_ASSIGNMENT: case S_TYPE_ALIAS_DECL: case S_INTERFACE_DECL:
    case S_INTERNAL_MODULE: case S_MODULE: case S_TYPE_PARAMETER: case S_FOR_IN_STATEMENT:
      return 1;
    default:
      return is_function_sym(s);
  }
}

static int is_stmt_sym (uint16_t s) {
  switch (s) {
    case S_LEXICAL_DECL: case S_VARIABLE_DECL: case S_IMPORT_STATEMENT: case S_IMPORT_ALIAS:
    case S_CATCH_CLAUSE: case S_CLASS_DECL: case S_ABSTRACT_CLASS_DECL: case S_CLASS:
    case S_ENUM_DECL: case S_TYPE_ALIAS_DECL: case S_INTERFACE_DECL: case S_INTERNAL_MODULE:
    case S_MODULE: case S_FOR_IN_STATEMENT:
      return 1;
    default:
      return is_function_sym(s);
  }
}

static uint32_t decl_kind (const ag_scope *s, TSNode kindnode) {
  if (ts_node_is_null(kindnode)) return AG_VK_VAR;
  if (text_is(s, kindnode, "let")) return AG_VK_LET;
  if (text_is(s, kindnode, "const")) return AG_VK_CONST;
  return AG_VK_VAR;
}

/* The effects of the node on top of the frame stack (depth d).  Inlined into
** push_frame, its one caller (GCC -O2 may keep it a call). */
static inline __attribute__((always_inline)) void node_entry (ag_scope *s, uint32_t d) {
  frame *F = &s->fr[d];
  const frame *P = d > 0 ? &s->fr[d - 1] : NULL;
  uint16_t sym = F->sym;
  if (d == 0 && sym != S_PROGRAM)        /* a root that is not a program (ERROR): still the module */
    open_scope(s, F, AG_SK_MODULE, 0);
  uint8_t prop = s->m->prop[sym];
  if (prop & P_DECL) F->decl = d;
  if (prop & P_STMT) F->stmt = d;
  if (P && P->sym == S_CONDITIONAL_TYPE && P->opened && F->field == F_ALTERNATIVE) {
    event(s, EV_EXIT, P->scope);       /* the replay leaves the conditional scope meanwhile */
    F->flags |= FF_REENTER;
  }
  switch (sym) {
    case S_IDENTIFIER: case S_TYPE_IDENTIFIER: case S_SHORTHAND_PROP:
    case S_SHORTHAND_PROP_PATTERN: case S_PROPERTY_IDENTIFIER: {
      uint8_t m = F->mode;
      if (m == M_BIND) {
        if (sym == S_SHORTHAND_PROP) return;
        if (sym == S_PROPERTY_IDENTIFIER && F->bkind != AG_VK_ENUM_MEMBER) return;
        if (F->bkind == AG_VK_PARAM && P && is_function_sym(P->sym)) F->decl = d;
        if (F->bkind == AG_VK_TYPE_PARAM && P && P->sym == S_TYPE_PARAMETER &&
            (text_is(s, F->node, "in") || text_is(s, F->node, "out") || text_is(s, F->node, "const"))) {
          /* `<out T>`: this grammar has no variance modifiers; the keyword is taken as the name */
          TSNode nx = ts_node_next_named_sibling(P->node);
          if (!ts_node_is_null(nx) && symof(s->m, nx) == S_ERROR) return;
        }
        uint32_t ff = F->flags;
        if (ff & FF_CLASSDECL) {
          declare(s, d, AG_VK_CLASS, F->bscope, ff & ~(uint32_t)FF_CLASSDECL);
          declare(s, d, AG_VK_CLASS, F->scope, FF_SELF);
          return;
        }
        uint32_t v = declare(s, d, F->bkind, F->bscope, ff);
        if (v == NONE) return;
        if (P && P->sym == S_VARIABLE_DECLARATOR && F->field == F_NAME) s->fr[d - 1].dvar = v;
        /* a function, type, enum or namespace body holds its own name's self references */
        if (P && P->opened && F->field == F_NAME &&
            ((P->sym == S_FUNCTION_DECL || P->sym == S_GENERATOR_FUNCTION_DECL) ||
             P->sym == S_TYPE_ALIAS_DECL || P->sym == S_INTERFACE_DECL ||
             P->sym == S_ENUM_DECL || P->sym == S_INTERNAL_MODULE || P->sym == S_MODULE))
          s->vars[v].v.self_scope = P->scope;
        return;
      }
      if (sym == S_PROPERTY_IDENTIFIER) return;
      uint32_t fl = 0;
      switch (m) {
        case M_EXPR: fl = sym == S_TYPE_IDENTIFIER ? 0 : AG_RF_READ | NS_VALUE; break;
        case M_TYPE: fl = sym == S_SHORTHAND_PROP ? 0 : AG_RF_READ | AG_RF_TYPE | NS_TYPE; break;
        case M_TYPEOF: fl = AG_RF_READ | AG_RF_TYPE | AG_RF_TYPEOF | NS_VALUE; break;
        case M_TYPEPRED: fl = AG_RF_READ | AG_RF_TYPE | AG_RF_PREDICATE | NS_VALUE; break;
        case M_EXPORT: fl = AG_RF_READ | NS_ANY; break;
        case M_ASSIGN: fl = sym == S_TYPE_IDENTIFIER ? 0 : AG_RF_WRITE | NS_VALUE; break;
        case M_RW: fl = sym == S_TYPE_IDENTIFIER ? 0 : AG_RF_READ | AG_RF_WRITE | NS_VALUE; break;
        default: break;
      }
      if (sym == S_SHORTHAND_PROP && m != M_EXPR) fl = 0;
      if (sym == S_SHORTHAND_PROP_PATTERN && m != M_ASSIGN) fl = 0;
      if (fl) add_ref(s, d, F->node, intern_node(s, F->node), fl);
      return;
    }
    case S_PROGRAM:
      if (d == 0) open_scope(s, F, AG_SK_MODULE, 0);
      return;
    case S_LEXICAL_DECL: case S_VARIABLE_DECL: {
      F->bkind = (uint8_t)(sym == S_VARIABLE_DECL ? AG_VK_VAR
                                                  : decl_kind(s, field_child(s, F->node, F_KIND)));
      F->bscope = F->bkind == AG_VK_VAR ? s->scopes[F->scope].s.varscope : F->scope;
      return;
    }
    case S_VARIABLE_DECLARATOR:
      F->dvar = NONE;
      if (!no_field(s, F->node, F_VALUE)) F->flags |= FF_INIT;
      return;
    case S_REQUIRED_PARAM: case S_OPTIONAL_PARAM: {
      if (!no_field(s, F->node, F_VALUE)) F->flags |= FF_HASVALUE | FF_INIT;
      uint32_t c = ts_node_child_count(F->node);
      for (uint32_t i = 0; i < c; i++) {
        TSNode k = ts_node_child(F->node, i);
        const char *t = ts_node_type(k);
        if (strcmp(t, "accessibility_modifier") == 0 || strcmp(t, "override_modifier") == 0 ||
            (!ts_node_is_named(k) && strcmp(t, "readonly") == 0)) {
          F->flags |= FF_PPROP;
          break;
        }
      }
      return;
    }
    case S_STATEMENT_BLOCK:
      if (P && (is_function_sym(P->sym) || P->sym == S_CLASS_STATIC_BLOCK ||
                P->sym == S_INTERNAL_MODULE || P->sym == S_MODULE))
        return;
      if (P && P->sym == S_AMBIENT_DECL) open_scope(s, F, AG_SK_NAMESPACE, AG_SF_AMBIENT);
      else open_scope(s, F, AG_SK_BLOCK, 0);
      return;
    case S_FOR_STATEMENT: {
      F->flags |= FF_LOOP;
      TSNode init = field_child(s, F->node, F_INITIALIZER);
      if (!ts_node_is_null(init) && symof(s->m, init) == S_LEXICAL_DECL)
        open_scope(s, F, AG_SK_FOR, 0);
      return;
    }
    case S_FOR_IN_STATEMENT: {
      F->flags |= FF_LOOP;
      TSNode k = field_child(s, F->node, F_KIND);
      if (ts_node_is_null(k)) return;
      F->flags |= FF_FORBIND;
      F->bkind = (uint8_t)decl_kind(s, k);
      if (F->bkind != AG_VK_VAR) {
        open_scope(s, F, AG_SK_FOR, 0);
        F->bscope = F->scope;
      }
      else F->bscope = s->scopes[F->scope].s.varscope;
      return;
    }
    case S_WHILE: case S_DO:
      F->flags |= FF_LOOP;
      return;
    case S_SWITCH_BODY:
      open_scope(s, F, AG_SK_SWITCH, 0);
      return;
    case S_CATCH_CLAUSE:
      open_scope(s, F, AG_SK_CATCH, 0);
      return;
    case S_CLASS_DECL: case S_ABSTRACT_CLASS_DECL: case S_CLASS:
      open_scope(s, F, AG_SK_CLASS, 0);
      return;
    case S_CLASS_STATIC_BLOCK:
      F->flags &= ~(uint32_t)FF_LOOP;
      open_scope(s, F, AG_SK_STATIC, 0);
      return;
    case S_INTERNAL_MODULE: case S_MODULE:
      open_scope(s, F, AG_SK_NAMESPACE,
                 (F->flags & FF_AMBIENT) || (F->scope != NONE &&
                  (s->scopes[F->scope].s.flags & AG_SF_AMBIENT)) ? AG_SF_AMBIENT : 0);
      return;
    case S_ENUM_DECL:
      open_scope(s, F, AG_SK_ENUM, 0);
      return;
    case S_INTERFACE_DECL: case S_TYPE_ALIAS_DECL: case S_CONDITIONAL_TYPE:
      open_scope(s, F, AG_SK_TYPE, 0);
      return;
    case S_IMPORT_STATEMENT:
      if (ts_node_child_count(F->node) > 1 && strcmp(ts_node_type(ts_node_child(F->node, 1)), "type") == 0)
        F->flags |= FF_TYPEIMPORT;
      return;
    case S_IMPORT_SPECIFIER:
      if (!no_field(s, F->node, F_ALIAS)) F->flags |= FF_HASALIAS;
      if (has_token(F->node, "type")) F->flags |= FF_TYPEIMPORT;
      return;
    case S_EXPORT_STATEMENT: {
      if (!no_field(s, F->node, F_SOURCE)) F->flags |= FF_REEXPORT;
      TSNode dn = field_child(s, F->node, F_DECLARATION), vn = field_child(s, F->node, F_VALUE);
      if (ts_node_is_null(dn) && (ts_node_is_null(vn) || symof(s->m, vn) == S_IDENTIFIER) &&
          F->scope != NONE)
        s->scopes[F->scope].s.flags |= AG_SF_EXPORT_LIST;
      return;
    }
    case S_ASSIGNMENT_EXPR:
      if (ts_node_child_count(F->node) > 0) {
        TSNode k = ts_node_child(F->node, 0);
        if (!ts_node_is_named(k) && strcmp(ts_node_type(k), "using") == 0) F->flags |= FF_USING;
      }
      return;
    case S_JSX_OPENING: case S_JSX_SELF_CLOSING:
      if (s->tsx) add_ref(s, d, F->node, s->react, AG_RF_READ | AG_RF_PRAGMA | NS_VALUE);
      return;
    case S_RETURN_STATEMENT:
      if (F->fnrec != NONE) {
        ag_scope_fnctx *c = &s->fns[F->fnrec];
        TSNode arg = ts_node_named_child(F->node, 0);
        while (!ts_node_is_null(arg) && symof(s->m, arg) == S_COMMENT) arg = ts_node_next_named_sibling(arg);
        while (!ts_node_is_null(arg) && symof(s->m, arg) == S_PARENTHESIZED_EXPR) arg = ts_node_named_child(arg, 0);
        c->nret++;
        if (!ts_node_is_null(arg)) {
          uint16_t as = symof(s->m, arg);
          if (as == S_ARROW_FUNCTION || as == S_FUNCTION_EXPR || as == S_GENERATOR_FUNCTION) c->nret_fn++;
        }
      }
      return;
    case S_STRING: case S_COMMENT:
      F->descend = 0;
      return;
    default:
      break;
  }
  if (is_function_sym(sym)) {
    if (!is_signature_sym(sym) && sym != S_FUNCTION_SIG && d > 0) {
      if (!grow((void **)&s->fns, &s->capfns, s->nfns + 1, sizeof *s->fns)) { s->oom = 1; return; }
      uint32_t j = d - 1;
      while (j > 0 && s->fr[j].sym == S_PARENTHESIZED_EXPR) j--;
      ag_scope_fnctx *c = &s->fns[s->nfns++];
      c->fn = F->node;
      c->parent = s->fr[j].node;
      c->from = s->fr[j + 1].node;
      c->grand = j > 0 ? s->fr[j - 1].node : (TSNode){{0, 0, 0, 0}, NULL, NULL};
      c->typed_ancestor = s->fr[j].anc;
      c->nret = c->nret_fn = 0;
      c->returns_function = 0;
      F->fnrec = s->nfns - 1;
      if (sym == S_ARROW_FUNCTION) {
        TSNode body = field_child(s, F->node, F_BODY);
        while (!ts_node_is_null(body) && symof(s->m, body) == S_PARENTHESIZED_EXPR)
          body = ts_node_named_child(body, 0);
        if (!ts_node_is_null(body)) {
          uint16_t bs = symof(s->m, body);
          c->returns_function = bs == S_ARROW_FUNCTION || bs == S_FUNCTION_EXPR || bs == S_GENERATOR_FUNCTION;
        }
      }
    }
    else F->fnrec = NONE;
    F->flags &= ~(uint32_t)FF_LOOP;
    if (is_signature_sym(sym) ||
        ((sym == S_FUNCTION_DECL || sym == S_METHOD_DEF) &&
         no_field(s, F->node, F_BODY)))
      F->flags |= FF_SIG;
    if (sym == S_METHOD_DEF && has_token(F->node, "set")) F->flags |= FF_SETTER;
    uint32_t sc = open_scope(s, F, AG_SK_FUNCTION, 0);
    if (sc == NONE || !(sym == S_ARROW_FUNCTION || sym == S_FUNCTION_EXPR ||
                        sym == S_GENERATOR_FUNCTION))
      return;
    /* `const f = () => ...`: the body holds f's self references */
    uint32_t j = d;
    while (j > 0 && s->fr[j - 1].sym == S_PARENTHESIZED_EXPR) j--;
    if (j > 0 && s->fr[j - 1].sym == S_VARIABLE_DECLARATOR && s->fr[j].field == F_VALUE &&
        s->fr[j - 1].dvar != NONE && s->vars[s->fr[j - 1].dvar].v.self_scope == NONE)
      s->vars[s->fr[j - 1].dvar].v.self_scope = sc;
  }
}

/* 1 when the walker's node has children (visible or not). */
static inline int w_has_kids (const ag_scope_walker *c) {
  const Subtree *t = c->stk[c->n - 1].subtree;
  return !t->data.is_inline && t->ptr->child_count > 0;
}

/* 1 when the visitor wants the node under the walker, of public symbol gs:
** every node of its symbol, or those under one of the parents listed. */
static inline int w_wanted (const ag_scope *s, const ag_scope_walker *c, TSSymbol gs) {
  return wants(s->want, s->parents, s->nwant, c, gs);
}

/* Parents whose children's fields matter (child_ctx, add_ref): asking
** the cursor for a field costs a search of the production's field map in
** tree-sitter 0.20, so the walk asks only under these. */
static int needs_field (uint16_t sym) {
  switch (sym) {
    case S_VARIABLE_DECLARATOR: case S_EXPORT_STATEMENT: case S_EXPORT_SPECIFIER:
    case S_REQUIRED_PARAM: case S_OPTIONAL_PARAM: case S_CATCH_CLAUSE: case S_FOR_IN_STATEMENT:
    case S_PAIR_PATTERN: case S_ASSIGNMENT_PATTERN: case S_OBJECT_ASSIGNMENT_PATTERN:
    case S_ASSIGNMENT_EXPR: case S_AUGMENTED_ASSIGNMENT_EXPR: case S_UPDATE_EXPR:
    case S_CLASS_DECL: case S_ABSTRACT_CLASS_DECL: case S_CLASS: case S_IMPORT_STATEMENT:
    case S_IMPORT_CLAUSE: case S_NAMESPACE_IMPORT: case S_IMPORT_REQUIRE_CLAUSE:
    case S_IMPORT_SPECIFIER: case S_ENUM_DECL: case S_ENUM_ASSIGNMENT: case S_TYPE_ALIAS_DECL:
    case S_INTERFACE_DECL: case S_INTERNAL_MODULE: case S_MODULE: case S_NESTED_IDENTIFIER:
    case S_TYPE_PARAMETER: case S_NESTED_TYPE_IDENTIFIER: case S_TYPE_PREDICATE:
    case S_MAPPED_TYPE_CLAUSE: case S_INDEX_SIGNATURE: case S_PUBLIC_FIELD_DEF:
    case S_JSX_OPENING: case S_JSX_SELF_CLOSING: case S_PARENTHESIZED_EXPR:
    case S_PROPERTY_SIGNATURE: case S_EXTENDS_TYPE_CLAUSE: case S_CONDITIONAL_TYPE:
      return 1;
    default:
      return is_function_sym(sym);
  }
}

/* Pushes the frame of the node under the walker, of public symbol gs. */
static int push_frame (ag_scope *s, ag_scope_walker *c, TSSymbol gs) {
  if (s->nfr == s->capfr && !grow((void **)&s->fr, &s->capfr, s->nfr + 1, sizeof *s->fr)) {
    s->oom = 1;
    return 0;
  }
  uint32_t d = s->nfr++;
  frame *F = &s->fr[d];
  TSNode n = w_node(c);
  F->node = n;
  F->field = F_OTHER;
  if (d > 0 && (s->m->prop[s->fr[d - 1].sym] & P_FIELD)) {
    TSFieldId fid = ag_scope_walker_field(c);
    c->fsub = c->stk[c->n - 1].subtree;      /* the visitor may ask it too */
    c->fid = fid;
    F->field = fid < 256 ? s->m->field[fid] : F_OTHER;
  }
  if (s->visit) {
    if (w_wanted(s, c, gs)) {
      if (!s->visit(s->vud, n, gs, d, c)) {
        s->oom = 1;
        s->nfr--;
        return 0;
      }
      c->gap = UINT32_MAX;
    } else if (w_has_kids(c) && d < c->gap) {
      c->gap = d;               /* no visit: the next one learns (ag_scope_walker_gap) */
    }
  }
  F->sym = symof_sym(s->m, n, gs);
  F->opened = 0;
  F->descend = 1;
  F->named = 0;
  F->dvar = NONE;
  F->fnrec = d > 0 ? s->fr[d - 1].fnrec : NONE;
  if (d == 0) {
    F->scope = F->oscope = F->bscope = NONE;
    F->decl = F->stmt = NONE;
    F->mode = M_EXPR;
    F->flags = 0;
    F->bkind = AG_VK_VAR;
  }
  else {
    frame *P = &s->fr[d - 1];
    F->scope = F->oscope = P->scope;
    F->decl = P->decl;
    F->stmt = P->stmt;
    child_ctx(s, P, F);
    if (gs < s->m->nsym ? s->m->named[gs] : 1) P->named++;
    else F->descend = 0;         /* a token: no children, no cursor step down */
  }
  node_entry(s, d);
  F = &s->fr[d];
  if (F->sym >= S_IDENTIFIER && F->sym <= S_SHORTHAND_PROP_PATTERN) F->descend = 0;   /* leaves */
  uint8_t up = d > 0 ? s->fr[d - 1].anc : 0;
  switch (F->sym) {
    case S_FUNCTION_DECL: case S_GENERATOR_FUNCTION_DECL: case S_FUNCTION_EXPR:
    case S_GENERATOR_FUNCTION: case S_ARROW_FUNCTION: case S_METHOD_DEF:
      F->anc = !no_field(s, n, F_RETURN_TYPE) ? 1 : up;
      break;
    case S_VARIABLE_DECLARATOR: case S_PUBLIC_FIELD_DEF:
      F->anc = !no_field(s, n, F_TYPE);
      break;
    case S_EXPRESSION_STATEMENT:
      F->anc = 0;
      break;
    default:
      F->anc = up;
  }
  return 1;
}

static void pop_frame (ag_scope *s) {
  frame *F = &s->fr[--s->nfr];
  if (F->opened) {
    s->scopes[F->scope].s.end = s->nscopes;
    event(s, EV_EXIT, F->scope);
  }
  if (F->flags & FF_REENTER) event(s, EV_ENTER, s->fr[s->nfr - 1].scope);
}

/* The descendants of the node under the walker (one the analysis does not
** enter, at depth d), for the visitor only; the walker ends where it started. */
static void visit_below (ag_scope *s, ag_scope_walker *c, uint32_t d) {
  if (!w_first_child(c)) return;
  uint32_t depth = d + 1;
  for (;;) {
    if (!s->oom && !s->visit(s->vud, w_node(c), w_symbol(c), depth, c)) s->oom = 1;
    c->gap = UINT32_MAX;
    if (w_first_child(c)) { depth++; continue; }
    if (c->oom) { s->oom = 1; return; }
    while (!w_next_sibling(c)) {
      if (c->oom) { s->oom = 1; return; }
      w_parent(c);
      if (--depth == d) return;
    }
  }
}

/* Enters the node under the walker below the top frame.  An anonymous
** node (a token: `(`, `;`, a keyword) has no effect on the analysis and
** no child it enters (push_frame gives it sym S_OTHER and descend 0, and
** node_entry does nothing for S_OTHER), so it gets no frame: the visitor
** sees it (and what lies below it) and the walk goes on to its sibling.
** Nor does a named leaf of an inert symbol (langmap.inert: a property
** name, a number, `this`, a comment, ...; 16 % of the frames on the
** enforce bench's callgrind subset) outside an enum: a frame's only
** effect on its parent is the count of named children, kept here.  The
** false branch of a conditional type is the one field whose frame acts on
** entry whatever its node (node_entry): those keep the frame.  Returns 1
** when a frame was pushed, 0 when the node was passed (or memory ran out:
** s->oom). */
static int enter (ag_scope *s, ag_scope_walker *c) {
  TSSymbol gs = w_symbol(c);
  uint32_t d = s->nfr;
  frame *P = &s->fr[d - 1];
  if (gs >= s->m->nsym || P->sym == S_CONDITIONAL_TYPE) return push_frame(s, c, gs);
  if (!s->m->named[gs]) {
    if (s->visit) {
      int kids = w_has_kids(c);
      if (kids || w_wanted(s, c, gs)) {
        if (!s->visit(s->vud, w_node(c), gs, d, c)) { s->oom = 1; return 0; }
        c->gap = UINT32_MAX;
      }
      if (kids) visit_below(s, c, d);
    }
    return 0;
  }
  if (s->m->inert[gs] && P->bkind != AG_VK_ENUM_MEMBER && P->sym != S_ENUM_BODY &&
      P->sym != S_ENUM_ASSIGNMENT && !w_has_kids(c)) {
    /* a named leaf the analysis has nothing to do with (langmap.inert):
    ** it counts as one of the parent's named children, as its frame
    ** would, and the visitor sees it */
    P->named++;
    if (s->visit && w_wanted(s, c, gs)) {
      if (!s->visit(s->vud, w_node(c), gs, d, c)) { s->oom = 1; return 0; }
      c->gap = UINT32_MAX;
    }
    return 0;
  }
  return push_frame(s, c, gs);
}

static void walk (ag_scope *s, TSNode root) {
  ag_scope_walker c;
  if (!w_init(&c, root)) { s->oom = 1; w_free(&c); return; }
  if (s->skip != NULL) {
    c.skip = s->skip;
    c.nskip = s->nskip;
  }
  c.smap = s->m->sym;
  int top = push_frame(s, &c, w_symbol(&c));          /* 1: the walker's node has a frame */
  while (!s->oom) {
    if (top) {
      if (s->fr[s->nfr - 1].descend && w_first_child(&c)) {
        top = enter(s, &c);
        continue;
      }
      if (c.oom) { s->oom = 1; break; }
      const frame *T = &s->fr[s->nfr - 1];
      if (s->visit && !T->descend && w_has_kids(&c) && (T->sym != S_STRING || s->in_strings))
        visit_below(s, &c, s->nfr - 1);
      if (s->oom) break;
      pop_frame(s);
    }
    for (;;) {
      if (w_next_sibling(&c)) {
        top = enter(s, &c);
        break;
      }
      if (c.oom) { s->oom = 1; goto done; }
      if (!w_parent(&c)) goto done;
      pop_frame(s);
    }
  }
done:
  w_free(&c);
}

/* ---------------------------------------------------------- resolution */

static void resolve (ag_scope *s, uint32_t *top, uint32_t *vfirst, uint32_t *vlist) {
  for (uint32_t e = 0; e < s->nevents; e++) {
    uint32_t kind = s->events[e] >> 30, idx = s->events[e] & ((1u << 30) - 1);
    if (kind == EV_REF) {
      ag_scope_ref *r = &s->refs[idx];
      uint32_t ns = r->flags & NS_ANY;
      uint32_t slot = ns == NS_ANY ? 2 : ns == NS_TYPE ? 1 : 0;
      r->var = top[(size_t)r->name * 3 + slot];
      continue;
    }
    if (kind == EV_ENTER) {
      for (uint32_t k = vfirst[idx]; k < vfirst[idx + 1]; k++) {
        svar *v = &s->vars[vlist[k]];
        uint32_t *t = &top[(size_t)v->name_id * 3];
        for (int n = 0; n < 3; n++) v->prev[n] = t[n];
        if (v->v.flags & AG_VF_VALUE) t[0] = vlist[k];
        if (v->v.flags & AG_VF_TYPE) t[1] = vlist[k];
        t[2] = vlist[k];
      }
    }
    else {
      for (uint32_t k = vfirst[idx + 1]; k > vfirst[idx]; k--) {
        svar *v = &s->vars[vlist[k - 1]];
        uint32_t *t = &top[(size_t)v->name_id * 3];
        for (int n = 0; n < 3; n++) t[n] = v->prev[n];
      }
    }
  }
}

static int inside (TSNode n, uint32_t a, uint32_t b) {
  return ts_node_start_byte(n) >= a && ts_node_end_byte(n) <= b;
}

/* ESLint's isStorableFunction: the function can be called later because
** the right-hand side stores it (assigned, passed as an argument, ...). */
static int storable (const ag_scope *s, TSNode fn, uint32_t a, uint32_t b) {
  TSNode node = fn, parent = ts_node_parent(fn);
  while (!ts_node_is_null(parent) && inside(parent, a, b)) {
    uint16_t ps = symof(s->m, parent);
    if (ps == S_SEQUENCE_EXPR) {
      if (ts_node_end_byte(node) < ts_node_end_byte(parent)) return 0;
    }
    else if (ps == S_CALL_EXPR || ps == S_NEW_EXPR) {
      TSNode callee = field_child(s, parent, ps == S_CALL_EXPR ? F_FUNCTION : F_CONSTRUCTOR);
      return !ts_node_eq(callee, node);
    }
    else if (ps == S_ASSIGNMENT_EXPR || ps == S_AUGMENTED_ASSIGNMENT_EXPR || ps == S_YIELD_EXPR)
      return 1;
    else {
      const char *t = ts_node_type(parent);
      size_t n = strlen(t);
      if ((n >= 9 && strcmp(t + n - 9, "statement") == 0) ||
          (n >= 11 && strcmp(t + n - 11, "declaration") == 0))
        return 1;
    }
    node = parent;
    parent = ts_node_parent(parent);
  }
  return 0;
}

/* typescript-eslint's isUsedVariable over the references of v, in order. */
static int is_used (const ag_scope *s, const svar *sv) {
  const ag_scope_var *v = &sv->v;
  uint32_t rs = 0, re = 0;  /* previous rhs, when one applies */
  int have = 0;
  uint32_t cfs = NONE, crs = 0, cre = 0;  /* last storable() answer: refs in one rhs share it */
  int cans = 0;
  uint32_t varvs = s->scopes[v->scope].s.varscope;
  for (uint32_t i = 0; i < v->nrefs; i++) {
    const ag_scope_ref *r = &s->refs[s->byvar[v->first_ref + i]];
    int in_prev = have && inside(r->node, rs, re);
    int forself = 0;
    if (r->flags & AG_RF_READ) {
      if (r->flags & AG_RF_SELF_UPDATE) forself = 1;
      else if (in_prev) {
        uint32_t fs = s->scopes[r->scope].fn;
        int st = 0;
        if (fs != NONE && inside(s->scopes[fs].s.node, rs, re)) {
          if (fs != cfs || rs != crs || re != cre) {
            cfs = fs; crs = rs; cre = re;
            cans = storable(s, s->scopes[fs].s.node, rs, re);
          }
          st = cans;
        }
        forself = !st;
      }
    }
    if (!in_prev) {
      have = 0;
      if (r->rhs_end > r->rhs_start && !(r->flags & AG_RF_LOOP) &&
          s->scopes[r->scope].s.varscope == varvs) {
        rs = r->rhs_start;
        re = r->rhs_end;
        have = 1;
      }
    }
    if ((r->flags & AG_RF_READ) && !forself &&
        !((r->flags & (AG_RF_TYPEOF | AG_RF_PREDICATE)) && !(v->flags & AG_VF_TYPE_IMPORT)) &&
        !(r->flags & AG_RF_SELF))
      return 1;
  }
  return 0;
}

static int finish (ag_scope *s) {
  uint32_t nn = s->nnames, ns = s->nscopes, nv = s->nvars;
  size_t ntop = (size_t)nn * 3 > ns ? (size_t)nn * 3 : ns;
  uint32_t *top = (uint32_t *)malloc((ntop + 1) * sizeof *top);
  uint32_t *vfirst = (uint32_t *)calloc((size_t)ns + 2, sizeof *vfirst);
  uint32_t *vlist = (uint32_t *)malloc(((size_t)nv + 1) * sizeof *vlist);
  s->byvar = (uint32_t *)malloc(((size_t)s->nrefs + 1) * sizeof *s->byvar);
  int ok = top && vfirst && vlist && s->byvar;
  if (ok) {
    for (size_t i = 0; i < ntop; i++) top[i] = NONE;
    for (uint32_t i = 0; i < nv; i++) vfirst[s->vars[i].v.scope + 1]++;
    for (uint32_t i = 0; i < ns; i++) vfirst[i + 1] += vfirst[i];
    for (uint32_t i = 0; i < nv; i++) {      /* top[] serves as the per-scope cursor */
      uint32_t sc = s->vars[i].v.scope;
      uint32_t *cur = &top[sc];
      if (*cur == NONE) *cur = 0;
      vlist[vfirst[sc] + (*cur)++] = i;
    }
    for (size_t i = 0; i < (size_t)nn * 3; i++) top[i] = NONE;
    resolve(s, top, vfirst, vlist);
    /* group references by variable, in source order */
    for (uint32_t i = 0; i < s->nrefs; i++)
      if (s->refs[i].var != NONE) s->vars[s->refs[i].var].v.nrefs++;
    uint32_t acc = 0;
    for (uint32_t i = 0; i < nv; i++) {
      s->vars[i].v.first_ref = acc;
      acc += s->vars[i].v.nrefs;
      s->vars[i].v.nrefs = 0;
    }
    for (uint32_t i = 0; i < s->nrefs; i++) {
      ag_scope_ref *r = &s->refs[i];
      if (r->var == NONE) continue;
      ag_scope_var *v = &s->vars[r->var].v;
      s->byvar[v->first_ref + v->nrefs++] = i;
      if (v->self_scope != NONE && r->scope >= v->self_scope &&
          r->scope < s->scopes[v->self_scope].s.end)
        r->flags |= AG_RF_SELF;
      if (r->flags & AG_RF_TYPE) v->type_reads++;
      else if (r->flags & AG_RF_READ) v->reads++;
      if ((r->flags & AG_RF_WRITE) && !(r->flags & AG_RF_INIT)) v->writes++;
    }
    for (uint32_t i = 0; i < nv; i++)
      if (is_used(s, &s->vars[i])) s->vars[i].v.flags |= AG_VF_USED;
    for (uint32_t i = 0; i < s->nfns; i++) {
      ag_scope_fnctx *c = &s->fns[i];
      if (c->nret > 0 && c->nret == c->nret_fn) c->returns_function = 1;
    }
  }
  free(top);
  free(vfirst);
  free(vlist);
  return ok;
}

/* ----------------------------------------------------------------- API */

int ag_scope_build (TSNode root, const char *src, size_t len, int tsx, ag_scope **out,
                    char err[AG_ERRLEN]) {
  return ag_scope_build_visit(root, src, len, tsx, NULL, NULL, NULL, NULL, 0, out, err);
}

int ag_scope_build_visit (TSNode root, const char *src, size_t len, int tsx, ag_scope_visit visit,
                          void *ud, const uint8_t *want, const TSSymbol *parents, uint32_t nwant,
                          ag_scope **out, char err[AG_ERRLEN]) {
  *out = NULL;
  ag_scope *s = (ag_scope *)calloc(1, sizeof *s);
  const langmap *m = getmap(tsx ? 1 : 0);
  if (s == NULL || m == NULL) {
    free(s);
    return ag_seterr(err, AG_ENOMEM, "out of memory");
  }
  s->src = src;
  s->len = len;
  s->m = m;
  s->tsx = tsx ? 1 : 0;
  s->react = intern(s, "React", 5);
  s->visit = visit;
  s->vud = ud;
  s->want = want;
  s->parents = parents;
  s->nwant = want != NULL ? nwant : 0;
  s->in_strings = 1;
  if (visit != NULL && want != NULL) {
    /* what a string holds: with none of it wanted, the walk does not go in */
    s->in_strings = 0;
    for (int k = 0; k < 5; k++) {
      TSSymbol g = m->in_string[k];
      if (g != 0 && (g >= s->nwant || want[g])) s->in_strings = 1;
    }
  }
  if (visit != NULL && want != NULL && !s->oom) {
    /* the anonymous leaves enter would pass without a visit: the walker
    ** passes them itself (ag_scope_walker.skip) */
    const TSLanguage *lang = root.tree->language;
    uint32_t n = m->ntok < lang->symbol_count ? m->ntok : lang->symbol_count;
    s->skip = (uint8_t *)calloc(n > 256 ? n : 256, 1);   /* an inline subtree's symbol: 8 bits */
    if (s->skip == NULL) s->oom = 1;
    else {
      s->nskip = n > 256 ? n : 256;
      for (uint32_t i = 0; i < n; i++) {
        TSSymbol g = lang->public_symbol_map[i];
        if (m->tok[i] && g < s->nwant && !want[g]) s->skip[i] = m->tok[i];
      }
    }
  }
  if (!s->oom) walk(s, root);
  free(s->skip);
  s->skip = NULL;
  free(s->fr);
  s->fr = NULL;
  s->capfr = s->nfr = 0;
  if (s->oom || !finish(s)) {
    ag_scope_free(s);
    return ag_seterr(err, AG_ENOMEM, "out of memory");
  }
  free(s->events);
  s->events = NULL;
  free(s->vkeys);
  free(s->vvals);
  free(s->ntab);
  s->vkeys = NULL;
  s->vvals = NULL;
  s->ntab = NULL;
  *out = s;
  return AG_OK;
}

void ag_scope_free (ag_scope *s) {
  if (s == NULL) return;
  free(s->names);
  free(s->ntab);
  free(s->vars);
  free(s->vkeys);
  free(s->vvals);
  free(s->scopes);
  free(s->refs);
  free(s->events);
  free(s->byvar);
  free(s->fns);
  free(s->fr);
  free(s);
}

void ag_scope_counts (const ag_scope *s, uint32_t *nscopes, uint32_t *nvars, uint32_t *nrefs) {
  if (nscopes) *nscopes = s->nscopes;
  if (nvars) *nvars = s->nvars;
  if (nrefs) *nrefs = s->nrefs;
}

const ag_scope_scope *ag_scope_scope_at (const ag_scope *s, uint32_t i) {
  return &s->scopes[i].s;
}

const ag_scope_var *ag_scope_var_at (const ag_scope *s, uint32_t i) {
  return &s->vars[i].v;
}

const ag_scope_ref *ag_scope_ref_at_index (const ag_scope *s, uint32_t i) {
  return &s->refs[i];
}

const ag_scope_ref *ag_scope_var_ref (const ag_scope *s, const ag_scope_var *v, uint32_t i) {
  return i < v->nrefs ? &s->refs[s->byvar[v->first_ref + i]] : NULL;
}

const ag_scope_ref *ag_scope_ref_at (const ag_scope *s, uint32_t start) {
  uint32_t lo = 0, hi = s->nrefs;
  /* references are in walk order, which is source order by start byte */
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (ts_node_start_byte(s->refs[mid].node) < start) lo = mid + 1;
    else hi = mid;
  }
  for (; lo < s->nrefs && ts_node_start_byte(s->refs[lo].node) == start; lo++)
    if (!(s->refs[lo].flags & AG_RF_PRAGMA)) return &s->refs[lo];
  return NULL;
}

const ag_scope_fnctx *ag_scope_fn_context (const ag_scope *s, TSNode fn) {
  uint32_t start = ts_node_start_byte(fn), lo = 0, hi = s->nfns;
  while (lo < hi) {                      /* preorder: sorted by start byte */
    uint32_t mid = lo + (hi - lo) / 2;
    if (ts_node_start_byte(s->fns[mid].fn) < start) lo = mid + 1;
    else hi = mid;
  }
  for (; lo < s->nfns && ts_node_start_byte(s->fns[lo].fn) == start; lo++)
    if (ts_node_eq(s->fns[lo].fn, fn)) return &s->fns[lo];
  return NULL;
}

const char *ag_scope_name (const ag_scope *s, uint32_t name, uint32_t *len) {
  if (name >= s->nnames) { *len = 0; return ""; }
  *len = s->names[name].len;
  return s->names[name].p;
}

static const char *const SKINDS[AG_SK_NKINDS] = {
  "module", "function", "block", "class", "catch", "for", "switch", "namespace", "enum",
  "type", "static",
};
static const char *const VKINDS[AG_VK_NKINDS] = {
  "var", "let", "const", "using", "param", "function", "class", "import", "catch", "enum",
  "type", "interface", "namespace", "type_param", "enum_member",
};

const char *ag_scope_kind_name (uint32_t kind) {
  return kind < AG_SK_NKINDS ? SKINDS[kind] : "?";
}

const char *ag_scope_var_kind_name (uint32_t kind) {
  return kind < AG_VK_NKINDS ? VKINDS[kind] : "?";
}
