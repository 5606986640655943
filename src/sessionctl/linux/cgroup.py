"""cgroup v2: where a process lives, and the atomic kill of a whole cgroup."""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path

from . import proc


@cache
def cgroup2_root() -> Path | None:
    """Mount point of the cgroup v2 hierarchy, None if there is none."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return Path(left.split()[4])
    except OSError:
        return None
    return None


def of_pid(pid: int, proc_root: str = proc.PROC) -> Path | None:
    """The cgroup v2 directory of a process, None if unknown."""
    root = cgroup2_root()
    if root is None:
        return None
    try:
        with open(f"{proc_root}/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    rel = line[3:].strip().lstrip("/")
                    return root / rel if rel else root
    except OSError:
        return None
    return None


def procs(directory: Path) -> set[int]:
    """PIDs in a cgroup and every cgroup below it."""
    found: set[int] = set()
    for dirpath, _dirs, files in os.walk(directory):
        if "cgroup.procs" in files:
            try:
                found.update(int(x) for x in Path(dirpath, "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                continue
    return found


def exclusive_cgroup(pids: set[int], proc_root: str = proc.PROC) -> Path | None:
    """A cgroup holding exactly this set of processes (and nothing else), if there is one.

    Only such a cgroup may be killed whole: it is the session's own (a logind scope).
    One member's cgroup is read; it qualifies if its processes are exactly ``pids``.
    """
    if not pids:
        return None
    directory = of_pid(next(iter(pids)), proc_root)
    if directory is None or directory == cgroup2_root():
        return None
    if not (directory / "cgroup.kill").exists():
        return None
    return directory if procs(directory) == pids else None


def kill(directory: Path, timeout: float = 2.0) -> bool:
    """SIGKILL every process in the cgroup at once; True when it is empty."""
    (directory / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not populated(directory):
            return True
        time.sleep(0.005)
    return not populated(directory)


def populated(directory: Path) -> bool:
    """True while a process lives in the cgroup or below it."""
    try:
        for line in (directory / "cgroup.events").read_text().splitlines():
            if line.startswith("populated "):
                return line.split()[1] != "0"
    except OSError:
        return False
    return bool(procs(directory))
