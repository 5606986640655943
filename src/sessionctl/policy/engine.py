"""Policy decisions: pure functions from (policy, sessions, readings, time, state) to
decisions. No I/O here besides user/group lookups: what the daemon measured of each session
(activity sources, what it holds) comes in as ``Readings``."""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from ..durations import format_duration
from ..host import groups_of
from ..model import Session, State
from ..quantities import format_size
from .config import PRESSURE_RULE, Policy, Pressure, Rule


class Pending(Protocol):
    """What the decisions need of a pending logoff (actions.schedule.PendingLogoff)."""

    @property
    def reason(self) -> str: ...


P = TypeVar("P", bound=Pending)

POLICY_REASON = "policy:"


@dataclass(frozen=True)
class Readings:
    """What was measured of one session (by policy/measure.py through linux/ readers).

    ``last_active``: epoch seconds each activity source last saw the session active
    ("output", "clients", "forwards"; "input" comes from ``Session.idle_seconds``).
    ``cpu_active_at``: for each ``cpu_active`` threshold in use, when the session last
    used more than that share of a core. Figures are None when not measured.
    """

    last_active: Mapping[str, float] = field(default_factory=dict)
    cpu_active_at: Mapping[float, float] = field(default_factory=dict)
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    pss_bytes: int | None = None
    processes: int | None = None
    clients: tuple[str, ...] = ()  # who is connected ("tmux client pts/4 (session 12)")

    def held(self) -> dict[str, object]:
        """What the session holds, for JSON."""
        return {"rss_bytes": self.rss_bytes, "pss_bytes": self.pss_bytes,
                "cpu_percent": None if self.cpu_percent is None else round(self.cpu_percent, 1),
                "processes": self.processes}


NO_READINGS = Readings()


@dataclass(frozen=True)
class Activity:
    """A session's latest activity under a list of sources: when, and which source."""

    at: float  # epoch seconds
    source: str
    idle: float  # seconds since

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "at": round(self.at, 1), "idle_seconds": round(self.idle, 1)}


@dataclass
class Decision:
    """What the policy wants for one session now, and why."""

    session: Session
    action: str  # warn, logoff, disconnect, cancel, resume, wait, pending, skip, none
    reason: str
    rule: Rule | None = None
    notice: float = 0.0  # warn: seconds until the sign-out
    activity: Activity | None = None  # the latest activity under the rule's sources
    readings: Readings = NO_READINGS

    def to_dict(self) -> dict[str, object]:
        return {
            "session": self.session.id,
            "user": self.session.user,
            "state": self.session.state.value,
            "action": self.action,
            "rule": self.rule.name if self.rule else None,
            "reason": self.reason,
            "notice": self.notice or None,
            "activity": self.activity.to_dict() if self.activity else None,
            "held": self.readings.held(),
        }


def _any(patterns: tuple[str, ...], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def selects(rule: Rule, s: Session, groups: set[str]) -> bool:
    """Does the rule apply to the session (users/groups: either; types, hosts: must)?"""
    if rule.users or rule.groups:
        by_user = _any(rule.users, s.user)
        by_group = any(_any(rule.groups, g) for g in groups)
        if not (by_user or by_group):
            return False
    if rule.types and not _any(rule.types, s.type):
        return False
    return not (rule.remote_hosts and not _any(rule.remote_hosts, s.remote_host or ""))


def holds_enough(rule: Rule, r: Readings) -> bool:
    """Does the session hold at least the rule's min_rss / min_pss / min_cpu?
    (An unmeasured figure never meets a minimum.)"""
    if rule.min_rss and (r.rss_bytes is None or r.rss_bytes < rule.min_rss):
        return False
    if rule.min_pss and (r.pss_bytes is None or r.pss_bytes < rule.min_pss):
        return False
    return not (rule.min_cpu and (r.cpu_percent is None or r.cpu_percent < rule.min_cpu))


def exemption(rule: Rule, s: Session, groups: set[str]) -> str | None:
    if _any(rule.exempt_users, s.user):
        return f"user {s.user} is exempt"
    hit = sorted(g for g in groups if _any(rule.exempt_groups, g))
    return f"group {hit[0]} is exempt" if hit else None


def clients_of(s: Session) -> tuple[str, ...]:
    """Who is connected to the session right now (the "clients" activity source): tmux or
    screen clients attached to its multiplexers, sessions attached to it, a viewer of a
    remote desktop (VNC, RDP) while the session is Active."""
    out = []
    for m in s.multiplexers:
        for c in m.clients:
            where = f" (session {c.session_id})" if c.session_id else ""
            out.append(f"{m.kind} client {c.tty or 'pid ' + str(c.pid)}{where}")
        if m.attached and not m.clients:
            out.append(f"{m.kind} {m.name or m.pid} attached")
    out.extend(f"attached from session {sid}" for sid in s.attached_from
               if not any(f"(session {sid})" in x for x in out))
    if s.protocol in ("vnc", "rdp") and s.state is State.ACTIVE:
        out.append(f"{s.protocol} viewer" + (f" {s.client_address}" if s.client_address else ""))
    return tuple(out)


def latest_activity(rule: Rule, s: Session, r: Readings, now: float) -> Activity | None:
    """The most recent activity of ``s`` among the rule's sources (None: none known).

    input: the last input on the session's terminal or desktop (``idle_seconds``); output,
    clients, forwards: when the daemon last saw them (``r.last_active``); cpu: when the
    session last used more than ``rule.cpu_active`` percent of a core."""
    found: list[tuple[float, str]] = []
    for source in rule.activity:
        if source == "input":
            at = None if s.idle_seconds is None else now - s.idle_seconds
        elif source == "cpu":
            at = r.cpu_active_at.get(rule.cpu_active)
        else:
            at = r.last_active.get(source)
        if at is not None:
            found.append((min(at, now), source))
    if not found:
        return None
    at, source = max(found)
    return Activity(at, source, now - at)


def due_in(
    rule: Rule, s: Session, now: float, disc_since: float | None,
    activity: Activity | None = None,
) -> tuple[float, str] | None:
    """Seconds until the rule's limit is reached (negative: passed), and what is measured."""
    if rule.kind in ("idle_limit", "pressure"):
        if s.state is not State.ACTIVE or activity is None:
            return None
        via = "" if activity.source == "input" else f" (last {activity.source})"
        return rule.limit - activity.idle, f"idle {format_duration(activity.idle)}{via}"
    if rule.kind == "disc_limit":
        if s.state is not State.DISC or disc_since is None:
            return None
        return rule.limit - (now - disc_since), f"disconnected {format_duration(now - disc_since)}"
    if s.login_time is None:
        return None
    age = now - s.login_time.timestamp()
    return rule.limit - age, f"logged in {format_duration(age)}"


def decide(
    policy: Policy,
    sessions: list[Session],
    now: float,
    disc_since: dict[str, float],
    pending: Mapping[str, P],
    worker_alive: Callable[[P], bool],
    groups: Callable[[str], set[str]] = groups_of,
    readings: Mapping[str, Readings] | None = None,
    pressure_level: float | None = None,
) -> list[Decision]:
    """One decision per session (see docs/policy.md for the rules of the game).

    ``readings``: what was measured of each session (activity sources, holdings);
    ``pressure_level``: the current value of ``[pressure] measure`` (None: no reading).
    """
    readings = readings or {}
    groups = functools.cache(groups)  # one group lookup per user and tick, not per session
    out = []
    for s in sessions:
        r = readings.get(s.id, NO_READINGS)
        gs = groups(s.user)
        p = pending.get(s.id)
        ours = p is not None and p.reason.startswith(POLICY_REASON)
        if p is not None and ours and _rule_of(p) == PRESSURE_RULE and policy.pressure:
            out.append(_pressure_pending(policy.pressure, s, r, p, now, pressure_level,
                                         worker_alive))
            continue
        # A warned session keeps its rule even if its holdings drop below the minimum.
        rules = [x for x in policy.rules if selects(x, s, gs)
                 and ((p is not None and ours and _rule_of(p) == x.name)
                      or holds_enough(x, r))]
        if not rules:
            out.append(Decision(s, "none", "no rule selects this session", readings=r))
            continue
        exempt = [x for x in (exemption(x, s, gs) for x in rules) if x]
        if exempt and len(exempt) == len(rules):
            out.append(Decision(s, "skip", exempt[0], rules[0], readings=r))
            continue
        timed: list[tuple[float, str, Rule, Activity | None]] = []
        for x in rules:
            if exemption(x, s, gs):
                continue
            act = latest_activity(x, s, r, now)
            due = due_in(x, s, now, disc_since.get(s.id), act)
            if due is not None:
                timed.append((due[0], due[1], x, act))
        if p is not None:
            out.append(_with_pending(s, p, ours, timed, worker_alive, r))
            continue
        if not timed:
            out.append(Decision(s, "none", "no limit applies (no activity clock, not Disc, "
                                "or no login time)", rules[0], readings=r))
            continue
        left, measured, rule, act = min(timed, key=lambda t: t[0])
        limit = f"{rule.kind.replace('_', ' ')} {format_duration(rule.limit)}"
        if rule.on_limit == "disconnect" and s.multiplexers:
            # the work is kept (tmux/screen): no warning, the connection ends at the limit
            if left <= 0:
                d = Decision(s, "disconnect", f"{measured}, over the {limit}", rule)
            else:
                d = Decision(s, "wait", f"{measured}; disconnect in {format_duration(left)}",
                             rule)
        elif rule.kind == "disc_limit":
            if left <= 0:
                d = Decision(s, "logoff", f"{measured}, over the {limit}", rule)
            else:
                d = Decision(s, "wait", f"{measured}; Disc limit in {format_duration(left)}",
                             rule)
        elif left <= rule.warn_before:
            d = Decision(s, "warn", f"{measured}, {limit}", rule, notice=rule.warn_before)
        else:
            d = Decision(s, "wait", f"{measured}; warning in "
                         f"{format_duration(left - rule.warn_before)}", rule)
        d.activity, d.readings = act, r
        out.append(d)
    if policy.pressure is not None:
        out = pressure_picks(policy.pressure, out, pending, now, pressure_level, groups)
    return out


def _rule_of(p: Pending) -> str:
    return p.reason[len(POLICY_REASON):]


def _with_pending(s: Session, p: P, ours: bool,
                  timed: list[tuple[float, str, Rule, Activity | None]],
                  worker_alive: Callable[[P], bool], r: Readings) -> Decision:
    if not ours:
        return Decision(s, "pending", "a logoff scheduled by an admin is pending", readings=r)
    rule_name = _rule_of(p)
    still = [t for t in timed if t[2].name == rule_name]
    act = still[0][3] if still else None
    if not still or (still[0][2].kind == "idle_limit" and still[0][0] > still[0][2].warn_before):
        why = "active again" if still or not timed else "the rule no longer applies"
        if act is not None:
            why += f" ({act.source})"
        return Decision(s, "cancel", why, still[0][2] if still else None, activity=act,
                        readings=r)
    if not worker_alive(p):
        return Decision(s, "resume", "its countdown worker is not running", still[0][2],
                        activity=act, readings=r)
    return Decision(s, "pending", "warned; sign-out pending", still[0][2], activity=act,
                    readings=r)


# -- memory pressure ---------------------------------------------------------------------

def pressure_above(pressure: Pressure, level: float | None) -> bool:
    return level is not None and level > pressure.above


def _pressure_idle(pressure: Pressure, s: Session, r: Readings,
                   now: float) -> tuple[bool, Activity | None]:
    """Is ``s`` idle enough to be chosen under pressure? Active sessions: their latest
    activity (under [pressure] activity) is at least idle_after ago. Disc sessions (nobody
    connected): unless a source saw activity within idle_after."""
    act = latest_activity(pressure.rule, s, r, now)
    if s.state is State.DISC:
        return act is None or act.idle >= pressure.rule.limit, act
    if s.state is not State.ACTIVE or act is None:
        return False, act  # no activity clock: never taken for idle
    return act.idle >= pressure.rule.limit, act


def _pressure_pending(pressure: Pressure, s: Session, r: Readings, p: P, now: float,
                      level: float | None, worker_alive: Callable[[P], bool]) -> Decision:
    idle, act = _pressure_idle(pressure, s, r, now)
    rule = pressure.rule
    if not idle:
        why = "active again" + (f" ({act.source})" if act else "")
        return Decision(s, "cancel", why, rule, activity=act, readings=r)
    if level is not None and not pressure_above(pressure, level):
        return Decision(s, "cancel", f"memory pressure fell ({pressure.measure} {level:.2f}, "
                        f"limit {pressure.above:g})", rule, activity=act, readings=r)
    if not worker_alive(p):
        return Decision(s, "resume", "its countdown worker is not running", rule,
                        activity=act, readings=r)
    return Decision(s, "pending", "warned under memory pressure; sign-out pending", rule,
                    activity=act, readings=r)


def _held(pressure: Pressure, r: Readings) -> int:
    if pressure.rank == "pss" and r.pss_bytes is not None:
        return r.pss_bytes
    return r.rss_bytes or 0


def pressure_picks(
    pressure: Pressure,
    decisions: list[Decision],
    pending: Mapping[str, Pending],
    now: float,
    level: float | None,
    groups: Callable[[str], set[str]] = groups_of,
) -> list[Decision]:
    """While pressure is above its limit: choose the largest idle holders (at most
    ``at_once`` sign-outs under way at a time) among sessions nothing else is doing
    anything with; warn the Active ones (notice: [pressure] warn_before), log off the
    Disc ones (nobody to warn). Exempt and active sessions are never chosen."""
    if not pressure_above(pressure, level):
        return decisions
    under_way = sum(1 for p in pending.values() if _rule_of(p) == PRESSURE_RULE)
    room = pressure.at_once - under_way
    if room <= 0:
        return decisions
    rule = pressure.rule
    candidates = []
    for i, d in enumerate(decisions):
        s = d.session
        if d.action not in ("none", "wait") or s.id in pending:
            continue
        gs = groups(s.user)
        if not selects(rule, s, gs) or exemption(rule, s, gs) or not holds_enough(rule, d.readings):
            continue
        if d.rule is not None and exemption(d.rule, s, gs):
            continue
        idle, act = _pressure_idle(pressure, s, d.readings, now)
        if idle:
            candidates.append((-_held(pressure, d.readings), -(act.idle if act else 0), i, act))
    out = list(decisions)
    for _, _, i, act in sorted(candidates)[:room]:
        d = decisions[i]
        s = d.session
        held = format_size(_held(pressure, d.readings))
        quiet = f"idle {format_duration(act.idle)}" if act else "no activity seen"
        why = (f"memory pressure {pressure.measure} {level:.2f} over {pressure.above:g}; "
               f"{quiet}, holds {held} {pressure.rank.upper()}")
        if s.state is State.DISC:
            out[i] = replace(d, action="logoff", reason=why, rule=rule, activity=act)
        else:
            out[i] = replace(d, action="warn", reason=why, rule=rule, activity=act,
                             notice=rule.warn_before)
    return out
