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
    NotPossible,
    SessionctlError,
    SourceError,
)
from .model import Multiplexer, MuxClient, ProcessRef, Session, State, UserSummary

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


def disconnect(target: str | None = None, **options: object) -> object:
    """End a session's connection and keep its work running (tmux/screen), as tsdiscon;
    see :func:`sessionctl.actions.disconnect.disconnect`.

    Returns a ``DisconnectResult`` (``ok`` only when the session is Disc afterwards with
    its work alive); raises NoSuchSession, AccessDenied, InvalidArgument or NotPossible
    before anything is touched.
    """
    from .actions.disconnect import disconnect as discon

    return discon(target, **options)  # type: ignore[arg-type]


def send_message(target: str, text: str | bytes, **options: object) -> object:
    """Show a message on the target sessions' terminals; see actions.message.send_message."""
    from .actions.message import send_message as send

    return send(target, text, **options)  # type: ignore[arg-type]


def schedule_logoff(target: str | None, notice: float, **options: object) -> object:
    """Warn, count down, then log off; see actions.schedule.schedule_logoff.

    Returns (PendingLogoff, MessageReport of the first notice).
    """
    from .actions.schedule import schedule_logoff as schedule

    return schedule(target, notice, **options)  # type: ignore[arg-type]


def postpone_logoff(seconds: float | None = None, session_id: str | None = None) -> object:
    """Push back the pending logoff of a session (its own user or root)."""
    from .actions.schedule import postpone_logoff as postpone

    return postpone(seconds, session_id)


def cancel_logoff(session_id: str) -> object:
    """Cancel a pending logoff (root or whoever scheduled it)."""
    from .actions.schedule import cancel_logoff as cancel

    return cancel(session_id)


def pending_logoffs() -> list:
    """The warned logoffs counting down on this machine."""
    from .actions.schedule import pending_logoffs as pending

    return pending()


__all__ = [
    "AccessDenied",
    "BackendUnavailable",
    "InvalidArgument",
    "Multiplexer",
    "MuxClient",
    "NoSuchSession",
    "NotPossible",
    "ProcessRef",
    "Session",
    "SessionctlError",
    "SourceError",
    "State",
    "UserSummary",
    "__version__",
    "cancel_logoff",
    "disconnect",
    "end_process",
    "find_session",
    "get_backend",
    "logoff",
    "pending_logoffs",
    "postpone_logoff",
    "schedule_logoff",
    "send_message",
    "sessions",
    "usage",
    "usage_sampler",
    "users",
]
