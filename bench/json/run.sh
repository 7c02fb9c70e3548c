#!/bin/sh
# aegis.json against lua-cjson on the same documents, in one run: decode,
# canonical encode (json.encode without options is the same) and indented
# (2) encode, against cjson.decode and cjson.encode. MB/s of the canonical
# text's size; `x cj`: how many times faster aegis is than cjson (decode;
# canonical against cjson.encode), `i x cj` the same for indented. The
# documents: the checkpoint bench's states (small, 10 KB, 1 MB), 20,000
# numbers, 2,000 records of text.
# usage: bench/json/run.sh [ROUNDS [MS]]   (default 9 rounds of ~40 ms)
set -eu
cd "$(dirname "$0")/../.."
[ -x bin/aegis-run ] || { echo "bench: build first (make)" >&2; exit 1; }
BENCH_ROUNDS=${1:-9} BENCH_MS=${2:-40} bin/aegis-run test bench/json/bench.lua 2>&1 |
  sed -n '/^doc /,/^[^a-z]/p' | sed '$d'
