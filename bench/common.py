"""Shared bench helpers: timing commands (wall + CPU via wait4), sleeping process farms."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from lab.isolation import isolate_paths

#: Benches, like the tests, never write the system's audit log, state or run directory:
#: this run's own, handed to every tool and (through the lab sshd) every login.
ISOLATED = isolate_paths()
atexit.register(shutil.rmtree, ISOLATED, True)

VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """Path of one of our console scripts in the venv the bench runs from."""
    return str(VENV_BIN / name)


def run_timed(argv: Sequence[str]) -> tuple[float, float, int]:
    """Run a command once: (wall seconds, CPU seconds of the child, exit status)."""
    t0 = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, child.returncode


def median_times(argv: Sequence[str], runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds over ``runs`` runs (after one warm-up run)."""
    run_timed(argv)
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu, _ = run_timed(argv)
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


class SleeperFarm:
    """N extra sleeping processes (forked children of this process), ended by pidfd."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pids: list[int] = []

    def __enter__(self) -> SleeperFarm:
        for _ in range(self.count):
            pid = os.fork()
            if pid == 0:  # child: sleep until told to go
                try:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    while True:
                        signal.pause()
                finally:
                    os._exit(0)
            self.pids.append(pid)
        return self

    def __exit__(self, *exc: object) -> None:
        for pid in self.pids:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError:
                pass
            finally:
                os.close(fd)
        for pid in self.pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids.clear()


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain Markdown table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    def fmt(r: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) + " |"
    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(fmt, rows)])
