"""Policy decisions: pure functions from (policy, sessions, time, state) to decisions."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ..durations import format_duration
from ..host import groups_of
from ..model import Session, State
from .config import Policy, Rule


class Pending(Protocol):
    """What the decisions need of a pending logoff (actions.schedule.PendingLogoff)."""

    @property
    def reason(self) -> str: ...


P = TypeVar("P", bound=Pending)

POLICY_REASON = "policy:"


@dataclass
class Decision:
    """What the policy wants for one session now, and why."""

    session: Session
    action: str  # warn, logoff, cancel, resume, wait, pending, skip, none
    reason: str
    rule: Rule | None = None
    notice: float = 0.0  # warn: seconds until the sign-out

    def to_dict(self) -> dict[str, object]:
        return {
            "session": self.session.id,
            "user": self.session.user,
            "state": self.session.state.value,
            "action": self.action,
            "rule": self.rule.name if self.rule else None,
            "reason": self.reason,
            "notice": self.notice or None,
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


def exemption(rule: Rule, s: Session, groups: set[str]) -> str | None:
    if _any(rule.exempt_users, s.user):
        return f"user {s.user} is exempt"
    hit = sorted(g for g in groups if _any(rule.exempt_groups, g))
    return f"group {hit[0]} is exempt" if hit else None


def due_in(
    rule: Rule, s: Session, now: float, disc_since: float | None
) -> tuple[float, str] | None:
    """Seconds until the rule's limit is reached (negative: passed), and what is measured."""
    if rule.kind == "idle_limit":
        if s.state is not State.ACTIVE or s.idle_seconds is None:
            return None
        return rule.limit - s.idle_seconds, f"idle {format_duration(s.idle_seconds)}"
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
) -> list[Decision]:
    """One decision per session (see docs/policy.md for the rules of the game)."""
    out = []
    for s in sessions:
        gs = groups(s.user)
        rules = [r for r in policy.rules if selects(r, s, gs)]
        p = pending.get(s.id)
        ours = p is not None and p.reason.startswith(POLICY_REASON)
        if not rules:
            out.append(Decision(s, "none", "no rule selects this session"))
            continue
        exempt = [x for x in (exemption(r, s, gs) for r in rules) if x]
        if exempt and len(exempt) == len(rules):
            out.append(Decision(s, "skip", exempt[0], rules[0]))
            continue
        timed: list[tuple[float, str, Rule]] = []
        for r in rules:
            if exemption(r, s, gs):
                continue
            d = due_in(r, s, now, disc_since.get(s.id))
            if d is not None:
                timed.append((d[0], d[1], r))
        if p is not None:
            out.append(_with_pending(s, p, ours, timed, worker_alive))
            continue
        if not timed:
            out.append(Decision(s, "none", "no limit applies (no idle time, not Disc, "
                                "or no login time)", rules[0]))
            continue
        left, measured, rule = min(timed, key=lambda t: t[0])
        limit = f"{rule.kind.replace('_', ' ')} {format_duration(rule.limit)}"
        if rule.kind == "disc_limit":
            if left <= 0:
                out.append(Decision(s, "logoff", f"{measured}, over the {limit}", rule))
            else:
                out.append(Decision(s, "wait", f"{measured}; Disc limit in "
                                    f"{format_duration(left)}", rule))
        elif left <= rule.warn_before:
            out.append(Decision(s, "warn", f"{measured}, {limit}", rule, notice=rule.warn_before))
        else:
            out.append(Decision(s, "wait", f"{measured}; warning in "
                                f"{format_duration(left - rule.warn_before)}", rule))
    return out


def _with_pending(
    s: Session,
    p: P,
    ours: bool,
    timed: list[tuple[float, str, Rule]],
    worker_alive: Callable[[P], bool],
) -> Decision:
    if not ours:
        return Decision(s, "pending", "a logoff scheduled by an admin is pending")
    rule_name = p.reason[len(POLICY_REASON):]
    still = [t for t in timed if t[2].name == rule_name]
    if not still or (still[0][2].kind == "idle_limit" and still[0][0] > still[0][2].warn_before):
        why = "active again" if still or not timed else "the rule no longer applies"
        return Decision(s, "cancel", why, still[0][2] if still else None)
    if not worker_alive(p):
        return Decision(s, "resume", "its countdown worker is not running", still[0][2])
    return Decision(s, "pending", "warned; sign-out pending", still[0][2])
