"""Hostile local users against root's countdowns and root's files (issue 18), on real logins.

* The session's own user (the one who wants the countdown gone) throws a few hundred
  malformed requests, slowloris connections and a connection burst at the live worker:
  it answers, never dies, and the session is signed out at its deadline.
* A worker killed with SIGKILL is noticed by its supervisor, resumed and audited; with its
  supervisor gone too, the next root command (or daemon tick) resumes it; the sign-out
  still happens.
* State, run and audit paths another user owns or can change are refused (exit 1, a clear
  message) before anything is done.

Every test uses its own state/run/audit paths under a private root-owned directory.
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab import procs, tool_path
from lab.countdown import pending_row, read_pending

pytestmark = pytest.mark.real

HERE = Path(__file__).resolve().parent


class Paths:
    """A root-owned 0755 directory in /run with the test's state dir, run dir, audit log."""

    def __init__(self) -> None:
        self.root = Path(f"/run/sctest-hostile-{secrets.token_hex(4)}")
        self.root.mkdir(mode=0o755)
        os.chmod(self.root, 0o755)
        self.state = self.root / "state"
        self.run = self.root / "run"
        self.audit = self.root / "log" / "audit.jsonl"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {**os.environ, "SESSIONCTL_STATE_DIR": str(self.state),
               "SESSIONCTL_RUN_DIR": str(self.run), "SESSIONCTL_AUDIT_LOG": str(self.audit)}
        env.update(overrides)
        return env

    def events(self) -> list[dict]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines()]

    def names(self) -> list[str]:
        return [e["event"] for e in self.events()]


@pytest.fixture
def paths() -> Iterator[Paths]:
    p = Paths()
    try:
        yield p
    finally:
        for row in _pending(p):  # a failed test's countdown: cancel it (root)
            _tool(p, "sessionctl", "cancel", row["session_id"])
        shutil.rmtree(p.root, ignore_errors=True)


def _tool(p: Paths, name: str, *argv: str, env: dict[str, str] | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool_path(name)), *argv], capture_output=True, text=True,
                          timeout=timeout, env=env or p.env())


def _pending(p: Paths) -> list[dict]:
    """The rows of state.db, read directly (a root sessionctl command would resume dead
    countdowns as a side effect)."""
    return read_pending(p.state)


def _row(p: Paths, sid: str) -> dict | None:
    return pending_row(sid, p.state)


def _root_status(p: Paths, sid: str) -> dict:
    """A status request as root, straight on the socket (the worker must answer it)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(p.run / f"logoff-{sid}.sock"))
        s.sendall(b'{"op": "status"}')
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data)


def _schedule(p: Paths, sid: str, notice: str) -> float:
    t0 = time.time()
    res = _tool(p, "logoff", sid, "--notice", notice, "--max-postpone", "0", "--grace", "1")
    assert res.returncode == 0, res.stderr
    return t0


def _signed_out(pids: set[int], by: float) -> bool:
    left = procs.wait_gone(pids, max(0.0, by - time.time()))
    return not {x for x in left if not procs.is_zombie(x)}


def corpus(seed: int = 18) -> list[tuple[bytes, bool]]:
    """About 330 malformed requests: hand-picked ones, random JSON, random bytes."""
    rnd = random.Random(seed)
    fixed: list[bytes] = [
        b"[]", b"{}", b"null", b"true", b"1", b'"status"', b"", b"\n", b"{", b"[" * 3000,
        b"[" * 1500 + b"]" * 1500, b'{"op": []}', b'{"op": {}}', b'{"op": null}',
        b'{"op": 1}', b'{"op": "Status"}', b'{"op": "status", "x": 1}',
        b'{"op": "postpone"}', b'{"op": "postpone", "seconds": "5"}',
        b'{"op": "postpone", "seconds": true}', b'{"op": "postpone", "seconds": -5}',
        b'{"op": "postpone", "seconds": 0}', b'{"op": "postpone", "seconds": 1e999}',
        b'{"op": "postpone", "seconds": NaN}', b'{"op": "postpone", "seconds": Infinity}',
        b'{"op": "postpone", "seconds": ' + b"9" * 4000 + b"}",
        b'{"op": "postpone", "seconds": [5]}', b'{"op": "postpone", "seconds": {"a": 5}}',
        b'{"op": "postpone", "seconds": 5}', b'{"op": "postpone", "seconds": 1e-300}',
        b'{"op": "cancel"}', b'{"op": "cancel", "note": 5}', b'{"op": "cancel", "note": "x"}',
        b'{"op": "cancel", "note": "' + b"x" * 300 + b'"}',
        b'{"op": "cancel", "note": "\\ud800\\u001b[2J"}', b'{"op": "status"}',
        b"\xff\xfe\x00garbage", b"\x00" * 100, b'{"op": "status"' + b" " * 5000 + b"}",
        b"x" * 1_000_000, b'{"op":"status"}\n{"op":"cancel"}', b'{"op": "\xc3\x28"}',
        b'["op", "cancel"]', b'{"op": "postpone", "seconds": 5, "seconds": "x"}',
    ]
    cases = [(raw, True) for raw in fixed]
    cases += [(b'{"op": "sta', False), (b"", False)]  # never finished: the deadline ends them
    for _ in range(200):
        value = _random_json(rnd, 0)
        if isinstance(value, dict) and rnd.random() < 0.6:
            value["op"] = rnd.choice(["status", "postpone", "cancel", "", None, 7, ["cancel"]])
        cases.append((json.dumps(value).encode(), True))
    for _ in range(80):
        cases.append((rnd.randbytes(rnd.choice([1, 7, 100, 4095, 4096, 4097, 6000])), True))
    return cases


def _random_json(rnd: random.Random, depth: int) -> object:
    kinds = ["int", "float", "str", "bool", "null"] + (["list", "dict"] * 2 if depth < 4 else [])
    kind = rnd.choice(kinds)
    if kind == "int":
        return rnd.choice([0, -1, 1, 2**63, -(2**70), rnd.randint(-10**6, 10**6)])
    if kind == "float":
        return rnd.choice([0.5, -0.0, 1e308, -1e-308, rnd.uniform(-1e6, 1e6)])
    if kind == "str":
        chars = "ab\x1b\u202e\U0001f600\"\\\n"
        return "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 20)))
    if kind == "bool":
        return rnd.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]
    keys = ["op", "seconds", "note", "x", ""]
    return {rnd.choice(keys): _random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 4))}


def test_malformed_requests_never_end_the_worker_and_the_logoff_happens(
    paths, make_user, open_login
) -> None:
    user = make_user()
    login = open_login(user)
    sid = str(login.audit_session_id)
    pids = login.pids()
    t0 = _schedule(paths, sid, "25s")
    row = _row(paths, sid)
    assert row and row["worker_alive"]
    worker, supervisor = row["worker_pid"], row.get("supervisor_pid")
    # The user attacks from inside the session: the corpus, slowloris, a burst.
    cases = corpus()
    assert len(cases) >= 300
    work = paths.root / "attack"
    work.mkdir(mode=0o755)
    (work / "corpus.jsonl").write_text("".join(
        json.dumps({"data": base64.b64encode(raw).decode(), "close": close}) + "\n"
        for raw, close in cases))
    shutil.copy(HERE / "attack_countdown.py", work / "attack.py")
    out = work / "out.json"
    out.touch()
    os.chown(out, user.uid, user.gid)
    sock = paths.run / f"logoff-{sid}.sock"
    status, text = login.run_status(
        f"{tool_path('python')} {work}/attack.py {sock} {work}/corpus.jsonl {out}; echo done",
        timeout=60)
    assert status == 0 and "done" in text, text
    report = json.loads(out.read_text())
    # Every malformed request got a refusal, not a dropped connection or a crash.
    replies = report["replies"]
    refused = [r for r in replies if '"ok": false' in r]
    assert len(refused) >= len(cases) - 20, [r for r in replies if '"ok": false' not in r][:5]
    assert any("bad request: request is not a JSON object" in r for r in replies)
    assert any("larger than 4096 bytes" in r for r in replies)
    assert any("not sent in time" in r for r in replies)
    assert report["burst"] > 100
    # Still the same worker (never even restarted), still answering root.
    assert procs.alive(worker) and not procs.is_zombie(worker)
    row = _row(paths, sid)
    assert row["worker_pid"] == worker and row.get("supervisor_pid") == supervisor
    assert row["logoff_at"] == pytest.approx(t0 + 25, abs=2)  # nothing moved the deadline
    assert _root_status(paths, sid)["ok"] is True
    # And the warned logoff happens at its deadline.
    assert _signed_out(pids, row["logoff_at"] + 1 + 8), "the session was not signed out"
    assert procs.wait_until(lambda: "logoff-at-deadline" in paths.names(), 10), paths.names()
    names = paths.names()
    assert "logoff-bad-request" in names, names
    assert "logoff-worker-died" not in names


def test_killed_worker_is_noticed_resumed_audited_and_signs_out(
    paths, make_user, open_login
) -> None:
    login = open_login(make_user())
    sid = str(login.audit_session_id)
    pids = login.pids()
    _schedule(paths, sid, "15s")
    row = _row(paths, sid)
    worker, logoff_at = row["worker_pid"], row["logoff_at"]
    os.kill(worker, signal.SIGKILL)  # a root-owned process of ours (the test is root)

    def resumed() -> dict | None:
        r = _row(paths, sid)
        return r if r and r["worker_pid"] != worker and r["worker_alive"] else None

    new = procs.wait_until(resumed, 5)
    assert new, "the supervisor did not resume the worker"
    died = [e for e in paths.events() if e["event"] == "logoff-worker-died"]
    assert died and died[0]["how"] == "killed by SIGKILL"
    assert died[0]["noticed_by"] == "supervisor" and died[0]["worker_pid"] == worker
    assert "logoff-worker-resumed" in paths.names()
    assert new["logoff_at"] == logoff_at  # the same deadline, not a new one
    assert _root_status(paths, sid)["ok"] is True
    assert _signed_out(pids, logoff_at + 1 + 8), "the session was not signed out"
    assert procs.wait_until(lambda: "logoff-at-deadline" in paths.names(), 10), paths.names()


def test_countdown_lost_with_its_supervisor_is_resumed_by_a_command_and_the_daemon(
    paths, make_user, open_login
) -> None:
    login = open_login(make_user())
    sid = str(login.audit_session_id)
    pids = login.pids()
    _schedule(paths, sid, "40s")  # an admin's countdown, not the policy daemon's

    def kill_both() -> None:
        row = _row(paths, sid)
        both = [pid for pid in (row.get("supervisor_pid"), row["worker_pid"]) if pid]
        for pid in both:
            os.kill(pid, signal.SIGKILL)
        for pid in both:
            assert procs.wait_until(lambda pid=pid: not procs.alive(pid)
                                    or procs.is_zombie(pid), 5)
        time.sleep(0.2)

    # A policy daemon runs (its rules select nobody: this is an admin's countdown).
    config = paths.root / "policy.toml"
    config.write_text('[defaults]\ninterval = "1s"\n\n[[rule]]\nname = "nobody"\n'
                      'idle_limit = "1h"\nusers = ["nobody"]\n')
    daemon = subprocess.Popen([str(tool_path("sessionctl")), "daemon", "--config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=paths.env())
    try:
        assert "sessionctl-policy: started" in daemon.stderr.readline()  # type: ignore[union-attr]
        kill_both()
        # Nothing else has noticed: a user's command does not resume (only root's do).
        _, out = login.run_status(f"SESSIONCTL_STATE_DIR={paths.state} "
                                  f"{tool_path('sessionctl')} pending")
        assert "countdown not running" in out or "counting down" in out, out
        # The daemon's next tick resumes it.
        assert procs.wait_until(lambda: (_row(paths, sid) or {}).get("worker_alive"), 5)
    finally:
        daemon.send_signal(signal.SIGTERM)  # our own child
        log = daemon.communicate(timeout=20)[1]
    assert f"sessionctl-policy: resumed the countdown of session {sid}" in log, log
    kill_both()
    # With no daemon, any root command resumes it (here qwinsta), and says so on stderr.
    res = _tool(paths, "qwinsta")
    assert res.returncode == 0, res.stderr
    assert f"resumed the countdown of session {sid}" in res.stderr
    died = [e for e in paths.events() if e["event"] == "logoff-worker-died"]
    assert [e["noticed_by"] for e in died] == ["policy daemon", "qwinsta"]
    assert paths.names().count("logoff-worker-resumed") == 2
    row = _row(paths, sid)
    assert row["worker_alive"] and _root_status(paths, sid)["ok"] is True
    assert _signed_out(pids, row["logoff_at"] + 1 + 8), "the session was not signed out"
    assert procs.wait_until(lambda: "logoff-at-deadline" in paths.names(), 10), paths.names()


def _refused(res: subprocess.CompletedProcess[str], path: Path, why: str) -> None:
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert f"refusing {path}" in res.stderr and why in res.stderr, res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr


def test_state_run_and_audit_paths_a_user_controls_are_refused(
    paths, make_user, open_login
) -> None:
    user = make_user()
    login = open_login(user)
    sid = str(login.audit_session_id)
    # The user's own directory as the state dir (their database, their deadlines).
    theirs = Path(user.home) / "state"
    login.run(f"mkdir -p {theirs} && chmod 755 {theirs}")
    env = paths.env(SESSIONCTL_STATE_DIR=str(theirs))
    res = _tool(paths, "logoff", sid, "--notice", "5m", env=env)
    _refused(res, theirs, f"owned by {user.name}")
    assert not (theirs / "state.db").exists()
    _refused(_tool(paths, "qwinsta", env=env), theirs, "not root")
    _refused(_tool(paths, "sessionctl", "pending", env=env), theirs, "not root")
    # A root-owned directory anyone can write.
    open_dir = paths.root / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o1777)
    res = _tool(paths, "logoff", sid, "--notice", "5m",
                env=paths.env(SESSIONCTL_STATE_DIR=str(open_dir)))
    _refused(res, open_dir, "writable by group and others")
    # A user's symlink on the way (in a sticky directory like /tmp, which an ancestor may
    # be), and a symlinked state.db in a root directory.
    sticky = paths.root / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    link = sticky / "link"
    login.run(f"ln -s {paths.root} {link}")
    res = _tool(paths, "logoff", sid, "--notice", "5m",
                env=paths.env(SESSIONCTL_STATE_DIR=str(link / "state")))
    _refused(res, link / "state", f"{link}: a symbolic link owned by {user.name}")
    symlinked = paths.root / "symlinked"
    symlinked.mkdir()
    login.run(f"touch {user.home}/fake.db")
    (symlinked / "state.db").symlink_to(Path(user.home) / "fake.db")
    res = _tool(paths, "logoff", sid, "--notice", "5m",
                env=paths.env(SESSIONCTL_STATE_DIR=str(symlinked)))
    _refused(res, symlinked / "state.db", "a symbolic link")
    # The user's directory as the run directory (where they could swap the socket).
    run = Path(user.home) / "run"
    login.run(f"mkdir -p {run}")
    res = _tool(paths, "logoff", sid, "--notice", "5m",
                env=paths.env(SESSIONCTL_RUN_DIR=str(run)))
    _refused(res, run, f"owned by {user.name}")
    # A file the user named (and owns) as the audit log: refused before the logoff.
    named = Path(user.home) / "audit.jsonl"
    login.run(f"touch {named}")
    res = _tool(paths, "logoff", sid, "--notice", "5m",
                env=paths.env(SESSIONCTL_AUDIT_LOG=str(named)))
    _refused(res, named, f"owned by {user.name}")
    res = _tool(paths, "logoff", sid, "--audit-log", str(named), "--grace", "1")
    _refused(res, named, f"owned by {user.name}")
    loose = paths.root / "loose.jsonl"
    loose.touch()
    os.chmod(loose, 0o666)
    _refused(_tool(paths, "logoff", sid, "--audit-log", str(loose)), loose,
             "writable by others")
    assert named.read_text() == "" and loose.read_text() == ""
    # Nothing was scheduled or done anywhere; the session is untouched.
    assert login.run("echo still-here").strip() == "still-here"
    assert _pending(paths) == []
    # The test's own private root-owned paths work (and the state is root's alone).
    _schedule(paths, sid, "5m")
    row = _row(paths, sid)
    assert row["worker_alive"]
    st = (paths.state / "state.db").stat()
    assert st.st_uid == 0 and not st.st_mode & 0o022
    # cancel stops a countdown that died without setting it off first (no resumption)
    for pid in (row["supervisor_pid"], row["worker_pid"]):
        os.kill(pid, signal.SIGKILL)
        assert procs.wait_until(lambda pid=pid: not procs.alive(pid) or procs.is_zombie(pid))
    res = _tool(paths, "sessionctl", "cancel", sid)
    assert res.returncode == 0 and "resumed" not in res.stderr, res.stderr
    assert _pending(paths) == [] and login.run("echo alive").strip() == "alive"
    assert "logoff-worker-resumed" not in paths.names()
