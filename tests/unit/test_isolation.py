"""The suite never writes the system's audit log, state or run directory.

tests/conftest.py points SESSIONCTL_AUDIT_LOG/STATE_DIR/RUN_DIR at this run's own
directory before any test starts; here we check that it did and that the code resolves
every one of those paths from them.
"""

from __future__ import annotations

import os
from pathlib import Path

from lab.isolation import VARS

from sessionctl import state
from sessionctl.actions import audit, schedule

SYSTEM = (Path("/var/log/sessionctl"), Path("/var/lib/sessionctl"), Path("/run/sessionctl"),
          Path("/var/run/sessionctl"))


def _outside_system(path: Path) -> bool:
    return not any(path == s or s in path.parents for s in SYSTEM)


def test_the_run_has_its_own_paths() -> None:
    for var in VARS:
        value = os.environ.get(var)
        assert value, f"{var} is not set for the test run"
        assert _outside_system(Path(value)), (var, value)


def test_the_code_resolves_its_paths_from_them() -> None:
    assert audit.default_path() == Path(os.environ["SESSIONCTL_AUDIT_LOG"])
    assert state.db_path() == Path(os.environ["SESSIONCTL_STATE_DIR"]) / "state.db"
    assert schedule.run_dir() == Path(os.environ["SESSIONCTL_RUN_DIR"])
    assert schedule.socket_path("7").parent == Path(os.environ["SESSIONCTL_RUN_DIR"])
    for path in (audit.default_path(), state.db_path(), schedule.run_dir()):
        assert _outside_system(path), path
