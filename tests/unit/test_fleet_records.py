"""Remote answers checked against their schema; reasons short; the ssh client's helpers."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sessionctl.fleet import payload
from sessionctl.fleet.hosts import Host
from sessionctl.fleet.records import BadRecord, check_result, session_from_dict
from sessionctl.fleet.ssh import (
    SshOptions,
    _interpret,
    _reuse_paths,
    close_connections,
    default_control_dir,
)
from sessionctl.model import Multiplexer, MuxClient, ProcessRef, Session, State
from sessionctl.sanitize import one_line

TZ = timezone(timedelta(hours=2))


def full_session() -> Session:
    return Session(
        id="42", name="pts/3", user="ann", uid=1001, state=State.DISC, type="tty",
        device="/dev/pts/3", remote_host="10.0.0.5", service="sshd",
        login_time=datetime(2026, 3, 1, 9, 30, tzinfo=TZ), idle_seconds=61.5, leader_pid=700,
        processes=(ProcessRef(700, 1, 1001, 5), ProcessRef(701, 700, 1001, 6)),
        console=False, ttys=("pts/3", "pts/4"), backend="procfs",
        logoff_at=datetime(2026, 3, 1, 18, 0, tzinfo=TZ), display=":1", protocol="ssh",
        remote=True, client_address="10.0.0.5", idle_source="tty",
        multiplexers=(Multiplexer("tmux", 800, "/tmp/tmux-1001/default", True,
                                  (MuxClient(900, "pts/4", "ann", "43", 1.5),), ("pts/5",)),),
        attached_from=("43",), extra={"class": "user"},
    )


def test_every_field_of_the_local_json_comes_back() -> None:
    local = full_session().to_dict()
    wire = json.loads(json.dumps([local]))
    assert check_result("query", wire) == wire
    back = session_from_dict(wire[0])
    assert back.to_dict() == local
    assert back.logoff_at == datetime(2026, 3, 1, 18, 0, tzinfo=TZ)
    assert back.multiplexers[0].clients[0].session_id == "43"


@pytest.mark.parametrize(("change", "reason"), [
    ({"state": "Bogus"}, "session '42' state is not a session state"),
    ({"uid": "x"}, "session '42' uid is not an integer"),
    ({"uid": True}, "session '42' uid is not an integer"),
    ({"pids": 5}, "session '42' pids is not a list"),
    ({"pids": [1, "2"]}, "session '42' pids[1] is not an integer"),
    ({"pids": [0]}, "session '42' pids[0] is not a process id"),
    ({"login_time": "yesterday"}, "session '42' login_time is not an ISO date and time"),
    ({"logoff_at": 5}, "session '42' logoff_at is not text"),
    ({"idle_seconds": "abc"}, "session '42' idle_seconds is not a number"),
    ({"idle_seconds": -1}, "session '42' idle_seconds is not a finite number >= 0"),
    ({"idle_seconds": 10**400}, "session '42' idle_seconds is not a finite number >= 0"),
    ({"ttys": "pts/3"}, "session '42' ttys is not a list"),
    ({"name": "x" * 5000}, "session '42' name is longer than 4096 characters"),
    ({"multiplexers": [{"kind": "tmux"}]}, "session '42' multiplexers[0] has no pid"),
    ({"remote": "yes"}, "session '42' remote is not true or false"),
    ({"id": 42}, "answer[0] id is not text"),
])
def test_a_record_that_does_not_fit_is_refused_with_a_short_reason(change, reason) -> None:
    record = {**full_session().to_dict(), **change}
    with pytest.raises(BadRecord) as err:
        check_result("query", [record])
    assert str(err.value) == reason


@pytest.mark.parametrize(("op", "result", "reason"), [
    ("query", {"id": "1"}, "answer is not a list"),
    ("query", ["x"], "answer[0] is not an object"),
    ("logoff", [{"outcome": "logged-off"}], "answer[0] has no session"),
    ("logoff", [{"session": "3", "outcome": "logged-off", "seconds": "fast"}],
     "session '3' seconds is not a number"),
    ("logoff", [{"session": {"id": "3", "uid": 1}, "outcome": "would-log-off"}],
     "session '3' has no state"),
    ("msg", [], "answer is not an object"),
    ("msg", {"sessions": [], "deliveries": [{"session_id": "1"}]},
     "answer deliveries[0] has no status"),
    ("msg", {"sessions": [], "deliveries": [], "acknowledged_by": {"1": 2}},
     "answer acknowledged_by '1' is not text"),
    ("reboot", [], "no schema for 'reboot' answers"),
])
def test_logoff_items_and_msg_reports_are_checked(op, result, reason) -> None:
    with pytest.raises(BadRecord) as err:
        check_result(op, result)
    assert str(err.value) == reason


def answer(body: object) -> bytes:
    return json.dumps(body).encode() + b"\n"


def test_interpret_turns_bad_answers_into_that_hosts_error() -> None:
    have = payload.HAVE
    ok = _interpret("h", "query", 0, have, answer({"ok": True, "result": []}), "")
    assert ok.ok and ok.result == []
    cases = {
        answer({"ok": True, "result": [{"id": "1", "uid": "x", "state": "Active"}]}):
            "bad answer: session '1' uid is not an integer",
        answer([1, 2]): "bad answer: not a sessionctl answer",
        answer({"ok": "yes"}): "bad answer: not a sessionctl answer",
        b"[" * 100_000: "bad answer: not JSON (exit 0)",
        answer({"ok": False}): "the remote side failed without a message",
    }
    for out, error in cases.items():
        r = _interpret("h", "query", 0, have, out, "")
        assert (r.status, r.error, r.result) == ("error", error, None)
    long = _interpret("h", "query", 0, have, answer(
        {"ok": False, "error": "\x1b[31m" + "A" * 1074 + "\x1b]0;t\x07\nB"}), "")
    assert long.error is not None and len(long.error) == 160 and long.error.endswith("...")
    assert long.error.isprintable() and "\x1b" not in long.error
    empty = _interpret("h", "query", 1, have, b"", "Authenticated to h ([1.2.3.4]:22).\n")
    assert empty.error == "no answer from remote sessionctl: exit 1"  # ssh's log is no reason


def test_one_line() -> None:
    assert one_line("a\n\n b\x1b[2J\tc") == "a b c"
    assert one_line("x" * 300, 10) == "xxxxxxx..."
    assert one_line(b"\xff ok") == "\ufffd ok"


def test_a_runtime_dir_not_ours_is_not_used_for_control_sockets(tmp_path, monkeypatch) -> None:
    foreign = tmp_path / "run-user"
    foreign.mkdir(mode=0o755)
    if os.geteuid() == 0:
        os.chown(foreign, 65534, 65534)
    else:
        foreign.chmod(0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(foreign))
    assert not str(default_control_dir()).startswith(str(foreign))  # ~/.cache or /tmp
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(mine))
    assert default_control_dir() == mine / "sessionctl-ssh"


def test_close_connections_in_the_fanout_window_and_cleans_up(tmp_path) -> None:
    log = tmp_path / "log"
    fake = tmp_path / "ssh"
    fake.write_text(f"#!/bin/sh\necho start $(date +%s.%N) >> {log}\nsleep 0.3\n"
                    f"echo end $(date +%s.%N) >> {log}\n")
    fake.chmod(0o755)
    control = tmp_path / "cm"
    opts = SshOptions(ssh=str(fake), fanout=3, control_dir=str(control))
    hosts = [Host(f"node{i:02d}") for i in range(12)]
    for host in hosts:  # what reuse leaves behind per host
        for path in _reuse_paths(host, opts):
            path.touch()
    assert close_connections(hosts, opts) == {h.name: True for h in hosts}
    events = sorted((float(t), kind) for kind, t in (ln.split() for ln in
                                                    log.read_text().splitlines()))
    running = peak = 0
    for _, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert len(events) == 24 and peak <= 3, events
    assert sorted(p.name for p in Path(control).iterdir()) == []
