/*
** ag_langtab.h: a grammar's parse table made dense, for parsing faster.
**
** A generated tree-sitter grammar stores the actions of its first
** `large_state_count` states as a dense table (state x symbol) and the rest,
** most of them, as lists of (value, symbols) groups that the runtime scans
** for every lookup (ts_language_lookup).  In the TypeScript grammars 80 %
** of the states are kept so, and the scans are about 9 % of a parse.
** ag_langtab_dense gives a copy of a language whose table is dense for
** every state: the same parse, each lookup one load.  It costs 2 bytes per
** state and symbol (4.4 MB for TypeScript, 4.7 MB for TSX), made once per
** language and process, when first asked for, and kept until exit.
**
** Only the parser gets the copy.  Query analysis iterates the symbols valid
** in a state (ts_language_lookaheads), which a dense table makes slower:
** queries are compiled with the grammar's own language.  Trees parsed with
** the copy share every array but the table with it (node types, fields,
** symbols are the same), so queries and nodes mix freely.
*/
#ifndef AG_LANGTAB_H
#define AG_LANGTAB_H

#include <tree_sitter/api.h>

/* The dense copy of `stock` (a grammar's static language), made on first
** call (thread-safe); `stock` itself when the copy cannot be made (no
** memory, a grammar ABI other than the one it was built against) or when
** AEGIS_TS_TABLES=compact is set (for comparing: see docs/benchmarks.md). */
const TSLanguage *ag_langtab_dense (const TSLanguage *stock);

/* A copy of `stock` without its parse states (the states' count 1), made
** once (thread-safe), NULL when it cannot be made.  Only for compiling a
** query that needs the language's names and nothing of its parse table:
** tree-sitter scans every parse state of the language whenever it compiles
** a query, for its analysis of the patterns that have a child (~27M
** instructions, ~4 ms, for either TypeScript grammar), even when no pattern
** has one; with this copy a query without such patterns skips that scan.
** A query compiled with it is never run by a cursor (last.c's flat_build). */
const TSLanguage *ag_langtab_names (const TSLanguage *stock);

#endif
