#!/usr/bin/env bash
# Installs what the browser tests need on a fresh Debian machine: Chromium and its chromedriver (as /usr/bin/chromium
# and /usr/bin/chromedriver), and axe-core, the accessibility checker the tests inject into every page, pinned by
# package-lock.json here (node_modules/axe-core/axe.min.js). Idempotent: does nothing when all are already there;
# refreshes the package lists only when the plain install fails. Runs as root (or with sudo when it is available).
set -euo pipefail
cd "$(dirname "$0")"

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)

if [ ${#need[@]} -eq 0 ]; then
    echo "tests/browser/install.sh: chromium and chromium-driver already installed"
else
    . ../apt.sh
    echo "tests/browser/install.sh: installing ${need[*]}"
    apt_install "${need[@]}"
    for f in /usr/bin/chromium /usr/bin/chromedriver; do
        [ -x "$f" ] || { echo "tests/browser/install.sh: $f is still missing" >&2; exit 1; }
    done
    echo "tests/browser/install.sh: done ($(/usr/bin/chromium --version 2>/dev/null || echo chromium))"
fi

if [ -f node_modules/axe-core/axe.min.js ] && cmp -s package-lock.json node_modules/.vestibule-installed-lock 2>/dev/null; then
    echo "tests/browser/install.sh: axe-core already installed"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    . ../apt.sh
    apt_install nodejs npm
fi
npm ci --no-audit --no-fund
cp package-lock.json node_modules/.vestibule-installed-lock
echo "tests/browser/install.sh: axe-core $(node -p 'require("./node_modules/axe-core/package.json").version')"
