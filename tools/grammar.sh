#!/bin/sh
# Fetches tree-sitter-typescript from the npm registry into DIR, checks the
# tarball against the pinned sha512 (the registry's published `integrity`),
# and unpacks it.  Nothing of it is committed: DIR is under build/.
# usage: tools/grammar.sh DIR
set -eu
version=0.23.2
integrity='sha512-e04JUUKxTT53/x3Uq1zIL45DoYKVfHH4CZqwgZhPg5qYROl5nQjV+85ruFzFGZxu+QeFVbRTPDRnqL9UbU4VeA=='
dir=$1
mkdir -p "$dir"
cd "$dir"
tgz=tree-sitter-typescript-$version.tgz
if [ ! -f "$tgz" ]; then
  echo "grammar: npm pack tree-sitter-typescript@$version" >&2
  npm pack --silent "tree-sitter-typescript@$version" >/dev/null
fi
# The registry publishes this same value as dist.integrity; a pinned copy
# means a changed tarball is caught even if the registry itself is wrong.
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
  echo "grammar: $tgz: integrity mismatch" >&2
  echo "  expected $integrity" >&2
  echo "  got      $got" >&2
  rm -f "$tgz"
  exit 1
fi
rm -rf package
tar xzf "$tgz" package/typescript/src package/tsx/src package/common package/package.json
echo "grammar: tree-sitter-typescript $version verified ($integrity)" >&2
