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
# Why 0.25.1: the newest release; our code compiles against it unchanged
# and warning-free (ts_parser_set_timeout_micros and ts_language_version
# are deprecated in its api.h, by comment only, and go in 0.26, which needs
# ts_parser_parse_with_options' progress callback and
# ts_language_abi_version).  It reads the grammar's ABI 14 (it accepts 13
# to 15).  On 1,330 distinct TS/TSX files (rxjs, TanStack Query, the fuzz
# corpora) it gives the same trees, query matches, scopes and enforce
# findings as 0.20.7, but for error recovery on 3 malformed inputs.
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
