"""TCP sockets of processes and their traffic (sock_diag), and SSH port forwards.

``struct tcp_info`` tells, for a TCP socket, the milliseconds since data was last sent and
received on it and the bytes acknowledged and received. Root reads it straight from the
socket: pidfd_getfd(2) lends us the process's descriptor (no signal, nothing changes for
the process) and getsockopt(TCP_INFO) answers, a few microseconds per socket. Otherwise
the kernel's sock_diag netlink interface (what ``ss -ti`` reads) answers; its dump walks
the whole TCP hash table (some milliseconds on a big host), so it is the fallback.

An SSH port forward lives in the session's sshd: for ``ssh -L`` (and ``-D``) the
unprivileged ``sshd: user`` process connects out to the target; for ``ssh -R`` it
listens and accepts. The client's own connection is held by the root ``sshd: user
[priv]`` monitor as well; every other TCP socket of the session's sshd processes is a
forward (X11 forwarding included).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from .proc import PROC

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_INFO = 2
TCP_LISTEN = 10
TCP_TIME_WAIT = 6
#: Every TCP state but LISTEN and TIME_WAIT (no traffic; no inode).
STATES = 0xFFE & ~(1 << TCP_LISTEN) & ~(1 << TCP_TIME_WAIT)
_HDR = struct.Struct("=IHHII")
_REQ = struct.Struct("=BBBBI48x")
_MSG_LEN = 72  # struct inet_diag_msg
_INODE_AT = 68
_INFO_MIN = 136  # tcp_info up to tcpi_bytes_received (Linux 4.1+)
SYS_PIDFD_GETFD = 438  # the same number on every architecture (Linux 5.6+)
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class TcpTraffic:
    """Traffic figures of one TCP socket (struct tcp_info)."""

    inode: int
    state: int
    last_sent_ms: int  # since data was last sent
    last_received_ms: int  # since data was last received
    bytes_acked: int
    bytes_received: int

    @property
    def quiet_ms(self) -> int:
        """Milliseconds since data last went either way."""
        return min(self.last_sent_ms, self.last_received_ms)


def parse_info(inode: int, info: bytes, state: int | None = None) -> TcpTraffic:
    """The figures we use from a ``struct tcp_info``."""
    sent, recv = struct.unpack_from("=I4xI", info, 44)
    acked, received = struct.unpack_from("=QQ", info, 120)
    return TcpTraffic(inode, info[0] if state is None else state, sent, recv, acked, received)


def parse_dump(data: bytes) -> tuple[list[TcpTraffic], bool]:
    """Messages of one netlink receive → (sockets with tcp_info, done?)."""
    out: list[TcpTraffic] = []
    at = 0
    while at + _HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _HDR.unpack_from(data, at)
        if length < _HDR.size:
            break
        body = data[at + _HDR.size: at + length]
        at += (length + 3) & ~3
        if kind == NLMSG_DONE:
            return out, True
        if kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", body)[0] if len(body) >= 4 else 0
            raise OSError(-code, f"sock_diag: {os.strerror(-code) if code else 'error'}")
        if kind != SOCK_DIAG_BY_FAMILY or len(body) < _MSG_LEN:
            continue
        state = body[1]
        inode = struct.unpack_from("=I", body, _INODE_AT)[0]
        pos = _MSG_LEN
        while pos + 4 <= len(body):
            rta_len, rta_type = struct.unpack_from("=HH", body, pos)
            if rta_len < 4:
                break
            if rta_type == INET_DIAG_INFO and rta_len - 4 >= _INFO_MIN:
                out.append(parse_info(inode, body[pos + 4: pos + rta_len], state))
            pos += (rta_len + 3) & ~3
    return out, False


def tcp_traffic(inodes: Iterable[int]) -> dict[int, TcpTraffic]:
    """tcp_info of the TCP sockets (IPv4 and IPv6) with these inode numbers that are
    not listening; sockets not found are left out. OSError if sock_diag is refused."""
    wanted = set(inodes)
    found: dict[int, TcpTraffic] = {}
    if not wanted:
        return found
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                       NETLINK_SOCK_DIAG) as nl:
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            req = _REQ.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), 0, STATES)
            nl.send(_HDR.pack(_HDR.size + len(req), SOCK_DIAG_BY_FAMILY,
                              NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + req)
            done = False
            while not done:
                rows, done = parse_dump(nl.recv(65536))
                for row in rows:
                    if row.inode in wanted:
                        found[row.inode] = row
    return found


def socket_fds(pid: int, proc: str = PROC) -> list[tuple[int, int]] | None:
    """(fd, socket inode) of every socket ``pid`` holds, by fd; None if it is gone or not
    ours to look at."""
    out: list[tuple[int, int]] = []
    base = f"{proc}/{pid}/fd"
    try:
        names = os.listdir(base)
    except OSError:
        return None
    for name in names:
        with contextlib.suppress(OSError):
            target = os.readlink(f"{base}/{name}")
            if target.startswith("socket:["):
                out.append((int(name), int(target[8:-1])))
    return sorted(out)


def _borrow(pidfd: int, fd: int) -> int:
    got = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    if got < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return got


def traffic(where: dict[int, tuple[int, int]]) -> dict[int, TcpTraffic]:
    """tcp_info of sockets given as inode → (pid, fd) of a process holding it; sockets that
    are not TCP, listen, or are gone are left out. Each is asked directly (pidfd_getfd);
    those that cannot be (not root, an old kernel) through one sock_diag dump."""
    found: dict[int, TcpTraffic] = {}
    rest: set[int] = set()
    by_pid: dict[int, list[tuple[int, int]]] = {}
    for inode, (pid, fd) in where.items():
        by_pid.setdefault(pid, []).append((inode, fd))
    for pid, items in by_pid.items():
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue  # gone
        try:
            for inode, fd in items:
                try:
                    dup = _borrow(pidfd, fd)
                except OSError as exc:
                    if exc.errno in (errno.EPERM, errno.ENOSYS, errno.EACCES):
                        rest.add(inode)
                    continue
                with socket.socket(fileno=dup) as sock:
                    if (sock.family not in (socket.AF_INET, socket.AF_INET6)
                            or sock.type != socket.SOCK_STREAM
                            or os.fstat(dup).st_ino != inode):
                        continue
                    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
                if len(info) >= _INFO_MIN and info[0] != TCP_LISTEN:
                    found[inode] = parse_info(inode, info)
        finally:
            os.close(pidfd)
    if rest:
        found.update(tcp_traffic(rest))
    return found


def forward_sockets(
    sshd: Iterable[tuple[int, int]], proc: str = PROC
) -> dict[int, tuple[int, int]]:
    """The sockets that may be port forwards, as inode → (pid, fd), given a session's sshd
    processes as (pid, uid): every socket of its unprivileged sshd processes that the
    root monitor does not also hold (that one is the client's connection). Without a
    monitor in sight, the lowest-numbered socket that is TCP is taken for the connection
    (it is accepted before any forward exists). Pass the result through traffic()."""
    monitor: set[int] = set()
    user: list[tuple[int, list[tuple[int, int]]]] = []
    for pid, uid in sshd:
        fds = socket_fds(pid, proc) or []
        if uid == 0:
            monitor.update(inode for _, inode in fds)
        else:
            user.append((pid, fds))
    out = {inode: (pid, fd) for pid, fds in user for fd, inode in fds if inode not in monitor}
    if not monitor and out:
        tcp = traffic(out)
        for _pid, fds in user:
            first = next((inode for _, inode in fds if inode in tcp), None)
            if first is not None:
                out.pop(first, None)
    return out
