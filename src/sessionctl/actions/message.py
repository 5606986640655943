"""msg: put a message on every terminal (and desktop) of the target sessions.

Linux: delivery is to each tty of a session, framed like wall(1) with sender and time.
Root writes to every terminal; other users respect `mesg n` (and the kernel's tty
permissions decide the rest). With ``wait`` the message carries a token and we listen on
an abstract unix socket; the recipient answers with ``sessionctl ack`` from inside the
session, and the kernel-reported peer (uid, pid) must belong to a target session.

A backend that shows messages itself (``shows_messages``: Windows' WTSSendMessageW)
gets the text instead; its reply says whether the user pressed OK within the time.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import select
import socket
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .. import state
from ..api import sessions as list_sessions
from ..backends import get_backend
from ..backends.base import Backend, BoxReply
from ..errors import InvalidArgument, NoSuchSession
from ..host import Caller
from ..model import Session
from ..sanitize import checked_message, clean_text
from ..validate import check_target
from . import audit

if TYPE_CHECKING:
    from ..linux.desktop import Followup

ACK_PREFIX = "sessionctl-ack-"
DEFAULT_TIME = 60.0
MAX_TIME = 86400.0
MAX_TARGET_FILE = 1 << 20


@dataclass
class Delivery:
    """One place a message was (or was not) shown."""

    session_id: str
    user: str
    device: str
    status: str  # delivered, mesg-n, denied, busy, gone, not-owner, no-terminal, error,
    #              unsupported (the system only stubs its message call)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "delivered"


@dataclass
class MessageReport:
    """What msg did: deliveries, and acknowledgements when they were asked for."""

    sessions: list[Session]  # the targets: every one should see the message
    deliveries: list[Delivery] = field(default_factory=list)
    token: str | None = None
    acknowledged_by: dict[str, str] = field(default_factory=dict)  # session id -> user
    waited: float | None = None
    ack_requested: bool = False
    #: sessions of a named user (or of *) that nobody can read: no terminal, no desktop
    #: (a Disc session, a nohup job, ssh host cmd). Not targets, so not failures.
    skipped: list[Session] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool | None:
        """All reached sessions acknowledged (None when no acknowledgement was asked)."""
        if not self.ack_requested:
            return None
        reached = {d.session_id for d in self.deliveries if d.ok}
        return bool(reached) and reached <= set(self.acknowledged_by)

    def reached(self, session_id: str) -> bool:
        return any(d.ok and d.session_id == session_id for d in self.deliveries)

    @property
    def ok(self) -> bool:
        """Every target session saw the message somewhere."""
        return all(self.reached(s.id) for s in self.sessions)

    def merge(self, other: MessageReport) -> MessageReport:
        """One report for two sends (a fleet host messaging several selected sessions)."""
        waits = [w for w in (self.waited, other.waited) if w is not None]
        return MessageReport(
            self.sessions + [s for s in other.sessions if s not in self.sessions],
            self.deliveries + other.deliveries,
            token=self.token or other.token,
            acknowledged_by={**self.acknowledged_by, **other.acknowledged_by},
            waited=max(waits) if waits else None,
            ack_requested=self.ack_requested or other.ack_requested,
            skipped=self.skipped + [s for s in other.skipped if s not in self.skipped],
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "sessions": [s.id for s in self.sessions],
            "skipped": [s.id for s in self.skipped],
            "deliveries": [asdict(d) for d in self.deliveries],
            "acknowledged": self.acknowledged,
            "acknowledged_by": self.acknowledged_by,
            "waited_seconds": None if self.waited is None else round(self.waited, 2),
        }


def read_target_file(path: str) -> list[str]:
    """Targets listed in a file (one per line; blank lines and # comments skipped)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TARGET_FILE + 1)
    except OSError as exc:
        raise InvalidArgument(f"cannot read target file {path}: {exc.strerror}") from None
    if len(raw) > MAX_TARGET_FILE:
        raise InvalidArgument(f"target file {path} is larger than {MAX_TARGET_FILE} bytes")
    names = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            check_target(name)
            names.append(name)
    if not names:
        raise InvalidArgument(f"target file {path} names no session or user")
    return names


def resolve_targets(
    target: str, backend: Backend | str | None = None
) -> tuple[list[Session], list[Session]]:
    """(targets, skipped): the sessions ``target`` names (a user, session name, id,
    ``@file`` listing them, or ``*``) that can show a message, and those of a named user
    (or of ``*``) that cannot (no terminal, no desktop). A session named by its id or name
    is a target either way. Raises NoSuchSession when a name matches nothing, or a user
    has no session that can show a message."""
    be = get_backend(backend)
    found = list_sessions(backend=be)
    if target == "*":
        every = [s for s in found if has_screen(s, be)]
        if not every:
            raise NoSuchSession("No session with a terminal exists")
        return every, [s for s in found if not has_screen(s, be)]
    names = read_target_file(target[1:]) if target.startswith("@") else [target]
    chosen: list[Session] = []
    skipped: list[Session] = []
    for name in names:
        if not name.startswith("@"):
            check_target(name)
        hits = [s for s in found if s.matches(name)]
        if not hits:
            raise NoSuchSession(f"No session exists for {name}")
        named = [s for s in hits if name in (s.id, s.name)]
        of_user = [s for s in hits if s not in named]
        readable = named + [s for s in of_user if has_screen(s, be)]
        if not readable:
            ids = ", ".join(f"{s.id} ({s.state.value})" for s in of_user)
            raise NoSuchSession(
                f"No session of {name} has a terminal or desktop to show a message on "
                f"(sessions {ids})"
            )
        chosen.extend(s for s in readable if s not in chosen)
        skipped.extend(s for s in of_user if not has_screen(s, be) and s not in skipped)
    return chosen, [s for s in skipped if s not in chosen]


def has_screen(session: Session, backend: Backend) -> bool:
    """The session has somewhere to show a message: a terminal or desktop, or (a backend
    that shows messages itself) a user signed in to it. One copy: msg's ``*`` and a user's
    sessions, and the fleet dry run, all ask here."""
    if backend.shows_messages:
        return bool(session.user)
    from ..linux import desktop

    return bool(session.ttys) or desktop.is_graphical(session)


def _sender_tty() -> str:
    """The caller's terminal, as the kernel knows it (not claimed); "" if none."""
    for fd in (0, 1, 2):
        try:
            return os.ttyname(fd).removeprefix("/dev/")
        except (OSError, AttributeError):  # AttributeError: no ttys on Windows
            continue
    return ""


def frame(body: str, *, sender: str, sender_tty: str, host: str, when: datetime,
          token: str | None) -> str:
    """The text for a terminal: a wall-style header, the body, an ack hint, set off by
    blank lines (each terminal gets it in its own encoding: ``ttywrite.write_tty``)."""
    where = f" ({sender_tty})" if sender_tty else ""
    lines = [f"Message from {sender}@{host}{where} at {when.strftime('%a %b %d %H:%M:%S %Y')}:",
             "", body]
    if token:
        lines += ["", f"To acknowledge, run: sessionctl ack {token}"]
    return "\n\n" + "\n".join(clean_text(x) for x in lines) + "\n\n"


def send_message(
    target: str,
    text: str | bytes,
    *,
    wait: bool = False,
    timeout: float = DEFAULT_TIME,
    backend: Backend | str | None = None,
    sender: str | None = None,
    audit_log: str | Path | None = None,
    progress: Callable[[Delivery], None] | None = None,
    desktop_follow: Followup | None = None,
) -> MessageReport:
    """Show ``text`` on the terminals (and desktops) of the sessions ``target`` names.

    ``wait``: ask for an acknowledgement and wait up to ``timeout`` seconds for it.
    Raises InvalidArgument (bad text, target or time) or NoSuchSession before anything is
    sent. ``sender`` overrides the sender's name shown (for sessionctl's own notices).
    ``desktop_follow`` puts a button on desktop notifications (where the server supports
    actions; its callback runs as the session's user) and/or closes them when no longer
    relevant.
    """
    if not 0 < timeout <= MAX_TIME:
        raise InvalidArgument(f"time must be between 1 and {MAX_TIME:g} seconds, not {timeout}")
    body = checked_message(text)
    audit.check_path(audit_log)
    be = get_backend(backend)
    targets, skipped = resolve_targets(target, be)
    me = be.caller()
    who, who_tty = me.name, _sender_tty()
    shown = sender or who
    when = datetime.now().astimezone()
    if be.shows_messages:
        return _send_boxes(be, targets, body, shown, when, wait, timeout, progress,
                           audit_log, me, target)
    token = secrets.token_hex(6) if wait else None
    listener = _ack_listener(token) if token else None
    report = MessageReport(targets, token=token, ack_requested=wait, skipped=skipped)
    data = frame(body, sender=shown, sender_tty=who_tty if sender is None else "",
                 host=socket.gethostname(), when=when, token=token)
    try:
        for session in targets:
            for d in _deliver(session, data, body, shown, me.uid, timeout, desktop_follow):
                report.deliveries.append(d)
                if progress:
                    progress(d)
        _audit(audit_log, report, me.uid, who, target, body)
        if listener is not None:
            t0 = time.monotonic()
            _wait_acks(listener, report, be, timeout)
            report.waited = time.monotonic() - t0
            _audit_acks(audit_log, report, who)
    finally:
        if listener is not None:
            listener.close()
    return report


def _send_boxes(be: Backend, targets: list[Session], body: str, sender: str,
                when: datetime, wait: bool, timeout: float, progress, audit_log,
                caller: Caller, target: str) -> MessageReport:
    """Each target gets a message box from the backend; with ``wait`` all boxes are up at
    once and each reply says whether its user pressed OK within ``timeout``."""
    report = MessageReport(targets, ack_requested=wait)
    title = f"Message from {sender} ({when.strftime('%Y-%m-%d %H:%M')})"
    seconds = max(1, math.ceil(timeout))

    def show(session: Session) -> BoxReply | None:
        return be.message_box(session, title, body, timeout=seconds, wait=wait)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        replies = list(pool.map(show, targets))
    if wait:
        report.waited = time.monotonic() - t0
    for session, reply in zip(targets, replies, strict=True):
        assert reply is not None  # shows_messages backends answer every call
        ok = reply.status == "delivered"
        d = Delivery(session.id, session.user, session.name or f"session {session.id}",
                     reply.status, "" if ok and not wait else reply.detail)
        report.deliveries.append(d)
        if reply.acknowledged:
            report.acknowledged_by[session.id] = session.user
        if progress:
            progress(d)
    _audit(audit_log, report, caller.uid, caller.name, target, body)
    if wait:
        _audit_acks(audit_log, report, caller.name)
    return report


def _deliver(session: Session, data: str, body: str, sender: str, caller: int,
             timeout: float, follow: Followup | None = None) -> list[Delivery]:
    from ..linux import desktop, tty, ttywrite

    out = []
    devices = [path for path in map(tty.device_path, session.ttys) if path]
    for device in devices:
        owner = session.uid if session.uid >= 0 else None
        respect = caller != 0 and owner != caller
        w = ttywrite.write_tty(device, data, owner_uid=owner, respect_mesg=respect)
        out.append(Delivery(session.id, session.user, w.device, w.status, w.detail))
    _note_writes([d.device for d in out if d.ok], caller)
    if desktop.is_graphical(session):
        status, detail = desktop.notify(
            session, f"Message from {sender}", body, timeout=timeout, caller_uid=caller,
            follow=follow)
        out.append(Delivery(session.id, session.user, "desktop", status, detail))
    if not out:
        out.append(Delivery(session.id, session.user, "", "no-terminal",
                            "the session has no terminal or desktop to show it on"))
    return out


def _note_writes(devices: list[str], caller: int) -> None:
    """Record our writes (root only: state.db is root's) so the policy's "output"
    activity source does not take sessionctl's own notices for the user's."""
    if not devices or caller != 0:
        return
    with contextlib.suppress(OSError, sqlite3.Error):
        state.note_tty_writes([d.removeprefix("/dev/") for d in devices], time.time())


def _ack_listener(token: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.bind("\0" + ACK_PREFIX + token)
    sock.listen(16)
    sock.setblocking(False)
    return sock


def _wait_acks(listener: socket.socket, report: MessageReport, be: Backend,
               timeout: float) -> None:
    from ..linux import unixsock

    reached = {s.id: s for s in report.sessions if report.reached(s.id)}
    deadline = time.monotonic() + timeout
    while reached and set(reached) - set(report.acknowledged_by):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([listener], [], [], left)
        if not ready:
            continue
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            continue
        with conn:
            pid, uid, _ = unixsock.peer(conn)
            try:
                unixsock.read_request(conn, limit=64, timeout=1.0)
                hit = _acking_session(reached, be, pid, uid)
                if hit is None:
                    conn.sendall(b"refused: you are not in a session this message went to\n")
                    continue
                report.acknowledged_by[hit.id] = hit.user
                conn.sendall(f"ok {hit.id}\n".encode())
            except OSError:
                continue


def _acking_session(reached: dict[str, Session], be: Backend, pid: int,
                    uid: int) -> Session | None:
    """The target session the acknowledging process belongs to (by uid and membership)."""
    for s in reached.values():
        if s.uid != uid:
            continue
        member = be.is_member(s, pid)
        if member or (member is None and len([x for x in reached.values() if x.uid == uid]) == 1):
            return s
    return None


def acknowledge(token: str | None = None) -> list[tuple[str, str]]:
    """Answer waiting messages (all of them, or the one ``token`` names).

    Returns (token, reply) pairs; an empty list when nothing waits for an answer.
    """
    if token is not None and not token.isalnum():
        raise InvalidArgument(f"{token!r} is not an acknowledgement token")
    from ..linux import unixsock

    names = unixsock.abstract_names(ACK_PREFIX + (token or ""))
    replies = []
    for name in names:
        try:
            raw, _ = unixsock.request("\0" + name, b"ack\n", timeout=5.0)
        except OSError:
            continue
        replies.append((name.removeprefix(ACK_PREFIX), raw.decode(errors="replace").strip()))
    return replies


def _audit(path, report: MessageReport, caller_uid: int, who: str, target: str,
           body: str) -> None:
    fields = {
        "caller_uid": caller_uid,
        "caller": who,
        "target": target,
        "sessions": [s.id for s in report.sessions],
        "chars": len(body),
        "deliveries": [asdict(d) for d in report.deliveries],
        "ack_requested": report.ack_requested,
    }
    with contextlib.suppress(OSError):
        audit.record("message", fields, path)


def _audit_acks(path, report: MessageReport, who: str) -> None:
    with contextlib.suppress(OSError):
        audit.record("message-ack", {"caller": who, "acknowledged_by": report.acknowledged_by,
                                     "waited": report.waited}, path)
