"""tmux and screen on real sessions (procfs backend): Disc after logout, reaping, root's
tmux outside any login, attached from another login, and the policy's disconnect."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from lab import procs, tool_path
from lab.login import ssh_argv
from lab.mux import RootTmux, descendants, ensure_screen_dir, starts, tmux_server_of
from layout import parse_quser, parse_qwinsta

pytestmark = pytest.mark.real


def tool(*argv: str, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(tool_path(argv[0])), *argv[1:]], capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, **(env or {})})
    assert "Traceback" not in res.stderr, res.stderr
    return res


def listing() -> dict[str, dict]:
    rows = json.loads(tool("qwinsta", "--json", "--backend", "procfs").stdout)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"ids repeat: {ids}"
    seen: dict[int, str] = {}
    for r in rows:  # every process in one session at most
        for pid in r["pids"]:
            assert pid not in seen, f"{pid} in sessions {seen[pid]} and {r['id']}"
            seen[pid] = r["id"]
    return {r["id"]: r for r in rows}


def who_lines() -> set[tuple[str, str]]:
    out = subprocess.run(["who"], capture_output=True, text=True, check=True).stdout
    return {(line.split()[0], line.split()[1]) for line in out.splitlines() if line.strip()}


def private_env(tmp_path: Path) -> dict[str, str]:
    """State, run dir and audit log of this test only."""
    for d in ("state", "run"):
        (tmp_path / d).mkdir(exist_ok=True)
    return {"SESSIONCTL_STATE_DIR": str(tmp_path / "state"),
            "SESSIONCTL_RUN_DIR": str(tmp_path / "run"),
            "SESSIONCTL_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
            "SESSIONCTL_BACKEND": "procfs"}


def start_mux(login, kind: str) -> int:
    """A detached tmux/screen in the login running a long sleep; returns its server."""
    if kind == "tmux":
        login.run("tmux new-session -d -s work 'sleep 900'")
        return tmux_server_of(login)
    ensure_screen_dir()
    login.run("screen -dmS work sleep 900")
    out = procs.wait_until(lambda: login.run("screen -ls | grep -o '[0-9]*\\.work'"), 10)
    return int(out.split(".")[0])


def top_rows(target: str) -> dict[str, dict[str, str]]:
    """Session rows of the real top screen (Textual pilot), every row expanded."""
    from sessionctl.tui.app import TopApp

    seen: dict[str, dict[str, str]] = {}

    async def main() -> None:
        app = TopApp(target=target, backend="procfs")
        async with app.run_test(size=(100, 40)) as pilot:
            deadline = time.monotonic() + 20
            while app.snapshot is None and time.monotonic() < deadline:
                await pilot.pause(0.1)
            await pilot.press("e")
            await pilot.pause(0.3)
            seen.update({r.key: r.cells for r in app.rows if r.kind == "session"})
        assert app.return_code in (None, 0)

    asyncio.run(main())
    return seen


@pytest.mark.parametrize("kind", ["tmux", "screen"])
def test_multiplexer_left_after_logout_is_disc_everywhere_then_reaped(
    kind, lab_user, open_login, tmp_path
) -> None:
    login = open_login(lab_user)
    sid, line = str(login.audit_session_id), login.tty_line
    server = start_mux(login, kind)
    work = descendants(server)
    assert len(work) >= 2  # the server and the sleep in its pane
    before = starts(work)
    row = listing()[sid]
    assert row["state"] == "Active" and row["name"] == line
    assert [m["kind"] for m in row["multiplexers"]] == [kind]
    login.logout()
    procs.wait_until(lambda: (lab_user.name, line) not in who_lines(), 10)
    row = procs.wait_until(lambda: (r := listing().get(sid)) and r["state"] == "Disc" and r, 10)
    # JSON: Disc, no name, the multiplexer and its work listed
    assert row["name"] == "" and row["user"] == lab_user.name
    (m,) = row["multiplexers"]
    assert m["kind"] == kind and m["pid"] == server and m["attached"] is False
    assert m["terminals"] and set(row["pids"]) >= work
    # `who` lists the pane (libutempter), but no session is a pane
    assert (lab_user.name, m["terminals"][0]) in who_lines() or kind == "screen"
    assert not any(r["name"] in m["terminals"] for r in listing().values())
    # qwinsta, quser
    (q,) = [r for r in parse_qwinsta(tool("qwinsta", lab_user.name).stdout) if r["id"] == sid]
    assert q["state"] == "Disc" and q["name"] == ""
    (u,) = [r for r in parse_quser(tool("quser", lab_user.name).stdout) if r["id"] == sid]
    assert u["state"] == "Disc"
    # top
    cells = top_rows(lab_user.name)[f"s:{sid}"]
    assert cells["state"] == "Disc"
    # policy check: once, Disc; a disc_limit rule reaps it
    env = private_env(tmp_path)
    config = tmp_path / "policy.toml"
    config.write_text(f'[defaults]\ninterval = "1s"\ngrace = "2s"\n\n[[rule]]\n'
                      f'name = "leftovers"\ndisc_limit = "1s"\nusers = ["{lab_user.name}"]\n')
    check = tool("sessionctl", "policy", "check", str(config), "--json", env=env)
    decisions = [json.loads(x) for x in check.stdout.splitlines()]
    mine = [d for d in decisions if d["session"] == sid]
    assert len(mine) == 1 and mine[0]["state"] == "Disc" and mine[0]["rule"] == "leftovers"
    assert all(p == s for p, s in zip(starts(work).values(), before.values(), strict=True))
    first = tool("sessionctl", "daemon", "--config", str(config), "--once", env=env)
    assert first.returncode == 0 and procs.alive(server)  # the Disc clock starts now
    time.sleep(1.5)
    second = tool("sessionctl", "daemon", "--config", str(config), "--once", env=env)
    assert f"[rule leftovers] logged off session {sid}" in second.stderr, second.stderr
    assert procs.wait_gone(work, 10) == set()
    assert sid not in listing()


def test_root_tmux_outside_any_login(make_user, sshd, tmp_path) -> None:
    """Four panes, two running ssh logins: unique ids, each process once, logoff of one
    pane's login ends only that login, totals match /proc, top expands every row."""
    a, b = make_user(), make_user()
    with RootTmux() as tm:
        for user in (a, b):
            argv = " ".join(ssh_argv(user, sshd, "-tt"))
            tm.new_window(argv, env={"SSHPASS": user.password, "TERM": "xterm"})
        tm.new_window("sleep 3600")
        assert len(tm.panes()) == 4
        procs.wait_until(lambda: {a.name, b.name} <= {u for u, _ in who_lines()}, 20)
        rows = procs.wait_until(lambda: (r := listing()) and all(
            any(s["user"] == x.name for s in r.values()) for x in (a, b)) and r, 20)
        (mine,) = [r for r in rows.values() if r["id"] == f"p{tm.pid}"]
        assert mine["user"] == "root" and mine["type"] == "tmux" and mine["state"] == "Disc"
        (m,) = mine["multiplexers"]
        assert m["pid"] == tm.pid and sorted(m["terminals"]) == sorted(t for _, t in tm.panes())
        assert m["name"] == tm.socket
        # the pane terminals are no session's name; the two logins are sessions of their own
        panes = {t for _, t in tm.panes()}
        assert not any(r["name"] in panes for r in rows.values())
        lines = who_lines()  # the two logins made in the panes, by their terminals
        la = [r for r in rows.values() if r["user"] == a.name and (a.name, r["name"]) in lines]
        lb = [r for r in rows.values() if r["user"] == b.name and (b.name, r["name"]) in lines]
        assert len(la) == len(lb) == 1 and la[0]["id"].isdigit() and lb[0]["id"].isdigit()
        assert la[0]["state"] == "Active" and la[0]["type"] == "ssh"
        # the tmux session holds exactly the server's process tree, each process once
        tree = descendants(tm.pid)
        assert set(mine["pids"]) == tree
        users = json.loads(tool("sessionctl", "users", "root", "--json", "--sessions").stdout)
        (root,) = [u for u in users["users"] if u["user"] == "root"]
        by_sid = {s["id"]: s for s in root["session_list"]}
        assert by_sid[f"p{tm.pid}"]["processes"] == len(tree)
        assert root["processes"] == sum(s["processes"] for s in root["session_list"])
        # top: every row can be expanded, the totals are the same
        from sessionctl.tui.app import TopApp

        async def main() -> None:
            app = TopApp(backend="procfs")
            async with app.run_test(size=(100, 60)) as pilot:
                while app.snapshot is None:
                    await pilot.pause(0.1)
                for _ in range(len(app.rows) * 3):
                    row = app.current_row()
                    if row is not None and row.kind in ("user", "session") and not row.expanded:
                        await pilot.press("right")
                    await pilot.press("down")
                await pilot.press("e")
                await pilot.pause(0.3)
                keys = [r.key for r in app.rows]
                assert len(keys) == len(set(keys))
                snap = app.snapshot
                (s,) = [x for x in snap.sessions if x.session.id == f"p{tm.pid}"]
                assert {p.pid for p in s.processes} == tree
                await pilot.press("q")
            assert app.return_code in (None, 0)

        asyncio.run(main())
        # logoff of one pane's login ends only that login
        a_sid, b_sid = la[0]["id"], lb[0]["id"]
        b_before = starts(set(lb[0]["pids"]))
        server_start = procs.start_time_of(tm.pid)
        res = tool("logoff", a_sid, "--grace", "2")
        assert res.returncode == 0, res.stderr
        rows = listing()
        assert a_sid not in rows and b_sid in rows and f"p{tm.pid}" in rows
        assert procs.start_time_of(tm.pid) == server_start
        assert all(procs.start_time_of(p) == s for p, s in b_before.items())
        assert len(tm.panes()) >= 3  # the pane whose ssh ended may close; the rest stay


def test_attached_from_a_second_login_and_idle_follows_typing(
    lab_user, make_user, open_login
) -> None:
    watcher = open_login(make_user())  # another user, not root: sees it attached too
    first = open_login(lab_user)
    sid = str(first.audit_session_id)
    start_mux(first, "tmux")
    first.logout()
    assert procs.wait_until(lambda: listing()[sid]["state"] == "Disc", 10)
    second = open_login(lab_user)
    sid2 = str(second.audit_session_id)
    second.send("tmux attach -t work\r")
    row = procs.wait_until(lambda: (r := listing()[sid]) and r["state"] == "Active" and r, 10)
    assert row["attached_from"] == [sid2] and row["idle_source"] == "clients"
    (m,) = row["multiplexers"]
    (client,) = m["clients"]
    assert m["attached"] and client["session"] == sid2 and client["tty"] == second.tty_line
    assert procs.comm_of(client["pid"]) == "tmux: client"
    seen = json.loads(watcher.run(f"{tool_path('qwinsta')} --json {lab_user.name}"))
    assert {r["id"]: r["state"] for r in seen}[sid] == "Active"
    assert {sid, sid2} <= {r["id"] for r in parse_quser(tool("quser", lab_user.name).stdout)
                           if r["state"] == "Active"}
    # idle follows the typing in the attached client (a tty's atime moves every 8 s)
    time.sleep(10)
    assert listing()[sid]["idle_seconds"] >= 8
    second.send("x")
    assert procs.wait_until(lambda: listing()[sid]["idle_seconds"] < 3, 5)
    second.send("\x02")  # tmux's prefix, then d: detach
    time.sleep(0.3)
    second.send("d")
    assert procs.wait_until(lambda: listing()[sid]["state"] == "Disc", 10)
    assert listing()[sid]["attached_from"] == []


def test_policy_disconnects_the_idle_login_then_reaps_the_disc_session(
    lab_user, open_login, tmp_path
) -> None:
    env = private_env(tmp_path)
    login = open_login(lab_user)
    plain = open_login(lab_user)  # no multiplexer: gets the ordinary warned logoff path
    sid, plain_sid = str(login.audit_session_id), str(plain.audit_session_id)
    server = start_mux(login, "tmux")
    work = descendants(server)
    before = starts(work)
    config = tmp_path / "policy.toml"
    config.write_text(f"""
[defaults]
interval = "1s"
grace = "2s"
warn_before = "5s"

[[rule]]
name = "cut-access"
idle_limit = "10s"
on_limit = "disconnect"
users = ["{lab_user.name}"]

[[rule]]
name = "leftovers"
disc_limit = "3s"
users = ["{lab_user.name}"]
""")
    check = tool("sessionctl", "policy", "check", str(config), env=env)
    assert check.returncode == 0 and "valid" in check.stdout
    d = subprocess.Popen([str(tool_path("sessionctl")), "daemon", "--config", str(config)],
                         env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        # idle for 10 s: the tmux login's connection ends, its work stays, Disc
        assert procs.wait_until(lambda: login.closed, 40)
        row = procs.wait_until(lambda: (r := listing().get(sid)) and r["state"] == "Disc" and r,
                               10)
        assert row["multiplexers"][0]["pid"] == server
        assert all(procs.start_time_of(p) == s for p, s in before.items())
        # then the Disc limit reaps it
        assert procs.wait_gone(work, 30) == set()
    finally:
        d.terminate()
        _, err = d.communicate(timeout=20)
        subprocess.run([str(tool_path("sessionctl")), "cancel", plain_sid],
                       capture_output=True, env={**os.environ, **env})
    assert f"[rule cut-access] disconnected session {sid}" in err, err
    assert f"[rule leftovers] logged off session {sid}" in err, err
    assert f"[rule cut-access] warn session {plain_sid}" in err, err  # no tmux: warned
    events = [json.loads(x)["event"] for x in Path(env["SESSIONCTL_AUDIT_LOG"]).read_text()
              .splitlines()]
    assert "disconnect" in events and "policy-disconnect" in events


def test_attached_by_another_user_through_a_shared_socket(
    make_user, open_login, tmp_path
) -> None:
    """User A's tmux on a shared socket, attached by user B: A's session is Active through
    B's login (attached_from), and its idle time follows B's typing."""
    owner, guest = make_user(), make_user()
    share = Path(f"/tmp/sctest-share-{os.urandom(4).hex()}")
    share.mkdir(mode=0o755)
    try:
        os.chown(share, owner.uid, owner.gid)
        sock = f"{share}/shared"
        first = open_login(owner)
        sid = str(first.audit_session_id)
        first.run(f"tmux -S {sock} new-session -d -s work 'sleep 900'")
        server = tmux_server_of(first, sock)
        first.run(f"chmod 777 {sock} && tmux -S {sock} server-access -a {guest.name}")
        first.logout()
        assert procs.wait_until(lambda: listing()[sid]["state"] == "Disc", 10)
        visitor = open_login(guest)
        vsid = str(visitor.audit_session_id)
        visitor.send(f"tmux -S {sock} attach -t work\r")
        row = procs.wait_until(
            lambda: (r := listing()[sid]) and r["state"] == "Active" and r, 10)
        assert row["attached_from"] == [vsid] and row["idle_source"] == "clients", row
        (m,) = row["multiplexers"]
        assert m["pid"] == server and m["attached"], m
        (client,) = m["clients"]
        assert client["session"] == vsid and client["tty"] == visitor.tty_line, client
        assert server in row["pids"] and client["pid"] not in row["pids"]  # B's, not A's
        assert client["pid"] in listing()[vsid]["pids"]
        time.sleep(10)  # a tty's atime moves at most every 8 s
        assert listing()[sid]["idle_seconds"] >= 8
        visitor.send("x")
        assert procs.wait_until(lambda: listing()[sid]["idle_seconds"] < 3, 5)
        visitor.send("\x02")
        time.sleep(0.3)
        visitor.send("d")
        assert procs.wait_until(lambda: listing()[sid]["state"] == "Disc", 10)
        assert listing()[sid]["attached_from"] == []
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(share)], check=False)
