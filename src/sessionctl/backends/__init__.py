"""Backends: one interface, chosen automatically (Windows: the WTS API; Linux: logind where
it answers, else procfs). A backend's module is imported only when it is chosen, so
nothing platform-only is imported on the other platform."""

from __future__ import annotations

import os
import sys

from ..errors import BackendUnavailable
from .base import Backend

NAMES = ("auto", "procfs", "logind", "windows")
LINUX_ONLY = ("procfs", "logind")
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
    if sys.platform == "win32" and name in LINUX_ONLY:
        raise BackendUnavailable(f"the {name} backend runs on Linux only")
    if name == "windows" or (name == "auto" and sys.platform == "win32"):
        if sys.platform != "win32":
            raise BackendUnavailable("the windows backend runs on Windows only")
        from .windows import WindowsBackend

        found = WindowsBackend.open(required=True)
        assert found is not None  # required=True raises instead
        return found
    if name == "logind" or (name == "auto" and _bus_present()):
        from .logind import LogindBackend

        backend = LogindBackend.connect(required=(name == "logind"))
        if backend is not None:
            return backend
    from .procfs import ProcfsBackend

    return ProcfsBackend()
