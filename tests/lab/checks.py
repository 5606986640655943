"""Checks shared by sign-out tests: what is left of a session, and bystanders untouched."""

from __future__ import annotations

from . import procs


def left_in(asid: int) -> set[int]:
    """Live processes (thread groups: a zombie leader with a live thread counts) of an
    audit session."""
    return procs.pids_by_audit_session().get(asid, set())


def live(pids: set[int]) -> set[int]:
    """Those of ``pids`` still alive (as thread groups)."""
    return {p for p in pids if procs.alive(p)}


def fingerprint(pids: set[int]) -> dict[int, int | None]:
    """pid -> start time, to prove bystanders are the very same processes afterwards."""
    return {p: procs.start_time_of(p) for p in pids}


def assert_untouched(before: dict[int, int | None]) -> None:
    """Every process fingerprinted is still the same process and alive."""
    assert before, "a bystander with no processes proves nothing"
    for pid, start in before.items():
        assert procs.start_time_of(pid) == start and procs.alive(pid), pid
