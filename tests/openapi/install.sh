#!/bin/sh
# Installs the pinned OpenAPI validator (@apidevtools/swagger-parser, from package-lock.json) that
# crates/vestibule-server/tests/admin_api.rs runs on the admin API's document.
# Idempotent: does nothing when node_modules already matches the lock file.
set -eu
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "node is required (Node.js 20 or newer)" >&2; exit 1; }
if [ -f node_modules/.package-lock.json ] && cmp -s package-lock.json node_modules/.vestibule-installed-lock 2>/dev/null \
   && [ -d node_modules/@apidevtools/swagger-parser ]; then
  exit 0
fi
npm ci --no-audit --no-fund
cp package-lock.json node_modules/.vestibule-installed-lock
