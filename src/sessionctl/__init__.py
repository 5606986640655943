"""sessionctl: see, warn and sign out login sessions on shared machines.

>>> import sessionctl
>>> for s in sessionctl.sessions():
...     print(s.id, s.user, s.state, s.idle_seconds)

Every name below is the real function or class (``help(sessionctl.logoff)`` shows its
signature and docstring). The actions are imported on first use, so ``import
sessionctl`` stays cheap for the commands that only list sessions.
"""

from __future__ import annotations

from .api import find_session, sessions, users
from .backends import Backend, close_backends, get_backend
from .errors import (
    AccessDenied,
    BackendUnavailable,
    InvalidArgument,
    NoSuchSession,
    NotPossible,
    SessionctlError,
    SourceError,
)
from .lazy import lazy_attributes
from .model import Multiplexer, MuxClient, ProcessRef, Session, State, UserSummary

__version__ = "0.1.0"
TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (startup time)

if TYPE_CHECKING:  # what the lazy names below are, for type checkers and readers
    from .actions.disconnect import disconnect as disconnect
    from .actions.logoff import LogoffResult as LogoffResult
    from .actions.logoff import logoff as logoff
    from .actions.message import Delivery as Delivery
    from .actions.message import MessageReport as MessageReport
    from .actions.message import acknowledge as acknowledge
    from .actions.message import send_message as send_message
    from .actions.process import EndResult as EndResult
    from .actions.process import end_process as end_process
    from .actions.reports import DisconnectResult as DisconnectResult
    from .actions.reports import Leftover as Leftover
    from .actions.reports import Step as Step
    from .actions.schedule import PendingLogoff as PendingLogoff
    from .actions.schedule import cancel_logoff as cancel_logoff
    from .actions.schedule import pending_logoffs as pending_logoffs
    from .actions.schedule import postpone_logoff as postpone_logoff
    from .actions.schedule import schedule_logoff as schedule_logoff
    from .actions.usage import UsageSampler as UsageSampler
    from .actions.usage import usage as usage
    from .usage_model import ProcessUsage as ProcessUsage
    from .usage_model import SessionUsage as SessionUsage
    from .usage_model import UsageSnapshot as UsageSnapshot
    from .usage_model import UserUsage as UserUsage

#: name → module it is imported from on first use (keep in step with the block above;
#: tests/unit/test_api.py checks both against each other).
_LAZY: dict[str, str] = {
    "DisconnectResult": "actions.reports",
    "disconnect": "actions.disconnect",
    "LogoffResult": "actions.logoff",
    "Step": "actions.reports",
    "Leftover": "actions.reports",
    "logoff": "actions.logoff",
    "Delivery": "actions.message",
    "MessageReport": "actions.message",
    "acknowledge": "actions.message",
    "send_message": "actions.message",
    "EndResult": "actions.process",
    "end_process": "actions.process",
    "PendingLogoff": "actions.schedule",
    "cancel_logoff": "actions.schedule",
    "pending_logoffs": "actions.schedule",
    "postpone_logoff": "actions.schedule",
    "schedule_logoff": "actions.schedule",
    "UsageSampler": "actions.usage",
    "usage": "actions.usage",
    "ProcessUsage": "usage_model",
    "SessionUsage": "usage_model",
    "UsageSnapshot": "usage_model",
    "UserUsage": "usage_model",
}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AccessDenied",
    "Backend",
    "BackendUnavailable",
    "Delivery",
    "DisconnectResult",
    "EndResult",
    "InvalidArgument",
    "Leftover",
    "LogoffResult",
    "MessageReport",
    "Multiplexer",
    "MuxClient",
    "NoSuchSession",
    "NotPossible",
    "PendingLogoff",
    "ProcessRef",
    "ProcessUsage",
    "Session",
    "SessionUsage",
    "SessionctlError",
    "SourceError",
    "State",
    "Step",
    "UsageSampler",
    "UsageSnapshot",
    "UserSummary",
    "UserUsage",
    "__version__",
    "acknowledge",
    "cancel_logoff",
    "close_backends",
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
    "users",
]
