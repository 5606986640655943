"""Per-process resource counters from /proc: CPU ticks, RSS, PSS and block I/O.

No policy and no rates here: one reading of one process. The sampler
(actions/usage.py) turns two readings into rates.
"""

from __future__ import annotations

import os
import time

from ..model import ProcessRef
from ..usage_model import Counters
from . import proc as proc_mod
from .proc import CLOCK_TICKS, PROC, split_stat

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_FLAGS = os.O_RDONLY | os.O_CLOEXEC


def _read(path: str, size: int) -> bytes:
    fd = os.open(path, _FLAGS)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def parse_io(raw: bytes) -> tuple[int, int]:
    """(read_bytes, write_bytes) from /proc/PID/io text."""
    read = write = 0
    for line in raw.split(b"\n"):
        if line.startswith(b"read_bytes:"):
            read = int(line[11:])
        elif line.startswith(b"write_bytes:"):
            write = int(line[12:])
    return read, write


def parse_pss(raw: bytes) -> int | None:
    """Pss in bytes from /proc/PID/smaps_rollup text (None if absent)."""
    start = raw.find(b"\nPss:")
    if start < 0:
        return None
    end = raw.find(b"\n", start + 1)
    return int(raw[start + 5 : end].split()[0]) * 1024


def parse_stat_counters(pid: int, raw: bytes) -> Counters:
    """The CPU and memory fields of /proc/PID/stat (comm may hold spaces and parentheses)."""
    comm, f = split_stat(raw)
    return Counters(
        pid=pid,
        start_ticks=int(f[19]),
        comm=comm,
        state=f[0].decode(),
        cpu_ticks=int(f[11]) + int(f[12]),
        rss_bytes=int(f[21]) * PAGE_SIZE,
    )


def read_counters(
    pid: int,
    start_ticks: int | None = None,
    *,
    io: bool = True,
    pss: bool = False,
    proc: str = PROC,
) -> tuple[Counters | None, bool]:
    """(counters, denied): one reading of ``pid``; counters None if it is gone or recycled.

    ``denied`` is True when /proc/PID/io or smaps_rollup was not readable (another
    user's process, for a non-root caller); those figures are then None.
    """
    try:
        c = parse_stat_counters(pid, _read(f"{proc}/{pid}/stat", 1024))
    except (OSError, ValueError, IndexError):
        return None, False
    if start_ticks is not None and c.start_ticks != start_ticks:
        return None, False  # the PID now names another process
    denied = False
    read = write = pss_bytes = None
    if io:
        try:
            read, write = parse_io(_read(f"{proc}/{pid}/io", 512))
        except PermissionError:
            denied = True
        except (OSError, ValueError):
            pass
    if pss and c.state not in "ZX":
        try:
            pss_bytes = parse_pss(_read(f"{proc}/{pid}/smaps_rollup", 4096))
        except PermissionError:
            denied = True
        except (OSError, ValueError, IndexError):
            pass
    if read is None and pss_bytes is None:
        return c, denied
    return (
        Counters(
            c.pid, c.start_ticks, c.comm, c.state, c.cpu_ticks, c.rss_bytes, read, write,
            pss_bytes,
        ),
        denied,
    )


def pids_since(
    before: tuple[int, int], after: tuple[int, int], limit: int, pid_max: int
) -> list[int] | None:
    """PIDs handed out between two ``proc.pid_counters()`` readings (forks, last PID):
    the kernel hands PIDs out in turn, wrapping at pid_max. None if more than ``limit``
    forks happened (look at everything instead)."""
    forks = after[0] - before[0]
    if forks < 0 or forks > limit:
        return None
    c1, c2 = before[1], after[1]
    if c2 >= c1:
        return list(range(c1 + 1, c2 + 1))
    return [*range(c1 + 1, pid_max), *range(1, c2 + 1)]


def is_process(pid: int, proc: str = PROC) -> bool:
    """True if ``pid`` names a process (thread group leader), not another thread's id."""
    try:
        raw = _read(f"{proc}/{pid}/status", 4096)
    except OSError:
        return False
    start = raw.find(b"\nTgid:")
    if start < 0:
        return False
    end = raw.find(b"\n", start + 1)
    return raw[start + 6 : end].strip() == str(pid).encode()


class ProcCounters:
    """The Linux ``CounterReader`` (backends.base): /proc readings, clock ticks since boot."""

    ticks_per_second = float(CLOCK_TICKS)

    def __init__(self, proc: str = PROC) -> None:
        self.proc = proc
        self.pid_max = proc_mod.pid_max(proc)

    def now_ticks(self) -> float:
        return time.clock_gettime(time.CLOCK_BOOTTIME) * CLOCK_TICKS

    def read(self, pid: int, start: int | None, *, io: bool = True,
             pss: bool = False) -> tuple[Counters | None, bool]:
        return read_counters(pid, start, io=io, pss=pss, proc=self.proc)

    def pid_marks(self) -> tuple[int, int] | None:
        return proc_mod.pid_counters(self.proc)

    def pids_since(self, before: object, after: object, limit: int) -> list[int] | None:
        if not (isinstance(before, tuple) and isinstance(after, tuple)):
            return None  # not marks of ours: look at everything
        return pids_since(before, after, limit, self.pid_max)

    def process_ref(self, pid: int) -> ProcessRef | None:
        if not is_process(pid, self.proc):
            return None
        ref = proc_mod.process_ref(pid, self.proc)
        return ref if ref is not None and ref.state not in "ZX" else None
