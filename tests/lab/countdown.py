"""Pending warned logoffs as state.db holds them, read without running sessionctl.

A root sessionctl command resumes countdowns that died, as a side effect; tests that kill a
countdown and watch who notices read the rows here instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

from . import procs

DEFAULT_STATE_DIR = Path("/var/lib/sessionctl")


def current_state_dir() -> Path:
    """The state directory the code under test uses: this run's own (SESSIONCTL_STATE_DIR,
    set by tests/conftest.py), else the system's."""
    return Path(os.environ.get("SESSIONCTL_STATE_DIR") or DEFAULT_STATE_DIR)


def _running(row: dict, who: str) -> bool:
    pid = row.get(f"{who}_pid")
    return bool(pid) and procs.start_time_of(pid) == row.get(f"{who}_start") and \
        not procs.is_zombie(pid)


def read_pending(state_dir: Path | None = None) -> list[dict]:
    """Every row, with ``worker_alive`` as `sessionctl pending --json` computes it (the
    worker or its supervisor runs)."""
    db = (state_dir or current_state_dir()) / "state.db"
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT data FROM pending")]
    for row in rows:
        row["worker_alive"] = _running(row, "worker") or _running(row, "supervisor")
    return rows


def pending_row(session_id: str, state_dir: Path | None = None) -> dict | None:
    return next((r for r in read_pending(state_dir) if r["session_id"] == session_id), None)
