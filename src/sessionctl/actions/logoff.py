"""Signing a session out, on every platform: checks, the backend's way, the audit record.

On Linux the shared sequence in actions/signout.py does the work (hangup, grace,
terminate, race-free kill, settle); a backend with a sign-out of its own (Windows:
WTSLogoffSession) does it there, and what is left is read back either way. Nothing is
done before the target, the caller's rights and the console rule have been checked.
Whatever is still running at the end makes the outcome ``incomplete``, each process with
its owner and the reason (``LogoffResult.left``). The calling process is never signalled
and keeps its signal dispositions, from any thread (see actions/signout.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api import find_session
from ..backends import get_backend
from ..backends.base import Backend
from ..errors import AccessDenied, InvalidArgument
from ..host import ADMIN_WORD, Caller
from ..model import Session
from . import audit
from .reports import Leftover, Step, about

if TYPE_CHECKING:
    from .desktop_logout import DesktopLogoff
    from .signout import SignedOut

DEFAULT_GRACE = 10.0
MAX_GRACE = 3600.0


@dataclass
@dataclass
class LogoffResult:
    """What a logoff did."""

    session: Session
    outcome: str  # "logged-off", "incomplete"
    steps: list[Step] = field(default_factory=list)
    remaining: list[int] = field(default_factory=list)
    not_permitted: list[int] = field(default_factory=list)
    left: list[Leftover] = field(default_factory=list)
    record_closed: bool = False
    seconds: float = 0.0
    audit_path: str | None = None
    desktop: DesktopLogoff | None = None  # the session manager's part (desktops only)

    @property
    def ok(self) -> bool:
        return self.outcome == "logged-off"

    @classmethod
    def from_dict(cls, session: Session, data: dict[str, Any]) -> LogoffResult:
        """The result ``to_dict`` (+ ``audit_path``) gave, read back (the own-session
        helper's answer)."""
        from .desktop_logout import DesktopLogoff

        return cls(
            session=session,
            outcome=data["outcome"],
            steps=[Step(**s) for s in data["steps"]],
            remaining=data["remaining"],
            not_permitted=data["not_permitted"],
            left=[Leftover(**x) for x in data["left"]],
            record_closed=data["record_closed"],
            seconds=data["seconds"],
            audit_path=data.get("audit_path"),
            desktop=DesktopLogoff.from_dict(data["desktop"]) if "desktop" in data else None,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            **about(self.session),
            "outcome": self.outcome,
            "steps": [asdict(s) for s in self.steps],
            "remaining": self.remaining,
            "not_permitted": self.not_permitted,
            "left": [asdict(x) for x in self.left],
            "record_closed": self.record_closed,
            "seconds": round(self.seconds, 3),
            **({"desktop": self.desktop.to_dict()} if self.desktop else {}),
        }


def check_permission(session: Session, caller: Caller, action: str = "log off") -> None:
    """Root (an administrator on Windows) may log off (or ``action``) any session; others
    only their own."""
    if not caller.admin and not caller.owns(session):
        raise AccessDenied(
            f"Access is denied: session {session.id} belongs to {session.user}; "
            f"only {ADMIN_WORD} may {action} other users' sessions"
        )


def resolve(
    target: str | None, backend: Backend | str | None, caller_uid: int | None
) -> tuple[Backend, Caller, Session, dict[str, object]]:
    """The backend, the caller, the session ``target`` names (NoSuchSession if none) and
    the audit fields that say who acts on what: the start of every session action."""
    be = get_backend(backend)
    caller = be.caller(caller_uid)
    session = find_session(target, backend=be)
    base: dict[str, object] = {
        "caller_uid": caller.uid,
        "caller": caller.name,
        "target": target,
        "session": session.id,
        "session_user": session.user,
        "session_name": session.name,
        "backend": be.name,
    }
    return be, caller, session, base


def logoff(
    target: str | None = None,
    *,
    grace: float = DEFAULT_GRACE,
    backend: Backend | str | None = None,
    allow_console: bool = False,
    audit_log: str | Path | None = None,
    caller_uid: int | None = None,
    progress: Callable[[Step], None] | None = None,
) -> LogoffResult:
    """Sign out the session ``target`` (id or active session name; None: our own).

    Raises NoSuchSession, AccessDenied or InvalidArgument before signalling anything,
    NotSupported where the system cannot sign sessions out (a stubbed WTSLogoffSession).
    ``grace`` applies to the Linux sequence (Windows' own logoff has none to give).
    The outcome is ``incomplete`` (``left``: PID, owner, reason) when processes of the
    session are still running at the end, e.g. another user's that the caller may not
    signal. Works from any thread; the calling process is never signalled and its signal
    dispositions are the same afterwards. ``progress`` is called with each stage as it
    ends; if it raises, it is not called again.
    """
    if not 0 <= grace <= MAX_GRACE:  # also refuses NaN
        raise InvalidArgument(f"grace must be between 0 and {MAX_GRACE:g} seconds, not {grace}")
    audit.check_path(audit_log)
    be, caller, session, base = resolve(target, backend, caller_uid)
    try:
        check_permission(session, caller)
        if session.console and not allow_console:
            raise AccessDenied(
                f"session {session.id} ({session.name}) is the console session: "
                "it is not logged off without --allow-console"
            )
    except AccessDenied as exc:
        _audit(audit_log, {**base, "outcome": "refused", "reason": str(exc)})
        raise
    started_at = datetime.now().astimezone()
    t0 = time.monotonic()
    native = be.sign_out(session)
    if native is not None:
        steps = [Step("logoff", native.call, native.processes, len(native.remaining),
                      native.seconds, native.detail)]
        if progress:
            with contextlib.suppress(Exception):  # a failing report stops nothing
                progress(steps[0])
        known = {r.pid: r for r in session.processes}  # as the listing before showed them
        left = [Leftover(pid, known[pid].comm if pid in known else "", -1, "?",
                         f"still running after {native.call}") for pid in native.remaining]
        return finish(be, session, base, audit_log, started_at, t0, steps, native.processes,
                      left, [])
    from . import signout  # the Linux sequence

    if session.current and not signout.can_shield():
        reply = signout.in_helper(session, be.name, grace, audit_log, progress, base)
        return LogoffResult.from_dict(session, reply)
    with signout.shielded() if session.current else contextlib.nullcontext():
        return finish_linux(be, session, base, audit_log,
                            signout.carry_out(be, session, grace, progress))


def finish_linux(be: Backend, session: Session, base: dict[str, object],
                 audit_log: str | Path | None, done: SignedOut) -> LogoffResult:
    """``finish`` after the Linux sequence (actions/signout.py)."""
    return finish(be, session, base, audit_log, done.started_at, done.t0, done.steps,
                  done.processes_at_start, done.left, done.not_permitted, done.desktop)


def finish(
    be: Backend,
    session: Session,
    base: dict[str, object],
    audit_log: str | Path | None,
    started_at: datetime,
    t0: float,
    steps: list[Step],
    processes_at_start: int,
    left: list[Leftover],
    not_permitted: list[int],
    desktop: DesktopLogoff | None = None,
) -> LogoffResult:
    """After the sign-out: close the login record if its process did not, the result, the
    audit record. ``desktop``: what a desktop's session manager did first, if asked."""
    closed = be.close_login(session)
    result = LogoffResult(
        session=session,
        outcome="logged-off" if not left else "incomplete",
        steps=steps,
        remaining=[x.pid for x in left],
        not_permitted=not_permitted,
        left=left,
        record_closed=closed,
        seconds=time.monotonic() - t0,
        desktop=desktop,
    )
    result.audit_path = _audit(
        audit_log,
        {
            **base,
            "started": started_at.isoformat(),
            "own_session": session.current,
            "processes": processes_at_start,
            **result.to_dict(),
        },
    )
    return result


def _audit(path: str | Path | None, fields: dict[str, object]) -> str | None:
    try:
        return str(audit.record("logoff", fields, path))
    except OSError:
        return None
