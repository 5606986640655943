"""tmux and screen through the logind backend, in a real systemd container: Disc after
logout, tsdiscon and re-attach, the policy's disconnect then the Disc limit, logoff.

The container gets tmux and screen from the host's installed packages, copied into its
own overlay layer (SystemdContainer(host_packages=...)): the cached rootfs is unchanged.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import pytest
from lab import procs, tool_path
from layout import parse_quser

pytestmark = pytest.mark.container
TOOL = str(tool_path("qwinsta").parent)
PACKAGES = ("tmux", "screen", "libutempter0", "libevent-core-2.1-7")


@pytest.fixture(scope="module")
def ct():
    from lab.container import container_fixture

    yield from container_fixture(host_packages=PACKAGES)


def inside(ct, *argv: str, env: dict[str, str] | None = None):
    res = ct.exec([f"{TOOL}/{argv[0]}", *argv[1:]], timeout=90, env=env)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def rows(ct, backend: str = "logind") -> dict[str, dict]:
    res = inside(ct, "qwinsta", "--json", "--backend", backend)
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    ids = [r["id"] for r in found]
    assert len(ids) == len(set(ids))
    return {r["id"]: r for r in found}


def host_pids(ct, sid: str) -> dict[int, int | None]:
    """PID (host's numbering, as the tests read /proc) → start time, of a logind session's
    scope, by its audit id."""
    return {p: procs.start_time_of(p) for p in procs.pids_by_audit_session().get(int(sid), ())}


def mux_pids(ct, sid: str, comm: str) -> set[int]:
    return {p for p in host_pids(ct, sid) if procs.comm_of(p) == comm}


def test_multiplexers_left_after_logout_are_disc_then_logged_off(ct, ct_login) -> None:
    login = ct_login()
    sid = str(login.audit_session_id)
    login.run("tmux new-session -d -s work 'sleep 900'; screen -dmS keep sleep 900")
    assert procs.wait_until(lambda: mux_pids(ct, sid, "tmux: server"), 10)
    row = rows(ct)[sid]
    assert row["state"] == "Active" and row["backend"] == "logind"
    assert {m["kind"] for m in row["multiplexers"]} == {"tmux", "screen"}
    login.logout()
    assert procs.wait_until(lambda: ct.show_session(sid).get("State") == "closing", 10)
    for backend in ("logind", "procfs"):
        row = rows(ct, backend)[sid]
        assert row["state"] == "Disc", backend
        assert {m["kind"] for m in row["multiplexers"]} == {"tmux", "screen"}, backend
        assert all(not m["attached"] for m in row["multiplexers"])
    (u,) = parse_quser(inside(ct, "quser", login.user.name).stdout)
    assert u["id"] == sid and u["state"] == "Disc"
    work = host_pids(ct, sid)
    res = inside(ct, "logoff", sid, "--grace", "2")
    assert res.returncode == 0, res.stderr
    assert procs.wait_gone(set(work), 10) == set()
    assert procs.wait_until(
        lambda: sid not in {s["session"] for s in ct.loginctl_sessions()}, 10)


def test_tsdiscon_cycle_and_refusal_on_logind(ct, ct_login) -> None:
    login = ct_login()
    plain = ct_login(login.user)
    sid = str(login.audit_session_id)
    login.run("tmux new-session -d -s work 'sleep 900'")
    assert procs.wait_until(lambda: mux_pids(ct, sid, "tmux: server")
                            and mux_pids(ct, sid, "sleep"), 10)  # the pane has exec'd
    work = {p: s for p, s in host_pids(ct, sid).items()
            if procs.comm_of(p) in ("tmux: server", "sleep")}
    assert len(work) == 2
    refused = inside(ct, "tsdiscon", str(plain.audit_session_id))
    assert refused.returncode == 1 and "nothing that would keep running" in refused.stderr
    assert not plain.closed
    res = inside(ct, "tsdiscon", sid, "/v")
    assert res.returncode == 0, res.stdout + res.stderr
    assert procs.wait_until(lambda: login.closed, 10)
    assert ct.show_session(sid).get("State") == "closing"
    assert rows(ct)[sid]["state"] == "Disc"
    assert all(procs.start_time_of(p) == s for p, s in work.items())
    again = ct_login(login.user)
    again.send("tmux attach -t work\r")
    row = procs.wait_until(lambda: (r := rows(ct)[sid]) and r["state"] == "Active" and r, 10)
    assert row["attached_from"] == [str(again.audit_session_id)]
    assert all(procs.start_time_of(p) == s for p, s in work.items())


def test_policy_disconnect_then_disc_limit_on_logind(ct, ct_login) -> None:
    login = ct_login()
    sid, user = str(login.audit_session_id), login.user.name
    login.run("tmux new-session -d -s work 'sleep 900'")
    assert procs.wait_until(lambda: mux_pids(ct, sid, "tmux: server")
                            and mux_pids(ct, sid, "sleep"), 10)  # the pane has exec'd
    work = {p: s for p, s in host_pids(ct, sid).items()
            if procs.comm_of(p) in ("tmux: server", "sleep")}
    base = f"/tmp/sctest-policy-{secrets.token_hex(4)}"
    ct.exec(["mkdir", "-p", f"{base}/state", f"{base}/run"], check=True)
    ct.exec(["tee", f"{base}/policy.toml"], check=True, input=f"""
[defaults]
grace = "2s"

[[rule]]
name = "cut-access"
idle_limit = "1h"
on_limit = "disconnect"
users = ["{user}"]

[[rule]]
name = "leftovers"
disc_limit = "1s"
users = ["{user}"]
""")
    env = {"SESSIONCTL_STATE_DIR": f"{base}/state", "SESSIONCTL_RUN_DIR": f"{base}/run"}
    # two hours without input on its terminal (the idle clock is the tty's atime)
    tty = f"{ct.root}/dev/{login.tty_line}"
    os.utime(tty, (time.time() - 7200, os.stat(tty).st_mtime))

    def tick() -> str:
        res = inside(ct, "sessionctl", "daemon", "--config", f"{base}/policy.toml", "--once",
                     "--audit-log", f"{base}/audit.jsonl", env=env)
        assert res.returncode == 0, res.stderr
        return res.stderr

    out = tick()
    assert f"[rule cut-access] disconnected session {sid}" in out, out
    assert "(disconnected)" in out
    assert procs.wait_until(lambda: login.closed, 10)
    assert all(procs.start_time_of(p) == s for p, s in work.items())
    tick()  # the Disc clock starts
    time.sleep(1.5)
    out = tick()
    assert f"[rule leftovers] logged off session {sid}" in out, out
    assert procs.wait_gone(set(work), 10) == set()


def test_root_tmux_outside_any_session_on_logind(ct) -> None:
    """A tmux started outside every logind session is one session of its own (as on
    procfs), its panes no sessions; logoff of it ends it and only it."""
    sock = f"/tmp/sctest-tmux-{secrets.token_hex(4)}/s"
    ct.exec(["mkdir", "-p", os.path.dirname(sock)], check=True)
    ct.exec(["tmux", "-S", sock, "new-session", "-d", "sleep 900"], check=True)
    ct.exec(["tmux", "-S", sock, "split-window", "sleep 901"], check=True)
    pid = ct.exec(["tmux", "-S", sock, "display-message", "-p", "#{pid}"],
                  check=True).stdout.strip()
    try:
        # tmux registers each pane in utmp through its helper, a moment after it exists
        found = procs.wait_until(lambda: (r := rows(ct)).get(f"p{pid}") and len(
            r[f"p{pid}"]["multiplexers"][0]["terminals"]) == 2 and r, 10)
        row = found[f"p{pid}"]
        assert row["type"] == "tmux" and row["state"] == "Disc" and row["user"] == "root"
        (m,) = row["multiplexers"]
        assert m["name"] == sock and len(m["terminals"]) == 2 and len(row["pids"]) == 3
        assert not any(r["name"] in m["terminals"] for r in found.values())
        res = inside(ct, "logoff", f"p{pid}", "--grace", "1")
        assert res.returncode == 0, res.stderr
        assert f"p{pid}" not in rows(ct)
        assert ct.exec(["kill", "-0", pid]).returncode != 0
    finally:
        ct.exec(["tmux", "-S", sock, "kill-server"])


def test_the_hosts_listing_leaves_the_containers_sessions_out(ct, ct_login) -> None:
    """A container's logins are that system's sessions (its users: a uid there may name
    someone else here): the host's procfs listing does not show them."""
    login = ct_login()
    sid = str(login.audit_session_id)
    assert sid in rows(ct)  # inside, it is there
    here = subprocess.run([str(tool_path("qwinsta")), "--json", "--backend", "procfs"],
                          capture_output=True, text=True, timeout=60)
    assert here.returncode in (0, 1) and "Traceback" not in here.stderr
    assert sid not in {r["id"] for r in json.loads(here.stdout or "[]")}
