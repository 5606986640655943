"""The windows backend's real ctypes code, run by a Windows CPython (under Wine here).

What Wine 8.0 really implements is checked against what Wine reports another way
(psutil, whoami.exe); what it only stubs must come out as "not supported here", never
as a traceback or a success that did not happen.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from lab.wtsfake import FakeApi, FakeSession, FakeWorld

from sessionctl.backends.windows import WindowsBackend
from sessionctl.errors import NotSupported
from sessionctl.model import Session, State
from sessionctl.windows import processes as procinfo
from sessionctl.windows import wtsapi as w
from sessionctl.windows.wts import Win32Error, Wts, sid_rid, sid_string


@pytest.fixture(scope="module")
def api() -> w.Api:
    return w.load()


@pytest.fixture
def wts(api: w.Api) -> Wts:
    return Wts(api)


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A second Windows process of ours, to find in the listings."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        yield p
    finally:
        p.kill()
        p.wait()


def me_session(wts: Wts) -> Session:
    sid = wts.current_session()
    assert sid is not None
    user, _ = wts.caller()
    return Session(id=str(sid), name="", user=user, uid=-1, state=State.ACTIVE,
                   type="console")


def cli(*argv: str, backend: WindowsBackend | None = None) -> tuple[int, str, str]:
    from sessionctl.cli.main import dispatch

    saved = []
    if backend is not None:
        for name, mod in list(sys.modules.items()):
            if name.startswith("sessionctl") and getattr(mod, "get_backend", None):
                saved.append((mod, mod.get_backend))
                mod.get_backend = lambda *a, **k: backend
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = dispatch(list(argv))
    finally:
        for mod, fn in saved:
            mod.get_backend = fn
    return code, out.getvalue(), err.getvalue()


def test_this_is_windows_python() -> None:
    assert sys.platform == "win32" and os.name == "nt"
    import ctypes

    assert hasattr(ctypes, "WinDLL")


def test_every_function_resolves(api: w.Api) -> None:
    for name in w.Api.__dataclass_fields__:
        if name in ("last_error", "set_last_error", "origin"):
            continue
        fn = getattr(api, name)
        assert callable(fn) and fn.__name__ == name, name


def test_processes_map_to_sessions_as_psutil_sees_them(wts: Wts, child) -> None:
    first = {p.pid: p for p in wts.processes()}
    seen_by_psutil = set(psutil.pids())
    again = {p.pid: p for p in wts.processes()}
    assert os.getpid() in first and child.pid in first
    assert first[os.getpid()].name.lower() == "python.exe"
    assert first[child.pid].name.lower() == "python.exe"
    # a process listed by WTS before and after psutil's look is one psutil saw too
    assert set(first) & set(again) <= seen_by_psutil
    mine = wts.current_session()
    assert mine is not None and mine == first[os.getpid()].session_id
    assert first[child.pid].session_id == mine
    for pid, p in again.items():
        found = wts.session_of(pid)
        if found is not None:  # gone in between otherwise
            assert found == p.session_id, pid
    assert wts.session_of(2**31 - 1) is None  # no such process


def test_user_lookup_agrees_with_psutil_and_whoami(wts: Wts) -> None:
    mine = {p.pid: p for p in wts.processes()}[os.getpid()]
    assert sid_string(mine.sid).startswith("S-1-5-")
    user, domain = wts.account_of_sid(mine.sid)
    assert user and domain
    assert psutil.Process().username() == f"{domain}\\{user}"
    whoami = subprocess.run(["whoami.exe"], capture_output=True, text=True, timeout=60)
    assert whoami.stdout.strip().lower() == f"{domain}\\{user}".lower()
    name, admin = wts.caller()
    assert name == user and isinstance(admin, bool)
    session = wts.current_session()
    assert session is not None
    assert wts.query_string(session, w.WTSUserName) == user
    assert wts.query_string(session, w.WTSDomainName) == domain
    assert wts.account_rid(user, domain) == sid_rid(mine.sid) is not None
    caller = WindowsBackend(wts).caller()
    assert (caller.name, caller.uid, caller.by_name) == (user, sid_rid(mine.sid), True)


def test_psutil_counters_and_start_ticks(child) -> None:
    start = procinfo.details([child.pid])[child.pid][1]
    assert abs(start / procinfo.TICKS_PER_SECOND - psutil.Process(child.pid).create_time()) < 1
    reader = procinfo.PsutilCounters()
    c, denied = reader.read(os.getpid(), None)
    assert c is not None and not denied
    assert c.rss_bytes > 1 << 20 and c.cpu_ticks >= 0
    assert reader.read(child.pid, start + 1)[0] is None  # another process by that PID


def test_stubs_say_not_supported_here(wts: Wts) -> None:
    backend = WindowsBackend(wts)
    session = me_session(wts)
    with pytest.raises(NotSupported, match=r"^not supported here: WTSEnumerateSessionsW"):
        backend.sessions()
    with pytest.raises(Win32Error):
        wts.session_info(int(session.id))
    with pytest.raises(NotSupported, match=r"^not supported here: WTSQuerySessionInformationW"):
        backend.state_of(session)
    with pytest.raises(NotSupported, match=r"^not supported here: WTSLogoffSession failed"):
        backend.sign_out(session)
    # WTSDisconnectSession returns TRUE under Wine and does nothing: never taken as done
    report = backend.disconnect(session)
    assert not report.verified and report.state is None and "unverified" in report.detail
    for wait in (False, True):
        reply = backend.message_box(session, "sessionctl test", "hello", timeout=1, wait=wait)
        assert reply.status == "unsupported" and not reply.acknowledged
        assert reply.detail.startswith("not supported here: WTSSendMessageW failed")


def test_clis_report_not_supported_without_traceback(tmp_path: Path) -> None:
    os.environ["SESSIONCTL_AUDIT_LOG"] = str(tmp_path / "audit.jsonl")
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "idle"\nidle_limit = "1h"\n')
    for argv in (["query", "session"], ["query", "user"], ["qwinsta", "--json"],
                 ["logoff", "1"], ["msg", "1", "hello"], ["msg", "*", "/w", "hello"],
                 ["users", "--json"], ["policy", "check", str(policy)]):
        code, out, err = cli(*argv)
        assert (code, out) == (1, ""), (argv, out, err)
        assert err.startswith("not supported here: WTSEnumerateSessionsW"), (argv, err)
    for argv in (["top"], ["pending"], ["ack"], ["daemon", "--config", str(policy)]):
        code, _, err = cli(*argv)
        assert code == 1 and err.strip().endswith("not supported on Windows"), (argv, err)
    code, _, err = cli("logoff", "1", "--notice", "5m")
    assert code == 1 and err.startswith("not supported here: a warned logoff")
    code, _, err = cli("query", "session", "--backend", "procfs")
    assert (code, err.strip()) == (1, "the procfs backend runs on Linux only")


def test_console_script_exit_code_and_stderr() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from sessionctl.cli.query import quser_main; quser_main()"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("not supported here") and "Traceback" not in done.stderr


def test_no_linux_module_is_loaded() -> None:
    code = (
        "import sys, sessionctl, sessionctl.cli.main, sessionctl.cli.query, "
        "sessionctl.cli.logoff, sessionctl.cli.msg, sessionctl.cli.users, "
        "sessionctl.policy.engine, sessionctl.policy.config, sessionctl.actions.usage, "
        "sessionctl.backends.windows\n"
        "from sessionctl.cli.main import dispatch\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    dispatch(['query', 'session'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('sessionctl.linux') or "
        "m in ('fcntl', 'termios', 'pwd', 'grp', 'resource', 'jeepney')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_users_view_on_real_processes(api: w.Api, wts: Wts, child) -> None:
    """Sessions listed from constructed data (Wine has no session list), processes and
    accounts from the real API, CPU and memory from psutil: the users view end to end."""
    from sessionctl.actions.usage import usage

    mine = wts.current_session()
    user, _ = wts.caller()
    domain = wts.query_string(mine, w.WTSDomainName)
    now = time.time()
    world = FakeWorld([FakeSession(0, "services", w.WTSDisconnected),
                       FakeSession(mine, "Console", w.WTSActive, user, domain,
                                   logon=now - 60, last_input=now - 5)],
                      [], caller=wts.caller(), console=mine, now=now)
    fake = FakeApi(world, real=api)
    backend = WindowsBackend(Wts(fake.api()))
    found = {s.id: s for s in backend.sessions()}
    console = found[str(mine)]
    assert console.current and console.console and console.user == user
    assert {os.getpid(), child.pid} <= set(console.pids)
    snap = usage(backend=backend, interval=0.5)
    row = next(u for u in snap.users if u.user == user)
    procs = {p.pid: p for s in row.sessions for p in s.processes}
    assert procs[os.getpid()].rss_bytes > 1 << 20
    assert abs(procs[os.getpid()].rss_bytes - psutil.Process().memory_info().rss) < 64 << 20
    code, out, err = cli("users", "--json", "--interval", "0.2", backend=backend)
    assert code == 0, err
    assert f'"user": "{user}"' in out
    assert fake.leaks() == []
