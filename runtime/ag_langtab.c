/*
** ag_langtab.c: a grammar's parse table made dense (see ag_langtab.h).
**
** The copy is built from the grammar's TSLanguage as tree_sitter/parser.h
** lays it out for ABI 14 (the header a generated parser.c is compiled
** with; the Makefile puts the grammar's own first on the include path).
** The runtime reads the same prefix of fields for every ABI it accepts and
** the fields after it only from ABI 15 on, so a copy of an ABI 14 language
** is one the runtime reads as it reads the original.  A grammar of another
** ABI is not copied: it parses with its own tables.
**
** A small state's groups are scanned in order and the first group naming a
** symbol gives its value, as ts_language_lookup does; the dense row takes
** that value, and 0 (no action, as the lookup's own miss) where no group
** names the symbol.
*/
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tree_sitter/api.h>
#include "tree_sitter/parser.h"   /* the grammar's: struct TSLanguage */

#include "ag_langtab.h"

#define LAYOUT_ABI 14   /* the ABI whose struct TSLanguage this file copies */
#define MAX_LANGS 4

typedef struct { const TSLanguage *stock, *dense, *names; } entry;

static entry made[MAX_LANGS];
static int nmade;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The dense copy of `o`, or NULL without memory. */
static const TSLanguage *densify (const TSLanguage *o) {
  size_t states = o->state_count, syms = o->symbol_count, large = o->large_state_count;
  uint16_t *table = (uint16_t *)calloc(states * syms, sizeof *table);
  uint8_t *named = (uint8_t *)malloc(syms);   /* in this row: a group named the symbol */
  TSLanguage *c = (TSLanguage *)malloc(sizeof *c);
  if (table == NULL || named == NULL || c == NULL) {
    free(table);
    free(named);
    free(c);
    return NULL;
  }
  memcpy(table, o->parse_table, large * syms * sizeof *table);
  for (size_t s = large; s < states; s++) {
    uint16_t *row = table + s * syms;
    memset(named, 0, syms);
    const uint16_t *g = &o->small_parse_table[o->small_parse_table_map[s - large]];
    uint16_t groups = *g++;
    for (uint16_t i = 0; i < groups; i++) {
      uint16_t value = *g++, count = *g++;
      for (uint16_t j = 0; j < count; j++, g++)
        if (*g < syms && !named[*g]) {
          named[*g] = 1;
          row[*g] = value;
        }
    }
  }
  free(named);
  memcpy(c, o, sizeof *c);
  c->large_state_count = (uint32_t)states;
  c->parse_table = table;
  return c;
}

/* The entry of `stock`, made (empty) when there is none; NULL when the
** table is full.  Under the lock. */
static entry *entry_of (const TSLanguage *stock) {
  for (int i = 0; i < nmade; i++)
    if (made[i].stock == stock) return &made[i];
  if (nmade == MAX_LANGS) return NULL;
  made[nmade] = (entry){stock, NULL, NULL};
  return &made[nmade++];
}

const TSLanguage *ag_langtab_dense (const TSLanguage *stock) {
  const char *e = getenv("AEGIS_TS_TABLES");
  if (stock == NULL || stock->version != LAYOUT_ABI || (e != NULL && strcmp(e, "compact") == 0))
    return stock;
  const TSLanguage *d = NULL;
  pthread_mutex_lock(&lock);
  entry *en = entry_of(stock);
  if (en != NULL && en->dense == NULL) en->dense = densify(stock);
  if (en != NULL) d = en->dense;
  pthread_mutex_unlock(&lock);
  return d != NULL ? d : stock;
}

const TSLanguage *ag_langtab_names (const TSLanguage *stock) {
  if (stock == NULL || stock->version != LAYOUT_ABI) return NULL;
  const TSLanguage *n = NULL;
  pthread_mutex_lock(&lock);
  entry *en = entry_of(stock);
  if (en != NULL && en->names == NULL) {
    TSLanguage *c = (TSLanguage *)malloc(sizeof *c);
    if (c != NULL) {
      memcpy(c, stock, sizeof *c);
      c->state_count = 1;        /* state 0 only: the analysis scans states 1.. */
      c->large_state_count = 1;
      en->names = c;
    }
  }
  if (en != NULL) n = en->names;
  pthread_mutex_unlock(&lock);
  return n;
}
