"""The public Python API; every front end is a thin shell over these functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from .backends import get_backend
from .backends.base import Backend
from .errors import InvalidArgument, NoSuchSession
from .jsonvalues import number
from .model import Session, State, UserSummary
from .validate import check_target


def sessions(
    target: str | None = None,
    *,
    backend: Backend | str | None = None,
    processes: bool = True,
) -> list[Session]:
    """Sessions on this machine, optionally only those a user name, session name or id names.

    An unknown target gives an empty list; a target that cannot be a name raises
    InvalidArgument. ``processes=False``: the caller does not look at
    ``Session.processes``, which the backend may then leave empty where finding them is
    costly (see Backend.overview).
    """
    if target is not None:
        check_target(target)
    be = get_backend(backend)
    found = with_pending(be.sessions() if processes else be.overview())
    return [s for s in found if target is None or s.matches(target)]


def with_pending(found: list[Session]) -> list[Session]:
    """Sessions with ``logoff_at`` set where a warned logoff is pending (state.db)."""
    from . import state

    pending = {str(d.get("session_id")): d for d in state.all_pending()}
    if not pending:
        return found
    out = []
    for s in found:
        d = pending.get(s.id)
        at = number(d, "logoff_at") if d else None
        if d and at is not None and d.get("uid") == s.uid:
            s = replace(s, logoff_at=datetime.fromtimestamp(at).astimezone())
        out.append(s)
    return out


def users(target: str | None = None, *, backend: Backend | str | None = None) -> list[UserSummary]:
    """One summary per user with sessions, in order of the first session's id (sessions
    nobody is signed in to, such as Windows' services and listener sessions, left out)."""
    by_user: dict[str, list[Session]] = {}
    for s in sessions(target, backend=backend):
        if not s.user:
            continue
        by_user.setdefault(s.user, []).append(s)
    return [UserSummary(user, group[0].uid, tuple(group)) for user, group in by_user.items()]


def find_session(
    target: str | None, *, backend: Backend | str | None = None, active_only_names: bool = True
) -> Session:
    """Exactly one session: by id, or by session name (which must name an Active one).

    ``None`` means the caller's own session.
    """
    if target is not None:
        check_target(target)
    found = get_backend(backend).sessions()
    if target is None:
        own = [s for s in found if s.current]
        if not own:
            raise NoSuchSession("this process is not part of any login session")
        return own[0]
    by_id = [s for s in found if s.id == target]
    if by_id:
        return by_id[0]
    by_name = [s for s in found if s.name and s.name == target]
    if active_only_names:
        by_name = [s for s in by_name if s.state is State.ACTIVE]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        ids = ", ".join(s.id for s in by_name)
        raise InvalidArgument(f"session name {target} is ambiguous (ids {ids}); use the id")
    of_user = [s for s in found if s.user == target]
    if of_user:
        listed = ", ".join(
            f"{s.id} ({', '.join(x for x in (s.name, s.state.value) if x)})" for s in of_user
        )
        raise NoSuchSession(
            f"No session exists for {target}: a session is named by its ID or session name "
            f"(as on Windows), not by its user. {target}'s sessions: {listed}"
        )
    raise NoSuchSession(f"No session exists for {target}")
