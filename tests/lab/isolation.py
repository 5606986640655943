"""This test run's own audit log, state and run directories (never the system's).

``isolate_paths()`` makes ``/tmp/sctest-env-<pid>-<start>-XXXX/{log,state,run}`` and sets
SESSIONCTL_AUDIT_LOG, SESSIONCTL_STATE_DIR and SESSIONCTL_RUN_DIR in os.environ, so the
code under test, every tool the tests start and (through the lab sshd's SetEnv) the
tools lab users run in their logins resolve their paths there.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from . import procs

PREFIX = "sctest-env-"
VARS = ("SESSIONCTL_AUDIT_LOG", "SESSIONCTL_STATE_DIR", "SESSIONCTL_RUN_DIR")
#: The variables logins get (the audit log stays per user: ~/.local/state for non-root).
LOGIN_VARS = ("SESSIONCTL_STATE_DIR", "SESSIONCTL_RUN_DIR")
ISOLATED = pytest.StashKey[Path]()


def isolate_paths() -> Path:
    """Create this run's directories and point the SESSIONCTL_* variables at them."""
    me = os.getpid()
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{me}-{procs.start_time_of(me)}-",
                                 dir="/tmp"))
    base.chmod(0o755)  # lab users reach the state (read) and run (sockets) directories
    (base / "log").mkdir(mode=0o700)
    (base / "state").mkdir(mode=0o755)
    (base / "run").mkdir(mode=0o755)
    os.environ["SESSIONCTL_AUDIT_LOG"] = str(base / "log" / "audit.jsonl")
    os.environ["SESSIONCTL_STATE_DIR"] = str(base / "state")
    os.environ["SESSIONCTL_RUN_DIR"] = str(base / "run")
    return base


def remove_stale_isolation_dirs() -> list[str]:
    """Remove directories of runs whose process is gone."""
    removed = []
    for d in Path("/tmp").glob(PREFIX + "*"):
        m = re.match(rf"{PREFIX}(\d+)-(\d+)-", d.name)
        if m and not (procs.alive(int(m.group(1)))
                      and str(procs.start_time_of(int(m.group(1)))) == m.group(2)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed


#: The system's own files the suite must never write (host.py's and schedule.py's defaults).
SYSTEM_PATHS = ("/var/log/sessionctl", "/var/lib/sessionctl", "/run/sessionctl")


def system_marks() -> dict[str, tuple[int, int] | None]:
    """Size and mtime of every file in the system's sessionctl directories (None: absent)."""
    marks: dict[str, tuple[int, int] | None] = {}
    for top in SYSTEM_PATHS:
        root = Path(top)
        if not root.is_dir():
            marks[top] = None
            continue
        for path in [root, *root.iterdir()]:
            try:
                st = path.stat()
            except OSError:
                continue
            marks[str(path)] = (st.st_size if path.is_file() else 0, st.st_mtime_ns)
    return marks


def system_writes(before: dict[str, tuple[int, int] | None]) -> list[str]:
    """What changed in the system's sessionctl directories since ``before``."""
    after = system_marks()
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
