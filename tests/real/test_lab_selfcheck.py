"""Self-check of the host test lab: real sshd logins behave as the other real tests assume."""

from __future__ import annotations

import dataclasses
import os
import pwd
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lab import procs, tool_path
from lab.login import Login, LoginError
from lab.sshd import Sshd
from lab.users import MARKER, create_user, lab_users, remove_stale_test_users, remove_user
from lab.utmp import user_entries

pytestmark = pytest.mark.real


def _who() -> str:
    return subprocess.run(["who"], capture_output=True, text=True, check=True).stdout


def test_tool_path_defaults_to_interpreter_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONCTL_BIN_DIR", raising=False)
    assert tool_path("qwinsta") == Path(sys.executable).parent / "qwinsta"
    monkeypatch.setenv("SESSIONCTL_BIN_DIR", "/opt/elsewhere/bin")
    assert tool_path("logoff") == Path("/opt/elsewhere/bin/logoff")


def test_run_returns_exact_output_and_status(lab_user, open_login) -> None:
    login = open_login(lab_user)
    assert login.run("printf 'a\\nb'") == "a\nb"
    assert login.run("echo 'x!y' \"héllo\"; echo err >&2") == "x!y héllo\nerr\n"
    assert login.run_status("false") == (1, "")
    assert login.run_status("(exit 7)")[0] == 7
    assert login.run("echo $COLUMNS $LINES; id -un") == f"200 50\n{lab_user.name}\n"
    login.send("sleep 30\n")

    def sleeper() -> int | None:
        found = [p for p in login.pids() if procs.cmdline_of(p) == ["sleep", "30"]]
        return found[0] if found and procs.in_foreground(found[0]) else None

    pid = procs.wait_until(sleeper, 5)
    assert pid
    login.send("\x03")  # Ctrl-C reaches the foreground job through the remote pty
    assert "^C" in login.wait_prompt(5)
    assert procs.wait_until(lambda: not procs.alive(pid), 2)
    assert login.run("echo after") == "after\n"


def test_wrong_password_raises_quickly(lab_user, sshd) -> None:
    with pytest.raises(LoginError, match="Permission denied"):
        Login(dataclasses.replace(lab_user, password="wrong"), sshd, timeout=15)
    assert procs.processes_of_uid(lab_user.uid) == set()


def test_login_appears_in_who_and_utmp(lab_user, open_login) -> None:
    origin = f"127.0.0.{random.randint(2, 250)}"
    login = open_login(lab_user, source_address=origin)
    line = login.tty_line
    assert re.fullmatch(r"pts/\d+", line)
    pattern = rf"^{lab_user.name}\s+{re.escape(line)}\s.*\({re.escape(origin)}\)$"
    assert re.search(pattern, _who(), re.M), _who()
    assert [e.line for e in user_entries(lab_user.name)] == [line]
    entry = login.utmp_entry()
    assert entry is not None
    # utmp's pid is the "sshd: user [priv]" monitor, which is inside the same audit session.
    assert procs.cmdline_of(entry.pid) == [f"sshd: {lab_user.name} [priv]"]
    assert procs.audit_session_of(entry.pid) == login.audit_session_id
    assert entry.pid in login.pids()


def test_shell_audit_session_matches_proc(lab_user, open_login) -> None:
    login = open_login(lab_user)
    sid = procs.audit_session_of(login.shell_pid)
    assert sid is not None
    assert sid == login.audit_session_id
    assert procs.loginuid_of(login.shell_pid) == lab_user.uid
    assert lab_user.uid in (procs.uids_of(login.shell_pid) or ())
    assert login.shell_pid in procs.pids_by_audit_session()[sid]


def test_setsid_child_keeps_audit_session_after_logout(lab_user, open_login) -> None:
    login = open_login(lab_user)
    out = login.run("setsid sh -c 'echo $$; exec sleep 300' </dev/null 2>&1 | head -n1")
    pid = int(out)
    assert procs.alive(pid)
    assert os.getsid(pid) != os.getsid(login.shell_pid)  # really a new (POSIX) session
    assert procs.audit_session_of(pid) == login.audit_session_id
    assert login.logout() == 0
    assert procs.wait_until(lambda: not procs.alive(login.shell_pid), 5)
    assert procs.alive(pid)
    assert procs.audit_session_of(pid) == login.audit_session_id


def test_two_logins_get_different_audit_sessions(lab_user, make_user, open_login) -> None:
    first = open_login(lab_user)
    second = open_login(lab_user)
    other = open_login(make_user())
    ids = {first.audit_session_id, second.audit_session_id, other.audit_session_id}
    assert len(ids) == 3
    assert len({first.tty, second.tty, other.tty}) == 3
    groups = procs.pids_by_audit_session()
    assert first.shell_pid in groups[first.audit_session_id]
    assert first.shell_pid not in groups[second.audit_session_id]


def test_notty_session_has_audit_id_but_no_utmp(lab_user, open_notty) -> None:
    session = open_notty(lab_user)
    assert procs.cmdline_of(session.remote_pid) == ["sleep", "300"]
    assert procs.audit_session_of(session.remote_pid) == session.audit_session_id
    assert procs.loginuid_of(session.remote_pid) == lab_user.uid
    assert user_entries(lab_user.name) == []
    assert lab_user.name not in _who()


def test_removal_ends_only_the_users_processes(sshd, make_user, open_login, open_notty) -> None:
    user = make_user()
    login = open_login(user)
    login.run("setsid -f nohup sleep 300 >/dev/null 2>&1")
    open_notty(user)
    bystander = subprocess.Popen(["sleep", "300"])  # root process: must survive
    try:
        assert len(procs.processes_of_uid(user.uid)) >= 6
        remove_user(user)
        # Killed processes may linger briefly as zombies: PID 1 here reaps only every ~1.5 s.
        assert procs.processes_of_uid(user.uid) == set()
        assert user_entries(user.name) == []
        with pytest.raises(KeyError):
            pwd.getpwnam(user.name)
        assert not user.home.exists()
        assert bystander.poll() is None
        assert sshd.pid is not None and procs.alive(sshd.pid)
        assert login.proc.wait(5) is not None  # the client noticed the end of its login
    finally:
        bystander.kill()
        bystander.wait()


def test_sshd_stop_spares_established_logins(make_user) -> None:
    user = make_user()
    server = Sshd().start()
    try:
        assert server.pid_from_file() == server.pid
        listener = server.pid
        with Login(user, server) as login:
            server.stop()
            assert listener is not None and not procs.alive(listener)
            assert login.run("echo still-here") == "still-here\n"
    finally:
        server.stop()


def test_stale_users_removed_live_ones_kept(make_user) -> None:
    live = make_user()
    stale = create_user()
    try:
        # Same owner pid but a wrong start time: the owner "died" and the pid was reused.
        subprocess.run(
            ["usermod", "-c", f"{MARKER} pid={os.getpid()} start=1", stale.name], check=True
        )
        assert {live.name, stale.name} <= {e.pw_name for e in lab_users()}
        removed = remove_stale_test_users()
        assert stale.name in removed
        assert live.name not in removed
        pwd.getpwnam(live.name)
        with pytest.raises(KeyError):
            pwd.getpwnam(stale.name)
    finally:
        remove_user(stale)


def test_console_test_skips_saying_why_without_a_free_vt() -> None:
    """It used to fail (RuntimeError) when every virtual terminal was in use or absent."""
    here = Path(__file__).resolve().parent
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         f"{here}/test_logoff_real.py::test_console_session_refused_unless_allowed"],
        capture_output=True, text=True, timeout=300, cwd=here.parents[1],
        env={**os.environ, "SESSIONCTL_LAB_VTS": ""},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 skipped" in res.stdout and "no free virtual terminal" in res.stdout
