"""The windows backend on constructed WTS data (Microsoft's documented layouts), on Linux.

The same parsing and backend code that runs on Windows is fed structures built by
tests/lab/wtsfake.py through the injectable Win32 layer: several sessions in every
WTS state, idle and logon times, client addresses, processes in other sessions (real
processes of this test, so psutil has something to read), message response codes, and
the bad inputs (unknown or vanished ids, access denied, console logoff, a message timeout).
What this cannot show: that real Windows fills the structures this way. That part is
Microsoft's documentation; what Wine implements is checked for real in
tests/real/test_windows_wine.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from lab.wtsfake import SYSTEM_SID, FakeApi, FakeProcess, FakeSession, FakeWorld, user_sid

from sessionctl.backends.windows import STATES, WindowsBackend
from sessionctl.errors import AccessDenied, NoSuchSession, NotSupported
from sessionctl.model import State
from sessionctl.windows import wtsapi as w
from sessionctl.windows.wts import Wts, filetime, sid_rid, sid_string

NOW = time.time()
ALL_STATES = [w.WTSActive, w.WTSConnected, w.WTSConnectQuery, w.WTSShadow, w.WTSDisconnected,
              w.WTSIdle, w.WTSListen, w.WTSReset, w.WTSDown, w.WTSInit]


@pytest.fixture
def sleepers() -> Iterator[list[int]]:
    """Three real processes of ours for the constructed sessions to hold."""
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def world(sleepers: list[int]) -> FakeWorld:
    me = os.getpid()
    sessions = [
        FakeSession(0, "services", w.WTSDisconnected),
        FakeSession(1, "Console", w.WTSActive, "alice", "LAB", logon=NOW - 3600,
                    last_input=NOW - 30, connect=NOW - 3600),
        FakeSession(2, "RDP-Tcp#0", w.WTSActive, "bob", "LAB", logon=NOW - 86400,
                    last_input=NOW - 7200, client="BOBPC", protocol=w.PROTOCOL_RDP,
                    address=(w.AF_INET, bytes([0, 0, 10, 1, 2, 3]) + bytes(14))),
        FakeSession(3, "", w.WTSDisconnected, "carol", "LAB", logon=NOW - 600,
                    last_input=NOW - 100, disconnect_time=NOW - 100),
        FakeSession(65536, "RDP-Tcp", w.WTSListen),
    ]
    # one more session in each remaining state
    for n, state in enumerate([w.WTSConnected, w.WTSConnectQuery, w.WTSShadow, w.WTSIdle,
                               w.WTSReset, w.WTSDown, w.WTSInit], start=4):
        sessions.append(FakeSession(n, f"RDP-Tcp#{n}", state, f"user{n}", "LAB",
                                    protocol=w.PROTOCOL_RDP))
    processes = [
        FakeProcess(0, sleepers[0], "svchost.exe", SYSTEM_SID),
        FakeProcess(1, sleepers[1], "explorer.exe", user_sid(1001)),
        FakeProcess(2, me, "python.exe", user_sid(1002)),
        FakeProcess(2, 2**22 + 7, "gone.exe", user_sid(1002)),  # exits before it is read
        FakeProcess(3, sleepers[2], "notepad.exe", user_sid(1003)),
    ]
    accounts = {user_sid(1001): ("alice", "LAB"), user_sid(1002): ("bob", "LAB"),
                user_sid(1003): ("carol", "LAB"), SYSTEM_SID: ("SYSTEM", "NT AUTHORITY")}
    for n in range(4, 11):
        accounts[user_sid(2000 + n)] = (f"user{n}", "LAB")
    return FakeWorld(sessions, processes, accounts, current_pid=me, console=1,
                     caller=("bob", True), now=NOW)


def backend(fake: FakeApi) -> WindowsBackend:
    return WindowsBackend(Wts(fake.api()))


def by_id(be: WindowsBackend) -> dict[str, object]:
    return {s.id: s for s in be.sessions()}


@contextlib.contextmanager
def using(be: WindowsBackend) -> Iterator[None]:
    """Make every front end that looks a backend up get ``be`` (the CLI takes names)."""
    saved = []
    for name, mod in list(sys.modules.items()):
        if name.startswith("sessionctl") and getattr(mod, "get_backend", None) is not None:
            saved.append((mod, mod.get_backend))
            mod.get_backend = lambda *a, **k: be  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for mod, fn in saved:
            mod.get_backend = fn  # type: ignore[attr-defined]


def cli(be: WindowsBackend, *argv: str) -> tuple[int, str, str]:
    from sessionctl.cli.main import dispatch

    out, err = io.StringIO(), io.StringIO()
    with using(be), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = dispatch(list(argv))
    return code, out.getvalue(), err.getvalue()


# -- layouts -------------------------------------------------------------------------------


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="64-bit layouts")
def test_structures_have_the_documented_64_bit_sizes() -> None:
    for kind, size in w.SIZES.items():
        assert ctypes.sizeof(kind) == size, kind.__name__
    assert w.WTSINFOW.ConnectTime.offset == 176 and w.WTSINFOW.UserName.offset == 130


def test_filetime_and_sid_helpers() -> None:
    assert filetime(0) is None
    assert filetime(116444736000000000).timestamp() == 0
    assert sid_string(user_sid(1001)) == "S-1-5-21-1111-2222-3333-1001"
    assert sid_rid(user_sid(1001)) == 1001 and sid_rid(b"") is None


# -- listing ---------------------------------------------------------------------------------


def test_sessions_every_state_user_idle_logon_address(sleepers: list[int]) -> None:
    fake = FakeApi(world(sleepers))
    found = by_id(backend(fake))
    assert set(found) == {"0", "1", "2", "3", "65536", *map(str, range(4, 11))}
    assert {s.state for s in found.values()} == set(State)
    assert {STATES[x] for x in ALL_STATES} == set(State)
    console, rdp, disc = found["1"], found["2"], found["3"]
    assert (console.user, console.uid, console.console, console.type) == ("alice", 1001, True,
                                                                          "console")
    assert console.idle_seconds == pytest.approx(30, abs=1)
    assert console.login_time is not None
    assert abs(console.login_time.timestamp() - (NOW - 3600)) < 1
    assert (rdp.type, rdp.protocol, rdp.remote, rdp.client_address, rdp.remote_host) == (
        "rdpwd", "rdp", True, "10.1.2.3", "BOBPC")
    assert rdp.current and not console.current
    assert rdp.idle_seconds == pytest.approx(7200, abs=1) and rdp.idle_source == "wts"
    assert rdp.pids == [os.getpid()]  # the vanished process is not a member
    assert disc.state is State.DISC and disc.user == "carol" and disc.pids == [sleepers[2]]
    assert found["0"].user == "" and found["0"].pids == [sleepers[0]]
    assert found["65536"].state is State.LISTEN and found["65536"].idle_seconds is None
    assert found["2"].extra == {"domain": "LAB"}
    refs = {r.pid: r for r in rdp.processes}
    assert refs[os.getpid()].comm == "python.exe" and refs[os.getpid()].uid == 1002
    assert refs[os.getpid()].ppid == os.getppid()
    assert fake.leaks() == []  # every buffer went back through WTSFreeMemory


def test_ipv6_client_address(sleepers: list[int]) -> None:
    wd = world(sleepers)
    wd.sessions[2].address = (w.AF_INET6, bytes.fromhex("ffff" + "00" * 13 + "01") + bytes(4))
    assert by_id(backend(FakeApi(wd)))["2"].client_address == "ffff::1"


def test_vanished_and_unreadable_sessions(sleepers: list[int]) -> None:
    wd = world(sleepers)
    fake = FakeApi(wd)
    wd.denied_sessions = {3}
    be = backend(fake)
    found = by_id(be)
    assert found["3"].user == "" and found["3"].state is State.DISC
    assert be.warnings() == ["session 3: details not readable (Access is denied)"]
    # listed, then gone before its details were asked for
    real_query = fake.WTSQuerySessionInformationW

    def vanish(h, sid, cls, pp, psize):  # type: ignore[no-untyped-def]
        if sid == 2:
            return fake._error(w.ERROR_CTX_WINSTATION_NOT_FOUND)
        return real_query(h, sid, cls, pp, psize)

    fake.WTSQuerySessionInformationW = vanish  # type: ignore[method-assign]
    assert "2" not in by_id(backend(fake))


def test_quser_and_qwinsta_tables(sleepers: list[int]) -> None:
    be = backend(FakeApi(world(sleepers)))
    code, out, err = cli(be, "query", "user")
    assert code == 0, err
    users = [line[1:23].strip() for line in out.splitlines()[1:]]
    assert users == ["alice", "bob", "carol", *(f"user{n}" for n in range(4, 11))]
    bob = next(line for line in out.splitlines() if "bob" in line)
    assert bob.startswith(">bob") and bob[46:52].strip() == "Active"
    assert bob[54:63].strip() == "2:00"  # idle two hours, right-aligned like quser
    code, out, _ = cli(be, "query", "session")
    rows = out.splitlines()[1:]
    assert code == 0 and len(rows) == 12
    states = {row[48:56].strip() for row in rows}
    assert states == {s.value for s in State}
    listener = next(r for r in rows if r[1:19].strip() == "RDP-Tcp")
    assert listener[39:46].strip() == "65536" and listener[19:38].strip() == ""
    code, _, err = cli(be, "query", "user", "nobody")
    assert (code, err.strip()) == (1, "No User exists for nobody")


# -- logoff ----------------------------------------------------------------------------------


def test_logoff_through_wtslogoffsession(sleepers: list[int], tmp_path) -> None:
    fake = FakeApi(world(sleepers))
    code, out, err = cli(backend(fake), "logoff", "3", "/v", "--audit-log", str(tmp_path / "a"))
    assert code == 0, err
    assert ("WTSLogoffSession", 3, 1) in fake.calls
    assert "logoff: WTSLogoffSession to 1 process(es); 0 left" in out
    assert '"outcome": "logged-off"' in (tmp_path / "a").read_text()


def test_logoff_refusals_match_linux(sleepers: list[int], tmp_path) -> None:
    log = ["--audit-log", str(tmp_path / "a")]
    fake = FakeApi(world(sleepers))
    code, _, err = cli(backend(fake), "logoff", "1", *log)
    assert code == 1
    assert err.strip() == ("session 1 (Console) is the console session: it is not logged "
                           "off without --allow-console")
    code, _, err = cli(backend(fake), "logoff", "77", *log)
    assert (code, err.strip()) == (1, "No session exists for 77")
    assert not [c for c in fake.calls if c[0] == "WTSLogoffSession"]
    # not an administrator: another user's session is refused before Windows is asked
    wd = world(sleepers)
    wd.caller = ("bob", False)
    fake = FakeApi(wd)
    code, _, err = cli(backend(fake), "logoff", "3", *log)
    assert code == 1 and err.startswith("Access is denied: session 3 belongs to carol; only ")
    assert not [c for c in fake.calls if c[0] == "WTSLogoffSession"]
    # an administrator whom Windows refuses all the same (ERROR_ACCESS_DENIED)
    wd = world(sleepers)
    wd.sessions[3].logoff = "denied"
    code, _, err = cli(backend(FakeApi(wd)), "logoff", "3", *log)
    assert code == 1 and err.startswith("Access is denied: session 3 belongs to carol; only ")


def test_logoff_stub_and_false_success(sleepers: list[int], tmp_path) -> None:
    log = ["--audit-log", str(tmp_path / "a")]
    wd = world(sleepers)
    wd.sessions[3].logoff = "stub"
    code, _, err = cli(backend(FakeApi(wd)), "logoff", "3", *log)
    assert code == 1 and err.startswith("not supported here: WTSLogoffSession failed (error 120")
    assert "Traceback" not in err
    wd = world(sleepers)
    wd.sessions[3].logoff = "leftover"  # TRUE, yet the session's processes run on
    code, _, err = cli(backend(FakeApi(wd)), "logoff", "3", *log)
    assert code == 1
    assert "session 3: NOT fully logged off: 1 process(es) left" in err
    assert f"  {sleepers[2]} " in err and "still running after WTSLogoffSession" in err


# -- disconnect ------------------------------------------------------------------------------


def test_disconnect_is_read_back(sleepers: list[int]) -> None:
    wd = world(sleepers)
    be = backend(FakeApi(wd))
    rdp = by_id(be)["2"]
    report = be.disconnect(rdp)
    assert report.verified and report.state is State.DISC
    wd.sessions[1].disconnect = "noop"  # Wine: TRUE and nothing happens
    report = be.disconnect(by_id(be)["1"])
    assert not report.verified and report.state is State.ACTIVE
    assert "still Active" in report.detail
    wd.stub_classes = {w.WTSSessionInfo}  # the state cannot be read back
    report = be.disconnect(rdp)
    assert not report.verified and report.state is None and "unverified" in report.detail
    wd.stub_classes = set()
    wd.sessions[3].disconnect = "denied"
    with pytest.raises(AccessDenied, match=r"^Access is denied: session 3 belongs to carol"):
        be.disconnect(by_id(be)["3"])


# -- msg -------------------------------------------------------------------------------------


def test_msg_response_codes(sleepers: list[int]) -> None:
    wd = world(sleepers)
    fake = FakeApi(wd)
    be = backend(fake)
    code, out, err = cli(be, "msg", "2", "/w", "/time:5", "save", "your", "work")
    assert code == 0, err
    assert "Message to session 2 (bob) acknowledged by bob." in out
    call = next(c for c in fake.calls if c[0] == "WTSSendMessageW")
    assert call[1] == 2 and call[4] == "save your work" and call[7] == 5 and call[8] == 1
    assert call[2].startswith("Message from bob (")
    wd.sessions[2].response = w.IDTIMEOUT
    code, out, _ = cli(be, "msg", "2", "/w", "/time:5", "hello")
    assert code == 1 and "Message to session 2 (bob) not acknowledged within 5 s." in out
    code, out, err = cli(be, "msg", "carol", "hello")  # no /w: IDASYNC, delivered
    assert (code, out, err) == (0, "Message sent to session 3 (carol) on session 3.\n", "")
    wd.sessions[3].message = "denied"
    code, _, err = cli(be, "msg", "carol", "hello")
    assert code == 1 and "Message NOT sent to session 3 (carol)" in err and "denied" in err
    wd.sessions[3].message = "stub"
    code, _, err = cli(be, "msg", "carol", "hello")
    assert code == 1 and "not supported here: WTSSendMessageW failed (error 0" in err
    code, _, err = cli(be, "msg", "77", "hello")
    assert (code, err.strip()) == (1, "No session exists for 77")


def test_msg_star_reaches_every_signed_in_session(sleepers: list[int]) -> None:
    fake = FakeApi(world(sleepers))
    code, _, err = cli(backend(fake), "msg", "*", "hello")
    assert code == 0, err
    sent = sorted(c[1] for c in fake.calls if c[0] == "WTSSendMessageW")
    assert sent == [1, 2, 3, *range(4, 11)]  # not services (0) nor the listener


# -- the users view --------------------------------------------------------------------------


def test_users_view_reads_psutil_figures(sleepers: list[int]) -> None:
    from sessionctl.actions.usage import usage

    snap = usage(backend=backend(FakeApi(world(sleepers))), interval=0.2)
    users = {u.user: u for u in snap.users}
    # the services session (0) and the listener are no user's
    assert set(users) == {"alice", "bob", "carol", *(f"user{n}" for n in range(4, 11))}
    bob = users["bob"]
    assert [p.pid for s in bob.sessions for p in s.processes] == [os.getpid()]
    me = bob.sessions[0].processes[0]
    assert me.rss_bytes > 10 * 2**20 and me.cpu_percent >= 0
    code, out, err = cli(backend(FakeApi(world(sleepers))), "users", "--json",
                         "--interval", "0.1")
    assert code == 0, err
    assert '"user": "carol"' in out


def test_a_stubbed_api_is_not_supported_here(sleepers: list[int]) -> None:
    wd = world(sleepers)
    wd.stub_enumerate = True  # what Wine 8.0 does
    be = backend(FakeApi(wd))
    with pytest.raises(NotSupported, match=r"^not supported here: WTSEnumerateSessionsW"):
        be.sessions()
    code, out, err = cli(be, "query", "session")
    assert code == 1 and out == "" and err.startswith("not supported here")
    wd.stub_enumerate = False
    wd.stub_classes = {w.WTSSessionInfo}
    with pytest.raises(NotSupported, match=r"WTSSessionInfo\) failed \(error 0"):
        be.sessions()


def test_unknown_id_is_no_such_session(sleepers: list[int]) -> None:
    from sessionctl.api import find_session

    with pytest.raises(NoSuchSession, match=r"^No session exists for 42$"):
        find_session("42", backend=backend(FakeApi(world(sleepers))))
