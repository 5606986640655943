"""The Linux disconnect: detach others' clients, end the connection, verify (see
actions/disconnect.py for what a disconnect is, and docs/architecture.md)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from ..api import find_session
from ..backends.base import Backend
from ..backends.multiplexers import below
from ..errors import NoSuchSession
from ..linux import mux, signals
from ..linux.signals import Sent
from ..model import ProcessRef, Session, State
from .reports import DisconnectResult

POLL = 0.1
SETTLE = 0.5  # seconds the kept work must stay alive once its clients are gone


#: Ends one connection (its process already checked to be the session's): returns (done,
#: what was done or what went wrong). Arguments: the session, the connection process
#: (its leader), the pidfd pins to signal with. The caller then waits for that process
#: to exit and the session to list as Disc.
Closer = Callable[[Session, ProcessRef, signals.Pins], tuple[bool, str]]


def _close_ssh(session: Session, conn: ProcessRef, pins: signals.Pins) -> tuple[bool, str]:
    """SIGTERM to sshd's unprivileged connection process (``sshd: USER@pts/N``, the
    user's own: a user may disconnect their own session): it closes the connection and
    the terminal hangs up; the privileged monitor then records the logout. Without that
    child (or if it may not be signalled) the monitor gets it, which relays it."""
    if conn.comm != "sshd":
        return False, f"the connection process {conn.pid} is {conn.comm!r}, not sshd"
    children = [r for r in session.processes if r.ppid == conn.pid and r.comm == "sshd"]
    for target in [*children, conn]:
        outcome = pins.send(target, signal.SIGTERM)
        if outcome is Sent.SENT:
            if target.state in "Tt":
                pins.send(target, signal.SIGCONT)
            return True, f"SIGTERM to sshd {target.pid}"
    return False, f"not permitted to signal the connection process {conn.pid}"


CLOSERS: dict[str, Closer] = {"ssh": _close_ssh}


def _connection(be: Backend, session: Session) -> ProcessRef | None:
    """The session's own live connection process (its leader), if it has one."""
    pid = session.leader_pid
    if pid is None or pid in {m.pid for m in session.multiplexers}:
        return None
    ref = next((r for r in session.processes if r.pid == pid), None)
    if ref is None or not signals.same_process(ref):
        return None
    return ref if be.is_member(session, pid) is not False else None


def refusal(be: Backend, session: Session) -> str | None:
    """Why ``session`` cannot be disconnected as it stands (None: it can)."""
    what = f"session {session.id} ({session.user}{', ' + session.name if session.name else ''})"
    if session.console:
        return f"{what} is the console session: it is not disconnected"
    if not session.multiplexers:
        return (f"{what} has nothing that would keep running (no tmux or screen): "
                "disconnecting it would end it; use logoff to sign it out")
    conn = _connection(be, session)
    attached = any(m.attached for m in session.multiplexers)
    if session.state is not State.ACTIVE or (conn is None and not attached):
        return f"{what} is already disconnected"
    if conn is not None and session.protocol not in CLOSERS:
        kind = session.protocol or conn.comm
        return f"{what}: its connection ({kind}) is not one sessionctl can end"
    return None


class _Run:
    """One disconnect in progress."""

    def __init__(self, be: Backend, session: Session, timeout: float,
                 progress: Callable[[str], None] | None) -> None:
        self.be = be
        self.session = session
        self.timeout = timeout
        self.progress = progress
        self.result = DisconnectResult(session, "incomplete")
        work = below((m.pid for m in session.multiplexers), session.processes)
        self.keep = [r for r in session.processes if r.pid in work]
        self.result.kept = sorted(r.pid for r in self.keep)

    def step(self, text: str) -> None:
        self.result.steps.append(text)
        if self.progress:
            self.progress(text)

    def problem(self, text: str) -> None:
        self.result.problems.append(text)
        self.step(f"problem: {text}")

    def servers_alive(self) -> bool:
        servers = {m.pid for m in self.session.multiplexers}
        dead = [r.pid for r in self.keep if r.pid in servers and not signals.same_process(r)]
        for pid in dead:
            self.problem(f"multiplexer server {pid} exited during the disconnect")
        return not dead

    def detach_others(self) -> None:
        """Detach clients attached from anywhere but this session's own connection."""
        for m in self.session.multiplexers:
            ttys = [c.tty for c in m.clients if c.session_id != self.session.id]
            if not ttys and not (m.attached and not m.clients):
                continue
            view = mux.read_server(m.pid, m.kind)
            server = next((r for r in self.keep if r.pid == m.pid), None)
            if view is None or server is None or view.start_ticks != server.start_ticks:
                self.problem(f"{m.kind} server {m.pid} is gone")
                continue
            if not ttys:  # attached, but we could not see where from (another user's)
                self.problem(f"{m.kind} server {m.pid} has clients we cannot see")
                continue
            for outcome in mux.detach_clients(view, ttys):
                where = f"{outcome.what} from {m.kind} {m.pid}"
                if outcome.ok:
                    self.result.detached.append(where)
                    self.step(f"detached {where}")
                else:
                    self.problem(f"could not detach {where}: {outcome.detail or 'failed'}")

    def end_connection(self, conn: ProcessRef) -> None:
        pins = signals.Pins(lambda pid: self.be.is_member(self.session, pid) is not False)
        try:
            started = time.monotonic()
            done, what = CLOSERS[self.session.protocol](self.session, conn, pins)
            if not done:
                self.problem(what)
                return
            self.step(f"{what} (the {self.session.protocol} connection"
                      f"{' on ' + self.session.name if self.session.name else ''})")
            if pins.wait_exit([conn], time.monotonic() + self.timeout):
                self.result.connections.append(conn.pid)
                self.step(f"connection ended after {time.monotonic() - started:.2f} s")
            else:
                self.problem(f"the connection process {conn.pid} is still running after "
                             f"{self.timeout:g} s")
        finally:
            pins.close()

    def settle(self, deadline: float) -> None:
        """Let the multiplexers see their clients go before the work is judged: wait for
        the clients this session's own terminals ran to exit (they hang up with the
        connection), then watch the kept work for SETTLE seconds (a tmux with
        ``destroy-unattached`` exits a moment after its last client, not at once)."""
        own = {c.pid for m in self.session.multiplexers for c in m.clients
               if c.session_id == self.session.id and c.pid is not None}
        clients = [r for r in self.session.processes if r.pid in own]
        while any(signals.same_process(r) for r in clients) and time.monotonic() < deadline:
            time.sleep(POLL)
        quiet = min(deadline, time.monotonic() + SETTLE)
        while time.monotonic() < quiet and all(signals.same_process(r) for r in self.keep):
            time.sleep(POLL)

    def verify(self) -> None:
        """Wait for the session to list as Disc; then check the kept work."""
        deadline = time.monotonic() + self.timeout
        self.settle(deadline)
        now: Session | None = None
        while True:
            try:
                now = find_session(self.session.id, backend=self.be)
            except NoSuchSession:
                now = None
            if now is None or now.state is State.DISC or time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        self.result.state = now.state.value if now is not None else "gone"
        if now is None:
            self.problem(f"session {self.session.id} is gone: nothing of it kept running")
        elif now.state is not State.DISC:
            where = f" (attached from {', '.join(now.attached_from)})" if now.attached_from else ""
            self.problem(f"session {self.session.id} is still {now.state.value}{where}")
        self.result.lost = sorted(r.pid for r in self.keep if not signals.same_process(r))
        if self.result.lost:
            self.problem(f"{len(self.result.lost)} process(es) of the kept work ended: "
                         + " ".join(map(str, self.result.lost)))
        else:
            self.step(f"session {self.session.id} is {self.result.state}; "
                      f"{len(self.keep)} process(es) kept running")


def run(be: Backend, session: Session, timeout: float,
        progress: Callable[[str], None] | None) -> DisconnectResult:
    """Disconnect ``session`` (already checked: :func:`refusal` said nothing); the result's
    outcome is still to be decided by the caller from its problems."""
    saved = _ignore_hangups() if session.current else {}
    try:
        work = _Run(be, session, timeout, progress)
        work.detach_others()
        conn = _connection(be, session)
        if conn is not None:
            if work.servers_alive():
                work.end_connection(conn)
            else:
                work.step("the connection was left alone: nothing would keep running")
        work.verify()
    finally:
        _restore(saved)
    return work.result


#: what signal.signal returns (None: a handler installed outside Python)
Handler = Callable[[int, FrameType | None], object] | int | None
_HANGUPS = (signal.SIGHUP, signal.SIGPIPE, signal.SIGTTOU, signal.SIGTTIN)


def _ignore_hangups() -> dict[signal.Signals, Handler]:
    """Disconnecting our own session may hang up our terminal: outlive that, report."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, signal.SIG_IGN) for sig in _HANGUPS}


def _restore(saved: dict[signal.Signals, Handler]) -> None:
    for sig, handler in saved.items():
        if handler is not None:  # None: a handler installed outside Python, kept as it is
            signal.signal(sig, handler)
