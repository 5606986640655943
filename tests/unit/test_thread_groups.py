"""Liveness and dispositions by thread group, on real processes forked here.

A process whose leader thread has exited shows ``Z`` in /proc/PID/stat while its other
threads run: it is alive, it can be signalled through its pidfd, and it is stopped only
when every live thread is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sessionctl.linux import proc, signals

ZOMBIE_LEADER = r"""
import ctypes, signal, sys, threading, time
signal.signal(signal.SIGHUP, signal.SIG_IGN)
signal.signal(signal.SIGUSR1, lambda *a: None)
def work():
    while True:
        time.sleep(0.05)
threading.Thread(target=work).start()
time.sleep(0.1)
print("ready", flush=True)
ctypes.CDLL(None).syscall(60, 0)  # SYS_exit: the main thread only
"""


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def zombie_leader():
    child = subprocess.Popen([sys.executable, "-c", ZOMBIE_LEADER], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        assert _wait(lambda: (proc.stat(child.pid) or proc.Stat(0, "", "?", 0, 0, 0, 0))
                     .state == "Z")
        yield child
    finally:
        child.kill()
        child.wait()


def test_zombie_leader_with_a_live_thread_is_alive(zombie_leader) -> None:
    pid = zombie_leader.pid
    st = proc.stat(pid)
    assert st is not None and st.state == "Z"
    assert proc.group_state(st) in "SR"
    (ref,) = proc.live_refs([pid])
    assert ref.state in "SR"
    assert signals.same_process(ref)
    assert not signals.is_stopped(ref)
    d = proc.dispositions(pid)
    assert d is not None and d.deaf_to(signal.SIGHUP) and not d.deaf_to(signal.SIGTERM)
    assert d.caught & (1 << (signal.SIGUSR1 - 1)) and not d.ns_init


def test_its_pidfd_reaches_the_group_and_turns_readable_only_at_the_end(zombie_leader) -> None:
    pid = zombie_leader.pid
    (ref,) = proc.live_refs([pid])
    pins = signals.Pins(lambda p: True)
    try:
        assert pins.send(ref, signal.SIGSTOP) is signals.Sent.SENT
        assert signals.is_stopped(ref)  # at once: stopped, or the stop pending
        assert _wait(lambda: "T" in proc.task_states(pid))  # the live thread stops
        assert proc.live_refs([pid])[0].state == "T"
        assert pins.alive(ref)
        assert pins.send(ref, signal.SIGKILL) is signals.Sent.SENT
        assert pins.wait_exit([ref], time.monotonic() + 5)
        assert not pins.alive(ref)
    finally:
        pins.close()
    assert proc.live_refs([pid]) == []


def _fake_proc(root, pid: int, states: dict[int, str], pending: int = 0) -> str:
    """A /proc with one process whose tasks have the given states (leader first)."""
    def stat_line(tid: int, state: str) -> str:
        return f"{tid} (x) {state} 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0\n"

    (root / str(pid) / "task").mkdir(parents=True)
    (root / str(pid) / "stat").write_text(stat_line(pid, states[pid]))
    (root / str(pid) / "status").write_text(f"Name:\tx\nShdPnd:\t{pending:016x}\n")
    for tid, state in states.items():
        (root / str(pid) / "task" / str(tid)).mkdir()
        (root / str(pid) / "task" / str(tid) / "stat").write_text(stat_line(tid, state))
    return str(root)


@pytest.mark.parametrize(("states", "alive", "stopped"), [
    ({10: "S"}, "S", False),
    ({10: "T"}, "T", True),
    ({10: "T", 11: "R"}, "T", False),  # a thread still runs: it can still fork
    ({10: "Z", 11: "R"}, "R", False),  # zombie leader, live thread
    ({10: "Z", 11: "t", 12: "T"}, "t", True),
    ({10: "Z", 11: "Z"}, "Z", True),  # every thread exited: gone
])
def test_group_state_and_stopped(tmp_path, states, alive, stopped) -> None:
    root = _fake_proc(tmp_path, 10, states)
    st = proc.stat(10, root)
    assert st is not None and st.start_ticks == 777
    assert proc.group_state(st, root) == alive
    assert proc.group_stopped(10, 777, root) is stopped
    assert proc.group_stopped(10, 778, root)  # another process now: as good as gone
    assert [r.state for r in proc.live_refs([10], root, with_uid=False)] == (
        [] if alive == "Z" else [alive])


def test_a_pending_sigstop_counts_as_stopped(tmp_path) -> None:
    """A vfork parent waits in D with our SIGSTOP pending: it stops before it runs again."""
    root = _fake_proc(tmp_path, 10, {10: "D", 11: "S"}, pending=1 << 18)
    assert proc.group_stopped(10, 777, root)
    other = _fake_proc(tmp_path / "b", 10, {10: "D"}, pending=1 << 0)  # SIGHUP pending
    assert not proc.group_stopped(10, 777, other)


def test_pid_namespace_init_is_deaf_to_what_it_has_no_handler_for() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to make a PID namespace")
    child = subprocess.Popen(["unshare", "-pf", "--kill-child", "sleep", "60"])
    try:
        def init_pid() -> int | None:
            for p in proc.pids():
                st = proc.stat(p)
                if st and st.ppid == child.pid and st.comm == "sleep":
                    return p
            return None
        assert _wait(lambda: init_pid() is not None)
        pid = init_pid()
        assert pid is not None
        d = proc.dispositions(pid)
        assert d is not None and d.ns_init
        assert d.deaf_to(signal.SIGHUP) and d.deaf_to(signal.SIGTERM)
        own = proc.dispositions(os.getpid())
        assert own is not None and not own.ns_init
    finally:
        child.kill()
        child.wait()


def test_gone_process() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert proc.dispositions(child.pid) is None
    assert proc.task_states(child.pid) == []
    assert proc.group_stopped(child.pid, 0)
