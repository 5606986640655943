"""Session objects back from the JSON a remote host sent (the local --json shape)."""

from __future__ import annotations

from datetime import datetime

from ..model import ProcessRef, Session, State

_FIELDS = {
    "id", "name", "user", "uid", "state", "type", "device", "remote_host", "service",
    "login_time", "idle_seconds", "leader_pid", "pids", "current", "console", "ttys", "backend",
    "display", "protocol", "remote", "client_address", "idle_source",
}


def session_from_dict(data: dict[str, object]) -> Session:
    """A Session from one remote session object (pids become bare ProcessRefs)."""
    login = data.get("login_time")
    pids = data.get("pids") or []
    return Session(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        user=str(data.get("user") or ""),
        uid=int(data.get("uid", -1)),  # type: ignore[call-overload]
        state=State(data.get("state", "Active")),
        type=str(data.get("type") or ""),
        device=str(data.get("device") or ""),
        remote_host=str(data.get("remote_host") or ""),
        service=str(data.get("service") or ""),
        login_time=datetime.fromisoformat(login) if isinstance(login, str) else None,
        idle_seconds=data.get("idle_seconds"),  # type: ignore[arg-type]
        leader_pid=data.get("leader_pid"),  # type: ignore[arg-type]
        processes=tuple(ProcessRef(int(p), 0, 0, 0) for p in pids),  # type: ignore[union-attr]
        current=bool(data.get("current")),
        console=bool(data.get("console")),
        ttys=tuple(data.get("ttys") or ()),  # type: ignore[arg-type]
        backend=str(data.get("backend") or ""),
        display=str(data.get("display") or ""),
        protocol=str(data.get("protocol") or ""),
        remote=None if data.get("remote") is None else bool(data.get("remote")),
        client_address=str(data.get("client_address") or ""),
        idle_source=str(data.get("idle_source") or ""),
        extra={k: v for k, v in data.items() if k not in _FIELDS},
    )


def sessions_of(result: object) -> list[Session]:
    """Sessions from a HostResult.result of a query (empty for anything else)."""
    if not isinstance(result, list):
        return []
    return [session_from_dict(d) for d in result if isinstance(d, dict) and "id" in d]
