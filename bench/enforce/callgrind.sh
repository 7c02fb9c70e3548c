#!/bin/sh
# Instruction counts of the enforce bench, for decisions on a shared machine
# (CPU times there move by 10-20 % with the load; callgrind's counts do not):
# `valgrind --tool=callgrind` over a fixed subset of the corpus (every 14th
# file of corpus/files.txt, about 300 files) of
#   - aegis-run enforce --format json --rulepacks typescript-strict,a11y --jobs 1
#     (the whole process: start-up and the query compile are in it, about
#     43M instructions (enforce over one tiny .ts and one .tsx file; 166M
#     before the built-in rulepacks' queries were compiled flat, docs/ast.md)
#     that the full corpus amortizes 14 times better);
#   - the parse floor (bench/enforce/parse_spec.lua): ast_parse inclusive, and
#     tree_close (the floor's loop closes each tree too).
# Prints the counts and the ratio enforce / (parse + close), with the fixed
# part left out.  Under valgrind aegis-run gives tree-sitter and Lua plain
# malloc (so memcheck sees every block: ag_tsmem.h, ag_lmem.h); here both
# keep their pools (AEGIS_TSMEM=pool AEGIS_LMEM=pool), as in a real run.
# Needs the corpus (bench/enforce/run.sh or corpus.sh) and valgrind (the
# Makefile's DEB_VALGRIND).  Takes about a minute.
# usage: bench/enforce/callgrind.sh [BINARY]   (default bin/aegis-run)
# env:   ENFORCE_CG_STEP (default 14), ENFORCE_CG_FIXED (default 43000000)
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
bin=$(cd "$(dirname "${1:-bin/aegis-run}")" && pwd)/$(basename "${1:-bin/aegis-run}")
[ -x "$bin" ] || { echo "callgrind: $bin missing (run make)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "callgrind: valgrind missing (apt-get install valgrind)" >&2; exit 1; }
corpus=build/bench-enforce/corpus
[ -s "$corpus/files.txt" ] || { echo "callgrind: no corpus (run bench/enforce/corpus.sh $corpus)" >&2; exit 1; }
step=${ENFORCE_CG_STEP:-14}
fixed=${ENFORCE_CG_FIXED:-43000000}
work=build/bench-enforce-cg
export AEGIS_TSMEM=pool AEGIS_LMEM=pool
rm -rf "$work/subcorpus"
mkdir -p "$work/subcorpus"
awk -v s="$step" 'NR % s == 1' "$corpus/files.txt" > "$work/subcorpus/files.txt"
while IFS= read -r f; do
  mkdir -p "$work/subcorpus/$(dirname "$f")"
  cp "$corpus/$f" "$work/subcorpus/$f"
done < "$work/subcorpus/files.txt"
n=$(wc -l < "$work/subcorpus/files.txt")

total() { callgrind_annotate --inclusive=yes "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'; }
incl() { callgrind_annotate --inclusive=yes "$1" 2>/dev/null | awk -v f="$2" 'index($0, f) { gsub(",", "", $1); print $1; exit }'; }

(cd "$work" && valgrind --tool=callgrind --callgrind-out-file=enforce.cg "$bin" enforce --format json \
  --rulepacks typescript-strict,a11y --jobs 1 subcorpus > enforce.json 2> enforce.err) || true
ENFORCE_ROOT="$work/subcorpus" ENFORCE_FILES="$work/subcorpus/files.txt" ENFORCE_OUT="$work/parse.out" \
  valgrind --tool=callgrind --callgrind-out-file="$work/parse.cg" "$bin" test "$top/bench/enforce/parse_spec.lua" \
  > "$work/parse.log" 2>&1 || { cat "$work/parse.log" >&2; exit 1; }
e=$(total "$work/enforce.cg")
ep=$(incl "$work/enforce.cg" 'last.c:ast_parse ')
p=$(incl "$work/parse.cg" 'last.c:ast_parse ')
c=$(incl "$work/parse.cg" 'last.c:tree_close ')
echo "subset: $n files (every ${step}th)"
echo "enforce process:          $e instructions (ast_parse in it: $ep)"
echo "parse floor:              ast_parse $p + tree_close ${c:-0}"
awk -v e="$e" -v p="$p" -v c="${c:-0}" -v f="$fixed" 'BEGIN {
  printf "enforce / floor:          %.3f (whole process)\n", e / (p + c)
  printf "without the fixed part:   %.3f (%d instructions of start-up and query compile left out)\n", (e - f) / (p + c), f }'
