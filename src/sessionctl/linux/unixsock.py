"""Unix sockets with kernel-checked peers (SO_PEERCRED) and the abstract namespace."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

_UCRED = struct.Struct("3i")


def peer(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel saw it connect."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return _UCRED.unpack(raw)


def abstract_names(prefix: str, proc_root: str = "/proc") -> list[str]:
    """Listening abstract-namespace sockets whose name starts with ``prefix`` (no '@')."""
    try:
        lines = Path(proc_root, "net", "unix").read_text().splitlines()[1:]
    except OSError:
        return []
    names = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[7].startswith("@" + prefix) and fields[5] == "01":
            names.append(fields[7][1:])  # state 01 = listening (SS_UNCONNECTED) socket
    return sorted(set(names))


def request(address: str | bytes, payload: bytes, timeout: float = 5.0) -> tuple[bytes, int]:
    """Send one request line, read the reply; return (reply, server uid)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        _, uid, _ = peer(sock)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > 1 << 20:
                break
    return b"".join(chunks), uid


def read_request(conn: socket.socket, limit: int = 65536, timeout: float = 2.0) -> bytes:
    """Read a client's request up to EOF or ``limit`` bytes."""
    conn.settimeout(timeout)
    data = b""
    while len(data) < limit:
        chunk = conn.recv(limit - len(data))
        if not chunk:
            break
        data += chunk
    return data
