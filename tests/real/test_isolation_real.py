"""A real sign-out without --audit-log writes to the run's own audit log, and logins get
the run's state and run directories: nothing reaches the system's real ones."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from lab import tool_path

pytestmark = pytest.mark.real

REAL_LOG = Path("/var/log/sessionctl/audit.jsonl")


def test_default_audit_log_is_the_runs_own(lab_user, open_notty) -> None:
    session = open_notty(lab_user, "sleep 300")
    sid = str(session.audit_session_id)
    res = subprocess.run([str(tool_path("logoff")), sid, "--grace", "1"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    ours = Path(os.environ["SESSIONCTL_AUDIT_LOG"])
    records = [json.loads(line) for line in ours.read_text().splitlines()]
    assert any(r.get("session") == sid and r.get("session_user") == lab_user.name
               for r in records)
    if REAL_LOG.exists():  # other runs may write there; never this one
        assert f'"session_user": "{lab_user.name}"' not in REAL_LOG.read_text()


def test_logins_use_the_runs_state_and_run_directories(lab_user, open_login) -> None:
    login = open_login(lab_user)
    out = login.run('echo "$SESSIONCTL_STATE_DIR|$SESSIONCTL_RUN_DIR"').strip()
    assert out == f"{os.environ['SESSIONCTL_STATE_DIR']}|{os.environ['SESSIONCTL_RUN_DIR']}"
