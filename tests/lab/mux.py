"""tmux and screen for lab tests: a root tmux on a private socket, screen's socket dir."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from . import procs

SCREEN_DIR = Path("/run/screen")


def ensure_screen_dir() -> None:
    """/run/screen as Debian's screen-cleanup makes it at boot for a non-setuid screen
    (a machine that has not rebooted since screen was installed may lack it)."""
    if not SCREEN_DIR.is_dir():
        SCREEN_DIR.mkdir(mode=0o1777)
        os.chmod(SCREEN_DIR, 0o1777)


def tmux_server_of(login, socket: str = "") -> int:
    """The PID of the tmux server a login's user runs (``tmux display -p '#{pid}'``)."""
    flag = f"-S {shlex.quote(socket)} " if socket else ""
    return int(login.run(f"tmux {flag}display-message -p '#{{pid}}'").strip())


def descendants(pid: int) -> set[int]:
    """``pid`` and every live process below it, from /proc parent links."""
    children: dict[int, list[int]] = {}
    for p in procs.all_pids():
        parent = procs.ppid_of(p)
        if parent is not None:
            children.setdefault(parent, []).append(p)
    out = {pid} if procs.alive(pid) else set()
    todo = list(out)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out and not procs.is_zombie(child):
                out.add(child)
                todo.append(child)
    return out


def starts(pids: set[int]) -> dict[int, int | None]:
    """PID → start time (field 22 of stat): a process's identity."""
    return {p: procs.start_time_of(p) for p in pids}


class RootTmux:
    """A tmux server of root outside any login (no audit id), on a private socket.

    ``new_window(cmd, env)`` adds a pane running ``cmd``; ``close()`` kills this server
    (and only it: by its socket, then by its pidfd-checked PID).
    """

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sctest-tmux-")
        self.socket = os.path.join(self.dir, "s")
        self._tmux("new-session", "-d", "-s", "lab", "-x", "120", "-y", "40", "sleep 3600")
        self.pid = int(self._tmux("display-message", "-p", "#{pid}").strip())
        self.start = procs.start_time_of(self.pid)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True,
                              text=True, check=True, timeout=20,
                              stdin=subprocess.DEVNULL).stdout

    def new_window(self, command: str, env: dict[str, str] | None = None) -> int:
        """A new window running ``command``; returns its pane's first process."""
        extra = [f"-e{k}={v}" for k, v in (env or {}).items()]
        out = self._tmux("new-window", "-d", "-P", "-F", "#{pane_pid}", *extra, command)
        return int(out.strip())

    def panes(self) -> list[tuple[int, str]]:
        """(first process, tty) of every pane."""
        out = self._tmux("list-panes", "-a", "-F", "#{pane_pid} #{pane_tty}")
        return [(int(p), t.removeprefix("/dev/")) for p, t in
                (line.split() for line in out.splitlines())]

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        start = self.start
        procs.signal_pid_if(self.pid, signal.SIGKILL,
                            lambda p: procs.start_time_of(p) == start)
        deadline = time.monotonic() + 5
        while procs.alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            os.unlink(self.socket)
        with contextlib.suppress(OSError):
            os.rmdir(self.dir)

    def __enter__(self) -> RootTmux:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
