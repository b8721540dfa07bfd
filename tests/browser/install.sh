#!/usr/bin/env bash
# Installs what the browser tests need (Chromium and its chromedriver, as /usr/bin/chromium and
# /usr/bin/chromedriver) on a fresh Debian machine. Idempotent: does nothing when both are already there, and
# refreshes the package lists only when the plain install fails. Runs as root (or with sudo when it is available).
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)

if [ ${#need[@]} -eq 0 ]; then
    echo "tests/browser/install.sh: chromium and chromium-driver already installed"
    exit 0
fi

. "$(dirname "$0")/../apt.sh"
echo "tests/browser/install.sh: installing ${need[*]}"
apt_install "${need[@]}"

for f in /usr/bin/chromium /usr/bin/chromedriver; do
    [ -x "$f" ] || { echo "tests/browser/install.sh: $f is still missing" >&2; exit 1; }
done
echo "tests/browser/install.sh: done ($(/usr/bin/chromium --version 2>/dev/null || echo chromium))"
