"""What policy sign-outs reclaimed: each records what the session held just before (RSS,
PSS where read, processes, idle time) in state.db; ``report()`` sums it per rule and user.

The warned sign-outs are carried out by their countdown worker (actions/countdown.py),
the immediate ones (Disc limits, Disc sessions under memory pressure) by the daemon;
both record here. Warnings, postponements and cancels are recorded too (for the metrics).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import jsonvalues, state
from ..model import Session

if TYPE_CHECKING:
    from ..backends.base import Backend, CounterReader

POLICY_REASON = "policy:"


@dataclass(frozen=True)
class Held:
    """What a session held at one moment."""

    rss_bytes: int
    processes: int
    pss_bytes: int | None = None
    idle_seconds: float | None = None


def measure(session: Session, reader: CounterReader, *, pss: bool = False) -> Held:
    """Read what ``session`` holds now: its live processes' RSS (and PSS), through the
    backend's counter reader (``Backend.counter_reader()``)."""
    rss = count = 0
    pss_total: int | None = 0 if pss else None
    for ref in session.processes:
        c, _ = reader.read(ref.pid, ref.start_ticks, io=False, pss=pss)
        if c is None or c.state in "ZX":
            continue
        count += 1
        rss += c.rss_bytes
        if pss_total is not None:
            pss_total = None if c.pss_bytes is None else pss_total + c.pss_bytes
    return Held(rss, count, pss_total, session.idle_seconds)


def measure_by_id(session_id: str, backend: Backend) -> tuple[Session | None, Held | None]:
    """The session named ``session_id`` and what it holds now (None, None if gone)."""
    found = next((s for s in backend.sessions() if s.id == session_id), None)
    if found is None:
        return None, None
    return found, measure(found, backend.counter_reader())


def rule_of(reason: str) -> str | None:
    """The policy rule a pending logoff's reason names, None if it is not the policy's."""
    return reason[len(POLICY_REASON):] if reason.startswith(POLICY_REASON) else None


def record(event: str, rule: str, session: Session | None, *, user: str = "",
           session_id: str = "", outcome: str = "", held: Held | None = None,
           at: float | None = None) -> None:
    """Append one policy event (warn, postpone, cancel, signout) to state.db. Never
    raises for a state problem: the sign-out itself matters more than its record."""
    fields: dict[str, object] = {
        "at": time.time() if at is None else at, "event": event, "rule": rule,
        "user": session.user if session else user,
        "session_id": session.id if session else session_id, "outcome": outcome,
    }
    if held is not None:
        fields.update(rss_bytes=held.rss_bytes, pss_bytes=held.pss_bytes,
                      processes=held.processes, idle_seconds=held.idle_seconds)
    with contextlib.suppress(OSError, sqlite3.Error):
        state.add_policy_event(**fields)


@dataclass
class Reclaimed:
    """Policy sign-outs of one rule and user since some time, summed."""

    rule: str
    user: str
    signouts: int = 0
    incomplete: int = 0  # sign-outs that left processes behind
    rss_bytes: int = 0
    pss_bytes: int | None = None
    processes: int = 0
    idle_seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "user": self.user, "signouts": self.signouts,
                "incomplete": self.incomplete, "rss_bytes": self.rss_bytes,
                "pss_bytes": self.pss_bytes, "processes": self.processes,
                "idle_seconds": round(self.idle_seconds, 1)}


def report(since: float = 0.0) -> list[Reclaimed]:
    """Policy sign-outs since ``since`` (epoch seconds) summed per (rule, user), largest
    reclaimed RSS first."""
    sums: dict[tuple[str, str], Reclaimed] = {}
    for e in state.policy_events(since, event="signout"):
        key = (str(e["rule"]), str(e["user"]))
        r = sums.setdefault(key, Reclaimed(*key))
        r.signouts += 1
        r.incomplete += e["outcome"] != "logged-off"
        r.rss_bytes += jsonvalues.whole(e, "rss_bytes") or 0
        r.processes += jsonvalues.whole(e, "processes") or 0
        r.idle_seconds += jsonvalues.number(e, "idle_seconds") or 0.0
        pss = jsonvalues.whole(e, "pss_bytes")
        if pss is not None:
            r.pss_bytes = (r.pss_bytes or 0) + pss
    return sorted(sums.values(), key=lambda r: (-r.rss_bytes, r.rule, r.user))
