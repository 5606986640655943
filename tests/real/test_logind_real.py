"""The logind backend inside a real systemd container: listing, Disc, logoff, permissions."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from lab import adversary, procs, tool_path
from layout import parse_quser, parse_qwinsta

pytestmark = pytest.mark.container
TOOL = str(tool_path("qwinsta").parent)


@pytest.fixture
def ct(systemd_container):
    return systemd_container


def inside(ct, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    res = ct.exec([f"{TOOL}/{argv[0]}", *argv[1:]], timeout=60)
    assert "Traceback" not in res.stderr, res.stderr
    if check:
        assert res.returncode == 0, res.stderr
    return res


def listing(ct, *args: str) -> dict[str, dict]:
    rows = json.loads(inside(ct, "qwinsta", "--json", *args, check=True).stdout)
    return {r["id"]: r for r in rows}


def scope_pids(ct, sid: str) -> set[int]:
    scope = ct.show_session(sid)["Scope"]
    out = ct.exec(["sh", "-c", f"cat $(find /sys/fs/cgroup -path '*/{scope}/*' "
                               "-name cgroup.procs)"], check=True).stdout
    return {int(x) for x in out.split()}


def test_listing_equals_loginctl(ct, ct_login) -> None:
    a = ct_login()
    b = ct_login()
    su = ct.spawn(["su", "-", a.user.name, "-c", "sleep 300"])  # logind session, no audit id
    try:
        procs.wait_until(lambda: any(s["session"].startswith("c") for s in ct.loginctl_sessions()
                                     if s["user"] == a.user.name), 10)
        rows = listing(ct)
        expected = {(s["session"], s["user"], s["tty"]) for s in ct.loginctl_sessions()}
        assert {(r["id"], r["user"], r["name"]) for r in rows.values()} == expected
        for login in (a, b):
            row = rows[str(login.audit_session_id)]
            assert row["backend"] == "logind" and row["state"] == "Active"
            assert row["type"] == "ssh" and row["service"] == "sshd"
            assert row["name"] == login.tty_line and row["idle_seconds"] is not None
            assert set(row["pids"]) == scope_pids(ct, row["id"])
            assert row["scope"].startswith("session-") and row["class"] == "user"
        c_row = next(r for r in rows.values() if r["id"].startswith("c"))
        assert c_row["user"] == a.user.name and c_row["name"] == ""
        assert set(c_row["pids"]) == scope_pids(ct, c_row["id"]) != set()
        # the same layouts and filters as on procfs
        q = parse_qwinsta(inside(ct, "qwinsta", check=True).stdout)
        assert {r["id"] for r in q} == set(rows)
        u = parse_quser(inside(ct, "quser", a.user.name, check=True).stdout)
        assert {r["id"] for r in u} == {str(a.audit_session_id), c_row["id"]}
        assert inside(ct, "quser", "sctestnobody").returncode == 1
        # and the marker, from inside a login
        out = a.run(f"{TOOL}/qwinsta")
        assert [r["id"] for r in parse_qwinsta(out) if r["marker"] == ">"] == [
            str(a.audit_session_id)]
    finally:
        su.kill()
        su.wait()


def test_procfs_backend_agrees_inside(ct, ct_login) -> None:
    login = ct_login()
    by_logind = listing(ct)[str(login.audit_session_id)]
    by_procfs = listing(ct, "--backend", "procfs")[str(login.audit_session_id)]
    for field in ("id", "name", "user", "uid", "state", "type", "device"):
        assert by_logind[field] == by_procfs[field], field
    assert set(by_logind["pids"]) == set(by_procfs["pids"])
    assert by_procfs["backend"] == "procfs"


def test_logged_out_user_with_nohup_job_is_disc(ct, ct_login) -> None:
    login = ct_login()
    sid = str(login.audit_session_id)
    login.run("nohup sleep 600 >/dev/null 2>&1 &")
    login.logout()
    procs.wait_until(lambda: ct.show_session(sid).get("State") == "closing", 10)
    row = listing(ct)[sid]
    assert row["state"] == "Disc" and row["logind_state"] == "closing"
    assert len(row["pids"]) == 1


def test_logoff_saves_nano_and_beats_the_stop_timeout(ct, ct_login) -> None:
    target = ct_login()
    bystander = ct_login()
    bystander.run("sleep 600 >/dev/null 2>&1 &")
    sid = str(target.audit_session_id)
    target.run("sh -c 'trap \"\" HUP TERM; exec sleep 600' >/dev/null 2>&1 &")
    target.send("nano ~/notes.txt\n")
    target.wait_output("GNU nano", 10)
    target.send("unsaved in container 4711")
    time.sleep(0.3)
    before = {p: procs.start_time_of(p) for p in bystander.pids()}
    t0 = time.monotonic()
    res = inside(ct, "logoff", sid, "/v", "--grace", "3")
    assert res.returncode == 0, res.stderr
    gone = procs.wait_until(
        lambda: sid not in {s["session"] for s in ct.loginctl_sessions()}, 3 + 1 + 1)
    took = time.monotonic() - t0
    assert gone and took <= 3 + 1, took
    assert "via logind" in res.stdout and "cgroup.kill" in res.stdout
    saved = Path(ct.root, "home", target.user.name, "notes.txt.save")
    assert saved.exists() and "unsaved in container 4711" in saved.read_text()
    for pid, start in before.items():
        assert procs.start_time_of(pid) == start
    assert str(bystander.audit_session_id) in {s["session"] for s in ct.loginctl_sessions()}


def test_non_root_may_log_off_only_own_sessions(ct, ct_login) -> None:
    a1 = ct_login()
    a2 = ct_login(a1.user)
    b = ct_login()
    b_before = {p: procs.start_time_of(p) for p in b.pids()}
    status, out = a1.run_status(f"{TOOL}/logoff {b.audit_session_id}")
    assert status == 1 and "Access is denied" in out
    assert all(procs.start_time_of(p) == s for p, s in b_before.items())
    status, out = a1.run_status(f"{TOOL}/logoff {a2.audit_session_id} --grace 2")
    assert status == 0, out
    sid = str(a2.audit_session_id)
    assert procs.wait_until(lambda: sid not in {s["session"] for s in ct.loginctl_sessions()}, 5)
    assert all(procs.start_time_of(p) == s for p, s in b_before.items())


def test_stalled_bus_never_hangs(tmp_path) -> None:
    """A system bus that accepts but never answers: auto falls back, logind is an error."""
    path = tmp_path / "bus"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(5)
    env = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={path}", "PATH": "/usr/bin:/bin"}
    try:
        t0 = time.monotonic()
        auto = subprocess.run([str(tool_path("qwinsta")), "--json"], env=env,
                              capture_output=True, text=True, timeout=30)
        assert auto.returncode in (0, 1) and time.monotonic() - t0 < 6
        assert all(r["backend"] == "procfs" for r in json.loads(auto.stdout))
        forced = subprocess.run([str(tool_path("qwinsta")), "--backend", "logind"], env=env,
                                capture_output=True, text=True, timeout=30)
        assert forced.returncode == 1 and "logind" in forced.stderr
        assert "Traceback" not in forced.stderr
    finally:
        server.close()


def test_logind_absent_is_a_clear_error() -> None:
    res = subprocess.run([str(tool_path("quser")), "--backend", "logind"],
                         env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/bus",
                              "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "logind" in res.stderr and "Traceback" not in res.stderr


def test_own_session_and_nohup_jobs(ct, ct_login) -> None:
    """No argument logs off your own session; a nohup job gets SIGTERM without the grace."""
    login = ct_login()
    sid = str(login.audit_session_id)
    login.run("nohup sleep 600 >/dev/null 2>&1 &")
    t0 = time.monotonic()
    login.send(f"{TOOL}/logoff --grace 8\n")
    assert procs.wait_until(
        lambda: sid not in {s["session"] for s in ct.loginctl_sessions()}, 8 + 2)
    assert time.monotonic() - t0 < 4  # nothing here needs the grace: it ends early
    assert procs.wait_until(lambda: login.proc.poll() is not None, 5)


def test_policy_daemon_as_a_systemd_service_on_logind(ct, ct_login) -> None:
    """The shipped unit file runs in real systemd: warns a logind session, reloads, logs."""
    login = ct_login()
    user = login.user.name
    unit = Path(__file__).parents[2] / "contrib" / "systemd" / "sessionctl-policy.service"
    ct.exec(["mkdir", "-p", "/etc/sessionctl"], check=True)
    ct.exec(["tee", "/etc/sessionctl/policy.toml"], check=True, input=f"""
[defaults]
interval = "1s"
[[rule]]
name = "ct-idle"
idle_limit = "60s"
warn_before = "58s"
users = ["{user}"]
""")
    # the unit names the default venv; run the one under test (a side venv, maybe)
    ct.exec(["tee", "/etc/systemd/system/sessionctl-policy.service"], check=True,
            input=unit.read_text().replace("/opt/sessionctl-venv/bin/", f"{TOOL}/"))
    ct.exec(["systemctl", "daemon-reload"], check=True)
    try:
        ct.exec(["systemctl", "start", "sessionctl-policy"], check=True, timeout=30)
        assert ct.exec(["systemctl", "is-active", "sessionctl-policy"]).stdout.strip() == "active"
        # The logind backend (the bus answers inside) finds the idle session and warns it.
        login.wait_output(r"Your session (\S+) will be signed out in", 30)

        def journal() -> str:
            return ct.exec(["journalctl", "-u", "sessionctl-policy", "--no-pager", "-o", "cat"]
                           ).stdout

        assert procs.wait_until(lambda: "[rule ct-idle] warn session" in journal(), 10), journal()
        ct.exec(["systemctl", "reload", "sessionctl-policy"], check=True)
        assert procs.wait_until(lambda: "reloaded /etc/sessionctl/policy.toml" in journal(), 10)
        # Input makes the session active again: the warning is withdrawn. (A tty's atime,
        # the idle clock, moves only when it is 8+ s old: type after that.)
        time.sleep(9)
        login.send("\x15")
        login.wait_output(r"was cancelled by root: active again", 15)
    finally:
        ct.exec(["systemctl", "stop", "sessionctl-policy"], timeout=30)


@pytest.mark.parametrize("where", ["main", "thread"])
def test_own_session_from_a_thread_spares_the_caller(ct, ct_login, where) -> None:
    """The library call signs its own logind session out from any thread; the caller is
    not signalled (not even through KillSession/TerminateSession) and keeps its
    dispositions (tests/real/test_logoff_signals_real.py does the same under procfs)."""
    login = ct_login()
    sid = str(login.audit_session_id)
    name = login.user.name
    login.run("sleep 600 >/dev/null 2>&1 & nohup sleep 600 >/dev/null 2>&1 &")
    home = ct.exec(["sh", "-c", f"getent passwd {name} | cut -d: -f6"], check=True
                   ).stdout.strip()
    ct.exec(["sh", "-c", f"cat > {home}/caller.py"], user=name, check=True,
            input=adversary.SCRIPTS["own_session_caller.py"])
    login.run(f"setsid {TOOL}/python {home}/caller.py {home}/result.json {where} "
              "</dev/null >/dev/null 2>&1 &")

    def result() -> dict | None:
        res = ct.exec(["cat", f"{home}/result.json"])
        return json.loads(res.stdout) if res.returncode == 0 else None

    data = procs.wait_until(result, 60)
    assert data, ct.exec(["ps", "-ef"]).stdout
    assert "error" not in data, data["error"]
    assert data["outcome"] == "logged-off" and data["after"] == data["before"], data
    assert procs.wait_until(
        lambda: sid not in {s["session"] for s in ct.loginctl_sessions()}, 15)


BUS_PROBE = r"""
import os, sessionctl
def sockets():
    out = set()
    for fd in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            continue
        if target.startswith('socket:'):
            out.add(target)
    return out
be = sessionctl.get_backend()
assert be.name == 'logind', be.name
sessionctl.sessions()
first = sockets()
for _ in range(5):
    sessionctl.sessions()
print(len(first), sockets() == first)
sessionctl.close_backends()
print(len(sockets()))
sessionctl.sessions()
print(len(sockets()), sessionctl.get_backend() is be)
"""


def test_one_bus_connection_reused_then_closed(ct) -> None:
    """The default backend is chosen once; its system-bus connection serves every call
    (it used to open a new one per call) until close_backends(), then reopens."""
    res = ct.exec([f"{TOOL}/python", "-c", BUS_PROBE], timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:3] == ["1 True", "0", "1 True"], res.stdout


def test_status_says_it_works_where_nobody_is_logged_in() -> None:
    """README's install-and-run command ends with `sessionctl status`: on a fresh machine
    with nobody logged in (a container of its own) it must say it works, where quser, as
    on Windows, says No User exists for * and exits 1."""
    from lab.container import container_fixture

    for fresh in container_fixture():
        assert fresh.loginctl_sessions() == []
        res = inside(fresh, "sessionctl", "status")
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines[0].startswith("sessionctl ") and lines[0].endswith("backend logind")
        assert lines[1] == "No one is logged in (0 sessions)."
        quser = inside(fresh, "quser")
        assert quser.returncode == 1 and quser.stderr.strip() == "No User exists for *"
