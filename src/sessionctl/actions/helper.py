"""Starting one of our own modules as a separate Python process.

The child must import this very copy of sessionctl (a site-packages directory, or the
zip a fleet run shipped) however we were started, so its root goes first on PYTHONPATH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def package_root() -> str:
    """The directory (or zip file) our ``sessionctl`` package is imported from."""
    loader = __spec__.loader if __spec__ is not None else None
    archive = getattr(loader, "archive", None)  # set when imported from a zip
    return archive or str(Path(__file__).resolve().parents[2])


def module_command(module: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) that run ``python -m module args...`` with this interpreter."""
    path = os.pathsep.join(x for x in (package_root(), os.environ.get("PYTHONPATH")) if x)
    return [sys.executable, "-m", module, *args], {**os.environ, "PYTHONPATH": path}
