/*
** ag_tslex.h: a quicker step of tree-sitter's lexer for plain ASCII.
**
** A generated grammar's lexer moves one character at a time through the
** parser's `TSLexer.advance` callback.  tree-sitter's own step is general:
** it checks the included ranges, fetches a new chunk of input when the
** position leaves the current one, and decodes the next character through
** a function pointer; about 100 instructions a character, a fifth of a
** parse of the TypeScript corpus (bench/enforce).  Source code is nearly all
** ASCII in one chunk (ag_tsmem_parse hands the whole text at once), so the
** step installed here does the common case itself: this character and the
** next both ASCII, both in the chunk and in the current range, no logger.
** Then it makes the same changes tree-sitter's step would (position, row
** and column, column data, token start when skipping, lookahead); anything
** else (UTF-8, the end of the text or of a range, a logger) goes to
** tree-sitter's own step, which it keeps.  `mark_end` gets the same
** treatment (its fast case: no included range before the current one).
**
** The parser's lexer is its first member in every tree-sitter release
** since ranges were added; installing checks what it can see of that
** layout (the callbacks set, one full range, no chunk yet) and leaves the
** parser as it is otherwise.  Trees are the same either way (spec/unit/
** ast_stock_parse_spec.lua; docs/ast.md).  AEGIS_TS_LEXER=stock turns it off, to
** compare (bench/enforce).
*/
#ifndef AG_TSLEX_H
#define AG_TSLEX_H

#include <tree_sitter/api.h>

/* Installs the quick step in a new parser (from ts_parser_new, not yet
** used).  1 when installed, 0 when left as it was (AEGIS_TS_LEXER=stock, or
** the parser's lexer is not laid out as expected). */
int ag_tslex_install (TSParser *parser);

/* "quick" when ag_tslex_install installs, "stock" when it would not. */
const char *ag_tslex_mode (void);

#endif
