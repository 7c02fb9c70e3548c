#!/bin/sh
# What `make demo` runs: the quickstart script on the embedded SQLite store,
# then one prompt through the OpenAI and Anthropic adapters against the local
# provider emulator, the same prompt twice through the prompt cache, and the
# standards gate on a generated component. No API keys, no network beyond
# 127.0.0.1.
set -eu
cd "$(dirname "$0")"
aegis=${AEGIS_BIN:-../bin/aegis-run}   # make test gives the binary under test

echo "== examples/quickstart.lua"
$aegis quickstart.lua
echo
echo "== aegis-run store info"
$aegis store info
echo

log=$(mktemp)
$aegis emulate --port 0 >"$log" 2>&1 &
emu=$!
trap 'kill $emu 2>/dev/null; rm -f "$log"' EXIT INT TERM
port=
for _ in $(seq 50); do
  port=$(sed -n 's/^emulator listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "demo: the emulator did not start"; cat "$log"; exit 1; }
base=http://127.0.0.1:$port

# A system prompt long enough for the providers' prompt caches (1024 tokens).
system=$(mktemp)
i=0
while [ $i -lt 300 ]; do echo "Rule $i: exported functions have explicit return types."; i=$((i + 1)); done >"$system"

for provider in openai anthropic; do
  case $provider in
    openai) url=$base/openai/v1 model=gpt-4.1-mini ;;
    anthropic) url=$base/anthropic model=claude-sonnet-4-5 ;;
  esac
  for n in 1 2; do
    echo "== aegis-run call --provider $provider (call $n: the second reuses the cached prefix)"
    OPENAI_API_KEY=demo-key ANTHROPIC_API_KEY=demo-key \
      $aegis call --provider $provider --model $model --base-url "$url" --system "$system" --json \
      'Write a function that parses ISO-8601 dates.'
  done
done
cachedir=$(mktemp -d)   # a fresh cache, so the first call is a miss on every run
trap 'kill $emu 2>/dev/null; rm -rf "$log" "$cachedir"' EXIT INT TERM
cachedb=sqlite:$cachedir/cache.db
for n in 1 2; do
  echo "== aegis-run call --cache (call $n: the second is answered by the prompt cache, no provider call)"
  OPENAI_API_KEY=demo-key $aegis call --provider openai --model gpt-4.1-mini --base-url "$base/openai/v1" \
    --system "$system" --cache --store "$cachedb" 'Write a function that adds two numbers.'
done
echo
echo "== aegis-run cache stats"
$aegis cache stats --store "$cachedb"
rm -f "$system"
echo
echo "== aegis-run enforce generated/Avatar.tsx (findings at error level: exit 1 expected)"
if $aegis enforce --rulepacks typescript-strict,a11y,ui-theme-tokens generated/Avatar.tsx; then
  echo "demo: enforce found nothing in generated/Avatar.tsx"; exit 1
fi
