"""Desktop notifications: a real dbus-daemon session bus and notification service of a user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lab import procs

from sessionctl.linux import desktop
from sessionctl.model import Session, State

pytestmark = pytest.mark.real


@pytest.fixture
def user_bus(lab_user):
    """dbus-daemon --session for a lab user at /run/user/UID/bus, with a notification service."""
    if not shutil.which("dbus-daemon"):
        pytest.fail("dbus-daemon missing: scripts/bootstrap.sh --test installs dbus")
    runtime = Path("/run/user", str(lab_user.uid))
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(runtime, lab_user.uid, lab_user.gid)
    bus = runtime / "bus"
    as_user = ["setpriv", f"--reuid={lab_user.uid}", f"--regid={lab_user.gid}", "--clear-groups"]
    daemon = subprocess.Popen([*as_user, "dbus-daemon", "--session", "--nofork",
                               f"--address=unix:path={bus}"], stdout=subprocess.DEVNULL)
    server = None
    try:
        assert procs.wait_until(bus.is_socket, 10)
        # Passed as source text: the lab user may not read the checkout (a clone in a
        # mode-700 home, /root/sessionctl, is the default place).
        code = Path(__file__).with_name("notify_server.py").read_text()
        server = subprocess.Popen([*as_user, sys.executable, "-c", code, f"unix:path={bus}"],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        yield lab_user, server.stdout
    finally:
        for p in (server, daemon):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(5)
        shutil.rmtree(runtime, ignore_errors=True)


def _desktop_of(uid: int) -> Session:
    """A desktop session of ``uid`` whose processes tell nothing: /run/user/UID/bus it is."""
    return Session(id="c9", name=":9", user="u", uid=uid, state=State.ACTIVE, type="x11")


def test_notification_reaches_the_users_desktop_bus(user_bus) -> None:
    user, out = user_bus
    status, detail = desktop.notify(_desktop_of(user.uid), "Message from root",
                                    "Please save <b>now</b> & go", timeout=30, caller_uid=0)
    assert status == "delivered", detail
    assert json.loads(out.readline()) == {"app": "sessionctl", "summary": "Message from root",
                      "body": "Please save &lt;b&gt;now&lt;/b&gt; &amp; go", "timeout": 30000}


def test_other_users_cannot_reach_a_desktop_and_missing_bus_is_reported(user_bus) -> None:
    user, out = user_bus
    status, _ = desktop.notify(_desktop_of(user.uid), "x", "y", timeout=5,
                               caller_uid=user.uid + 1)
    assert status == "denied"
    status, detail = desktop.notify(_desktop_of(user.uid + 54321), "x", "y", timeout=5,
                                    caller_uid=0)
    assert status == "no-desktop" and "no session bus" in detail
    # Nothing was shown: the next notification is the service's first.
    status, detail = desktop.notify(_desktop_of(user.uid), "first", "one", timeout=5,
                                    caller_uid=0)
    assert status == "delivered" and detail == "notification id 1"
    assert json.loads(out.readline())["summary"] == "first"


def test_graphical_session_detection() -> None:
    base = dict(id="1", name="", user="u", uid=1000, state=State.ACTIVE, type="ssh")
    assert not desktop.is_graphical(Session(**base, ttys=("pts/1",)))
    assert desktop.is_graphical(Session(**{**base, "type": "x11"}))
    assert desktop.is_graphical(Session(**base, ttys=(":0",)))
