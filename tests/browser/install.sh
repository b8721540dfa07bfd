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

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "tests/browser/install.sh: need root (or sudo) to install: ${need[*]}" >&2
        exit 1
    fi
fi

install() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; }

echo "tests/browser/install.sh: installing ${need[*]}"
# The package lists of a fresh image are often empty or stale: update only when the plain install fails.
if ! install "${need[@]}"; then
    $SUDO apt-get update
    install "${need[@]}"
fi

for f in /usr/bin/chromium /usr/bin/chromedriver; do
    [ -x "$f" ] || { echo "tests/browser/install.sh: $f is still missing" >&2; exit 1; }
done
echo "tests/browser/install.sh: done ($(/usr/bin/chromium --version 2>/dev/null || echo chromium))"
