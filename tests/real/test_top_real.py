"""sessionctl top: Textual Pilot tests on real sessions, and the real command in tmux."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest
from lab import procs, tool_path

pytestmark = pytest.mark.real


def bg(login, cmd: str) -> int:
    return int(login.run(f"{cmd} >/dev/null 2>&1 & echo $!").split()[-1])


async def until(pilot, condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.1)


def run_app(scenario, size=(80, 24), **options) -> None:
    from sessionctl.tui.app import TopApp

    async def main() -> None:
        app = TopApp(**options)
        async with app.run_test(size=size) as pilot:
            await scenario(app, pilot)

    asyncio.run(main())


def keys(app) -> list[str]:
    return [r.key for r in app.rows]


def test_expand_and_sort(make_user, open_login) -> None:
    user, other = make_user(), make_user()
    login, second = open_login(user), open_login(user)
    open_login(other)
    burner = bg(login, "sh -c 'while :; do :; done'")
    sleeper = bg(login, "sleep 600")
    sid, sid2 = str(login.audit_session_id), str(second.audit_session_id)

    async def scenario(app, pilot) -> None:
        def before(a: str, b: str) -> bool:
            k = keys(app)
            return a in k and b in k and k.index(a) < k.index(b)

        # default sort: CPU, largest first: the burner's user above the idle one (waiting
        # for a refresh in which the burner got the CPU: other work shares this machine)
        await until(pilot, lambda: before(f"u:{user.name}", f"u:{other.name}"))
        assert app.select(f"u:{user.name}")
        await pilot.press("enter")  # expand the user: both sessions show
        await until(pilot, lambda: before(f"s:{sid}", f"s:{sid2}"))  # CPU order
        assert app.select(f"s:{sid}")
        await pilot.press("right")  # expand the session: its processes show
        assert any(k.startswith(f"p:{burner}:") for k in keys(app)), keys(app)

        def processes() -> list:
            return [r for r in app.rows if r.kind == "process" and r.session.session.id == sid]

        assert {r.item.pid for r in processes()} == procs.pids_by_audit_session()[int(sid)]
        await until(pilot, lambda: processes()[0].item.pid == burner
                    and processes()[0].item.cpu_percent > 5)  # sorted by CPU
        cpus = [r.item.cpu_percent for r in processes()]
        assert cpus == sorted(cpus, reverse=True)
        # sort by RSS, then reverse: order follows the figure
        while app.sort != "rss":
            await pilot.press("s")
        rss = [r.item.rss_bytes for r in app.rows if r.kind == "process"]
        assert rss == sorted(rss, reverse=True)
        await pilot.press("r")
        rss = [r.item.rss_bytes for r in app.rows if r.kind == "process"]
        assert rss == sorted(rss)
        assert "sort RSS ^" in str(app.query_one("#title").render())
        # Left on a process collapses its session and lands on it
        assert app.select(f"p:{sleeper}:" + keys(app)[[k.split(":")[1] for k in keys(app)]
                                                    .index(str(sleeper))].split(":")[2])
        await pilot.press("left")
        assert not any(k.startswith("p:") for k in keys(app))
        assert app.current_row().key == f"s:{sid}"
        # refreshes keep going and keep the cursor where it was
        done = app.refreshes
        await until(pilot, lambda: app.refreshes >= done + 2)
        assert app.current_row().key == f"s:{sid}"

    run_app(scenario)


def test_sign_out_asks_and_warns_then_signs_out(make_user, open_login) -> None:
    user = make_user()
    login = open_login(user)
    bystander = open_login(user)
    bg(login, "sleep 600")
    sid = str(login.audit_session_id)
    members = login.pids()
    spared = bystander.pids()

    async def scenario(app, pilot) -> None:
        from sessionctl.tui.dialogs import SignOutDialog

        await until(pilot, lambda: f"u:{user.name}" in keys(app))
        app.select(f"u:{user.name}")
        await pilot.press("l")  # two sessions: the user row cannot say which
        assert "several sessions" in app.outcomes[-1]
        await pilot.press("enter")
        await until(pilot, lambda: f"s:{sid}" in keys(app))
        app.select(f"s:{sid}")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, SignOutDialog))
        text = " ".join(str(w.render()) for w in app.screen.query("Static, Label"))
        assert f"Sign out session {sid} ({user.name}, {login.tty_line})?" in text
        assert "Unsaved work" in text and "may be lost" in text
        await pilot.press("escape")  # cancel: nothing happens
        await pilot.pause(0.3)
        assert not isinstance(app.screen, SignOutDialog) and procs.alive(login.shell_pid)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, SignOutDialog))
        await pilot.click("#now")
        await until(pilot, lambda: any("signed out" in o for o in app.outcomes), 40)
        assert f"session {sid} signed out" in app.outcomes[-1]
        await until(pilot, lambda: f"s:{sid}" not in keys(app))

    run_app(scenario)
    assert not procs.wait_gone(members, 5)
    assert all(procs.alive(p) for p in spared)


def test_end_process_with_confirmation(make_user, open_login) -> None:
    user = make_user()
    login = open_login(user)
    victim = bg(login, "sleep 600")
    keep = bg(login, "sleep 601")
    sid = str(login.audit_session_id)

    async def scenario(app, pilot) -> None:
        from sessionctl.tui.dialogs import EndProcessDialog

        await until(pilot, lambda: f"u:{user.name}" in keys(app))
        app.expanded |= {f"u:{user.name}", f"s:{sid}"}
        app.redraw()
        key = next(k for k in keys(app) if k.startswith(f"p:{victim}:"))
        app.select(key)
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, EndProcessDialog))
        await pilot.press("enter")  # the focused button is Cancel
        await pilot.pause(0.3)
        assert procs.alive(victim)
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, EndProcessDialog))
        await pilot.click("#end")
        await until(pilot, lambda: any(f"process {victim}" in o for o in app.outcomes), 20)
        assert app.outcomes[-1] == f"process {victim}: ended"
        await until(pilot, lambda: key not in keys(app))

    run_app(scenario)
    assert not procs.alive(victim) or procs.is_zombie(victim)
    assert procs.alive(keep) and procs.alive(login.shell_pid)


def test_small_terminal_and_help(make_user, open_login) -> None:
    user = make_user()
    open_login(user)

    async def scenario(app, pilot) -> None:
        from sessionctl.tui.dialogs import HelpScreen

        note = app.query_one("#toosmall")
        assert note.display and "Terminal too small (50x8)" in str(note.render())
        assert not app.table.display
        await until(pilot, lambda: app.refreshes >= 2)  # keeps sampling, no crash
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: not note.display and app.table.display, 5)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "sign out the session under" in str(app.screen.query_one("Static").render())
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))

    run_app(scenario, size=(50, 8))


class Tmux:
    """A private tmux server (own socket) running one command in an 80x24 window."""

    def __init__(self, argv: list[str]) -> None:
        self.socket = f"sctest-top-{os.getpid()}"
        self.base = ["tmux", "-L", self.socket, "-f", "/dev/null"]
        subprocess.run([*self.base, "new-session", "-d", "-x", "80", "-y", "24", "-s", "top",
                        "-e", "TERM=xterm-256color", *argv], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", "-t", "top"],
                              capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "top", *keys], check=True)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on screen:\n{shown}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return subprocess.run([*self.base, "has-session", "-t", "top"],
                              capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by bootstrap --test")
def test_top_in_tmux_80x24(make_user, open_login) -> None:
    user = make_user()
    login = open_login(user)
    bg(login, "sh -c 'while :; do :; done'")
    tmux = Tmux([str(tool_path("sessionctl")), "top", "--sort", "cpu", "--interval", "0.5"])
    try:
        tmux.wait_for(user.name)
        screen = tmux.wait_for("Active")
        lines = screen.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert "USER / SESSION / PROCESS" in screen and "CPU%" in screen and "IDLE" in screen
        assert "q Quit" in screen and "Sign out" in screen
        row = next(line for line in lines if user.name in line)
        assert row.split()[:5] == ["+", user.name, "Active", "1", str(len(login.pids()))]
        tmux.keys("?")
        tmux.wait_for("Press Escape")
        tmux.keys("Escape")
        tmux.wait_for("USER / SESSION")
        tmux.keys("q")
        deadline = time.monotonic() + 10
        while tmux.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not tmux.alive()  # q quits (the window closes with the command)
    finally:
        tmux.close()


def test_message_reaches_the_session_terminal(make_user, open_login) -> None:
    user = make_user()
    login = open_login(user)
    other = open_login(user)
    sid = str(login.audit_session_id)

    async def scenario(app, pilot) -> None:
        from sessionctl.tui.dialogs import MessageDialog

        await until(pilot, lambda: f"u:{user.name}" in keys(app))
        app.expanded.add(f"u:{user.name}")
        app.redraw()
        assert app.select(f"s:{sid}")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MessageDialog))
        assert f"session {sid} ({user.name} {login.tty_line})" in str(
            app.screen.query_one("Label").render())
        await pilot.press(*"lunch at one 4711")
        await pilot.press("enter")
        await until(pilot, lambda: any(o.startswith(f"message to {sid}") for o in app.outcomes))
        assert app.outcomes[-1] == f"message to {sid}: 1 delivered"

    run_app(scenario)
    login.wait_output("lunch at one 4711", 10)
    assert "lunch at one 4711" not in other.read_available(0.5)  # only that session


def test_warned_sign_out_counts_down_then_signs_out(make_user, open_login) -> None:
    import sessionctl

    user = make_user()
    login = open_login(user)
    sid = str(login.audit_session_id)
    members = login.pids()

    async def scenario(app, pilot) -> None:
        from textual.widgets import Input

        from sessionctl.tui.dialogs import SignOutDialog

        await until(pilot, lambda: f"u:{user.name}" in keys(app))
        assert app.select(f"u:{user.name}")  # the user's only session
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, SignOutDialog))
        dialog = app.screen
        assert dialog.query_one("#warn").has_focus  # the warned sign-out is the default
        dialog.query_one("#notice", Input).value = "8s"
        dialog.query_one("#warn-message", Input).value = "save your work 4711"
        await pilot.click("#warn")
        await until(pilot, lambda: any("warned" in o for o in app.outcomes), 20)
        assert f"session {sid} warned; sign-out at" in app.outcomes[-1]
        await pilot.press("enter")  # expand the user: the session row says Warned
        await until(pilot, lambda: any(r.cells.get("state") == "Warned" for r in app.rows))
        notes = str(app.query_one("#notes").render())
        assert f"Pending sign-outs: {sid} ({user.name}) logoff in 0:0" in notes
        await until(pilot, lambda: f"u:{user.name}" not in keys(app), 45)

    try:
        run_app(scenario)
        login.wait_output("save your work 4711", 5)
        assert not procs.wait_gone(members, 5)
    finally:
        if any(p.session_id == sid for p in sessionctl.pending_logoffs()):
            sessionctl.cancel_logoff(sid)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by bootstrap --test")
def test_top_as_non_root_notes_what_it_cannot_read(make_user, open_login) -> None:
    me, other = make_user(), make_user()
    open_login(me)
    theirs = open_login(other)
    victim = bg(theirs, "sleep 600")
    tmux = Tmux(["su", "-s", "/bin/sh", me.name, "-c",
                 f"exec {tool_path('sessionctl')} top --sort user {other.name}"])
    try:
        tmux.wait_for(other.name)
        screen = tmux.wait_for("not readable")  # the note under the table
        assert "of other users: disk figures not readable" in screen
        row = next(line for line in screen.splitlines() if other.name in line)
        assert row.split()[-3:-1] == ["-", "-"]  # their disk figures: unknown, not zero
        tmux.keys("e")  # expand everything, go to the other user's sleep, try to end it
        tmux.wait_for(f"{victim} sleep")
        lines = tmux.screen().splitlines()
        target = next(i for i, line in enumerate(lines) if f"{victim} sleep" in line)
        tmux.keys("Home")
        time.sleep(0.3)
        tmux.keys(*["Down"] * (target - 2))  # the table's first row is line 2
        time.sleep(0.3)
        tmux.keys("k")
        tmux.wait_for("End process")
        tmux.keys("BTab")  # from Cancel (focused first) to "End process"
        time.sleep(0.3)
        tmux.keys("Enter")
        tmux.wait_for("Access is denied")
        assert procs.alive(victim)
    finally:
        tmux.close()
