#!/bin/sh
# Fetches the tree-sitter runtime from the npm registry into DIR, checks the
# tarball against the pinned sha512 (the registry's published `integrity`),
# and unpacks the C library it vendors: the amalgamation
# vendor/tree-sitter/lib/src/lib.c (which #includes the other lib/src files)
# and the headers vendor/tree-sitter/lib/include.  Nothing of it is
# committed: DIR is under build/.  Same shape as tools/grammar.sh.
#
# Why not Debian's libtree-sitter0 (0.20.7): it corrupts its heap (double
# free in ts_tree_delete) on sources with more than ~65,533 unclosed nesting
# levels, a crash on hostile input (RELIABILITY.md B2).
# usage: tools/tsruntime.sh DIR
set -eu
version=0.25.1
integrity='sha512-mrcEdkYtHfrK1A6fs3O6FxkBo0Qig5XUXqHhxUOQu0bmPo00QF4XaSx4edpazdHwxnSCjlGKGgIqWdaN4dvTLA=='
dir=$1
mkdir -p "$dir"
cd "$dir"
tgz=tree-sitter-$version.tgz
if [ ! -f "$tgz" ]; then
  echo "tsruntime: npm pack tree-sitter@$version" >&2
  npm pack --silent "tree-sitter@$version" >/dev/null
fi
# The registry publishes this same value as dist.integrity; a pinned copy
# means a changed tarball is caught even if the registry itself is wrong.
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
  echo "tsruntime: $tgz: integrity mismatch" >&2
  echo "  expected $integrity" >&2
  echo "  got      $got" >&2
  rm -f "$tgz"
  exit 1
fi
rm -rf package
tar xzf "$tgz" package/vendor/tree-sitter/lib/src package/vendor/tree-sitter/lib/include \
  package/LICENSE package/package.json
echo "tsruntime: tree-sitter $version verified ($integrity)" >&2
