"""Host test lab: real users, a private sshd and real ssh logins on this machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def tool_path(name: str) -> Path:
    """Path of an installed sessionctl entry point (qwinsta, quser, logoff, sessionctl).

    Defaults to the directory of the running interpreter (the test venv's bin dir, which lab
    users can execute); override with env SESSIONCTL_BIN_DIR.
    """
    bin_dir = os.environ.get("SESSIONCTL_BIN_DIR")
    return Path(bin_dir or Path(sys.executable).parent) / name
