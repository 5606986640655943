"""end_process on real sessions: only the named process, only where the caller may act."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab import procs

import sessionctl

pytestmark = pytest.mark.real


def bg(login, cmd: str) -> int:
    return int(login.run(f"{cmd} >/dev/null 2>&1 & echo $!").split()[-1])


def test_end_process_checks_then_ends_only_that_process(make_user, open_login, tmp_path) -> None:
    owner, other = make_user(), make_user()
    login = open_login(owner)
    victim, keep = bg(login, "sleep 600"), bg(login, "sleep 601")
    deaf = bg(login, "sh -c 'trap \"\" TERM; exec sleep 602'")
    start = procs.start_time_of(victim)
    log = tmp_path / "audit.jsonl"
    sid = str(login.audit_session_id)

    with pytest.raises(sessionctl.AccessDenied):
        sessionctl.end_process(victim, caller_uid=other.uid, audit_log=log)
    with pytest.raises(sessionctl.NoSuchSession, match="reused"):
        sessionctl.end_process(victim, start_ticks=start + 1, audit_log=log)
    with pytest.raises(sessionctl.NoSuchSession, match="not in session"):
        sessionctl.end_process(victim, session_id="999999999", audit_log=log)
    unused = next(p for p in range(int(Path("/proc/sys/kernel/pid_max").read_text()) - 1, 300, -1)
                  if not procs.alive(p))  # no process: in no session (never a real one)
    with pytest.raises(sessionctl.NoSuchSession, match="not in any login session"):
        sessionctl.end_process(unused, audit_log=log)
    assert procs.alive(victim)

    result = sessionctl.end_process(victim, start_ticks=start, session_id=sid,
                                    caller_uid=owner.uid, audit_log=log)
    assert (result.outcome, result.session_id, result.user) == ("ended", sid, owner.name)
    assert not procs.wait_gone([victim], 5)
    result = sessionctl.end_process(deaf, grace=0.5, audit_log=log)
    assert result.outcome == "killed"
    assert procs.alive(keep) and procs.alive(login.shell_pid)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["refused", "ended", "killed"]
    assert all(r["event"] == "end-process" for r in records)
