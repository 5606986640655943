"""Warned logoff: announce, remind, let the user postpone, then sign out.

``schedule_logoff`` records the pending logoff (state.db), starts a detached countdown
(actions/countdown.py: a supervisor and its worker) that owns a control socket in the run
directory, and sends the first notice. The worker sends reminders, takes ``postpone``
from the session's own user and ``cancel`` from root or whoever scheduled it (the kernel
tells it who is asking: SO_PEERCRED; only that user and root can reach the socket), and at
the deadline runs the shared sign-out sequence. It runs in its own kernel session with no
terminal, so the admin's terminal closing does not stop it.

A worker that dies is resumed: by its supervisor at once; if the supervisor is gone too,
by ``resume_countdowns``, which every root sessionctl command and each policy daemon tick
call. Every death and resumption is audited.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .. import jsonvalues, state
from ..api import find_session
from ..backends import get_backend
from ..backends.base import Backend
from ..durations import format_duration
from ..errors import AccessDenied, InvalidArgument, NoSuchSession, SessionctlError, UnsafePath
from ..host import posix_caller
from ..sanitize import checked_message
from . import audit
from .helper import module_command
from .logoff import DEFAULT_GRACE, MAX_GRACE, check_permission

if TYPE_CHECKING:
    from ..linux.desktop import Followup
    from ..linux.safepath import SafeDir
    from .message import MessageReport

DEFAULT_RUN_DIR = "/run/sessionctl"
REMINDER_MARKS = (3600.0, 1800.0, 600.0, 300.0, 60.0, 10.0)
DEFAULT_MAX_POSTPONE = 1800.0
DEFAULT_POSTPONE = 600.0
MAX_NOTICE = 7 * 86400.0
WORKER_READY_TIMEOUT = 10.0


@dataclass
class PendingLogoff:
    """A scheduled, announced logoff of one session."""

    session_id: str
    user: str
    uid: int
    session_name: str
    logoff_at: float  # epoch seconds
    original_at: float
    max_postpone: float
    message: str
    scheduled_by: str
    scheduled_by_uid: int
    scheduled_at: float
    grace: float = DEFAULT_GRACE
    allow_console: bool = False
    reason: str = ""
    last_mark: float | None = None  # seconds-before-deadline of the last notice sent
    postponed: float = 0.0
    worker_pid: int | None = None
    worker_start: int | None = None
    audit_log: str | None = None
    supervisor_pid: int | None = None  # the worker's parent, which resumes it if it dies
    supervisor_start: int | None = None
    backend: str = ""

    @property
    def allowance(self) -> float:
        """How much further the user may still postpone."""
        return max(0.0, self.original_at + self.max_postpone - self.logoff_at)

    @property
    def worker_alive(self) -> bool:
        """True while the worker or its supervisor (which restarts it) runs."""
        return _running(self.worker_pid, self.worker_start) or _running(
            self.supervisor_pid, self.supervisor_start)

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["logoff_at_iso"] = iso(self.logoff_at)
        out["allowance"] = self.allowance
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PendingLogoff:
        """The record as state.db or the countdown worker hold it, each field checked
        against its type; SessionctlError if one is missing or mistyped (unknown fields
        are ignored)."""
        try:
            return jsonvalues.build(cls, data)
        except ValueError as exc:
            raise SessionctlError(f"pending logoff record: {exc}") from None


def _running(pid: int | None, start: int | None) -> bool:
    if pid is None:
        return False
    from ..linux import proc  # pending logoffs exist only on Linux

    stat = proc.stat(pid)
    return stat is not None and stat.start_ticks == start and stat.state != "Z"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def run_dir() -> Path:
    return Path(os.environ.get("SESSIONCTL_RUN_DIR") or DEFAULT_RUN_DIR)


def socket_name(session_id: str) -> str:
    return f"logoff-{session_id}.sock"


def lock_name(session_id: str) -> str:
    return f"logoff-{session_id}.lock"


def socket_path(session_id: str) -> Path:
    return run_dir() / socket_name(session_id)


def open_run_dir(create: bool = False) -> SafeDir:
    """The run directory, checked (root's alone, no symlinks; created 0755 if asked).

    Raises UnsafePath, or FileNotFoundError when it is missing and not to be created.
    """
    from ..linux import safepath

    return safepath.open_dir(run_dir(), 0o755 if create else None)


def marks_left(p: PendingLogoff) -> list[float]:
    """Reminder marks (seconds before the deadline) not yet used since the last notice."""
    last = p.last_mark if p.last_mark is not None else float("inf")
    return [m for m in REMINDER_MARKS if m < last]


def due_reminder(p: PendingLogoff, now: float) -> float | None:
    """The reminder mark due now, if any: the closest mark passed since the last notice."""
    remaining = p.logoff_at - now
    if remaining <= 0:
        return None
    due = [m for m in marks_left(p) if remaining <= m]
    return min(due) if due else None


def notice_text(p: PendingLogoff, now: float, kind: str) -> str:
    """What the warned user reads: when, why, and how to postpone."""
    left = format_duration(p.logoff_at - now)
    at = datetime.fromtimestamp(p.logoff_at).strftime("%H:%M:%S")
    head = {
        "first": f"Your session {p.session_id} will be signed out in {left} (at {at}) "
        f"by {p.scheduled_by}.",
        "reminder": f"Reminder: your session {p.session_id} will be signed out in {left} "
        f"(at {at}).",
        "postponed": f"The sign-out of session {p.session_id} was postponed to {at} "
        f"(in {left}).",
    }[kind]
    lines = [head]
    if p.message and kind != "postponed":
        lines.append(p.message)
    if kind != "postponed":
        lines.append("Save your work now: all programs of this session will be ended.")
    if p.allowance > 0:
        lines.append(
            f"To postpone, run: sessionctl postpone [DURATION] "
            f"(up to {format_duration(p.allowance)} more)."
        )
    return "\n".join(lines)


def desktop_notice(p: PendingLogoff, kind: str, now: float) -> tuple[float, Followup]:
    """send_message's (timeout, desktop_follow) for a notice on a desktop: shown until the
    deadline (closed
    earlier once the sign-out is cancelled or moved), with a Postpone button (run as the
    session's user: the worker decides, as for ``sessionctl postpone``) while
    postponing is still allowed."""
    from ..linux.desktop import Followup

    session_id, deadline = p.session_id, p.logoff_at

    def relevant() -> bool:
        q = get_pending(session_id)
        return q is not None and abs(q.logoff_at - deadline) < 1

    action = None
    if kind != "postponed" and p.allowance > 0:
        amount = format_duration(min(DEFAULT_POSTPONE, p.allowance))
        action = ("postpone", f"Postpone {amount}")
    return (max(1.0, min(p.logoff_at - now, 86400.0)),
            Followup(action, lambda: postpone_logoff(None, session_id), relevant))


def schedule_logoff(
    target: str | None,
    notice: float,
    *,
    message: str | None = None,
    max_postpone: float = DEFAULT_MAX_POSTPONE,
    grace: float = DEFAULT_GRACE,
    allow_console: bool = False,
    reason: str = "",
    backend: Backend | str | None = None,
    audit_log: str | Path | None = None,
) -> tuple[PendingLogoff, MessageReport]:
    """Announce a logoff of ``target`` in ``notice`` seconds and start its countdown.

    Returns (PendingLogoff, the first notice's MessageReport). Raises before anything
    is recorded or sent on a bad argument, an unknown session, a refusal, or when a
    logoff is already pending for the session.
    """
    from .message import send_message

    if not 0 < notice <= MAX_NOTICE:
        raise InvalidArgument(f"notice must be between 1 s and {format_duration(MAX_NOTICE)}")
    if not 0 <= max_postpone <= MAX_NOTICE:
        raise InvalidArgument(f"max postpone must be between 0 and {format_duration(MAX_NOTICE)}")
    if not 0 <= grace <= MAX_GRACE:
        raise InvalidArgument(f"grace must be between 0 and {MAX_GRACE:g} seconds, not {grace}")
    text = checked_message(message) if message else ""
    caller = os.getuid()
    if os.geteuid() != 0:
        raise AccessDenied(
            "Access is denied: a warned logoff needs root (its countdown runs as a "
            "root-owned worker); log off your own session with plain logoff"
        )
    audit.check_path(audit_log)
    open_run_dir(create=True).close()  # refuse an unsafe run directory before anything
    be = get_backend(backend)
    session = find_session(target, backend=be)
    check_permission(session, be.caller(caller))
    if session.console and not allow_console:
        raise AccessDenied(
            f"session {session.id} ({session.name}) is the console session: "
            "it is not logged off without --allow-console"
        )
    now = time.time()
    p = PendingLogoff(
        session_id=session.id, user=session.user, uid=session.uid,
        session_name=session.name, logoff_at=now + notice, original_at=now + notice,
        max_postpone=max_postpone, message=text, scheduled_by=be.caller(caller).name,
        scheduled_by_uid=caller, scheduled_at=now, grace=grace,
        allow_console=allow_console, reason=reason, last_mark=notice,
        audit_log=str(audit_log) if audit_log else None, backend=be.name,
    )
    existing = state.insert_pending(session.id, p.to_dict())
    if existing is not None:
        old = PendingLogoff.from_dict(existing)
        if countdown_alive(old):
            raise InvalidArgument(
                f"a sign-out of session {session.id} is already scheduled for "
                f"{iso(old.logoff_at)}; cancel it first (sessionctl cancel {session.id})"
            )
        state.put_pending(session.id, p.to_dict())  # a dead worker's leftover row
    try:
        pid, start = start_worker(session.id, be.name)
    except Exception:
        state.delete_pending(session.id)
        raise
    p.worker_pid, p.worker_start = pid, start
    now = time.time()
    shown_for, follow = desktop_notice(p, "first", now)
    report = send_message(session.id, notice_text(p, now, "first"), backend=be,
                          sender=f"{p.scheduled_by} (sessionctl)", audit_log=audit_log,
                          timeout=shown_for, desktop_follow=follow)
    record(p, "logoff-scheduled", notice=notice,
           delivered=[d.device for d in report.deliveries if d.ok])
    return p, report


def start_worker(session_id: str, backend_name: str | None) -> tuple[int, int | None]:
    """Start the detached countdown (supervisor + worker) and wait until it listens;
    (worker pid, its start ticks).

    Also resumes a pending logoff whose countdown is gone: the worker continues from the
    row (deadline, last reminder sent) without a new first notice. Raises SessionctlError
    when it does not start (e.g. another countdown already serves the session).
    """
    open_run_dir(create=True).close()
    read_end, write_end = os.pipe()
    # The worker is not started the way we were (python -I -S ...): see helper.py.
    argv, env = module_command("sessionctl.actions.countdown", session_id)
    env["SESSIONCTL_READY_FD"] = str(write_end)
    if backend_name:
        env["SESSIONCTL_BACKEND"] = backend_name
    with open(os.devnull, "r+b") as devnull:
        child = subprocess.Popen(
            argv,
            stdin=devnull, stdout=devnull, stderr=devnull, pass_fds=(write_end,),
            start_new_session=True, env=env, cwd="/",
        )
    os.close(write_end)
    try:
        import select

        ready, _, _ = select.select([read_end], [], [], WORKER_READY_TIMEOUT)
        reply = os.read(read_end, 4096).decode(errors="replace") if ready else ""
    finally:
        os.close(read_end)
    word, _, pid_text = reply.strip().partition(" ")
    if child.poll() is None and word != "ready":
        child.kill()  # our own child, not reaped yet
    child.wait()  # the launcher exits once the supervisor (its child) has detached
    if word != "ready" or not pid_text.isdigit():
        raise SessionctlError(f"the countdown worker did not start: {reply.strip() or 'timeout'}")
    from ..linux import proc

    stat = proc.stat(int(pid_text))
    return int(pid_text), stat.start_ticks if stat else None


def countdown_running(session_id: str) -> bool:
    """True while some process of the countdown holds its lock (root only; the lock file
    is root's). False when it is free or there is none."""
    import fcntl

    from ..linux import safepath

    try:
        with open_run_dir() as run:
            fd = safepath.open_file(run, lock_name(session_id), os.O_RDWR)
    except (FileNotFoundError, PermissionError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock if we took it
    return False


def countdown_alive(p: PendingLogoff) -> bool:
    """The countdown of ``p`` runs: its worker or supervisor is alive, or holds the lock."""
    return p.worker_alive or (os.geteuid() == 0 and countdown_running(p.session_id))


def resume_countdown(p: PendingLogoff, noticed_by: str) -> bool:
    """Start a new countdown for ``p`` whose worker and supervisor are gone; audit the
    death and the resumption. False if it did not start (the reason is audited)."""
    record(p, "logoff-worker-died", worker_pid=p.worker_pid, supervisor_pid=p.supervisor_pid,
           how="worker and supervisor gone", noticed_by=noticed_by)
    try:
        pid, _ = start_worker(p.session_id, p.backend or None)
    except SessionctlError as exc:
        if "already serves" in str(exc):
            return True  # another command resumed it meanwhile
        record(p, "logoff-resume-failed", error=str(exc), noticed_by=noticed_by)
        return False
    record(p, "logoff-worker-resumed", worker_pid=pid, noticed_by=noticed_by,
           late_by=round(max(0.0, time.time() - p.logoff_at), 1))
    return True


def resume_countdowns(noticed_by: str) -> list[PendingLogoff]:
    """Resume every pending logoff whose countdown is gone (root only; a no-op otherwise).

    Called by every root sessionctl command and each policy daemon tick, so a countdown
    whose supervisor was lost too (killed by root, a crash) is picked up again; a logoff
    past its deadline then happens at once. A row no supervisor has taken yet is left
    alone during the worker's start-up time (it is being scheduled). Returns the ones
    resumed.
    """
    if os.geteuid() != 0:
        return []
    now = time.time()
    out = []
    for p in pending_logoffs():
        starting = p.supervisor_pid is None and now - p.scheduled_at < WORKER_READY_TIMEOUT + 1
        if starting or countdown_alive(p):
            continue
        if resume_countdown(p, noticed_by):
            out.append(p)
    return out


def pending_logoffs() -> list[PendingLogoff]:
    """Every pending logoff of this boot."""
    return [PendingLogoff.from_dict(d) for d in state.all_pending()]


def get_pending(session_id: str) -> PendingLogoff | None:
    data = state.get_pending(session_id)
    return PendingLogoff.from_dict(data) if data else None


def _ask_worker(p: PendingLogoff, request: dict[str, object]) -> dict[str, object]:
    from ..linux import unixsock

    payload = json.dumps(request).encode()
    try:
        if os.geteuid() == 0:  # root connects only through the checked run directory
            with open_run_dir() as run:
                raw, server_uid = unixsock.request(
                    f"{run.proc_path}/{socket_name(p.session_id)}", payload, timeout=15)
        else:
            raw, server_uid = unixsock.request(str(socket_path(p.session_id)), payload,
                                               timeout=15)
    except PermissionError:
        raise AccessDenied(f"Access is denied: only {p.user} (or root) may postpone the "
                           f"sign-out of session {p.session_id}") from None
    except OSError as exc:
        raise SessionctlError(
            f"the countdown for session {p.session_id} is not answering ({exc.strerror or exc})"
        ) from None
    if server_uid != 0:
        raise SessionctlError(f"{socket_path(p.session_id)} is not served by root; "
                              "refusing to trust it")
    try:
        reply = json.loads(raw)
    except ValueError:
        raise SessionctlError("the countdown worker sent an unreadable reply") from None
    if not isinstance(reply, dict):
        raise SessionctlError("the countdown worker sent an unreadable reply")
    if not reply.get("ok"):
        error = str(reply.get("error", "refused"))
        kind = AccessDenied if reply.get("denied") else InvalidArgument
        raise kind(error)
    return reply


def postpone_logoff(seconds: float | None = None, session_id: str | None = None,
                    *, backend: Backend | str | None = None) -> PendingLogoff:
    """Push the pending logoff of ``session_id`` (default: our own session) back.

    Only the session's own user (or root) may; the total postponement is bounded by the
    maximum the admin set. ``None`` asks for the default (10 min, or what is left).
    """
    if session_id is None:
        session_id = find_session(None, backend=backend).id
    p = get_pending(session_id)
    if p is None:
        raise NoSuchSession(f"no sign-out is scheduled for session {session_id}")
    # Who may postpone is decided (and a refusal audited) by the countdown worker, which
    # learns the caller's uid from the kernel; the bounds are checked here for a clear error.
    if p.allowance <= 0:
        raise InvalidArgument(
            f"the sign-out of session {session_id} cannot be postponed any further "
            f"(limit {format_duration(p.max_postpone)} reached)"
        )
    if seconds is None:
        seconds = min(DEFAULT_POSTPONE, p.allowance)
    if not seconds > 0:
        raise InvalidArgument("postpone: the duration must be positive")
    if seconds > p.allowance + 0.5:
        raise InvalidArgument(
            f"postpone: at most {format_duration(p.allowance)} more is allowed "
            f"(the admin's limit is {format_duration(p.max_postpone)} in total)"
        )
    reply = _ask_worker(p, {"op": "postpone", "seconds": seconds})
    return PendingLogoff.from_dict(jsonvalues.mapping(reply, "pending"))


def cancel_logoff(session_id: str, note: str = "") -> PendingLogoff:
    """Cancel a pending logoff (root, or whoever scheduled it); ``note`` tells the user why."""
    p = get_pending(session_id)
    if p is None:
        raise NoSuchSession(f"no sign-out is scheduled for session {session_id}")
    caller = os.getuid()
    if caller not in (0, p.scheduled_by_uid):
        raise AccessDenied(
            f"Access is denied: only root or {p.scheduled_by} may cancel this sign-out"
        )
    if not countdown_alive(p):
        state.delete_pending(session_id)
        record(p, "logoff-cancelled", by=posix_caller(caller).name,
               note="countdown was not running")
        return p
    _ask_worker(p, {"op": "cancel", "note": note[:200]})
    return p


def record(p: PendingLogoff, event: str, **extra: object) -> None:
    """One audit record about a pending logoff."""
    fields_ = {
        "session": p.session_id, "session_user": p.user, "session_name": p.session_name,
        "logoff_at": iso(p.logoff_at), "scheduled_by": p.scheduled_by,
        "reason": p.reason, **extra,
    }
    with contextlib.suppress(OSError, UnsafePath):  # the countdown goes on regardless
        audit.record(event, fields_, p.audit_log)
