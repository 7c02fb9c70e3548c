#!/bin/sh
# Per-request cost of aegis.http side by side with the curl command line,
# against the same local server in one run: the provider emulator
# (`aegis-run emulate --port 0`, OpenAI Chat Completions route), started here
# and stopped at the end, even on failure; $AEGIS_BENCH_URL names another
# endpoint instead (it gets the same POSTs):
#   seq: N small POSTs one after another on one kept-alive connection
#        (curl: one process, N URLs; aegis: http.request N times)
#   all: M POSTs, 64 in flight (curl --parallel --parallel-max 64;
#        aegis: http.all with concurrency 64)
# Wall time per request, and the client's own CPU time per request (what
# the client costs, whatever the server's speed).  curl's figures are
# (T(N) - T(1)) / (N - 1), so its process start-up is not counted; aegis's
# are timed inside the process after one warm request.  Rounds alternate the
# two; medians are printed with the ratios (aegis / curl).
# usage: bench/http/run.sh [N=200] [M=640] [ROUNDS=3]
set -eu
cd "$(dirname "$0")/../.."
n=${1:-200}; m=${2:-640}; rounds=${3:-3}
bin=${AEGIS_BIN:-bin/aegis-run}
tmp=$(mktemp -d)
srv_pid=
cleanup() { [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM  # exit runs the EXIT trap

if [ -n "${AEGIS_BENCH_URL:-}" ]; then
  url=$AEGIS_BENCH_URL
else
  # exec: $srv_pid is the emulator itself, which the trap stops
  sh -c 'exec "$0" emulate --port 0' "$bin" >"$tmp/emu" 2>"$tmp/emu.err" </dev/null &
  srv_pid=$!
  i=0; while ! grep -qs 'listening on' "$tmp/emu" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  base=$(sed -n 's/^emulator listening on \(http:[^ ]*\)$/\1/p' "$tmp/emu")
  [ -n "$base" ] || { echo "bench/http: the emulator did not start:" >&2; cat "$tmp/emu.err" >&2; exit 1; }
  url="$base/openai/v1/chat/completions"
fi
body='{"model":"gpt-5.4","messages":[{"role":"user","content":"hello"}],"max_completion_tokens":16}'
auth='authorization: Bearer sk-bench'  # the emulator wants one; no real key

# run CMD...: prints "wall cpu" seconds of the command (cpu: user + system)
run() {
  python3 -c 'import resource, subprocess, sys, time
t = time.monotonic(); subprocess.run(sys.argv[1:], check=True); w = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN); print(w, r.ru_utime + r.ru_stime)' "$@"
}
# curl_config FILE COUNT: COUNT POSTs of $body to $url, bodies discarded
curl_config() {
  { printf 'data = "%s"\n' "$(printf %s "$body" | sed 's/"/\\"/g')"
    printf 'header = "content-type: application/json"\n'
    printf 'header = "%s"\n' "$auth"
    j=0; while [ $j -lt "$2" ]; do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; j=$((j + 1)); done
  } >"$1"
}
curl_config "$tmp/c1" 1; curl_config "$tmp/cn" "$n"; curl_config "$tmp/cm" "$m"
curl_time() {  # curl_time CONFIG [par]
  if [ "${2:-}" = par ]; then run curl -s --no-progress-meter -f --parallel --parallel-max 64 -K "$1"
  else run curl -s -f -K "$1"; fi
}
aegis_time() {  # aegis_time MODE COUNT
  BENCH_URL=$url BENCH_AUTH=$auth BENCH_MODE=$1 BENCH_N=$2 BENCH_BODY=$body BENCH_OUT=$tmp/out \
    "$bin" test bench/http/client.lua >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
  cat "$tmp/out"
}

r=0
while [ $r -lt "$rounds" ]; do
  c1=$(curl_time "$tmp/c1"); cn=$(curl_time "$tmp/cn")
  echo "$c1 $cn" >>"$tmp/curl_seq"  # wall1 cpu1 wallN cpuN
  aegis_time seq "$n" >>"$tmp/aegis_seq"
  c1p=$(curl_time "$tmp/c1" par); cm=$(curl_time "$tmp/cm" par)
  echo "$c1p $cm" >>"$tmp/curl_all"
  aegis_time all "$m" >>"$tmp/aegis_all"
  r=$((r + 1))
done

lua5.4 - "$tmp" "$n" "$m" "$url" <<'LUA'
local dir, n, m, url = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]
local function lines(f) local t = {} for l in io.lines(dir .. '/' .. f) do t[#t + 1] = l end return t end
local function median(t) table.sort(t) return t[(#t + 1) // 2] end
-- medians of per-request wall and cpu seconds
local function curl(f, k)
  local w, c = {}, {}
  for _, l in ipairs(lines(f)) do
    local w1, c1, wk, ck = l:match('(%S+) (%S+) (%S+) (%S+)')
    w[#w + 1] = (tonumber(wk) - tonumber(w1)) / (k - 1)
    c[#c + 1] = (tonumber(ck) - tonumber(c1)) / (k - 1)
  end
  return median(w), median(c)
end
local function aegis(f, k)
  local w, c = {}, {}
  for _, l in ipairs(lines(f)) do
    local wk, ck = l:match('(%S+) (%S+)')
    w[#w + 1] = tonumber(wk) / k
    c[#c + 1] = tonumber(ck) / k
  end
  return median(w), median(c)
end
print(('server: %s'):format(url))
local fmt = '%s  %4d POSTs, %-13s wall: curl %6.1f  aegis %6.1f us/req (ratio %.2f)'
  .. '   client cpu: curl %5.1f  aegis %5.1f us/req (ratio %.2f)'
local cw, cc = curl('curl_seq', n)
local aw, ac = aegis('aegis_seq', n)
print(fmt:format('seq', n, 'kept alive', cw * 1e6, aw * 1e6, aw / cw, cc * 1e6, ac * 1e6, ac / cc))
cw, cc = curl('curl_all', m)
aw, ac = aegis('aegis_all', m)
print(fmt:format('all', m, '64 in flight', cw * 1e6, aw * 1e6, aw / cw, cc * 1e6, ac * 1e6, ac / cc))
LUA
