#!/usr/bin/env bash
# Installs what sessionctl and its tests need on a fresh Debian 12 machine (run as root):
# Debian packages, a venv made from Debian's /usr/bin/python3 at $SESSIONCTL_VENV (so the
# throwaway test users can run the tool inside their logins), and the package into it.
#   scripts/bootstrap.sh          # the tool only
#   scripts/bootstrap.sh --test   # plus test and lab dependencies
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${SESSIONCTL_VENV:-/opt/sessionctl-venv}
extras=""
apt_pkgs=(python3 python3-venv man-db bash-completion)
if [ "${1:-}" = "--test" ]; then
  extras="[test]"
  apt_pkgs+=(openssh-server openssh-client sshpass tmux screen nano procps psmisc
             debootstrap systemd-container iproute2 dbus util-linux htop prometheus
             tesseract-ocr tesseract-ocr-eng sudo vim strace gcc libc6-dev zsh)
fi

"$here/scripts/apt-ensure.sh" bootstrap "${apt_pkgs[@]}"

if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv "$venv"
fi
chmod 755 "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
# Not editable: the code must be readable by the test users wherever the clone lives.
# setuptools reuses build/ from an earlier build: a module removed from src/ (another
# branch's) would be installed again from it.
rm -rf "$here/build"
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$here"
"$venv/bin/pip" install -q --disable-pip-version-check "$here$extras"
# The commands, their man pages and shell completion go under /usr/local only for the
# default venv (a side venv, e.g. a second checkout's, must not take over the commands
# admins type), or wherever SESSIONCTL_PREFIX says.
prefix=${SESSIONCTL_PREFIX:-}
if [ -z "$prefix" ] && [ "$venv" = /opt/sessionctl-venv ]; then
  prefix=/usr/local
fi
if [ -n "$prefix" ]; then
  "$here/scripts/install-commands.sh" "$venv" "$prefix"
fi
echo "bootstrap: sessionctl installed in $venv" >&2
