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
    "sessions",
    "users",
]
