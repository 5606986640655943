"""Backends: one interface, chosen automatically (logind where it answers, else procfs)."""

from __future__ import annotations

import os

from ..errors import BackendUnavailable
from .base import Backend

NAMES = ("auto", "procfs", "logind")
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"


def _bus_present() -> bool:
    """A system bus might answer (checked before importing any D-Bus code)."""
    return bool(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")) or os.path.exists(SYSTEM_BUS_SOCKET)


def get_backend(name: str | None = None) -> Backend:
    """The backend called ``name``, or the best one here for ``None``/``"auto"``.

    ``SESSIONCTL_BACKEND`` in the environment sets the default choice.
    """
    name = (name or os.environ.get("SESSIONCTL_BACKEND") or "auto").lower()
    if name not in NAMES:
        raise BackendUnavailable(f"unknown backend {name!r} (choose from {', '.join(NAMES)})")
    if name == "logind" or (name == "auto" and _bus_present()):
        from .logind import LogindBackend

        backend = LogindBackend.connect(required=(name == "logind"))
        if backend is not None:
            return backend
    from .procfs import ProcfsBackend

    return ProcfsBackend()
