"""Per-process details and figures on Windows, through psutil (a well-kept library that
already reads them with the right Win32 calls): parent, start time, CPU, memory, I/O.

Start times are kept as ``start_ticks`` in hundredths of a second since the epoch (from
psutil's create_time): with the PID they name one process for its whole life, as clock
ticks since boot do on Linux.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import psutil

from ..model import ProcessRef
from ..usage_model import Counters

TICKS_PER_SECOND = 100
RUNNING = "R"  # psutil reports every Windows process as running


def start_ticks(create_time: float) -> int:
    """psutil's create_time as ``start_ticks``."""
    return round(create_time * TICKS_PER_SECOND)


def details(pids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """PID → (parent PID, start ticks) for the given processes that still exist."""
    out: dict[int, tuple[int, int]] = {}
    for pid in pids:
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                out[pid] = (p.ppid(), start_ticks(p.create_time()))
        except (psutil.Error, OSError):
            continue
    return out


def _name(p: psutil.Process) -> str:
    try:
        return p.name()
    except (psutil.Error, OSError):  # Wine: name() fails with WinError 87
        return ""


class PsutilCounters:
    """The users view's readings on Windows (the ``CounterReader`` of the windows backend).

    ``read_bytes``/``write_bytes`` are psutil's io_counters: on Windows every byte the
    process read or wrote through I/O calls (files, devices, network), as Task Manager's
    I/O columns count them. PSS does not exist on Windows (None).
    """

    ticks_per_second = float(TICKS_PER_SECOND)

    def now_ticks(self) -> float:
        return time.time() * TICKS_PER_SECOND

    def read(self, pid: int, start: int | None, *, io: bool = True,
             pss: bool = False) -> tuple[Counters | None, bool]:
        del pss
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                ticks = start_ticks(p.create_time())
                if start is not None and ticks != start:
                    return None, False
                cpu = p.cpu_times()
                rss = p.memory_info().rss
                name = _name(p)
                read = write = None
                denied = False
                if io:
                    try:
                        counters = p.io_counters()
                        read, write = counters.read_bytes, counters.write_bytes
                    except psutil.AccessDenied:
                        denied = True
                    except (psutil.Error, OSError, AttributeError):
                        pass
        except psutil.AccessDenied:
            return None, True
        except (psutil.Error, OSError):
            return None, False
        return Counters(
            pid=pid,
            start_ticks=ticks,
            comm=name,
            state=RUNNING,
            cpu_ticks=round((cpu.user + cpu.system) * TICKS_PER_SECOND),
            rss_bytes=rss,
            read_bytes=read,
            write_bytes=write,
        ), denied

    def pid_marks(self) -> None:
        """Windows hands PIDs out in no order: new processes need a full look."""
        return None

    def pids_since(self, before: object, after: object, limit: int) -> list[int] | None:
        return None

    def process_ref(self, pid: int) -> ProcessRef | None:
        return None
