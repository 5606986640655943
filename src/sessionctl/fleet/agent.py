"""The remote end of a fleet run: one JSON request in argv, one JSON answer on stdout.

Runs on the remote host from the shipped zip (see payload.py); imports only sessionctl's
core. Our own SSH session (the one this agent runs in) is never listed or acted on.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from ..errors import InvalidArgument, SessionctlError
from .select import Selection

#: Requests this agent understands (the client checks the version it shipped).
OPS = ("query", "logoff", "msg")


def _sessions(req: dict[str, object]):
    from .. import api

    target = req.get("target")
    found = api.sessions(target, backend=req.get("backend"))  # type: ignore[arg-type]
    return [s for s in found if not s.current]


def _query(req: dict[str, object]) -> list[dict[str, object]]:
    return [s.to_dict() for s in _sessions(req)]


def _chosen(req: dict[str, object]):
    """Sessions a logoff/msg request names: one target id/name, or a selection."""
    from .. import api

    selection = Selection.from_dict(req.get("select") or {})  # type: ignore[arg-type]
    if req.get("target") is not None and selection.empty:
        session = api.find_session(str(req["target"]), backend=req.get("backend"))  # type: ignore[arg-type]
        if session.current:
            raise InvalidArgument("refusing to act on the SSH session sessionctl runs in")
        return [session]
    if selection.empty:
        raise InvalidArgument("no session selection given")
    return [s for s in _sessions({"backend": req.get("backend")}) if selection.matches(s)]


def _logoff(req: dict[str, object]) -> list[dict[str, object]]:
    from ..actions.logoff import logoff
    from ..model import State

    chosen = _chosen(req)
    if not req.get("allow_console"):
        chosen = [s for s in chosen if not s.console]
    if req.get("dry_run"):
        return [{"session": s.to_dict(), "outcome": "would-log-off"} for s in chosen]

    def one(session) -> dict[str, object]:
        try:
            result = logoff(
                session.id,
                grace=float(req.get("grace", 10.0)),  # type: ignore[arg-type]
                backend=req.get("backend"),  # type: ignore[arg-type]
                allow_console=bool(req.get("allow_console")),
                audit_log=req.get("audit_log"),  # type: ignore[arg-type]
            )
            return result.to_dict()
        except SessionctlError as exc:
            gone = type(exc).__name__ == "NoSuchSession" and session.state is not State.ACTIVE
            return {
                "session": session.id,
                "user": session.user,
                "name": session.name,
                "outcome": "gone" if gone else "failed",
                "error": str(exc),
            }

    if not chosen:
        return []
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, len(chosen))) as pool:
        return list(pool.map(one, chosen))


def _msg(req: dict[str, object]) -> list[dict[str, object]]:
    import sessionctl

    send = getattr(sessionctl, "send_message", None)
    if send is None:
        raise InvalidArgument("this sessionctl version cannot send messages")
    chosen = _chosen(req)
    text = str(req.get("text", ""))
    if req.get("dry_run"):
        return [{"session": s.to_dict(), "outcome": "would-send"} for s in chosen]
    out = []
    for s in chosen:
        report = send(s.id, text, timeout=float(req.get("timeout", 60)))  # type: ignore[arg-type]
        out.append(report.to_dict() if hasattr(report, "to_dict") else _report_dict(report))
    return out


def _report_dict(report: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(report):
        return asdict(report)  # type: ignore[arg-type]
    return {"report": str(report)}


def main(argv: Sequence[str]) -> int:
    """Answer one request; errors become {"ok": false, "error": ...}, never a traceback."""
    try:
        req = json.loads(argv[0]) if argv else {}
        op = req.get("op")
        handler = {"query": _query, "logoff": _logoff, "msg": _msg}.get(op)
        if handler is None:
            raise InvalidArgument(f"unknown request {op!r}")
        answer: dict[str, object] = {"ok": True, "result": handler(req)}
    except SessionctlError as exc:
        answer = {"ok": False, "error": str(exc), "kind": type(exc).__name__}
    except Exception as exc:  # report, don't crash: the client shows it as a remote error
        answer = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0
