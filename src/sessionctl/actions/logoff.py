"""Signing a session out: one sequence for every backend.

1. SIGHUP + SIGCONT to every process (the terminal hangs up: editors save, shells
   write history); 2. wait up to the grace period; 3. SIGTERM + SIGCONT, a short
   wait; 4. SIGKILL, race-free: the session's own cgroup's ``cgroup.kill`` where it
   has one, else stop every process (SIGSTOP), rescan, repeat until the set is
   closed, kill it, and repeat until the session is empty; 5. close the login record.

Only processes that belong to the session (audit session id, or its cgroup) are
signalled, each through a pidfd checked against its start time.
"""

from __future__ import annotations

import os
import pwd
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from ..api import find_session
from ..backends import get_backend
from ..backends.base import Backend
from ..errors import AccessDenied, InvalidArgument
from ..linux import cgroup, signals
from ..linux.signals import Sent
from ..model import ProcessRef, Session
from . import audit

DEFAULT_GRACE = 10.0
TERM_WAIT = 0.3
POLL = 0.02
RESCAN = 0.1
KILL_ROUNDS = 50


@dataclass
class Step:
    """One stage of the sign-out sequence, for /v and the audit log."""

    name: str
    signal: str
    signalled: int
    remaining: int
    seconds: float
    detail: str = ""


@dataclass
class LogoffResult:
    """What a logoff did."""

    session: Session
    outcome: str  # "logged-off", "incomplete"
    steps: list[Step] = field(default_factory=list)
    remaining: list[int] = field(default_factory=list)
    not_permitted: list[int] = field(default_factory=list)
    record_closed: bool = False
    seconds: float = 0.0
    audit_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "logged-off"

    def to_dict(self) -> dict[str, object]:
        return {
            "session": self.session.id,
            "user": self.session.user,
            "name": self.session.name,
            "outcome": self.outcome,
            "steps": [asdict(s) for s in self.steps],
            "remaining": self.remaining,
            "not_permitted": self.not_permitted,
            "record_closed": self.record_closed,
            "seconds": round(self.seconds, 3),
        }


def check_permission(session: Session, caller_uid: int) -> None:
    """Root may log off any session; everyone else only their own."""
    if caller_uid != 0 and session.uid != caller_uid:
        raise AccessDenied(
            f"Access is denied: session {session.id} belongs to {session.user}; "
            "only root may log off other users' sessions"
        )


class _Run:
    """The state of one sign-out in progress."""

    def __init__(
        self,
        backend: Backend,
        session: Session,
        grace: float,
        progress: Callable[[Step], None] | None,
    ) -> None:
        self.backend = backend
        self.session = session
        self.grace = grace
        self.progress = progress
        self.me = os.getpid()
        self.known: dict[tuple[int, int], ProcessRef] = {}
        self.denied: set[int] = set()
        self.steps: list[Step] = []

    # -- membership --------------------------------------------------------------------

    def members(self) -> list[ProcessRef]:
        """Live processes of the session now, minus ourselves (a logoff of our own session)."""
        fresh = {(r.pid, r.start_ticks): r for r in self.backend.members(self.session)}
        for key, ref in list(self.known.items()):
            if key not in fresh and signals.same_process(ref):
                fresh[key] = ref  # no-audit sessions: keep what we found before
        live = {k: r for k, r in fresh.items() if r.pid != self.me and r.state not in "ZX"}
        self.known.update(live)
        return list(live.values())

    def still_member(self, pid: int) -> bool:
        """Checked after the pidfd pins the process: it is (still) in the session."""
        member = self.backend.is_member(self.session, pid)
        if member is None:
            return any(r.pid == pid for r in self.known.values())
        return member

    def _send(self, refs: list[ProcessRef], sigs: tuple[int, ...]) -> int:
        sent = 0
        for ref in refs:
            for sig in sigs:
                outcome = signals.send(ref, sig, self.still_member)
                if outcome is Sent.DENIED:
                    self.denied.add(ref.pid)
                    break
                if outcome is Sent.GONE:
                    break
            else:
                sent += 1
        return sent

    def _step(self, name: str, sig: str, signalled: int, started: float, detail: str = "") -> None:
        left = [r for r in self.members() if r.pid not in self.denied]
        step = Step(name, sig, signalled, len(left), time.monotonic() - started, detail)
        self.steps.append(step)
        if self.progress:
            self.progress(step)

    # -- stages ------------------------------------------------------------------------

    def signal_and_wait(self, name: str, sigs: tuple[int, ...], wait: float,
                        via_backend: Callable[[Session], bool] | None = None) -> None:
        """Send ``sigs`` to every member, then to newcomers, until empty or ``wait`` ends.

        ``via_backend`` may deliver the first round (logind's KillSession/TerminateSession);
        if it declines, we send through pidfds ourselves.
        """
        started = time.monotonic()
        told: set[tuple[int, int]] = set()
        signalled = 0
        deadline = started + wait
        detail = ""
        first = self.members()
        if via_backend is not None and via_backend(self.session):
            told.update((r.pid, r.start_ticks) for r in first)
            signalled = len(first)
            detail = f"via {self.backend.name}"
        while True:
            current = self.members()
            new = [r for r in current if (r.pid, r.start_ticks) not in told]
            signalled += self._send(new, sigs)
            told.update((r.pid, r.start_ticks) for r in new)
            if all(r.pid in self.denied for r in current) or time.monotonic() >= deadline:
                break
            self._sleep_until_gone(current, min(deadline, time.monotonic() + RESCAN))
        label = "+".join(signal.Signals(s).name for s in sigs)
        self._step(name, label, signalled, started, detail)

    def _sleep_until_gone(self, refs: list[ProcessRef], until: float) -> None:
        while time.monotonic() < until:
            if not any(signals.same_process(r) for r in refs if r.pid not in self.denied):
                return
            time.sleep(POLL)

    def kill(self) -> None:
        """SIGKILL every member: by cgroup.kill where the session owns a cgroup, else frozen."""
        started = time.monotonic()
        current = [r for r in self.members() if r.pid not in self.denied]
        if not current:
            self._step("kill", "SIGKILL", 0, started)
            return
        directory = self.backend.cgroup_dir(self.session) or cgroup.exclusive_cgroup(
            {r.pid for r in current}
        )
        signalled = 0
        detail = ""
        if directory is not None and os.geteuid() == 0:
            try:
                cgroup.kill(directory)
                signalled = len(current)
                detail = f"cgroup.kill {directory}"
            except OSError as exc:
                detail = f"cgroup.kill failed ({exc.strerror}); stopped and killed instead"
        for _ in range(KILL_ROUNDS):
            current = [r for r in self.members() if r.pid not in self.denied]
            if not current:
                break
            frozen = self._freeze(current)
            signalled += self._send(frozen, (signal.SIGKILL,))
            self._sleep_until_gone(frozen, time.monotonic() + 0.5)
            detail = detail or "SIGSTOP, rescan until closed, SIGKILL"
        self._step("kill", "SIGKILL", signalled, started, detail)

    def _freeze(self, current: list[ProcessRef]) -> list[ProcessRef]:
        """SIGSTOP the set and every process it forks until a rescan finds nothing new."""
        stopped: dict[tuple[int, int], ProcessRef] = {}
        for _ in range(1000):
            new = [r for r in current if (r.pid, r.start_ticks) not in stopped]
            new = [r for r in new if r.pid not in self.denied]
            if not new:
                waiting = [r for r in stopped.values() if not signals.is_stopped(r)]
                if not waiting:
                    break
                time.sleep(0.001)
            self._send(new, (signal.SIGSTOP,))
            stopped.update(((r.pid, r.start_ticks), r) for r in new)
            current = self.members()
        return list(stopped.values())


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

    Raises NoSuchSession, AccessDenied or InvalidArgument before signalling anything.
    """
    if grace < 0 or grace != grace or grace > 3600:
        raise InvalidArgument(f"grace must be between 0 and 3600 seconds, not {grace}")
    be = backend if isinstance(backend, Backend) else get_backend(backend)
    caller = os.getuid() if caller_uid is None else caller_uid
    session = find_session(target, backend=be)
    base = {
        "caller_uid": caller,
        "caller": _name(caller),
        "target": target,
        "session": session.id,
        "session_user": session.user,
        "session_name": session.name,
        "backend": be.name,
    }
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
    own = session.current
    if own:
        for sig in (
            signal.SIGHUP,
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGPIPE,
            signal.SIGTTOU,
            signal.SIGTTIN,
        ):
            signal.signal(sig, signal.SIG_IGN)
    started_at = datetime.now().astimezone()
    t0 = time.monotonic()
    run = _Run(be, session, grace, progress)
    processes_at_start = len(run.members())
    if not be.hangup(session):
        run.signal_and_wait("hangup", (signal.SIGHUP, signal.SIGCONT), grace)
    else:
        run._step("hangup", "SIGHUP (backend)", processes_at_start, t0)
        run._sleep_until_gone(run.members(), t0 + grace)
    if run.members():
        run.signal_and_wait(
            "terminate", (signal.SIGTERM, signal.SIGCONT), TERM_WAIT if grace > 0 else 0.0
        )
    run.kill()
    closed = be.close_login(session)
    remaining = sorted(r.pid for r in run.members())
    result = LogoffResult(
        session=session,
        outcome="logged-off" if not remaining else "incomplete",
        steps=run.steps,
        remaining=remaining,
        not_permitted=sorted(run.denied & set(remaining)),
        record_closed=closed,
        seconds=time.monotonic() - t0,
    )
    result.audit_path = _audit(
        audit_log,
        {
            **base,
            "started": started_at.isoformat(),
            "own_session": own,
            "processes": processes_at_start,
            **result.to_dict(),
        },
    )
    return result


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _audit(path: str | Path | None, fields: dict[str, object]) -> str | None:
    try:
        return str(audit.record("logoff", fields, path))
    except OSError:
        return None
