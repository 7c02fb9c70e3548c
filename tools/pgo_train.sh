#!/bin/sh
# The training run of the profile-guided build of tree-sitter and the two
# TypeScript grammars (Makefile, PGO): the instrumented aegis-run given runs
# over the repository's own TypeScript and TSX only, and its counts are what
# the compiler lays those objects out by.  Never the enforce bench's corpus:
# the figures in docs/benchmarks.md are of code trained on something else.
#   - the built-in rulepacks' specs (spec/rulepacks: some 400 snippets of
#     TypeScript and TSX, parsed, queried and checked as enforce does);
#   - every .ts/.tsx file of spec/fixtures and examples, and the fuzz corpora
#     (fuzz/corpus/ast_parse, enforce: hostile and broken inputs) as both
#     languages, parsed (bench/enforce/parse_spec.lua) as aegis parses (dense
#     tables, quick lexer step) and as tree-sitter ships (compact tables,
#     its own lexer step), so that the path the enforce bench compares with
#     is laid out by its own counts too (aegis's path is not the worse for
#     it: 1,210.8M against 1,212.3M instructions on the callgrind subset).
# A failing spec does not stop the build (the test suite says so); a run
# that leaves no counts does.
# usage: tools/pgo_train.sh BIN DIR   (DIR: where BIN's objects write their
#        .gcda files; the list of files and the log go there too)
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
dir=$(cd "$2" && pwd)
cd "$(dirname "$0")/.."
rm -f "$dir"/*.gcda
# the fuzz inputs' sources (their first byte picks the target's options:
# fuzz/targets) as TypeScript and as TSX both
src=$dir/train
rm -rf "$src"
mkdir -p "$src"
for f in fuzz/corpus/ast_parse/* fuzz/corpus/enforce/*; do
  b=$(basename "$(dirname "$f")")_$(basename "$f")
  tail -c +2 "$f" > "$src/$b.ts"
  cp "$src/$b.ts" "$src/$b.tsx"
done
list=$dir/train-files.txt
{
  find "$(pwd)/spec/fixtures" "$(pwd)/examples" -type f \( -name '*.ts' -o -name '*.tsx' \)
  find "$src" -type f
} | sort > "$list"
log=$dir/train.log
unset AEGIS_PATH AEGIS_LUA_DIR AEGIS_STORE
"$bin" test spec/rulepacks > "$log" 2>&1 || true
for mode in quick stock; do
  tables=dense
  [ "$mode" = stock ] && tables=compact
  AEGIS_TS_TABLES=$tables AEGIS_TS_LEXER=$mode ENFORCE_ROOT=/ ENFORCE_FILES="$list" \
    ENFORCE_OUT="$dir/train-parse-$mode.out" "$bin" test bench/enforce/parse_spec.lua >> "$log" 2>&1 || true
done
n=$(find "$dir" -maxdepth 1 -name '*.gcda' | wc -l)
if [ "$n" -eq 0 ]; then
  cat "$log" >&2
  echo "pgo: the training run left no profile in $dir" >&2
  exit 1
fi
echo "PGO trained on $(wc -l < "$list") files and spec/rulepacks ($n profiles)"
