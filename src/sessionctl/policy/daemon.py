"""The policy daemon: a tick every ``interval`` seconds; SIGHUP reloads; SIGTERM stops.

Each tick lists sessions, decides (engine.decide) and acts through the same actions as
the commands: a warned logoff (schedule_logoff, so the user gets notices and may
postpone), cancel when an idle user is back, resume a countdown whose worker died, an
immediate logoff for Disc sessions over their limit (nobody is there to warn). Every
decision that changes something, and every skip (once per session and reason), goes to
the audit log and to stderr (the journal, under systemd). State that must survive a
restart (when a session became Disc, what was last reported) is in state.db next to the
pending logoffs themselves.
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

from .. import state
from ..actions import audit
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
from .engine import POLICY_REASON, Decision, decide

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
        decisions, pending = _decide(self.policy, found, now, disc_since)
        for d in decisions:
            self._act(d, memory.get(d.session.id, {}), pending.get(d.session.id))
        return decisions

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
            elif d.action == "cancel":
                if not self.dry_run:
                    cancel_logoff(s.id, note=f"{d.reason}")
                self._report("policy-cancel", f"{rule}{would}cancel the sign-out of {who}: "
                             f"{d.reason}", d)
            elif d.action == "resume":
                if not self.dry_run and p is not None:
                    resume_countdown(p, "policy daemon")
                self._report("policy-resume", f"{rule}{would}resume the countdown of {who} "
                             f"(sign-out at {_hms(p.logoff_at) if p else '?'})", d)
            elif d.action == "logoff":
                assert d.rule is not None
                if self.dry_run:
                    self._report("policy-logoff", f"{rule}would log off {who}: {d.reason}", d)
                    return
                from ..actions.logoff import logoff

                result = logoff(s.id, grace=d.rule.grace, backend=self.backend,
                                audit_log=self.audit_log, caller_uid=0)
                self._report("policy-logoff", f"{rule}logged off {who}: {d.reason} "
                             f"({result.outcome})", d)
        except SessionctlError as exc:
            self._report("policy-error", f"{rule}could not {d.action} {who}: {exc}", d)

    def _report(self, event: str, line: str, d: Decision) -> None:
        self.log(f"sessionctl-policy: {line}")
        with contextlib.suppress(OSError):
            audit.record(event, {**d.to_dict(), "dry_run": self.dry_run,
                                 "config": self.config_path}, self.audit_log)

    # -- the loop --------------------------------------------------------------------
    def reload(self) -> bool:
        try:
            new = config.load(self.config_path)
        except config.ConfigError as exc:
            self.log(f"sessionctl-policy: config reload failed: {exc}; keeping the rules "
                     f"loaded at {_hms(self.loaded_at)}")
            with contextlib.suppress(OSError):
                audit.record("policy-reload-failed", {"error": str(exc)}, self.audit_log)
            return False
        self.policy, self.loaded_at = new, time.time()
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
        self.log(f"sessionctl-policy: started (pid {os.getpid()}, {len(self.policy.rules)} "
                 f"rule(s), every {self.policy.interval:g} s"
                 f"{', dry run' if self.dry_run else ''})")
        next_tick = time.monotonic()
        while True:
            while received:
                signum = received.pop(0)
                if signum == signal.SIGHUP:
                    self.reload()
                else:
                    self.log("sessionctl-policy: stopping (countdowns already announced "
                             "continue in their own workers)")
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
    policy: config.Policy, found: list[Session], now: float, disc_since: dict[str, float]
) -> tuple[list[Decision], dict[str, PendingLogoff]]:
    pending = {p.session_id: p for p in pending_logoffs()}
    decisions = decide(policy, found, now, disc_since, pending, _worker_alive)
    return decisions, pending


def check(path: str | Path, backend: str | None = None) -> list[Decision]:
    """Validate a policy and decide for the current sessions, touching nothing."""
    policy = config.load(path)
    found = list_sessions(backend=get_backend(backend))
    now = time.time()
    disc_since, _ = _disc_clocks(found, _memory(), now)
    return _decide(policy, found, now, disc_since)[0]
