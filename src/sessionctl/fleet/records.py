"""Session objects back from the JSON a remote host sent (the local --json shape)."""

from __future__ import annotations

from datetime import datetime

from .. import jsonvalues
from ..model import ProcessRef, Session, State

_FIELDS = {
    "id", "name", "user", "uid", "state", "type", "device", "remote_host", "service",
    "login_time", "idle_seconds", "leader_pid", "pids", "current", "console", "ttys", "backend",
}


def session_from_dict(data: dict[str, object]) -> Session:
    """A Session from one remote session object (pids become bare ProcessRefs)."""
    login = data.get("login_time")
    uid = jsonvalues.whole(data, "uid")
    return Session(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        user=str(data.get("user") or ""),
        uid=-1 if uid is None else uid,
        state=State(str(data.get("state", "Active"))),
        type=str(data.get("type") or ""),
        device=str(data.get("device") or ""),
        remote_host=str(data.get("remote_host") or ""),
        service=str(data.get("service") or ""),
        login_time=datetime.fromisoformat(login) if isinstance(login, str) else None,
        idle_seconds=jsonvalues.number(data, "idle_seconds"),
        leader_pid=jsonvalues.whole(data, "leader_pid"),
        processes=tuple(
            ProcessRef(p, 0, 0, 0) for p in jsonvalues.items(data, "pids") if isinstance(p, int)
        ),
        current=bool(data.get("current")),
        console=bool(data.get("console")),
        ttys=jsonvalues.strings(data, "ttys"),
        backend=str(data.get("backend") or ""),
        extra={k: v for k, v in data.items() if k not in _FIELDS},
    )


def sessions_of(result: object) -> list[Session]:
    """Sessions from a HostResult.result of a query (empty for anything else)."""
    if not isinstance(result, list):
        return []
    return [session_from_dict(d) for d in result if isinstance(d, dict) and "id" in d]
