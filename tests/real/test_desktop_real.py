"""Real graphical sessions: TigerVNC + Xfce desktops in the systemd container, driven and
seen through a real VNC client (vncdotool); the screen is read back with OCR.

sessionctl runs inside the container (the venv is bind-mounted), as root, with its own
audit log, state and run directories.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab.desktop import (
    VncDesktop,
    find_text,
    ocr_has,
    screen_text,
    show_session,
    type_into,
    wait_for_screen,
    wait_until,
)

pytestmark = [pytest.mark.container, pytest.mark.real]

VENV = Path(sys.prefix)
# As on a real system: the audit log's directory is root's alone, state and sockets are
# readable by the users (their Postpone button and `sessionctl postpone` need them).
ENV = {"SESSIONCTL_AUDIT_LOG": "/tmp/sct-audit/audit.jsonl",
       "SESSIONCTL_STATE_DIR": "/tmp/sct-state",
       "SESSIONCTL_RUN_DIR": "/tmp/sct-run"}
TOP_RIGHT = (600, 0, 1024, 260)  # where xfce4-notifyd shows notifications


def sctl(c, *argv: str, timeout: float = 60, check: bool = False):
    """A sessionctl command inside the container, as root."""
    return c.exec([str(VENV / "bin" / argv[0]), *argv[1:]], env=ENV, timeout=timeout,
                  check=check)


def listing(c) -> list[dict]:
    return json.loads(sctl(c, "qwinsta", "--json", check=True).stdout)


def by_id(c, sid: str) -> dict | None:
    return next((s for s in listing(c) if s["id"] == sid), None)


@pytest.fixture
def desktops(desktop_container):
    """Factory ``desktops(user=None, **kw) -> VncDesktop``; all stopped at teardown."""
    made: list[VncDesktop] = []

    def factory(user: str | None = None, **kw) -> VncDesktop:
        if user is None:
            user, _ = desktop_container.add_user()
        d = VncDesktop(desktop_container, user, **kw)
        made.append(d)
        return d.start()

    yield factory
    for d in made:
        d.stop()


def test_vnc_desktop_listed_as_loginctl_shows_it(desktop_container, desktops, tmp_path):
    c = desktop_container
    d = desktops()
    props = c.show_session(d.session_id)
    s = by_id(c, d.session_id)
    assert s is not None
    assert (s["type"], s["display"], s["remote"], s["service"], s["user"]) == (
        props["Type"], props["Display"], props["Remote"] == "yes", props["Service"], props["Name"])
    assert s["protocol"] == "vnc" and s["display"] == d.name
    assert s["state"] == "Disc" and s["client_address"] == ""  # no viewer connected
    viewer = d.viewer()
    try:
        assert wait_until(lambda: by_id(c, d.session_id)["state"] == "Active", 20)
        s = by_id(c, d.session_id)
        assert s["client_address"].startswith("127.0.0.1:")
        port = int(s["client_address"].rsplit(":", 1)[1])
        # the viewer's own end of the connection is that address
        out = subprocess.run(["ss", "-tnp", "state", "established", f"sport = :{port}"],
                             capture_output=True, text=True, check=False).stdout
        assert f"pid={viewer.pid}," in out, out
        table = sctl(c, "qwinsta", "/v", check=True).stdout
        line = next(x for x in table.splitlines() if f" {d.session_id} " in x)
        assert "x11/vnc" in line and s["client_address"] in line
    finally:
        viewer.kill()
        viewer.wait()
    assert wait_until(lambda: by_id(c, d.session_id)["state"] == "Disc", 20)


def test_idle_grows_and_drops_after_viewer_input(desktop_container, desktops):
    c = desktop_container
    d = desktops()
    d.vnc("move", "300", "300")
    first = by_id(c, d.session_id)
    assert first["idle_source"] == "x11"
    assert wait_until(lambda: by_id(c, d.session_id)["idle_seconds"] >= 3.0, 30, 0.5)
    grown = by_id(c, d.session_id)["idle_seconds"]
    d.vnc("move", "500", "400", "type", "x")
    after = by_id(c, d.session_id)
    assert after["idle_source"] == "x11" and after["idle_seconds"] < grown
    assert after["idle_seconds"] < 2.0
    quser = sctl(c, "quser", check=True).stdout
    assert any(d.name in line and line.split()[4] == "." for line in quser.splitlines()
               if d.session_id in line.split())


def test_msg_shows_on_the_vnc_screen(desktop_container, desktops, tmp_path):
    c = desktop_container
    d = desktops()
    res = sctl(c, "msg", d.session_id, "/v", "Please save your drawings")
    assert res.returncode == 0, res.stdout + res.stderr
    shot = d.capture(tmp_path / "msg.png")
    text = screen_text(shot, TOP_RIGHT)
    assert "Message from root" in text and "save your drawings" in text, text


def test_fallback_window_without_notification_service(desktop_container, desktops,
                                                       tmp_path):
    c = desktop_container
    d = desktops(notifyd=False)
    res = sctl(c, "msg", d.session_id, "--json", "Fallback window text")
    assert res.returncode == 0, res.stdout + res.stderr
    (delivery,) = json.loads(res.stdout)["deliveries"]
    assert delivery["status"] == "delivered" and "message window" in delivery["detail"]
    assert "no notification service" in delivery["detail"]
    shot = d.capture(tmp_path / "fallback.png")
    text = screen_text(shot)
    assert "Message from root" in text and "Fallback window text" in text, text


def _ssh_login(c, user: str, password: str) -> subprocess.Popen:
    argv = c.ssh_notty_argv(user, password, ["sleep", "600"])
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _sessions_of(c, user: str) -> dict[str, dict[str, str]]:
    return {row["session"]: show_session(c, row["session"])
            for row in c.loginctl_sessions() if row["user"] == user}


def test_logoff_asks_xfce_first_editors_keep_their_text(desktop_container, desktops,
                                                        tmp_path):
    c = desktop_container
    user, password = c.add_user()
    other = desktops(user)  # a second desktop of the same user: must stay
    home = f"/home/{user}"
    d = desktops(user, autostart={
        "vim": f"xterm -geometry 80x20+0+0 -title vimterm -e vim {home}/notes.txt",
        "nano": f"xterm -geometry 80x20+0+380 -title nanoterm -e nano {home}/draft.txt"})
    ssh = _ssh_login(c, user, password)
    try:
        assert wait_until(lambda: any(p.get("Service") == "sshd"
                                      for p in _sessions_of(c, user).values()), 30)
        wait_for_screen(d, ["notes", "nano"], 60, tmp_path / "editors.png")
        type_into(d, (200, 150, "iunsaved vim words"), (200, 500, "unsaved nano words"))
        shot = screen_text(d.capture(tmp_path / "editors.png"))
        assert "unsaved vim words" in shot and "unsaved nano words" in shot, shot
        before = _sessions_of(c, user)
        other_pids = other.scope_pids()
        grace = 10
        res = sctl(c, "logoff", d.session_id, "--json", "--grace", str(grace), timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        out = json.loads(res.stdout)
        desk = out["desktop"]
        assert desk["request"] == "asked" and desk["manager"] == "xfce", desk
        assert out["steps"][0]["name"] == "desktop-logout"
        assert any(name.startswith("vim[") for name in desk["ended_by_themselves"]
                   + desk["ended_on_signal"]), desk
        assert out["seconds"] <= grace + 1, out
        assert d.scope_pids() == []
        assert d.session_id not in {r["session"] for r in c.loginctl_sessions()}
        inside = c.root / home.lstrip("/")
        assert b"unsaved vim words" in (inside / ".notes.txt.swp").read_bytes()
        assert b"unsaved nano words" in (inside / "draft.txt.save").read_bytes()
        after = _sessions_of(c, user)
        assert set(after) == set(before) - {d.session_id}
        assert other.scope_pids() == other_pids
        assert ssh.poll() is None
        audit = c.exec(["tail", "-n", "1", ENV["SESSIONCTL_AUDIT_LOG"]]).stdout
        assert json.loads(audit)["desktop"]["manager"] == "xfce"
    finally:
        ssh.kill()
        ssh.wait()


def test_inhibitor_is_reported_and_ended_after_the_grace(desktop_container, desktops):
    c = desktop_container
    user, _ = c.add_user()
    hold = VncDesktop(c, user).write_script(
        "hold.sh", "trap '' HUP\nexec systemd-inhibit --what=shutdown --mode=delay "
        "--who=Sketcher --why=unsaved-drawing sleep 600")
    d = desktops(user, autostart={"inhibit": hold})
    assert wait_until(lambda: "Sketcher" in c.exec(["systemd-inhibit", "--list"]).stdout, 30)
    grace = 3
    t0 = time.monotonic()
    res = sctl(c, "logoff", d.session_id, "--json", "--grace", str(grace), timeout=120)
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    desk = out["desktop"]
    who = {(i["who"], i["why"], i["source"]) for i in desk["inhibitors"]}
    assert ("Sketcher", "unsaved-drawing", "logind") in who, desk
    assert desk["waited"] >= grace - 0.1 and not desk["emptied_by_itself"]
    assert any(n.startswith("sleep[") for n in desk["ended_on_signal"] + desk["killed"]), desk
    assert took >= grace and d.scope_pids() == []
    verbose = sctl(c, "logoff", "/v", d.session_id)  # gone now: says so, exits non-zero
    assert verbose.returncode != 0


def test_disconnect_keeps_the_desktop_and_a_new_viewer_sees_it(desktop_container, desktops,
                                                               tmp_path):
    c = desktop_container
    d = desktops(autostart={"term": "xterm -geometry 60x10+100+100 -title keepme"})
    viewer = d.viewer()
    try:
        assert wait_until(lambda: by_id(c, d.session_id)["state"] == "Active", 20)
        pids = d.scope_pids()
        res = sctl(c, "tsdiscon", d.session_id, "--json")  # the desktop's own disconnect
        done = json.loads(res.stdout)
        assert res.returncode == 0 and done["outcome"] == "disconnected", done
        assert done["state"] == "Disc" and "vncconfig -disconnect" in done["steps"][0], done
        assert viewer.wait(10) is not None  # the viewer's connection was closed
        s = by_id(c, d.session_id)
        assert s["state"] == "Disc" and s["client_address"] == ""
        assert set(pids) <= set(d.scope_pids())
        text = screen_text(d.capture(tmp_path / "again.png"))
        assert ocr_has(text, f"{d.user}@"), text  # the same xterm, its prompt still there
    finally:
        if viewer.poll() is None:
            viewer.kill()
        viewer.wait()


def _pending(c) -> list[dict]:
    res = sctl(c, "sessionctl", "pending", "--json", check=True)
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_warned_logoff_notice_on_screen_and_postpone_button(desktop_container, desktops,
                                                            tmp_path):
    c = desktop_container
    d = desktops()
    res = sctl(c, "logoff", d.session_id, "--notice", "5m", "--max-postpone", "30m",
               "--message", "Maintenance tonight")
    assert res.returncode == 0, res.stdout + res.stderr
    try:
        (p,) = [x for x in _pending(c) if x["session_id"] == d.session_id]
        shot = d.capture(tmp_path / "notice.png")
        text = screen_text(shot, TOP_RIGHT)
        assert "signed out in 5 min" in text and "Maintenance tonight" in text, text
        where = find_text(shot, "Postpone", TOP_RIGHT)
        assert where is not None, text
        d.vnc("move", str(where[0]), str(where[1]), "click", "1")
        assert wait_until(lambda: _pending(c)[0]["postponed"] > 0, 20), _pending(c)
        q = _pending(c)[0]
        assert q["postponed"] == 600 and q["logoff_at"] > p["logoff_at"] + 590
        audit = [json.loads(x) for x in c.exec(["cat", ENV["SESSIONCTL_AUDIT_LOG"]])
                 .stdout.splitlines()]
        postponed = [a for a in audit if a.get("event") == "logoff-postponed"
                     and a.get("session") == d.session_id]
        assert postponed and postponed[-1]["by"] == d.user, audit[-3:]
        shot = d.capture(tmp_path / "postponed.png")
        assert "postponed" in screen_text(shot, TOP_RIGHT)
    finally:
        sctl(c, "sessionctl", "cancel", d.session_id)


def test_idle_policy_warns_an_idle_desktop_and_withdraws_after_input(desktop_container,
                                                                    desktops, tmp_path):
    c = desktop_container
    d = desktops()
    policy = ("[defaults]\nwarn_before = \"25s\"\nmax_postpone = \"0s\"\ninterval = \"1s\"\n"
              f"[[rule]]\nname = \"idle-desktops\"\nidle_limit = \"35s\"\ntypes = [\"x11\"]\n"
              f"users = [\"{d.user}\"]\n")
    c.exec(["tee", "/tmp/sct-policy.toml"], input=policy, check=True)
    viewer = d.viewer()  # someone is connected (Active) but does nothing
    daemon = c.spawn([str(VENV / "bin" / "sessionctl"), "daemon", "--config",
                      "/tmp/sct-policy.toml"], env=c.container_env(ENV),
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: any(p["session_id"] == d.session_id for p in _pending(c)),
                          60, 0.5), daemon.stderr
        text = screen_text(d.capture(tmp_path / "warned.png"), TOP_RIGHT)
        assert "will be signed out" in text and "idle" in text.lower(), text
        d.vnc("move", "100", "700", "type", "back")  # the user is back
        assert wait_until(lambda: not any(p["session_id"] == d.session_id
                                          for p in _pending(c)), 30, 0.5)
        def withdrawn() -> bool:
            shown = screen_text(d.capture(tmp_path / "withdrawn.png"), TOP_RIGHT)
            return "cancelled" in shown and "will be signed out" not in shown
        assert wait_until(withdrawn, 15, 1.0), screen_text(tmp_path / "withdrawn.png")
        assert by_id(c, d.session_id)["state"] == "Active"
    finally:
        daemon.kill()
        daemon.wait()
        viewer.kill()
        viewer.wait()


def _pid_of(c, user: str, comm: str) -> int:
    out = c.exec(["pgrep", "-u", user, "-x", comm]).stdout.split()
    assert out, f"no {comm} of {user}"
    return int(out[0])


def test_stopped_x_server_never_hangs_a_listing_or_msg(desktop_container, desktops):
    c = desktop_container
    d = desktops()
    xpid = _pid_of(c, d.user, "Xtigervnc")
    c.exec(["kill", "-STOP", str(xpid)], check=True)
    try:
        t0 = time.monotonic()
        s = by_id(c, d.session_id)
        took = time.monotonic() - t0
        assert s["idle_seconds"] is None and s["idle_source"] is None
        assert "did not answer within 1 s" in s["idle_error"], s
        assert took < 10, took  # bounded: X11_TIMEOUT (1 s) plus the tool's own start
        t0 = time.monotonic()
        res = sctl(c, "msg", d.session_id, "--json", "hello?")
        took = time.monotonic() - t0
        (delivery,) = json.loads(res.stdout)["deliveries"]
        assert res.returncode != 0 and delivery["status"] in ("busy", "error"), delivery
        assert took < 30, took  # bus call (6 s) + fallback window (3 s), never a hang
    finally:
        c.exec(["kill", "-CONT", str(xpid)])


def test_hanging_session_bus_falls_back_to_the_window_and_to_signals(desktop_container,
                                                                     desktops, tmp_path):
    c = desktop_container
    d = desktops()
    bus = _pid_of(c, d.user, "dbus-daemon")
    c.exec(["kill", "-STOP", str(bus)], check=True)
    try:
        res = sctl(c, "msg", d.session_id, "--json", "Bus is stuck")
        (delivery,) = json.loads(res.stdout)["deliveries"]
        assert delivery["status"] == "delivered", delivery
        assert "session bus did not answer" in delivery["detail"], delivery
        text = screen_text(d.capture(tmp_path / "stuck.png"))
        assert "Bus is stuck" in text, text
        t0 = time.monotonic()
        res = sctl(c, "logoff", d.session_id, "--json", "--grace", "2", timeout=120)
        took = time.monotonic() - t0
        out = json.loads(res.stdout)
        assert res.returncode == 0, res.stdout + res.stderr
        assert out["desktop"]["request"] == "timeout", out["desktop"]
        assert out["outcome"] == "logged-off" and d.scope_pids() == []
        assert took < 30, took
    finally:
        c.exec(["kill", "-CONT", str(bus)])


def test_session_manager_that_never_logs_out_gets_the_signals(desktop_container, desktops):
    c = desktop_container
    d = desktops()
    manager = _pid_of(c, d.user, "xfce4-session")
    c.exec(["kill", "-STOP", str(manager)], check=True)
    grace = 3
    t0 = time.monotonic()
    res = sctl(c, "logoff", d.session_id, "--json", "--grace", str(grace), timeout=120)
    took = time.monotonic() - t0
    out = json.loads(res.stdout)
    desk = out["desktop"]
    assert res.returncode == 0 and out["outcome"] == "logged-off", res.stdout + res.stderr
    assert desk["request"] == "asked" and "did not reply" in desk["detail"], desk
    assert not desk["emptied_by_itself"]
    assert any(n.startswith("xfce4-session[") for n in desk["killed"] + desk["ended_on_signal"])
    assert d.scope_pids() == []
    assert took < grace + 3 + 10, took  # Logout's reply wait (3 s) + grace, then signals


def test_xrdp_desktop_listed_idle_messaged_and_signed_out(desktop_container, desktops,
                                                          tmp_path):
    """xrdp + xorgxrdp with a real RDP client (xfreerdp on a VNC desktop, seen through
    the VNC viewer)."""
    from lab.desktop import XrdpDesktop

    c = desktop_container
    viewer = desktops()
    user, password = c.add_user()
    rdp = XrdpDesktop(viewer, user, password).start()
    try:
        props = c.show_session(rdp.session_id)
        s = by_id(c, rdp.session_id)
        assert (s["type"], s["display"], s["service"]) == (props["Type"], props["Display"],
                                                            "xrdp-sesman")
        assert s["protocol"] == "rdp" and s["idle_source"] == "x11", s
        res = sctl(c, "msg", rdp.session_id, "Hello RDP desktop")
        assert res.returncode == 0, res.stdout + res.stderr
        text = screen_text(viewer.capture(tmp_path / "rdp.png"))
        assert "FreeRDP" in text and "Hello RDP desktop" in text, text
        res = sctl(c, "logoff", rdp.session_id, "--json", "--grace", "10", timeout=120)
        out = json.loads(res.stdout)
        assert res.returncode == 0 and out["desktop"]["manager"] == "xfce", out
        assert rdp.session_id not in {r["session"] for r in c.loginctl_sessions()}
    finally:
        rdp.stop()


TOP_SCENARIO = r"""
import asyncio, json, sys, time
from sessionctl.tui.app import TopApp
from sessionctl.tui.dialogs import SignOutDialog
user, sid = sys.argv[1], sys.argv[2]

async def until(pilot, cond, timeout=40):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.2)

async def main():
    app = TopApp()
    async with app.run_test(size=(100, 30)) as pilot:
        keys = lambda: [r.key for r in app.rows]
        await until(pilot, lambda: f"u:{user}" in keys())
        app.select(f"u:{user}")
        await pilot.press("enter")
        await until(pilot, lambda: f"s:{sid}" in keys())
        row = next(r for r in app.rows if r.key == f"s:{sid}")
        app.select(f"s:{sid}")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, SignOutDialog))
        text = " ".join(str(w.render()) for w in app.screen.query("Static, Label"))
        await pilot.press("escape")
        print(json.dumps({"label": row.cells["user"], "idle": row.cells["idle"],
                          "dialog": text}))

asyncio.run(main())
"""


def test_top_shows_the_desktop_and_its_sign_out_says_apps_are_asked(desktop_container,
                                                                    desktops):
    c = desktop_container
    d = desktops()
    res = c.exec([str(VENV / "bin" / "python"), "-c", TOP_SCENARIO, d.user, d.session_id],
                 env=ENV, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    seen = json.loads(res.stdout.splitlines()[-1])
    assert seen["label"] == f"{d.session_id} {d.name} vnc", seen
    assert seen["idle"] not in ("", "-"), seen
    assert "session manager is asked to log out" in seen["dialog"], seen
    assert "asked to save their work" in seen["dialog"], seen
