#!/bin/bash
# lab-rootfs.sh - ensure the cached Debian rootfs for the systemd container lab exists.
#
# Usage: scripts/lab-rootfs.sh [--force]
#
# Prints the path of a complete rootfs on stdout (progress goes to stderr).
# The cached tree is pristine debootstrap output: tests/lab/container.py never
# modifies it, it boots an overlay (or a copy) of it.
#
# Idempotent and safe to re-run after an interrupted run:
#   * a rootfs counts as complete only if its marker file holds the expected
#     version string (written as the very last step, before the rename);
#   * debootstrap runs in a temporary directory next to the cache and the result
#     is renamed into place, so a half-finished tree never sits at the final path;
#   * leftovers of earlier interrupted runs (rootfs.tmp.*, rootfs.old.*) are
#     unmounted (debootstrap mounts /proc etc. inside its target) and removed;
#   * an flock serialises concurrent callers.
#
# Environment:
#   SESSIONCTL_LAB_DIR     cache directory (default /var/cache/sessionctl-lab)
#   SESSIONCTL_LAB_MIRROR  Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

LAB_DIR=${SESSIONCTL_LAB_DIR:-/var/cache/sessionctl-lab}
MIRROR=${SESSIONCTL_LAB_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,libpam-systemd,procps,python3,python3-venv,nano
ROOTFS=$LAB_DIR/rootfs
MARKER_NAME=.sessionctl-lab-ready
# Bump "v1" when the recipe changes in a way the package list does not show.
VERSION="sessionctl-lab-rootfs v1 $SUITE minbase $PACKAGES"

log() { printf 'lab-rootfs: %s\n' "$*" >&2; }

force=0
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

is_ready() {
    [[ -f $ROOTFS/$MARKER_NAME ]] && [[ "$(cat "$ROOTFS/$MARKER_NAME")" == "$VERSION" ]]
}

# Unmount everything mounted at or below $1 (deepest first), then delete it
# without ever crossing into another filesystem.
remove_tree() {
    local dir=$1 mnt
    [[ -e $dir ]] || return 0
    dir=$(realpath -- "$dir")
    # Field 5 of mountinfo is the mount point (octal escapes for blanks are
    # not expected in our own temp names).
    while read -r mnt; do
        log "unmounting leftover $mnt"
        umount -l -- "$mnt" || true
    done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' \
                 /proc/self/mountinfo | sort -r)
    rm -rf --one-file-system -- "$dir"
}

remove_leftovers() {
    local stale
    for stale in "$LAB_DIR"/rootfs.tmp.* "$LAB_DIR"/rootfs.old.*; do
        [[ -e $stale ]] || continue
        log "removing leftover $stale"
        remove_tree "$stale"
    done
}

if [[ $force == 0 ]] && is_ready; then
    # Leftovers of an interrupted rebuild are removed if no build is running right now.
    if compgen -G "$LAB_DIR/rootfs.[to][ml][pd].*" >/dev/null && [[ $(id -u) == 0 ]]; then
        exec 9>"$LAB_DIR/.lock"
        if flock -n 9; then remove_leftovers; fi
        exec 9>&-
    fi
    printf '%s\n' "$ROOTFS"
    exit 0
fi

[[ $(id -u) == 0 ]] || { log "must run as root to build $ROOTFS"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 1; }

mkdir -p -- "$LAB_DIR"
exec 9>"$LAB_DIR/.lock"
flock 9

# Another caller may have finished while we waited for the lock.
if [[ $force == 0 ]] && is_ready; then
    printf '%s\n' "$ROOTFS"
    exit 0
fi

remove_leftovers

tmp=$(mktemp -d -- "$LAB_DIR/rootfs.tmp.XXXXXX")
trap 'remove_tree "$tmp"' EXIT
chmod 755 -- "$tmp"

log "debootstrap $SUITE into $tmp (takes about a minute)"
start=$SECONDS
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$MIRROR" \
        >"$LAB_DIR/debootstrap.log" 2>&1; then
    log "debootstrap failed; tail of $LAB_DIR/debootstrap.log:"
    tail -n 30 "$LAB_DIR/debootstrap.log" >&2
    exit 1
fi
log "debootstrap done in $((SECONDS - start)) s"

# debootstrap leaves the apt package cache behind; it is not needed.
rm -rf --one-file-system -- "$tmp"/var/cache/apt/archives/*.deb
printf '%s\n' "$VERSION" >"$tmp/$MARKER_NAME"
sync -f "$tmp/$MARKER_NAME"

if [[ -e $ROOTFS ]]; then
    old=$(mktemp -d -- "$LAB_DIR/rootfs.old.XXXXXX")
    mv -T -- "$ROOTFS" "$old/rootfs"
    mv -T -- "$tmp" "$ROOTFS"
    trap - EXIT
    remove_tree "$old"
else
    mv -T -- "$tmp" "$ROOTFS"
    trap - EXIT
fi

log "rootfs ready"
printf '%s\n' "$ROOTFS"
