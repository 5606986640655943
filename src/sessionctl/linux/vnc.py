"""VNC servers (TigerVNC's Xvnc): which viewers are connected, and disconnecting them.

Viewers are the server process's established TCP connections on its own listening
(RFB) ports, read from /proc/PID/fd and /proc/PID/net/tcp{,6}; X11 clients over TCP
(ports 6000-6099) are not viewers. Disconnecting uses the server's own means:
``vncconfig -disconnect`` (tigervnc-tools), run as the session's user on its display,
which ends every viewer connection and leaves the desktop running.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterable

from . import asuser, x11
from .proc import PROC
from .sockets import socket_fds

SERVER_NAMES = ("Xvnc", "Xtigervnc", "Xtightvnc", "Xvnc4")
X11_TCP_PORTS = range(6000, 6100)
DISCONNECT_TIMEOUT = 5.0
TCP_ESTABLISHED, TCP_LISTEN = "01", "0A"


def is_server(comm: str) -> bool:
    return comm in SERVER_NAMES


def _address(hexaddr: str) -> tuple[str, int]:
    host, port = hexaddr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    text = socket.inet_ntop(socket.AF_INET6, words)
    return (text[7:] if text.startswith("::ffff:") else text), int(port, 16)


def _tcp_rows(pid: int, proc_root: str) -> Iterable[list[str]]:
    for table in ("tcp", "tcp6"):
        try:
            with open(f"{proc_root}/{pid}/net/{table}") as f:
                next(f, None)
                for line in f:
                    yield line.split()
        except OSError:
            continue


def viewers(server_pid: int, proc_root: str = PROC) -> list[str] | None:
    """``host:port`` of each viewer connected to the VNC server process ``server_pid``;
    None if we may not look (not root nor the server's user) or it is gone."""
    fds = socket_fds(server_pid, proc_root)
    if fds is None:
        return None
    inodes = {str(inode) for _, inode in fds}
    rows = [r for r in _tcp_rows(server_pid, proc_root) if len(r) > 9 and r[9] in inodes]
    listening = {_address(r[1])[1] for r in rows if r[3] == TCP_LISTEN}
    listening -= set(X11_TCP_PORTS)
    out = []
    for r in rows:
        if r[3] == TCP_ESTABLISHED and _address(r[1])[1] in listening:
            host, port = _address(r[2])
            out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return sorted(set(out))


def _disconnect_child(timeout: float) -> str:
    tool = shutil.which("vncconfig") or shutil.which("tigervncconfig")
    if tool is None:
        raise RuntimeError("vncconfig (tigervnc-tools) is not installed")
    done = subprocess.run([tool, "-disconnect"], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError((done.stderr or done.stdout).strip()[:300] or
                           f"vncconfig exited with {done.returncode}")
    return "vncconfig -disconnect"


def disconnect(target: x11.Target, timeout: float = DISCONNECT_TIMEOUT) -> asuser.Outcome:
    """End every viewer connection of the VNC server on ``target``'s display, as the
    display's user (the desktop keeps running)."""
    if not x11.is_local_display(target.display):
        return asuser.Outcome("error", f"not a local display: {target.display!r}")
    env = {"DISPLAY": target.display}
    if target.xauthority:
        env["XAUTHORITY"] = target.xauthority
    return asuser.call(target.uid, lambda: _disconnect_child(timeout), timeout + 1, env)
