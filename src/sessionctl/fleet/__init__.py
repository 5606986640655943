"""Fleet-wide query, logoff and msg over SSH (the system OpenSSH client, no agent).

>>> from sessionctl import fleet
>>> hosts = fleet.resolve("web[01-50]")
>>> for r in fleet.query(hosts):
...     print(r.host, r.status, len(r.result or []))

Each function yields one :class:`HostResult` per host as hosts finish; ``status`` is one of
ok, unreachable, auth, hostkey, timeout, error. ``result`` holds what the local ``--json``
output of the same command holds (session objects, logoff results).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..lazy import lazy_attributes
from .select import Selection

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (startup time)
if TYPE_CHECKING:
    from .hosts import Host
    from .ssh import HostResult, SshOptions

# The remote agent imports this package too: keep asyncio and ClusterShell out of its way.
_LAZY = {
    "DEFAULT_MAX_HOSTS": "hosts",
    "Host": "hosts",
    "TooManyHosts": "hosts",
    "resolve": "hosts",
    "STATUSES": "ssh",
    "HostResult": "ssh",
    "SshOptions": "ssh",
    "close_connections": "ssh",
    "run": "ssh",
}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


def _hosts(hosts: list[Host] | str) -> list[Host]:
    from .hosts import resolve

    return resolve(hosts) if isinstance(hosts, str) else list(hosts)


def query(
    hosts: list[Host] | str,
    target: str | None = None,
    *,
    backend: str | None = None,
    options: SshOptions | None = None,
) -> Iterator[HostResult]:
    """Sessions on every host (our own SSH session excluded): result = list of session dicts."""
    if target is not None:
        from ..validate import check_target

        check_target(target)
    from .ssh import SshOptions, run

    request: dict[str, object] = {"op": "query", "target": target, "backend": backend}
    return run(_hosts(hosts), request, options or SshOptions())


def logoff(
    hosts: list[Host] | str,
    target: str | None = None,
    *,
    select: Selection | None = None,
    dry_run: bool = False,
    grace: float = 10.0,
    allow_console: bool = False,
    backend: str | None = None,
    options: SshOptions | None = None,
    notice: float | None = None,
    message: str | None = None,
    max_postpone: float | None = None,
) -> Iterator[HostResult]:
    """Log off one session (``target``: id or name) or every session ``select`` matches.

    With ``dry_run`` nothing is signalled; each result lists the sessions that would go,
    as ``{"session": {...}, "outcome": "would-log-off"}``. With ``notice`` (seconds) each
    session gets a warned logoff on its host instead (outcome ``scheduled``, with
    ``logoff_at``): the countdown runs there, detached, and outlives our connection.
    """
    from ..errors import InvalidArgument

    select = select or Selection()
    if target is None and select.empty:
        raise InvalidArgument("fleet logoff needs a session or a selection (user, state, idle)")
    request: dict[str, object] = {
        "op": "logoff",
        "target": target,
        "select": select.to_dict(),
        "dry_run": dry_run,
        "grace": grace,
        "allow_console": allow_console,
        "backend": backend,
    }
    if notice is not None:
        request.update(notice=notice, message=message, max_postpone=max_postpone)
    from .ssh import SshOptions, run

    opts = options or SshOptions(command_timeout=60.0 + grace * 3)
    return run(_hosts(hosts), request, opts)


def disconnect(
    hosts: list[Host] | str,
    target: str | None = None,
    *,
    select: Selection | None = None,
    dry_run: bool = False,
    backend: str | None = None,
    options: SshOptions | None = None,
) -> Iterator[HostResult]:
    """Disconnect one session (``target``: id or name) or every session ``select``
    matches that can be (its tmux/screen keeps the work); the others come back with
    outcome ``refused`` and the reason. Result per host: a list of the local
    ``tsdiscon --json`` objects (``would-disconnect`` entries with ``dry_run``)."""
    from ..errors import InvalidArgument

    select = select or Selection()
    if target is None and select.empty:
        raise InvalidArgument("fleet disconnect needs a session or a selection (user, state, "
                              "idle)")
    request: dict[str, object] = {"op": "disconnect", "target": target,
                                  "select": select.to_dict(), "dry_run": dry_run,
                                  "backend": backend}
    from .ssh import SshOptions, run

    return run(_hosts(hosts), request, options or SshOptions(command_timeout=90.0))


def message(
    hosts: list[Host] | str,
    text: str,
    target: str | None = "*",
    *,
    select: Selection | None = None,
    dry_run: bool = False,
    wait: bool = False,
    timeout: float = 60.0,
    backend: str | None = None,
    options: SshOptions | None = None,
) -> Iterator[HostResult]:
    """Send ``text`` to ``target`` (user, session name, id or ``*``) on every host, narrowed
    by ``select``; result per host = the local ``msg --json`` report. With ``wait``, each
    host waits up to ``timeout`` for acknowledgements (``sessionctl ack``)."""
    select = select or Selection()
    request: dict[str, object] = {
        "op": "msg",
        "target": target,
        "select": select.to_dict(),
        "dry_run": dry_run,
        "text": text,
        "wait": wait,
        "timeout": timeout,
        "backend": backend,
    }
    from .ssh import SshOptions, run

    opts = options or SshOptions(command_timeout=60.0 + (timeout if wait else 0))
    return run(_hosts(hosts), request, opts)


__all__ = [
    "DEFAULT_MAX_HOSTS",
    "STATUSES",
    "Host",
    "HostResult",
    "Selection",
    "SshOptions",
    "TooManyHosts",
    "close_connections",
    "disconnect",
    "logoff",
    "message",
    "query",
    "resolve",
]
