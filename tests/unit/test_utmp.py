"""utmp/wtmp decoding on recorded files, corruption handling, and closing a login."""

from __future__ import annotations

import shutil
from pathlib import Path

from sessionctl.linux import utmp

DATA = Path(__file__).parent.parent / "data"


def test_recorded_wtmp_decodes_logins_and_logouts() -> None:
    entries, warnings = utmp.read(str(DATA / "wtmp-sshd-logins.bin"))
    assert warnings == []
    logins = [e for e in entries if e.type == utmp.USER_PROCESS]
    assert {"root", "sctestx"} <= {e.user for e in logins}
    ssh = next(e for e in logins if e.user == "sctestx")
    assert ssh.line == "pts/2" and ssh.host == "127.0.0.1" and ssh.addr == "127.0.0.1"
    assert ssh.pid == 14398 and ssh.login_time > 1.7e9
    logout = next(e for e in entries if e.type == utmp.DEAD_PROCESS and e.pid == ssh.pid)
    assert logout.user == "" and logout.login_time > ssh.login_time


def test_missing_file_is_no_logins(tmp_path: Path) -> None:
    assert utmp.read(str(tmp_path / "none")) == ([], [])


def test_partial_record_is_ignored_with_warning(tmp_path: Path) -> None:
    raw = (DATA / "wtmp-sshd-logins.bin").read_bytes()
    f = tmp_path / "utmp"
    f.write_bytes(raw[: utmp.RECORD_SIZE * 2 + 100])
    entries, warnings = utmp.read(str(f))
    assert len(entries) == 2 and "100 trailing bytes" in warnings[0]


def test_corrupt_record_is_skipped_not_shown(tmp_path: Path) -> None:
    raw = bytearray((DATA / "wtmp-sshd-logins.bin").read_bytes())
    raw[utmp.RECORD_SIZE : utmp.RECORD_SIZE + 2] = (300).to_bytes(2, "little")  # ut_type 300
    f = tmp_path / "utmp"
    f.write_bytes(bytes(raw))
    entries, warnings = utmp.read(str(f))
    assert all(e.offset != utmp.RECORD_SIZE for e in entries)
    assert len(warnings) == 1 and "corrupt" in warnings[0]
    garbage = tmp_path / "garbage"
    garbage.write_bytes(bytes(range(256)) * 3)
    g_entries, g_warnings = utmp.user_processes(str(garbage))
    assert g_entries == [] and g_warnings


def test_close_login_marks_dead_and_appends_wtmp(tmp_path: Path) -> None:
    u = tmp_path / "utmp"
    w = tmp_path / "wtmp"
    shutil.copy(DATA / "wtmp-sshd-logins.bin", u)
    w.write_bytes(b"")
    entry = next(e for e in utmp.read(str(u))[0] if e.user == "sctestx")
    assert utmp.close_login(entry, str(u), str(w))
    again = utmp.read(str(u))[0]
    closed = next(e for e in again if e.offset == entry.offset)
    assert closed.type == utmp.DEAD_PROCESS and closed.user == "" and closed.line == "pts/2"
    assert len(again) == len(utmp.read(str(DATA / "wtmp-sshd-logins.bin"))[0])
    logout = utmp.read(str(w))[0]
    assert len(logout) == 1 and logout[0].type == utmp.DEAD_PROCESS and logout[0].pid == entry.pid
    # a second close finds the record no longer that login's and writes nothing
    assert not utmp.close_login(entry, str(u), str(w))
    assert len(utmp.read(str(w))[0]) == 1
