# Sourced by the test install scripts. `apt_install PKG...` installs Debian packages as root (or with sudo),
# refreshing the package lists only when the plain install fails: the lists of a fresh image are often empty or
# stale, and an update on every run would be slow. Sets SUDO for the caller's other privileged commands.
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "$0: need root (or sudo) to install packages" >&2
        exit 1
    fi
fi

apt_try() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; }
apt_install() { apt_try "$@" || { $SUDO apt-get update && apt_try "$@"; }; }
