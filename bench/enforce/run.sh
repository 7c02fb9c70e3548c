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
#     parsing alone over the same files (bench/enforce/parse_spec.lua);
#   - wall time of ESLint single-threaded against `--jobs $(nproc)`.
# Idempotent: the corpus, the tarballs and ESLint's node_modules (npm ci from
# bench/enforce/package-lock.json, integrity-checked by npm) are reused when
# present.  Everything goes to build/bench-enforce (never committed).
# usage: bench/enforce/run.sh            (needs bin/aegis-run: `make`)
# env:   ENFORCE_JOBS (default nproc), ENFORCE_SKIP_ESLINT=1 reuses the last
#        eslint.json and its times (for rerunning our side while rules change),
#        ENFORCE_RULEPACKS (default typescript-strict,a11y)
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
# ---- tree-sitter parsing alone (the floor)
timed parse.time env ENFORCE_ROOT=corpus ENFORCE_FILES=corpus/files.txt ENFORCE_OUT=parse.out \
  "$aegis" test "$top/bench/enforce/parse_spec.lua" > parse.log 2>&1
grep -q '^1 passed' parse.log || { cat parse.log >&2; echo "enforce bench: parse floor failed" >&2; exit 1; }
# ---- aegis, one job, then all cores (exit 1 = findings at error level)
rp=${ENFORCE_RULEPACKS:-typescript-strict,a11y}
timed aegis-1.time "$aegis" enforce --format json --rulepacks "$rp" --jobs 1 corpus > aegis-1.json 2> aegis-1.err
timed aegis-n.time "$aegis" enforce --format json --rulepacks "$rp" --jobs "$jobs" corpus > aegis-n.json 2> aegis-n.err
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
read -r p_cpu p_files p_bytes p_err < parse.out
set -- $(cat parse.time); p_wall=$1 p_pcpu=$(add $2 $3)
set -- $(cat aegis-1.time); a1_wall=$1 a1_cpu=$(add $2 $3)
set -- $(cat aegis-n.time); an_wall=$1 an_cpu=$(add $2 $3)
set -- $(cat eslint.time); e_wall=$1 e_cpu=$(add $2 $3)
lines=$(tr '\n' '\0' < corpus/files.txt | (cd corpus && xargs -0 cat) | wc -l)
tsx=$(grep -c '\.tsx$' corpus/files.txt || true)
ratio() { awk "BEGIN { if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"inf\" }"; }
echo
echo "corpus: $p_files files ($tsx TSX), $lines lines, $(awk "BEGIN { printf \"%.1f\", $p_bytes / 1048576 }") MB; $p_err with syntax errors in tree-sitter's parse"
echo "ESLint $eslint_version, typescript-eslint $(node -p 'require("./node_modules/typescript-eslint/package.json").version'), eslint-plugin-jsx-a11y $(node -p 'require("./node_modules/eslint-plugin-jsx-a11y/package.json").version'), node $(node --version); aegis --jobs 1 and --jobs $jobs findings: $same"
printf '%-42s %10s %10s\n' 'run' 'cpu s' 'wall s'
printf '%-42s %10s %10s\n' 'ESLint, single-threaded' "$e_cpu" "$e_wall"
printf '%-42s %10s %10s\n' 'aegis-run enforce --jobs 1' "$a1_cpu" "$a1_wall"
printf '%-42s %10s %10s\n' "aegis-run enforce --jobs $jobs" "$an_cpu" "$an_wall"
printf '%-42s %10s %10s\n' 'tree-sitter parse alone (read + parse loop)' "$p_cpu" '-'
printf '%-42s %10s %10s\n' '  the same, whole process' "$p_pcpu" "$p_wall"
verdict() { awk "BEGIN { print ($1 $2 $3) ? \"met\" : \"NOT met\" }"; }
r1=$(ratio "$e_cpu" "$a1_cpu"); r2=$(ratio "$e_wall" "$an_wall"); r3=$(ratio "$a1_cpu" "$p_cpu")
echo "CPU  ESLint / aegis --jobs 1:        ${r1}x  (goal >= 15x: $(verdict "$r1" '>=' 15))"
echo "wall ESLint / aegis --jobs $jobs:        ${r2}x  (goal >= 25x: $(verdict "$r2" '>=' 25))"
echo "CPU  aegis --jobs 1 / parse alone:   ${r3}x  (goal <= 1.5x: $(verdict "$r3" '<=' 1.5))"
# where our time goes: one more --jobs 1 run with --timings (CPU per stage and rule)
"$aegis" enforce --timings --format json --rulepacks "$rp" --jobs 1 corpus > /dev/null 2> timings.txt || true
sed -n '1,6p' timings.txt | sed 's/^aegis-run: enforce: //'
echo "mismatch samples: $work/mismatches/<rule>.txt"
