"""Text layouts identical to Windows' query session / query user (0-based columns)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from datetime import datetime

from ..model import Session

QWINSTA_HEADER = " SESSIONNAME       USERNAME                 ID  STATE   TYPE        DEVICE"
QUSER_HEADER = " USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME"


def printable(text: str) -> str:
    """``text`` with every control or unprintable character shown as '?'."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, a trailing '+' marking a cut (as ps does)."""
    text = printable(text)
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "+" if width > 0 else ""


class Row:
    """A fixed-width line built by placing fields at columns."""

    def __init__(self) -> None:
        self.chars: list[str] = []

    def put(self, col: int, text: str) -> None:
        text = printable(text)
        if len(self.chars) < col + len(text):
            self.chars.extend(" " * (col + len(text) - len(self.chars)))
        self.chars[col : col + len(text)] = text

    def __str__(self) -> str:
        return "".join(self.chars).rstrip()


def _left_then_right(
    row: Row, left_col: int, width: int, left: str, right: str, right_end: int
) -> None:
    """A left field of at most ``width`` then a right-aligned one ending at ``right_end``.

    A long right field grows leftwards into the left one, keeping one space between them.
    """
    right_start = right_end + 1 - len(right)
    row.put(left_col, fit(left, max(0, min(width, right_start - 1 - left_col))))
    row.put(right_start, right)


def format_idle(seconds: float | None) -> str:
    """Idle time as quser prints it: '.', minutes, H:MM, or D+HH:MM; 'none' if unknown."""
    if seconds is None:
        return "none"
    minutes = int(seconds // 60)
    if minutes < 1:
        return "."
    if minutes < 60:
        return str(minutes)
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}:{mins:02d}"
    days, hours = divmod(hours, 24)
    return f"{days}+{hours:02d}:{mins:02d}"


def format_logon(when: datetime | None) -> str:
    """Logon time, in the unambiguous form `who` uses."""
    return when.strftime("%Y-%m-%d %H:%M") if when else ""


#: `qwinsta /v`: these take DEVICE's place (DEVICE repeats SESSIONNAME: /dev/pts/2 for
#: pts/2), so the table fits 120 columns. title → (first column, width, right-aligned).
VERBOSE_COLUMNS: dict[str, tuple[int, int, bool]] = {
    "PROCS": (68, 5, True),
    "LEADER": (74, 7, True),
    "IDLE(s)": (82, 7, True),
    "LOGOFF AT": (90, 9, False),
    "FROM": (100, 20, False),
}
MAX_WIDTH = 120


def _put_verbose(row: Row, values: dict[str, str]) -> None:
    """The columns of `qwinsta /v` after TYPE, each cut to its width."""
    for title, (col, width, right) in VERBOSE_COLUMNS.items():
        text = fit(values[title], width)
        row.put(col, text.rjust(width) if right else text)


def type_label(s: Session) -> str:
    """TYPE: the session type, with the protocol when it says more (``x11/vnc``)."""
    return f"{s.type}/{s.protocol}" if s.protocol and s.protocol != s.type else s.type


def where_from(s: Session) -> str:
    """FROM: the connected client (a desktop's viewer) where known, else the login's host."""
    if s.protocol in ("vnc", "rdp"):
        return s.client_address
    return s.client_address or s.remote_host


def qwinsta_line(s: Session, verbose: bool = False) -> str:
    """One `query session` row."""
    row = Row()
    row.put(0, ">" if s.current else " ")
    row.put(1, fit(s.name, 17))
    _left_then_right(row, 19, 20, s.user, fit(s.id, 26), 45)
    row.put(48, fit(s.state.value, 7))
    row.put(56, fit(type_label(s), 11))
    if not verbose:
        row.put(68, s.device)
        return str(row)
    _put_verbose(row, {
        "PROCS": str(len(s.processes)),
        "LEADER": str(s.leader_pid or "-"),
        "IDLE(s)": "-" if s.idle_seconds is None else str(int(s.idle_seconds)),
        "LOGOFF AT": s.logoff_at.strftime("%H:%M:%S") if s.logoff_at else "-",
        "FROM": where_from(s) or "-",
    })
    return str(row)


def quser_line(s: Session) -> str:
    """One `query user` row."""
    row = Row()
    row.put(0, ">" if s.current else " ")
    row.put(1, fit(s.user, 21))
    _left_then_right(row, 23, 19, s.name, fit(s.id, 20), 43)
    row.put(46, fit(s.state.value, 7))
    idle = format_idle(s.idle_seconds)
    row.put(63 - len(idle), idle)
    row.put(65, format_logon(s.login_time))
    return str(row)


def qwinsta_table(sessions: Iterable[Session], verbose: bool = False) -> str:
    """The whole `query session` output."""
    header = QWINSTA_HEADER
    if verbose:
        row = Row()
        row.put(0, header[:68])
        _put_verbose(row, {title: title for title in VERBOSE_COLUMNS})
        header = str(row)
    return "\n".join([header, *(qwinsta_line(s, verbose) for s in sessions)])


def quser_table(sessions: Iterable[Session]) -> str:
    """The whole `query user` output."""
    return "\n".join([QUSER_HEADER, *(quser_line(s) for s in sessions)])


def emit(text: str, file=None) -> None:
    """Print (control characters shown as '?'). A failed write to stdout is the command's
    error (cli/runner.py: one line, exit 1); one to stderr is ignored (nowhere to say it)."""
    safe = "\n".join(printable(line) for line in text.split("\n"))
    out = file or sys.stdout
    if out is sys.stdout:
        print(safe, file=out, flush=True)
        return
    with contextlib.suppress(OSError):
        print(safe, file=out, flush=True)
