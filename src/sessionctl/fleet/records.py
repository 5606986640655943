"""What a remote host answered, checked against the shapes the local ``--json`` prints.

A host is not trusted: its answer is checked field by field before anything uses it
(``check_result``), and a record that does not fit is that host's ``error`` with a short
reason (``BadRecord``), never an exception that ends the run. Known fields must have their
type (a state from :class:`State`, integers for uids and PIDs, ISO times, numbers for
durations...); unknown fields of a session are kept in ``Session.extra``. Session objects
are rebuilt with every field of the local JSON (``session_from_dict``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

from .. import jsonvalues
from ..model import Multiplexer, MuxClient, ProcessRef, Session, State

MAX_TEXT = 4096  # characters in one string field
MAX_ITEMS = 100_000  # entries in one list
_STATES = {s.value for s in State}


class BadRecord(ValueError):
    """A remote record that does not fit its schema; the text is the short reason."""


Check = Callable[[object, str], object]


def _fail(where: str, what: str) -> BadRecord:
    return BadRecord(f"{where} {what}" if where else what)


def text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, "is not text")
    if len(value) > MAX_TEXT:
        raise _fail(where, f"is longer than {MAX_TEXT} characters")
    return value


def integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, "is not an integer")
    if not -(2**63) <= value < 2**63:
        raise _fail(where, "is out of range")
    return value


def pid(value: object, where: str) -> int:
    number = integer(value, where)
    if number <= 0:
        raise _fail(where, "is not a process id")
    return number


def number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, "is not a number")
    try:
        ok = math.isfinite(value) and value >= 0
    except OverflowError:
        ok = False
    if not ok:
        raise _fail(where, "is not a finite number >= 0")
    return float(value)


def boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, "is not true or false")
    return value


def iso_time(value: object, where: str) -> datetime:
    raw = text(value, where)
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise _fail(where, "is not an ISO date and time") from None


def state(value: object, where: str) -> str:
    if not isinstance(value, str) or value not in _STATES:
        raise _fail(where, "is not a session state")
    return value


def optional(check: Check) -> Check:
    def inner(value: object, where: str) -> object:
        return None if value is None else check(value, where)
    return inner


def list_of(check: Check) -> Check:
    def inner(value: object, where: str) -> object:
        if not isinstance(value, list):
            raise _fail(where, "is not a list")
        if len(value) > MAX_ITEMS:
            raise _fail(where, f"has more than {MAX_ITEMS} entries")
        for i, item in enumerate(value):
            check(item, f"{where}[{i}]")
        return value
    return inner


def record(fields: dict[str, tuple[Check, bool]], noun: str = "", name: str = "") -> Check:
    """A JSON object: each known field (check, required); other fields pass unchecked.
    Reasons name it as ``noun`` plus its ``name`` field (``session '42'``) when it has one."""
    def inner(value: object, where: str) -> object:
        if not isinstance(value, dict):
            raise _fail(where, "is not an object")
        label = where
        if name and isinstance(value.get(name), str):
            label = f"{noun} {value[name][:40]!r}"
        for key, (check, required) in fields.items():
            if key in value:
                check(value[key], f"{label} {key}".strip())
            elif required:
                raise _fail(label, f"has no {key}")
        return value
    return inner


def _names(value: object, where: str) -> object:
    if not isinstance(value, dict):
        raise _fail(where, "is not an object")
    for key, item in value.items():
        text(key, where)
        text(item, f"{where} {key[:40]!r}")
    return value


MUX_CLIENT = record({
    "pid": (optional(pid), True), "tty": (text, False), "user": (text, False),
    "session": (optional(text), False), "activity": (optional(number), False),
})
MULTIPLEXER = record({
    "kind": (text, True), "pid": (pid, True), "name": (text, False),
    "attached": (boolean, False), "clients": (list_of(MUX_CLIENT), False),
    "terminals": (list_of(text), False),
})
SESSION_FIELDS: dict[str, tuple[Check, bool]] = {
    "id": (text, True), "name": (text, False), "user": (text, False),
    "uid": (integer, True), "state": (state, True), "type": (text, False),
    "device": (text, False), "remote_host": (text, False), "service": (text, False),
    "login_time": (optional(iso_time), False), "idle_seconds": (optional(number), False),
    "leader_pid": (optional(pid), False), "pids": (list_of(pid), False),
    "current": (boolean, False), "console": (boolean, False), "ttys": (list_of(text), False),
    "backend": (text, False), "logoff_at": (optional(iso_time), False),
    "display": (text, False), "protocol": (text, False), "remote": (optional(boolean), False),
    "client_address": (text, False), "idle_source": (optional(text), False),
    "multiplexers": (list_of(MULTIPLEXER), False), "attached_from": (list_of(text), False),
}
SESSION = record(SESSION_FIELDS, "session", "id")
STEP = record({
    "name": (text, True), "signal": (text, False), "signalled": (integer, False),
    "remaining": (integer, False), "seconds": (number, False), "detail": (text, False),
})
LOGOFF_ITEM = record({  # a logoff's result, a failure, or a scheduled warned logoff
    "session": (text, True), "outcome": (text, True), "user": (text, False),
    "name": (text, False), "steps": (list_of(STEP), False),
    "remaining": (list_of(pid), False), "not_permitted": (list_of(pid), False),
    "record_closed": (boolean, False), "seconds": (number, False), "error": (text, False),
    "logoff_at": (text, False), "warned_on": (list_of(text), False),
}, "session", "session")
DRY_RUN_ITEM = record({"session": (SESSION, True), "outcome": (text, True)})
DELIVERY = record({
    "session_id": (text, True), "user": (text, False), "device": (text, False),
    "status": (text, True), "detail": (text, False),
})
MSG_REPORT = record({
    "sessions": (list_of(text), True), "deliveries": (list_of(DELIVERY), True),
    "skipped": (list_of(text), False),
    "acknowledged": (optional(boolean), False), "acknowledged_by": (_names, False),
    "waited_seconds": (optional(number), False), "dry_run": (boolean, False),
})


DISCONNECT_ITEM = record({  # a disconnect's result, a refusal or a failure
    "session": (text, True), "outcome": (text, True), "user": (text, False),
    "name": (text, False), "connections": (list_of(pid), False),
    "detached": (list_of(text), False), "kept": (list_of(pid), False),
    "lost": (list_of(pid), False), "problems": (list_of(text), False), "state": (text, False),
    "seconds": (number, False), "steps": (list_of(text), False), "error": (text, False),
}, "session", "session")


def _logoff_item(value: object, where: str) -> object:
    if isinstance(value, dict) and isinstance(value.get("session"), dict):
        return DRY_RUN_ITEM(value, where)
    return LOGOFF_ITEM(value, where)


def _disconnect_item(value: object, where: str) -> object:
    if isinstance(value, dict) and isinstance(value.get("session"), dict):
        return DRY_RUN_ITEM(value, where)
    return DISCONNECT_ITEM(value, where)


#: The result each request op answers with (the local --json shape of that command).
RESULTS: dict[str, Check] = {
    "query": list_of(SESSION),
    "logoff": list_of(_logoff_item),
    "msg": MSG_REPORT,
    "disconnect": list_of(_disconnect_item),
}


def check_result(op: str, result: object) -> object:
    """``result`` unchanged if it fits what ``op`` answers; BadRecord (short reason) if not."""
    check = RESULTS.get(op)
    if check is None:
        raise BadRecord(f"no schema for {op!r} answers")
    check(result, "answer")
    return result


def session_from_dict(data: dict[str, object]) -> Session:
    """A Session from one remote session object, every field of the local JSON (pids
    become bare ProcessRefs). Raises BadRecord if it does not fit the schema."""
    SESSION(data, "session")  # checked: the typed reads below find what they expect
    login, logoff_at = data.get("login_time"), data.get("logoff_at")
    uid, remote = jsonvalues.whole(data, "uid"), data.get("remote")
    return Session(
        id=str(data["id"]),
        name=jsonvalues.text(data, "name") or "",
        user=jsonvalues.text(data, "user") or "",
        uid=-1 if uid is None else uid,
        state=State(str(data["state"])),
        type=jsonvalues.text(data, "type") or "",
        device=jsonvalues.text(data, "device") or "",
        remote_host=jsonvalues.text(data, "remote_host") or "",
        service=jsonvalues.text(data, "service") or "",
        login_time=datetime.fromisoformat(login) if isinstance(login, str) else None,
        idle_seconds=jsonvalues.number(data, "idle_seconds"),
        leader_pid=jsonvalues.whole(data, "leader_pid"),
        processes=tuple(
            ProcessRef(p, 0, 0, 0) for p in jsonvalues.items(data, "pids") if isinstance(p, int)
        ),
        current=bool(data.get("current")),
        console=bool(data.get("console")),
        ttys=jsonvalues.strings(data, "ttys"),
        backend=jsonvalues.text(data, "backend") or "",
        logoff_at=datetime.fromisoformat(logoff_at) if isinstance(logoff_at, str) else None,
        display=jsonvalues.text(data, "display") or "",
        protocol=jsonvalues.text(data, "protocol") or "",
        remote=remote if isinstance(remote, bool) else None,
        client_address=jsonvalues.text(data, "client_address") or "",
        idle_source=jsonvalues.text(data, "idle_source") or "",
        multiplexers=tuple(
            _multiplexer(m) for m in jsonvalues.items(data, "multiplexers") if isinstance(m, dict)
        ),
        attached_from=jsonvalues.strings(data, "attached_from"),
        extra={k: v for k, v in data.items() if k not in SESSION_FIELDS},
    )


def _multiplexer(m: dict[str, object]) -> Multiplexer:
    return Multiplexer(
        kind=str(m["kind"]), pid=jsonvalues.whole(m, "pid") or 0,
        name=jsonvalues.text(m, "name") or "", attached=bool(m.get("attached")),
        clients=tuple(MuxClient(
            pid=jsonvalues.whole(c, "pid"), tty=jsonvalues.text(c, "tty") or "",
            user=jsonvalues.text(c, "user") or "", session_id=jsonvalues.text(c, "session"),
            activity=jsonvalues.number(c, "activity"),
        ) for c in jsonvalues.items(m, "clients") if isinstance(c, dict)),
        terminals=jsonvalues.strings(m, "terminals"),
    )


def sessions_of(result: object) -> list[Session]:
    """Sessions from a checked HostResult.result of a query (empty for anything else)."""
    if not isinstance(result, list):
        return []
    return [session_from_dict(d) for d in result if isinstance(d, dict)]
