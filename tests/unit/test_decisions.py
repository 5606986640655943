"""The pure decision code, fast (the lab tests check the same on real sessions):
the policy's decide(), reminder marks, notice text, remote records, config lines."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest

from sessionctl.actions.schedule import (
    REMINDER_MARKS,
    PendingLogoff,
    due_reminder,
    marks_left,
    notice_text,
)
from sessionctl.fleet.records import BadRecord, check_result, session_from_dict, sessions_of
from sessionctl.model import Session, State
from sessionctl.policy.config import ConfigError, parse
from sessionctl.policy.engine import POLICY_REASON, decide

NOW = 1_800_000_000.0

POLICY = """\
[defaults]
warn_before = "5m"
exempt_users = ["root"]

[[rule]]
name = "idle"
idle_limit = "1h"
types = ["ssh"]

[[rule]]
name = "leftovers"
disc_limit = "2h"

[[rule]]
name = "long"
max_session = "12h"
types = ["x11"]
"""


def session(sid: str, *, user: str = "alice", state: State = State.ACTIVE, kind: str = "ssh",
            idle: float | None = None, age: float = 60.0) -> Session:
    login = datetime.fromtimestamp(NOW) - timedelta(seconds=age)
    return Session(sid, f"pts/{sid}", user, 1000, state, kind, idle_seconds=idle,
                   login_time=login.astimezone())


@dataclass
class Pending:
    reason: str
    alive: bool = True


def run(sessions: list[Session], disc_since: dict[str, float] | None = None,
        pending: dict[str, Pending] | None = None) -> dict[str, tuple[str, str]]:
    decisions = decide(parse(POLICY, "p.toml"), sessions, NOW, disc_since or {},
                       pending or {}, lambda p: p.alive, groups=lambda user: set())
    return {d.session.id: (d.action, d.rule.name if d.rule else "") for d in decisions}


def test_idle_rule_warns_within_warn_before_and_waits_before() -> None:
    got = run([session("1", idle=3600 - 299), session("2", idle=600), session("3", idle=None)])
    assert got == {"1": ("warn", "idle"), "2": ("wait", "idle"), "3": ("none", "idle")}


def test_disc_limit_counts_from_first_seen_disc_and_logs_off_without_warning() -> None:
    found = [session("4", state=State.DISC), session("5", state=State.DISC)]
    got = run(found, disc_since={"4": NOW - 7201, "5": NOW - 60})
    assert got == {"4": ("logoff", "leftovers"), "5": ("wait", "leftovers")}


def test_exempt_user_and_session_no_rule_selects() -> None:
    got = run([session("6", user="root", idle=99999), session("7", kind="tty", idle=99999)])
    assert got["6"][0] == "skip"
    assert got["7"] == ("none", "leftovers")  # selected by the Disc rule, and not Disc


def test_max_session_warns_the_old_desktop() -> None:
    got = run([session("8", kind="x11", age=12 * 3600 - 100)])
    assert got == {"8": ("warn", "long")}


def test_pending_warnings_cancelled_resumed_or_left_alone() -> None:
    ours = Pending(POLICY_REASON + "idle")
    found = [session("9", idle=5), session("10", idle=3500), session("11", idle=3500)]
    got = run(found, pending={"9": ours, "10": replace(ours, alive=False),
                              "11": Pending("admin said so")})
    assert got["9"] == ("cancel", "idle")  # the user came back: the warning is withdrawn
    assert got["10"] == ("resume", "idle")  # still due, its countdown worker died
    assert got["11"][0] == "pending"  # an admin's logoff is not the policy's to touch


def pending(logoff_in: float, *, last_mark: float | None = None, allowance: float = 0.0,
            message: str = "") -> PendingLogoff:
    at = NOW + logoff_in
    return PendingLogoff("42", "alice", 1000, "pts/3", at, at, allowance, message, "root", 0,
                         NOW, last_mark=last_mark)


def test_reminder_marks_one_per_mark_nearest_when_several_passed() -> None:
    assert marks_left(pending(7200)) == list(REMINDER_MARKS)
    assert due_reminder(pending(7200), NOW) is None  # more than an hour left
    assert due_reminder(pending(3599), NOW) == 3600.0
    assert due_reminder(pending(3599, last_mark=3600.0), NOW) is None  # already sent
    assert due_reminder(pending(250, last_mark=3600.0), NOW) == 300.0  # 30, 10, 5 passed
    assert marks_left(pending(250, last_mark=300.0)) == [60.0, 10.0]
    assert due_reminder(pending(-1), NOW) is None  # the deadline itself is not a reminder


def test_notice_text_says_when_why_and_how_to_postpone() -> None:
    first = notice_text(pending(600, allowance=1800, message="Kernel update"), NOW, "first")
    at = datetime.fromtimestamp(NOW + 600).strftime("%H:%M:%S")
    assert first.split("\n") == [
        f"Your session 42 will be signed out in 10 min (at {at}) by root.",
        "Kernel update",
        "Save your work now: all programs of this session will be ended.",
        "To postpone, run: sessionctl postpone [DURATION] (up to 30 min more).",
    ]
    reminder = notice_text(pending(60), NOW, "reminder")
    assert reminder.startswith("Reminder: your session 42 will be signed out in 1 min")
    assert "postpone" not in reminder  # nothing left to postpone
    moved = notice_text(pending(900, allowance=600), NOW, "postponed")
    assert moved.startswith("The sign-out of session 42 was postponed to")
    assert "Save your work" not in moved


def test_remote_records_parse_and_bad_ones_are_refused_with_a_reason() -> None:
    good = {"id": "1212", "name": "pts/2", "user": "ann", "uid": 1001, "state": "Disc",
            "type": "ssh", "login_time": "2026-11-22T04:09:00+00:00", "idle_seconds": 12.5,
            "leader_pid": 4242, "pids": [4242, 4243], "ttys": ["pts/2"], "scope": "s-1.scope",
            "logoff_at": "2026-11-22T05:00:00+00:00",
            "multiplexers": [{"kind": "tmux", "pid": 77, "clients": [{"pid": 78}]}]}
    s = session_from_dict(good)
    assert (s.id, s.user, s.uid, s.state, s.idle_seconds, s.leader_pid) == (
        "1212", "ann", 1001, State.DISC, 12.5, 4242)
    assert s.pids == [4242, 4243] and s.ttys == ("pts/2",) and s.extra == {"scope": "s-1.scope"}
    assert s.login_time is not None and s.login_time.year == 2026
    assert s.logoff_at is not None and s.logoff_at.hour == 5
    assert s.multiplexers[0].kind == "tmux" and s.multiplexers[0].clients[0].pid == 78
    for bad, why in (({**good, "uid": "1001"}, "uid is not an integer"),
                     ({**good, "state": "Sleeping"}, "state is not a session state"),
                     ({**good, "pids": [1, -2]}, "is not a process id"),
                     ({k: v for k, v in good.items() if k != "uid"}, "has no uid")):
        with pytest.raises(BadRecord, match=why):
            session_from_dict(bad)
    assert [x.id for x in sessions_of([good, "junk"])] == ["1212"]
    assert sessions_of({"error": "x"}) == []
    report = {"sessions": ["1"], "skipped": ["2"], "deliveries": [], "acknowledged": None,
              "acknowledged_by": {}, "waited_seconds": None}
    assert check_result("msg", report) is report  # msg's report, skipped sessions and all


@pytest.mark.parametrize(("text", "line"), [
    (POLICY + '\n[[rule]]\nname = "x"\nidle_limit = "soon"\n', 21),
    (POLICY.replace('max_session = "12h"', 'max_session = "12h"\nbogus = 1'), 17),
    (POLICY.replace('warn_before = "5m"', 'warn_before = "-5m"'), 2),
])
def test_config_errors_point_at_the_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, "p.toml")
    assert str(caught.value).startswith(f"p.toml:{line}:"), caught.value


def test_pending_logoff_records_round_trip_with_every_field() -> None:
    """Every field comes back (a record reader that listed fields by hand dropped the
    supervisor's when they were added); wrong types are refused, not passed on."""
    from sessionctl.errors import SessionctlError

    p = replace(pending(600, last_mark=3600.0, allowance=900, message="m"), worker_pid=41,
                worker_start=7, supervisor_pid=40, supervisor_start=6, backend="procfs",
                audit_log="/tmp/a", allow_console=True, grace=0.0)
    assert PendingLogoff.from_dict(p.to_dict()) == p
    data = {**p.to_dict(), "logoff_at": int(p.logoff_at)}  # JSON may hold an integer
    assert PendingLogoff.from_dict(data).logoff_at == float(int(p.logoff_at))
    for key, bad in (("uid", "0"), ("worker_pid", 1.5), ("allow_console", 1),
                     ("logoff_at", True)):
        with pytest.raises(SessionctlError, match=key):
            PendingLogoff.from_dict({**p.to_dict(), key: bad})
    with pytest.raises(SessionctlError, match="lacks scheduled_by"):
        PendingLogoff.from_dict({k: v for k, v in p.to_dict().items() if k != "scheduled_by"})
