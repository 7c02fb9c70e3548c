#!/bin/sh
# Installs the Debian packages named on the command line that are missing,
# through sudo when not root.  Does nothing (quickly) when all are present.
# usage: tools/deps.sh PACKAGE...
set -eu
missing=
for p in "$@"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them once, and again
# when an install fails on stale lists.
if [ ! -d /var/lib/apt/lists ] || [ -z "$(ls /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  $sudo apt-get update -q >&2
fi
# shellcheck disable=SC2086
if ! $sudo apt-get install -y -q --no-install-recommends $missing >&2; then
  $sudo apt-get update -q >&2
  # shellcheck disable=SC2086
  $sudo apt-get install -y -q --no-install-recommends $missing >&2
fi
