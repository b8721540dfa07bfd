#!/usr/bin/env bash
# Installs the SMTP sink the mail tests deliver to: the PyPI package aiosmtpd, pinned, in a virtual environment
# at tests/smtp/.venv (git-ignored), with openssl for the STARTTLS test certificate. Idempotent: does nothing when
# the environment already imports aiosmtpd.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
    echo "tests/smtp/install.sh: aiosmtpd already installed in $venv"
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    . "$here/../apt.sh"
    apt_install python3 python3-venv
fi
command -v openssl >/dev/null 2>&1 || { . "$here/../apt.sh"; apt_install openssl; }

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6'
echo "tests/smtp/install.sh: done ($("$venv/bin/python" -c 'import aiosmtpd; print("aiosmtpd", aiosmtpd.__version__)'))"
