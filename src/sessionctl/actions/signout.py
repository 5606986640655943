"""The Linux sign-out sequence (procfs and logind backends); imported only on Linux.

0. **desktop** (graphical sessions only): the session manager is asked to log out and
   the session gets the grace to empty by itself (actions/desktop_logout.py); the
   hangup stage gets what is left of it;
1. **hangup**: each process's signal dispositions are noted, then SIGHUP (+SIGCONT to
   stopped ones) to every process (the terminal hangs up: editors save, shells write
   history); whoever ignored SIGHUP (but not SIGTERM) before the hangup gets SIGTERM at
   once; the stage lasts up to the grace period, less if the session empties or nobody
   left could save (every process left ignored both SIGHUP and SIGTERM before the
   hangup);
2. **terminate**: SIGTERM (+SIGCONT) to the rest that can hear it, a short wait;
3. **kill**: SIGKILL, race-free: the session's own cgroup's ``cgroup.kill`` where it has
   one, else stop every process (SIGSTOP), rescan, repeat until the set is closed, kill
   it, and repeat until the session is empty;
4. **settle**: processes we may not signal (another user's, e.g. a root process started
   through sudo) get a moment to end by themselves; those still there are ``left``,
   each with its owner and the reason.
Closing the login record and the audit record are actions/logoff.py's (``finish``): this
module returns what happened (``SignedOut``) and never imports logoff.py.

Only processes that belong to the session (audit session id, or its cgroup) are
signalled, each through a pidfd (one per thread group) checked against its start time.
A process is alive while any of its threads is (a leader thread that exited shows ``Z``).
The calling process is never signalled; when it belongs to the session itself, it
ignores the signals the sign-out brings it while the sequence runs and gets its own
dispositions back afterwards (``shielded``), or, where it cannot (off the main thread),
the sequence runs in a helper process (actions/own_signout.py) that protects itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .. import errors
from ..backends.base import Backend
from ..errors import SessionctlError
from ..linux import cgroup, proc, signals
from ..linux.accounts import user_name
from ..linux.signals import Key, Sent, key
from ..model import ProcessRef, Session
from . import desktop_logout
from .reports import Leftover, Step

TERM_WAIT = 0.3
SETTLE = 2.0  # how long processes we may not signal get to end by themselves
POLL = 0.02
RESCAN = 0.1
KILL_ROUNDS = 50
FREEZE_ROUNDS = 1000
CHASE_ROUNDS = 200  # looks at the PIDs handed out while we looked, until none is a member

# What a sign-out of our own session can bring us: the terminal's hangup (SIGHUP, also
# passed on by the shell), logind's SIGTERM, keys typed at the dying terminal, and
# SIGPIPE/SIGTTOU/SIGTTIN from a terminal or pipe that went away.
SHIELD = (
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTSTP,
    signal.SIGPIPE,
    signal.SIGTTOU,
    signal.SIGTTIN,
)
_NO_DISPOSITIONS = proc.Dispositions()


class SignOutRun:
    """The state of one sign-out in progress."""

    def __init__(
        self,
        backend: Backend,
        session: Session,
        progress: Callable[[Step], None] | None,
        spare: set[Key] | None = None,
    ) -> None:
        self.backend = backend
        self.session = session
        self.progress = progress
        self.me = os.getpid()
        self.spare = spare or set()  # processes never signalled (the caller's, below us)
        self.by_pid: dict[int, ProcessRef] = {}
        self.termed: set[Key] = set()
        self.cache: dict[int, bool] = {}  # PID → member?, as earlier looks found
        self.last: list[ProcessRef] = []  # the last look's members we may signal
        self.seen: list[ProcessRef] = []  # the last look's members, all of them
        self.emptied = False  # a thorough look found the session empty
        # without an audit id or cgroup, membership is by process tree and tty
        self.by_tree = backend.is_member(session, self.me) is None
        # dispositions noted before our first signal to each process
        self.before: dict[Key, proc.Dispositions] = {}
        self.pins = signals.Pins(self.still_member)
        self.steps: list[Step] = []
        self.pid_max = proc.pid_max()
        # the last look saw members born during it that were gone already, or gave up
        # chasing them: something in the session forks and exits (a PID hopper)
        self.busy = False
        self.hopped: list[int] = []  # such members' PIDs, latest last
        self.freezing = False  # the kill stage: newcomers are stopped the moment they are seen

    # -- membership --------------------------------------------------------------------

    def members(self, thorough: bool = False) -> list[ProcessRef]:
        """Live processes of the session now, minus ourselves (and the processes spared).

        A PID whose pinned process has not exited is that same process, so its /proc entry
        is not read again, and PIDs found outside the session a moment ago are not either
        (a PID is not reused within seconds); ``thorough`` looks at everything afresh and
        is what decides that the session is empty.
        """
        self.pins.refresh()
        cursor = None if self.by_tree else proc.last_pid()
        pids = self.backend.member_pids(self.session, None if thorough else self.cache)
        born = self._born_during(cursor)
        pids |= born
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
        for k in self.spare:
            live.pop(k, None)
        gone = born - {r.pid for r in live.values()}
        if gone:
            self.busy = True
            self.hopped = sorted(gone)[-8:]
        self.seen = list(live.values())
        self.last = [r for r in self.seen if r.pid not in self.pins.denied]
        return self.seen

    def _born_during(self, cursor: int | None) -> set[int]:
        """Members among the PIDs handed out since ``cursor`` (read before a look).

        A look lists /proc once: a process that forks and exits faster than a look (a PID
        hopper) is gone when its entry is read, and its child came after the listing. Its
        child's PID is in this range, and so on: chased until a range holds no member (or
        ``busy`` says we gave up). Only where membership can be asked PID by PID.
        """
        found: set[int] = set()
        if cursor is None:
            return found
        for _ in range(CHASE_ROUNDS):
            now = proc.last_pid()
            if now is None or now == cursor:
                return found
            fresh = set()
            for pid in proc.pids_since(cursor, now, self.pid_max):
                if pid != self.me and self.backend.is_member(self.session, pid):
                    fresh.add(pid)
                    if self.freezing:  # stopped before it can fork again (a pending
                        self._stop_now(pid)  # SIGSTOP holds back a fork under way)
            cursor = now
            if not fresh:
                return found
            found |= fresh
        self.busy = True
        return found

    def _stop_now(self, pid: int) -> None:
        """SIGSTOP a member the moment a look finds it (pinned and checked as always)."""
        ref = proc.process_ref(pid, with_uid=False)
        if ref is not None and ref.state not in proc.DEAD and (pid, ref.start_ticks) not in \
                self.spare:
            self.by_pid[pid] = ref
            self.pins.send(ref, signal.SIGSTOP)

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

    # -- dispositions ------------------------------------------------------------------

    def note_dispositions(self, refs: list[ProcessRef]) -> None:
        """Note how each process treats signals, before we first signal any of them.

        Judged afterwards, a process busy saving in its own SIGHUP handler may look deaf
        (vim ignores further hangups while it preserves its swap file).
        """
        for ref in refs:
            k = key(ref)
            if k not in self.before:
                self.before[k] = proc.dispositions(ref.pid) or _NO_DISPOSITIONS

    def deaf_to(self, ref: ProcessRef, sigs: tuple[int, ...]) -> bool:
        """True if, before our first signal, the process could hear none of ``sigs``."""
        d = self.before.get(key(ref), _NO_DISPOSITIONS)
        return all(d.deaf_to(s) for s in sigs)

    # -- signalling --------------------------------------------------------------------

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
            try:
                self.progress(step)
            except Exception:  # a failing report must not stop a half-done sign-out
                self.progress = None

    # -- stages ------------------------------------------------------------------------

    def sign_out(self, grace: float, first: Callable[[], float] | None = None) -> None:
        """The stages in order (see the module docstring); each ends once nobody is left.

        ``first``: a step before the hangup (a desktop's session manager is asked to log
        out, actions/desktop_logout.py) that returns the grace left for the hangup.
        Dispositions are noted before it, so what it sets off is judged fairly. Called
        after a first look (``members``).
        """
        self.note_dispositions(self.last)  # the caller's first look's
        self.hangup(first() if first else grace)
        if self.targets():
            self.terminate(TERM_WAIT if grace > 0 else 0.0)
        self.kill()
        self.settle()

    def hangup(self, grace: float) -> None:
        """SIGHUP to every member; SIGTERM at once to those that ignored SIGHUP."""
        self.note_dispositions(self.last)  # the last look's, all before any signal
        self.signal_and_wait(
            "hangup",
            (signal.SIGHUP, signal.SIGCONT),
            grace,
            self.backend.hangup if not self.spare else None,
            deaf=(signal.SIGHUP, signal.SIGTERM),
        )

    def terminate(self, wait: float) -> None:
        """SIGTERM to what is left that can hear it; a short wait."""
        self.signal_and_wait(
            "terminate",
            (signal.SIGTERM, signal.SIGCONT),
            wait,
            self.backend.terminate if not self.spare else None,
            deaf=(signal.SIGTERM,),
        )

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
        if it declines, we send through pidfds ourselves (always, when processes are to be
        spared: logind would signal them too). The wait ends early once every
        process left was deaf (before our first signal) to all of ``deaf``: nobody left
        could save or exit on what we sent. In the hangup stage a process that ignored
        SIGHUP gets SIGTERM at once, so it spends the grace on a signal it can hear.
        """
        started = time.monotonic()
        deadline = started + wait
        told: set[Key] = set()
        signalled = early_term = 0
        detail = ""
        hangup = sigs[0] == signal.SIGHUP
        if via_backend is not None:
            first = self.targets()
            self.note_dispositions(first)
            if via_backend(self.session):
                told.update(key(r) for r in first)
                signalled = len(first)
                detail = f"via {self.backend.name}"
                if hangup:
                    early_term += self._term_if_deaf_to_hup(first)
        while True:
            current = self.targets()
            new = [r for r in current if key(r) not in told]
            told.update(key(r) for r in new)
            self.note_dispositions(new)
            if sigs[0] == signal.SIGTERM:  # no second SIGTERM, none to those that ignore it
                new = [
                    r
                    for r in new
                    if key(r) not in self.termed and not self.deaf_to(r, (signal.SIGTERM,))
                ]
                self.termed.update(key(r) for r in new)
            signalled += self._send(new, sigs)
            if hangup:
                early_term += self._term_if_deaf_to_hup(new)
            if not current or time.monotonic() >= deadline:
                break
            if deaf and all(self.deaf_to(r, deaf) for r in current):
                if hangup:
                    detail = ", ".join(filter(None, [detail, (
                        f"nobody left could save: all {len(current)} ignored SIGHUP and "
                        "SIGTERM before the hangup")]))
                break  # nothing left can hear what we sent: waiting gains nothing
            self.pins.wait_exit(current, min(deadline, time.monotonic() + RESCAN))
        if early_term:
            detail = ", ".join(filter(None, [detail, f"{early_term} ignoring it got SIGTERM"]))
        label = "+".join(signal.Signals(s).name for s in sigs)
        self._step(name, label, signalled, started, detail)

    def _term_if_deaf_to_hup(self, refs: list[ProcessRef]) -> int:
        """SIGTERM now to those that ignored SIGHUP but not SIGTERM (nohup): the grace is
        theirs to use."""
        deaf = [
            r
            for r in refs
            if self.deaf_to(r, (signal.SIGHUP,))
            and not self.deaf_to(r, (signal.SIGTERM,))
            and key(r) not in self.termed
        ]
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
            # never the cgroup we (or the processes we spare) run in
            if directory is not None and os.geteuid() == 0 and not (
                {self.me} | {pid for pid, _ in self.spare}
            ) & cgroup.procs(directory):
                try:
                    cgroup.kill(directory)
                    signalled = len(current)
                    detail = f"cgroup.kill {directory}"
                except OSError as exc:
                    detail = f"cgroup.kill failed ({exc.strerror}); "
        self.freezing = True
        for _ in range(KILL_ROUNDS):
            self.busy = False
            current = self.targets() or self.targets(thorough=True)
            if not current:
                if self.busy:
                    continue  # members were born and gone while we looked: look again
                self.emptied = not self.seen  # else: only processes we may not signal
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

    def settle(self) -> None:
        """Give processes we may not signal a moment to end on their own (sshd's privileged
        half ends once its unprivileged child is gone); a no-op when the session is empty."""
        if self.emptied:
            return
        self.busy = False
        left = self.members(thorough=True)
        if not left and not self.busy:
            self.emptied = True
            return
        if left and all(r.pid in self.pins.denied for r in left):
            self.pins.wait_exit(left, time.monotonic() + SETTLE, denied=True)
            self.busy = False
            self.emptied = not self.members(thorough=True) and not self.busy

    def leftovers(self) -> list[Leftover]:
        """What is still running (after a thorough look), each with its owner and why."""
        if self.emptied:
            return []
        out = []
        self.busy = False
        for ref in sorted(self.members(thorough=True), key=lambda r: r.pid):
            uids = proc.uids(ref.pid)
            euid = uids[1] if uids else -1
            owner = user_name(euid) if euid >= 0 else "?"
            if ref.pid in self.pins.denied:
                why = f"not permitted to signal it: it runs as {owner} (uid {euid})"
            elif ref.state == "D":
                why = "still running after SIGKILL: in uninterruptible sleep (D)"
            else:
                why = "still running after SIGKILL"
            out.append(Leftover(ref.pid, ref.comm, euid, owner, why))
        if not out and self.busy:  # never caught alive: name the last ones seen gone
            out = [Leftover(pid, "", -1, "?", "processes of the session keep forking and "
                            "exiting faster than they could be stopped")
                   for pid in self.hopped[-1:]]
        return out


@dataclass
class SignedOut:
    """What the sequence did, for ``logoff.finish`` (login record, result, audit)."""

    started_at: datetime
    t0: float  # time.monotonic() at the start
    steps: list[Step]
    processes_at_start: int
    left: list[Leftover]
    not_permitted: list[int]
    desktop: desktop_logout.DesktopLogoff | None


def carry_out(
    be: Backend,
    session: Session,
    grace: float,
    progress: Callable[[Step], None] | None,
    spare: set[Key] | None = None,
) -> SignedOut:
    """The sequence on a session already found and permitted. ``spare``: other processes
    (pid, start ticks) never to signal (the caller of a helper process)."""
    started_at = datetime.now().astimezone()
    t0 = time.monotonic()
    signals.raise_fd_limit()
    run = SignOutRun(be, session, progress, spare)
    graceful = desktop_logout.Graceful(run, grace) if desktop_logout.applies(session) else None
    try:
        processes_at_start = len(run.members())
        run.sign_out(grace, graceful.ask if graceful else None)
        left = run.leftovers()
    finally:
        run.pins.close()
    not_permitted = sorted(run.pins.denied & {x.pid for x in left})
    return SignedOut(started_at, t0, run.steps, processes_at_start, left, not_permitted,
                     graceful.report if graceful else None)


# -- our own session --------------------------------------------------------------------


def can_shield() -> bool:
    """True if this thread may change signal dispositions and put back every one it
    changes (only the main thread may; a handler set outside Python cannot be put back)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    return all(signal.getsignal(s) is not None for s in SHIELD)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Ignore the SHIELD signals while the block runs, then restore the dispositions the
    process had (main thread only; see ``can_shield``)."""
    saved: dict[int, object] = {}
    try:
        for sig in SHIELD:
            saved[sig] = signal.signal(sig, signal.SIG_IGN)
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)  # type: ignore[arg-type]


def in_helper(
    session: Session,
    backend_name: str,
    grace: float,
    audit_log: str | Path | None,
    progress: Callable[[Step], None] | None,
    base: dict[str, object],
) -> dict[str, object]:
    """Sign out our own session from a helper process (``own_signout``) that shields
    itself on its own main thread; this process is spared and keeps its dispositions.
    Returns the helper's result (``LogoffResult.to_dict`` + ``audit_path``)."""
    from .helper import module_command

    me = proc.stat(os.getpid())
    request = {
        "session": session.id,
        "backend": backend_name,
        "grace": grace,
        "audit_log": None if audit_log is None else str(audit_log),
        "base": base,
        "spare": [[os.getpid(), me.start_ticks if me else 0]],
    }
    argv, env = module_command("sessionctl.actions.own_signout")
    child = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd="/",
        close_fds=True,
    )
    assert child.stdin is not None and child.stdout is not None
    reply: dict[str, object] = {}
    with child.stdin, child.stdout:
        child.stdin.write(json.dumps(request).encode())
        child.stdin.close()
        for line in child.stdout:
            msg = json.loads(line)
            if "step" in msg and progress is not None:
                try:
                    progress(Step(**msg["step"]))
                except Exception:
                    progress = None
            reply = msg
    child.wait()
    if "error" in reply:
        kind = getattr(errors, str(reply.get("type")), SessionctlError)
        if not (isinstance(kind, type) and issubclass(kind, SessionctlError)):
            kind = SessionctlError
        raise kind(str(reply["error"]))
    if "result" not in reply:
        raise SessionctlError(
            f"the sign-out helper ended without a result (exit {child.returncode})"
        )
    data = reply["result"]
    if not isinstance(data, dict):
        raise SessionctlError("the sign-out helper sent no result")
    return data
