#!/bin/sh
# The enforce bench: `aegis-run enforce --rulepacks typescript-strict,a11y`
# against ESLint 9 + typescript-eslint + eslint-plugin-jsx-a11y configured
# with the equivalent rules (bench/enforce/eslint.config.mjs), over a corpus of
# real TypeScript and TSX from pinned npm packages (bench/enforce/corpus.sh),
# in one run:
#   - per-rule agreement: ESLint's count, ours, matched, precision, recall
#     (bench/enforce/compare.mjs; samples of the differences in
#     build/bench-enforce/mismatches/<rule>.txt);
#   - CPU time (user + sys of the process and its children) of ESLint single-
#     threaded against `aegis-run enforce --jobs 1`, and against tree-sitter
#     parsing alone over the same files (bench/enforce/parse_spec.lua; also
#     as tree-sitter ships it, with the grammar's own parse tables and its
#     own lexer step, AEGIS_TS_TABLES=compact AEGIS_TS_LEXER=stock, for
#     reference: aegis parses with dense copies of the tables and a quicker
#     step for ASCII, docs/ast.md);
#   - wall time of ESLint single-threaded against `--jobs $(nproc)`.
# Idempotent: the corpus, the tarballs and ESLint's node_modules (npm ci from
# bench/enforce/package-lock.json, integrity-checked by npm) are reused when
# present.  Everything goes to build/bench-enforce (never committed).
# usage: bench/enforce/run.sh            (needs bin/aegis-run: `make`)
# env:   ENFORCE_JOBS (default nproc), ENFORCE_SKIP_ESLINT=1 reuses the last
#        eslint.json and its times (for rerunning our side while rules change),
#        ENFORCE_RULEPACKS (default typescript-strict,a11y), ENFORCE_ROUNDS
#        (default 7: rounds of floor, --jobs 1, floor again, --jobs N; medians
#        reported: a round ratio moves by up to 15 % on a shared machine, a
#        median of seven much less)
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
work=build/bench-enforce
aegis=$top/bin/aegis-run
[ -x "$aegis" ] || { echo "enforce bench: $aegis missing (run make)" >&2; exit 1; }
jobs=${ENFORCE_JOBS:-$(nproc)}
mkdir -p "$work"

# ---- corpus (checked against pins.txt every time; extracted once)
bench/enforce/corpus.sh "$work/corpus"

# ---- ESLint, pinned by the committed lock file
if ! cmp -s bench/enforce/package-lock.json "$work/package-lock.json" || [ ! -d "$work/node_modules" ]; then
  cp bench/enforce/package.json bench/enforce/package-lock.json "$work/"
  (cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --silent)
fi
cp bench/enforce/eslint.config.mjs "$work/"
eslint_version=$(cd "$work" && node node_modules/eslint/bin/eslint.js --version)

# timed FILE CMD...: runs CMD, writes "wall user sys" (seconds) to FILE
timed() {
  out=$1; shift
  /usr/bin/time -f '%e %U %S' -o "$out" "$@" || true
  tail -1 "$out" > "$out.tmp" && mv "$out.tmp" "$out"
}

cd "$work"
rm -f aegis-1.json aegis-n.json
# ---- rounds of: tree-sitter parsing alone (the floor), aegis with one job,
# the floor again, aegis on all cores (exit 1 = findings at error level); the
# first round keeps aegis's reports, and the figures below are medians over
# the rounds (this machine's speed drifts by 10-20 % within a minute).  Each
# round's ratio divides the --jobs 1 run by the mean of the floor runs just
# before and just after it: a drift of the machine's speed across the three
# runs cancels out, where a floor measured on one side only carried it
# whole into the ratio.
rp=${ENFORCE_RULEPACKS:-typescript-strict,a11y}
rounds=${ENFORCE_ROUNDS:-7}
: > rounds.txt
r=1
while [ "$r" -le "$rounds" ]; do
  timed parse.time env ENFORCE_ROOT=corpus ENFORCE_FILES=corpus/files.txt ENFORCE_OUT=parse.out \
    "$aegis" test "$top/bench/enforce/parse_spec.lua" > parse.log 2>&1
  grep -q '^1 passed' parse.log || { cat parse.log >&2; echo "enforce bench: parse floor failed" >&2; exit 1; }
  o1=/dev/null on=/dev/null
  [ "$r" -eq 1 ] && o1=aegis-1.json on=aegis-n.json
  timed aegis-1.time "$aegis" enforce --format json --rulepacks "$rp" --jobs 1 corpus > "$o1" 2> aegis-1.err
  ENFORCE_ROOT=corpus ENFORCE_FILES=corpus/files.txt ENFORCE_OUT=parse-after.out \
    "$aegis" test "$top/bench/enforce/parse_spec.lua" > parse-after.log 2>&1
  grep -q '^1 passed' parse-after.log || { cat parse-after.log >&2; echo "enforce bench: parse floor failed" >&2; exit 1; }
  # the same as tree-sitter ships it (aegis parses with dense copies of the grammar's tables and its own
  # lexer step for ASCII: docs/ast.md)
  AEGIS_TS_TABLES=compact AEGIS_TS_LEXER=stock ENFORCE_ROOT=corpus ENFORCE_FILES=corpus/files.txt ENFORCE_OUT=parse-compact.out \
    "$aegis" test "$top/bench/enforce/parse_spec.lua" > parse-compact.log 2>&1
  grep -q '^1 passed' parse-compact.log || { cat parse-compact.log >&2; echo "enforce bench: parse floor (stock) failed" >&2; exit 1; }
  timed aegis-n.time "$aegis" enforce --format json --rulepacks "$rp" --jobs "$jobs" corpus > "$on" 2> aegis-n.err
  # p_cpu p_wall p_user p_sys a1_wall a1_user a1_sys an_wall an_user an_sys pc_cpu p2_cpu
  # (p_*: the floor before --jobs 1, p2_cpu: after it)
  echo "$(cut -d' ' -f1 parse.out) $(cat parse.time) $(cat aegis-1.time) $(cat aegis-n.time)" \
    "$(cut -d' ' -f1 parse-compact.out) $(cut -d' ' -f1 parse-after.out)" >> rounds.txt
  r=$((r + 1))
done
for f in aegis-1 aegis-n; do
  node -e 'JSON.parse(require("fs").readFileSync(process.argv[1]))' "$f.json" 2>/dev/null || {
    echo "enforce bench: $f.json is not JSON; stderr:" >&2; head -20 "$f.err" >&2; exit 1; }
done
# ---- ESLint, single-threaded, no cache
if [ "${ENFORCE_SKIP_ESLINT:-}" = 1 ] && [ -s eslint.json ] && [ -s eslint.time ]; then
  echo "(ESLint not rerun: ENFORCE_SKIP_ESLINT=1; its times are from an earlier run)"
else
  rm -f eslint.json
  timed eslint.time node node_modules/eslint/bin/eslint.js --concurrency off --format json -o eslint.json corpus
  [ -s eslint.json ] || { echo "enforce bench: ESLint wrote no eslint.json" >&2; exit 1; }
fi

# ---- agreement
rm -rf mismatches
node "$top/bench/enforce/compare.mjs" corpus eslint.json aegis-1.json mismatches summary.json
same=$(node -e '
  const fs = require("fs");
  const k = (f) => JSON.stringify(JSON.parse(fs.readFileSync(f)).findings.map((x) => [x.path, x.line, x.col, x.rule]));
  console.log(k("aegis-1.json") === k("aegis-n.json") ? "identical" : "DIFFERENT");')

# ---- speed
add() { awk "BEGIN { printf \"%.2f\", $1 + $2 }"; }
# med EXPR: the median over rounds.txt of an awk expression of its columns
med() {
  awk "{ print $1 }" rounds.txt | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
read -r _ p_files p_bytes p_err < parse.out
p_cpu=$(med '($1 + $12) / 2') p_wall=$(med '$2') p_pcpu=$(med '$3 + $4') pc_cpu=$(med '$11')
a1_wall=$(med '$5') a1_cpu=$(med '$6 + $7')
an_wall=$(med '$8') an_cpu=$(med '$9 + $10')
per_round=$(awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), ($6 + $7) / (($1 + $12) / 2) }' rounds.txt)
# against the floor before the --jobs 1 run alone (the bench's ratio until the floor after it was added)
per_round_before=$(awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), ($6 + $7) / $1 }' rounds.txt)
set -- $(cat eslint.time); e_wall=$1 e_cpu=$(add $2 $3)
lines=$(tr '\n' '\0' < corpus/files.txt | (cd corpus && xargs -0 cat) | wc -l)
tsx=$(grep -c '\.tsx$' corpus/files.txt || true)
# ratios to three places: a verdict on one rounded to two said 1.505 was within 1.5
ratio() { awk "BEGIN { if ($2 > 0) printf \"%.3f\", $1 / $2; else print \"inf\" }"; }
echo
echo "corpus: $p_files files ($tsx TSX), $lines lines, $(awk "BEGIN { printf \"%.1f\", $p_bytes / 1048576 }") MB; $p_err with syntax errors in tree-sitter's parse"
echo "ESLint $eslint_version, typescript-eslint $(node -p 'require("./node_modules/typescript-eslint/package.json").version'), eslint-plugin-jsx-a11y $(node -p 'require("./node_modules/eslint-plugin-jsx-a11y/package.json").version'), node $(node --version); aegis --jobs 1 and --jobs $jobs findings: $same"
printf '%-42s %10s %10s\n' 'run' 'cpu s' 'wall s'
printf '%-42s %10s %10s\n' 'ESLint, single-threaded' "$e_cpu" "$e_wall"
printf '%-42s %10s %10s\n' 'aegis-run enforce --jobs 1' "$a1_cpu" "$a1_wall"
printf '%-42s %10s %10s\n' "aegis-run enforce --jobs $jobs" "$an_cpu" "$an_wall"
printf '%-42s %10s %10s\n' 'tree-sitter parse alone (read + parse loop)' "$p_cpu" '-'
printf '%-42s %10s %10s\n' '  the same, whole process' "$p_pcpu" "$p_wall"
printf '%-42s %10s %10s\n' "  as tree-sitter ships it (stock)" "$pc_cpu" '-'
echo "aegis and the floor: medians of $rounds rounds (floor, --jobs 1, floor, --jobs $jobs; ENFORCE_ROUNDS);" \
  "the floor is the mean of the runs before and after --jobs 1;" \
  "--jobs 1 / floor in each round: $per_round (against the floor before it alone: $per_round_before)"
verdict() { awk "BEGIN { print ($1 $2 $3) ? \"met\" : \"NOT met\" }"; }
r1=$(ratio "$e_cpu" "$a1_cpu"); r2=$(ratio "$e_wall" "$an_wall")
r3=$(echo "$per_round" | tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END {
  if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "CPU  ESLint / aegis --jobs 1:        ${r1}x  (goal >= 15x: $(verdict "$r1" '>=' 15))"
echo "wall ESLint / aegis --jobs $jobs:        ${r2}x  (goal >= 25x: $(verdict "$r2" '>=' 25))"
echo "CPU  aegis --jobs 1 / parse alone:   ${r3}x  (median of the rounds' ratios; goal <= 1.5x: $(verdict "$r3" '<=' 1.5))"
echo "     (against the parse as tree-sitter ships it, its own tables and lexer step: $(ratio "$a1_cpu" "$pc_cpu")x)"
# where our time goes: one more --jobs 1 run with --timings (CPU per stage and rule)
"$aegis" enforce --timings --format json --rulepacks "$rp" --jobs 1 corpus > /dev/null 2> timings.txt || true
sed -n '1,6p' timings.txt | sed 's/^aegis-run: enforce: //'
echo "mismatch samples: $work/mismatches/<rule>.txt"
