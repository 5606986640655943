#!/usr/bin/env bash
# Installs the reference tools the benchmarks compare with (run as root; idempotent):
# pdsh and htop from Debian, and a separate venv (/opt/sessionctl-bench by default) with
# ansible-core and ClusterShell's clush. Bench-only: nothing here is a runtime dependency.
set -euo pipefail
venv=${1:-/opt/sessionctl-bench}
need=()
for p in pdsh htop; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check ansible-core ClusterShell
echo "bench tools ready: pdsh, htop, $venv/bin/{ansible,clush}" >&2
