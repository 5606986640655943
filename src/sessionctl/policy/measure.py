"""What the policy measures of each session: its activity sources and what it holds.

The readings come from the platform readers (linux/tty.py: terminal output times;
linux/sockets.py: SSH forwards' traffic; linux/pressure.py: PSI; actions/usage.py's
sampler: CPU and memory; the model: clients attached) and from state.db (sessionctl's own
terminal writes, and what was seen at earlier ticks). The decisions on them are
engine.py's. The linux/ readers are imported where they are used, so ``policy check``
with input-only rules also runs where they do not exist (Windows).

Sources measured at one moment ("cpu": over the interval since the last tick; "clients":
connected now) are remembered as "last seen active at", in state.db with the rest of the
per-session policy state, so a restarted daemon does not forget them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from .. import jsonvalues, state
from ..actions.usage import UsageSampler
from ..backends.base import Backend
from ..model import Session
from ..usage_model import SessionUsage, UsageSnapshot
from .config import Policy, Pressure
from .engine import Readings, clients_of

ACTIVE_KEY = "active"  # in the per-session policy memory: source → last seen active


def cpu_key(threshold: float) -> str:
    return f"cpu>{threshold:g}"


def session_lines(s: Session) -> list[str]:
    """Every terminal of the session: its own, and its multiplexers' panes."""
    from ..linux import tty

    lines = list(dict.fromkeys([*s.ttys, *(t for m in s.multiplexers for t in m.terminals)]))
    return [x for x in lines if tty.device_path(x)]


def output_at(s: Session, ours: dict[str, float]) -> float | None:
    """When a terminal of ``s`` was last written to by anything but sessionctl (its
    notices are remembered in ``ours``: line → when we wrote; a tty time not after it is
    ours); None if none is known."""
    from ..linux import tty

    best = None
    for line in session_lines(s):
        at = tty.output_time(line)
        if at is None or (line in ours and at <= ours[line]):
            continue
        best = at if best is None else max(best, at)
    return best


def forwards_at(sessions: Iterable[Session], now: float) -> dict[str, float]:
    """Session id → when one of its SSH port forwards last carried data (now minus the
    quietest forward socket's time since data), for sessions that have one."""
    from ..linux import sockets

    per_session: dict[str, dict[int, tuple[int, int]]] = {}
    for s in sessions:
        sshd = [(p.pid, p.uid) for p in s.processes if p.comm == "sshd"]
        if sshd:
            found = sockets.forward_sockets(sshd)
            if found:
                per_session[s.id] = found
    if not per_session:
        return {}
    traffic = sockets.traffic({k: v for f in per_session.values() for k, v in f.items()})
    out = {}
    for sid, inodes in per_session.items():
        quiet = [traffic[i].quiet_ms for i in inodes if i in traffic]
        if quiet:
            out[sid] = now - min(quiet) / 1000.0
    return out


@dataclass
class Measured:
    """One tick's measurements."""

    readings: dict[str, Readings]
    snapshot: UsageSnapshot | None  # None when nothing needed resource figures
    memory_changes: dict[str, dict[str, object]]  # session id → its new policy memory
    notes: list[str]


class Meter:
    """Measures sessions for a policy, tick after tick (keeps the CPU sampler's last
    reading: CPU shares are measured from one tick to the next)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._sampler: UsageSampler | None = None
        self._pss = False

    def sampler(self, pss: bool) -> UsageSampler:
        if self._sampler is None or self._pss != pss:
            self._sampler = UsageSampler(backend=self.backend, pss=pss, io=False)
            self._pss = pss
        return self._sampler

    def measure(self, policy: Policy, found: list[Session],
                memory: dict[str, dict[str, object]], now: float,
                usage: bool = False) -> Measured:
        """Readings for every session in ``found``; ``usage``: take resource figures even
        if no rule needs them (metrics)."""
        sources = policy.activity_sources
        notes: list[str] = []
        snapshot = None
        if usage or policy.needs_usage:
            snapshot = self.sampler(policy.needs_pss).sample(listing=found)
        by_id: dict[str, SessionUsage] = {u.session.id: u for u in snapshot.sessions} \
            if snapshot else {}
        ours: dict[str, float] = {}
        if "output" in sources:
            with contextlib.suppress(OSError, sqlite3.Error):
                ours = state.tty_writes()
        fwd: dict[str, float] = {}
        if "forwards" in sources:
            try:
                fwd = forwards_at(found, now)
            except OSError as exc:
                notes.append(f"forwards: cannot read socket traffic (sock_diag): {exc}")
        thresholds = {r.cpu_active for r in policy.all_rules if "cpu" in r.activity}
        readings: dict[str, Readings] = {}
        changes: dict[str, dict[str, object]] = {}
        for s in found:
            mem = memory.get(s.id, {})
            stored = jsonvalues.mapping(mem, ACTIVE_KEY)  # source → when last seen active
            seen = {k: float(v) for k, v in stored.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)}
            before = dict(seen)
            u = by_id.get(s.id)
            clients = clients_of(s) if "clients" in sources else ()
            now_active: dict[str, float | None] = {
                "output": output_at(s, ours) if "output" in sources else None,
                "clients": now if clients else None,
                "forwards": fwd.get(s.id),
            }
            if u is not None and snapshot is not None and snapshot.interval > 0:
                for t in thresholds:
                    now_active[cpu_key(t)] = now if u.cpu_percent > t else None
            for key, at in now_active.items():  # (a second's jitter is not news)
                if at is not None and at > float(seen.get(key, 0.0)) + 1.0:
                    seen[key] = at
            if seen != before:
                changes[s.id] = {**mem, ACTIVE_KEY: seen}
            readings[s.id] = Readings(
                last_active={k: float(v) for k, v in seen.items() if not k.startswith("cpu>")},
                cpu_active_at={t: float(seen[cpu_key(t)]) for t in thresholds
                               if cpu_key(t) in seen},
                cpu_percent=u.cpu_percent if u is not None and snapshot is not None
                and snapshot.interval > 0 else None,
                rss_bytes=u.rss_bytes if u is not None else None,
                pss_bytes=u.pss_bytes if u is not None else None,
                processes=len(u.processes) if u is not None else None,
                clients=clients,
            )
        return Measured(readings, snapshot, changes, notes)


def pressure_level(pressure: Pressure) -> tuple[float | None, str | None]:
    """The pressure measure now, or (None, why it cannot be read)."""
    from ..linux.pressure import read_pressure

    try:
        values = read_pressure(pressure.file)
    except (OSError, ValueError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        return None, f"cannot read memory pressure from {pressure.file}: {detail}"
    value = values.get(pressure.measure)
    if value is None:
        return None, f"{pressure.file} has no {pressure.measure!r}"
    return value, None
