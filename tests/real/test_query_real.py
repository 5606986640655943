"""qwinsta/quser on real sshd logins: agreement with who and /proc, Disc, idle, marker, layout."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from lab import procs, tool_path
from layout import parse_quser, parse_qwinsta

pytestmark = pytest.mark.real


def tool(*argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool_path(argv[0])), *argv[1:]], capture_output=True, text=True,
                          check=check, timeout=60)


def sessions_json(*args: str) -> list[dict]:
    res = tool("qwinsta", "--json", *args)
    assert "Traceback" not in res.stderr
    return json.loads(res.stdout)


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in rows}


def who_lines() -> set[tuple[str, str]]:
    out = subprocess.run(["who"], capture_output=True, text=True, check=True).stdout
    return {(line.split()[0], line.split()[1]) for line in out.splitlines() if line.strip()}


def test_listing_agrees_with_who_and_audit_ids(make_user, open_login, open_notty) -> None:
    a, b = make_user(), make_user()
    la1, la2, lb = open_login(a), open_login(a), open_login(b)
    open_notty(b)
    la1.run("sleep 600 >/dev/null 2>&1 &")
    rows = by_id(sessions_json())
    audit = procs.pids_by_audit_session()
    for login in (la1, la2, lb):
        row = rows[str(login.audit_session_id)]
        assert row["user"] == login.user.name and row["name"] == login.tty_line
        assert row["state"] == "Active" and row["type"] == "ssh" and row["idle_seconds"] is not None
        assert row["device"] == login.tty and row["remote_host"] == "127.0.0.1"
        assert set(row["pids"]) == audit[login.audit_session_id]
        assert row["uid"] == login.user.uid and not row["current"]
        assert (login.user.name, login.tty_line) in who_lines()
    # every who line of our users is one listed session, and nothing more for them
    ours = {(r["user"], r["name"]) for r in rows.values() if r["user"] in (a.name, b.name)
            and r["name"]}
    assert ours == {w for w in who_lines() if w[0] in (a.name, b.name)}
    assert len({la1.audit_session_id, la2.audit_session_id, lb.audit_session_id}) == 3
    # the tty-less ssh session has its own id, no name, no idle time
    (nt,) = [r for r in rows.values() if r["user"] == b.name and not r["name"]]
    assert nt["state"] == "Active" and nt["idle_seconds"] is None and nt["type"] == "ssh"
    assert set(nt["pids"]) == audit[int(nt["id"])]


def test_setsid_and_double_fork_children_count(lab_user, open_login) -> None:
    login = open_login(lab_user)
    login.run("setsid sh -c 'echo $$ > ~/setsid.pid; exec sleep 600' &")
    login.run("( ( sh -c 'echo $$ > ~/df.pid; exec sleep 600' & ) & )")
    setsid_pid = int(procs.wait_until(lambda: login.run("cat ~/setsid.pid 2>/dev/null"), 5))
    df_pid = int(procs.wait_until(lambda: login.run("cat ~/df.pid 2>/dev/null"), 5))
    assert os.getsid(setsid_pid) != os.getsid(login.shell_pid)  # really left the tty session
    assert procs.ppid_of(df_pid) != login.shell_pid
    row = by_id(sessions_json())[str(login.audit_session_id)]
    assert setsid_pid in row["pids"] and df_pid in row["pids"]


def test_nohup_job_of_ended_login_is_disc(lab_user, open_login) -> None:
    login = open_login(lab_user)
    asid, line = login.audit_session_id, login.tty_line
    login.run("nohup sleep 600 >/dev/null 2>&1 & echo $! > ~/nohup.pid")
    pid = int(login.run("cat ~/nohup.pid"))
    login.logout()
    procs.wait_until(lambda: (lab_user.name, line) not in who_lines(), 10)
    row = by_id(sessions_json())[str(asid)]
    assert row["state"] == "Disc" and row["name"] == "" and row["user"] == lab_user.name
    assert row["pids"] == [pid]
    q = tool("quser", lab_user.name)
    assert q.returncode == 0
    (qrow,) = parse_quser(q.stdout)
    assert qrow["state"] == "Disc" and qrow["name"] == "" and qrow["id"] == str(asid)
    assert qrow["idle"] == "none"


def test_idle_time_follows_tty_input(lab_user, open_login) -> None:
    login = open_login(lab_user)
    sid = str(login.audit_session_id)
    time.sleep(10)  # the kernel refreshes a tty's atime at most every 8 s
    idle = by_id(sessions_json(sid))[sid]["idle_seconds"]
    assert idle >= 8
    login.run("true")  # typed input
    after = by_id(sessions_json(sid))[sid]["idle_seconds"]
    assert after < 2
    # quser formats what the tty says: two hours without input shows as 2:00
    st = os.stat(login.tty)
    os.utime(login.tty, (time.time() - 7200 - 30, st.st_mtime))
    (row,) = parse_quser(tool("quser", sid).stdout)
    assert row["idle"] == "2:00"


def test_marker_is_the_callers_own_session(lab_user, open_login) -> None:
    login1, login2 = open_login(lab_user), open_login(lab_user)
    for kind in ("qwinsta", "quser"):
        out = login2.run(str(tool_path(kind)))
        rows = parse_qwinsta(out) if kind == "qwinsta" else parse_quser(out)
        marked = [r for r in rows if r["marker"] == ">"]
        assert [r["id"] for r in marked] == [str(login2.audit_session_id)]
        assert str(login1.audit_session_id) in {r["id"] for r in rows}
    # the test process belongs to no login: no marker
    assert ">" not in {r["marker"] for r in parse_qwinsta(tool("qwinsta").stdout)}
    inside = json.loads(login1.run(f"{tool_path('quser')} --json {lab_user.name}"))
    assert [r["id"] for r in inside if r["current"]] == [str(login1.audit_session_id)]


def test_every_column_offset_holds_on_real_output(make_user, open_login) -> None:
    users = [make_user(), make_user(prefix="sctestaverylongname")]
    logins = [open_login(u) for u in users]
    q = tool("qwinsta")
    u = tool("quser")
    assert q.returncode == 0 and u.returncode == 0
    qrows, urows = parse_qwinsta(q.stdout), parse_quser(u.stdout)
    for login in logins:
        sid = str(login.audit_session_id)
        (qr,) = [r for r in qrows if r["id"] == sid]
        (ur,) = [r for r in urows if r["id"] == sid]
        name = login.user.name
        shown_q = name if len(name) <= 20 else name[:19] + "+"
        shown_u = name if len(name) <= 21 else name[:20] + "+"
        assert qr["user"] == shown_q and ur["user"] == shown_u
        assert qr["name"] == ur["name"] == login.tty_line
        assert qr["state"] == ur["state"] == "Active" and qr["type"] == "ssh"
        assert qr["device"] == login.tty
        assert ur["idle"] in (".", "1") and ur["logon"][:4] == time.strftime("%Y")
    long_user = users[1].name
    assert len(long_user) >= 20
    # the full name still works as a filter and in JSON
    (row,) = sessions_json(long_user)
    assert row["user"] == long_user


def test_filters_and_messages(make_user, open_login) -> None:
    a, b = make_user(), make_user()
    la, lb = open_login(a), open_login(b)
    for target in (a.name, la.tty_line, str(la.audit_session_id)):
        rows = parse_quser(tool("quser", target).stdout)
        assert [r["id"] for r in rows] == [str(la.audit_session_id)], target
    assert str(lb.audit_session_id) in {r["id"] for r in parse_quser(tool("quser").stdout)}
    missing = tool("quser", "sctestnobody")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == "No User exists for sctestnobody"
    same = tool("sessionctl", "query", "session", a.name)
    assert same.stdout == tool("qwinsta", a.name).stdout and same.returncode == 0
    assert tool("quser", "/server:localhost", a.name).returncode == 0
    assert tool("quser", "--server", "localhost", a.name).returncode == 0
    remote = tool("qwinsta", "/server:far.invalid")  # now over ssh (docs/fleet.md)
    assert remote.returncode == 2
    assert "Error opening Terminal server far.invalid: unreachable" in remote.stderr


@pytest.mark.parametrize("bad", ["-5", "--bogus", "/bogus", "../../etc/passwd", "pts/../../x",
                                 "99999999999999", "a b"])
def test_bad_input_is_clear(bad: str) -> None:
    res = tool("quser", bad)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("Invalid parameter(s)") and "Traceback" not in res.stderr
    assert "QUSER [username" in res.stderr


def test_processes_vanishing_mid_scan(lab_user, open_login) -> None:
    login = open_login(lab_user)
    # a login that spawns and reaps hundreds of short-lived processes while we list
    login.run("(end=$((SECONDS+6)); while [ $SECONDS -lt $end ]; do /bin/true & done; wait) "
              ">/dev/null 2>&1 &")
    deadline = time.monotonic() + 4
    runs = 0
    while time.monotonic() < deadline:
        res = tool("qwinsta", "--json")
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        rows = by_id(json.loads(res.stdout))
        mine = rows[str(login.audit_session_id)]
        assert mine["user"] == lab_user.name and mine["name"] == login.tty_line
        runs += 1
    assert runs >= 3


def test_unreadable_utmp_is_a_clear_error(lab_user, open_login) -> None:
    login = open_login(lab_user)
    st = os.stat("/var/run/utmp")
    os.chmod("/var/run/utmp", 0o600)
    try:
        status, out = login.run_status(f"{tool_path('quser')}")
    finally:
        os.chmod("/var/run/utmp", st.st_mode & 0o7777)
    assert status == 1 and "cannot read /var/run/utmp" in out and "Traceback" not in out


def test_python_api_on_real_sessions(make_user, open_login) -> None:
    import sessionctl

    a, b = make_user(), make_user()
    la1, la2, lb = open_login(a), open_login(a), open_login(b)
    lb.run("nohup sleep 600 >/dev/null 2>&1 &")
    lb_asid, lb_line = lb.audit_session_id, lb.tty_line
    lb.logout()
    procs.wait_until(lambda: (b.name, lb_line) not in who_lines(), 10)
    procs.wait_until(lambda: len(procs.pids_by_audit_session()[lb_asid]) == 1, 10)
    mine = {s.id: s for s in sessionctl.sessions(a.name)}
    assert set(mine) == {str(la1.audit_session_id), str(la2.audit_session_id)}
    assert all(isinstance(s, sessionctl.Session) and s.state is sessionctl.State.ACTIVE
               for s in mine.values())
    assert set(mine[str(la1.audit_session_id)].pids) == la1.pids()
    summaries = {u.user: u for u in sessionctl.users()}
    assert len(summaries[a.name].sessions) == 2 and summaries[a.name].state.value == "Active"
    assert summaries[b.name].state.value == "Disc"
    assert [s.id for s in summaries[b.name].sessions] == [str(lb_asid)]
    assert sessionctl.find_session(la2.tty_line).id == str(la2.audit_session_id)
    with pytest.raises(sessionctl.NoSuchSession):
        sessionctl.find_session("pts/9999")
    with pytest.raises(sessionctl.InvalidArgument):
        sessionctl.sessions("../etc")
