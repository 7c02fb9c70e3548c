#!/bin/sh
# A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a private
# directory, listening only on a Unix socket there, on a private port.
#   tools/pg-temp.sh start     prints DIR and the libpq URL, one per line
#   tools/pg-temp.sh stop DIR  stops the server and removes DIR
# As root the server runs as the `postgres` user (initdb refuses root).
set -eu
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] || { echo "pg-temp: no PostgreSQL server installed (Debian package postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/aegis-pg.XXXXXX")
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  chmod 700 "$dir"
  # a port of our own: the socket file is named after it
  port=$(( 20000 + $$ % 20000 ))
  as_owner "$pgbin/initdb" -D "$dir/data" -A trust -U aegis -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -p $port -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
    start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  echo "$dir"
  echo "postgresql://aegis@/postgres?host=$dir&port=$port"
  ;;
stop)
  dir=${2:?usage: pg-temp.sh stop DIR}
  case "$dir" in */aegis-pg.*) ;; *) echo "pg-temp: refusing to remove '$dir'" >&2; exit 1;; esac
  as_owner "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: pg-temp.sh start | stop DIR" >&2; exit 2
  ;;
esac
