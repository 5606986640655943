"""The policy daemon on real sessions, with limits of seconds.

Rules in these tests always name their own throwaway users, so nothing else on the
machine (other tests' sessions, admins) can be selected.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from lab import procs, tool_path
from lab.countdown import pending_row
from lab.daemon import DaemonProc
from lab.login import keep_typing
from lab.procs import gone

pytestmark = pytest.mark.real


@pytest.fixture
def daemons():
    started: list[DaemonProc] = []

    def start(config: Path, audit_log: Path, *extra: str) -> DaemonProc:
        d = DaemonProc(config, audit_log, *extra)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def cancel_after():
    ids: list[str] = []
    yield ids
    for sid in ids:
        subprocess.run([str(tool_path("sessionctl")), "cancel", sid], capture_output=True)


def pending(sid: str) -> dict | None:
    out = subprocess.run([str(tool_path("sessionctl")), "pending", "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    return next((r for r in rows if r["session_id"] == sid), None)


def events(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_idle_warned_then_logged_off_active_and_exempt_untouched(
    make_user, open_login, tmp_path, daemons, cancel_after
) -> None:
    idle_u, active_u, exempt_u = make_user(), make_user(), make_user()
    config = tmp_path / "policy.toml"
    config.write_text(f"""
[defaults]
warn_before = "6s"
max_postpone = "0s"
grace = "3s"
interval = "1s"
exempt_users = ["root", "{exempt_u.name}"]

[[rule]]
name = "idle-test"
idle_limit = "20s"
users = ["{idle_u.name}", "{active_u.name}", "{exempt_u.name}"]
""")
    idle, active, exempt = open_login(idle_u), open_login(active_u), open_login(exempt_u)
    cancel_after.extend(str(x.audit_session_id) for x in (idle, active, exempt))
    idle_pids, active_pids, exempt_pids = idle.pids(), active.pids(), exempt.pids()
    idle.send("nano ~/essay.txt\n")
    idle.wait_output("GNU nano", 10)
    idle.send("an unsaved paragraph 4711")
    stop = threading.Event()
    typist = threading.Thread(target=keep_typing, args=(active, stop), daemon=True)
    typist.start()
    audit_log = tmp_path / "audit.jsonl"
    try:
        tty = f"/dev/{idle.tty_line}"
        time.sleep(0.5)
        input_seen = os.stat(tty).st_atime  # the tty's idle clock: last input read
        d = daemons(config, audit_log)
        sid = str(idle.audit_session_id)
        idle.wait_output(rf"Your session {sid} will be signed out in", 30)
        # The warning was written to the tty (its mtime moves) without touching the idle
        # clock (its atime): read straight from the device, independently of sessionctl.
        after = os.stat(tty)
        assert after.st_atime == input_seen, "the warning reset the idle clock"
        assert after.st_mtime > input_seen
        assert procs.wait_until(lambda: gone(idle_pids), 20)
        saved = Path(idle_u.home, "essay.txt.save")
        assert procs.wait_until(saved.exists, 3)
        assert "an unsaved paragraph 4711" in saved.read_text()
        d.wait_log(f"warn session {sid}", 1)
    finally:
        stop.set()
        typist.join()
    for pids in (active_pids, exempt_pids):
        assert not gone(pids) and all(procs.alive(p) for p in pids)
    for login in (active, exempt):
        assert "signed out" not in login.read_available(0.2)
    log = d.stderr
    assert f"skipped session {exempt.audit_session_id} ({exempt_u.name}" in log
    assert log.count(f"skipped session {exempt.audit_session_id}") == 1, "skip logged once"
    assert f"session {active.audit_session_id}" not in log
    names = [(e["event"], e.get("session")) for e in events(audit_log)]
    assert ("policy-warn", sid) in names and ("policy-skip", str(exempt.audit_session_id)) in names
    assert ("logoff-at-deadline", sid) in names


def test_disc_cleaned_after_limit_and_broken_reload_keeps_rules(
    make_user, open_login, tmp_path, daemons
) -> None:
    user = make_user()
    config = tmp_path / "policy.toml"
    good = f"""
[defaults]
interval = "1s"
grace = "2s"

[[rule]]
name = "leftovers"
disc_limit = "4s"
users = ["{user.name}"]
"""
    config.write_text(good)
    audit_log = tmp_path / "audit.jsonl"
    d = daemons(config, audit_log)
    config.write_text(good + '\n[[rule]]\nname = "broken"\nidle_limit = "soon"\n')
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("config reload failed", 5)
    assert f"{config}:13: idle_limit: 'soon' is not a duration" in d.stderr
    assert "keeping the rules loaded at" in d.stderr
    login = open_login(user)
    login.run("nohup sleep 600 >/dev/null 2>&1 & echo $! > ~/left.pid")
    left = int(Path(user.home, "left.pid").read_text())
    # nohup must have set SIGHUP to ignored before the hangup of logout (a loaded machine
    # can run the logout first).
    assert procs.wait_until(lambda: procs.comm_of(left) == "sleep"
                            and procs.ignores_signal(left, signal.SIGHUP), 10)
    login.logout()
    t0 = time.monotonic()
    assert procs.wait_until(lambda: not procs.alive(left) or procs.is_zombie(left), 20)
    assert time.monotonic() - t0 <= 20
    d.wait_log("[rule leftovers] logged off session", 10)  # written just after the logoff
    # The limit was waited for, by the daemon's own clock (from when it first saw Disc;
    # the test's clock starts only when logout() returns, which can be late under load).
    acted = [e for e in events(audit_log) if e["event"] == "policy-logoff"]
    assert len(acted) == 1 and acted[0]["reason"].startswith("disconnected ")
    waited = acted[0]["reason"].split()[1]
    assert int(waited) >= 4, acted[0]["reason"]
    assert d.proc.poll() is None
    config.write_text(good.replace('"4s"', '"8s"'))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("reloaded", 5)


def _kill_worker(pid: int) -> None:
    """SIGKILL the countdown worker a test's daemon started (checked by its command line)."""
    assert "sessionctl.actions.countdown" in " ".join(procs.cmdline_of(pid))
    fd = os.pidfd_open(pid)
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)


def test_restart_after_kill9_keeps_deadline_and_postpone_delays(
    make_user, open_login, tmp_path, daemons, cancel_after
) -> None:
    user = make_user()
    config = tmp_path / "policy.toml"
    config.write_text(f"""
[defaults]
interval = "1s"
grace = "2s"
max_postpone = "5s"

[[rule]]
name = "shift"
max_session = "24s"
warn_before = "16s"
users = ["{user.name}"]
""")
    login = open_login(user)
    sid = str(login.audit_session_id)
    cancel_after.append(sid)
    pids = login.pids()
    audit_log = tmp_path / "audit.jsonl"
    start = len(login.raw)
    d = daemons(config, audit_log)
    login.wait_output(rf"Your session {sid} will be signed out in", 20)
    row = pending(sid)
    deadline = row["logoff_at"]
    # The whole service dies at once (daemon and countdown: its supervisor, which would
    # resume a worker that died alone, and the worker), mid-countdown.
    d.proc.kill()
    d.proc.wait(5)
    _kill_worker(int(row["supervisor_pid"]))
    _kill_worker(int(row["worker_pid"]))
    # (read without a root command: one would resume it first)
    assert procs.wait_until(lambda: not pending_row(sid)["worker_alive"], 5)
    d2 = daemons(config, audit_log)
    d2.wait_log(f"resumed the countdown of session {sid}", 5)
    assert pending(sid)["logoff_at"] == deadline and pending(sid)["worker_alive"]
    login.wait_output(rf"Reminder: your session {sid} will be signed out in \d+ s", 15)
    status, out = login.run_status(f"{tool_path('sessionctl')} postpone 5s")
    assert status == 0, out
    assert pending(sid)["logoff_at"] == pytest.approx(deadline + 5, abs=0.01)
    assert procs.wait_until(lambda: gone(pids), 25)
    ended = time.time()
    assert deadline + 5 - 1 <= ended <= deadline + 5 + 6, (ended, deadline)
    shown = bytes(login.raw[start:]).decode(errors="replace")
    assert shown.count(f"Your session {sid} will be signed out in") == 1, "first notice doubled"
    before_postpone = shown.split("was postponed")[0]
    assert before_postpone.count("Reminder:") == 1, "reminder lost or doubled across restart"
    assert "policy-postponed" in [e["event"] for e in events(audit_log)] or \
        "logoff-postponed" in [e["event"] for e in events(audit_log)]


def test_dry_run_signals_sends_and_schedules_nothing(
    make_user, open_login, tmp_path, cancel_after
) -> None:
    user = make_user()
    config = tmp_path / "policy.toml"
    config.write_text(f"""
[[rule]]
name = "instant"
idle_limit = "30s"
warn_before = "29s"
users = ["{user.name}"]
""")
    login = open_login(user)
    sid = str(login.audit_session_id)
    cancel_after.append(sid)
    time.sleep(1.2)
    login.read_available(0.1)
    audit_log = tmp_path / "audit.jsonl"
    cmd = [str(tool_path("sessionctl")), "daemon", "--config", str(config), "--once",
           "--audit-log", str(audit_log)]
    res = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert f"[rule instant] would warn session {sid}" in res.stderr
    assert pending(sid) is None
    assert "signed out" not in login.read_available(1.0)
    assert all(e.get("dry_run") for e in events(audit_log) if e["event"].startswith("policy-"))
    # The same pass for real does warn: the dry run was not a no-op by accident.
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert pending(sid) is not None
    login.wait_output(rf"Your session {sid} will be signed out in", 5)


def test_policy_check_and_invalid_config_at_start(make_user, open_login, tmp_path) -> None:
    user = make_user()
    login = open_login(user)
    config = tmp_path / "policy.toml"
    config.write_text(f'[[rule]]\nname = "idle"\nidle_limit = "2h"\nusers = ["{user.name}"]\n')
    res = subprocess.run([str(tool_path("sessionctl")), "policy", "check", str(config)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    row = next(x for x in res.stdout.splitlines() if x.split()[0] == str(login.audit_session_id))
    assert "idle" in row and "nothing yet" in row and "warning in 1 h" in row
    others = [x for x in res.stdout.splitlines()[2:] if x.split()[1] == "root"]
    assert all("no rule selects" in x for x in others)
    config.write_text('[[rule]]\nname = "idle"\nidle_limit = "2h"\nusers = ["nobody-zz9"]\n')
    for argv in (["policy", "check", str(config)], ["daemon", "--config", str(config)]):
        res = subprocess.run([str(tool_path("sessionctl")), *argv], capture_output=True,
                             text=True, timeout=30)
        assert res.returncode == 1
        assert f"{config}:4: user 'nobody-zz9' does not exist" in res.stderr
