"""Short, fixed-width figures for the users table and the top screen."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..usage_model import ProcessUsage, SessionUsage, UserUsage
from .render import fit, format_idle, printable

__all__ = ["COLUMNS", "Column", "cells", "cpu", "fit", "idle", "line", "printable", "rate",
           "shown", "size", "until"]

_UNITS = ("B", "K", "M", "G", "T", "P")


def size(n: float | None) -> str:
    """Bytes in at most 5 characters: 512B, 12.3K, 845M, 1.2G; '-' if unknown."""
    if n is None:
        return "-"
    value = float(n)
    for unit in _UNITS:
        if value < 999.5 or unit == _UNITS[-1]:  # what rounds to 1000 takes the next unit
            if unit == "B":
                return f"{int(value)}B"
            return f"{value:.1f}{unit}" if value < 99.95 else f"{value:.0f}{unit}"
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


@dataclass(frozen=True)
class Column:
    """One column of the users table and the top screen (the only table of them)."""

    key: str  # the cells() key, and the sort key where there is one
    title: str
    width: int  # characters of text (columns are separated by one blank)
    right: bool = True  # right-aligned (figures); names and states are left-aligned


COLUMNS = (
    Column("user", "USER", 20, right=False),
    Column("state", "STATE", 6, right=False),
    Column("sessions", "SESS", 4),
    Column("processes", "PROCS", 5),
    Column("cpu", "CPU%", 6),
    Column("rss", "RSS", 6),  # size(): at most 5 characters (845M, 12.3K)
    Column("pss", "PSS", 6),
    Column("read", "READ/s", 6),  # rate(): a size and a '*'
    Column("write", "WRITE/s", 7),
    Column("idle", "IDLE", 7),
)


def shown(pss: bool) -> list[Column]:
    """The columns shown (PSS only when it is read)."""
    return [c for c in COLUMNS if c.key != "pss" or pss]


def cells(row: UserUsage | SessionUsage | ProcessUsage) -> dict[str, str]:
    """The text of every column for one row (names unindented, unescaped-safe)."""
    if isinstance(row, UserUsage):
        label, state, nsess = row.user, row.status, str(len(row.sessions))
        nproc, idle_s = str(len(row.processes)), idle(row.idle_seconds)
    elif isinstance(row, SessionUsage):
        s = row.session
        label = f"{s.id} {s.name or s.type or ''}".rstrip()
        if s.display and s.protocol:
            label += f" {s.protocol}"  # a desktop: "c4 :1 vnc"
        state, nsess, nproc = row.status, "", str(len(row.processes))
        idle_s = idle(s.idle_seconds)
    else:
        label, state, nsess, nproc, idle_s = f"{row.pid} {row.comm}", row.state, "", "", ""
    partial = not isinstance(row, ProcessUsage) and row.io_partial
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
    for col in COLUMNS:
        if col.key not in keys:
            continue
        text = values.get(col.key, "")
        text = fit(" " * indent + text if col.key == "user" else text, col.width)
        parts.append(text.rjust(col.width) if col.right else text.ljust(col.width))
    return " ".join(parts).rstrip()
