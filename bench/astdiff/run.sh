#!/bin/sh
# The semantic diff bench: over the npm corpus (bench/astdiff/corpus.sh
# builds it when missing) reports the time per pair with parsing (p50, p99,
# max) beside the floor (tree-sitter parsing both files alone, same run), the
# action counts, the apply-soundness rates both ways, the synthetic truth
# pass rates (formatting-only, one moved declaration, one local rename), and
# the peak memory of `aegis-run diff` on a pair of files of >= 50k nodes.
# usage: bench/astdiff/run.sh [CORPUS_DIR]   (default build/astdiff-corpus)
set -eu
cd "$(dirname "$0")/../.."
dir=${1:-build/astdiff-corpus}
[ -s "$dir/pairs.txt" ] || bench/astdiff/corpus.sh "$dir"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
ASTDIFF_PAIRS="$dir/pairs.txt" ASTDIFF_OUT="$out" ASTDIFF_BIG="$dir" \
  bin/aegis-run test bench/astdiff/measure_spec.lua >/dev/null
cat "$out"
rss() {  # peak resident set of a command, in MB
  /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1 | awk '{ printf "%.1f", $1 / 1024 }'
}
base=$(rss bin/aegis-run -e '')
big=$(rss bin/aegis-run diff "$dir/big_a.ts" "$dir/big_b.ts")
echo "peak memory: aegis-run diff on the large pair $big MB (aegis-run -e '' alone: $base MB); goal < 50 MB"
