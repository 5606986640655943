"""Logins without an audit session id, and processes on another devpts instance.

``NoAuditLogin``: a process of a lab user on a fresh host pty, recorded in utmp, whose
audit ids are unset (as in containers without audit or logins without pam_loginuid):
sessionctl names such a session ``p<login pid>``.

``OtherDevptsProcess``: a process whose controlling terminal is ``pts/N`` of a *new*
devpts instance (its own mount namespace), so its tty_nr equals the host's ``pts/N``
(the device numbers repeat across instances) although the terminals are different.

Both are started from helper scripts run by Debian's python3 as root, drop to the given
user, and are ended by PID (pidfd) in ``close()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import time

from . import procs
from .users import LabUser
from .utmp import UTMP_PATH

_RECORD = struct.Struct("<hxxi32s4s32s256shhiii16s20s")
USER_PROCESS, DEAD_PROCESS = 7, 8

# Runs as root: a new session on the pty slave given as fd 0, audit ids unset, then the
# user's uid, then the shell job. argv: UID GID JOB
_LOGIN = r"""
import fcntl, os, sys, termios
uid, gid = int(sys.argv[1]), int(sys.argv[2])
with open("/proc/self/loginuid", "w") as f:
    f.write("4294967295")  # unset: the kernel drops the audit session id too
os.setsid()
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
os.execv("/bin/sh", ["-sh", "-c", sys.argv[3]])
"""

# Runs as root: own mount namespace with a new devpts instance, opens ptys there until it
# holds pts/N, makes it the controlling tty of a new session, drops to UID, sleeps.
# argv: N UID GID
_OTHER_DEVPTS = r"""
import ctypes, fcntl, os, struct, sys, termios
n, uid, gid = (int(a) for a in sys.argv[1:4])
libc = ctypes.CDLL(None, use_errno=True)
def check(rc):
    if rc != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
check(libc.unshare(0x00020000))  # CLONE_NEWNS
check(libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None))  # MS_REC | MS_PRIVATE
check(libc.mount(b"devpts", b"/dev/pts", b"devpts", 0,
                 b"newinstance,ptmxmode=0666,mode=0620"))
masters = []
while True:
    m = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY)
    masters.append(m)
    index = struct.unpack("I", fcntl.ioctl(m, 0x80045430, b"\0\0\0\0"))[0]  # TIOCGPTN
    if index == n:
        break
    if index > n:
        sys.exit("could not get pts/%d" % n)
fcntl.ioctl(m, 0x40045431, b"\0\0\0\0")  # TIOCSPTLCK: unlock
os.set_inheritable(m, True)  # the master must outlive the exec, or the tty hangs up
os.setsid()
s = os.open("/dev/pts/%d" % n, os.O_RDWR)
fcntl.ioctl(s, termios.TIOCSCTTY, 0)
for fd in (0, 1, 2):
    os.dup2(s, fd)
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
os.execv("/bin/sleep", ["sleep", "600"])
"""


def _add_utmp(pid: int, line: str, user: str, host: str) -> None:
    rec = _RECORD.pack(USER_PROCESS, pid, line.encode(), b"sct" + line[-1:].encode(),
                       user.encode(), host.encode(), 0, 0, 0, int(time.time()), 0,
                       bytes(16), bytes(20))
    _write_record(rec, pid, line)


def _end_utmp(pid: int, line: str) -> None:
    rec = _RECORD.pack(DEAD_PROCESS, pid, line.encode(), b"sct" + line[-1:].encode(),
                       b"", b"", 0, 0, 0, int(time.time()), 0, bytes(16), bytes(20))
    _write_record(rec, pid, line)


def _write_record(rec: bytes, pid: int, line: str) -> None:
    """Overwrite our own record (same pid and line) or a dead slot, else append; locked."""
    fd = os.open(str(UTMP_PATH), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o664)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        slot = None
        for off in range(0, len(data) - _RECORD.size + 1, _RECORD.size):
            _typ, rpid, rline = _RECORD.unpack_from(data, off)[:3]
            if rpid == pid and rline.split(b"\0", 1)[0] == line.encode():
                slot = off
                break
        if slot is None:
            slot = len(data) - len(data) % _RECORD.size
        os.pwrite(fd, rec, slot)
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        os.close(fd)


def _end(proc: subprocess.Popen[bytes], pids: set[int]) -> None:
    for pid in pids:
        procs.signal_pid_if(pid, signal.SIGKILL, lambda p: True)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


class NoAuditLogin:
    """A utmp login of ``user`` on a fresh host pty, without an audit session id; its
    shell runs ``job``, which starts two background children and waits."""

    def __init__(self, user: LabUser, host: str = "sctest-noaudit",
                 job: str = "sleep 600 & sleep 600 & wait") -> None:
        self.user = user
        self.master, slave = os.openpty()
        self.line = os.ttyname(slave).removeprefix("/dev/")
        os.fchown(slave, user.uid, -1)
        try:
            self.proc = subprocess.Popen(
                ["/usr/bin/python3", "-c", _LOGIN, str(user.uid), str(user.gid), job],
                stdin=slave, stdout=slave, stderr=slave, close_fds=True,
            )
        finally:
            os.close(slave)
        self.pid = self.proc.pid
        procs.wait_until(lambda: procs.comm_of(self.pid) == "sh" and
                         len(procs.children_of(self.pid)) == 2, 10)
        _add_utmp(self.pid, self.line, user.name, host)

    @property
    def session_id(self) -> str:
        return f"p{self.pid}"

    @property
    def tty_number(self) -> int:
        return int(self.line.removeprefix("pts/"))

    def pids(self) -> set[int]:
        """The login process and its descendants (alive)."""
        found = {self.pid} if procs.alive(self.pid) else set()
        todo = list(found)
        while todo:
            for child in procs.children_of(todo.pop()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    def close(self) -> None:
        _end(self.proc, self.pids())
        _end_utmp(self.pid, self.line)
        with contextlib.suppress(OSError):
            os.close(self.master)


class OtherDevptsProcess:
    """A process of ``user`` whose controlling tty is pts/``n`` of a new devpts instance."""

    def __init__(self, user: LabUser, n: int) -> None:
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-c", _OTHER_DEVPTS, str(n), str(user.uid), str(user.gid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        ok = procs.wait_until(lambda: procs.comm_of(self.pid) == "sleep" or
                              self.proc.poll() is not None, 10)
        if not ok or self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"other-devpts process failed: {err}")

    def close(self) -> None:
        _end(self.proc, {self.pid} if procs.alive(self.pid) else set())
        if self.proc.stderr:
            self.proc.stderr.close()
