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


def usage(target: str | None = None, **options: object) -> object:
    """Each user's CPU, memory and disk use over an interval; see
    :func:`sessionctl.actions.usage.usage` (returns a ``UsageSnapshot``)."""
    from .actions.usage import usage as measure

    return measure(target, **options)  # type: ignore[arg-type]


def usage_sampler(target: str | None = None, **options: object) -> object:
    """A ``UsageSampler``: call ``sample()`` repeatedly for rates since the last call."""
    from .actions.usage import UsageSampler

    return UsageSampler(target, **options)  # type: ignore[arg-type]


def end_process(pid: int, **options: object) -> object:
    """End one process of a session the caller may act on (SIGTERM, grace, SIGKILL); see
    :func:`sessionctl.actions.process.end_process` (returns an ``EndResult``)."""
    from .actions.process import end_process as end

    return end(pid, **options)  # type: ignore[arg-type]


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
    "end_process",
    "find_session",
    "get_backend",
    "logoff",
    "sessions",
    "usage",
    "usage_sampler",
    "users",
]
