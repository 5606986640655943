"""Pure data for resource use: per process, per session, per user (no I/O).

Figures are measured over ``UsageSnapshot.interval`` seconds. ``cpu_percent`` is 100 for
one fully used core. Memory is resident (RSS; summed RSS counts shared pages once per
process) and, where asked for, proportional (PSS: shared pages divided among sharers).
Disk rates are bytes the processes caused to be read from / written to storage (block
I/O, /proc/PID/io read_bytes/write_bytes; page-cache hits and tmpfs do not count).
``None`` means "could not be read" (not root), never zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from .model import Session, State

IDLE_AFTER = 300.0  # a session whose terminal saw no input for this long is Idle


@dataclass(frozen=True, slots=True)
class Counters:
    """One reading of one process. ``None``: that figure could not be read (permission).

    ``start_ticks`` and ``cpu_ticks`` count in the reading platform's ticks (Linux: clock
    ticks, start since boot; Windows: hundredths of a second, start since the epoch).
    """

    pid: int
    start_ticks: int
    comm: str
    state: str
    cpu_ticks: int  # user + system CPU time, in ticks
    rss_bytes: int
    read_bytes: int | None = None  # bytes this process caused to be fetched from storage
    write_bytes: int | None = None  # bytes it caused to be sent to storage
    pss_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """One process's use over the interval."""

    pid: int
    start_ticks: int
    comm: str
    state: str
    cpu_percent: float
    rss_bytes: int
    pss_bytes: int | None = None
    read_bytes_per_s: float | None = None
    write_bytes_per_s: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "comm": self.comm,
            "state": self.state,
            "cpu_percent": round(self.cpu_percent, 1),
            "rss_bytes": self.rss_bytes,
            "pss_bytes": self.pss_bytes,
            "read_bytes_per_s": _round(self.read_bytes_per_s),
            "write_bytes_per_s": _round(self.write_bytes_per_s),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _total(values: Iterable[float | int | None]) -> float | None:
    """Sum of the known values; None if none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def session_status(session: Session, idle_after: float = IDLE_AFTER) -> str:
    """Active, Idle (terminal idle for ``idle_after`` s or more) or Disc."""
    if session.state is State.DISC:
        return "Disc"
    if session.idle_seconds is not None and session.idle_seconds >= idle_after:
        return "Idle"
    return "Active"


class _Totals:
    """Sums over ``processes`` shared by sessions and users."""

    processes: tuple[ProcessUsage, ...]

    @property
    def cpu_percent(self) -> float:
        return sum(p.cpu_percent for p in self.processes)

    @property
    def rss_bytes(self) -> int:
        return sum(p.rss_bytes for p in self.processes)

    @property
    def pss_bytes(self) -> int | None:
        total = _total(p.pss_bytes for p in self.processes)
        return None if total is None else int(total)

    @property
    def read_bytes_per_s(self) -> float | None:
        return _total(p.read_bytes_per_s for p in self.processes)

    @property
    def write_bytes_per_s(self) -> float | None:
        return _total(p.write_bytes_per_s for p in self.processes)

    @property
    def io_partial(self) -> bool:
        """True if the disk figures leave out processes that could not be read."""
        return any(p.read_bytes_per_s is None for p in self.processes)

    def _figures(self) -> dict[str, object]:
        return {
            "processes": len(self.processes),
            "cpu_percent": round(self.cpu_percent, 1),
            "rss_bytes": self.rss_bytes,
            "pss_bytes": self.pss_bytes,
            "read_bytes_per_s": _round(self.read_bytes_per_s),
            "write_bytes_per_s": _round(self.write_bytes_per_s),
            "io_partial": self.io_partial,
        }


@dataclass(frozen=True)
class SessionUsage(_Totals):
    """One session and the use of its processes."""

    session: Session
    processes: tuple[ProcessUsage, ...]
    idle_after: float = IDLE_AFTER

    @property
    def status(self) -> str:
        return session_status(self.session, self.idle_after)

    @property
    def logoff_at(self) -> float | None:
        """When a warned logoff is due (epoch seconds), if one is pending."""
        at = self.session.logoff_at
        return None if at is None else at.timestamp()

    def to_dict(self, with_processes: bool = False) -> dict[str, object]:
        s = self.session
        out: dict[str, object] = {
            "id": s.id,
            "name": s.name,
            "user": s.user,
            "state": self.status,
            "type": s.type,
            "idle_seconds": None if s.idle_seconds is None else round(s.idle_seconds, 1),
            "logoff_at": self.logoff_at,
            **self._figures(),
        }
        if with_processes:
            out["process_list"] = [p.to_dict() for p in self.processes]
        return out


@dataclass(frozen=True)
class UserUsage(_Totals):
    """One user: the union of the processes of their sessions."""

    user: str
    uid: int
    sessions: tuple[SessionUsage, ...]
    processes: tuple[ProcessUsage, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        union = tuple(p for s in self.sessions for p in s.processes)
        object.__setattr__(self, "processes", union)  # frozen: set once, here

    @property
    def status(self) -> str:
        """Active if any session is, else Idle if any session is, else Disc."""
        states = {s.status for s in self.sessions}
        return next((st for st in ("Active", "Idle") if st in states), "Disc")

    @property
    def idle_seconds(self) -> float | None:
        """The least idle time of the user's terminals (None: no terminal)."""
        idles = [s.session.idle_seconds for s in self.sessions]
        known = [i for i in idles if i is not None]
        return min(known) if known else None

    def to_dict(
        self, with_sessions: bool = False, with_processes: bool = False
    ) -> dict[str, object]:
        out: dict[str, object] = {
            "user": self.user,
            "uid": self.uid,
            "state": self.status,
            "sessions": len(self.sessions),
            "idle_seconds": None if self.idle_seconds is None else round(self.idle_seconds, 1),
            **self._figures(),
        }
        if with_sessions or with_processes:
            out["session_list"] = [s.to_dict(with_processes) for s in self.sessions]
        return out


@dataclass
class UsageSnapshot:
    """Every user's use over one interval, and what could not be measured."""

    taken_at: float  # epoch seconds at the end of the interval
    interval: float  # seconds the rates are measured over
    users: list[UserUsage]
    pss: bool = False
    unreadable: int = 0  # processes whose I/O (or PSS) could not be read
    vanished: int = 0  # session processes that exited before they could be read
    notes: list[str] = field(default_factory=list)

    @property
    def sessions(self) -> list[SessionUsage]:
        return [s for u in self.users for s in u.sessions]

    def idle_held(self) -> dict[str, object]:
        """What the Idle and Disc sessions hold together (what a policy could reclaim)."""
        idle = [s for s in self.sessions if s.status != "Active"]
        return {"sessions": len(idle), "processes": sum(len(s.processes) for s in idle),
                "rss_bytes": sum(s.rss_bytes for s in idle),
                "pss_bytes": _total(s.pss_bytes for s in idle) if self.pss else None,
                "cpu_percent": round(sum(s.cpu_percent for s in idle), 1)}

    def to_dict(
        self, with_sessions: bool = False, with_processes: bool = False
    ) -> dict[str, object]:
        return {
            "idle_held": self.idle_held(),
            "interval": round(self.interval, 3),
            "taken_at": self.taken_at,
            "unreadable": self.unreadable,
            "vanished": self.vanished,
            "notes": list(self.notes),
            "users": [u.to_dict(with_sessions, with_processes) for u in self.users],
        }


def group_by_user(sessions: Iterable[SessionUsage]) -> list[UserUsage]:
    """One UserUsage per user, in the order users first appear."""
    by_user: dict[str, list[SessionUsage]] = {}
    for s in sessions:
        by_user.setdefault(s.session.user, []).append(s)
    return [UserUsage(name, group[0].session.uid, tuple(group)) for name, group in by_user.items()]


_STATUS_ORDER = {"Active": 0, "Idle": 1, "Disc": 2}

#: One row of the users table or the top screen.
UsageRow = UserUsage | SessionUsage | ProcessUsage
R = TypeVar("R", UserUsage, SessionUsage, ProcessUsage)


def _name(r: UsageRow) -> str:
    # Sessions keep their listing order under a user (by id) when sorted by name.
    return r.user if isinstance(r, UserUsage) else r.comm if isinstance(r, ProcessUsage) else ""


def _state(r: UsageRow) -> int:
    return 0 if isinstance(r, ProcessUsage) else _STATUS_ORDER.get(r.status, 3)


def _idle(r: UsageRow) -> float:
    value = (
        r.session.idle_seconds if isinstance(r, SessionUsage)
        else r.idle_seconds if isinstance(r, UserUsage) else None
    )
    return -1.0 if value is None else value


#: Sort keys shared by `sessionctl users --sort` and the top screen's columns.
#: Numbers sort largest first; names and states in their natural order.
SORT_KEYS: dict[str, tuple[Callable[[UsageRow], str | float], bool]] = {
    "user": (_name, False),
    "state": (_state, False),
    "sessions": (lambda r: len(r.sessions) if isinstance(r, UserUsage) else 0, True),
    "processes": (lambda r: 0 if isinstance(r, ProcessUsage) else len(r.processes), True),
    "cpu": (lambda r: r.cpu_percent, True),
    "rss": (lambda r: r.rss_bytes, True),
    "pss": (lambda r: r.pss_bytes or 0, True),
    "read": (lambda r: r.read_bytes_per_s or 0.0, True),
    "write": (lambda r: r.write_bytes_per_s or 0.0, True),
    "idle": (_idle, True),
}


def sort_rows(rows: Iterable[R], key: str, reverse: bool = False) -> list[R]:
    """Rows (users, sessions or processes) in the order of ``key``; ``reverse`` flips it."""
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}; one of {', '.join(SORT_KEYS)}")
    fn, descending = SORT_KEYS[key]
    return sorted(rows, key=fn, reverse=descending != reverse)
