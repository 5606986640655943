"""The procfs backend on a recorded-style /proc tree: grouping, Disc, no-audit fallback."""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sessionctl.backends.procfs import ProcfsBackend
from sessionctl.linux import utmp
from sessionctl.model import State

UNSET = 4294967295


@dataclass
class P:
    pid: int
    ppid: int
    asid: int = UNSET
    luid: int = UNSET
    comm: str = "sleep"
    state: str = "S"
    sid: int = 0
    tty_nr: int = 0
    start: int = 1000


def fake_proc(root: Path, procs: list[P]) -> str:
    (root / "self").mkdir(parents=True)
    (root / "self" / "sessionid").write_text("4294967295")
    (root / "stat").write_text("cpu 1 2 3\nbtime 1790000000\n")
    for p in procs:
        d = root / str(p.pid)
        d.mkdir()
        (d / "sessionid").write_text(str(p.asid))
        (d / "loginuid").write_text(str(p.luid))
        fields = [p.state, p.ppid, p.pid, p.sid or p.pid, p.tty_nr] + [0] * 14 + [p.start]
        (d / "stat").write_text(f"{p.pid} ({p.comm}) " + " ".join(map(str, fields)) + " 0 0\n")
    return str(root)


def utmp_file(path: Path, rows: list[tuple[int, str, str, str]]) -> str:
    rec = struct.Struct("<hxxi32s4s32s256shhiii16s20s")
    data = b"".join(
        rec.pack(7, pid, line.encode(), line[-4:].encode(), user.encode(), host.encode(),
                 0, 0, 0, int(time.time()) - 600, 0, bytes(16), bytes(20))
        for pid, line, user, host in rows)
    path.write_bytes(data)
    return str(path)


ROOT_UID = 0


@pytest.fixture
def tree(tmp_path: Path) -> tuple[str, str]:
    me = pwd_name()
    procs = [
        P(1, 0, comm="init"),
        P(100, 1, comm="sshd"),  # listener: no audit id
        # login A (audit 5): sshd [priv] -> sshd -> bash -> setsid child (ppid 1) + nohup
        P(200, 100, 5, ROOT_UID, "sshd"), P(201, 200, 5, ROOT_UID, "sshd"),
        P(202, 201, 5, ROOT_UID, "bash"), P(203, 1, 5, ROOT_UID, "sleep"),
        P(204, 202, 5, ROOT_UID, "sleep"),
        # audit 6: login ended, a nohup job left behind (parent is init) -> Disc
        P(300, 1, 6, ROOT_UID, "long-job"), P(301, 300, 6, ROOT_UID, "worker"),
        # audit 7: ssh command without a tty (no utmp), spawned by the sshd listener
        P(400, 100, 7, ROOT_UID, "sshd"), P(401, 400, 7, ROOT_UID, "rsync"),
        # audit 8: only a zombie left: not a session
        P(500, 1, 8, ROOT_UID, "defunct", state="Z"),
        # a login whose process has no audit id (container): keyed by its pid
        P(600, 100, comm="login"), P(601, 600, comm="bash"), P(602, 601, comm="vi"),
    ]
    proc_root = fake_proc(tmp_path / "proc", procs)
    utmp_path = utmp_file(tmp_path / "utmp", [
        (200, "pts/1", me, "10.1.1.1"),
        (600, "pts/9", me, ""),
        (999, "pts/4", me, "gone.example"),  # stale: its login process is gone
    ])
    return proc_root, utmp_path


def pwd_name() -> str:
    import pwd

    return pwd.getpwuid(ROOT_UID).pw_name


def test_grouping_states_and_fallbacks(tree: tuple[str, str], tmp_path: Path) -> None:
    proc_root, utmp_path = tree
    be = ProcfsBackend(proc_root=proc_root, utmp_path=utmp_path,
                       wtmp_path=str(tmp_path / "wtmp"))
    by_id = {s.id: s for s in be.sessions()}
    assert set(by_id) == {"5", "6", "7", "p600"}
    a = by_id["5"]
    assert a.state is State.ACTIVE and a.name == "pts/1" and a.remote_host == "10.1.1.1"
    assert a.pids == [200, 201, 202, 203, 204]  # the setsid child (ppid 1) counts
    assert a.type == "ssh" and a.leader_pid == 200 and a.service == "sshd"
    disc = by_id["6"]
    assert disc.state is State.DISC and disc.name == "" and disc.pids == [300, 301]
    assert disc.user == pwd_name() and disc.idle_seconds is None
    notty = by_id["7"]
    assert notty.state is State.ACTIVE and notty.name == "" and notty.pids == [400, 401]
    assert notty.type == "ssh" and notty.idle_seconds is None
    cont = by_id["p600"]
    assert cont.pids == [600, 601, 602] and cont.name == "pts/9"
    assert not any(s.current for s in by_id.values())


def test_inherited_audit_id_is_not_a_login_of_its_own(tmp_path: Path) -> None:
    """In a container every process may carry the id of whoever started it."""
    procs = [P(1, 0, 9, 0, "init"), P(50, 1, 9, 0, "sshd"), P(60, 50, 9, 0, "sshd"),
             P(61, 60, 9, 0, "bash"), P(70, 50, 9, 0, "sshd"), P(71, 70, 9, 0, "bash")]
    proc_root = fake_proc(tmp_path / "proc", procs)
    u = utmp_file(tmp_path / "utmp", [(60, "pts/0", pwd_name(), "a"), (70, "pts/1",
                                                                         pwd_name(), "b")])
    sessions = ProcfsBackend(proc_root=proc_root, utmp_path=u).sessions()
    by_id = {s.id: s for s in sessions}
    assert by_id["p60"].pids == [60, 61] and by_id["p70"].pids == [70, 71]


def test_utmp_entry_for_another_users_process_is_skipped(tmp_path: Path) -> None:
    procs = [P(1, 0), P(100, 1, comm="sshd"), P(200, 100, 5, 0, "sshd")]
    proc_root = fake_proc(tmp_path / "proc", procs)
    u = utmp_file(tmp_path / "utmp", [(200, "pts/1", "nobody", "x")])
    be = ProcfsBackend(proc_root=proc_root, utmp_path=u)
    sessions = be.sessions()
    assert [s.name for s in sessions] == [""]  # session 5 stays, the forged record does not
    assert any("nobody" in w for w in be.warnings())


def test_unreadable_utmp_is_a_clear_error(tmp_path: Path) -> None:
    from sessionctl.errors import SourceError

    proc_root = fake_proc(tmp_path / "proc", [P(1, 0)])
    d = tmp_path / "dir-not-file"
    d.mkdir()
    with pytest.raises(SourceError, match="cannot read"):
        ProcfsBackend(proc_root=proc_root, utmp_path=str(d)).sessions()


def test_vanishing_process_mid_scan(tmp_path: Path) -> None:
    """A process whose stat disappears between the id pass and the detail pass is dropped."""
    procs = [P(1, 0), P(100, 1, comm="sshd"), P(200, 100, 5, 0, "sshd"), P(201, 200, 5, 0)]
    proc_root = fake_proc(tmp_path / "proc", procs)
    os.remove(Path(proc_root, "201", "stat"))
    sessions = ProcfsBackend(proc_root=proc_root, utmp_path=str(tmp_path / "no")).sessions()
    assert [s.pids for s in sessions] == [[200]]


def test_utmp_record_size() -> None:
    assert utmp.RECORD_SIZE == 384


def test_console_login_under_init_owns_its_audit_id(tmp_path: Path) -> None:
    """getty execs login, a child of PID 1: its fresh audit id is its own."""
    procs = [P(1, 0, comm="init"), P(700, 1, 12, 0, "login"), P(701, 700, 12, 0, "bash")]
    proc_root = fake_proc(tmp_path / "proc", procs)
    u = utmp_file(tmp_path / "utmp", [(700, "tty3", pwd_name(), "")])
    (s,) = ProcfsBackend(proc_root=proc_root, utmp_path=u).sessions()
    assert s.id == "12" and s.name == "tty3" and s.console and s.type == "tty"
    assert s.pids == [700, 701] and s.state is State.ACTIVE


def test_forked_readers_agree_with_one_reader(tree: tuple[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionctl.linux import proc

    proc_root, _ = tree
    serial = proc.audit_sessions(proc_root)
    monkeypatch.setattr(proc, "PARALLEL_MIN", 0)
    for workers in (2, 3, 4):
        assert proc.audit_sessions(proc_root, workers=workers) == serial
    assert serial == {200: 5, 201: 5, 202: 5, 203: 5, 204: 5, 300: 6, 301: 6, 400: 7,
                      401: 7, 500: 8}


def _counters(root: str, forks: int, last_pid: int) -> None:
    Path(root, "stat").write_text(f"cpu 1 2 3\nbtime 1790000000\nprocesses {forks}\n")
    Path(root, "sys", "kernel").mkdir(parents=True, exist_ok=True)
    Path(root, "sys", "kernel", "ns_last_pid").write_text(f"{last_pid}\n")
    Path(root, "sys", "kernel", "pid_max").write_text("32768\n")


def test_remembered_ids_are_reread_only_where_a_pid_may_be_new(
    tree: tuple[str, str], tmp_path: Path
) -> None:
    """The daemon's id cache: PIDs the allocator may have handed out again are re-read."""
    proc_root, utmp_path = tree
    _counters(proc_root, forks=5000, last_pid=700)
    be = ProcfsBackend(proc_root=proc_root, utmp_path=utmp_path,
                       wtmp_path=str(tmp_path / "wtmp"))
    assert be.remember_ids()
    assert {s.id for s in be.sessions()} == {"5", "6", "7", "p600"}
    # Many forks since (as many as pid_max/2): nothing is trusted, everything re-read.
    Path(proc_root, "301", "sessionid").write_text("5")
    Path(proc_root, "401", "sessionid").write_text("6")
    _counters(proc_root, forks=5000 + 16384, last_pid=450)
    by_id = {s.id: s for s in be.sessions()}
    assert by_id["6"].pids == [300, 401] and 301 in by_id["5"].pids
    # Few forks, cursor 450 -> 460: only (450, 460] may be new; PID 300 is trusted, so a
    # change behind the cache's back is not seen (proof that it was not read).
    Path(proc_root, "300", "sessionid").write_text("9")
    _counters(proc_root, forks=5000 + 16384 + 10, last_pid=460)
    assert 300 in {s.id: s for s in be.sessions()}["6"].pids
    # Cursor 460 -> 310, wrapping past pid_max: (460, 32768] and [1, 310] may be new, so
    # 300 is read again.
    _counters(proc_root, forks=5000 + 16384 + 20, last_pid=310)
    by_id = {s.id: s for s in be.sessions()}
    assert 300 not in by_id["6"].pids and by_id["9"].pids == [300]
