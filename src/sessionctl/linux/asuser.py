"""Run a piece of our own code as another user, in a child process, with a deadline.

A user's desktop (their X server, their session bus) accepts only that user: root talks
to it from a forked child that has dropped to the user's uid and groups, so X access
control and the bus policy stay exactly as the desktop set them. The parent waits with a
deadline and kills a child that does not answer (an X server or bus that hangs), so no
caller ever hangs on a desktop. ``call_many`` runs several children at once under one
deadline (a listing with several desktops waits once, not once per desktop).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import select
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

MAX_REPLY = 1 << 20
# sessionctl's own settings (where its state and sockets are) stay for the child: an
# action run as the user (a notification's Postpone button) must find the same countdown.
KEPT = ("SESSIONCTL_STATE_DIR", "SESSIONCTL_RUN_DIR", "SESSIONCTL_BACKEND")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one child reported: ``status`` is ok, error or timeout (killed at our
    deadline, or its own bounded wait ran out); ``detail`` its text."""

    status: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class Job:
    """``fn`` to run as ``uid`` with ``env`` added to the child's environment."""

    uid: int
    fn: Callable[[], str]
    env: Mapping[str, str] | None = None


def become(uid: int, env: Mapping[str, str] | None = None) -> None:
    """In a child: drop to ``uid`` (its primary group, no supplementary groups), set a
    plain environment for it (plus ``KEPT``). Raises if the user does not exist or we
    may not."""
    entry = pwd.getpwuid(uid)
    ours = {k: v for k, v in os.environ.items() if k in KEPT}
    if os.getuid() != uid or os.geteuid() != uid:
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(uid)
    os.environ.clear()
    os.environ.update({"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name,
                       "PATH": "/usr/local/bin:/usr/bin:/bin", **ours})
    os.environ.update(env or {})
    with contextlib.suppress(OSError):
        os.chdir("/")


def _child(job: Job, write_end: int) -> None:
    """Never returns: runs the job and reports through ``write_end``."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        become(job.uid, job.env)
        text = job.fn()
        _write_all(write_end, b"0" + text.encode()[:MAX_REPLY])
        code = 0
    except BaseException as exc:  # report anything; never return into the caller's code
        kind = b"2" if isinstance(exc, TimeoutError) else b"1"  # its own wait ran out
        with contextlib.suppress(OSError):
            _write_all(write_end, kind + f"{type(exc).__name__}: {exc}".encode()[:4000])
    finally:
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def call_many(jobs: Sequence[Job], timeout: float) -> list[Outcome]:
    """Run every job in its own child at once; wait at most ``timeout`` s for all.

    A child still running at the deadline is killed (SIGKILL to our own unreaped child:
    its PID cannot have been reused) and reported as ``timeout``.
    """
    children: list[tuple[int, int]] = []
    try:
        for job in jobs:
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                _child(job, write_end)
            os.close(write_end)
            children.append((pid, read_end))
        return _collect(children, timeout)
    finally:
        for _, fd in children:
            with contextlib.suppress(OSError):
                os.close(fd)


def _collect(children: list[tuple[int, int]], timeout: float) -> list[Outcome]:
    deadline = time.monotonic() + timeout
    chunks: dict[int, list[bytes]] = {fd: [] for _, fd in children}
    open_fds = set(chunks)
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(list(open_fds), [], [], left)
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.discard(fd)
    out = []
    for pid, fd in children:
        if fd in open_fds:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raw = b"".join(chunks[fd])
        if fd in open_fds:
            out.append(Outcome("timeout", f"no answer within {timeout:g} s"))
        elif raw[:1] == b"0":
            out.append(Outcome("ok", raw[1:].decode(errors="replace")))
        elif raw[:1] == b"2":
            out.append(Outcome("timeout", raw[1:].decode(errors="replace")))
        else:
            out.append(Outcome("error", raw[1:].decode(errors="replace") or "child failed"))
    return out


def call(uid: int, fn: Callable[[], str], timeout: float,
         env: Mapping[str, str] | None = None) -> Outcome:
    """``fn()`` as ``uid`` in a child; its return value, its error, or a timeout."""
    return call_many([Job(uid, fn, env)], timeout)[0]


def spawn_detached(uid: int, fn: Callable[[Callable[[str], None]], object], timeout: float,
                   env: Mapping[str, str] | None = None) -> tuple[int, Outcome]:
    """Start ``fn(ready)`` as ``uid`` in a detached process (double fork, own session,
    descriptors 0-2 on /dev/null, nothing else inherited) for what must outlive the call:
    a notification's action listener, a message window.

    ``fn`` calls ``ready(text)`` once it is up; the caller waits at most ``timeout`` s for
    that and gets (PID, Outcome): ok with the text, error if ``fn`` raised first, or
    timeout. The detached process is not ours to reap (it is re-parented to init).
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setsid()
            grandchild = os.fork()
            if grandchild:
                _write_all(write_end, f"{grandchild}\n".encode())
                os._exit(0)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, write_end)
            os.closerange(write_end + 1, 65536)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            become(uid, env)
            # Not up in time: the caller gave up on us, so end (SIGALRM's default action).
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(int(timeout) + 1)
            told: list[str] = []

            def ready(text: str) -> None:
                if not told:
                    signal.alarm(0)
                    told.append(text)
                    _write_all(write_end, b"0" + text.encode()[:4000])
                    os.close(write_end)

            try:
                fn(ready)
            except BaseException as exc:
                if not told:
                    kind = b"2" if isinstance(exc, TimeoutError) else b"1"
                    _write_all(write_end, kind + f"{type(exc).__name__}: {exc}".encode()[:4000])
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        raw = _read_until_eof(read_end, timeout)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    head, _, rest = (raw or b"").partition(b"\n")
    child = int(head) if head.isdigit() else 0
    if raw is None:
        return child, Outcome("timeout", f"no answer within {timeout:g} s")
    if rest[:1] == b"0":
        return child, Outcome("ok", rest[1:].decode(errors="replace"))
    if rest[:1] == b"2":
        return child, Outcome("timeout", rest[1:].decode(errors="replace"))
    return child, Outcome("error", rest[1:].decode(errors="replace") or "child failed")


def _read_until_eof(fd: int, timeout: float) -> bytes | None:
    """Everything written to ``fd`` until every writer closed it; None at the deadline."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            return None
        data = os.read(fd, 65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
