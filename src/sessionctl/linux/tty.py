"""Terminal lines: idle time as `w` computes it, and what kind of line a name is."""

from __future__ import annotations

import os
import re
import time

_CONSOLE = re.compile(r"^(tty\d+|console|hvc\d+|ttyS\d+)$")


def device_path(line: str) -> str:
    """/dev path of a utmp line, or '' for lines that are not devices (X displays)."""
    if not line or line.startswith(":") or ".." in line:
        return ""
    return "/dev/" + line


def tty_nr(line: str) -> int:
    """The device number of a terminal line as /proc/PID/stat's tty_nr encodes it (0 if
    the line is not a device here)."""
    path = device_path(line)
    if not path:
        return 0
    try:
        rdev = os.stat(path).st_rdev
    except OSError:
        return 0
    major, minor = os.major(rdev), os.minor(rdev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def is_console(line: str) -> bool:
    """True for local console lines (virtual terminals, the system console)."""
    return bool(_CONSOLE.match(line))


def idle_seconds(line: str, now: float | None = None) -> float | None:
    """Seconds since the last input on a tty (now minus its atime), None if unknown."""
    path = device_path(line)
    if not path:
        return None
    try:
        atime = os.stat(path).st_atime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - atime)


def output_time(line: str) -> float | None:
    """When the tty was last written to (its mtime, epoch seconds), None if unknown.

    The kernel moves a tty's times at most once every 8 s (tty_update_time), so this is
    exact to about 8 s; writes by anyone count (sessionctl's own notices included: the
    policy tells them apart with state.tty_writes())."""
    path = device_path(line)
    if not path:
        return None
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
