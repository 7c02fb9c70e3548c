/*
** ag_tslex.c: a quicker step of tree-sitter's lexer (see ag_tslex.h).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tree_sitter/api.h>
/* tree-sitter's internal lexer state, from the runtime we build against
** (build/tsruntime, pinned by tools/tsruntime.sh) */
#include <tree_sitter/../../src/lexer.h>

#include "ag_tslex.h"

/* tree-sitter's own callbacks, kept from the first parser installed (the
** same static functions for every parser) */
static void (*stock_advance)(TSLexer *, bool);
static void (*stock_mark_end)(TSLexer *);

static int mode = -1;   /* -1: not read yet; 1: quick; 0: stock */

static int quick_wanted (void) {
  if (mode < 0) {
    const char *e = getenv("AEGIS_TS_LEXER");
    mode = !(e != NULL && strcmp(e, "stock") == 0);
  }
  return mode;
}

/* One character forward.  The common case, decided before anything
** changes: the current character is ASCII (a newline moves to the next
** row, any other to the next column), and the next byte is ASCII, inside
** the current included range and inside the chunk (it is the next
** lookahead, one byte long).  tree-sitter's step does exactly this then
** (ts_lexer__do_advance: no byte order mark, no range change, no new chunk,
** ts_decode_utf8 of a byte under 0x80). */
static void quick_advance (TSLexer *data, bool skip) {
  Lexer *self = (Lexer *)data;
  const uint8_t *chunk = (const uint8_t *)self->chunk;
  uint32_t c = (uint32_t)self->data.lookahead;
  if (chunk != NULL && self->lookahead_size == 1 && c < 0x80 && self->logger.log == NULL
      && self->current_included_range_index < self->included_range_count) {
    const TSRange *r = &self->included_ranges[self->current_included_range_index];
    uint32_t at = self->current_position.bytes + 1;
    uint32_t off = at - self->chunk_start;
    if (at < r->end_byte && r->start_byte != r->end_byte && at >= self->chunk_start && off < self->chunk_size
        && chunk[off] < 0x80) {
      if (c == '\n') {
        self->current_position.extent.row++;
        self->current_position.extent.column = 0;
        self->column_data.valid = true;
        self->column_data.value = 0;
      }
      else {
        if (self->column_data.valid) self->column_data.value++;
        self->current_position.extent.column++;
      }
      self->current_position.bytes = at;
      if (skip) self->token_start_position = self->current_position;
      self->data.lookahead = chunk[off];
      return;
    }
  }
  stock_advance(data, skip);
}

/* The token ends here: so in tree-sitter's mark_end unless the position is
** at the start of an included range after the first. */
static void quick_mark_end (TSLexer *data) {
  Lexer *self = (Lexer *)data;
  if (self->current_included_range_index == 0) {
    self->token_end_position = self->current_position;
    return;
  }
  stock_mark_end(data);
}

int ag_tslex_install (TSParser *parser) {
  if (parser == NULL || !quick_wanted()) return 0;
  Lexer *lx = (Lexer *)parser;          /* struct TSParser's first member */
  if (lx->data.advance == NULL || lx->data.mark_end == NULL || lx->data.eof == NULL
      || lx->data.get_column == NULL || lx->data.is_at_included_range_start == NULL
      || lx->chunk != NULL || lx->logger.log != NULL || lx->included_range_count != 1
      || lx->included_ranges == NULL || lx->included_ranges[0].start_byte != 0
      || lx->included_ranges[0].end_byte != UINT32_MAX)
    return 0;
  if (lx->data.advance == quick_advance) return 1;
  if (stock_advance == NULL) {
    stock_advance = lx->data.advance;
    stock_mark_end = lx->data.mark_end;
  }
  else if (lx->data.advance != stock_advance || lx->data.mark_end != stock_mark_end) {
    return 0;
  }
  lx->data.advance = quick_advance;
  lx->data.mark_end = quick_mark_end;
  return 1;
}

const char *ag_tslex_mode (void) {
  return quick_wanted() ? "quick" : "stock";
}
