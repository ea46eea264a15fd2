#!/usr/bin/env bash
# A private PostgreSQL server for the tests: `scripts/postgres.sh start` creates a cluster in
# target/postgres and starts it on 127.0.0.1:${COMMONS_TEST_PG_PORT:-30432}, then prints
# the URL tests connect to (each test creates its own database there; a cluster that was stopped
# is made afresh); `stop` stops it.
#
# The server is the Debian package's (`postgresql`); PostgreSQL refuses to run as root, so as
# root it runs as the package's `postgres` user. Durability settings are off: the tests kill
# Commons servers, never this one, and a crashed test cluster is thrown away.
set -euo pipefail
cd "$(dirname "$0")/.."

# Below the kernel's ephemeral range (32768–60999 by default), where no outgoing connection's
# local end can be holding it.
port="${COMMONS_TEST_PG_PORT:-30432}"
dir="$PWD/target/postgres"
url="postgres://commons@127.0.0.1:$port/postgres"

bin=""
for candidate in "$(command -v pg_ctl 2>/dev/null || true)" /usr/lib/postgresql/*/bin/pg_ctl; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then bin="$(dirname "$(readlink -f "$candidate")")"; break; fi
done
[ -n "$bin" ] || { echo "missing: PostgreSQL (Debian: apt-get install postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    # Every test database is disposable: a server that is not running starts from an empty
    # cluster, so the databases of earlier runs (a few MB each, hundreds a run) never pile up.
    if [ -f "$dir/data/PG_VERSION" ] && ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      rm -rf "$dir/data"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      # C locale: text sorts by code point, as on SQLite.
      as_owner "$bin/initdb" -D "$dir/data" -U commons --auth=trust --locale=C --encoding=UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='' -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    fi
    echo "$url"
    ;;
  stop)
    if [ -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
