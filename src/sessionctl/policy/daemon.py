"""The policy daemon: a tick every ``interval`` seconds; SIGHUP reloads; SIGTERM stops.

Each tick lists sessions, decides (engine.decide) and acts through the same actions as
the commands: a warned logoff (schedule_logoff, so the user gets notices and may
postpone), cancel when an idle user is back, resume a countdown whose worker died, an
immediate logoff for Disc sessions over their limit (nobody is there to warn). Every
decision that changes something, and every skip (once per session and reason), goes to
the audit log and to stderr (the journal, under systemd). State that must survive a
restart (when a session became Disc, what was last reported, when each activity source
last saw it active) is in state.db next to the pending logoffs themselves, and so is what
each policy sign-out reclaimed (actions/reclaim.py).

Each tick also measures what the rules need (policy/measure.py: activity sources, CPU and
memory held), reads memory pressure when a ``[pressure]`` section asks for it, and, with a
``[metrics]`` section, keeps the figures /metrics serves (policy/metrics.py).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .. import state
from ..actions import audit, reclaim
from ..actions.schedule import (
    PendingLogoff,
    cancel_logoff,
    pending_logoffs,
    resume_countdown,
    resume_countdowns,
    schedule_logoff,
)
from ..api import sessions as list_sessions
from ..backends import get_backend
from ..errors import SessionctlError
from ..model import Session, State
from . import config
from .engine import POLICY_REASON, Decision, Readings, decide

if TYPE_CHECKING:
    from . import metrics
    from .measure import Meter

KV_PREFIX = "policy:"


class Daemon:
    """The policy loop; ``tick()`` is one pass (``--once``)."""

    def __init__(self, config_path: str, *, dry_run: bool = False,
                 audit_log: str | None = None, backend: str | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.config_path = config_path
        self.dry_run = dry_run
        self.audit_log = audit_log
        audit.check_path(audit_log)  # a log root cannot trust stops the daemon at start
        self.backend = get_backend(backend)
        self.id_cache = self.backend.remember_ids()
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.policy = config.load(config_path)  # an invalid file at start is fatal
        self.loaded_at = time.time()
        from .measure import Meter  # Linux readers: imported where the daemon runs

        self.meter: Meter = Meter(self.backend)
        self.collector: metrics.Collector | None = None  # while serving /metrics
        self.server: metrics.Server | None = None
        self._said: set[str] = set()  # run-time problems already reported

    def serve_metrics(self) -> None:
        """Start (or move) the /metrics endpoint to what the policy says; stop it if the
        policy has no [metrics]. SessionctlError if the address cannot be served."""
        from . import metrics

        want = self.policy.metrics
        have = self.server
        if have is not None and (want is None or (have.host, have.port) != (want.host,
                                                                           want.port)):
            have.close()
            self.server = None
        if want is None or self.server is not None:
            return
        if self.collector is None:
            self.collector = metrics.Collector()
        try:
            self.server = metrics.Server(want.host, want.port, self.collector)
        except OSError as exc:
            problem = config.bind_problem(want.host, want.port) or exc.strerror or str(exc)
            raise SessionctlError(f"{self.config_path}:{want.line}: cannot serve metrics on "
                                  f"{want.host}:{want.port}: {problem}") from None
        self.log(f"sessionctl-policy: serving metrics on http://{want.host}:{want.port}/metrics")

    def _say_once(self, key: str, line: str) -> None:
        """Report a run-time problem once (and again only after it went away)."""
        if key not in self._said:
            self._said.add(key)
            self.log(f"sessionctl-policy: {line}")
            with contextlib.suppress(OSError):
                audit.record("policy-problem", {"problem": line}, self.audit_log)

    # -- state -----------------------------------------------------------------------
    def _remember(self, sid: str, data: dict[str, object]) -> None:
        if not self.dry_run:
            state.kv_put(KV_PREFIX + sid, data)

    # -- one pass --------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[Decision]:
        now = time.time() if now is None else now
        if not self.dry_run:  # every dead countdown, the admins' too
            for p in resume_countdowns("policy daemon"):
                self.log(f"sessionctl-policy: resumed the countdown of session "
                         f"{p.session_id} ({p.user}); its worker had died")
        found = list_sessions(backend=self.backend)
        memory = _memory()
        ids = {s.id for s in found}
        gone = [KV_PREFIX + sid for sid in memory if sid not in ids]
        if gone and not self.dry_run:
            state.kv_delete(gone)
        disc_since, first_seen = _disc_clocks(found, memory, now)
        for sid in first_seen:  # remembered, so a restart never starts the clock again
            memory[sid] = {**memory.get(sid, {}), "disc_since": disc_since[sid]}
            self._remember(sid, memory[sid])
        measured = self.meter.measure(self.policy, found, memory, now,
                                      usage=self.policy.metrics is not None)
        for note in measured.notes:
            self._say_once(note.split(":")[0], note)
        memory.update(measured.memory_changes)
        if measured.memory_changes and not self.dry_run:
            state.kv_put_many({KV_PREFIX + k: v for k, v in measured.memory_changes.items()})
        level, psi = self._pressure()
        decisions, pending = _decide(self.policy, found, now, disc_since, measured.readings,
                                     level)
        for d in decisions:
            self._act(d, memory.get(d.session.id, {}), pending.get(d.session.id))
        if self.collector is not None:
            from . import metrics

            self.collector.view = metrics.MetricsView(
                now, tuple(found), measured.snapshot, psi, metrics.pending_by_rule())
        return decisions

    def _pressure(self) -> tuple[float | None, dict[str, float]]:
        from .measure import pressure_level

        p = self.policy.pressure
        if p is None:
            return None, {}
        level, problem = pressure_level(p)
        if problem:
            self._say_once("pressure", f"{problem}; no sign-outs for memory pressure until it "
                           "can be read again")
            return None, {}
        if "pressure" in self._said:
            self._said.discard("pressure")
            self.log(f"sessionctl-policy: memory pressure readable again from {p.file}")
        assert level is not None
        return level, {p.measure: level}

    def _act(self, d: Decision, mem: dict[str, object], p: PendingLogoff | None) -> None:
        s = d.session
        who = f"session {s.id} ({s.user}{' ' + s.name if s.name else ''})"
        rule = f"[rule {d.rule.name}] " if d.rule else ""
        would = "would " if self.dry_run else ""
        if d.action in ("none", "wait"):
            return
        if d.action in ("skip", "pending"):
            postponed = p.postponed if p else 0.0
            note = f"{d.action}:{d.reason}:{postponed}"
            if mem.get("note") != note:  # report each state once, not every tick
                if d.action == "skip":
                    self._report("policy-skip", f"{rule}skipped {who}: {d.reason}", d)
                elif p and postponed and postponed != mem.get("postponed", 0.0):
                    self._report("policy-postponed", f"{rule}{who} postponed its sign-out by "
                                 f"{postponed:g} s in total; now at {_hms(p.logoff_at)}", d)
                    self._record("postpone", d)
                self._remember(s.id, {**mem, "note": note, "postponed": postponed})
            return
        try:
            if d.action == "warn":
                assert d.rule is not None
                text = d.rule.message or (
                    f"Policy {d.rule.name}: {d.reason}." + (
                        " Type anything in this session to stay signed in."
                        if d.rule.kind == "idle_limit" else ""))
                if not self.dry_run:
                    q, _ = schedule_logoff(s.id, d.notice, message=text,
                                           max_postpone=d.rule.max_postpone,
                                           grace=d.rule.grace,
                                           reason=POLICY_REASON + d.rule.name,
                                           backend=self.backend, audit_log=self.audit_log)
                    at = _hms(q.logoff_at)
                else:
                    at = _hms(time.time() + d.notice)
                self._report("policy-warn", f"{rule}{would}warn {who}: {d.reason}; "
                             f"sign-out at {at}", d)
                self._record("warn", d)
            elif d.action == "cancel":
                if not self.dry_run:
                    cancel_logoff(s.id, note=f"{d.reason}")
                self._report("policy-cancel", f"{rule}{would}cancel the sign-out of {who}: "
                             f"{d.reason}", d)
                self._record("cancel", d)
            elif d.action == "resume":
                if not self.dry_run and p is not None:
                    resume_countdown(p, "policy daemon")
                self._report("policy-resume", f"{rule}{would}resume the countdown of {who} "
                             f"(sign-out at {_hms(p.logoff_at) if p else '?'})", d)
            elif d.action == "disconnect":
                if self.dry_run:
                    self._report("policy-disconnect", f"{rule}would disconnect {who}: "
                                 f"{d.reason}", d)
                    return
                from ..actions.disconnect import disconnect

                done = disconnect(s.id, backend=self.backend, audit_log=self.audit_log,
                                  caller_uid=0)
                extra = "" if done.ok else ": " + "; ".join(done.problems)
                self._report("policy-disconnect", f"{rule}disconnected {who}: {d.reason} "
                             f"({done.outcome}{extra})", d)
            elif d.action == "logoff":
                assert d.rule is not None
                if self.dry_run:
                    self._report("policy-logoff", f"{rule}would log off {who}: {d.reason}", d)
                    return
                from ..actions.logoff import logoff

                held = reclaim.measure(s, self.backend.counter_reader(),
                                       pss=self.policy.needs_pss)
                try:
                    result = logoff(s.id, grace=d.rule.grace, backend=self.backend,
                                    audit_log=self.audit_log, caller_uid=0)
                except SessionctlError:
                    reclaim.record("signout", d.rule.name, s, outcome="failed", held=held)
                    raise
                self._report("policy-logoff", f"{rule}logged off {who}: {d.reason} "
                             f"({result.outcome})", d)
                reclaim.record("signout", d.rule.name, s, outcome=result.outcome, held=held)
        except SessionctlError as exc:
            self._report("policy-error", f"{rule}could not {d.action} {who}: {exc}", d)

    def _record(self, event: str, d: Decision) -> None:
        if d.rule is not None and not self.dry_run:
            r = d.readings
            held = None if r.rss_bytes is None else reclaim.Held(
                r.rss_bytes, r.processes or 0, r.pss_bytes, d.session.idle_seconds)
            reclaim.record(event, d.rule.name, d.session, held=held)

    def _report(self, event: str, line: str, d: Decision) -> None:
        self.log(f"sessionctl-policy: {line}")
        with contextlib.suppress(OSError):
            audit.record(event, {**d.to_dict(), "dry_run": self.dry_run,
                                 "config": self.config_path}, self.audit_log)

    # -- the loop --------------------------------------------------------------------
    def reload(self) -> bool:
        try:
            new = config.load(self.config_path, bound=self.policy.metrics
                              if self.server is not None else None)
        except config.ConfigError as exc:
            self.log(f"sessionctl-policy: config reload failed: {exc}; keeping the rules "
                     f"loaded at {_hms(self.loaded_at)}")
            with contextlib.suppress(OSError):
                audit.record("policy-reload-failed", {"error": str(exc)}, self.audit_log)
            return False
        old = self.policy
        self.policy, self.loaded_at = new, time.time()
        try:
            self.serve_metrics()
        except SessionctlError as exc:  # taken between the check and now: keep the old
            self.policy = old
            self.log(f"sessionctl-policy: config reload failed: {exc}; keeping the rules "
                     "loaded before")
            with contextlib.suppress(OSError):
                audit.record("policy-reload-failed", {"error": str(exc)}, self.audit_log)
            with contextlib.suppress(SessionctlError):
                self.serve_metrics()
            return False
        self.log(f"sessionctl-policy: reloaded {self.config_path}: "
                 f"{len(new.rules)} rule(s)")
        with contextlib.suppress(OSError):
            audit.record("policy-reloaded", {"rules": [r.name for r in new.rules]},
                         self.audit_log)
        return True

    def run(self) -> int:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        received: list[int] = []

        def on_signal(signum: int, _frame: object) -> None:
            received.append(signum)

        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        signal.set_wakeup_fd(wake_w)
        self.serve_metrics()
        self.log(f"sessionctl-policy: started (pid {os.getpid()}, {len(self.policy.rules)} "
                 f"rule(s), every {self.policy.interval:g} s"
                 f"{', dry run' if self.dry_run else ''})")
        next_tick = time.monotonic()
        while True:
            while received:
                got = received.pop(0)
                if got == signal.SIGHUP:
                    self.reload()
                else:
                    self.log("sessionctl-policy: stopping (countdowns already announced "
                             "continue in their own workers)")
                    if self.server is not None:
                        self.server.close()
                    return 0
            if time.monotonic() >= next_tick:
                try:
                    self.tick()
                except SessionctlError as exc:
                    self.log(f"sessionctl-policy: tick failed: {exc}")
                next_tick = time.monotonic() + self.policy.interval
            timeout = max(0.0, next_tick - time.monotonic())
            with contextlib.suppress(InterruptedError):
                select.select([wake_r], [], [], timeout)
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)


def _hms(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


def _memory() -> dict[str, dict[str, object]]:
    """Per-session policy state from state.db (session id → fields)."""
    return {k[len(KV_PREFIX):]: v for k, v in state.kv_all(KV_PREFIX).items()}


def _disc_clocks(
    found: list[Session], memory: dict[str, dict[str, object]], now: float
) -> tuple[dict[str, float], list[str]]:
    """When each Disc session was first seen Disc (never earlier than we know: a session
    with no remembered time starts now), and the ids seen Disc for the first time."""
    since: dict[str, float] = {}
    first_seen = []
    for s in found:
        if s.state is State.DISC:
            known = memory.get(s.id, {}).get("disc_since")
            if isinstance(known, int | float):
                since[s.id] = float(known)
            else:
                since[s.id] = now
                first_seen.append(s.id)
    return since, first_seen


def _worker_alive(p: PendingLogoff) -> bool:
    return p.worker_alive


def _decide(
    policy: config.Policy, found: list[Session], now: float, disc_since: dict[str, float],
    readings: dict[str, Readings] | None = None, level: float | None = None,
) -> tuple[list[Decision], dict[str, PendingLogoff]]:
    pending = {p.session_id: p for p in pending_logoffs()}
    decisions = decide(policy, found, now, disc_since, pending, _worker_alive,
                       readings=readings, pressure_level=level)
    return decisions, pending


def check(path: str | Path, backend: str | None = None,
          interval: float = 1.0) -> list[Decision]:
    """Validate a policy and decide for the current sessions, touching nothing.

    When a rule needs CPU shares (activity "cpu", min_cpu) they are measured over
    ``interval`` seconds; remembered activity (state.db) counts as in the daemon."""
    from .measure import Meter, pressure_level

    policy = config.load(path)
    be = get_backend(backend)
    meter = Meter(be)
    found = list_sessions(backend=be)
    memory = _memory()
    if policy.needs_usage:
        meter.measure(policy, found, memory, time.time())
        time.sleep(interval)
        found = list_sessions(backend=be)
    now = time.time()
    measured = meter.measure(policy, found, memory, now)
    level = pressure_level(policy.pressure)[0] if policy.pressure else None
    disc_since, _ = _disc_clocks(found, memory, now)
    return _decide(policy, found, now, disc_since, measured.readings, level)[0]
