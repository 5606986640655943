#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), then runs the whole suite
# on real sessions (real users, a real sshd, a real systemd container, Wine with a Windows
# CPython for the windows backend). Run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${SESSIONCTL_VENV:-/opt/sessionctl-venv}
"$here/scripts/bootstrap.sh" --test
"$here/scripts/lab-rootfs.sh" >/dev/null
"$here/scripts/lab-desktop-layer.sh" >/dev/null   # TigerVNC/Xfce/xrdp layer (cached)
"$here/scripts/wine-lab.sh"   # Wine + a Windows CPython for the windows backend's tests
cd "$here"
"$venv/bin/ruff" check src tests bench scripts
"$venv/bin/mypy"  # configuration in pyproject.toml: strict on the public API and the model
exec "$venv/bin/python" -m pytest -p no:cacheprovider -q -ra "$@"
