#!/usr/bin/env bash
# Stops the throwaway cluster tests/pg/ensure-postgres.sh may have started (nothing to do otherwise).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
data="$root/.test-run/pg"
[ -d "$data/db" ] || exit 0
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bindir/pg_ctl" -D "$data/db" -m fast stop >/dev/null 2>&1 || true
else "$bindir/pg_ctl" -D "$data/db" -m fast stop >/dev/null 2>&1 || true; fi
rm -rf "$data"
