"""Checks shared by sign-out tests: what is left of a session, and bystanders untouched."""

from __future__ import annotations

import time

from . import procs


def left_in(asid: int) -> set[int]:
    """Live processes (thread groups: a zombie leader with a live thread counts) of an
    audit session."""
    return procs.pids_by_audit_session().get(asid, set())


def live(pids: set[int]) -> set[int]:
    """Those of ``pids`` still alive (as thread groups)."""
    return {p for p in pids if procs.alive(p)}


def settled_pids(logins: list) -> set[int]:
    """The processes of these logins once the short-lived ones are gone (``setsid`` in a
    job is a group leader already: it forks and exits; ``nohup`` execs): bystanders."""
    assert procs.wait_until(lambda: not any(
        procs.comm_of(p) in ("setsid", "nohup") for b in logins for p in b.pids()), 10)
    return set().union(*(b.pids() for b in logins))


_SEEN_AS: dict[tuple[int, int | None], str] = {}  # what each fingerprinted process was


def fingerprint(pids: set[int]) -> dict[int, int | None]:
    """pid -> start time, to prove bystanders are the very same processes afterwards."""
    out = {p: procs.start_time_of(p) for p in pids}
    for pid, start in out.items():
        _SEEN_AS[(pid, start)] = f"{procs.comm_of(pid)} {procs.cmdline_of(pid)} " \
                                 f"ppid {procs.ppid_of(pid)}"
    return out


def assert_untouched(before: dict[int, int | None]) -> None:
    """Every process fingerprinted is still the same process and alive."""
    assert before, "a bystander with no processes proves nothing"
    for pid, start in before.items():
        assert procs.start_time_of(pid) == start and procs.alive(pid), (
            f"bystander {pid} ({_SEEN_AS.get((pid, start))}) is gone or changed")


def _session_pids(asid: int) -> set[int]:
    """Every PID with that audit session id, dead (zombie) or alive."""
    found = set()
    for pid in procs.all_pids():
        if procs.audit_session_of(pid) == asid:
            found.add(pid)
    return found


def assert_gone(asid: int, watch: float = 1.0) -> None:
    """Nothing of the session runs, and for ``watch`` seconds no new process of it appears.

    One look at /proc can miss a process that forks and exits faster than the look (a
    PID hopper: each of its processes lives a moment); but each leaves a new PID behind
    (a zombie until reaped), so new PIDs of the session over a while betray it.
    """
    assert live(left_in(asid)) == set(), live(left_in(asid))
    seen = _session_pids(asid)
    deadline = time.monotonic() + watch
    while time.monotonic() < deadline:
        new = _session_pids(asid) - seen
        assert not new, f"session {asid} still makes processes: {sorted(new)}"
        time.sleep(0.05)
