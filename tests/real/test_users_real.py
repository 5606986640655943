"""sessionctl users and the usage sampler on real logins, checked against psutil."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psutil
import pytest
from lab import procs, tool_path

pytestmark = pytest.mark.real

MIB = 1 << 20
BURN = "sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $!"
ALLOC = (
    "python3 -c \"b = b'x' * (200 << 20); import time; time.sleep(600)\" "
    ">/dev/null 2>&1 & echo $!"
)


def bg(login, cmd: str) -> int:
    """Run ``cmd ... & echo $!`` in a login; the PID it printed (after bash's job line)."""
    return int(login.run(cmd).split()[-1])


def users_json(*argv: str) -> dict:
    res = subprocess.run(
        [str(tool_path("sessionctl")), "users", "--json", *argv],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def find(doc: dict, user: str) -> dict:
    return next(u for u in doc["users"] if u["user"] == user)


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def test_cpu_and_memory_agree_with_psutil(make_user, open_login) -> None:
    burner_user, alloc_user = make_user(), make_user()
    burn_login, alloc_login = open_login(burner_user), open_login(alloc_user)
    burner = bg(burn_login, BURN)
    hog = bg(alloc_login, ALLOC)
    procs.wait_until(lambda: psutil.Process(hog).memory_info().rss >= 200 * MIB, 20)

    t0, c0 = time.monotonic(), cpu_seconds(burner)
    doc = users_json("--processes", "--interval", "2", "--sort", "cpu")
    t1, c1 = time.monotonic(), cpu_seconds(burner)
    independent = (c1 - c0) / (t1 - t0) * 100  # psutil over a window holding ours
    assert 1.95 <= doc["interval"] < 4  # the real time between the readings (>= asked)

    b = find(doc, burner_user.name)
    assert b["state"] == "Active" and b["sessions"] == 1
    assert b["processes"] == len(burn_login.pids())
    (sess,) = b["session_list"]
    assert sess["id"] == str(burn_login.audit_session_id)
    row = next(p for p in sess["process_list"] if p["pid"] == burner)
    assert row["cpu_percent"] > 5, row  # it spins; a loaded machine may slow it
    assert row["cpu_percent"] == pytest.approx(independent, abs=25)
    assert b["cpu_percent"] == pytest.approx(row["cpu_percent"], abs=5)  # the rest sleeps
    # sorted by CPU: the spinning user comes before the one that only holds memory
    names = [u["user"] for u in doc["users"]]
    assert names.index(burner_user.name) < names.index(alloc_user.name)

    a = find(doc, alloc_user.name)
    (asess,) = a["session_list"]
    hog_row = next(p for p in asess["process_list"] if p["pid"] == hog)
    rss_now = psutil.Process(hog).memory_info().rss
    assert hog_row["rss_bytes"] >= 200 * MIB
    assert hog_row["rss_bytes"] == pytest.approx(rss_now, rel=0.02)
    expected = sum(psutil.Process(p).memory_info().rss for p in alloc_login.pids())
    assert a["rss_bytes"] == pytest.approx(expected, rel=0.05)
    assert a["cpu_percent"] < 10
    for key in ("user", "state", "sessions", "processes", "cpu_percent", "rss_bytes",
                "read_bytes_per_s", "write_bytes_per_s"):
        assert key in a


def test_pss_and_disk_write_rate(make_user, open_login) -> None:
    user = make_user()
    login = open_login(user)
    writer = bg(login,
        "sh -c 'while :; do dd if=/dev/zero of=$HOME/blob bs=1M count=8 oflag=direct "
        "conv=fsync 2>/dev/null; done' >/dev/null 2>&1 & echo $!"
    )
    assert procs.alive(writer)
    doc = users_json("--pss", "--interval", "2", user.name)
    (u,) = doc["users"]
    assert u["pss_bytes"] is not None and 0 < u["pss_bytes"] <= u["rss_bytes"]
    assert u["write_bytes_per_s"] > 1 * MIB, u  # dd writes megabytes a second
    assert u["io_partial"] is False


def test_non_root_sees_own_figures_and_a_note_for_others(make_user, open_login) -> None:
    me, other = make_user(), make_user()
    mine, theirs = open_login(me), open_login(other)
    theirs.run("sleep 600 >/dev/null 2>&1 &")
    status, out = mine.run_status(
        f"{tool_path('sessionctl')} users --json --processes --interval 0.5 2>/tmp/err.$$; "
        "cat /tmp/err.$$ >&2; rm -f /tmp/err.$$", timeout=30
    )
    assert status == 0, out
    doc = json.loads(out[: out.rindex("}") + 1])
    own, foreign = find(doc, me.name), find(doc, other.name)
    def shell_row(user: dict, pid: int) -> dict:
        return next(p for s in user["session_list"] for p in s["process_list"] if p["pid"] == pid)

    # their own shell is readable; the other user's is not, and only disk figures go
    assert shell_row(own, mine.shell_pid)["read_bytes_per_s"] is not None
    theirs_shell = shell_row(foreign, theirs.shell_pid)
    assert theirs_shell["read_bytes_per_s"] is None and theirs_shell["rss_bytes"] > 0
    assert foreign["read_bytes_per_s"] is None and foreign["io_partial"] is True
    assert own["io_partial"] is True  # sshd's privileged half runs as root in the session
    assert foreign["rss_bytes"] > 0 and foreign["processes"] == len(theirs.pids())
    assert doc["unreadable"] >= len(theirs.pids())
    assert "not readable" in out  # the note on stderr


def test_table_and_bad_input(make_user, open_login) -> None:
    user = make_user()
    login = open_login(user)
    res = subprocess.run([str(tool_path("sessionctl")), "users", "--sessions", "--interval",
                          "0.3", user.name], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:5] == ["USER", "STATE", "SESS", "PROCS", "CPU%"]
    assert lines[1].split()[:2] == [user.name, "Active"]
    assert lines[2].split()[:2] == [str(login.audit_session_id), login.tty_line]
    measured = float(lines[-1].split("measured over ")[1].split()[0])
    assert 0.3 <= measured < 5  # the real time between the readings, as used for rates
    for bad in (["--sort", "bogus"], ["--interval", "0"], ["--interval", "nan"]):
        res = subprocess.run([str(tool_path("sessionctl")), "users", *bad],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 1 and "Invalid parameter" in res.stderr, bad
    res = subprocess.run([str(tool_path("sessionctl")), "users", "nosuchuser"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "No User exists for nosuchuser" in res.stderr


def _kill(pids: set[int]) -> None:
    """SIGKILL the lab user's processes we started, by pidfd."""
    for pid in pids:
        fd = os.pidfd_open(pid)
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        finally:
            os.close(fd)
    assert not procs.wait_gone(pids, 5)


def test_vanished_processes_are_counted_not_fatal(make_user, open_login) -> None:
    import sessionctl

    user = make_user()
    login = open_login(user)
    pids = {bg(login, "sleep 600 >/dev/null 2>&1 & echo $!") for _ in range(3)}
    sampler = sessionctl.UsageSampler(user.name)
    sampler.prime()
    listed = sessionctl.sessions(user.name)  # a listing taken while they lived
    assert pids <= {p for s in listed for p in s.pids}
    _kill(pids)
    snap = sampler.sample(listed)  # they vanish between listing and reading
    assert snap.vanished == len(pids)
    assert any("exited while being read" in n for n in snap.notes)
    assert not pids & {p.pid for s in snap.sessions for p in s.processes}
    assert login.shell_pid in {p.pid for s in snap.sessions for p in s.processes}
    again = sampler.sample()  # a fresh listing no longer has them
    assert again.vanished == 0


def test_between_full_looks_new_processes_are_placed(make_user, open_login) -> None:
    import sessionctl

    user, other = make_user(), make_user()
    login, bystander = open_login(user), open_login(other)
    sampler = sessionctl.UsageSampler(rescan=600)  # no second full look in this test
    sampler.prime()
    looks = sampler.full_looks
    burner = bg(login, BURN)
    threaded = bg(login, "python3 -c 'import threading, time; "
                  "[threading.Thread(target=time.sleep, args=(600,)).start() for _ in range(3)]' "
                  ">/dev/null 2>&1 & echo $!")
    outsider = bg(bystander, "sleep 600 >/dev/null 2>&1 & echo $!")
    procs.wait_until(lambda: len(os.listdir(f"/proc/{threaded}/task")) >= 4, 10)
    time.sleep(0.5)
    snap = sampler.sample()
    assert sampler.full_looks == looks  # placed without looking at everything
    by_session = {s.session.id: {p.pid: p for p in s.processes} for s in snap.sessions}
    mine = by_session[str(login.audit_session_id)]
    assert burner in mine and threaded in mine
    assert set(mine) == procs.pids_by_audit_session()[login.audit_session_id]  # no thread ids
    assert outsider in by_session[str(bystander.audit_session_id)]
    assert outsider not in mine
    t0, c0 = time.monotonic(), cpu_seconds(burner)
    time.sleep(1)
    snap = sampler.sample()
    independent = (cpu_seconds(burner) - c0) / (time.monotonic() - t0) * 100
    mine = {p.pid: p for s in snap.sessions for p in s.processes
            if s.session.id == str(login.audit_session_id)}
    assert mine[burner].cpu_percent > 5  # it spins (however loaded the machine is)
    assert mine[burner].cpu_percent == pytest.approx(independent, abs=20)
    _kill({burner})
    snap = sampler.sample()
    assert burner not in {p.pid for s in snap.sessions for p in s.processes}
    assert snap.vanished == 0 and sampler.full_looks == looks
