"""Logins without an audit id and stale utmp records, on real processes (the procfs
backend reading the real /proc, with a private utmp file naming the test's processes)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import termios
import textwrap
import time

import pytest
from lab import procs
from lab.utmp import record

pytestmark = pytest.mark.real

# Run as a "login" with no audit id: clearing loginuid (root) unsets the session id too.
CLEAR_AUDIT = "echo 4294967295 > /proc/self/loginuid"

FOREIGN_TERMINAL = textwrap.dedent("""
    import fcntl, os, struct, subprocess, sys
    want = int(sys.argv[1])
    with open("/proc/self/loginuid", "w") as f:
        f.write("4294967295")
    subprocess.run(["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666",
                    "sctest-devpts", "/dev/pts"], check=True)
    masters = []
    while True:  # open terminals in the new instance until its number is ours
        fd = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY)
        masters.append(fd)
        fcntl.ioctl(fd, 0x40045431, struct.pack("i", 0))  # TIOCSPTLCK: unlock
        n = struct.unpack("I", fcntl.ioctl(fd, 0x80045430, b"\\0" * 4))[0]  # TIOCGPTN
        if n >= want:
            break
    if n != want:
        sys.exit(f"got pts/{n}, wanted pts/{want}")
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.open(f"/dev/pts/{want}", os.O_RDWR)  # our controlling terminal now
        os.execvp("sleep", ["sleep", "600"])
    print(pid, flush=True)
    os.waitpid(pid, 0)
""")


def _spawn_on(slave: int, argv: list[str]) -> subprocess.Popen[bytes]:
    """A process without an audit id, session leader with ``slave`` as its terminal."""
    return subprocess.Popen(
        ["sh", "-c", f'{CLEAR_AUDIT}; exec "$@"', "login", *argv],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))


@pytest.fixture
def killer():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def test_no_audit_login_counts_only_its_own_terminal(lab_user, tmp_path, killer) -> None:
    """A p<pid> login gets its descendants and processes on its terminal; a process on
    the same pts number of another devpts instance (another mount namespace) is never a
    member, and a logoff of the login leaves it alone."""
    from sessionctl.actions.logoff import logoff
    from sessionctl.backends.procfs import ProcfsBackend

    master, slave = os.openpty()
    try:
        line = os.ttyname(slave).removeprefix("/dev/")
        number = int(line.split("/")[1])
        # the login: a shell whose subshell leaves an orphan on the terminal behind
        login = _spawn_on(slave, ["sh", "-c", "(sleep 603 &); exec sleep 600"])
        killer.append(login)
        orphan = procs.wait_until(lambda: next(
            (p for p in procs.all_pids() if procs.cmdline_of(p) == ["sleep", "603"]
             and procs.tty_nr_of(p) == procs.tty_nr_of(login.pid)), None), 10)
        assert procs.ppid_of(orphan) != login.pid
        # the foreign process: pts/<same number> of a second devpts instance
        foreign_parent = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", sys.executable, "-c",
             FOREIGN_TERMINAL, str(number)], stdout=subprocess.PIPE, text=True)
        killer.append(foreign_parent)
        foreign = int(foreign_parent.stdout.readline())
        assert procs.wait_until(  # same device number once it has exec'd
            lambda: procs.cmdline_of(foreign) == ["sleep", "600"]
            and procs.tty_nr_of(foreign) == procs.tty_nr_of(login.pid), 10)
        for pid in (login.pid, orphan, foreign):
            assert procs.audit_session_of(pid) is None
        utmp = tmp_path / "utmp"
        utmp.write_bytes(record(login.pid, line, lab_user.name, "", int(time.time())))
        be = ProcfsBackend(utmp_path=str(utmp), wtmp_path=str(tmp_path / "wtmp"))
        sid = f"p{login.pid}"
        (s,) = [x for x in be.sessions() if x.id == sid]
        assert set(s.pids) == {login.pid, orphan} and s.name == line
        assert s.state.value == "Active" and s.user == lab_user.name
        (o,) = [x for x in be.overview() if x.id == sid]  # the table listing: no processes
        assert o.pids == [] and (o.name, o.state, o.current) == (s.name, s.state, False)
        assert be.member_pids(s) == {login.pid, orphan}
        start = procs.start_time_of(foreign)
        result = logoff(sid, backend=be, grace=1, audit_log=tmp_path / "audit.jsonl")
        assert result.ok, result.to_dict()
        assert procs.wait_gone({login.pid, orphan}, 5) == set()
        assert procs.start_time_of(foreign) == start
    finally:
        os.close(master)
        os.close(slave)


def test_stale_and_recycled_utmp_records_name_nothing(lab_user, tmp_path, killer) -> None:
    """Records whose process is dead or is now another process (started after the record)
    make no session, and nothing named by them is signalled."""
    from sessionctl.actions.logoff import logoff
    from sessionctl.backends.procfs import ProcfsBackend
    from sessionctl.errors import NoSuchSession

    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sh", "-c", f"{CLEAR_AUDIT}; exec sleep 600"])
    killer.append(live)
    assert procs.wait_until(lambda: procs.cmdline_of(live.pid) == ["sleep", "600"], 5)
    start = procs.start_time_of(live.pid)
    an_hour_ago = int(time.time()) - 3600
    now = int(time.time())
    utmp = tmp_path / "utmp"
    utmp.write_bytes(b"".join([
        record(dead.pid, "pts/901", lab_user.name, f"tmux({dead.pid}).%0", now),  # dead
        record(live.pid, "pts/902", lab_user.name, f"tmux({live.pid}).%0", now),  # no tmux
        record(live.pid, "pts/903", lab_user.name, ":pts/9:S.0", now),  # no screen parent
        record(live.pid, "pts/904", lab_user.name, "10.0.0.9", an_hour_ago),  # recycled
        record(dead.pid, "pts/905", lab_user.name, "10.0.0.9", now),  # dead
    ]))
    be = ProcfsBackend(utmp_path=str(utmp), wtmp_path=str(tmp_path / "wtmp"))
    found = be.sessions()
    assert not any(s.name.startswith("pts/90") for s in found)
    assert not any(s.user == lab_user.name for s in found)
    assert not any(live.pid in s.pids for s in found)
    for target in (f"p{live.pid}", f"p{dead.pid}", "pts/904"):
        with pytest.raises(NoSuchSession):
            logoff(target, backend=be, grace=0, audit_log=tmp_path / "audit.jsonl")
    assert procs.start_time_of(live.pid) == start
