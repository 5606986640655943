"""tsdiscon / sessionctl disconnect on real ssh logins with tmux and screen."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from lab import procs, tool_path
from lab.console import ConsoleLogin
from lab.mux import descendants, ensure_screen_dir, starts, tmux_server_of

pytestmark = pytest.mark.real


def tool(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(tool_path(argv[0])), *argv[1:]], capture_output=True, text=True,
                         timeout=timeout)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def row_of(sid: str) -> dict | None:
    rows = json.loads(tool("qwinsta", "--json", "--backend", "procfs").stdout)
    return next((r for r in rows if r["id"] == sid), None)


def who_lines() -> set[tuple[str, str]]:
    out = subprocess.run(["who"], capture_output=True, text=True, check=True).stdout
    return {(line.split()[0], line.split()[1]) for line in out.splitlines() if line.strip()}


def unchanged(before: dict[int, int | None]) -> bool:
    return all(procs.start_time_of(p) == s for p, s in before.items())


def test_tsdiscon_full_cycle(lab_user, open_login) -> None:
    login = open_login(lab_user)
    sid, line = str(login.audit_session_id), login.tty_line
    login.run("tmux new-session -d -s work 'sleep 900' \\; split-window 'sleep 901'")
    server = tmux_server_of(login)
    work = descendants(server)
    before = starts(work)
    assert len(work) == 3
    res = tool("tsdiscon", sid, "/v")
    assert res.returncode == 0, res.stderr
    assert f"Session {sid} ({lab_user.name}, {line}) disconnected" in res.stdout
    assert "SIGTERM to sshd" in res.stdout
    # the ssh connection is gone, its login record closed; the work runs on unchanged
    assert procs.wait_until(lambda: login.closed, 10)
    assert (lab_user.name, line) not in who_lines()
    assert unchanged(before) and descendants(server) == work
    row = row_of(sid)
    assert row is not None and row["state"] == "Disc" and row["name"] == ""
    assert row["multiplexers"][0]["pid"] == server
    # the user logs in again, attaches: Active again, through the new login
    again = open_login(lab_user)
    again.send("tmux attach -t work\r")
    row = procs.wait_until(lambda: (r := row_of(sid)) and r["state"] == "Active" and r, 10)
    assert row["attached_from"] == [str(again.audit_session_id)]
    assert unchanged(before)
    # disconnecting the first session now detaches that client (the second login stays)
    res = tool("sessionctl", "disconnect", sid, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["outcome"] == "disconnected" and out["detached"] == [
        f"{again.tty_line} from tmux {server}"] and out["state"] == "Disc"
    assert not again.closed and row_of(str(again.audit_session_id))["state"] == "Active"
    assert unchanged(before)


def test_own_session_from_inside_tmux_and_screen(lab_user, open_login) -> None:
    """No argument: your own session. Run from a tmux pane, tsdiscon survives its own
    disconnect (it is part of the work kept) and says so."""
    ensure_screen_dir()
    login = open_login(lab_user)
    sid = str(login.audit_session_id)
    login.run("screen -dmS keep sleep 900")
    screen = int(procs.wait_until(
        lambda: login.run("screen -ls | grep -o '[0-9]*\\.keep'"), 10).split(".")[0])
    login.send(f"tmux new-session -s own '{tool_path('tsdiscon')} /v > ~/discon.out 2>&1; "
               "echo $? >> ~/discon.out; sleep 900'\r")
    out_file = lab_user.home / "discon.out"
    assert procs.wait_until(lambda: login.closed, 20)
    text = procs.wait_until(lambda: out_file.exists() and (
        t := out_file.read_text()).strip().endswith(("0", "1")) and t, 20)
    assert text.strip().endswith("0"), text
    assert f"Session {sid}" in text and "disconnected" in text
    row = row_of(sid)
    assert row["state"] == "Disc"
    assert {m["kind"] for m in row["multiplexers"]} == {"tmux", "screen"}
    assert procs.alive(screen)


def test_refusals_touch_nothing(make_user, open_login) -> None:
    a, b = make_user(), make_user()
    plain = open_login(a)
    with_tmux = open_login(a)
    with_tmux.run("tmux new-session -d 'sleep 900'")
    other = open_login(b)
    before = starts(plain.pids() | other.pids())
    # nothing that would survive
    res = tool("tsdiscon", str(plain.audit_session_id))
    assert res.returncode == 1 and "nothing that would keep running" in res.stderr
    assert "use logoff" in res.stderr and res.stdout == ""
    # another user's session, for a non-root caller
    status, out = other.run_status(f"{tool_path('tsdiscon')} {with_tmux.audit_session_id}")
    assert status == 1 and "Access is denied" in out
    # unknown, malformed, a name that is no Active session
    for bad, code, text in (("99999999", 1, "No session exists for 99999999"),
                            ("pts/9999", 1, "No session exists for pts/9999"),
                            ("../x", 1, "Invalid parameter(s)"),
                            ("--bogus", 1, "Invalid parameter(s)")):
        res = tool("tsdiscon", bad)
        assert res.returncode == code and text in res.stderr, (bad, res.stderr)
    # a session already disconnected
    with_tmux_sid = str(with_tmux.audit_session_id)
    assert tool("tsdiscon", with_tmux_sid).returncode == 0
    res = tool("tsdiscon", with_tmux_sid)
    assert res.returncode == 1 and "already disconnected" in res.stderr
    assert not plain.closed and not other.closed and unchanged(before)
    # the console, even as root
    console = ConsoleLogin(a)
    try:
        res = tool("tsdiscon", str(console.audit_session_id))
        assert res.returncode == 1 and "console session" in res.stderr
        assert console.pids()
    finally:
        console.close()


def test_a_stopped_tmux_server_never_hangs_us(make_user, open_login) -> None:
    user = make_user()
    first = open_login(user)
    sid = str(first.audit_session_id)
    first.run("tmux new-session -d -s work 'sleep 900'")
    server = tmux_server_of(first)
    first.logout()
    second = open_login(user)
    second.send("tmux attach -t work\r")
    assert procs.wait_until(lambda: (row_of(sid) or {}).get("state") == "Active", 10)
    start = procs.start_time_of(server)
    procs.signal_pid_if(server, signal.SIGSTOP, lambda p: procs.start_time_of(p) == start)
    try:
        t0 = time.monotonic()
        row = row_of(sid)  # the listing never talks to the server
        assert row["state"] == "Active" and time.monotonic() - t0 < 10
        t0 = time.monotonic()
        res = tool("tsdiscon", sid, "--timeout", "3")
        took = time.monotonic() - t0
        assert res.returncode == 1 and took < 20, (took, res.stderr)
        assert "did not answer" in res.stderr and "NOT fully disconnected" in res.stderr
        assert procs.start_time_of(server) == start and not second.closed
    finally:
        procs.signal_pid_if(server, signal.SIGCONT, lambda p: procs.start_time_of(p) == start)


def test_server_exiting_mid_disconnect_is_reported(lab_user, open_login) -> None:
    """A tmux that destroys its session when no client is left ends with the connection:
    the disconnect says the work was not kept, and fails."""
    login = open_login(lab_user)
    sid = str(login.audit_session_id)
    login.send("tmux new-session -s brittle 'sleep 900' \\; set destroy-unattached on\r")
    server = procs.wait_until(lambda: next(
        (p for p in procs.all_pids() if procs.comm_of(p) == "tmux: server"
         and procs.audit_session_of(p) == login.audit_session_id), None), 10)
    assert procs.wait_until(lambda: (row_of(sid) or {}).get("multiplexers"), 10)
    res = tool("tsdiscon", sid, "--json")
    assert res.returncode == 1
    out = json.loads(res.stdout)
    assert out["outcome"] == "incomplete" and server in out["lost"]
    assert any("ended" in p or "gone" in p for p in out["problems"]), out["problems"]


def test_top_d_key_disconnects_the_session_under_the_cursor(lab_user, open_login) -> None:
    import asyncio

    from sessionctl.tui.app import TopApp

    login = open_login(lab_user)
    plain = open_login(lab_user)
    sid, plain_sid = str(login.audit_session_id), str(plain.audit_session_id)
    login.run("tmux new-session -d 'sleep 900'")
    server = tmux_server_of(login)
    before = starts(descendants(server))

    async def main() -> None:
        app = TopApp(target=lab_user.name, backend="procfs")
        async with app.run_test(size=(100, 30)) as pilot:
            while not app.select(f"u:{lab_user.name}"):
                await pilot.pause(0.1)
            await pilot.press("right")
            while not app.select(f"s:{plain_sid}"):
                await pilot.pause(0.1)
            await pilot.press("d")  # no tmux: refused on the spot, no dialog
            await pilot.pause(0.2)
            assert "has no tmux or screen" in app.outcomes[-1]
            assert app.select(f"s:{sid}")
            await pilot.press("d")
            await pilot.pause(0.3)
            await pilot.click("#disconnect")
            deadline = time.monotonic() + 20
            while not any("disconnected" in o for o in app.outcomes):
                assert time.monotonic() < deadline, app.outcomes
                await pilot.pause(0.1)
            await pilot.press("q")
        assert app.return_code in (None, 0)

    asyncio.run(main())
    assert procs.wait_until(lambda: login.closed, 10) and not plain.closed
    assert row_of(sid)["state"] == "Disc" and unchanged(before)
