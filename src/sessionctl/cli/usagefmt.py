"""Short, fixed-width figures for the users table and the top screen."""

from __future__ import annotations

import time

from ..usage_model import ProcessUsage, SessionUsage, UserUsage
from .render import fit, format_idle, printable

_UNITS = ("B", "K", "M", "G", "T", "P")


def size(n: float | None) -> str:
    """Bytes in at most 6 characters: 512B, 12.3K, 845M, 1.21G; '-' if unknown."""
    if n is None:
        return "-"
    value = float(n)
    for unit in _UNITS:
        if value < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)}B"
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
        value /= 1024
    return "-"  # not reached


def rate(n: float | None, partial: bool = False) -> str:
    """A byte rate ('-' unknown); a '*' marks a sum that leaves out unreadable processes."""
    return size(n) + ("*" if partial and n is not None else "")


def cpu(pct: float) -> str:
    return f"{pct:.1f}"


def idle(seconds: float | None) -> str:
    """Idle time as quser shows it ('.', minutes, H:MM, D+HH:MM); '-' without a terminal."""
    return "-" if seconds is None else format_idle(seconds)


def until(when: float | None, now: float | None = None) -> str:
    """Time left to a pending logoff: 'in 4:59'; '' if none."""
    if when is None:
        return ""
    left = max(0, int(when - (now if now is not None else time.time())))
    return f"logoff in {left // 60}:{left % 60:02d}"


COLUMNS = [  # key, title, width, right-aligned
    ("user", "USER", 20, False),
    ("state", "STATE", 6, False),
    ("sessions", "SESS", 4, True),
    ("processes", "PROCS", 5, True),
    ("cpu", "CPU%", 6, True),
    ("rss", "RSS", 7, True),
    ("pss", "PSS", 7, True),
    ("read", "READ/s", 7, True),
    ("write", "WRITE/s", 7, True),
    ("idle", "IDLE", 7, True),
]


def cells(row: UserUsage | SessionUsage | ProcessUsage) -> dict[str, str]:
    """The text of every column for one row (names unindented, unescaped-safe)."""
    if isinstance(row, UserUsage):
        label, state, nsess = row.user, row.status, str(len(row.sessions))
        nproc, idle_s = str(len(row.processes)), idle(row.idle_seconds)
    elif isinstance(row, SessionUsage):
        s = row.session
        label = f"{s.id} {s.name or s.type or ''}".rstrip()
        state, nsess, nproc = row.status, "", str(len(row.processes))
        idle_s = idle(s.idle_seconds)
    else:
        label, state, nsess, nproc, idle_s = f"{row.pid} {row.comm}", row.state, "", "", ""
    partial = getattr(row, "io_partial", False)
    return {
        "user": printable(label),
        "state": state,
        "sessions": nsess,
        "processes": nproc,
        "cpu": cpu(row.cpu_percent),
        "rss": size(row.rss_bytes),
        "pss": size(row.pss_bytes),
        "read": rate(row.read_bytes_per_s, partial),
        "write": rate(row.write_bytes_per_s, partial),
        "idle": idle_s,
    }


def line(values: dict[str, str], keys: list[str], indent: int = 0) -> str:
    """One fixed-width line of the users table."""
    parts = []
    for key, _title, width, right in COLUMNS:
        if key not in keys:
            continue
        text = values.get(key, "")
        text = fit(" " * indent + text if key == "user" else text, width)
        parts.append(text.rjust(width) if right else text.ljust(width))
    return " ".join(parts).rstrip()
