#!/bin/sh
# Save and load of the same checkpoint states (small, 10 KB, 1 MB) side by
# side: aegis and LangGraph.js's SqliteSaver (better-sqlite3 handle, WAL, at
# synchronous FULL and NORMAL; aegis also at GROUP, compared with FULL) and
# PostgresSaver on the same server, each against the floor (a raw insert /
# select of the same bytes, same settings); then concurrent saves of 1-8
# processes at FULL and GROUP (concurrent_bench.lua).
# Medians per operation.  usage: bench/checkpoint/run.sh  (make bench runs it)
#
# Two kinds of floor.  The first table's "floor" and "rows floor" go through
# aegis.store from Lua (the binding's and Lua's cost included).  The second
# table's "C floor" is floor.c, built here with `cc -O2` against the system
# libsqlite3 and libpq: the same bytes in one row, with prepared statements
# and no Lua, the SQLite connection opened with aegis's store settings
# (WAL, synchronous FULL or NORMAL, its pragmas, the WAL grown first), on
# PostgreSQL one round trip per operation (an implicit transaction, binary
# bytea).  It is measured twice: "C alone", its own loop with nothing else in
# its process (the lowest figure: hot caches; the divisor of "lg / C", the
# most any saver on these stores and settings could gain over LangGraph,
# itself measured in a loop of its own), and "C alt", each operation
# alternating with aegis's (a co-process: the same moment's disk; the
# divisor of "aegis / C alt", the FULL goal).  At GROUP the C floor is at
# FULL (the same durability).  "postgres-lz4": C alone with the bytea column
# compressed by lz4 instead of the server's default pglz (a per-column
# setting; LangGraph's and aegis's tables use the default).  What the C
# floor is not: a checkpoint (no LangGraph rows, no metadata, nothing
# decoded on load), nor a bound on another design (another database, a
# cache in memory, an append-only file).
# $BENCH_PG_URL: a PostgreSQL to use; else a throwaway one (tools/pg-temp.sh).
set -eu
cd "$(dirname "$0")/../.."
[ -x bin/aegis-run ] || { echo "bench: build first (make)" >&2; exit 1; }
interop=$(spec/support/langgraph/install.sh)
cp bench/checkpoint/langgraph_bench.mjs "$interop/"
tmp=$(mktemp -d)
pgdir=
cleanup() { [ -n "$pgdir" ] && tools/pg-temp.sh stop "$pgdir"; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
pg=${BENCH_PG_URL:-}
if [ -z "$pg" ]; then
  out=$(tools/pg-temp.sh start)
  pgdir=$(echo "$out" | sed -n 1p)
  pg=$(echo "$out" | sed -n 2p)
fi

# The states: plan-like objects; 10 KB and 1 MB are lists of file records.
node -e '
const fs = require("fs");
const files = (n) => Array.from({ length: n }, (_, i) => ({ id: i, path: `src/module${i % 37}/file${i}.ts`,
  sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".slice(0, 40), lines: i * 7 % 1000,
  tags: ["ts", i % 2 ? "test" : "src"] }));
const states = [
  { name: "small", n: 300, state: { goal: "todo app", step: 3, done: false } },
  { name: "10KB", n: 200, state: { goal: "todo app", files: files(85) } },
  { name: "1MB", n: 15, state: { goal: "todo app", files: files(8700) } },
];
fs.writeFileSync(process.argv[1], JSON.stringify(states));
for (const s of states) fs.writeFileSync(process.argv[1] + "." + s.name, JSON.stringify(s.state));
console.log(states.map((s) => `${s.name}:${s.n}:${process.argv[1]}.${s.name}`).join(" "));
' "$tmp/states.json" >"$tmp/states.args"
# shellcheck disable=SC2046 # pkg-config prints flags to split
cc -O2 -o "$tmp/floor" bench/checkpoint/floor.c $(pkg-config --cflags --libs libpq sqlite3)

BENCH_STATES="$tmp/states.json" BENCH_OUT="$tmp/aegis.json" BENCH_SQLITE_DIR="$tmp" BENCH_PG_URL="$pg" \
  BENCH_CFLOOR="$tmp/floor" bin/aegis-run test bench/checkpoint/aegis_bench.lua >"$tmp/aegis.log" 2>&1 || { cat "$tmp/aegis.log" >&2; exit 1; }
(cd "$interop" && node langgraph_bench.mjs "$tmp/states.json" "$tmp" "$pg") > "$tmp/langgraph.json"
# shellcheck disable=SC2046 # NAME:N:FILE words without blanks
"$tmp/floor" run "$tmp" "$pg" $(cat "$tmp/states.args") >"$tmp/cfloor.json"

# Concurrent saves: SQLite at FULL and GROUP; PostgreSQL on a server of its
# own with fsync=on and synchronous_commit=on (the throwaway one above runs
# without either), aegis against PostgresSaver.
durable=$(mktemp -d "${TMPDIR:-/tmp}/aegis-pg.XXXXXX")
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$durable"
chmod 700 "$durable"
dport=$(( 20000 + ($$ + 7) % 20000 ))
cleanup() {
  as_owner "$pgbin/pg_ctl" -D "$durable/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$durable"
  [ -n "$pgdir" ] && tools/pg-temp.sh stop "$pgdir"; rm -rf "$tmp"
}
as_owner "$pgbin/initdb" -D "$durable/data" -A trust -U aegis -E UTF8 >"$durable/initdb.log" 2>&1 ||
  { cat "$durable/initdb.log" >&2; exit 1; }
as_owner "$pgbin/pg_ctl" -D "$durable/data" -l "$durable/server.log" -w -t 60 \
  -o "-k $durable -p $dport -c listen_addresses= -c fsync=on -c synchronous_commit=on -c max_connections=100" \
  start >/dev/null || { cat "$durable/server.log" >&2; exit 1; }
cp bench/checkpoint/langgraph_concurrent.mjs "$interop/"
mkdir "$tmp/concurrent"
CB_DIR="$tmp/concurrent" CB_OUT="$tmp/concurrent.json" CB_NODE_DIR="$interop" \
  CB_PG_URL="postgresql://aegis@/postgres?host=$durable&port=$dport" \
  bin/aegis-run test bench/checkpoint/concurrent_bench.lua >"$tmp/concurrent.log" 2>&1 ||
  { cat "$tmp/concurrent.log" >&2; exit 1; }

lua5.4 - "$tmp/aegis.json" "$tmp/langgraph.json" "$tmp/concurrent.json" "$tmp/cfloor.json" <<'LUA'
local cjson = require('cjson')
local function load(p) local f = assert(io.open(p)); local v = cjson.decode(f:read('a')); f:close(); return v end
local a, l = load(arg[1]), load(arg[2])
local lg = {}
for _, r in ipairs(l) do lg[r.target .. '/' .. r.size] = r end
print(('%-14s %-6s %9s | %10s %10s %10s %10s %7s %7s %7s | %10s %10s %10s %7s %7s'):format('store', 'state', 'bytes',
  'save aegis', 'langgraph', 'floor', 'rows floor', 'x lg', 'x floor', 'x rows', 'load aegis', 'langgraph', 'floor',
  'x lg', 'x floor'))
for _, r in ipairs(a) do
  -- group commit keeps FULL's durability: compared with SqliteSaver at FULL
  local o = lg[(r.target == 'sqlite-group' and 'sqlite-full' or r.target) .. '/' .. r.size]
  local rows = r.rows_floor_save_us
  print(('%-14s %-6s %9d | %8.1fus %8.1fus %8.1fus %10s %6.1fx %6.2fx %7s | %8.1fus %8.1fus %8.1fus %6.1fx %6.2fx'):format(
    r.target, r.size, r.bytes, r.save_us, o.save_us, r.floor_save_us, rows and ('%8.1fus'):format(rows) or '-',
    o.save_us / r.save_us, r.save_us / r.floor_save_us, rows and ('%6.2fx'):format(r.save_us / rows) or '-',
    r.load_us, o.load_us, r.floor_load_us, o.load_us / r.load_us, r.load_us / r.floor_load_us))
end
for _, r in ipairs(a) do
  if r.save_all10_us then
    print(('%-14s %-6s save_all of 10 in one transaction: %8.1fus per checkpoint (single saves %.1fus: %.1fx)'):format(
      r.target, r.size, r.save_all10_us, r.save_us, r.save_us / r.save_all10_us))
  end
end
print()
-- the C floor (floor.c): "alone" in its own loop, "alt" alternating with aegis
local cf = {}
for _, r in ipairs(load(arg[4])) do cf[r.target .. '/' .. r.size] = r end
print('C floor: floor.c, prepared statements, no Lua (alone: its own loop; alt: alternating with aegis).'
  .. ' lg / C = the most any saver could gain over LangGraph here')
print(('%-14s %-6s | %10s %10s %10s %10s %10s %7s %7s | %10s %10s %10s %10s %10s %7s %7s'):format('store', 'state',
  'save lg', 'aegis', 'lua floor', 'C alone', 'C alt', 'lg / C', 'a/C alt', 'load lg', 'aegis', 'lua floor',
  'C alone', 'C alt', 'lg / C', 'a/C alt'))
local function us(v) return v and ('%8.1fus'):format(v) or '-' end
local function x(p, q) return p and q and ('%6.2fx'):format(p / q) or '-' end
for _, r in ipairs(a) do
  local t = r.target == 'sqlite-group' and 'sqlite-full' or r.target
  local o, c = lg[t .. '/' .. r.size], cf[t .. '/' .. r.size] or {}
  print(('%-14s %-6s | %10s %10s %10s %10s %10s %7s %7s | %10s %10s %10s %10s %10s %7s %7s'):format(r.target, r.size,
    us(o.save_us), us(r.save_us), us(r.floor_save_us), us(c.save_us), us(r.cfloor_save_us), x(o.save_us, c.save_us),
    x(r.save_us, r.cfloor_save_us), us(o.load_us), us(r.load_us), us(r.floor_load_us), us(c.load_us),
    us(r.cfloor_load_us), x(o.load_us, c.load_us), x(r.load_us, r.cfloor_load_us)))
end
-- the same PostgreSQL floor with the bytea column compressed by lz4 (the
-- server's default, as in every table above, is pglz)
for _, r in ipairs(load(arg[4])) do
  local o = r.target == 'postgres-lz4' and lg['postgres/' .. r.size]
  if o then
    print(('%-14s %-6s | %10s %10s %10s %10s %10s %7s %7s | %10s %10s %10s %10s %10s %7s %7s'):format(r.target,
      r.size, us(o.save_us), '-', '-', us(r.save_us), '-', x(o.save_us, r.save_us), '-', us(o.load_us), '-', '-',
      us(r.load_us), '-', x(o.load_us, r.load_us), '-'))
  end
end
print('(sqlite-group: LangGraph and C alone at FULL; goals: lg / C >= 20x load SqliteSaver, >= 10x save at NORMAL,'
  .. ' >= 3x PostgresSaver, or no saver can meet them; a/C alt <= 1.2x save at FULL)')
print()
print('concurrent saves: P processes, 200 small saves each to a thread of its own, one SQLite database')
print(load(arg[3]).table)
print()
print('x lg: how many times faster than LangGraph.js (goal: load >= 20x SqliteSaver, save >= 10x at NORMAL,'
  .. ' >= 3x PostgresSaver both ways); x floor: aegis / floor (goal at FULL: save <= 1.2x);'
  .. ' x rows: aegis / the rows floor (the same SQL and rows as an aegis save, without the codec)')
LUA
