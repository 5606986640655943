"""Disconnect (Windows' tsdiscon): end a session's connection, keep its work.

The user's connection ends as if the network had dropped: tmux/screen clients attached
from elsewhere are detached (through the server's own socket, as its owner, bounded in
time), then the connection process itself gets SIGTERM through a pidfd (sshd's session
process: it closes the connection, hangs up the terminal and records the logout). The
multiplexer servers and everything running below them keep running under the same PIDs;
the session becomes Disc, and the user gets it back with ``tmux attach`` /
``screen -r`` from a new login.

Refused, with nothing touched: a session with nothing that would keep running (no
multiplexer: that would be a sign-out in disguise), one already disconnected, the
console, another user's session (unless root), a connection of a kind we cannot end.

Afterwards the result is checked, not assumed: the connection process has exited, the
session lists as Disc, and every process of the kept work is alive with its start time.
Anything else is reported as ``incomplete`` with what did not happen.

A backend with a disconnect of its own (Windows: WTSDisconnectSession) does it there,
read back. On Linux (actions/linux_disconnect.py) connections are ended by protocol
(``Session.protocol``): ``linux_disconnect.CLOSERS`` maps each one we can end to the
function that ends it (ssh here; other kinds plug in the same way).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..backends.base import Backend
from ..errors import AccessDenied, NotPossible
from ..model import Session, State
from . import audit
from .logoff import check_permission, resolve
from .reports import DisconnectResult

DEFAULT_TIMEOUT = 10.0
POLL = 0.1


def refusal(be: Backend, session: Session) -> str | None:
    """Why ``session`` cannot be disconnected as it stands (None: it can), permission
    aside. What the backend disconnects itself (every Windows session, a VNC desktop)
    keeps its work; for the rest something must keep running (tmux/screen: see
    linux_disconnect.refusal)."""
    if session.state is State.DISC:
        return f"session {session.id} ({session.user}) is already disconnected"
    if be.disconnects_itself(session):
        return None
    from .linux_disconnect import refusal as linux_refusal

    return linux_refusal(be, session)


def disconnect(
    target: str | None = None,
    *,
    backend: Backend | str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    audit_log: str | Path | None = None,
    caller_uid: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> DisconnectResult:
    """Disconnect the session ``target`` (id or active session name; None: our own).

    Raises NoSuchSession, InvalidArgument, AccessDenied, NotPossible or UnsafePath (the
    audit log) before anything is touched. Returns a DisconnectResult whose ``outcome``
    says whether everything checked out afterwards (``disconnected``) or not
    (``incomplete``, with ``problems``).
    """
    audit.check_path(audit_log)  # a log root cannot trust stops us before anything
    be, caller, session, base = resolve(target, backend, caller_uid)
    what = f"session {session.id} ({session.user}{', ' + session.name if session.name else ''})"
    try:
        check_permission(session, caller, "disconnect")
        if session.state is State.DISC:
            raise NotPossible(f"{what} is already disconnected")
    except (AccessDenied, NotPossible) as exc:
        _audit(audit_log, {**base, "outcome": "refused", "reason": str(exc)})
        raise
    t0 = time.monotonic()
    native = be.disconnect(session)  # the backend's own (Windows, VNC), read back; or None
    if native is not None:
        result = DisconnectResult(session, "incomplete", state=native.state.value
                                  if native.state else "", steps=[native.detail])
        if not native.verified:
            result.problems.append(native.detail)
    else:
        from . import linux_disconnect

        why = refusal(be, session)
        if why is not None:
            _audit(audit_log, {**base, "outcome": "refused", "reason": why})
            raise NotPossible(why)
        result = linux_disconnect.run(be, session, timeout, progress)
    result.outcome = "disconnected" if not result.problems else "incomplete"
    result.seconds = time.monotonic() - t0
    result.audit_path = _audit(audit_log, {**base, **result.to_dict()})
    return result


def _audit(path: str | Path | None, fields: dict[str, object]) -> str | None:
    try:
        return str(audit.record("disconnect", fields, path))
    except OSError:
        return None


__all__ = ["DEFAULT_TIMEOUT", "DisconnectResult", "disconnect", "refusal"]
