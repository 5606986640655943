"""Backends: one interface, chosen automatically (logind where it answers, else procfs)."""

from __future__ import annotations

import os

from ..errors import BackendUnavailable
from .base import Backend

NAMES = ("auto", "procfs", "logind")


def get_backend(name: str | None = None) -> Backend:
    """The backend called ``name``, or the best one here for ``None``/``"auto"``.

    ``SESSIONCTL_BACKEND`` in the environment sets the default choice.
    """
    name = (name or os.environ.get("SESSIONCTL_BACKEND") or "auto").lower()
    if name not in NAMES:
        raise BackendUnavailable(f"unknown backend {name!r} (choose from {', '.join(NAMES)})")
    if name in ("auto", "logind"):
        try:
            from .logind import LogindBackend
        except ImportError:
            if name == "logind":
                raise BackendUnavailable("the logind backend is not installed") from None
        else:
            backend = LogindBackend.connect(required=(name == "logind"))
            if backend is not None:
                return backend
    from .procfs import ProcfsBackend

    return ProcfsBackend()
