"""Ending one process of a login session (Task Manager's "End task"), race-free.

The process must belong to a session the caller may act on (root: any; others: their
own). It is pinned by a pidfd checked against its start time and its session, then
gets SIGTERM (SIGCONT if stopped), up to ``grace`` seconds, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..backends import Backend, get_backend
from ..errors import InvalidArgument, NoSuchSession
from ..linux import signals
from ..linux.signals import Sent
from ..model import ProcessRef, Session
from . import audit
from .logoff import check_permission

DEFAULT_GRACE = 3.0
MAX_GRACE = 600.0


@dataclass
class EndResult:
    """What end_process did."""

    pid: int
    comm: str
    session_id: str
    user: str
    # "ended" (exited after SIGTERM), "killed", "gone", "still-running", "not-permitted"
    outcome: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome in ("ended", "killed", "gone")

    def to_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "comm": self.comm,
            "session": self.session_id,
            "user": self.user,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
        }


def _locate(
    found: list[Session], pid: int, start_ticks: int | None, session_id: str | None
) -> tuple[Session, ProcessRef]:
    for s in found:
        if session_id is not None and s.id != session_id:
            continue
        for ref in s.processes:
            if ref.pid == pid:
                if start_ticks is not None and ref.start_ticks != start_ticks:
                    raise NoSuchSession(f"process {pid} has exited (the PID is reused)")
                return s, ref
    where = f"session {session_id}" if session_id is not None else "any login session"
    raise NoSuchSession(f"process {pid} is not in {where}")


def end_process(
    pid: int,
    *,
    start_ticks: int | None = None,
    session_id: str | None = None,
    grace: float = DEFAULT_GRACE,
    backend: Backend | str | None = None,
    caller_uid: int | None = None,
    audit_log: str | Path | None = None,
) -> EndResult:
    """End process ``pid`` of a login session: SIGTERM, up to ``grace`` s, SIGKILL.

    ``start_ticks`` and ``session_id`` (as a listing showed them) make sure the PID
    still names that process in that session. Raises NoSuchSession, AccessDenied or
    InvalidArgument before anything is signalled.
    """
    if not 0 <= grace <= MAX_GRACE:
        raise InvalidArgument(f"grace must be between 0 and {MAX_GRACE:g} seconds, not {grace}")
    if pid == os.getpid():
        raise InvalidArgument("will not end sessionctl's own process")
    audit.check_path(audit_log)
    be = get_backend(backend)
    caller = os.getuid() if caller_uid is None else caller_uid
    session, ref = _locate(be.sessions(), pid, start_ticks, session_id)
    base = {"caller_uid": caller, "pid": pid, "comm": ref.comm, "session": session.id,
            "session_user": session.user, "backend": be.name}
    try:
        check_permission(session, be.caller(caller))
    except Exception as exc:
        _audit(audit_log, {**base, "outcome": "refused", "reason": str(exc)})
        raise

    def still_member(p: int) -> bool:
        member = be.is_member(session, p)
        return p == ref.pid if member is None else member

    t0 = time.monotonic()
    pins = signals.Pins(still_member)
    try:
        outcome = "gone"
        if pins.send(ref, signal.SIGTERM) is Sent.SENT:
            if ref.state in "Tt":
                pins.send(ref, signal.SIGCONT)
            outcome = "ended"
            if not pins.wait_exit([ref], time.monotonic() + grace):
                pins.send(ref, signal.SIGKILL)
                outcome = "killed"
                if not pins.wait_exit([ref], time.monotonic() + 2.0):
                    outcome = "still-running"
        elif ref.pid in pins.denied:
            outcome = "not-permitted"  # e.g. a setuid program run inside the session
    finally:
        pins.close()
    result = EndResult(pid, ref.comm, session.id, session.user, outcome, time.monotonic() - t0)
    _audit(audit_log, {**base, **result.to_dict()})
    return result


def _audit(path: str | Path | None, fields: dict[str, object]) -> None:
    with contextlib.suppress(OSError):
        audit.record("end-process", fields, path)
