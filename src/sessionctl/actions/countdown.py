"""The countdown of one warned logoff (run as ``python -m sessionctl.actions.countdown ID``).

Two processes, both root, detached (double fork, own kernel session, no terminal):

* the **supervisor** takes the countdown's lock (``logoff-ID.lock`` in the run directory,
  held as long as it or its worker lives), binds the control socket ``logoff-ID.sock``
  (owned by the session's user, mode 0600: only that user and root can connect), records
  itself in the row and forks the worker. It reads no request and does nothing else: when
  the worker dies while the logoff is still pending, the death is audited and a new worker
  is forked at once (it continues from the row). It is exempt from the OOM killer.
* the **worker** loops: ends when the session ends by itself, queues the reminder that is
  due, answers requests, and at the deadline runs the sign-out sequence. Its progress is in
  state.db (``last_mark`` once a notice was written), so a new worker neither repeats nor
  skips one.

Requests are untrusted input. The listening socket is non-blocking and every connection
has a deadline (``REQUEST_TIMEOUT``), a size limit (``MAX_REQUEST``) and a slot (at most
``MAX_CLIENTS``, ``MAX_CLIENTS_PER_UID`` per peer uid); every request is checked against
its schema (:func:`parse_request`) before use, and the peer's uid (SO_PEERCRED) decides
what it may do. Notices are written by a separate thread, so a terminal that blocks never
holds up the loop or the deadline. Nothing a request does can end the worker; if it ends
anyway the supervisor resumes it (and ``resume_countdowns`` covers a lost supervisor).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import queue
import re
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace

from .. import state
from ..backends import Backend, get_backend
from ..errors import NoSuchSession, SessionctlError
from ..linux import safepath, unixsock
from ..linux.accounts import user_name
from ..sanitize import clean_text
from .schedule import (
    PendingLogoff,
    desktop_notice,
    due_reminder,
    lock_name,
    marks_left,
    notice_text,
    record,
    socket_name,
)

SESSION_CHECK = 1.0
MAX_REQUEST = 4096
REQUEST_TIMEOUT = 2.0
MAX_CLIENTS = 32
MAX_CLIENTS_PER_UID = 8
ACCEPT_BATCH = 64
MAX_NOTE = 200
NOTICE_QUEUE = 8
ERROR_AUDIT_EVERY = 10.0
EXIT_CRASHED = 70
QUICK_DEATH = 5.0  # a worker that dies sooner than this after its start counts as quick
MAX_QUICK_DEATHS = 20
_SESSION_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

_FIELDS = {"status": frozenset({"op"}), "postpone": frozenset({"op", "seconds"}),
           "cancel": frozenset({"op", "note"})}


class BadRequest(ValueError):
    """A request that does not fit the schema; the text is the short reason sent back."""


@dataclass(frozen=True)
class Request:
    """A checked request: ``op`` is status, postpone (``seconds`` > 0) or cancel."""

    op: str
    seconds: float = 0.0
    note: str = ""


def parse_request(raw: bytes) -> Request:
    """The request in ``raw`` (one JSON object, UTF-8, at most MAX_REQUEST bytes), checked.

    Schema: ``{"op": "status"}``, ``{"op": "postpone", "seconds": N}`` (N a finite
    number > 0, not a boolean), ``{"op": "cancel"[, "note": TEXT]}`` (TEXT at most 200
    characters); no other fields. Raises BadRequest with a short reason.
    """
    if len(raw) > MAX_REQUEST:
        raise BadRequest(f"request larger than {MAX_REQUEST} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("request is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request is not a JSON object")
    op = data.get("op")
    if not isinstance(op, str) or op not in _FIELDS:
        raise BadRequest("unknown request")
    if set(data) - _FIELDS[op]:
        raise BadRequest(f"unexpected field in a {op} request")
    if op == "postpone":
        seconds = data.get("seconds")
        try:
            ok = (not isinstance(seconds, bool) and isinstance(seconds, int | float)
                  and math.isfinite(seconds) and seconds > 0)
        except OverflowError:
            ok = False
        if not ok or not isinstance(seconds, int | float):
            raise BadRequest("postpone: seconds must be a number above 0")
        return Request(op, seconds=float(seconds))
    if op == "cancel":
        note = data.get("note")
        if note is None:
            note = ""
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise BadRequest(f"cancel: note must be text of at most {MAX_NOTE} characters")
        return Request(op, note=note)
    return Request(op)


@dataclass
class _Client:
    sock: socket.socket
    pid: int
    uid: int
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class _Notifier(threading.Thread):
    """Writes notices one after another, off the worker's loop (a blocked terminal costs
    the notice, never the deadline). A reminder's ``last_mark`` is saved once written."""

    def __init__(self, backend_name: str | None) -> None:
        super().__init__(name="sessionctl-notices", daemon=True)
        self.backend_name = backend_name
        self.queue: queue.Queue[tuple[str, PendingLogoff, object] | None] = queue.Queue(
            NOTICE_QUEUE)

    def put(self, kind: str, p: PendingLogoff, arg: object = None) -> bool:
        try:
            self.queue.put_nowait((kind, p, arg))
        except queue.Full:
            return False
        return True

    def stop(self, wait: float) -> None:
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=wait)
        if self.is_alive():
            self.join(wait)

    def run(self) -> None:
        backend: Backend | None = None
        while True:
            item = self.queue.get()
            if item is None:
                return
            kind, p, arg = item
            try:
                backend = backend or get_backend(self.backend_name)
                self._send(backend, kind, p, arg)
            except Exception as exc:  # a notice lost is audited; the countdown goes on
                with contextlib.suppress(Exception):
                    record(p, "logoff-notice-failed", kind=kind, error=f"{type(exc).__name__}")

    def _send(self, backend: Backend, kind: str, p: PendingLogoff, arg: object) -> None:
        from .message import send_message

        sender = f"{p.scheduled_by} (sessionctl)"
        if kind == "cancelled":
            who, note = arg if isinstance(arg, tuple) else ("root", "")
            text = (f"The scheduled sign-out of session {p.session_id} was cancelled by {who}"
                    + (f": {note}." if note else "."))
            with contextlib.suppress(SessionctlError):
                send_message(p.session_id, text, backend=backend,
                             sender=sender, audit_log=p.audit_log)
            return
        try:
            now = time.time()
            shown_for, follow = desktop_notice(p, kind, now)
            report = send_message(p.session_id, notice_text(p, now, kind),
                                  backend=backend, sender=sender, audit_log=p.audit_log,
                                  timeout=shown_for, desktop_follow=follow)
            delivered = [d.device for d in report.deliveries if d.ok]
        except SessionctlError as exc:
            delivered = [f"not sent: {exc}"]
        record(p, f"logoff-{kind}-notice", delivered=delivered,
               seconds_left=round(p.logoff_at - time.time(), 1))
        if kind == "reminder":  # only if no postpone moved the deadline meanwhile
            state.update_pending(p.session_id, only_if={"logoff_at": p.logoff_at},
                                 last_mark=arg)


class Worker:
    """One pending logoff's countdown, serving requests on ``listener``."""

    def __init__(self, session_id: str, listener: socket.socket,
                 backend_name: str | None = None, last: PendingLogoff | None = None) -> None:
        self.session_id = session_id
        self.listener = listener
        self.backend_name = backend_name
        self.backend = get_backend(backend_name)
        self.next_check = 0.0
        self.clients: dict[int, _Client] = {}
        self.selector = selectors.DefaultSelector()
        self.notifier = _Notifier(backend_name)
        self.queued: tuple[float, float] | None = None  # (logoff_at, mark) handed over
        self.last = last  # the row as last read (kept when a read fails)
        self.error_audit: dict[int, tuple[float, int]] = {}  # uid → (last audit, count)

    # -- the row -------------------------------------------------------------------
    def load(self) -> PendingLogoff | None:
        """The row now; on a read error the last one seen (the deadline still holds)."""
        try:
            data = state.get_pending(self.session_id)
        except Exception:
            return self.last
        self.last = PendingLogoff.from_dict(data) if data else None
        return self.last

    def session_alive(self, p: PendingLogoff) -> bool:
        try:
            found = [s for s in self.backend.sessions() if s.id == p.session_id]
        except Exception:
            return True  # could not look: never give up a countdown on a failed look
        return bool(found) and found[0].uid == p.uid

    # -- the loop ------------------------------------------------------------------
    def run(self) -> int:
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.notifier.start()
        try:
            return self._loop()
        finally:
            for c in list(self.clients.values()):
                self._drop(c)
            self.notifier.stop(5.0)

    def _loop(self) -> int:
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
            seen = self._with_queued(p)
            mark = due_reminder(seen, now)
            if mark is not None and self.notifier.put("reminder", p, mark):
                self.queued = (p.logoff_at, mark)
                continue
            marks_at = [p.logoff_at - m for m in marks_left(seen) if p.logoff_at - m > now]
            wake = min([p.logoff_at, self.next_check, *marks_at])
            mono = time.monotonic()
            timeout = wake - time.time()
            if self.clients:
                timeout = min(timeout, min(c.deadline for c in self.clients.values()) - mono)
            for key, _ in self.selector.select(max(0.0, min(timeout, SESSION_CHECK))):
                try:
                    if key.data is None:
                        self._accept(p)
                    elif self._readable(p, key.data) == "cancelled":
                        return 0
                except Exception as exc:  # no request may end the worker
                    client = key.data if isinstance(key.data, _Client) else None
                    self._audit_error(p, client, f"{type(exc).__name__}: {exc}"[:200])
                    if client is not None:
                        self._reply(client, {"ok": False, "error": "internal error"})
            self._expire(time.monotonic())

    def _with_queued(self, p: PendingLogoff) -> PendingLogoff:
        """The row as if the reminder already handed to the notifier had been written."""
        if self.queued is None or self.queued[0] != p.logoff_at:
            return p
        last = p.last_mark if p.last_mark is not None else math.inf
        return replace(p, last_mark=min(last, self.queued[1]))

    # -- connections -----------------------------------------------------------------
    def _accept(self, p: PendingLogoff) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of descriptors: try again on the next turn
                return
            conn.setblocking(False)
            try:
                pid, uid, _ = unixsock.peer(conn)
            except OSError:
                conn.close()
                continue
            same = sum(1 for c in self.clients.values() if c.uid == uid)
            if len(self.clients) >= MAX_CLIENTS or same >= MAX_CLIENTS_PER_UID:
                with contextlib.suppress(OSError):
                    conn.send(b'{"ok": false, "error": "busy: too many connections"}')
                conn.close()
                continue
            client = _Client(conn, pid, uid, time.monotonic() + REQUEST_TIMEOUT)
            self.clients[conn.fileno()] = client
            self.selector.register(conn, selectors.EVENT_READ, client)

    def _readable(self, p: PendingLogoff, c: _Client) -> str:
        try:
            chunk = c.sock.recv(MAX_REQUEST + 1 - len(c.data))
        except (BlockingIOError, InterruptedError):
            return ""
        except OSError:
            self._drop(c)
            return ""
        c.data += chunk
        end = c.data.find(b"\n")
        if len(c.data) > MAX_REQUEST:
            return self._answer(p, c, bytes(c.data))  # parse_request says: too large
        if chunk and end < 0:
            return ""  # more to come (until EOF, a newline or the deadline)
        return self._answer(p, c, bytes(c.data if end < 0 else c.data[:end]))

    def _answer(self, p: PendingLogoff, c: _Client, raw: bytes) -> str:
        try:
            request = parse_request(raw)
        except BadRequest as exc:
            self._audit_error(p, c, str(exc))
            self._reply(c, {"ok": False, "error": f"bad request: {exc}"})
            return ""
        reply, outcome = self.handle(p, request, c.pid, c.uid)
        self._reply(c, reply)
        return outcome

    def _reply(self, c: _Client, reply: dict[str, object]) -> None:
        with contextlib.suppress(OSError):
            c.sock.send(json.dumps(reply).encode())  # small; never waits on the peer
        self._drop(c)

    def _drop(self, c: _Client) -> None:
        if self.clients.pop(c.sock.fileno(), None) is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(c.sock)
        c.sock.close()

    def _expire(self, now: float) -> None:
        for c in [c for c in self.clients.values() if c.deadline <= now]:
            self._reply(c, {"ok": False, "error": "bad request: not sent in time"})

    def _audit_error(self, p: PendingLogoff, c: _Client | None, why: str) -> None:
        """Audit bad requests, at most one record per peer uid every 10 s (with a count)."""
        uid = c.uid if c else -1
        last, count = self.error_audit.get(uid, (0.0, 0))
        now = time.monotonic()
        if now - last < ERROR_AUDIT_EVERY:
            self.error_audit[uid] = (last, count + 1)
            return
        self.error_audit[uid] = (now, 0)
        with contextlib.suppress(Exception):
            record(p, "logoff-bad-request", by=user_name(uid) if c else "", by_pid=c.pid if c
                   else None, why=why, also_since_last=count)

    # -- requests --------------------------------------------------------------------
    def handle(self, p: PendingLogoff, request: Request, pid: int,
               uid: int) -> tuple[dict[str, object], str]:
        """The reply to a checked request from (pid, uid), and "cancelled" if it was."""
        who = user_name(uid)
        if request.op == "status":
            if uid not in (0, p.uid, p.scheduled_by_uid):
                return {"ok": False, "denied": True, "error": "Access is denied"}, ""
            return {"ok": True, "pending": p.to_dict()}, ""
        if request.op == "postpone":
            if uid not in (0, p.uid):
                record(p, "logoff-postpone-refused", by=who, by_pid=pid,
                       why="not the session's user")
                return {"ok": False, "denied": True, "error": f"Access is denied: only "
                        f"{p.user} (or root) may postpone this sign-out"}, ""
            if p.allowance <= 0 or request.seconds > p.allowance + 0.5:
                record(p, "logoff-postpone-refused", by=who, by_pid=pid, why="out of bounds",
                       asked=request.seconds)
                return {"ok": False, "error": f"postpone: at most "
                        f"{round(p.allowance)} s more is allowed"}, ""
            seconds = min(request.seconds, p.allowance)
            remaining = p.logoff_at + seconds - time.time()
            new = state.update_pending(p.session_id, logoff_at=p.logoff_at + seconds,
                                       postponed=p.postponed + seconds, last_mark=remaining)
            if new is None:
                return {"ok": False, "error": "the sign-out is no longer pending"}, ""
            q = PendingLogoff.from_dict(new)
            record(q, "logoff-postponed", by=who, by_pid=pid, seconds=seconds)
            self.notifier.put("postponed", q)
            return {"ok": True, "pending": q.to_dict()}, ""
        if uid not in (0, p.scheduled_by_uid):  # cancel
            record(p, "logoff-cancel-refused", by=who, by_pid=pid)
            return {"ok": False, "denied": True, "error": "Access is denied: only root "
                    f"or {p.scheduled_by} may cancel this sign-out"}, ""
        state.delete_pending(p.session_id)
        note = clean_text(request.note).replace("\n", " ")[:MAX_NOTE]
        record(p, "logoff-cancelled", by=who, by_pid=pid, note=note)
        self.notifier.put("cancelled", p, (who, note))
        return {"ok": True, "pending": p.to_dict()}, "cancelled"

    # -- the deadline ----------------------------------------------------------------
    def sign_out(self, p: PendingLogoff) -> int:
        """The sign-out sequence; the row goes once it has run (a worker resumed after a
        death in the middle runs it again: a session already gone counts as done)."""
        from . import reclaim
        from .logoff import logoff

        rule = reclaim.rule_of(p.reason)  # a policy sign-out records what it reclaims
        session, held = reclaim.measure_by_id(p.session_id, self.backend) if rule else (None, None)
        try:
            result = logoff(p.session_id, grace=p.grace, backend=self.backend,
                            allow_console=p.allow_console, audit_log=p.audit_log,
                            caller_uid=0)
        except NoSuchSession:
            state.delete_pending(p.session_id)
            record(p, "logoff-at-deadline", outcome="gone", remaining=[])
            return 0
        except SessionctlError as exc:
            state.delete_pending(p.session_id)
            record(p, "logoff-at-deadline-failed", error=str(exc))
            if rule:
                reclaim.record("signout", rule, session, user=p.user, session_id=p.session_id,
                               outcome="failed", held=held)
            return 1
        state.delete_pending(p.session_id)
        record(p, "logoff-at-deadline", outcome=result.outcome, remaining=result.remaining,
               late_by=round(max(0.0, time.time() - p.logoff_at - result.seconds), 1))
        if rule:
            reclaim.record("signout", rule, session, user=p.user, session_id=p.session_id,
                           outcome=result.outcome, held=held)
        return 0 if result.ok else 1


# -- the supervisor ------------------------------------------------------------------------


class Supervisor:
    """Holds the lock and the socket; forks the worker and forks a new one when it dies."""

    def __init__(self, session_id: str, backend_name: str | None = None) -> None:
        self.session_id = session_id
        self.backend_name = backend_name
        self.listener: socket.socket | None = None
        self.lock_fd = -1
        self.run_dir: safepath.SafeDir | None = None
        self.socket_ino = 0
        self.pending: PendingLogoff | None = None

    def prepare(self) -> PendingLogoff:
        """Lock, socket, row: raises SessionctlError if another countdown serves it."""
        from .schedule import open_run_dir

        if not _SESSION_ID.fullmatch(self.session_id):
            raise SessionctlError(f"not a session id: {self.session_id!r}")
        data = state.get_pending(self.session_id)
        if not data:
            raise SessionctlError(f"no pending logoff for session {self.session_id}")
        self.pending = p = PendingLogoff.from_dict(data)
        self.run_dir = run = open_run_dir(create=True)
        self.lock_fd = safepath.open_file(run, lock_name(self.session_id),
                                          os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SessionctlError(
                f"another countdown already serves session {self.session_id}") from None
        name = socket_name(self.session_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=run.fd)  # a dead countdown's: the lock was free
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            sock.bind(f"{run.proc_path}/{name}")  # created 0600, in the checked directory
        finally:
            os.umask(old)
        if p.uid > 0:  # the session's user may connect (to postpone); nobody else but root
            os.chown(name, p.uid, -1, dir_fd=run.fd, follow_symlinks=False)
        self.socket_ino = os.stat(name, dir_fd=run.fd, follow_symlinks=False).st_ino
        sock.listen(64)
        self.listener = sock
        state.update_pending(self.session_id, supervisor_pid=os.getpid(),
                             supervisor_start=_start_ticks(os.getpid()))
        _oom_score_adj(-1000)
        return p

    def run(self, ready_fd: int = -1) -> int:
        """Fork workers until the logoff is no longer pending."""
        quick = 0
        first = True
        try:
            while True:
                began = time.monotonic()
                pid = os.fork()
                if pid == 0:
                    os._exit(self._child(ready_fd))
                if first:
                    _ready(ready_fd, f"ready {pid}")
                    ready_fd, first = -1, False
                status = _wait(pid)
                p = self._still_pending()
                if p is None:
                    return 0
                how = _describe(status)
                record(p, "logoff-worker-died", worker_pid=pid, how=how,
                       noticed_by="supervisor")
                quick = quick + 1 if time.monotonic() - began < QUICK_DEATH else 0
                if quick > MAX_QUICK_DEATHS:
                    record(p, "logoff-worker-gave-up", how=how, deaths=quick,
                           note="resumed by the next root sessionctl command or daemon tick")
                    return 1
                time.sleep(min(5.0, 0.05 * 2 ** quick) if quick > 1 else 0.0)
                record(p, "logoff-worker-resumed", noticed_by="supervisor",
                       late_by=round(max(0.0, time.time() - p.logoff_at), 1))
        finally:
            self.close()

    def _still_pending(self) -> PendingLogoff | None:
        try:
            data = state.get_pending(self.session_id)
        except Exception:  # cannot tell: keep the countdown going
            return self.pending
        if data:
            self.pending = PendingLogoff.from_dict(data)
            return self.pending
        return None

    def _child(self, ready_fd: int) -> int:
        """The worker (in the forked child): never returns to the supervisor's code."""
        try:
            _oom_score_adj(0)
            if ready_fd >= 0:
                os.close(ready_fd)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            assert self.listener is not None
            with contextlib.suppress(Exception):  # the supervisor's pid covers liveness too
                state.update_pending(self.session_id, worker_pid=os.getpid(),
                                     worker_start=_start_ticks(os.getpid()))
            return Worker(self.session_id, self.listener, self.backend_name,
                          self.pending).run()
        except BaseException:
            return EXIT_CRASHED

    def close(self) -> None:
        run = self.run_dir
        if run is not None:
            with contextlib.suppress(OSError):  # only our own socket, not a successor's
                name = socket_name(self.session_id)
                if os.stat(name, dir_fd=run.fd, follow_symlinks=False).st_ino == \
                        self.socket_ino:
                    os.unlink(name, dir_fd=run.fd)
            run.close()
        if self.listener is not None:
            self.listener.close()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


def _wait(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(sig).name}"
        return f"killed by signal {sig}"
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return "crashed" if code == EXIT_CRASHED else f"exited with status {code}"


def _oom_score_adj(value: int) -> None:
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(value))


def _ready(fd: int, text: str) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.write(fd, text.encode())
            os.close(fd)


def _detach() -> None:
    """Double fork: the launcher exits, the supervisor is reparented and has no terminal."""
    if os.fork() > 0:
        os._exit(0)
    if os.getsid(0) != os.getpid():
        os.setsid()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _preload() -> None:
    """Import now what the deadline needs (the code may be a fleet zip replaced later; the
    workers the supervisor forks, maybe hours later, inherit these modules)."""
    import importlib

    from . import logoff, message, reclaim  # noqa: F401
    for name in ("sessionctl.backends.procfs", "sessionctl.backends.logind", "jeepney",
                 "jeepney.io.blocking", "jeepney.wrappers"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def main(argv: list[str]) -> int:
    session_id = argv[0] if argv else ""
    _preload()
    ready_fd = int(os.environ.pop("SESSIONCTL_READY_FD", "-1"))
    backend_name = os.environ.get("SESSIONCTL_BACKEND") or None
    _detach()
    supervisor = Supervisor(session_id, backend_name)
    try:
        supervisor.prepare()
    except Exception as exc:
        _ready(ready_fd, f"error {exc}")
        with contextlib.suppress(Exception):
            supervisor.close()
        return 1
    return supervisor.run(ready_fd)


def _start_ticks(pid: int) -> int | None:
    from ..linux import proc

    st = proc.stat(pid)
    return st.start_ticks if st else None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
