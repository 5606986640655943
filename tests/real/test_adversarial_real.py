"""Adversarial sign-outs on real ssh logins.

Every class of process that could outlive a logoff, make it report a false success, or
be hit by mistake gets a case here: zombie leaders with live threads, root processes
started through sudo, vim preserving a large buffer, sessions left with only deaf
processes, PID hoppers, fork storms, user+PID namespaces, subreapers, ptraced
processes, other devpts instances, 8-bit terminals, hostile names and environments.
Each case also proves that the bystanders (another login of the same user, another
user's login) are the very same processes afterwards. The run ends with a line
"adversarial: N of M cases passed" (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from lab import adversary, procs, sudo, tool_path
from lab.checks import assert_gone, assert_untouched, fingerprint, left_in, live, settled_pids
from lab.login import Login
from lab.noaudit import NoAuditLogin, OtherDevptsProcess
from lab.tty import set_iutf8
from lab.users import LabUser

pytestmark = pytest.mark.real

MARK = "4711"


def logoff(*argv: str, timeout: float = 180,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool_path("logoff")), *argv], capture_output=True, text=True,
                          timeout=timeout, env=env)


def logoff_json(target: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    res = logoff(target, "--json", *extra)
    assert "Traceback" not in res.stderr, res.stderr
    return res, json.loads(res.stdout)


def sign_out_cleanly(login: Login, before: dict[int, int | None], *extra: str) -> dict:
    """Root signs ``login``'s session out: logged-off, nothing left (nor anything new of
    it for a second: ``assert_gone``), bystanders untouched. The JSON result."""
    asid = login.audit_session_id
    res, data = logoff_json(str(asid), "--grace", "1", *extra)
    assert res.returncode == 0 and data["outcome"] == "logged-off", (res.stderr, data)
    assert_gone(asid)
    assert_untouched(before)
    return data


@pytest.fixture
def bystanders(make_user: Callable[..., LabUser], open_login: Callable[..., Login]):
    """``bystanders(user)``: a second login of ``user`` and a login of another user, each
    with children; returns their fingerprint (checked with assert_untouched)."""

    def make(user: LabUser) -> dict[int, int | None]:
        logins = [open_login(user), open_login(make_user())]
        for b in logins:
            b.run("sleep 900 >/dev/null 2>&1 & setsid sleep 900 >/dev/null 2>&1 &")
            b.run("nohup sleep 900 >/dev/null 2>&1 &")
        return fingerprint(settled_pids(logins))

    return make


def wait_members(login: Login, count: int, timeout: float = 15) -> None:
    assert procs.wait_until(lambda: len(login.pids()) >= count, timeout), login.pids()


# -- thread groups ----------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["plain", "deaf", "stopped"])
def test_zombie_leader_with_live_thread_is_ended(make_user, open_login, bystanders,
                                                 variant) -> None:
    """The main thread exited (leader Z in /proc), another thread works on: a live process."""
    user = make_user()
    login = open_login(user)
    beat = f"{user.home}/beat"
    args = [beat] + (["deaf"] if variant != "plain" else [])
    login.run(f"setsid {adversary.command(user, 'zombie_leader.py', *args)} "
              ">/dev/null 2>&1 < /dev/null &")
    leader = procs.wait_until(lambda: next(
        (p for p in login.pids() if procs.comm_of(p) == "python3"), None), 10)
    assert leader
    assert procs.wait_until(
        lambda: (procs.status_fields(leader) or {}).get("State", "")[:1] == "Z", 10)
    assert procs.alive(leader), procs.task_states(leader)  # Z leader, live thread
    if variant == "stopped":
        os.kill(leader, signal.SIGSTOP)  # group stop: the live thread is stopped
        assert procs.wait_until(lambda: "T" in procs.task_states(leader), 5)
    before = bystanders(user)
    asid = login.audit_session_id
    res, data = logoff_json(str(asid), "--grace", "2")
    assert res.returncode == 0, (res.stderr, data)
    assert data["outcome"] == "logged-off" and data["remaining"] == []
    assert not procs.alive(leader), procs.task_states(leader)
    assert_gone(asid)
    assert_untouched(before)


def test_zombie_leader_in_a_session_without_audit_id(make_user) -> None:
    """Membership by process tree (``p<pid>`` sessions) counts a Z leader with a live
    thread too, and so do the processes below it."""
    user = make_user()
    beat = f"{user.home}/beat"
    job = f"{adversary.command(user, 'zombie_leader.py', beat, 'deaf')} & sleep 600 & wait"
    login = NoAuditLogin(user, job=job)
    try:
        leader = procs.wait_until(lambda: next(
            (p for p in login.pids() if procs.comm_of(p) == "python3"), None), 10)
        assert leader
        assert procs.wait_until(
            lambda: (procs.status_fields(leader) or {}).get("State", "")[:1] == "Z", 10)
        assert procs.alive(leader), procs.task_states(leader)
        members = login.pids()
        res, data = logoff_json(login.session_id, "--grace", "1")
        assert res.returncode == 0 and data["outcome"] == "logged-off", (res.stderr, data)
        assert not procs.alive(leader), procs.task_states(leader)
        assert live(members) == set()
    finally:
        login.close()


# -- false success ----------------------------------------------------------------------


def test_root_process_via_sudo_is_reported_not_permitted(make_user, open_login, bystanders,
                                                         tmp_path) -> None:
    """A user signs out their own session holding a root process: incomplete, exit 1."""
    reason = sudo.available()
    if reason:
        pytest.skip(reason)
    user = make_user()
    with sudo.rule(user, "/usr/bin/sleep, /usr/bin/nohup"):
        target, admin = open_login(user), open_login(user)
        # sudo itself keeps the user's real uid and passes signals on: the root process
        # that outlives it ignores them (a daemon would, too)
        target.run("sudo -n nohup sh -c 'trap \"\" TERM; exec sleep 900' >/dev/null 2>&1 &")
        asid = target.audit_session_id
        roots = procs.wait_until(lambda: {
            p for p in target.pids()
            if procs.comm_of(p) == "sleep" and procs.uids_of(p) == (0, 0, 0, 0)}, 10)
        assert roots
        before = bystanders(user)
        audit = tmp_path / "audit.jsonl"
        status, out = admin.run_status(
            f"{tool_path('logoff')} {asid} --grace 1 --audit-log {audit}", timeout=60)
        assert status == 1, out
        assert "Traceback" not in out and "internal error" not in out
        assert any(str(p) in out for p in roots), out
        assert "root" in out and "not permitted" in out, out
        status, out = admin.run_status(f"{tool_path('logoff')} {asid} --json --grace 0",
                                       timeout=60)
        assert status == 1, out
        data = json.loads(out[out.index("{"):out.rindex("}") + 1])
        assert data["outcome"] == "incomplete"
        assert roots <= set(data["remaining"]) and roots <= set(data["not_permitted"])
        details = {d["pid"]: d for d in data["left"]}
        for pid in roots:
            assert details[pid]["user"] == "root" and details[pid]["uid"] == 0
            assert "not permitted" in details[pid]["reason"]
        left = live(left_in(asid))
        assert left and all(procs.uids_of(p)[1] == 0 for p in left), left  # only root's
        assert_untouched(before)
        # root can finish it
        res, data = logoff_json(str(asid), "--grace", "1")
        assert res.returncode == 0 and data["outcome"] == "logged-off", data
        assert_gone(asid)


def test_setuid_program_of_the_user_is_not_misreported(make_user, open_login) -> None:
    """A setuid-root program run by the user (real uid = user) may be signalled by them."""
    user = make_user()
    target, admin = open_login(user), open_login(user)
    target.send("passwd\n")  # waits for the current password, euid 0, ruid = user
    pid = procs.wait_until(lambda: next(
        (p for p in target.pids() if procs.comm_of(p) == "passwd"), None), 10)
    assert pid and procs.uids_of(pid)[1] == 0
    status, out = admin.run_status(f"{tool_path('logoff')} {target.audit_session_id} "
                                   "--grace 1 --json", timeout=60)
    assert status == 0, out
    assert json.loads(out[out.index("{"):])["outcome"] == "logged-off"
    assert live(left_in(target.audit_session_id)) == set()


# -- unsaved work -----------------------------------------------------------------------


@pytest.fixture
def big_file(tmp_path_factory) -> Path:
    """A 2-million-line text file (made once per run)."""
    path = tmp_path_factory.mktemp("vim") / "big.txt"
    with open(path, "w") as f:
        f.writelines(f"{i} some text on this line\n" for i in range(1, 2_000_001))
    return path


@pytest.mark.parametrize("attempt", range(4))
def test_vim_with_a_large_buffer_keeps_its_swap(make_user, open_login, big_file,
                                                attempt) -> None:
    """vim preserving a 2-million-line buffer must not be sent SIGTERM for it."""
    if shutil.which("vim") is None:
        pytest.skip("vim is not installed (scripts/bootstrap.sh --test installs it)")
    user = make_user()
    target = Path(user.home, "big.txt")
    shutil.copyfile(big_file, target)
    os.chown(target, user.uid, user.gid)
    login = open_login(user)
    login.send("vim -N -u NONE -i NONE ~/big.txt\n")
    login.wait_output("2000000L", 60)
    login.send(f"ggOMARKER-{MARK}\x1b:%s/$/ changed/\r")
    login.wait_output("substitutions on 2000001 lines", 120)
    swap = Path(user.home, ".big.txt.swp")
    assert swap.exists()
    asid = login.audit_session_id
    res, data = logoff_json(str(asid))  # the default grace
    assert res.returncode == 0, (res.stderr, data)
    assert_gone(asid)
    assert swap.exists(), "vim's swap file is gone: the unsaved buffer is lost"
    recovered = Path(user.home, "recovered.txt")
    rec = subprocess.run(
        ["runuser", "-u", user.name, "--", "vim", "-N", "-u", "NONE", "-i", "NONE", "-es",
         "-r", str(target), "-c", f"w! {recovered}", "-c", "qa!"],
        capture_output=True, text=True, timeout=180, cwd=user.home)
    assert recovered.exists(), rec.stdout + rec.stderr
    with open(recovered) as f:
        assert f.readline() == f"MARKER-{MARK} changed\n"
        assert f.readline() == "1 some text on this line changed\n"


def test_session_of_only_deaf_processes_skips_the_grace(make_user, open_login,
                                                         bystanders) -> None:
    """Nobody left can save (all ignore HUP and TERM, judged before the hangup): no wait."""
    user = make_user()
    login = open_login(user)
    login.run("sh -c 'trap \"\" HUP TERM; exec sleep 900' >/dev/null 2>&1 &")
    login.run("setsid sh -c 'trap \"\" HUP TERM; exec sleep 900' >/dev/null 2>&1 &")
    login.run("nohup sh -c 'trap \"\" TERM; exec sleep 900' >/dev/null 2>&1 &")
    wait_members(login, 6)
    before = bystanders(user)
    asid = login.audit_session_id
    t0 = time.monotonic()
    res, data = logoff_json(str(asid), "--grace", "60")
    took = time.monotonic() - t0
    assert res.returncode == 0 and data["outcome"] == "logged-off", data
    assert took < 30, f"waited {took:.1f} s of a 60 s grace for processes that cannot hear"
    hangup = data["steps"][0]
    assert hangup["name"] == "hangup" and "nobody left" in hangup["detail"], hangup
    assert_gone(asid)
    assert_untouched(before)


# -- escapes ----------------------------------------------------------------------------


def test_pid_hoppers_are_caught(make_user, open_login, bystanders) -> None:
    """Processes that fork and exit in a loop live a moment each: one look at /proc can
    miss them all (they escaped here before the looks chased the PIDs handed out during
    them)."""
    user = make_user()
    login = open_login(user)
    for speed in ("slow", "slow", "fast", "fast"):
        login.run(f"{adversary.command(user, 'hopper.py', 'deaf', speed)} >/dev/null 2>&1 &")
    time.sleep(0.5)
    sign_out_cleanly(login, bystanders(user))


def test_vfork_parent_waiting_in_the_kernel(make_user, open_login, bystanders) -> None:
    """A vfork parent sits in D and cannot stop until its child is gone: with our SIGSTOP
    pending it cannot fork either, so the freeze need not wait for it."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (scripts/bootstrap.sh --test installs it)")
    user = make_user()
    login = open_login(user)
    exe = adversary.compile_c(user, "vfork_parent")
    login.run(f"setsid {exe} </dev/null >/dev/null 2>&1 &")
    parent = procs.wait_until(lambda: next(
        (p for p in login.pids() if procs.comm_of(p) == "vfork_parent"
         and (procs.status_fields(p) or {}).get("State", "")[:1] == "D"), None), 10)
    assert parent
    sign_out_cleanly(login, bystanders(user))


def test_fork_storm_with_threads_is_ended(make_user, open_login, bystanders) -> None:
    user = make_user()
    login = open_login(user)
    login.run(f"setsid {adversary.command(user, 'storm.py', '200')} >/dev/null 2>&1 &")
    wait_members(login, 150, 30)
    sign_out_cleanly(login, bystanders(user))


def test_user_and_pid_namespaces(make_user, open_login, bystanders) -> None:
    """A PID namespace's init ignores what it has no handler for; its fork loop too."""
    user = make_user()
    login = open_login(user)
    login.run("unshare -Urpf --mount-proc sh -c 'while :; do sleep 30 & sleep 0.05; done' "
              ">/dev/null 2>&1 &")
    login.run("setsid unshare -Urpf --mount-proc sleep 900 >/dev/null 2>&1 &")
    wait_members(login, 8)
    before = bystanders(user)
    asid = login.audit_session_id
    admin = open_login(user)  # the user signs out their own other session
    status, out = admin.run_status(f"{tool_path('logoff')} {asid} --grace 2 --json",
                                   timeout=60)
    assert status == 0, out
    time.sleep(0.5)
    assert_gone(asid)
    assert_untouched(before)


def test_subreaper_and_its_orphans(make_user, open_login, bystanders) -> None:
    user = make_user()
    login = open_login(user)
    login.run(f"setsid {adversary.command(user, 'subreaper.py', '20')} >/dev/null 2>&1 &")
    wait_members(login, 22)
    sign_out_cleanly(login, bystanders(user))


def test_ptraced_processes(make_user, open_login, bystanders) -> None:
    """Traced by strace inside the session, and by a tracer outside it (root's strace)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (scripts/bootstrap.sh --test installs it)")
    user = make_user()
    login = open_login(user)
    login.run("strace -f -o /dev/null sh -c 'trap \"\" HUP TERM; "
              "while :; do sleep 0.2; done' >/dev/null 2>&1 &")
    login.run("sh -c 'trap \"\" HUP TERM; exec sleep 900' >/dev/null 2>&1 &")
    victim = procs.wait_until(lambda: next(
        (p for p in login.pids() if procs.cmdline_of(p) == ["sleep", "900"]), None), 10)
    assert victim
    outside = subprocess.Popen(["strace", "-o", "/dev/null", "-p", str(victim)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        assert procs.wait_until(lambda: (procs.status_fields(victim) or {}).get(
            "TracerPid", "0") != "0", 10)
        sign_out_cleanly(login, bystanders(user))
        assert outside.wait(10) is not None  # its tracee is gone; the tracer was spared
    finally:
        if outside.poll() is None:
            outside.kill()
            outside.wait()


def test_hostile_comm_names(make_user, open_login, bystanders) -> None:
    user = make_user()
    login = open_login(user)
    names = [b"a\nSigIgn:\t0", b"x) S 1 1 1", b"\x1b]0;pwn\x07", b"\xff\xfe\x9b2J",
             "ě2J".encode(), b"  ", b"sshd"]
    for name in names:
        login.run(f"setsid {adversary.command(user, 'rename.py', name.hex(), 'deaf')} "
                  ">/dev/null 2>&1 < /dev/null &")
    wait_members(login, 3 + len(names))
    before = bystanders(user)
    asid = login.audit_session_id
    res = logoff(str(asid), "/v", "--grace", "1")
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout + res.stderr and "\x07" not in res.stdout
    assert_gone(asid)
    assert_untouched(before)


def test_hostile_environment_of_the_tool(make_user, open_login, bystanders) -> None:
    """Odd locale and terminal names, a huge environment: same result, same exit code."""
    user = make_user()
    target, admin = open_login(user), open_login(user)
    target.run("sleep 900 >/dev/null 2>&1 & nohup sleep 900 >/dev/null 2>&1 &")
    before = bystanders(user)
    asid = target.audit_session_id
    huge = " ".join(f"SCTEST_FILL{i}=$(head -c 60000 /dev/zero | tr '\\0' x)"
                    for i in range(16))
    env = (f"env LANG=xx_XX.bogus LC_ALL=tr_TR.ISO-8859-9 LC_CTYPE=C TERM=$'x\\e]0;t\\a' "
           f"COLUMNS=-1 LINES=abc {huge}")
    status, out = admin.run_status(f"{env} {tool_path('qwinsta')} {asid}", timeout=30)
    assert status == 0 and str(asid) in out and "Traceback" not in out, out
    status, out = admin.run_status(f"{env} {tool_path('logoff')} {asid} /v --grace 1",
                                   timeout=60)
    assert status == 0, out
    assert "logged off" in out and "Traceback" not in out
    status, out = admin.run_status(f"{env} {tool_path('logoff')} {asid}", timeout=30)
    assert status == 1 and "No session exists" in out, out
    assert_gone(asid)
    assert_untouched(before)


def test_concurrent_double_logoff(make_user, open_login, bystanders) -> None:
    user = make_user()
    login = open_login(user)
    login.run("sh -c 'trap \"\" HUP TERM; while :; do sleep 30 & sleep 0.01; done' "
              ">/dev/null 2>&1 &")
    wait_members(login, 20)
    before = bystanders(user)
    asid = login.audit_session_id
    argv = [str(tool_path("logoff")), str(asid), "--json", "--grace", "1"]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(r.wait(120), *r.communicate()) for r in runs]
    for code, out, err in results:
        assert "Traceback" not in err
        if code == 0:
            assert json.loads(out)["outcome"] == "logged-off"
        else:  # the other one finished first
            assert code == 1 and "No session exists" in err, (out, err)
    assert any(code == 0 for code, _, _ in results)
    assert_gone(asid)
    assert_untouched(before)


# -- hit by mistake ---------------------------------------------------------------------


def test_process_holding_the_tty_from_outside_is_untouched(make_user, open_login) -> None:
    """Root's process with the login's terminal open is not a member of the session."""
    user = make_user()
    login = open_login(user)
    fd = os.open(login.tty, os.O_RDONLY | os.O_NOCTTY)
    try:
        holder = subprocess.Popen(["sleep", "900"], stdin=fd, start_new_session=True)
    finally:
        os.close(fd)
    try:
        mark = fingerprint({holder.pid})
        res, data = logoff_json(str(login.audit_session_id), "--grace", "1")
        assert res.returncode == 0 and data["outcome"] == "logged-off", data
        assert_untouched(mark)
    finally:
        holder.kill()
        holder.wait()


def test_other_devpts_instance_is_not_a_member(make_user) -> None:
    """pts/N of another devpts instance has the same device number: not the same tty."""
    user, other = make_user(), make_user()
    login = NoAuditLogin(user)
    try:
        stranger = OtherDevptsProcess(other, login.tty_number)
        try:
            assert procs.tty_nr_of(stranger.pid) == procs.tty_nr_of(login.pid)
            mark = fingerprint({stranger.pid})
            members = login.pids()
            res, data = logoff_json(login.session_id, "--grace", "1")
            assert res.returncode == 0 and data["outcome"] == "logged-off", data
            assert live(members) == set()
            assert_untouched(mark)
        finally:
            stranger.close()
    finally:
        login.close()


# -- terminals --------------------------------------------------------------------------


@pytest.mark.parametrize("utf8", [False, True])
def test_message_to_an_8bit_terminal_has_no_c1_bytes(make_user, open_login, utf8) -> None:
    """A tty without IUTF8 decodes bytes 0x80-0x9F as C1 controls (0x9B is CSI)."""
    login = open_login(make_user())
    login.run("stty iutf8" if utf8 else "stty -iutf8")
    login.read_available(0.2)
    start = len(login.raw)
    text = "ě2J Příliš žluťoučký kůň — 日本 \u2018x\u2019 🙂 end"
    res = subprocess.run([str(tool_path("msg")), str(login.audit_session_id), text],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    login.wait_output(" end", 5)
    shown = bytes(login.raw[start:])
    frame = shown[shown.index(b"Message from"):shown.index(b" end") + 4]
    if utf8:
        assert text.encode() in frame  # a UTF-8 terminal gets the text as it is
    else:
        assert not any(0x80 <= b <= 0x9F for b in frame), frame
        assert not any(b >= 0x80 for b in frame), frame  # plain ASCII
        assert b"e2J Prilis zlutoucky kun" in frame, frame


@pytest.mark.parametrize("utf8", [False, True])
def test_listing_on_an_8bit_terminal_has_no_c1_bytes(make_user, utf8) -> None:
    """A remote host name in utmp is anyone's text: on the admin's own -iutf8 terminal
    it arrives as ASCII."""
    login = NoAuditLogin(make_user(), host="\u011b2J-\u011b]0;x")
    master, slave = os.openpty()
    try:
        set_iutf8(slave, utf8)
        proc = subprocess.Popen([str(tool_path("qwinsta")), "/v", login.session_id],
                                stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        slave = -1
        shown = b""
        while select.select([master], [], [], 10)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        assert proc.wait(10) == 0, shown
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
        login.close()
    assert login.line.encode() in shown
    if utf8:
        assert "\u011b2J-".encode() in shown
    else:
        assert b"e2J-" in shown and all(b < 0x80 for b in shown), shown
