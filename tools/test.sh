#!/bin/sh
# Runs every spec with the given aegis-run binary, against SQLite and a
# throwaway PostgreSQL that lives only as long as the run.
# usage: tools/test.sh BIN [busted args...]; $AEGIS_WRAP prefixes the binary
# (valgrind, for one).
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); shift
cd "$(dirname "$0")/.."

# The official provider SDKs for the wire checks against the emulator
# (spec/functional/sdk_spec.lua, emulate_sdk_spec.lua), pinned; installed
# once from npm into build/node.
if [ ! -d build/node/node_modules/openai ] || [ ! -d build/node/node_modules/@anthropic-ai/sdk ]; then
  mkdir -p build/node
  npm install --silent --no-audit --no-fund --save-exact --prefix build/node \
    openai@6.49.0 @anthropic-ai/sdk@1.14.0 >/dev/null 2>&1 ||
    echo "test: cannot install the provider SDKs from npm: their wire checks will fail" >&2
fi

out=$(tools/pg-temp.sh start) || { echo "test: cannot start the throwaway PostgreSQL"; echo "0 passed, 1 failed"; exit 1; }
pgdir=$(echo "$out" | sed -n 1p)
AEGIS_PG_URL=$(echo "$out" | sed -n 2p)
trap 'tools/pg-temp.sh stop "$pgdir"' EXIT INT TERM

export AEGIS_PG_URL AEGIS_BIN="$bin"
unset AEGIS_LUA_DIR AEGIS_PATH AEGIS_STORE
# shellcheck disable=SC2086
${AEGIS_WRAP:-} "$bin" test "$@"
rc=$?
# busted prints the closing line itself; a crash prints nothing, so say it
if [ $rc -gt 128 ] || [ $rc -eq 99 ]; then
  echo "test: aegis-run ended abnormally (exit $rc)"
  echo "0 passed, 1 failed"
fi
exit $rc
