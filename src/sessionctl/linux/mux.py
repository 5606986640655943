"""tmux and screen as the kernel shows them: servers, their panes' terminals, attached clients.

Reading never talks to a multiplexer (a stopped or wedged server cannot hang a listing):

* a **server** is recognised by its process: tmux names itself ``tmux: server`` (comm),
  screen's server rewrites its argv[0] to ``SCREEN``; Debian's tmux and screen also
  register panes/windows in utmp through libutempter (host ``tmux(PID).%N`` with
  ut_pid = the server; screen: ``[HOST]:S.N`` with ut_pid = the window's process, while a
  display is attached);
* the server's **panes** are the pseudo-terminal masters it holds (``/dev/ptmx`` fds, their
  ``tty-index`` in fdinfo);
* every **attached client's terminal** is open in the server too (tmux receives the
  client's tty fd over its socket; screen opens the attacher's tty): any other terminal fd
  (3 and up) is a client. Its device is checked against ours (same devpts instance), and
  its atime is the client's last input, as ``w`` reads idle time;
* its socket (tmux) comes from the socket inode it listens on, looked up in /proc/net/unix.

The fd table of a process is readable by root and by its owner. For another user's tmux
server a non-root caller falls back to /proc/net/unix (world-readable): a connected socket
on that user's only tmux socket counts as an attached client.

Acting (detaching clients) runs ``tmux``/``screen`` as the server's owner with a bounded
time; see :func:`detach_clients`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import proc, tty

if TYPE_CHECKING:
    import subprocess

TMUX = "tmux"
SCREEN = "screen"
TMUX_SERVER_COMM = "tmux: server"
TMUX_CLIENT_COMM = "tmux: client"
SCREEN_COMM = "screen"
SCREEN_DIR = "/run/screen"
DETACH_TIMEOUT = 3.0

_TMUX_HOST = re.compile(r"^tmux\((\d+)\)\.%\d+$")
_SCREEN_HOST = re.compile(r"(?:^|:)S\.\d+$")
_TMUX_SOCKET_DIR = re.compile(r"/tmux-(\d+)/[^/]+$")


def utmp_kind(host: str) -> tuple[str, int | None] | None:
    """What a utmp record's host says about it: ("tmux", server PID) for a tmux pane,
    ("screen", None) for a screen window, None for anything else (a real login)."""
    m = _TMUX_HOST.match(host)
    if m:
        return TMUX, int(m.group(1))
    if _SCREEN_HOST.search(host):
        return SCREEN, None
    return None


def _argv0(pid: int, proc_root: str) -> str:
    try:
        with open(f"{proc_root}/{pid}/cmdline", "rb") as f:
            return f.read(256).split(b"\0", 1)[0].decode("utf-8", "replace")
    except OSError:
        return ""


def server_kind(pid: int, comm: str, proc_root: str = proc.PROC) -> str | None:
    """"tmux" or "screen" if the process is a multiplexer server, else None."""
    if comm == TMUX_SERVER_COMM:
        return TMUX
    if comm == SCREEN_COMM and _argv0(pid, proc_root) == "SCREEN":
        return SCREEN
    return None


def is_client(pid: int, comm: str, proc_root: str = proc.PROC) -> bool:
    """True for a tmux client or an attaching screen process."""
    if comm == TMUX_CLIENT_COMM:
        return True
    return comm == SCREEN_COMM and _argv0(pid, proc_root) != "SCREEN"


@dataclass(frozen=True, slots=True)
class ServerView:
    """One multiplexer server as read from /proc (see the module docstring)."""

    kind: str
    pid: int
    uid: int
    start_ticks: int
    name: str = ""  # tmux: socket path; screen: "PID.sessionname"
    terminals: tuple[str, ...] = ()  # pane/window ttys ("pts/4")
    client_ttys: tuple[str, ...] = ()  # terminals of attached clients, in our devpts
    foreign_clients: int = 0  # clients on terminals we cannot name (other devpts)
    attached: bool | None = None  # None: not readable by us, and no fallback answered
    readable: bool = False  # its fd table was read

    def alive(self, proc_root: str = proc.PROC) -> bool:
        """True while this very server runs (same PID, same start)."""
        st = proc.stat(self.pid, proc_root)
        return (st is not None and st.start_ticks == self.start_ticks
                and proc.group_state(st, proc_root) not in proc.DEAD)


def _tty_index(pid: int, fd: str, proc_root: str) -> int | None:
    try:
        with open(f"{proc_root}/{pid}/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"tty-index:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _our_device(path: str, st: os.stat_result) -> bool:
    """True if ``path`` in our mount namespace is the very device ``st`` describes."""
    try:
        here = os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_rdev) == (st.st_dev, st.st_rdev)


def unix_sockets(proc_root: str = proc.PROC) -> list[tuple[int, int, str]]:
    """(inode, state, path) of every named unix socket (/proc/net/unix; state 1 listening
    or unconnected, 3 connected: a server's accepted sockets carry the listener's path)."""
    out = []
    try:
        with open(f"{proc_root}/net/unix", "rb") as f:
            next(f, None)
            for raw in f:
                parts = raw.split(None, 7)
                if len(parts) == 8:
                    out.append((int(parts[6]), int(parts[5], 16),
                                parts[7].rstrip(b"\n").decode("utf-8", "replace")))
    except (OSError, ValueError):
        pass
    return out


def read_server(
    pid: int, kind: str, proc_root: str = proc.PROC,
    sockets: list[tuple[int, int, str]] | None = None,
) -> ServerView | None:
    """The server ``pid`` now; None if it is gone. ``sockets``: unix_sockets(), if read."""
    st = proc.stat(pid, proc_root)
    uid = proc.owner_uid(pid, proc_root)
    if st is None or uid is None or proc.group_state(st, proc_root) in proc.DEAD:
        return None
    base = f"{proc_root}/{pid}/fd"
    try:
        fds = os.listdir(base)
    except OSError:
        return ServerView(kind, pid, uid, st.start_ticks)
    terminals: list[str] = []
    clients: list[str] = []
    foreign = 0
    inodes: set[int] = set()
    for fd in fds:
        try:
            target = os.readlink(f"{base}/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            with contextlib.suppress(ValueError):
                inodes.add(int(target[8:-1]))
            continue
        if target in ("/dev/ptmx", "/dev/pts/ptmx"):
            index = _tty_index(pid, fd, proc_root)
            if index is not None:
                terminals.append(f"pts/{index}")
            continue
        if not fd.isdigit() or int(fd) < 3 or not _is_terminal_path(target):
            continue
        try:
            fst = os.stat(f"{base}/{fd}")
        except OSError:
            continue
        if _our_device(target, fst):
            clients.append(target.removeprefix("/dev/"))
        else:
            foreign += 1
    name = ""
    if inodes:
        table = sockets if sockets is not None else unix_sockets(proc_root)
        name = next((p for i, state, p in table if i in inodes and state == 1 and p), "")
    if kind == SCREEN and name:
        name = os.path.basename(name)
    clients = list(dict.fromkeys(clients))
    return ServerView(
        kind, pid, uid, st.start_ticks, name,
        tuple(sorted(set(terminals), key=_tty_sort)), tuple(clients), foreign,
        bool(clients) or foreign > 0, True,
    )


def _is_terminal_path(path: str) -> bool:
    return path.startswith("/dev/pts/") or bool(re.match(r"^/dev/(tty\w*|console|hvc\d+)$",
                                                        path))


def _tty_sort(line: str) -> tuple[str, int]:
    head, _, num = line.rpartition("/")
    return (head, int(num)) if num.isdigit() else (line, -1)


def guess_attached(
    views: Iterable[ServerView], sockets: list[tuple[int, int, str]]
) -> dict[int, bool]:
    """For tmux servers whose fds we cannot read: attached if a client is connected to
    their user's tmux socket, when that user has exactly one tmux server and socket."""
    unread = [v for v in views if not v.readable and v.kind == TMUX]
    if not unread:
        return {}
    listening: dict[int, list[str]] = {}
    connected: dict[str, int] = {}
    for _inode, state, path in sockets:
        m = _TMUX_SOCKET_DIR.search(path)
        if not m:
            continue
        if state == 1:
            listening.setdefault(int(m.group(1)), []).append(path)
        elif state == 3:
            connected[path] = connected.get(path, 0) + 1
    per_uid: dict[int, int] = {}
    for v in views:
        if v.kind == TMUX:
            per_uid[v.uid] = per_uid.get(v.uid, 0) + 1
    out = {}
    for v in unread:
        paths = listening.get(v.uid, [])
        if len(paths) == 1 and per_uid.get(v.uid) == 1:
            out[v.pid] = connected.get(paths[0], 0) > 0
    return out


def screen_servers(root_dir: str = SCREEN_DIR) -> list[int]:
    """PIDs named by screen sockets we can list (/run/screen/S-USER/PID.NAME): every
    user's as root, our own otherwise. Whether each PID really is a server is up to the
    caller to check (a socket can outlive its server)."""
    out = []
    try:
        dirs = os.listdir(root_dir)
    except OSError:
        return []
    for d in dirs:
        if not d.startswith("S-"):
            continue
        try:
            names = os.listdir(os.path.join(root_dir, d))
        except OSError:
            continue
        for n in names:
            head = n.split(".", 1)[0]
            if head.isdigit():
                out.append(int(head))
    return out


def client_pid(candidates: Iterable[int], tty_line: str, proc_root: str = proc.PROC
               ) -> int | None:
    """The PID among ``candidates`` (a session's tmux/screen client processes) whose
    controlling terminal is ``tty_line``; None if none is."""
    want = tty.tty_nr(tty_line)
    for pid in candidates if want else ():
        st = proc.stat(pid, proc_root)
        if st is not None and st.tty_nr == want:
            return pid
    return None


# -- acting --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DetachOutcome:
    """What one detach command did."""

    server: int
    what: str  # the client terminal ("pts/5") or "all"
    ok: bool
    detail: str = ""


def _run_as(uid: int, argv: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run a command as ``uid`` (root may; others only as themselves) with a plain
    environment, bounded by ``timeout`` (then killed: TimeoutExpired)."""
    import pwd
    import subprocess

    entry = pwd.getpwuid(uid)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": entry.pw_dir,
           "USER": entry.pw_name, "LOGNAME": entry.pw_name, "LANG": "C.UTF-8"}
    switch = os.geteuid() != uid
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False,
        env=env, user=uid if switch else None, group=entry.pw_gid if switch else None,
        extra_groups=[] if switch else None,
    )


def detach_clients(
    view: ServerView, ttys: Iterable[str], timeout: float = DETACH_TIMEOUT
) -> list[DetachOutcome]:
    """Detach the clients on ``ttys`` from the server (tmux ``detach-client -t``; screen
    ``-d``, which detaches every display). Runs as the server's owner, each command bounded
    by ``timeout`` (a server that does not answer is reported, never waited for)."""
    import shutil
    import subprocess

    ttys = list(ttys)
    if not ttys:
        return []
    if os.geteuid() not in (0, view.uid):
        return [DetachOutcome(view.pid, t, False, "only root or its owner may detach it")
                for t in ttys]
    if view.kind == TMUX:
        if not view.name:
            return [DetachOutcome(view.pid, t, False, "its socket is not known") for t in ttys]
        commands = [(t, [TMUX, "-S", view.name, "detach-client", "-t", "/dev/" + t])
                    for t in ttys]
    else:
        if not view.name:
            return [DetachOutcome(view.pid, "all", False, "its session name is not known")]
        commands = [("all", [SCREEN, "-d", view.name])]
    binary = shutil.which(commands[0][1][0], path="/usr/local/bin:/usr/bin:/bin")
    if binary is None:
        return [DetachOutcome(view.pid, w, False, f"{view.kind} is not installed")
                for w, _ in commands]
    out = []
    for what, argv in commands:
        argv[0] = binary
        try:
            res = _run_as(view.uid, argv, timeout)
        except subprocess.TimeoutExpired:
            out.append(DetachOutcome(view.pid, what, False,
                                     f"{view.kind} server {view.pid} did not answer within "
                                     f"{timeout:g} s"))
            continue
        except OSError as exc:
            out.append(DetachOutcome(view.pid, what, False, str(exc)))
            continue
        text = (res.stderr or res.stdout).decode("utf-8", "replace").strip()
        out.append(DetachOutcome(view.pid, what, res.returncode == 0, text[:200]))
    return out
