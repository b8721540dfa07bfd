#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers for the tests, and prints the admin URL the tests should use.
#
# 1. VESTIBULE_TEST_PG_ADMIN, when set and answering, is used as is.
# 2. Else the machine's server on 127.0.0.1:5432 (trust auth, user postgres), when it answers.
# 3. Else PostgreSQL is installed from Debian's packages if missing, and a throwaway cluster with trust auth is
#    started on a free loopback port under .test-run/pg (stopped by scripts/test when the tests end).
# Set VESTIBULE_OWN_PG=1 to force step 3 (how the fallback itself is tested).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

answers() { # URL
    command -v psql >/dev/null 2>&1 && psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

if [ "${VESTIBULE_OWN_PG:-0}" != 1 ]; then
    if [ -n "${VESTIBULE_TEST_PG_ADMIN:-}" ] && answers "$VESTIBULE_TEST_PG_ADMIN"; then
        echo "$VESTIBULE_TEST_PG_ADMIN"; exit 0
    fi
    if answers "postgres://postgres@127.0.0.1:5432/postgres"; then
        echo "postgres://postgres@127.0.0.1:5432/postgres"; exit 0
    fi
fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "tests/pg: installing PostgreSQL from Debian's packages" >&2
    . "$root/tests/apt.sh"
    apt_install postgresql >&2
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

data="$root/.test-run/pg"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -rf "$data" && mkdir -p "$data"
# PostgreSQL refuses to run as root: the cluster belongs to the postgres user the package created.
run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then chown postgres "$data"; fi
run "$bindir/initdb" -D "$data/db" --auth=trust -U postgres >&2
run "$bindir/pg_ctl" -D "$data/db" -l "$data/log" -w -o "-h 127.0.0.1 -p $port -k $data" start >&2
echo "$port" > "$data/port"
echo "postgres://postgres@127.0.0.1:$port/postgres"
