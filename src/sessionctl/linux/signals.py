"""Signalling exact processes through pidfds, so a recycled PID is never hit.

A process is *pinned* by opening its pidfd and then checking that the PID still names
the process we mean (same start time) and that it still belongs where we think it does.
A pidfd stands for the whole thread group: signals through it reach the process even
when its leader thread has exited, and it turns readable only when every thread has.
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
from collections.abc import Callable
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
    """True while ``ref`` still names a live process (same PID, same start): one of its
    threads still runs, even if the leader thread has exited (a ``Z`` leader)."""
    st = proc.stat(ref.pid, proc_root)
    return (
        st is not None
        and st.start_ticks == ref.start_ticks
        and proc.group_state(st, proc_root) not in proc.DEAD
    )


def is_stopped(ref: ProcessRef, proc_root: str = proc.PROC) -> bool:
    """True if every thread of the process is stopped (it can no longer fork) or it is gone."""
    return proc.group_stopped(ref.pid, ref.start_ticks, proc_root)


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
    """Pidfds of checked processes, reused for every later signal to them.

    Every pinned fd is also watched: a pidfd turns readable when its process exits, so
    exits are learnt from one poll() instead of reading /proc again.
    """

    def __init__(self, still_member: Callable[[int], bool], proc_root: str = proc.PROC) -> None:
        self.still_member = still_member
        self.proc_root = proc_root
        self.fds: dict[Key, int] = {}
        self._keys: dict[int, Key] = {}
        self.dead: set[Key] = set()
        self.denied: set[int] = set()
        self._epoll = select.epoll()

    def _checked(self, ref: ProcessRef) -> int | None:
        """A pidfd for ``ref`` if it is still that process and still a member."""
        fd = os.pidfd_open(ref.pid)
        if same_process(ref, self.proc_root) and self.still_member(ref.pid):
            return fd
        os.close(fd)
        return None

    def _pin(self, ref: ProcessRef) -> tuple[int | None, bool]:
        """(fd, transient): a held pidfd, or one for this signal only when fds run out."""
        try:
            fd = self._checked(ref)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                return None, False
            try:
                fd = self._checked(ref)  # retried by the caller's next round if still short
            except OSError:
                return None, False
            return fd, True
        if fd is not None:
            k = key(ref)
            self.fds[k] = fd
            self._keys[fd] = k
            self._epoll.register(fd, select.EPOLLIN)
        return fd, False

    def send(self, ref: ProcessRef, sig: int) -> Sent:
        """Send ``sig`` to exactly the process ``ref`` names, pinning it on first use."""
        k = key(ref)
        if k in self.dead:
            return Sent.GONE
        fd = self.fds.get(k)
        transient = False
        if fd is None:
            fd, transient = self._pin(ref)
            if fd is None:
                return Sent.GONE
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

    def refresh(self, timeout: float = 0.0) -> set[Key]:
        """Learn which pinned processes exited, waiting up to ``timeout`` for the first."""
        newly: set[Key] = set()
        events = self._epoll.poll(timeout if timeout > 0 else 0, max(64, len(self._keys)))
        for fd, _event in events:
            self._epoll.unregister(fd)
            newly.add(self._keys[fd])
        self.dead |= newly
        return newly

    def alive(self, ref: ProcessRef) -> bool:
        """True while the process lives (pinned: by its pidfd; else by its /proc entry)."""
        k = key(ref)
        if k in self.fds:
            return k not in self.dead
        return same_process(ref, self.proc_root)

    def wait_exit(
        self, refs: list[ProcessRef], until: float, poll: float = 0.01, denied: bool = False
    ) -> bool:
        """Wait until every process in ``refs`` has exited, or ``until``.

        Processes we were denied to signal are left out of the wait unless ``denied``.
        """
        self.refresh()
        pinned = {key(r) for r in refs if key(r) in self.fds and (denied or r.pid not in
                                                                   self.denied)}
        pinned -= self.dead
        others = [r for r in refs if key(r) not in self.fds and (denied or r.pid not in
                                                                 self.denied)]
        while True:
            others = [r for r in others if same_process(r, self.proc_root)]
            left = until - time.monotonic()
            if (not pinned and not others) or left <= 0:
                return not pinned and not others
            pinned -= self.refresh(min(left, poll) if others else left)

    def close(self) -> None:
        """Close every pidfd and the watch on them."""
        self._epoll.close()
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        self._keys.clear()

