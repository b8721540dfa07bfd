#!/usr/bin/env bash
# Installs what the LDAP tests need (OpenLDAP's slapd, the ldap-utils clients, openssl) on a fresh Debian or
# Ubuntu machine. Idempotent: does nothing when everything is already there, and refreshes the package lists
# only when a package cannot be found without it. Runs as root (or with sudo when it is available).
set -euo pipefail

need=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapadd >/dev/null 2>&1 || need+=(ldap-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)

if [ ${#need[@]} -eq 0 ]; then
    echo "tests/ldap/install.sh: slapd, ldap-utils and openssl already installed"
    exit 0
fi

. "$(dirname "$0")/../apt.sh"
echo "tests/ldap/install.sh: installing ${need[*]}"
apt_install "${need[@]}"

# The Debian package starts a system slapd on port 389 with its own database. The tests run their own
# throwaway instance on free loopback ports and do not need it; stop it so it does not hold resources.
if command -v service >/dev/null 2>&1; then
    $SUDO service slapd stop >/dev/null 2>&1 || true
fi
echo "tests/ldap/install.sh: done"
