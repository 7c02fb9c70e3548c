#!/bin/sh
# aegis.json against lua-cjson on the same documents, in one run: decode,
# encode (compact: the canonical form), canonical and indented (2) encode.
# MB/s of the canonical text's size; `x cj`: how many times faster aegis is
# than cjson (decode, and encode against cjson.encode); `c/enc`: canonical's
# time over encode's. The documents: the checkpoint bench's states (small,
# 10 KB, 1 MB), 20,000 numbers, 2,000 records of text.
# usage: bench/json/run.sh [ROUNDS [MS]]   (default 7 rounds of ~40 ms)
set -eu
cd "$(dirname "$0")/../.."
[ -x bin/aegis-run ] || { echo "bench: build first (make)" >&2; exit 1; }
BENCH_ROUNDS=${1:-7} BENCH_MS=${2:-40} bin/aegis-run test bench/json/bench.lua 2>&1 |
  sed -n '/^doc /,/^[^a-z]/p' | sed '$d'
