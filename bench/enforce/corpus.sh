#!/bin/sh
# Rebuilds the corpus of the enforce bench: real TypeScript and TSX from npm
# package versions that ship their sources (bench/enforce/pins.txt: package,
# version, the registry's dist.integrity).  Each tarball is fetched with
# `npm pack`, checked against its pinned sha512 before anything is
# extracted, and its src/**/*.ts(x) (not *.d.ts) copied to
# DIR/<package>/.  Idempotent: tarballs and extracted trees are reused.
# Never committed: build/ is ignored.
# usage: bench/enforce/corpus.sh [DIR]    (default build/bench-enforce/corpus)
# output: DIR/files.txt, the corpus files (relative to DIR), sorted
set -eu
cd "$(dirname "$0")/../.."
dir=${1:-build/bench-enforce/corpus}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
tarballs="$dir/../tarballs"
mkdir -p "$tarballs"
pins=$(pwd)/bench/enforce/pins.txt

grep -v '^#' "$pins" | while read -r name version integrity; do
  safe=$(echo "$name" | tr '/@' '__' | sed 's/^_//')
  tgz="$tarballs/$safe-$version.tgz"
  out="$dir/$safe"
  if [ ! -f "$tgz" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null 2>&1) || { echo "corpus: npm pack $name@$version failed" >&2; exit 1; }
    mv "$tmp"/*.tgz "$tgz"
    rmdir "$tmp"
  fi
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    echo "corpus: $name@$version: integrity mismatch ($got)" >&2
    rm -f "$tgz"
    exit 1
  fi
  stamp="$out/.version"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$version $integrity" ]; then
    rm -rf "$out"
    mkdir -p "$out"
    tar -xzf "$tgz" -C "$out" --strip-components=2 --wildcards 'package/src/*'
    find "$out" -type f ! \( -name '*.ts' -o -name '*.tsx' \) -delete
    find "$out" -type f -name '*.d.ts' -delete
    find "$out" -type d -empty -delete
    mkdir -p "$out"
    echo "$version $integrity" > "$stamp"
  fi
done

(cd "$dir" && find . -type f \( -name '*.ts' -o -name '*.tsx' \) | sed 's|^\./||' | LC_ALL=C sort) > "$dir/files.txt"
n=$(wc -l < "$dir/files.txt")
tsx=$(grep -c '\.tsx$' "$dir/files.txt" || true)
lines=$(cd "$dir" && tr '\n' '\0' < files.txt | xargs -0 cat | wc -l)
bytes=$(cd "$dir" && tr '\n' '\0' < files.txt | xargs -0 cat | wc -c)
echo "corpus: $n files ($tsx TSX), $lines lines, $bytes bytes in $dir"
