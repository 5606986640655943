"""The remote end of a fleet run: one JSON request in argv, one JSON answer on stdout.

Runs on the remote host from the shipped zip (see payload.py); imports only sessionctl's
core. Our own SSH session (the one this agent runs in) is never listed or acted on.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..actions.reports import about
from ..errors import InvalidArgument, SessionctlError
from ..jsonvalues import mapping, number, text
from .select import Selection

if TYPE_CHECKING:
    from ..model import Session

#: Requests this agent understands (the client checks the version it shipped).
OPS = ("query", "logoff", "msg", "disconnect")


def _sessions(req: dict[str, object]) -> list[Session]:
    from .. import api

    found = api.sessions(text(req, "target"), backend=text(req, "backend"))
    return [s for s in found if not s.current]


def _query(req: dict[str, object]) -> list[dict[str, object]]:
    return [s.to_dict() for s in _sessions(req)]


def _chosen(req: dict[str, object]) -> list[Session]:
    """Sessions a logoff/msg request names: one target id/name, or a selection."""
    from .. import api

    selection = Selection.from_dict(mapping(req, "select"))
    if req.get("target") is not None and selection.empty:
        session = api.find_session(str(req["target"]), backend=text(req, "backend"))
        if session.current:
            raise InvalidArgument("refusing to act on the SSH session sessionctl runs in")
        return [session]
    if selection.empty:
        raise InvalidArgument("no session selection given")
    return [s for s in _sessions({"backend": req.get("backend")}) if selection.matches(s)]


def _grace(req: dict[str, object]) -> float:
    from ..actions.logoff import DEFAULT_GRACE

    grace = number(req, "grace")
    return DEFAULT_GRACE if grace is None else grace


def _logoff(req: dict[str, object]) -> list[dict[str, object]]:
    from ..actions.logoff import logoff
    from ..model import State

    chosen = _chosen(req)
    if not req.get("allow_console"):
        chosen = [s for s in chosen if not s.console]
    if req.get("dry_run"):
        return [{"session": s.to_dict(), "outcome": "would-log-off"} for s in chosen]
    if req.get("notice") is not None:
        return [_schedule(req, s) for s in chosen]

    def one(session: Session) -> dict[str, object]:
        try:
            result = logoff(
                session.id,
                grace=_grace(req),
                backend=text(req, "backend"),
                allow_console=bool(req.get("allow_console")),
                audit_log=text(req, "audit_log"),
            )
            return result.to_dict()
        except SessionctlError as exc:
            gone = type(exc).__name__ == "NoSuchSession" and session.state is not State.ACTIVE
            return {
                **about(session),
                "outcome": "gone" if gone else "failed",
                "error": str(exc),
            }

    if not chosen:
        return []
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, len(chosen))) as pool:
        return list(pool.map(one, chosen))


def _disconnect(req: dict[str, object]) -> list[dict[str, object]]:
    """Disconnect one target or every session a selection names. With a selection, only
    sessions that can be disconnected (a multiplexer keeps their work) are acted on; the
    others are listed as "refused" with the reason."""
    from ..actions.disconnect import disconnect, refusal
    from ..backends import get_backend

    be = get_backend(text(req, "backend"))
    selection = Selection.from_dict(mapping(req, "select"))
    single = req.get("target") is not None and selection.empty
    chosen = _chosen(req) if single else [
        s for s in _sessions({"backend": be.name}) if selection.matches(s)]
    out: list[dict[str, object]] = []
    todo: list[Session] = []
    for s in chosen:
        why = None if single else refusal(be, s)
        if why is not None:
            out.append({**about(s), "outcome": "refused", "error": why})
        elif req.get("dry_run"):
            out.append({"session": s.to_dict(), "outcome": "would-disconnect"})
        else:
            todo.append(s)
    for s in todo:
        try:
            result = disconnect(s.id, backend=be, audit_log=text(req, "audit_log"))
            out.append(result.to_dict())
        except SessionctlError as exc:
            out.append({**about(s),
                        "outcome": "refused" if type(exc).__name__ in (
                            "NotPossible", "AccessDenied") else "failed", "error": str(exc)})
    return out


def _schedule(req: dict[str, object], session) -> dict[str, object]:
    """A warned logoff of one session on this host (the countdown worker stays here)."""
    from ..actions.schedule import DEFAULT_MAX_POSTPONE, iso, schedule_logoff

    base = about(session)
    most = number(req, "max_postpone")
    notice = number(req, "notice")
    try:
        if notice is None:
            raise InvalidArgument("notice: a number of seconds is needed")
        p, report = schedule_logoff(
            session.id,
            notice,
            message=text(req, "message") or None,
            max_postpone=DEFAULT_MAX_POSTPONE if most is None else most,
            grace=_grace(req),
            allow_console=bool(req.get("allow_console")),
            backend=text(req, "backend"),
            audit_log=text(req, "audit_log"),
        )
    except SessionctlError as exc:
        return {**base, "outcome": "failed", "error": str(exc)}
    return {**base, "outcome": "scheduled", "logoff_at": iso(p.logoff_at),
            "warned_on": [d.device for d in report.deliveries if d.ok]}


def _msg(req: dict[str, object]) -> dict[str, object]:
    """Send a message: to ``target`` (user, session, id or *) and/or a selection.

    The result is what the local ``msg --json`` prints (one report per host).
    """
    from ..actions.message import DEFAULT_TIME, MessageReport, resolve_targets, send_message

    body = text(req, "text") or ""
    target = text(req, "target") or "*"
    wait = bool(req.get("wait"))
    timeout = number(req, "timeout") or DEFAULT_TIME
    backend = text(req, "backend")
    selection = Selection.from_dict(mapping(req, "select"))
    if selection.empty:
        if req.get("dry_run"):  # the sessions a real send would reach, found the same way
            found, skipped = resolve_targets(target, backend)
            return {"sessions": [s.id for s in found], "skipped": [s.id for s in skipped],
                    "deliveries": [], "dry_run": True}
        report = send_message(target, body, wait=wait, timeout=timeout, backend=backend)
        return report.to_dict()
    found = _sessions({"target": None if target == "*" else target, "backend": backend})
    chosen = [s for s in found if selection.matches(s)]
    if req.get("dry_run"):
        return {"sessions": [s.id for s in chosen], "deliveries": [], "dry_run": True}
    merged: MessageReport | None = None
    for s in chosen:
        part = send_message(s.id, body, wait=wait, timeout=timeout, backend=backend)
        merged = part if merged is None else merged.merge(part)
    if merged is None:
        return {"sessions": [], "deliveries": [], "acknowledged": None,
                "acknowledged_by": {}, "waited_seconds": None}
    return merged.to_dict()


def _resume_countdowns() -> None:
    """As every root sessionctl command does: resume countdowns whose worker died."""
    with contextlib.suppress(Exception):
        from ..actions.resume import resume_dead_countdowns

        resume_dead_countdowns(noticed_by="sessionctl fleet agent")


def main(argv: Sequence[str]) -> int:
    """Answer one request; errors become {"ok": false, "error": ...}, never a traceback."""
    _resume_countdowns()
    try:
        req = json.loads(argv[0]) if argv else {}
        if not isinstance(req, dict):
            raise InvalidArgument("the request is not a JSON object")
        op = req.get("op")
        handlers: dict[object, Callable[[dict[str, object]], object]] = {
            "query": _query, "logoff": _logoff, "msg": _msg, "disconnect": _disconnect,
        }
        handler = handlers.get(op)
        if handler is None:
            raise InvalidArgument(f"unknown request {op!r}")
        answer: dict[str, object] = {"ok": True, "result": handler(req)}
    except SessionctlError as exc:
        answer = {"ok": False, "error": str(exc), "kind": type(exc).__name__}
    except Exception as exc:  # report, don't crash: the client shows it as a remote error
        answer = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
    if answer.get("ok") and req.get("op") == "query" and req.get("serve"):
        with contextlib.suppress(Exception):  # the fast path is optional; the answer stands
            answer["agent"] = _serve(req)
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0


# -- the query server that lives as long as our SSH connection (reuse fast path) ------------


def _serve(req: dict[str, object]) -> str:
    """Start (once per SSH connection) a query server on a private unix socket; its path.

    The server is a forked child of this agent: it answers query requests (one JSON line in,
    one out) arriving through the socket, which our client reaches through a forward on its
    own ControlMaster connection. It exits when the SSH connection it was started from ends
    or after ``idle`` seconds without a request. It never installs anything.
    """
    import os
    import socket

    home = os.path.dirname(sys.path[0])  # the directory the loader keeps the zip in
    tag = os.path.basename(sys.path[0]).split("-")[-1][:16]
    path = os.path.join(home, f"agent-{tag}-{os.getppid()}.sock")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return path  # already serving this connection
    except OSError:
        pass
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    idle = number(req, "idle") or 600.0
    connection = os.getppid()  # the sshd process of our SSH connection
    backend = req.get("backend")
    if os.fork() != 0:
        listener.close()
        return path
    try:  # the server: detached, quiet, bounded
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        _serve_loop(listener, path, connection, idle, backend)
    finally:
        os._exit(0)


def _serve_loop(listener, path: str, connection: int, idle: float, backend: object) -> None:
    import os
    import selectors
    import time

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    try:
        gone = os.pidfd_open(connection)
        selector.register(gone, selectors.EVENT_READ, "gone")
    except (OSError, AttributeError):
        pass  # no pidfd: the idle limit alone ends us
    last = time.monotonic()
    try:
        while True:
            events = selector.select(timeout=max(0.0, last + idle - time.monotonic()))
            if not events:
                return
            for key, _ in events:
                if key.data == "gone":
                    return
                conn, _ = listener.accept()
                last = time.monotonic()
                with conn:
                    _answer(conn, backend)
    finally:
        try:
            if os.stat(path).st_ino == os.fstat(listener.fileno()).st_ino:
                os.unlink(path)
        except OSError:
            pass


def _answer(conn, backend: object) -> None:
    conn.settimeout(10)
    data = b""
    try:
        while not data.endswith(b"\n") and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        req = json.loads(data)
        if req.get("op") != "query":  # the fast path only ever reads
            raise InvalidArgument("only queries are served here")
        answer: dict[str, object] = {"ok": True, "result": _query({**req, "backend": backend})}
    except SessionctlError as exc:
        answer = {"ok": False, "error": str(exc), "kind": type(exc).__name__}
    except Exception as exc:
        answer = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(answer).encode() + b"\n")
