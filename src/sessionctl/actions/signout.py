"""The Linux sign-out sequence (procfs and logind backends); imported only on Linux.

1. SIGHUP + SIGCONT to every process (the terminal hangs up: editors save, shells
   write history); 2. wait up to the grace period; 3. SIGTERM + SIGCONT, a short
   wait; 4. SIGKILL, race-free: the session's own cgroup's ``cgroup.kill`` where it
   has one, else stop every process (SIGSTOP), rescan, repeat until the set is
   closed, kill it, and repeat until the session is empty. Closing the login record and
   the audit record are actions/logoff.py's.

Only processes that belong to the session (audit session id, or its cgroup) are
signalled, each through a pidfd checked against its start time.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..backends.base import Backend
from ..linux import cgroup, proc, signals
from ..linux.signals import Key, Sent, key
from ..model import ProcessRef, Session
from . import desktop_logout
from .desktop_logout import DesktopLogoff
from .reports import Step

TERM_WAIT = 0.3
POLL = 0.02
RESCAN = 0.1
KILL_ROUNDS = 50
FREEZE_ROUNDS = 1000

#: signals a logoff of our own session ignores so that it can finish
OWN_SESSION_IGNORES = ("SIGHUP", "SIGTERM", "SIGINT", "SIGPIPE", "SIGTTOU", "SIGTTIN")


@dataclass
class Sequence:
    """What the sequence did: its steps, how many processes it started with, what is left."""

    steps: list[Step] = field(default_factory=list)
    processes_at_start: int = 0
    remaining: list[int] = field(default_factory=list)
    not_permitted: list[int] = field(default_factory=list)
    desktop: DesktopLogoff | None = None  # a desktop's session manager part, if any


def _bit(sig: int) -> int:
    return 1 << (sig - 1)


class SignOutRun:
    """The state of one sign-out in progress."""

    def __init__(
        self, backend: Backend, session: Session, progress: Callable[[Step], None] | None
    ) -> None:
        self.backend = backend
        self.session = session
        self.progress = progress
        self.me = os.getpid()
        self.by_pid: dict[int, ProcessRef] = {}
        self.termed: set[Key] = set()
        self.cache: dict[int, bool] = {}  # PID → member?, as earlier looks found
        self.last: list[ProcessRef] = []
        self.emptied = False  # a thorough look found the session empty
        # without an audit id or cgroup, membership is by process tree and tty
        self.by_tree = backend.is_member(session, self.me) is None
        self.ignores: dict[Key, int] = {}
        self.pins = signals.Pins(self.still_member)
        self.steps: list[Step] = []

    # -- membership --------------------------------------------------------------------

    def members(self, thorough: bool = False) -> list[ProcessRef]:
        """Live processes of the session now, minus ourselves (a logoff of our own session).

        A PID whose pinned process has not exited is that same process, so its /proc entry
        is not read again, and PIDs found outside the session a moment ago are not either
        (a PID is not reused within seconds); ``thorough`` looks at everything afresh and
        is what decides that the session is empty.
        """
        self.pins.refresh()
        pids = self.backend.member_pids(self.session, None if thorough else self.cache)
        pids.discard(self.me)
        live: dict[Key, ProcessRef] = {}
        fresh = []
        for pid in pids:
            ref = self.by_pid.get(pid)
            if ref is not None and key(ref) in self.pins.fds:
                if self.pins.alive(ref):
                    live[key(ref)] = ref
                    continue
                if not thorough:
                    continue  # its pinned process died: a zombie, until a thorough look
            fresh.append(pid)
        for ref in proc.live_refs(fresh, with_uid=False):
            live[key(ref)] = ref
            self.by_pid[ref.pid] = ref
        if self.by_tree:
            # no-audit sessions: membership is by tree and tty, so keep what we found
            for ref in self.by_pid.values():
                if ref.pid not in pids and ref.pid != self.me and self.pins.alive(ref):
                    live[key(ref)] = ref
        self.last = [r for r in live.values() if r.pid not in self.pins.denied]
        return list(live.values())

    def targets(self, thorough: bool = False) -> list[ProcessRef]:
        """Members we are allowed to signal."""
        self.members(thorough)
        return self.last

    def left(self) -> int:
        """How many of the last look's targets are still alive (no new look)."""
        self.pins.refresh()
        return sum(1 for r in self.last if self.pins.alive(r))

    def still_member(self, pid: int) -> bool:
        """Checked after the pidfd pins the process: it is (still) in the session."""
        member = self.backend.is_member(self.session, pid)
        return pid in self.by_pid if member is None else member

    def ignored(self, ref: ProcessRef) -> int:
        """The signals ``ref`` ignores (read once per process)."""
        k = key(ref)
        if k not in self.ignores:
            self.ignores[k] = proc.ignored_signals(ref.pid)
        return self.ignores[k]

    def deaf_to(self, ref: ProcessRef, sigs: tuple[int, ...]) -> bool:
        """True if the process ignores every one of ``sigs``: waiting gains nothing."""
        mask = self.ignored(ref)
        return all(mask & _bit(s) for s in sigs)

    def _send(self, refs: list[ProcessRef], sigs: tuple[int, ...]) -> int:
        """Send each of ``sigs`` in turn; SIGCONT only to processes seen stopped."""
        sent = 0
        for ref in refs:
            outcome = Sent.SENT
            for sig in sigs:
                if sig == signal.SIGCONT and ref.state not in "Tt":
                    continue
                outcome = self.pins.send(ref, sig)
                if outcome is not Sent.SENT:
                    break
            sent += outcome is Sent.SENT
        return sent

    def _step(self, name: str, sig: str, signalled: int, started: float, detail: str = "") -> None:
        step = Step(name, sig, signalled, self.left(), time.monotonic() - started, detail)
        self.steps.append(step)
        if self.progress:
            self.progress(step)

    # -- stages ------------------------------------------------------------------------

    def signal_and_wait(
        self,
        name: str,
        sigs: tuple[int, ...],
        wait: float,
        via_backend: Callable[[Session], bool] | None = None,
        deaf: tuple[int, ...] = (),
    ) -> None:
        """Send ``sigs`` to every member, then to newcomers, until empty or ``wait`` ends.

        ``via_backend`` may deliver the first round (logind's KillSession/TerminateSession);
        if it declines, we send through pidfds ourselves. The wait ends early once every
        process left ignores all of ``deaf``. In the hangup stage a process that ignores
        SIGHUP gets SIGTERM at once, so it spends the grace on a signal it can hear; a
        process that ignores both still gets the whole grace.
        """
        started = time.monotonic()
        deadline = started + wait
        told: set[Key] = set()
        signalled = early_term = 0
        detail = ""
        if via_backend is not None:
            first = self.targets()
            if via_backend(self.session):
                told.update(key(r) for r in first)
                signalled = len(first)
                detail = f"via {self.backend.name}"
                if sigs[0] == signal.SIGHUP:
                    early_term += self._term_if_deaf_to_hup(first)
        while True:
            current = self.targets()
            new = [r for r in current if key(r) not in told]
            told.update(key(r) for r in new)
            if sigs[0] == signal.SIGTERM:  # no second SIGTERM, none to those that ignore it
                new = [
                    r
                    for r in new
                    if key(r) not in self.termed and not self.deaf_to(r, (signal.SIGTERM,))
                ]
                self.termed.update(key(r) for r in new)
            signalled += self._send(new, sigs)
            if sigs[0] == signal.SIGHUP:
                early_term += self._term_if_deaf_to_hup(new)
            if not current or time.monotonic() >= deadline:
                break
            if deaf and all(self.deaf_to(r, deaf) for r in current):
                break  # nothing left can hear what we sent: waiting gains nothing
            self.pins.wait_exit(current, min(deadline, time.monotonic() + RESCAN))
        if early_term:
            detail = ", ".join(filter(None, [detail, f"{early_term} ignoring it got SIGTERM"]))
        label = "+".join(signal.Signals(s).name for s in sigs)
        self._step(name, label, signalled, started, detail)

    def _term_if_deaf_to_hup(self, refs: list[ProcessRef]) -> int:
        """SIGTERM now to those that ignore SIGHUP (nohup): the grace is theirs to use."""
        deaf = [r for r in refs if self.deaf_to(r, (signal.SIGHUP,))]
        self.termed.update(key(r) for r in deaf)
        return self._send(deaf, (signal.SIGTERM, signal.SIGCONT))

    def kill(self) -> None:
        """SIGKILL every member: by cgroup.kill where the session owns a cgroup, else frozen."""
        started = time.monotonic()
        current = self.targets()
        signalled = 0
        detail = ""
        if current:
            directory = self.backend.cgroup_dir(self.session) or cgroup.exclusive_cgroup(
                {r.pid for r in current}
            )
            # never the cgroup we run in ourselves (a logoff of our own session)
            if directory is not None and os.geteuid() == 0 and self.me not in cgroup.procs(
                directory
            ):
                try:
                    cgroup.kill(directory)
                    signalled = len(current)
                    detail = f"cgroup.kill {directory}"
                except OSError as exc:
                    detail = f"cgroup.kill failed ({exc.strerror}); "
        for _ in range(KILL_ROUNDS):
            current = self.targets() or self.targets(thorough=True)
            if not current:
                self.emptied = True
                break
            frozen = self._freeze(current)
            signalled += self._send(frozen, (signal.SIGKILL,))
            self.pins.wait_exit(frozen, time.monotonic() + 0.5)
            if "SIGSTOP" not in detail:
                detail += "SIGSTOP, rescan until closed, SIGKILL"
        self._step("kill", "SIGKILL", signalled, started, detail)

    def _freeze(self, current: list[ProcessRef]) -> list[ProcessRef]:
        """SIGSTOP the set and every process it forks until a rescan finds nothing new."""
        stopped: dict[Key, ProcessRef] = {}
        for _ in range(FREEZE_ROUNDS):
            new = [r for r in current if key(r) not in stopped and r.pid not in self.pins.denied]
            if not new:
                if all(signals.is_stopped(r) for r in stopped.values()):
                    break  # nothing can fork any more: the set is closed
                time.sleep(0.001)
            self._send(new, (signal.SIGSTOP,))
            stopped.update((key(r), r) for r in new)
            current = self.targets()
        return list(stopped.values())


def ignore_own_hangup() -> None:
    """Ignore hangup and termination signals in this process (a logoff of our own
    session must be able to finish)."""
    for name in OWN_SESSION_IGNORES:
        signal.signal(getattr(signal, name), signal.SIG_IGN)


def sign_out(
    backend: Backend,
    session: Session,
    grace: float,
    progress: Callable[[Step], None] | None = None,
) -> Sequence:
    """Hang up, terminate and kill every process of ``session``; what is left, if any."""
    signals.raise_fd_limit()
    run = SignOutRun(backend, session, progress)
    graceful = desktop_logout.Graceful(run, grace) if desktop_logout.applies(session) else None
    out = Sequence(desktop=graceful.report if graceful else None)
    try:
        out.processes_at_start = len(run.members())
        hangup_grace = graceful.ask() if graceful else grace  # the session manager first
        run.signal_and_wait("hangup", (signal.SIGHUP, signal.SIGCONT), hangup_grace,
                            backend.hangup)
        if run.targets():
            run.signal_and_wait(
                "terminate",
                (signal.SIGTERM, signal.SIGCONT),
                TERM_WAIT if grace > 0 else 0.0,
                backend.terminate,
                deaf=(signal.SIGTERM,),
            )
        run.kill()
        out.remaining = [] if run.emptied else sorted(r.pid for r in run.members(thorough=True))
    finally:
        run.pins.close()
    out.steps = run.steps
    out.not_permitted = sorted(run.pins.denied & set(out.remaining))
    return out
