"""Prometheus metrics: sessions, idle times, per-user CPU and memory, and what the policy
did (warnings, postponements, sign-outs by rule and outcome, memory reclaimed).

``MetricsView`` is one moment's figures (pure data); ``Collector`` turns the latest view
plus the policy events kept in state.db into metric families (prometheus_client);
``render()`` gives the text exposition format (``sessionctl metrics``, node_exporter's
textfile collector) and ``serve()`` the daemon's /metrics endpoint.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from .. import state
from ..linux.pressure import PROC_PRESSURE_MEMORY, read_pressure
from ..model import Session
from ..usage_model import UsageSnapshot, session_status

PREFIX = "sessionctl"
POLICY_REASON = "policy:"


@dataclass(frozen=True)
class MetricsView:
    """The figures of one moment."""

    taken_at: float
    sessions: tuple[Session, ...]
    usage: UsageSnapshot | None = None
    pressure: dict[str, float] = field(default_factory=dict)  # "some avg10" → percent
    pending: dict[str, int] = field(default_factory=dict)  # rule → sign-outs pending


def _events() -> Iterator[tuple[str, str, str, int, int]]:
    yield from state.policy_event_counts()


def families(view: MetricsView | None) -> list[Metric]:
    """Every metric family for ``view`` (None: only the policy's counters)."""
    out: list[Metric] = []
    if view is not None:
        out += _session_families(view)
    warn = CounterMetricFamily(f"{PREFIX}_policy_warnings", "Policy warnings sent "
                               "(a sign-out announced), by rule.", labels=["rule"])
    post = CounterMetricFamily(f"{PREFIX}_policy_postpones", "Policy sign-outs postponed "
                               "by their users, by rule.", labels=["rule"])
    cancel = CounterMetricFamily(f"{PREFIX}_policy_cancels", "Policy warnings withdrawn "
                                 "(the user came back, or pressure fell), by rule.",
                                 labels=["rule"])
    signout = CounterMetricFamily(f"{PREFIX}_policy_signouts", "Policy sign-outs, by rule "
                                  "and outcome (logged-off, incomplete, failed).",
                                  labels=["rule", "outcome"])
    reclaimed = CounterMetricFamily(f"{PREFIX}_policy_reclaimed_rss_bytes", "Resident "
                                    "memory the signed-out sessions held just before their "
                                    "sign-out, by rule.", labels=["rule"])
    by_rule: Counter[str] = Counter()
    for event, rule, outcome, count, rss in _events():
        if event == "warn":
            warn.add_metric([rule], count)
        elif event == "postpone":
            post.add_metric([rule], count)
        elif event == "cancel":
            cancel.add_metric([rule], count)
        elif event == "signout":
            signout.add_metric([rule, outcome or "unknown"], count)
            by_rule[rule] += rss
    for rule, rss in sorted(by_rule.items()):
        reclaimed.add_metric([rule], rss)
    return [*out, warn, post, cancel, signout, reclaimed]


def _session_families(view: MetricsView) -> list[Metric]:
    by_state = GaugeMetricFamily(f"{PREFIX}_sessions", "Sessions by state (Active, Idle: "
                                 "no input for 5 min or more, Disc) and type.",
                                 labels=["state", "type"])
    counts = Counter((session_status(s), s.type or "unspecified") for s in view.sessions)
    for (st, kind), n in sorted(counts.items()):
        by_state.add_metric([st, kind], n)
    idle = GaugeMetricFamily(f"{PREFIX}_session_idle_seconds", "Seconds since the last input "
                             "on the session's terminal or desktop.",
                             labels=["session", "user", "type", "line"])
    for s in view.sessions:
        if s.idle_seconds is not None:
            idle.add_metric([s.id, s.user, s.type or "unspecified", s.name], s.idle_seconds)
    out: list[Metric] = [by_state, idle]
    if view.usage is not None:
        cpu = GaugeMetricFamily(f"{PREFIX}_user_cpu_cores", "CPU used by the user's session "
                                "processes, in cores (1 = one core busy), over the last "
                                "interval.", labels=["user"])
        rss = GaugeMetricFamily(f"{PREFIX}_user_memory_rss_bytes", "Resident memory of the "
                                "user's session processes (summed per process).",
                                labels=["user"])
        procs = GaugeMetricFamily(f"{PREFIX}_user_processes", "Processes in the user's "
                                  "sessions.", labels=["user"])
        sessions = GaugeMetricFamily(f"{PREFIX}_user_sessions", "Sessions of the user.",
                                     labels=["user"])
        pss = GaugeMetricFamily(f"{PREFIX}_user_memory_pss_bytes", "Proportional memory "
                                "of the user's session processes.", labels=["user"])
        for u in view.usage.users:
            cpu.add_metric([u.user], u.cpu_percent / 100.0)
            rss.add_metric([u.user], u.rss_bytes)
            procs.add_metric([u.user], len(u.processes))
            sessions.add_metric([u.user], len(u.sessions))
            if u.pss_bytes is not None:
                pss.add_metric([u.user], u.pss_bytes)
        out += [cpu, rss, procs, sessions] + ([pss] if view.usage.pss else [])
    if view.pressure:
        psi = GaugeMetricFamily(f"{PREFIX}_memory_pressure_percent", "Memory pressure (PSI) "
                                "the policy watches: share of time tasks stalled on memory.",
                                labels=["kind", "window"])
        for key, value in sorted(view.pressure.items()):
            kind, _, window = key.partition(" ")
            psi.add_metric([kind, window], value)
        out.append(psi)
    pending = GaugeMetricFamily(f"{PREFIX}_policy_pending_signouts", "Policy sign-outs "
                                "announced and counting down, by rule.", labels=["rule"])
    for rule, n in sorted(view.pending.items()):
        pending.add_metric([rule], n)
    out.append(pending)
    return out


class Collector:
    """prometheus_client collector over the latest view (set by the daemon each tick)."""

    def __init__(self, view: MetricsView | None = None) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        yield from families(self.view)

    def describe(self) -> list[Metric]:
        return []


def registry_for(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(view: MetricsView | None, *, openmetrics: bool = False) -> str:
    """The exposition text (Prometheus text format 0.0.4, or OpenMetrics)."""
    registry = registry_for(Collector(view))
    data = generate_openmetrics(registry) if openmetrics else generate_latest(registry)
    return data.decode("utf-8")


class Server:
    """The daemon's /metrics endpoint: an HTTP server thread (prometheus_client)."""

    def __init__(self, host: str, port: int, collector: Collector) -> None:
        self.host, self.port = host, port
        self._server, self._thread = start_http_server(port, host, registry_for(collector))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def pending_by_rule() -> dict[str, int]:
    """Policy sign-outs counting down now, by rule."""
    from ..actions.schedule import pending_logoffs

    out: Counter[str] = Counter()
    for p in pending_logoffs():
        if p.reason.startswith(POLICY_REASON):
            out[p.reason[len(POLICY_REASON):]] += 1
    return dict(out)


def current_view(*, interval: float = 1.0, backend: str | None = None,
                 pressure_file: str | None = PROC_PRESSURE_MEMORY) -> MetricsView:
    """Measure now (CPU over ``interval`` seconds) for a one-shot ``sessionctl metrics``."""
    from ..actions.usage import usage

    snap = usage(interval=interval, backend=backend)
    pressure: dict[str, float] = {}
    if pressure_file:
        with contextlib.suppress(OSError, ValueError):
            pressure = read_pressure(pressure_file)
    return MetricsView(time.time(), tuple(u.session for u in snap.sessions), snap, pressure,
                       pending_by_rule())
