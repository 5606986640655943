"""The countdown worker of one warned logoff (run as ``python -m sessionctl.actions.countdown``).

It detaches (double fork, own kernel session, no terminal), listens on
``<run dir>/logoff-<id>.sock``, and loops: ends when the session ends by itself, sends
the reminder that is due, answers postpone/cancel/status requests, and at the deadline
runs the sign-out sequence. Its progress is in state.db (``last_mark`` after each
notice), so a new worker for the same row continues without repeating or skipping one.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import time

from .. import state
from ..backends import get_backend
from ..backends.base import Backend
from ..errors import SessionctlError
from ..linux import unixsock
from ..linux.accounts import user_name
from ..sanitize import clean_text
from .schedule import (
    PendingLogoff,
    desktop_notice,
    due_reminder,
    marks_left,
    notice_text,
    record,
    socket_path,
)

SESSION_CHECK = 1.0
MAX_REQUEST = 4096


class Worker:
    """One pending logoff's countdown."""

    def __init__(self, session_id: str, backend: Backend) -> None:
        self.session_id = session_id
        self.backend = backend
        self.sock: socket.socket | None = None
        self.next_check = 0.0

    def load(self) -> PendingLogoff | None:
        data = state.get_pending(self.session_id)
        return PendingLogoff.from_dict(data) if data else None

    def listen(self) -> None:
        path = socket_path(self.session_id)
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            try:  # a live worker already serving this session: do not steal its socket
                unixsock.request(str(path), b'{"op": "status"}', timeout=2)
                raise SessionctlError(f"another countdown already serves {path}")
            except (ConnectionRefusedError, FileNotFoundError):
                pass
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.bind(str(path))
        os.chmod(path, 0o666)  # anyone may ask; the peer's uid decides what is allowed
        sock.listen(16)
        self.sock = sock

    def session_alive(self, p: PendingLogoff) -> bool:
        found = [s for s in self.backend.sessions() if s.id == p.session_id]
        return bool(found) and found[0].uid == p.uid

    def notify(self, p: PendingLogoff, kind: str) -> None:
        from .message import send_message

        try:
            now = time.time()
            report = send_message(p.session_id, notice_text(p, now, kind),
                                  backend=self.backend, sender=f"{p.scheduled_by} (sessionctl)",
                                  audit_log=p.audit_log,
                                  **desktop_notice(p, kind, now))  # type: ignore[arg-type]
            delivered = [d.device for d in report.deliveries if d.ok]
        except SessionctlError as exc:
            delivered = [f"not sent: {exc}"]
        record(p, f"logoff-{kind}-notice" if kind != "first" else "logoff-notice",
               delivered=delivered, seconds_left=round(p.logoff_at - time.time(), 1))

    def run(self) -> int:
        while True:
            p = self.load()
            if p is None:  # cancelled or removed
                return 0
            now = time.time()
            if now >= self.next_check:
                self.next_check = now + SESSION_CHECK
                if not self.session_alive(p):
                    state.delete_pending(p.session_id)
                    record(p, "logoff-not-needed", note="the session ended before the deadline")
                    return 0
            if now >= p.logoff_at:
                return self.sign_out(p)
            mark = due_reminder(p, now)
            if mark is not None:
                self.notify(p, "reminder")
                state.update_pending(p.session_id, last_mark=mark)
                continue
            marks_at = [p.logoff_at - m for m in marks_left(p) if p.logoff_at - m > now]
            wake = min([p.logoff_at, self.next_check, *marks_at])
            assert self.sock is not None
            ready, _, _ = select.select([self.sock], [], [], max(0.0, wake - time.time()))
            if ready and self.serve(p) == "cancelled":
                return 0

    def serve(self, p: PendingLogoff) -> str:
        assert self.sock is not None
        conn, _ = self.sock.accept()
        with conn:
            pid, uid, _ = unixsock.peer(conn)
            try:
                raw = unixsock.read_request(conn, MAX_REQUEST)
                request = json.loads(raw or b"{}")
                reply, outcome = self.handle(p, request, pid, uid)
            except (OSError, ValueError) as exc:
                reply, outcome = {"ok": False, "error": f"bad request: {exc}"}, ""
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode())
        return outcome

    def handle(self, p: PendingLogoff, request: dict, pid: int, uid: int) -> tuple[dict, str]:
        op = request.get("op")
        who = user_name(uid)
        if op == "status":
            return {"ok": True, "pending": p.to_dict()}, ""
        if op == "postpone":
            if uid not in (0, p.uid):
                record(p, "logoff-postpone-refused", by=who, by_pid=pid,
                       why="not the session's user")
                return {"ok": False, "denied": True, "error": f"Access is denied: only "
                        f"{p.user} (or root) may postpone this sign-out"}, ""
            seconds = request.get("seconds")
            if not isinstance(seconds, int | float) or not 0 < seconds <= p.allowance + 0.5:
                record(p, "logoff-postpone-refused", by=who, by_pid=pid, why="out of bounds",
                       asked=seconds)
                return {"ok": False, "error": f"postpone: at most "
                        f"{round(p.allowance)} s more is allowed"}, ""
            seconds = min(float(seconds), p.allowance)
            remaining = p.logoff_at + seconds - time.time()
            new = state.update_pending(p.session_id, logoff_at=p.logoff_at + seconds,
                                       postponed=p.postponed + seconds, last_mark=remaining)
            if new is None:
                return {"ok": False, "error": "the sign-out is no longer pending"}, ""
            q = PendingLogoff.from_dict(new)
            record(q, "logoff-postponed", by=who, by_pid=pid, seconds=seconds)
            self.notify(q, "postponed")
            return {"ok": True, "pending": q.to_dict()}, ""
        if op == "cancel":
            if uid not in (0, p.scheduled_by_uid):
                record(p, "logoff-cancel-refused", by=who, by_pid=pid)
                return {"ok": False, "denied": True, "error": "Access is denied: only root "
                        f"or {p.scheduled_by} may cancel this sign-out"}, ""
            state.delete_pending(p.session_id)
            record(p, "logoff-cancelled", by=who, by_pid=pid, note=request.get("note"))
            from .message import send_message

            with contextlib.suppress(SessionctlError):
                note = clean_text(str(request.get("note") or ""))[:200]
                send_message(p.session_id, f"The scheduled sign-out of session {p.session_id} "
                             f"was cancelled by {who}" + (f": {note}." if note else "."),
                             backend=self.backend,
                             sender=f"{p.scheduled_by} (sessionctl)", audit_log=p.audit_log)
            return {"ok": True, "pending": p.to_dict()}, "cancelled"
        return {"ok": False, "error": f"unknown request {op!r}"}, ""

    def sign_out(self, p: PendingLogoff) -> int:
        from .logoff import logoff

        state.delete_pending(p.session_id)
        try:
            result = logoff(p.session_id, grace=p.grace, backend=self.backend,
                            allow_console=p.allow_console, audit_log=p.audit_log,
                            caller_uid=0)
        except SessionctlError as exc:
            record(p, "logoff-at-deadline-failed", error=str(exc))
            return 1
        record(p, "logoff-at-deadline", outcome=result.outcome, remaining=result.remaining)
        return 0 if result.ok else 1


def _detach() -> None:
    """Double fork: the launcher exits, the worker is reparented and has no terminal."""
    if os.fork() > 0:
        os._exit(0)
    if os.getsid(0) != os.getpid():
        os.setsid()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _preload() -> None:
    """Import now what the deadline needs (the code may be a fleet zip replaced later)."""
    from . import logoff, message  # noqa: F401


def main(argv: list[str]) -> int:
    session_id = argv[0]
    _preload()
    ready_fd = int(os.environ.pop("SESSIONCTL_READY_FD", "-1"))
    _detach()
    try:
        worker = Worker(session_id, get_backend(None))
        p = worker.load()
        if p is None:
            raise SessionctlError(f"no pending logoff for session {session_id}")
        worker.listen()
        state.update_pending(session_id, worker_pid=os.getpid(),
                             worker_start=_start_ticks(os.getpid()))
    except Exception as exc:
        if ready_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(ready_fd, f"error {exc}".encode())
        return 1
    if ready_fd >= 0:
        os.write(ready_fd, f"ready {os.getpid()}".encode())
        os.close(ready_fd)
    try:
        return worker.run()
    finally:
        with contextlib.suppress(OSError):
            socket_path(session_id).unlink()


def _start_ticks(pid: int) -> int | None:
    from ..linux import proc

    st = proc.stat(pid)
    return st.start_ticks if st else None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
