"""Independent /proc readers for tests (deliberately not using sessionctl code)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

#: Value of /proc/PID/sessionid and /proc/PID/loginuid when unset.
AUDIT_UNSET = 4294967295


def all_pids() -> list[int]:
    """Return the pids of all processes currently listed in /proc."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _read(path: str) -> str | None:
    """Whole small /proc file as text (None if unreadable); raw os.read is fast."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_int(path: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return None if value == AUDIT_UNSET else value


def status_fields(pid: int) -> dict[str, str] | None:
    """Parse /proc/PID/status into a dict; None if the process is gone."""
    text = _read(f"/proc/{pid}/status")
    if text is None:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _state_and_uids(pid: int) -> tuple[str, tuple[int, ...]] | None:
    """(State letter, uids) from one read of /proc/PID/status; None if gone."""
    fields = status_fields(pid)
    if fields is None or "Uid" not in fields:
        return None
    return fields.get("State", "?")[:1], tuple(int(x) for x in fields["Uid"].split())


def uids_of(pid: int) -> tuple[int, ...] | None:
    """Real, effective, saved and filesystem uid of a process (None if gone)."""
    info = _state_and_uids(pid)
    return None if info is None else info[1]


def is_zombie(pid: int) -> bool:
    """True if the process exists but is a zombie (or dead, 'X'): every thread of it."""
    info = _state_and_uids(pid)
    return info is not None and not alive(pid)


def task_states(pid: int) -> list[str]:
    """State letters of every task (thread) of a process ([] if it is gone)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    states = []
    for tid in tids:
        text = _read(f"/proc/{pid}/task/{tid}/stat")
        if text is not None:
            states.append(text[text.rindex(")") + 2 :].split()[0])
    return states


def alive(pid: int) -> bool:
    """True if the process (thread group) lives: a leader that is a zombie while another
    of its threads still runs counts as alive."""
    info = _state_and_uids(pid)
    if info is None:
        return False
    if info[0] not in ("Z", "X"):
        return True
    return any(s not in ("Z", "X") for s in task_states(pid))


def gone(pids: Iterable[int]) -> bool:
    """True when none of ``pids`` is a live (non-zombie) process."""
    return not any(alive(p) and not is_zombie(p) for p in pids)


def ignores_signal(pid: int, sig: int) -> bool:
    """True if the process has sig set to SIG_IGN (e.g. interactive bash and SIGTERM)."""
    fields = status_fields(pid)
    if fields is None or "SigIgn" not in fields:
        return False
    return bool(int(fields["SigIgn"], 16) & (1 << (sig - 1)))


def audit_session_of(pid: int) -> int | None:
    """Audit session id (/proc/PID/sessionid) or None if unset or the process is gone."""
    return _read_int(f"/proc/{pid}/sessionid")


def loginuid_of(pid: int) -> int | None:
    """Audit login uid (/proc/PID/loginuid) or None if unset or the process is gone."""
    return _read_int(f"/proc/{pid}/loginuid")


def start_time_of(pid: int) -> int | None:
    """Process start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = stat_fields(pid)
    try:
        return None if fields is None else int(fields[19])
    except (ValueError, IndexError):
        return None


def tty_nr_of(pid: int) -> int | None:
    """Controlling terminal device number (field 7 of /proc/PID/stat); 0 = none."""
    fields = stat_fields(pid)
    try:
        return None if fields is None else int(fields[4])
    except (ValueError, IndexError):
        return None


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, tty_nr,
    tpgid, ...] (so index = man-page field number - 3); None if gone."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    return text[text.rindex(")") + 2 :].split()


def in_foreground(pid: int) -> bool:
    """True if pid's process group is the foreground group of its controlling terminal."""
    fields = stat_fields(pid)
    return fields is not None and int(fields[4]) != 0 and fields[2] == fields[5]


def ppid_of(pid: int) -> int | None:
    """Parent pid of a process, None if gone."""
    fields = status_fields(pid)
    return None if fields is None else int(fields["PPid"])


def comm_of(pid: int) -> str | None:
    """Short command name (/proc/PID/comm) or None if gone."""
    text = _read(f"/proc/{pid}/comm")
    return None if text is None else text.rstrip("\n")


def exe_of(pid: int) -> str | None:
    """Target of /proc/PID/exe (None if gone or unreadable)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def cmdline_of(pid: int) -> list[str]:
    """Argument vector of a process ([] if gone or a kernel thread)."""
    text = _read(f"/proc/{pid}/cmdline")
    return [] if not text else text.rstrip("\0").split("\0")


def children_of(pid: int) -> set[int]:
    """Live direct children of a process."""
    return {p for p in all_pids() if ppid_of(p) == pid and alive(p)}


def pids_by_audit_session() -> dict[int, set[int]]:
    """Map audit session id -> live pids having it (processes with unset ids are skipped)."""
    result: dict[int, set[int]] = {}
    for pid in all_pids():
        sid = audit_session_of(pid)
        if sid is not None and alive(pid):
            result.setdefault(sid, set()).add(pid)
    return result


def _pid_namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def in_our_pid_namespace(pid: int) -> bool:
    """True if the process runs in our PID namespace: a container's processes carry that
    system's uids (its own users: uid 1001 there is not our uid 1001)."""
    ns = _pid_namespace(pid)
    return ns is not None and ns == _pid_namespace("self")


def belongs_to_uid(pid: int, uid: int, *, include_loginuid: bool = True) -> bool:
    """True if any of the process's uids, or (optionally) its loginuid, equals uid, and it
    runs in our PID namespace (not a container's user who has the same number)."""
    uids = uids_of(pid)
    if uids is None or not in_our_pid_namespace(pid):
        return False
    return uid in uids or (include_loginuid and loginuid_of(pid) == uid)


def processes_of_uid(
    uid: int, *, include_loginuid: bool = True, include_zombies: bool = False
) -> set[int]:
    """Pids in our PID namespace whose real/effective/saved/fs uid is uid, or whose loginuid
    is uid (a container's processes belong to that system's users)."""
    found = set()
    for pid in all_pids():
        info = _state_and_uids(pid)
        if info is None or (not include_zombies and not alive(pid)):
            continue
        if (uid in info[1] or (include_loginuid and loginuid_of(pid) == uid)) and (
                in_our_pid_namespace(pid)):
            found.add(pid)
    return found


def signal_pid_if(pid: int, sig: int, still_ok: Callable[[int], bool]) -> bool:
    """Send sig to pid through a pidfd, but only if still_ok(pid) holds after the pidfd is open.

    Opening the pidfd first pins the process identity, so a pid reused between the caller's
    check and the signal cannot be hit. Returns True if the signal was delivered.
    """
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if not still_ok(pid):
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait until none of pids is alive (zombies count as gone); return the survivors."""
    pending = set(pids)
    deadline = time.monotonic() + timeout
    while True:
        pending = {p for p in pending if alive(p)}
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.02)


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll predicate until it returns something truthy or timeout passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def kill_processes_of_uid(uid: int, *, grace: float = 1.0, timeout: float = 10.0) -> set[int]:
    """End every process belonging to uid (see processes_of_uid); return survivors (normally empty).

    First a SIGTERM round so sshd can write its utmp logout records, then SIGKILL rounds
    until nothing is left. Each signal goes through a pidfd after re-checking ownership.
    """
    if uid == 0:
        raise ValueError("refusing to kill processes of root")

    def owned(pid: int) -> bool:
        return belongs_to_uid(pid, uid)

    victims = processes_of_uid(uid)
    for pid in victims:
        signal_pid_if(pid, signal.SIGTERM, owned)
    mortal = {p for p in victims if not ignores_signal(p, signal.SIGTERM)}
    if mortal:
        wait_gone(mortal, grace)
    deadline = time.monotonic() + timeout
    while True:
        kill_all_running_as(uid)
        victims = processes_of_uid(uid)
        if not victims or time.monotonic() >= deadline:
            return victims
        for pid in victims:
            signal_pid_if(pid, signal.SIGKILL, owned)
        wait_gone(victims, 1.0)


def kill_all_running_as(uid: int) -> None:
    """SIGKILL every process running as ``uid``, at once: kill(-1) from a process with that
    uid (it may signal only that uid's processes, and no fork completes while the kernel
    goes through them, so even a process that forks and exits in a loop cannot slip away
    as it can from PID-by-PID killing)."""
    if uid == 0:
        raise ValueError("refusing to kill processes of root")
    subprocess.run(["setpriv", f"--reuid={uid}", "--regid=65534", "--clear-groups",
                    "kill", "-KILL", "--", "-1"], capture_output=True, timeout=30)
