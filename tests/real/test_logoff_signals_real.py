"""logoff() of the caller's own session, from its main thread and from another thread.

A library call leaves its caller as it found it: the signal dispositions after the call
are the ones before (a Python handler of its own included), and the call works from any
thread (a TUI runs its actions in worker threads). Run inside real ssh logins: the
caller is a process of the session it signs out, started with setsid so that only the
sign-out itself (not the terminal's hangup) could reach it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lab import adversary, procs, tool_path
from lab.checks import left_in, live

pytestmark = pytest.mark.real



@pytest.mark.parametrize("where", ["main", "thread"])
def test_own_session_sign_out_leaves_the_caller_as_it_was(make_user, open_login,
                                                          where) -> None:
    user = make_user()
    login, bystander = open_login(user), open_login(user)
    login.run("sleep 900 >/dev/null 2>&1 & nohup sleep 900 >/dev/null 2>&1 &")
    login.run("sh -c 'trap \"\" HUP TERM; exec sleep 900' >/dev/null 2>&1 &")
    other = {p: procs.start_time_of(p) for p in bystander.pids()}
    script = adversary.install(user, "own_session_caller.py")
    result = Path(user.home, "result.json")
    asid = login.audit_session_id
    login.run(f"setsid {tool_path('python')} {script} {result} {where} "
              "</dev/null >/dev/null 2>&1 &")
    assert procs.wait_until(result.exists, 60), live(left_in(asid))
    data = json.loads(result.read_text())
    assert "error" not in data, data["error"]
    assert data["outcome"] == "logged-off" and data["remaining"] == [], data
    assert data["after"] == data["before"]
    assert data["before"]["python"]["SIGHUP"].startswith("<function mine")
    # everything but the caller ended; the caller then exits by itself
    assert procs.wait_until(lambda: not live(left_in(asid)), 10), live(left_in(asid))
    for pid, start in other.items():
        assert procs.start_time_of(pid) == start and procs.alive(pid)


def test_top_signs_out_its_own_session(make_user, open_login) -> None:
    """`sessionctl top` runs its actions in worker threads: signing out the session it
    runs in works, and top ends with it."""
    user = make_user()
    login = open_login(user)
    login.run("sleep 900 >/dev/null 2>&1 & nohup sleep 900 >/dev/null 2>&1 &")
    asid = login.audit_session_id
    login.send(f"TERM=xterm-256color {tool_path('sessionctl')} top {asid}\n")
    login.wait_output("USER / SESSION", 30)
    login.wait_output(user.name, 15)
    # top blocks on a full terminal: read what it shows while waiting (read_available)
    login.read_available(1.0)  # the first refresh puts the cursor on the (only) user row
    login.send("l")
    login.wait_output("Sign out now", 15)
    login.read_available(1.0)  # the dialog focuses Cancel once mounted
    login.send("\t")  # Tab: from Cancel on to "Sign out now" (the focus wraps round;
    # one byte: an escape sequence split on the way could read as Escape, i.e. Cancel)
    login.read_available(1.0)
    login.send("\r")
    shown: list[str] = []

    def ended() -> bool:
        shown.append(login.read_available(0.1))
        return not live(left_in(asid))

    assert procs.wait_until(ended, 40), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", " ",
                                               "".join(shown))[-3000:]
    log = Path(user.home, ".local/state/sessionctl/audit.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    done = [r for r in records if r.get("event") == "logoff" and r.get("session") == str(asid)]
    assert done and done[-1]["outcome"] == "logged-off" and done[-1]["own_session"], done
