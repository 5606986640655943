"""sessionctl: see, warn and sign out login sessions on shared Linux machines.

>>> import sessionctl
>>> for s in sessionctl.sessions():
...     print(s.id, s.user, s.state, s.idle_seconds)
"""

from .api import find_session, sessions, users
from .backends import get_backend
from .errors import (
    AccessDenied,
    BackendUnavailable,
    InvalidArgument,
    NoSuchSession,
    SessionctlError,
    SourceError,
)
from .model import ProcessRef, Session, State, UserSummary

__version__ = "0.1.0"


def logoff(target: str | None = None, **options: object) -> object:
    """Sign out a session completely; see :func:`sessionctl.actions.logoff.logoff`.

    Returns a ``LogoffResult``; raises NoSuchSession, AccessDenied or InvalidArgument
    before anything is signalled.
    """
    from .actions.logoff import logoff as sign_out

    return sign_out(target, **options)  # type: ignore[arg-type]


__all__ = [
    "AccessDenied",
    "BackendUnavailable",
    "InvalidArgument",
    "NoSuchSession",
    "ProcessRef",
    "Session",
    "SessionctlError",
    "SourceError",
    "State",
    "UserSummary",
    "__version__",
    "find_session",
    "get_backend",
    "logoff",
    "sessions",
    "users",
]
