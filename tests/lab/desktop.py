"""Real graphical sessions for tests: TigerVNC + Xfce desktops in the systemd container,
seen and driven through a real VNC client (vncdotool) from the host.

* ``ensure_desktop_layer()`` runs scripts/lab-desktop-layer.sh (cached; ~40 s the first
  time) and returns the layer that ``SystemdContainer(layers=[...])`` stacks over the
  shared base rootfs (which stays untouched).
* ``VncDesktop(container, user, password)`` starts ``tigervncserver@:N`` for the user
  (logind registers an x11 session, Service=tigervnc, Remote=yes) on a free display
  number and a free 127.0.0.1 port, with Xfce and any autostart programs; ``stop()``
  ends it. ``vnc(...)`` runs vncdotool commands (move, click, type, key, capture) as a
  real viewer; ``capture()`` saves what the user sees; ``screen_text()`` reads it back
  (tesseract OCR), so tests check the screen itself, not our own return values.

Display numbers and ports are random and checked against every abstract X socket of
the (shared) network namespace, so parallel runs do not collide.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .container import PROJECT_ROOT, SystemdContainer

LAYER_SCRIPT = PROJECT_ROOT / "scripts" / "lab-desktop-layer.sh"
VNCDO = Path(sys.prefix) / "bin" / "vncdo"
DISPLAYS = range(20, 100)


def ensure_desktop_layer() -> Path:
    """The cached desktop layer (built by scripts/lab-desktop-layer.sh if needed)."""
    done = subprocess.run(["bash", str(LAYER_SCRIPT)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{LAYER_SCRIPT} failed ({done.returncode}):\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


def wait_until(check: Callable[[], object], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


def show_session(c: SystemdContainer, sid: str) -> dict[str, str]:
    """``loginctl show-session`` properties; empty if the session ended meanwhile."""
    res = c.exec(["loginctl", "show-session", "--no-pager", sid])
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


def _x_sockets_in_use() -> set[int]:
    used = set()
    with contextlib.suppress(OSError), open("/proc/net/unix") as f:
        for line in f:
            path = line.split()[-1]
            if "/.X11-unix/X" in path:
                tail = path.rsplit("X", 1)[1]
                if tail.isdigit():
                    used.add(int(tail))
    return used


def _free_port() -> int:
    """A free 127.0.0.1 port below the ephemeral range (an ephemeral one can be taken as
    the source port of some outgoing connection before the server binds it)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = random.randint(20000, max(20001, low - 1))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class VncDesktop:
    """One TigerVNC + Xfce desktop of ``user`` inside ``container``."""

    def __init__(self, container: SystemdContainer, user: str, *,
                 autostart: dict[str, str] | None = None, notifyd: bool = True,
                 geometry: str = "1024x768") -> None:
        self.c = container
        self.user = user
        self.password = secrets.token_hex(4)  # VNC passwords are at most 8 characters
        self.autostart = autostart or {}
        self.notifyd = notifyd
        self.geometry = geometry
        self.display = 0
        self.port = 0
        self.session_id = ""
        self.started = False

    @property
    def name(self) -> str:
        return f":{self.display}"

    def write_script(self, name: str, body: str) -> str:
        """An executable script in the user's home (for autostart commands); its path."""
        path = f"/home/{self.user}/{name}"
        self.c.exec(["tee", path], user=self.user, input=f"#!/bin/sh\n{body}\n", check=True)
        self.c.exec(["chmod", "755", path], check=True)
        return path

    def _as_user(self, script: str) -> None:
        self.c.exec(["bash", "-c", script], user=self.user, check=True)

    def start(self, timeout: float = 60.0, attempts: int = 2) -> VncDesktop:
        """Start the desktop; wait until logind has it, Xfce runs and the VNC port
        answers. On this loaded lab an Xfce session sometimes quits by itself within
        seconds of starting (xfwm4 and xfce4-session exit, the unit goes inactive); such
        a start is retried once on a fresh display, and the first failure is kept in
        ``self.start_failures``."""
        self.start_failures: list[str] = []
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except RuntimeError as exc:
                self.start_failures.append(str(exc))
                if attempt + 1 == attempts:
                    raise
                self.stop()
        return self

    def _start_once(self, timeout: float) -> VncDesktop:
        self.session_id = ""
        used = _x_sockets_in_use()
        tmp = self.c.root / "tmp"  # an earlier server killed hard leaves its lock behind
        self.display = random.choice([
            d for d in DISPLAYS if d not in used and not (tmp / f".X{d}-lock").exists()
            and not (tmp / ".X11-unix" / f"X{d}").exists()])
        self.port = _free_port()
        config = (f"session=xfce\nsecuritytypes=VncAuth\nlocalhost=yes\n"
                  f"rfbport={self.port}\ngeometry={self.geometry}\n")
        self._as_user(f"mkdir -p ~/.vnc ~/.config/autostart && cd ~/.vnc && "
                      f"echo {self.password} | vncpasswd -f > passwd && chmod 600 passwd && "
                      f"printf '{config}' > config")
        for name, command in self.autostart.items():
            entry = f"[Desktop Entry]\nType=Application\nName={name}\nExec={command}\n"
            self.c.exec(["tee", f"/home/{self.user}/.config/autostart/sct-{name}.desktop"],
                        user=self.user, input=entry, check=True)
        if not self.notifyd:  # hide the notification service from this desktop
            self._as_user("mkdir -p ~/.local/share/dbus-1/services && printf "
                          "'[D-BUS Service]\\nName=org.freedesktop.Notifications\\n"
                          "Exec=/bin/false\\n' > ~/.local/share/dbus-1/services/"
                          "org.freedesktop.Notifications.service && printf "
                          "'[Desktop Entry]\\nHidden=true\\n' > "
                          "~/.config/autostart/xfce4-notifyd.desktop")
        self.c.exec(["bash", "-c", f"echo ':{self.display}={self.user}' >> "
                     "/etc/tigervnc/vncserver.users"], check=True)
        self.c.exec(["systemctl", "start", f"tigervncserver@:{self.display}"], check=True)
        self.started = True
        unit = f"tigervncserver@:{self.display}"

        def ended() -> bool:  # the desktop quit while starting
            state = self.c.exec(["systemctl", "is-active", unit]).stdout.strip()
            return state in ("inactive", "failed")

        ok = wait_until(lambda: self._ready() or ended(), timeout, 0.2) and self._ready()
        if not ok:
            log = self.c.exec(["journalctl", "--no-pager", "-n", "40", "-u", unit]).stdout
            procs = self.c.exec(["ps", "-u", self.user, "-o", "pid,args"]).stdout
            home = self.c.exec(["tail", "-n", "20", f"/home/{self.user}/.xsession-errors"])
            raise RuntimeError(f"desktop :{self.display} of {self.user} did not come up in "
                               f"{timeout:g} s (session {self.find_session()!r}):\n{log}\n"
                               f"{procs}\n{home.stdout}")
        return self

    def _ready(self) -> bool:
        sid = self.find_session()
        if not sid:
            return False
        self.session_id = sid
        want = ["xfwm4", "xfce4-session", *(["xfce4-notifyd"] if self.notifyd else [])]
        running = self.c.exec(["ps", "-u", self.user, "-o", "comm="]).stdout.split()
        if not all(w in running for w in want):
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port),
                                                                     timeout=1) as s:
            return s.recv(12).startswith(b"RFB ")
        return False

    def find_session(self) -> str:
        """The logind session id whose Display is ours ("" if none)."""
        for row in self.c.loginctl_sessions():
            props = show_session(self.c, row["session"])
            if props.get("Display") == self.name and props.get("State") != "closing":
                return row["session"]
        return ""

    def scope_pids(self) -> list[int]:
        """PIDs (as the container sees them) in the session's scope right now."""
        found = self.c.exec(["bash", "-c", f"cat /sys/fs/cgroup/user.slice/user-*.slice/"
                             f"session-{self.session_id}.scope/cgroup.procs 2>/dev/null"])
        return [int(x) for x in found.stdout.split()]

    # -- the viewer --------------------------------------------------------------------

    def vnc(self, *commands: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run vncdotool commands as a viewer (connects, runs them, disconnects)."""
        argv = [str(VNCDO), "-s", f"127.0.0.1::{self.port}", "-p", self.password, *commands]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"vncdo {' '.join(commands)} failed: {done.stderr[-800:]}")
        return done

    def capture(self, path: Path) -> Path:
        self.vnc("capture", str(path))
        return path

    def viewer(self) -> subprocess.Popen[bytes]:
        """A viewer that stays connected (until killed): vncdo pausing for an hour."""
        argv = [str(VNCDO), "-s", f"127.0.0.1::{self.port}", "-p", self.password,
                "pause", "3600"]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        with contextlib.suppress(Exception):
            self.c.exec(["systemctl", "stop", f"tigervncserver@:{self.display}"], timeout=30)
        with contextlib.suppress(Exception):
            self.c.exec(["sed", "-i", f"/^:{self.display}=/d", "/etc/tigervnc/vncserver.users"])
        if self.session_id:
            with contextlib.suppress(Exception):
                self.c.exec(["loginctl", "terminate-session", self.session_id], timeout=10)


def screen_text(png: Path, box: Sequence[int] | None = None, scale: int = 3) -> str:
    """The words on a captured screen (or the ``box`` = left, top, right, bottom part),
    read by tesseract from an upscaled copy."""
    from PIL import Image

    if shutil.which("tesseract") is None:
        raise RuntimeError("tesseract is missing: scripts/bootstrap.sh --test installs it")
    image = Image.open(png).convert("L")
    if box is not None:
        image = image.crop(tuple(box))
    image = image.resize((image.width * scale, image.height * scale), Image.LANCZOS)
    scaled = png.with_name(png.stem + ".ocr.png")
    image.save(scaled)
    done = subprocess.run(["tesseract", str(scaled), "-", "--psm", "3"], capture_output=True,
                          text=True, check=False, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    return " ".join(done.stdout.split())


def find_text(png: Path, word: str, box: Sequence[int] | None = None,
              scale: int = 3) -> tuple[int, int] | None:
    """Screen coordinates of the centre of the word ``word`` (exactly, case included) on
    a captured screen (OCR), or None."""
    from PIL import Image

    image = Image.open(png).convert("L")
    left, top = (box[0], box[1]) if box is not None else (0, 0)
    if box is not None:
        image = image.crop(tuple(box))
    image = image.resize((image.width * scale, image.height * scale), Image.LANCZOS)
    scaled = png.with_name(png.stem + ".find.png")
    image.save(scaled)
    done = subprocess.run(["tesseract", str(scaled), "-", "--psm", "3", "tsv"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    for line in done.stdout.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) == 12 and cols[11].strip() == word:
            x, y, w, h = (int(v) for v in cols[6:10])
            return left + (x + w // 2) // scale, top + (y + h // 2) // scale
    return None


class XrdpDesktop:
    """An xrdp + xorgxrdp desktop of ``user`` (password login), reached by a real RDP
    client (FreeRDP's xfreerdp) that runs on ``viewer``'s VNC desktop, so the test sees
    the RDP session inside the VNC screen. xrdp listens on 127.0.0.1 only, on a free
    port (the container shares the host's network)."""

    def __init__(self, viewer: VncDesktop, user: str, password: str) -> None:
        self.viewer = viewer
        self.c = viewer.c
        self.user = user
        self.password = password
        self.port = 0
        self.session_id = ""
        self.client: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> XrdpDesktop:
        self.port = _free_port()
        self.c.exec(["sed", "-i", f"s|^port=.*3389$|port=tcp://127.0.0.1:{self.port}|",
                     "/etc/xrdp/xrdp.ini"], check=True)
        self.c.exec(["systemctl", "start", "xrdp-sesman", "xrdp"], check=True)
        assert wait_until(self._listening, 20), "xrdp does not listen"
        env = {"DISPLAY": self.viewer.name,
               "XAUTHORITY": f"/home/{self.viewer.user}/.Xauthority", "HOME": "/tmp"}
        self.client = self.c.spawn(
            ["xfreerdp", f"/v:127.0.0.1:{self.port}", f"/u:{self.user}", f"/p:{self.password}",
             "/cert:ignore", "/size:800x600", "+auto-reconnect"],
            user=self.viewer.user, env=self.c.container_env(env),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(self._session, timeout, 0.3):
            log = self.c.exec(["journalctl", "--no-pager", "-n", "30", "-u", "xrdp-sesman"])
            raise RuntimeError(f"no xrdp session for {self.user}:\n{log.stdout}")
        return self

    def _listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port),
                                                                     timeout=1):
            return True
        return False

    def _session(self) -> bool:
        for row in self.c.loginctl_sessions():
            if row["user"] != self.user:
                continue
            props = show_session(self.c, row["session"])
            if props.get("Service") == "xrdp-sesman" and props.get("State") != "closing":
                running = self.c.exec(["ps", "-u", self.user, "-o", "comm="]).stdout.split()
                if "xfce4-notifyd" in running and "xfwm4" in running:
                    self.session_id = row["session"]
                    return True
        return False

    def stop(self) -> None:
        if self.client is not None and self.client.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.client.pid, 9)
            self.client.wait(10)
        if self.session_id:
            with contextlib.suppress(Exception):
                self.c.exec(["loginctl", "terminate-session", self.session_id], timeout=10)
        with contextlib.suppress(Exception):
            self.c.exec(["systemctl", "stop", "xrdp", "xrdp-sesman"], timeout=30)


def wait_for_screen(d: VncDesktop, words: Sequence[str], timeout: float,
                    shot: Path) -> str:
    """Capture ``d``'s screen until every one of ``words`` is on it (OCR); its text.
    Raises after ``timeout`` s with what was there."""
    text = ""

    def shown() -> bool:
        nonlocal text
        text = screen_text(d.capture(shot))
        return all(w in text for w in words)

    if not wait_until(shown, timeout, 0.5):
        raise RuntimeError(f"not on the screen after {timeout:g} s: {words}; saw: {text}")
    return text


FOCUS_PAUSE = "1.5"  # seconds for the window manager to move the focus on a loaded host


def type_into(d: VncDesktop, *windows: tuple[int, int, str]) -> None:
    """Click at (x, y) of each window, give the window manager time to focus it, type."""
    commands: list[str] = []
    for x, y, text in windows:
        commands += ["move", str(x), str(y), "click", "1", "pause", FOCUS_PAUSE,
                     "type", text, "pause", "0.3"]
    d.vnc(*commands)


_OCR_SAME = str.maketrans({"1": "l", "I": "l", "|": "l", "0": "o", "O": "o"})


def ocr_has(text: str, needle: str) -> bool:
    """``needle`` in OCR'd ``text``, letters OCR confuses (1/l/I, 0/O) taken as equal."""
    return needle.translate(_OCR_SAME) in text.translate(_OCR_SAME)
