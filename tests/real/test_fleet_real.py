"""Fleet query and logoff over real sshd "hosts" on 127.0.1.x with real logins.

The fleet: 20 healthy hosts (each its own sshd, sharing this machine's users and sessions),
plus ``down`` (nothing listening), ``badkey`` (wrong host key in known_hosts), ``nokey``
(refuses our key) and ``stall`` (sshd stopped with SIGSTOP). fnodeNN log in as a lab admin
user, rnodeNN are the same hosts logged into as root (logoff needs root).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab import procs, tool_path
from lab.fleet import Fleet
from lab.users import create_user, remove_user

from sessionctl.cli.render import VERBOSE_COLUMNS

pytestmark = pytest.mark.real

HEALTHY = 20
BROKEN = {"down": "unreachable", "badkey": "hostkey", "nokey": "auth", "stall": "timeout"}
CONNECT_TIMEOUT = 3


@pytest.fixture(scope="module")
def fleet(sshd) -> Iterator[Fleet]:  # the lab sshd first: stale-lab cleanup has run
    admin = create_user()
    try:
        with Fleet(count=HEALTHY, admin=admin.name) as lab:
            lab.admin_user = admin  # type: ignore[attr-defined]
            yield lab
    finally:
        remove_user(admin)


def sctl(fleet: Fleet, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    common = [
        "--ssh-config", str(fleet.ssh_config),
        "--control-dir", str(fleet.control_dir),
        "--connect-timeout", str(CONNECT_TIMEOUT),
        "--command-timeout", "60",
        "--persist", "120",
    ]
    return subprocess.run(
        [str(tool_path("sessionctl")), argv[0], *common, *argv[1:]],  # msg: text comes last
        capture_output=True, text=True, timeout=timeout,
    )


def json_lines(text: str) -> dict[str, dict]:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {row["host"]: row for row in rows}


def all_nodes(prefix: str = "fnode") -> str:
    return f"{prefix}[01-{HEALTHY:02d}],down,badkey,nokey,stall"


def test_every_outcome_classified_within_the_timeout(fleet, lab_user, open_login) -> None:
    login = open_login(lab_user)
    started = time.monotonic()
    res = sctl(fleet, "quser", "--servers", all_nodes(), "--json")
    elapsed = time.monotonic() - started
    assert res.returncode == 2, res.stderr
    rows = json_lines(res.stdout)
    assert set(rows) == {f"fnode{i:02d}" for i in range(1, HEALTHY + 1)} | set(BROKEN)
    for host, status in BROKEN.items():
        assert rows[host]["status"] == status, rows[host]
        assert rows[host]["error"] and rows[host]["result"] is None
    assert "Connection refused" in rows["down"]["error"]
    assert "Permission denied" in rows["nokey"]["error"]
    assert "has changed" in rows["badkey"]["error"]
    # the stalled sshd accepted TCP but never sent a banner: ssh's ConnectTimeout ended it
    assert elapsed < CONNECT_TIMEOUT + 60
    for i in range(1, HEALTHY + 1):
        row = rows[f"fnode{i:02d}"]
        assert row["status"] == "ok" and row["error"] is None, row
        mine = [s for s in row["result"] if s["id"] == str(login.audit_session_id)]
        assert len(mine) == 1 and mine[0]["user"] == lab_user.name
        assert mine[0]["name"] == login.tty_line and mine[0]["state"] == "Active"
        # our own transport session is never listed (it is the one the agent runs in)
        assert not any(s["current"] for s in row["result"])
    assert "stall: timeout" in res.stderr and "24 hosts" in res.stderr


def _masters(fleet: Fleet) -> set[int]:
    return {p for p in procs.all_pids() if "[mux]" in " ".join(procs.cmdline_of(p))
            and str(fleet.control_dir) in " ".join(procs.cmdline_of(p))}


def _query_servers(user_uid: int) -> set[int]:
    """Our remote query servers: the admin's python processes running the shipped agent."""
    # uids read once: a process may exit between two reads (it used to crash the test)
    return {p for p in procs.all_pids() if (uids := procs.uids_of(p)) and uids[0] == user_uid
            and procs.comm_of(p) == "python3"}


def test_repeated_queries_reuse_connections_and_query_servers(fleet) -> None:
    names = ",".join(f"fnode{i:02d}" for i in range(1, HEALTHY + 1))
    fleet.close_masters()
    for marker in fleet.control_dir.glob("m-*"):  # forget earlier tests' runs: a cold start
        marker.unlink()
    uid = fleet.admin_user.uid  # type: ignore[attr-defined]
    first = sctl(fleet, "qwinsta", "--servers", names, "--json")
    assert first.returncode == 0, first.stderr
    for i in range(1, HEALTHY + 1):  # a master is up for every healthy host
        check = subprocess.run(
            [*fleet.ssh_base(), "-o", f"ControlPath={fleet.control_dir}/%C", "-O", "check",
             f"fnode{i:02d}"], capture_output=True, text=True, timeout=20,
        )
        assert check.returncode == 0 and "Master running" in check.stderr, check.stderr
    masters = _masters(fleet)
    assert len(masters) == HEALTHY
    assert _query_servers(uid) == set()  # the first contact starts nothing that stays
    # second run: same connections (no new master, no handshake); it starts query servers
    assert sctl(fleet, "qwinsta", "--servers", names, "--json").returncode == 0
    assert _masters(fleet) == masters
    servers = procs.wait_until(lambda: len(_query_servers(uid)) >= HEALTHY and
                               _query_servers(uid), 10)
    assert len(list(fleet.control_dir.glob("a-*.sock"))) == HEALTHY
    # third run: answered by the servers through the forwarded sockets
    third = sctl(fleet, "qwinsta", "--servers", names, "--json")
    rows = json_lines(third.stdout)
    assert third.returncode == 0 and len(rows) == HEALTHY
    assert all(r["status"] == "ok" and not any(s["current"] for s in r["result"])
               for r in rows.values())
    assert _masters(fleet) == masters and _query_servers(uid) == servers
    # the servers live exactly as long as the connections they came with
    bye = sctl(fleet, "close-connections", "--servers", names)
    assert bye.returncode == 0 and f"{HEALTHY} connection(s) closed" in bye.stderr, bye.stderr
    assert procs.wait_gone(masters, 10) == set()
    assert procs.wait_gone(servers, 10) == set()
    assert list(fleet.control_dir.glob("a-*.sock")) == [] or all(
        not s.is_socket() or _refused(s) for s in fleet.control_dir.glob("a-*.sock"))
    # and a query after that falls back to ssh on its own
    again = sctl(fleet, "qwinsta", "--servers", names, "--json")
    assert again.returncode == 0 and len(json_lines(again.stdout)) == HEALTHY


def _refused(path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return True
    return False


def test_table_with_host_column_and_folding(fleet, lab_user, open_login) -> None:
    open_login(lab_user)
    res = sctl(fleet, "quser", "--servers", "fnode[01-05]", lab_user.name)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("HOST") and "USERNAME" in lines[0]
    assert [ln.split()[0] for ln in lines[1:]] == [f"fnode{i:02d}" for i in range(1, 6)]
    assert all(lab_user.name in ln for ln in lines[1:])
    folded = sctl(fleet, "quser", "--servers", "fnode[01-05],down", "--fold", lab_user.name)
    assert folded.returncode == 2
    assert "fnode[01-05] (5)" in folded.stdout and folded.stdout.count(lab_user.name) == 1
    assert "down: unreachable" in folded.stderr


def test_single_server_query_and_errors(fleet, lab_user, open_login) -> None:
    login = open_login(lab_user)
    res = sctl(fleet, "qwinsta", "/server:fnode07", lab_user.name)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith(" SESSIONNAME")
    assert str(login.audit_session_id) in res.stdout
    bad = sctl(fleet, "qwinsta", "/server:nokey")
    assert bad.returncode == 2 and "Error opening Terminal server nokey: auth" in bad.stderr


def _disc_session(login) -> tuple[int, set[int]]:
    """Leave a process behind and log out: the login becomes a Disc session."""
    asid = login.audit_session_id
    login.run("setsid sh -c 'exec sleep 600' >/dev/null 2>&1 &")
    login.logout()

    def only_sleep_left() -> set[int] | None:
        pids = procs.pids_by_audit_session().get(asid, set())
        return pids if pids and all(procs.comm_of(p) == "sleep" for p in pids) else None

    return asid, procs.wait_until(only_sleep_left, 10)


def test_fleet_logoff_dry_run_then_disc_sessions_older_than(fleet, make_user, open_login) -> None:
    user, bystander = make_user(), make_user()
    asid, pids = _disc_session(open_login(user))
    other = open_login(bystander)  # Active: must stay
    other_pids = other.pids()
    time.sleep(2.1)
    select = ["--user", user.name, "--user", bystander.name, "--state", "Disc",
              "--older-than", "2s"]
    dry = sctl(fleet, "logoff", "--servers", "rnode[01-03],down", *select, "--dry-run")
    assert dry.returncode == 2, dry.stderr  # down failed; nothing was done anywhere
    assert "Would log off 3 session(s) on 3 host(s)" in dry.stdout
    assert dry.stdout.count(str(asid)) == 3 and str(other.audit_session_id) not in dry.stdout
    assert procs.wait_gone(pids, 0.5) == pids  # still running after the dry run
    res = sctl(fleet, "logoff", "--servers", "rnode01", *select, "--grace", "1", "--json")
    assert res.returncode == 0, res.stderr
    row = json_lines(res.stdout)["rnode01"]
    assert row["status"] == "ok"
    assert [(r["session"], r["outcome"]) for r in row["result"]] == [(str(asid), "logged-off")]
    assert procs.wait_gone(pids, 10) == set()
    assert all(procs.alive(p) for p in other_pids)
    after = sctl(fleet, "qwinsta", "--servers", "fnode[01-20]", "--json")
    assert all(
        str(asid) not in {s["id"] for s in r["result"]} for r in json_lines(after.stdout).values()
    )


def test_single_server_logoff_by_id(fleet, lab_user, open_login) -> None:
    login = open_login(lab_user)
    res = sctl(fleet, "logoff", str(login.audit_session_id), "/server:rnode05", "--grace", "1")
    assert res.returncode == 0, res.stderr
    assert procs.wait_gone(login.pids(), 10) == set()
    missing = sctl(fleet, "logoff", "4294967000", "/server:rnode05")
    assert missing.returncode == 2 and "rnode05: error" in missing.stderr
    assert "No session" in missing.stderr


def test_user_at_host_as_ssh_users_type_it(fleet, lab_user, open_login) -> None:
    """/server:root@fnodeNN and --servers root@fnode[..] log in as root (logoff works),
    where fnodeNN alone logs in as the config's admin user (Access is denied). Both
    spellings used to be refused ("not a host name", "unknown group @host")."""
    login = open_login(lab_user)
    sid = str(login.audit_session_id)
    denied = sctl(fleet, "logoff", sid, "/server:fnode06", "--grace", "1")
    assert denied.returncode == 1 and "Access is denied" in denied.stdout
    dry = sctl(fleet, "logoff", "--servers", "root@fnode[06-07]", "--user", lab_user.name,
               "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert set(json_lines(dry.stdout)) == {"fnode06", "fnode07"}
    res = sctl(fleet, "logoff", sid, "/server:root@fnode06", "--grace", "1")
    assert res.returncode == 0, res.stderr
    assert procs.wait_gone(login.pids(), 10) == set()
    bad = sctl(fleet, "qwinsta", "/server:a;b@fnode06")
    assert bad.returncode == 1 and "not a user name" in bad.stderr


def test_never_runs_on_unnamed_hosts(fleet) -> None:
    res = sctl(fleet, "qwinsta", "--servers", "fnode[01-20]!fnode[02-20]", "--json")
    assert set(json_lines(res.stdout)) == {"fnode01"}
    res = sctl(fleet, "qwinsta", "--servers", "fnode[01-03]", "--exclude", "fnode02", "--json")
    assert set(json_lines(res.stdout)) == {"fnode01", "fnode03"}


def test_msg_one_server_and_a_selection_across_hosts(fleet, make_user, open_login) -> None:
    user, other = make_user(), make_user()
    login, bystander = open_login(user), open_login(other)
    sid = str(login.audit_session_id)
    one = sctl(fleet, "msg", user.name, "/server:rnode03", "hello from rnode03")
    assert one.returncode == 0, one.stderr
    login.wait_output(r"Message from root@\S+.*?\r*\n\r*\nhello from rnode03", 10)
    dry = sctl(fleet, "msg", "--servers", "rnode[01-02]", "--user", user.name, "--dry-run",
               "*", "not sent")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count(f"would send to session(s) {sid}") == 2
    res = sctl(fleet, "msg", "--servers", "rnode[01-02],nokey", "--user", user.name,
               "--state", "Active", "--json", "*", "fleet notice")
    assert res.returncode == 2, res.stderr  # nokey failed; the others delivered
    rows = json_lines(res.stdout)
    assert rows["nokey"]["status"] == "auth"
    for host in ("rnode01", "rnode02"):
        report = rows[host]["result"]
        assert rows[host]["status"] == "ok" and report["sessions"] == [sid]
        assert [(d["session_id"], d["status"]) for d in report["deliveries"]] == [
            (sid, "delivered")]
    login.wait_output(r"fleet notice[\s\S]*fleet notice", 10)  # once per host
    assert "fleet notice" not in bystander.read_available(0.5)
    assert "not sent" not in login.read_available(0.2)


def test_remote_failures_and_our_own_deadline(fleet, lab_user, open_login) -> None:
    login = open_login(lab_user)
    started = time.monotonic()
    # no python on the far side: a remote error with the reason, not a hang
    res = sctl(fleet, "quser", "--servers", "fnode01", "--remote-python", "/nonexistent/python3",
               "--json")
    row = json_lines(res.stdout)["fnode01"]
    assert res.returncode == 2 and row["status"] == "error"
    assert "exit 127" in row["error"] and "python3" in row["error"]
    # a command that outlives --command-timeout (msg /w waits for an acknowledgement that
    # never comes): our deadline ends it and says which stage it was in
    res = subprocess.run(
        [str(tool_path("sessionctl")), "msg", "--ssh-config", str(fleet.ssh_config),
         "--control-dir", str(fleet.control_dir), "--connect-timeout", "3",
         "--command-timeout", "2", "--servers", "rnode04", "--json", "/w", "/time:60",
         lab_user.name, "please", "ack"],
        capture_output=True, text=True, timeout=60,
    )
    row = json_lines(res.stdout)["rnode04"]
    assert res.returncode == 2 and row["status"] == "timeout", row
    assert row["error"] == "no answer within 5 s (running the command)"
    login.wait_output("please ack", 10)
    assert time.monotonic() - started < 30


def test_warned_logoff_on_a_remote_host_outlives_the_connection(fleet, lab_user,
                                                                open_login) -> None:
    login = open_login(lab_user)
    sid = str(login.audit_session_id)
    try:
        res = sctl(fleet, "logoff", sid, "/server:rnode07", "--notice", "5m", "--message",
                   "fleet maintenance tonight")
        assert res.returncode == 0, res.stderr
        assert f"{sid} ({lab_user.name}, {login.tty_line})" in res.stdout
        assert "scheduled at" in res.stdout
        login.wait_output(rf"Your session {sid} will be signed out in 5 min", 10)
        login.wait_output("fleet maintenance tonight", 2)
        # The countdown lives on the host, detached: closing our connection leaves it.
        assert sctl(fleet, "close-connections", "--servers", "rnode07").returncode == 0
        time.sleep(0.5)
        rows = [json.loads(x) for x in subprocess.run(
            [str(tool_path("sessionctl")), "pending", "--json"], capture_output=True,
            text=True, check=True).stdout.splitlines()]
        row = next(r for r in rows if r["session_id"] == sid)
        assert row["worker_alive"] and row["message"] == "fleet maintenance tonight"
        worker = int(row["worker_pid"])
        assert "sessionctl.actions.countdown" in " ".join(procs.cmdline_of(worker))
        # It runs from the zip shipped to the host, not from this machine's install.
        environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        assert any(e.startswith(b"PYTHONPATH=") and b".pyz" in e for e in environ)
        # Remote records carry every field of the local JSON: qwinsta /v shows the same
        # LOGOFF AT remotely as locally (it used to show "-").
        local = subprocess.run([str(tool_path("qwinsta")), sid, "/v"], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        remote = sctl(fleet, "qwinsta", "/server:rnode07", sid, "/v")
        assert remote.returncode == 0, remote.stderr
        col, width, _ = VERBOSE_COLUMNS["LOGOFF AT"]  # where qwinsta /v puts it
        at = local[1][col:col + width].strip()
        assert at not in ("", "-")
        assert remote.stdout.splitlines()[1][col:col + width].strip() == at
        local_json = json.loads(subprocess.run([str(tool_path("qwinsta")), sid, "--json"],
                                               capture_output=True, text=True).stdout)[0]
        remote_json = json.loads(sctl(fleet, "qwinsta", "/server:rnode07", sid,
                                      "--json").stdout)[0]
        assert set(remote_json) == set(local_json)
        assert remote_json["logoff_at"] == local_json["logoff_at"] is not None
        bad = sctl(fleet, "logoff", sid, "/server:rnode07", "--notice", "soon")
        assert bad.returncode == 1 and "is not a duration" in bad.stderr
    finally:
        subprocess.run([str(tool_path("sessionctl")), "cancel", sid], capture_output=True)
    login.wait_output(rf"sign-out of session {sid} was cancelled by root", 10)


def test_fleet_disconnect_by_selection_and_one_server(fleet, make_user, open_login) -> None:
    """Fleet selections disconnect only sessions whose work a multiplexer keeps (the others
    are listed as refused); /server:NAME ID disconnects one; every host is this machine."""
    user = make_user()
    keep, plain, again = open_login(user), open_login(user), open_login(user)
    for login in (keep, again):
        login.run("tmux -L s$$ new-session -d 'sleep 900'")
    sid, plain_sid, again_sid = (str(x.audit_session_id) for x in (keep, plain, again))
    plain_pids = plain.pids()
    select = ["--user", user.name, "--state", "Active"]
    dry = sctl(fleet, "disconnect", "--servers", "rnode[01-02]", *select, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Would disconnect 4 session(s)" in dry.stdout  # two on each host
    assert f"{plain_sid} ({user.name}, {plain.tty_line})" in dry.stdout
    assert "refused" in dry.stdout and "nothing that would keep running" in dry.stdout
    assert not keep.closed and not again.closed
    res = sctl(fleet, "disconnect", "--servers", "rnode01", *select, "--json")
    assert res.returncode == 0, res.stderr
    row = json_lines(res.stdout)["rnode01"]
    outcomes = {r["session"]: r["outcome"] for r in row["result"]}
    assert outcomes == {sid: "disconnected", again_sid: "disconnected", plain_sid: "refused"}
    assert procs.wait_until(lambda: keep.closed and again.closed, 10)
    assert all(procs.alive(p) for p in plain_pids) and not plain.closed
    # one server, one id: refused for a session without tmux (exit 1), nothing touched
    one = sctl(fleet, "disconnect", plain_sid, "/server:rnode03")
    assert one.returncode == 1 and "refused" in one.stdout, one.stdout + one.stderr
    assert not plain.closed
    bare = sctl(fleet, "disconnect", "--servers", "rnode01")
    assert bare.returncode == 1 and "sessionctl close-connections" in bare.stderr
