"""Signalling exact processes through pidfds, so a recycled PID is never hit.

A process is *pinned* by opening its pidfd and then checking that the PID still names
the process we mean (same start time) and that it still belongs where we think it does.
From then on every signal goes through that fd: it cannot reach another process even
if the PID is reused. When file descriptors run out, each signal pins, checks, sends
and closes on its own (slower, equally safe).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import select
import signal
import time
from collections.abc import Callable, Iterable
from enum import Enum

from ..model import ProcessRef
from . import proc

Key = tuple[int, int]  # (pid, start_ticks)


class Sent(Enum):
    """What happened to one signal."""

    SENT = "sent"
    GONE = "gone"  # exited, became a zombie, or the PID now names another process
    DENIED = "denied"  # not permitted (another user's process, for a non-root caller)


def key(ref: ProcessRef) -> Key:
    """The identity of a process for its whole life."""
    return (ref.pid, ref.start_ticks)


def same_process(ref: ProcessRef, proc_root: str = proc.PROC) -> bool:
    """True while ``ref`` still names a live, non-zombie process (same PID, same start)."""
    st = proc.stat(ref.pid, proc_root)
    return st is not None and st.start_ticks == ref.start_ticks and st.state not in "ZX"


def is_stopped(ref: ProcessRef, proc_root: str = proc.PROC) -> bool:
    """True if the process is stopped (it can no longer fork) or gone."""
    st = proc.stat(ref.pid, proc_root)
    return st is None or st.start_ticks != ref.start_ticks or st.state in "TtZX"


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
    return soft


class Pins:
    """Pidfds of checked processes, reused for every later signal to them."""

    def __init__(self, still_member: Callable[[int], bool], proc_root: str = proc.PROC) -> None:
        self.still_member = still_member
        self.proc_root = proc_root
        self.fds: dict[Key, int] = {}
        self.denied: set[int] = set()

    def _open_checked(self, ref: ProcessRef) -> int | None:
        """A pidfd for ``ref`` if it is still that process and still a member."""
        try:
            fd = os.pidfd_open(ref.pid)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise
            return None
        if same_process(ref, self.proc_root) and self.still_member(ref.pid):
            return fd
        os.close(fd)
        return None

    def send(self, ref: ProcessRef, sig: int) -> Sent:
        """Send ``sig`` to exactly the process ``ref`` names, pinning it on first use."""
        k = key(ref)
        fd = self.fds.get(k)
        transient = False
        if fd is None:
            try:
                fd = self._open_checked(ref)
            except OSError:  # out of file descriptors: pin just for this signal
                fd = None
                transient = True
                with contextlib.suppress(OSError):
                    fd = os.pidfd_open(ref.pid)
                    if not (same_process(ref, self.proc_root) and self.still_member(ref.pid)):
                        os.close(fd)
                        fd = None
            if fd is None:
                return Sent.GONE
            if not transient:
                self.fds[k] = fd
        try:
            signal.pidfd_send_signal(fd, sig)
            return Sent.SENT
        except ProcessLookupError:
            return Sent.GONE
        except PermissionError:
            self.denied.add(ref.pid)
            return Sent.DENIED
        finally:
            if transient:
                os.close(fd)

    def exited(self, refs: Iterable[ProcessRef]) -> set[Key]:
        """Keys of those processes that have exited (zombies included)."""
        out: set[Key] = set()
        poller = select.poll()
        by_fd: dict[int, Key] = {}
        for ref in refs:
            k = key(ref)
            fd = self.fds.get(k)
            if fd is None:
                if not same_process(ref, self.proc_root):
                    out.add(k)
                continue
            poller.register(fd, select.POLLIN)
            by_fd[fd] = k
        if by_fd:
            for fd, _ev in poller.poll(0):
                out.add(by_fd[fd])
        return out

    def wait_exit(self, refs: list[ProcessRef], until: float, poll: float = 0.01) -> bool:
        """Wait until every process in ``refs`` (not denied) has exited or ``until``."""
        pending = [r for r in refs if r.pid not in self.denied]
        while pending:
            gone = self.exited(pending)
            pending = [r for r in pending if key(r) not in gone]
            if not pending or time.monotonic() >= until:
                break
            time.sleep(min(poll, max(0.0, until - time.monotonic())))
        return not pending

    def close(self) -> None:
        """Close every pidfd."""
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


def send(ref: ProcessRef, sig: int, still_member: Callable[[int], bool] | None = None,
         proc_root: str = proc.PROC) -> Sent:
    """One signal to exactly ``ref``'s process (pin, check, send, close)."""
    pins = Pins(still_member or (lambda _pid: True), proc_root)
    try:
        return pins.send(ref, sig)
    finally:
        pins.close()
