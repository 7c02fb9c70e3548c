#!/bin/sh
# Installs the pinned LangGraph packages into build/node/ when missing, and
# copies the interop scripts next to them (so their imports resolve there).
#   spec/support/langgraph/install.sh   prints the directory of the scripts
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)
dir="$root/build/node"
pins="@langchain/langgraph@1.7.3 @langchain/langgraph-checkpoint@1.2.2 @langchain/langgraph-checkpoint-sqlite@1.0.4 \
@langchain/langgraph-checkpoint-postgres@1.0.5 @langchain/core@1.4.0 better-sqlite3@12.11.1 pg@8.23.1 zod@4.6.7 \
@langchain/langgraph-checkpoint-validation@1.1.1 vitest@4.1.12"
mkdir -p "$dir"
stamp="$dir/.pins"
if [ "$(cat "$stamp" 2>/dev/null)" != "$pins" ] || [ ! -d "$dir/node_modules/@langchain/langgraph" ]; then
  command -v npm >/dev/null 2>&1 || { echo "install: npm is missing (Debian package npm)" >&2; exit 1; }
  [ -f "$dir/package.json" ] || echo '{"name":"aegis-langgraph-interop","private":true,"type":"module"}' > "$dir/package.json"
  # shellcheck disable=SC2086
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error -E $pins >&2
  echo "$pins" > "$stamp"
fi
# better-sqlite3 builds its addon in an install script; build it if npm did not
if [ ! -f "$dir/node_modules/better-sqlite3/build/Release/better_sqlite3.node" ]; then
  (cd "$dir" && npm rebuild better-sqlite3 --loglevel=error >&2)
fi
mkdir -p "$dir/interop"
cp "$root"/spec/support/langgraph/*.mjs "$dir/interop/"
echo "$dir/interop"
