#!/bin/bash
# lab-desktop-layer.sh - ensure the cached desktop layer of the systemd container lab exists.
#
# Usage: scripts/lab-desktop-layer.sh [--force]
#
# Prints the path of a complete layer on stdout (progress goes to stderr).
# The layer is an overlayfs upper directory made by installing the desktop packages
# (TigerVNC, Xfce, xterm, vim, xrdp + xorgxrdp, an RDP client) on top of the shared base
# rootfs (scripts/lab-rootfs.sh). tests/lab/container.py stacks it over the base rootfs
# (lowerdir=LAYER:ROOTFS), so the shared cache /var/cache/sessionctl-lab is never written.
#
# Same discipline as lab-rootfs.sh: built in a temporary directory next to the cache,
# marker written last (it names this recipe AND the base rootfs's marker, so a rebuilt
# base invalidates the layer), renamed into place, flock against concurrent builders.
#
# Environment:
#   SESSIONCTL_LAB_DESKTOP_DIR  cache directory (default /var/cache/sessionctl-lab-desktop)
#   SESSIONCTL_LAB_DIR          the base rootfs cache (see lab-rootfs.sh)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
DIR=${SESSIONCTL_LAB_DESKTOP_DIR:-/var/cache/sessionctl-lab-desktop}
LAYER=$DIR/layer
MARKER_NAME=.sessionctl-lab-desktop-ready
PACKAGES="tigervnc-standalone-server tigervnc-tools xfce4-session xfwm4 xfce4-notifyd
dbus-x11 xterm x11-utils xprintidle xdotool vim nano xfonts-base xrdp xorgxrdp
freerdp2-x11 x11-xserver-utils polkitd"
PACKAGES=$(echo $PACKAGES)

log() { printf 'lab-desktop-layer: %s\n' "$*" >&2; }

force=0
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

BASE=$("$here/lab-rootfs.sh")
# Bump "v1" when the recipe changes in a way the package list does not show.
VERSION="sessionctl-lab-desktop v2 [$PACKAGES] over [$(cat "$BASE/.sessionctl-lab-ready")]"

is_ready() {
    [[ -f $LAYER/$MARKER_NAME ]] && [[ "$(cat "$LAYER/$MARKER_NAME")" == "$VERSION" ]]
}

if [[ $force == 0 ]] && is_ready; then
    printf '%s\n' "$LAYER"
    exit 0
fi

[[ $(id -u) == 0 ]] || { log "must run as root to build $LAYER"; exit 1; }
mkdir -p -- "$DIR"
exec 9>"$DIR/.lock"
flock 9
if [[ $force == 0 ]] && is_ready; then
    printf '%s\n' "$LAYER"
    exit 0
fi
for stale in "$DIR"/build.* "$DIR"/old.*; do
    [[ -e $stale ]] && rm -rf --one-file-system -- "$stale"
done

tmp=$(mktemp -d -- "$DIR/build.XXXXXX")
trap 'rm -rf --one-file-system -- "$tmp"' EXIT
mkdir "$tmp/upper" "$tmp/work" "$tmp/merged"
chmod 755 "$tmp/upper"

log "installing the desktop packages over $BASE (a few minutes the first time)"
start=$SECONDS
# A private mount namespace: the overlay and the chroot's /proc and /dev vanish with it.
if ! unshare --mount --propagation private -- /bin/bash -euo pipefail -c '
    base=$1 tmp=$2 pkgs=$3
    m=$tmp/merged
    mount -t overlay sctlab-desktop -o "lowerdir=$base,upperdir=$tmp/upper,workdir=$tmp/work" "$m"
    mount -t proc proc "$m/proc"
    mount --rbind /dev "$m/dev"
    cp /etc/resolv.conf "$m/etc/resolv.conf.sctlab"
    mount --bind "$m/etc/resolv.conf.sctlab" "$m/etc/resolv.conf" 2>/dev/null \
        || cp /etc/resolv.conf "$m/etc/resolv.conf"
    printf "#!/bin/sh\nexit 101\n" > "$m/usr/sbin/policy-rc.d"; chmod 755 "$m/usr/sbin/policy-rc.d"
    export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    chroot "$m" apt-get update -qq
    chroot "$m" apt-get install -y -qq --no-install-recommends $pkgs
    chroot "$m" apt-get clean
    # xrdp would listen on [::]:3389 of the shared network namespace at every boot: off
    # by default, loopback only when a test turns it on (tests/lab/desktop.py).
    chroot "$m" systemctl disable xrdp.service xrdp-sesman.service
    sed -i "s|^port=3389$|port=tcp://127.0.0.1:3389|" "$m/etc/xrdp/xrdp.ini"
    # xorgxrdp runs Xorg as the user (no console): let the Xorg wrapper allow it
    printf "allowed_users=anybody\nneeds_root_rights=no\n" > "$m/etc/X11/Xwrapper.config"
    rm -rf "$m"/var/lib/apt/lists/* "$m/usr/sbin/policy-rc.d"
    umount "$m/etc/resolv.conf" 2>/dev/null || true
    rm -f "$m/etc/resolv.conf.sctlab"
' sctlab-desktop "$BASE" "$tmp" "$PACKAGES" >"$DIR/build.log" 2>&1; then
    log "build failed; tail of $DIR/build.log:"
    tail -n 30 "$DIR/build.log" >&2
    exit 1
fi
log "packages installed in $((SECONDS - start)) s"

printf '%s\n' "$VERSION" >"$tmp/upper/$MARKER_NAME"
sync -f "$tmp/upper/$MARKER_NAME"
if [[ -e $LAYER ]]; then
    old=$(mktemp -d -- "$DIR/old.XXXXXX")
    mv -T -- "$LAYER" "$old/layer"
    mv -T -- "$tmp/upper" "$LAYER"
    rm -rf --one-file-system -- "$old"
else
    mv -T -- "$tmp/upper" "$LAYER"
fi
log "layer ready"
printf '%s\n' "$LAYER"
