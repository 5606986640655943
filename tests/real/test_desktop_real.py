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
from lab.desktop import VncDesktop, screen_text, wait_until

pytestmark = [pytest.mark.container, pytest.mark.real]

VENV = Path(sys.prefix)
ENV = {"SESSIONCTL_AUDIT_LOG": "/tmp/sct-desktop/audit.jsonl",
       "SESSIONCTL_STATE_DIR": "/tmp/sct-desktop/state",
       "SESSIONCTL_RUN_DIR": "/tmp/sct-desktop/run"}
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
