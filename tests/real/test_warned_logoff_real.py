"""Warned logoff on real sshd logins: notice, reminders, postpone, cancel, deadline."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from lab import procs, tool_path

pytestmark = pytest.mark.real


def tool(name: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool_path(name)), *argv], capture_output=True, text=True,
                          timeout=timeout)


def pending(session_id: str) -> dict | None:
    res = tool("sessionctl", "pending", "--json")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    return next((r for r in rows if r["session_id"] == session_id), None)


def events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def cancel_leftovers():
    """Cancel (as root) any countdown a failed test left behind."""
    ids: list[str] = []
    yield ids
    for sid in ids:
        if pending(sid):
            tool("sessionctl", "cancel", sid)


def test_warned_logoff_reminds_then_signs_out_and_nano_saves(
    make_user, open_login, tmp_path, cancel_leftovers
) -> None:
    user = make_user()
    login = open_login(user)
    sid = str(login.audit_session_id)
    cancel_leftovers.append(sid)
    pids = login.pids()
    login.send("nano ~/draft.txt\n")
    login.wait_output("GNU nano", 10)
    login.send("words not yet saved 4711")
    time.sleep(0.5)
    audit_log = tmp_path / "audit.jsonl"
    t0 = time.time()
    res = tool("logoff", sid, "--notice", "13s", "--grace", "3", "--message",
               "Kernel update: please save.", "--audit-log", str(audit_log))
    assert res.returncode == 0, res.stderr
    assert f"Session {sid} ({user.name}) will be logged off at" in res.stdout
    assert f"Warned on /dev/{login.tty_line}" in res.stdout
    login.wait_output(rf"Your session {sid} will be signed out in 1[23] s", 5)
    login.wait_output("Kernel update: please save.", 2)
    # Visible to queries: --json logoff_at and qwinsta /v's LOGOFF AT column.
    rows = json.loads(tool("qwinsta", sid, "--json").stdout)
    when = rows[0]["logoff_at"]
    assert when is not None
    from datetime import datetime

    assert abs(datetime.fromisoformat(when).timestamp() - (t0 + 13)) < 2
    verbose = tool("qwinsta", sid, "/v").stdout.splitlines()
    from sessionctl.cli.render import VERBOSE_COLUMNS

    col, width, _ = VERBOSE_COLUMNS["LOGOFF AT"]
    assert "LOGOFF AT" in verbose[0] and verbose[1][col:col + width].strip() == when[11:19]
    # The countdown runs detached: own kernel session, no controlling terminal.
    row = pending(sid)
    assert row and row["worker_alive"]
    worker, supervisor = int(row["worker_pid"]), int(row["supervisor_pid"])
    assert procs.ppid_of(worker) == supervisor  # which resumes it if it dies
    assert os.getsid(worker) == supervisor == os.getsid(supervisor)
    assert procs.tty_nr_of(worker) == 0 and procs.tty_nr_of(supervisor) == 0
    login.wait_output(rf"Reminder: your session {sid} will be signed out in \d+ s", 10)
    assert procs.wait_until(lambda: not any(procs.alive(p) and not procs.is_zombie(p)
                                            for p in pids), 20)
    took = time.time() - t0
    assert 12.5 <= took <= 22, took
    saved = Path(user.home, "draft.txt.save")
    assert procs.wait_until(saved.exists, 3), "nano did not save the edit"
    assert "words not yet saved 4711" in saved.read_text()
    assert procs.wait_until(lambda: not procs.alive(worker) or procs.is_zombie(worker), 10)
    names = [e["event"] for e in events(audit_log)]
    for expected in ("logoff-scheduled", "logoff-reminder-notice", "logoff-at-deadline",
                     "logoff"):
        assert expected in names, names
    assert pending(sid) is None


def test_postpone_by_own_user_only_bounded_and_cancel(
    make_user, open_login, tmp_path, cancel_leftovers
) -> None:
    user, other = make_user(), make_user()
    login, intruder = open_login(user), open_login(other)
    sid = str(login.audit_session_id)
    cancel_leftovers.append(sid)
    audit_log = tmp_path / "audit.jsonl"
    res = tool("logoff", sid, "--notice", "40s", "--max-postpone", "30s", "--audit-log",
               str(audit_log))
    assert res.returncode == 0, res.stderr
    login.wait_output("To postpone, run: sessionctl postpone", 5)
    before = pending(sid)["logoff_at"]
    sessionctl = tool_path("sessionctl")
    # Only the session's user (and root) can reach the countdown's socket at all ...
    sock = Path(os.environ.get("SESSIONCTL_RUN_DIR") or "/run/sessionctl", f"logoff-{sid}.sock")
    st = sock.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.uid, 0o600)
    status, out = intruder.run_status(f"{sessionctl} postpone 5s --session {sid}")
    assert status == 1 and "Access is denied" in out
    # ... and if that user opens it to everyone, the worker's own peer check still refuses
    # (and audits it): the kernel-reported uid decides, not the file mode.
    login.run(f"chmod 666 {sock}")
    status, out = intruder.run_status(f"{sessionctl} postpone 5s --session {sid}")
    assert status == 1 and "Access is denied" in out
    status, out = login.run_status(f"{sessionctl} postpone 1h")
    assert status == 1 and "at most" in out
    status, out = login.run_status(f"{sessionctl} postpone -5m")
    assert status == 1 and "Invalid parameter" in out
    assert pending(sid)["logoff_at"] == before
    status, out = login.run_status(f"{sessionctl} postpone 20s")
    assert status == 0, out
    assert "10 s more postponement allowed" in out
    assert abs(pending(sid)["logoff_at"] - (before + 20)) < 0.01
    # The notice (written by the countdown's notice thread) reaches the terminal while the
    # postpone command runs or just after it.
    notice = f"The sign-out of session {sid} was postponed to"
    if notice not in out:
        login.wait_output(notice, 5)
    status, out = login.run_status(f"{sessionctl} postpone 15s")
    assert status == 1 and "at most 10 s" in out
    # Only root or the scheduler may cancel.
    status, out = login.run_status(f"{sessionctl} cancel {sid}")
    assert status == 1 and "Access is denied" in out
    res = tool("sessionctl", "cancel", sid)
    assert res.returncode == 0, res.stderr
    login.wait_output(rf"The scheduled sign-out of session {sid} was cancelled by root", 5)
    assert pending(sid) is None
    assert login.run("echo still-here").strip() == "still-here"
    names = [e["event"] for e in events(audit_log)]
    assert "logoff-postpone-refused" in names
    assert "logoff-postponed" in names and "logoff-cancelled" in names


def test_user_logging_off_ends_the_countdown(make_user, open_login, tmp_path) -> None:
    login = open_login(make_user())
    sid = str(login.audit_session_id)
    audit_log = tmp_path / "audit.jsonl"
    res = tool("logoff", sid, "--notice", "5m", "--audit-log", str(audit_log))
    assert res.returncode == 0, res.stderr
    worker = int(pending(sid)["worker_pid"])
    login.logout()
    assert procs.wait_until(lambda: pending(sid) is None, 10)
    assert procs.wait_until(lambda: not procs.alive(worker) or procs.is_zombie(worker), 5)
    assert "logoff-not-needed" in [e["event"] for e in events(audit_log)]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["--notice=-5m"], "is not a duration"),
        (["--notice", "-5m"], "expected one argument"),
        (["--notice", "abc"], "is not a duration"),
        (["--notice", "0"], "must be a positive duration"),
        (["--notice", "10m", "--max-postpone=-1m"], "is not a duration"),
        (["--notice", "30d"], "notice must be between"),
        (["--message", "hi"], "go with --notice"),
    ],
)
def test_bad_schedule_input_schedules_and_sends_nothing(make_user, open_login, extra,
                                                        error) -> None:
    login = open_login(make_user())
    login.read_available(0.2)
    sid = str(login.audit_session_id)
    res = tool("logoff", sid, *extra)
    assert res.returncode == 1
    assert error in res.stderr
    assert pending(sid) is None
    assert "signed out" not in login.read_available(0.5)
    assert login.run("echo alive").strip() == "alive"


def test_unknown_session_and_double_schedule(make_user, open_login, cancel_leftovers) -> None:
    res = tool("logoff", "999999999", "--notice", "1m")
    assert res.returncode == 1 and "No session exists" in res.stderr
    login = open_login(make_user())
    sid = str(login.audit_session_id)
    cancel_leftovers.append(sid)
    assert tool("logoff", sid, "--notice", "5m").returncode == 0
    again = tool("logoff", sid, "--notice", "1m")
    assert again.returncode == 1 and "already scheduled" in again.stderr
    assert tool("sessionctl", "cancel", sid).returncode == 0
