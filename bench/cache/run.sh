#!/bin/sh
# Cache hits per second for 1 KB, 8 KB and 64 KB prompts, side by side with
# the floor (bench/cache/floor.c: SHA-256 of the request + one SQLite point
# read through the sqlite3 C API + SHA-256 of the response), in one run on
# the same database file. Integrity check included on both sides.
#   call     c:call(request) answered from the cache: key, read, check,
#            result, batched event (the hit path of aegis.cache)
#   key+get  cache.key(request) (canonical text returned too) + c:get(key)
# Process CPU time, median of 9 rounds (see aegis_bench.lua).
# usage: bench/cache/run.sh [HITS]   (default 9000 per size and path)
set -eu
cd "$(dirname "$0")/../.."
[ -x bin/aegis-run ] || { echo "bench: build first (make)" >&2; exit 1; }
n=${1:-9000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
cc -O2 -o "$tmp/floor" bench/cache/floor.c $(pkg-config --cflags --libs sqlite3 libcrypto)
BENCH_N=$n BENCH_DB="$tmp/cache.db" BENCH_OUT="$tmp/aegis.json" \
  bin/aegis-run test bench/cache/aegis_bench.lua >"$tmp/aegis.log" 2>&1 || { cat "$tmp/aegis.log" >&2; exit 1; }
for s in 1KB 8KB 64KB; do
  us=$("$tmp/floor" "$tmp/cache.db" "$s" 64 "$n") || exit 1
  printf '%s %s\n' "$s" "$us"
done > "$tmp/floor.txt"

lua5.4 - "$tmp/aegis.json" "$tmp/floor.txt" <<'LUA'
local cjson = require('cjson')
local f = assert(io.open(arg[1])); local a = cjson.decode(f:read('a')); f:close()
local floor = {}
for line in io.lines(arg[2]) do
  local size, us = line:match('^(%S+) (%S+)$')
  floor[size] = tonumber(us)
end
print(('%-6s %8s | %10s %10s | %10s %7s | %10s %7s'):format('prompt', 'request', 'floor', 'hits/s',
  'call', 'x floor', 'key+get', 'x floor'))
for _, r in ipairs(a.sizes) do
  local fl = floor[r.size]
  print(('%-6s %7dB | %8.1fus %10.0f | %8.1fus %6.2fx | %8.1fus %6.2fx'):format(r.size, r.request_bytes,
    fl, 1e6 / fl, r.call_us, r.call_us / fl, r.keyget_us, r.keyget_us / fl))
end
print(('(call: %s hits/s at 8KB; CPU time per hit, median of 9 rounds of %d)'):format(
  (function() for _, r in ipairs(a.sizes) do if r.size == '8KB' then return ('%.0f'):format(1e6 / r.call_us) end end end)(),
  a.n // 9))
LUA
