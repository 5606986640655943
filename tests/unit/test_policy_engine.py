"""The policy engine on constructed sessions and readings: activity sources, resource
minimums, memory pressure (pure logic; the real thing is in tests/real/)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sessionctl.model import Multiplexer, MuxClient, Session, State
from sessionctl.policy.config import parse
from sessionctl.policy.engine import Readings, clients_of, decide, latest_activity

NOW = 1_700_000_000.0
MB = 1 << 20


def session(sid: str, *, user: str = "root", idle: float | None = 3600.0,
            state: State = State.ACTIVE, **kw: object) -> Session:
    return Session(id=sid, name=f"pts/{sid}", user=user, uid=0, state=state, type="ssh",
                   idle_seconds=idle, login_time=datetime.fromtimestamp(NOW - 7200),
                   ttys=(f"pts/{sid}",), **kw)  # type: ignore[arg-type]


@dataclass
class Pending:
    reason: str
    alive: bool = True


def run(text: str, sessions: list[Session], readings: dict[str, Readings] | None = None,
        pending: dict[str, Pending] | None = None, level: float | None = None):
    policy = parse("[defaults]\nexempt_users = []\n" + text, "p.toml", probe=False)
    return {d.session.id: d for d in decide(
        policy, sessions, NOW, {}, dict(pending or {}), lambda p: p.alive,
        groups=lambda u: set(), readings=readings or {}, pressure_level=level)}


RULE = '[[rule]]\nname = "idle"\nidle_limit = "30m"\nwarn_before = "5m"\n'


def test_output_keeps_a_printing_job_active_only_when_asked() -> None:
    s = session("1", idle=3600)
    printing = {"1": Readings(last_active={"output": NOW - 8})}
    assert run(RULE, [s], printing)["1"].action == "warn"
    d = run(RULE + 'activity = ["input", "output"]\n', [s], printing)["1"]
    assert d.action == "wait" and d.activity is not None
    assert d.activity.source == "output" and round(d.activity.idle) == 8
    assert d.to_dict()["activity"] == {"source": "output", "at": NOW - 8, "idle_seconds": 8.0}


def test_cpu_counts_at_its_threshold() -> None:
    s = session("1")
    rule = RULE + 'activity = ["input", "cpu"]\ncpu_active = "20%"\n'
    busy = {"1": Readings(cpu_active_at={20.0: NOW}, cpu_percent=97.0)}
    assert run(rule, [s], busy)["1"].action == "wait"
    other_threshold = {"1": Readings(cpu_active_at={5.0: NOW}, cpu_percent=7.0)}
    assert run(rule, [s], other_threshold)["1"].action == "warn"


def test_clients_and_forwards() -> None:
    tmux = Multiplexer("tmux", 99, "/tmp/tmux-0/default", attached=True,
                       clients=(MuxClient(4242, "pts/9", "root", "77"),), terminals=("pts/5",))
    s = session("1", multiplexers=(tmux,), attached_from=("77",))
    assert clients_of(s) == ("tmux client pts/9 (session 77)",)
    vnc = session("2", protocol="vnc", client_address="127.0.0.1")
    assert clients_of(vnc) == ("vnc viewer 127.0.0.1",)
    assert clients_of(session("3", protocol="vnc", state=State.DISC)) == ()
    rule = RULE + 'activity = ["input", "clients", "forwards"]\n'
    got = run(rule, [s, session("4")], {"1": Readings(last_active={"clients": NOW}),
                                         "4": Readings(last_active={"forwards": NOW - 30})})
    assert got["1"].action == "wait" and got["1"].activity.source == "clients"
    assert got["4"].action == "wait" and got["4"].activity.source == "forwards"


def test_no_activity_clock_selects_nothing() -> None:
    s = session("1", idle=None)
    rule = RULE + 'activity = ["cpu"]\n'
    assert run(rule, [s])["1"].action == "none"
    assert latest_activity(parse(RULE, probe=False).rules[0], s, Readings(), NOW) is None


def test_min_rss_selects_only_big_holders_and_keeps_a_warned_one() -> None:
    big, small = session("1"), session("2")
    readings = {"1": Readings(rss_bytes=500 * MB), "2": Readings(rss_bytes=30 * MB)}
    rule = RULE + 'min_rss = "200M"\n'
    got = run(rule, [big, small], readings)
    assert got["1"].action == "warn" and got["2"].action == "none"
    assert got["1"].to_dict()["held"]["rss_bytes"] == 500 * MB
    shrunk = {"1": Readings(rss_bytes=100 * MB)}
    assert run(rule, [big], shrunk, {"1": Pending("policy:idle")})["1"].action == "pending"
    assert run(rule, [small], {}, {})["2"].action == "none"  # unmeasured: not selected


def test_min_cpu_and_overlapping_rules_by_holdings() -> None:
    text = (RULE + 'min_cpu = "50%"\n' + '[[rule]]\nname = "all"\nidle_limit = "8h"\n')
    burner, quiet = session("1"), session("2")
    got = run(text, [burner, quiet], {"1": Readings(cpu_percent=99.0),
                                      "2": Readings(cpu_percent=0.0)})
    assert got["1"].action == "warn" and got["1"].rule.name == "idle"
    assert got["2"].action == "wait" and got["2"].rule.name == "all"


def test_active_again_names_the_source() -> None:
    s = session("1", idle=3600)
    d = run(RULE + 'activity = ["input", "output"]\n', [s],
            {"1": Readings(last_active={"output": NOW - 3})}, {"1": Pending("policy:idle")})["1"]
    assert d.action == "cancel" and d.reason == "active again (output)"


PRESSURE = ('[[rule]]\nname = "idle"\nidle_limit = "8h"\n[pressure]\nabove = 10\n'
            'idle_after = "10m"\nwarn_before = "30s"\n')


def pressure_world():
    sessions = [session("big", idle=1200), session("mid", idle=1200),
                session("active", idle=5), session("young", idle=60),
                session("disc", idle=None, state=State.DISC)]
    readings = {"big": Readings(rss_bytes=900 * MB), "mid": Readings(rss_bytes=400 * MB),
                "active": Readings(rss_bytes=4000 * MB), "young": Readings(rss_bytes=3000 * MB),
                "disc": Readings(rss_bytes=100 * MB)}
    return sessions, readings


def test_pressure_picks_the_largest_idle_holder_never_an_active_one() -> None:
    sessions, readings = pressure_world()
    got = run(PRESSURE, sessions, readings, level=25.0)
    warned = [sid for sid, d in got.items() if d.action in ("warn", "logoff")]
    assert warned == ["big"]
    d = got["big"]
    assert d.rule.name == "memory-pressure" and d.notice == 30
    assert "memory pressure some avg10 25.00 over 10" in d.reason and "900 MiB RSS" in d.reason
    assert got["active"].action == "wait" and got["young"].action == "wait"


def test_pressure_one_at_a_time_then_next_and_disc_logged_off() -> None:
    sessions, readings = pressure_world()
    pending = {"big": Pending("policy:memory-pressure")}
    got = run(PRESSURE, sessions, readings, pending, level=25.0)
    assert got["big"].action == "pending"
    assert [d.action for d in got.values()].count("warn") == 0  # at_once = 1: wait for it
    sessions = [s for s in sessions if s.id != "big"]
    got = run(PRESSURE, sessions, readings, level=25.0)
    assert got["mid"].action == "warn"
    got = run(PRESSURE + "at_once = 3\n", sessions, readings, level=25.0)
    assert got["mid"].action == "warn" and got["disc"].action == "logoff"
    assert got["active"].action == "wait" and got["young"].action == "wait"


def test_pressure_below_or_unknown_does_nothing_and_cancels_when_it_falls() -> None:
    sessions, readings = pressure_world()
    for level in (9.99, 10.0, None):
        got = run(PRESSURE, sessions, readings, level=level)
        assert not [d for d in got.values() if d.action in ("warn", "logoff")]
    pending = {"big": Pending("policy:memory-pressure")}
    d = run(PRESSURE, sessions, readings, pending, level=3.0)["big"]
    assert d.action == "cancel" and d.reason.startswith("memory pressure fell")
    active = [session("big", idle=2)]
    assert run(PRESSURE, active, readings, pending, level=30.0)["big"].action == "cancel"
    pending = {"big": Pending("policy:memory-pressure", alive=False)}
    assert run(PRESSURE, sessions, readings, pending, level=30.0)["big"].action == "resume"


def test_pressure_respects_exemptions_and_activity_sources() -> None:
    sessions, readings = pressure_world()
    got = run(PRESSURE + 'exempt_users = ["root"]\n', sessions, readings, level=50.0)
    assert not [d for d in got.values() if d.action in ("warn", "logoff")]
    busy = {**readings, "big": Readings(rss_bytes=900 * MB, last_active={"output": NOW - 5})}
    got = run(PRESSURE + 'activity = ["input", "output"]\n', sessions, busy, level=50.0)
    assert got["big"].action == "wait" and got["mid"].action == "warn"
