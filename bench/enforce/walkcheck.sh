#!/bin/sh
# Checks the walker of runtime/ag_scope.c against tree-sitter's TSTreeCursor
# (bench/enforce/walkcheck.c) over the enforce corpus, the fuzz corpora and
# the regressions: same nodes, TSNode values, symbols, depths and field ids.
# The walker reads tree-sitter's internal subtrees, so run this after any
# change of the runtime (tools/tsruntime.sh).  Needs `make` (it links the
# build's objects) and, for the corpus, bench/enforce/corpus.sh.  Takes
# seconds.
# usage: bench/enforce/walkcheck.sh [LIST]   (LIST: file paths, one a line)
set -eu
cd "$(dirname "$0")/../.."
T=build/tsruntime/package/vendor/tree-sitter/lib
[ -f build/obj/ag_scope.o ] || { echo "walkcheck: build/obj/ag_scope.o missing (run make)" >&2; exit 1; }
mkdir -p build/walkcheck
${CC:-cc} -O1 -g -std=c11 -Wall -Wextra -I$T/include -Iruntime -o build/walkcheck/walkcheck \
  bench/enforce/walkcheck.c build/obj/ag_scope.o build/obj/ag_err.o \
  build/grammar/typescript_parser.o build/grammar/typescript_scanner.o \
  build/grammar/tsx_parser.o build/grammar/tsx_scanner.o build/tsruntime/lib.o -lpthread
list=build/walkcheck/list.txt
if [ $# -gt 0 ]; then
  cp "$1" "$list"
else
  : > "$list"
  if [ -s build/bench-enforce/corpus/files.txt ]; then
    sed "s|^|$(pwd)/build/bench-enforce/corpus/|" build/bench-enforce/corpus/files.txt >> "$list"
  fi
  # the TypeScript ones; not the 70,000 unclosed JSX elements of the regressions, whose unbudgeted parse grows
  # past 20 GB (the walk check parses without a memory budget)
  find fuzz/corpus/ast fuzz/corpus/ast_parse fuzz/corpus/enforce fuzz/regressions/ast fuzz/regressions/enforce \
    -type f ! -name '*unclosed-jsx-70000' 2>/dev/null | sed "s|^|$(pwd)/|" >> "$list"
fi
build/walkcheck/walkcheck < "$list"
grep -v '\.tsx$' "$list" | WALKCHECK_TSX=1 build/walkcheck/walkcheck
