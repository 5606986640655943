"""Backends: one interface, several implementations, chosen once per process (Windows:
the WTS API; Linux: logind where it answers, else procfs).

As psutil picks its platform module once, ``get_backend()`` decides which backend
answers here the first time it is asked and hands out that same object afterwards (the
logind backend keeps its system-bus connection open between calls; ``close_backends()``
or ``Backend.close()`` releases it, and the next call reopens it). A backend's module
is imported only when that backend is chosen, so nothing platform-only is imported on
another platform.

This module is the one place that maps a name to a backend: ``REGISTRY`` (name →
module and class) and ``AUTO_ORDER`` (which ones ``auto`` tries, per platform).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading

from ..errors import BackendUnavailable
from .base import Backend

#: name → (module under sessionctl.backends, class). Add a backend here.
REGISTRY: dict[str, tuple[str, str]] = {
    "procfs": ("procfs", "ProcfsBackend"),
    "logind": ("logind", "LogindBackend"),
    "windows": ("windows", "WindowsBackend"),
}
#: name → (sys.platform prefix it runs on, the platform's name in messages)
PLATFORMS: dict[str, tuple[str, str]] = {
    "procfs": ("linux", "Linux"),
    "logind": ("linux", "Linux"),
    "windows": ("win32", "Windows"),
}
#: sys.platform prefix → the backends ``auto`` tries, best first.
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "linux": ("logind", "procfs"),
    "win32": ("windows",),
}
ENV = "SESSIONCTL_BACKEND"

_lock = threading.Lock()
_cache: dict[str, Backend] = {}  # "auto" and each opened backend's name


def names() -> tuple[str, ...]:
    """The names ``get_backend`` accepts: ``auto`` and every registered backend."""
    return ("auto", *REGISTRY)


def _auto_order() -> tuple[str, ...]:
    return next((o for p, o in AUTO_ORDER.items() if sys.platform.startswith(p)), ())


def _open(name: str, required: bool) -> Backend | None:
    module, cls_name = REGISTRY[name]
    cls: type[Backend] = getattr(importlib.import_module(f"{__name__}.{module}"), cls_name)
    return cls.open(required=required)


def get_backend(backend: Backend | str | None = None) -> Backend:
    """The backend to use: ``backend`` itself if it is one, else the one named (``auto``
    or None: the best one here, or what ``SESSIONCTL_BACKEND`` names).

    The same object is returned for the same name for the rest of the process (a forked
    child gets its own). Raises BackendUnavailable for an unknown name or a named
    backend that does not answer here.
    """
    if isinstance(backend, Backend):
        return backend
    name = (backend or os.environ.get(ENV) or "auto").lower()
    if name != "auto" and name not in REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r} (choose from {', '.join(names())})")
    where, platform = PLATFORMS.get(name, ("", ""))
    if not sys.platform.startswith(where):
        raise BackendUnavailable(f"the {name} backend runs on {platform} only")
    with _lock:
        found = _cache.get(name)
        if found is not None:
            return found
        if name == "auto":
            for candidate in _auto_order():
                found = _cache.get(candidate) or _open(candidate, required=False)
                if found is not None:
                    break
            if found is None:
                raise BackendUnavailable(f"no session backend works on {sys.platform}")
        else:
            found = _open(name, required=True)
            assert found is not None  # required=True raises instead
        _cache[name] = _cache[found.name] = found
        return found


def close_backends() -> None:
    """Release what the cached backends hold open (bus connections); each reopens what it
    needs on its next use, so this is safe at any time (e.g. before a long sleep)."""
    with _lock:
        for backend in set(_cache.values()):
            backend.close()


def _forget_in_child() -> None:
    # A forked child must not share the parent's bus connection: it opens its own.
    global _lock
    _lock = threading.Lock()
    _cache.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


__all__ = ["AUTO_ORDER", "PLATFORMS", "REGISTRY", "Backend", "close_backends", "get_backend",
           "names"]
