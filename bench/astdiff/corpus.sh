#!/bin/sh
# Rebuilds the corpus of the semantic diff bench: real consecutive versions
# of the same TS/TSX files, from npm package versions that ship their
# TypeScript sources (pins.txt: package, version, the registry's
# dist.integrity).  Each tarball is fetched with `npm pack`, checked against
# its pinned sha512, and its src/**/*.ts(x) extracted; then every file that
# exists in two consecutive versions of a package, differs, and has at most
# 3000 lines makes a pair.  Never committed: build/ is ignored.
# usage: bench/astdiff/corpus.sh [DIR]    (default build/astdiff-corpus)
# output: DIR/pairs.txt, one "A B" pair of paths a line
set -eu
cd "$(dirname "$0")/../.."
dir=${1:-build/astdiff-corpus}
mkdir -p "$dir/tarballs" "$dir/src"
dir=$(cd "$dir" && pwd)
pins=$(pwd)/bench/astdiff/pins.txt

grep -v '^#' "$pins" | while read -r name version integrity; do
  safe=$(echo "$name" | tr '/@' '__')
  tgz="$dir/tarballs/$safe-$version.tgz"
  out="$dir/src/$safe/$version"
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
  if [ ! -d "$out" ]; then
    mkdir -p "$out"
    tar -xzf "$tgz" -C "$out" --strip-components=1 --wildcards 'package/src/*' 2>/dev/null || true
    find "$out" -type f ! -name '*.ts' ! -name '*.tsx' -delete
  fi
done

# pairs: consecutive pinned versions of each package
pairs="$dir/pairs.txt"
: > "$pairs"
prev_name= prev_ver=
grep -v '^#' "$pins" | while read -r name version integrity; do
  safe=$(echo "$name" | tr '/@' '__')
  if [ "$name" = "$prev_name" ]; then
    a="$dir/src/$safe/$prev_ver"
    b="$dir/src/$safe/$version"
    (cd "$a" && find . -type f \( -name '*.ts' -o -name '*.tsx' \) | sort) | while read -r f; do
      if [ -f "$b/$f" ] && ! cmp -s "$a/$f" "$b/$f" \
         && [ "$(wc -l < "$a/$f")" -le 3000 ] && [ "$(wc -l < "$b/$f")" -le 3000 ]; then
        echo "$a/${f#./} $b/${f#./}" >> "$pairs"
      fi
    done
  fi
  prev_name=$name
  prev_ver=$version
done
echo "corpus: $(wc -l < "$pairs") changed pairs in $pairs"
