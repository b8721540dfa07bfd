#!/usr/bin/env bash
# Installs nginx from Debian's packages for the nginx auth_request test (crates/vestibule-server/tests/nginx.rs),
# which runs /usr/sbin/nginx itself with its own config, ports and temp folder. Idempotent: does nothing when
# /usr/sbin/nginx is already there, and refreshes the package lists only when the plain install fails. Prefers
# nginx-light (it has the auth_request module), else nginx. The package's own system service is stopped and
# disabled so that it does not hold port 80 or keep running after the install. Runs as root (or with sudo).
set -euo pipefail

if [ -x /usr/sbin/nginx ]; then
    echo "tests/nginx/install.sh: nginx already installed ($(/usr/sbin/nginx -v 2>&1))"
    exit 0
fi

. "$(dirname "$0")/../apt.sh"

# The test starts its own nginx: keep the package's service from starting at all where policy-rc.d is honoured
# (Debian's invoke-rc.d), and remove our policy file afterwards if we put it there.
own_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
fi
cleanup() { if [ -n "$own_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

echo "tests/nginx/install.sh: installing nginx-light (or nginx)"
apt_install nginx-light || apt_install nginx

# Whatever got started anyway (no policy-rc.d honoured, systemd present): stop it and keep it from starting at
# boot. Only the packaged service is touched, through its own service manager or its pid file.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl stop nginx.service 2>/dev/null || true
    $SUDO systemctl disable nginx.service 2>/dev/null || true
else
    if [ -x /etc/init.d/nginx ]; then $SUDO /etc/init.d/nginx stop >/dev/null 2>&1 || true; fi
    if command -v update-rc.d >/dev/null 2>&1; then $SUDO update-rc.d nginx disable >/dev/null 2>&1 || true; fi
fi
if [ -s /run/nginx.pid ]; then
    pid="$(cat /run/nginx.pid)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then $SUDO kill -QUIT "$pid" || true; fi
fi

[ -x /usr/sbin/nginx ] || { echo "tests/nginx/install.sh: /usr/sbin/nginx is still missing" >&2; exit 1; }
if ! /usr/sbin/nginx -V 2>&1 | grep -q -- 'http_auth_request_module'; then
    echo "tests/nginx/install.sh: this nginx lacks the auth_request module" >&2
    exit 1
fi
echo "tests/nginx/install.sh: done ($(/usr/sbin/nginx -v 2>&1))"
