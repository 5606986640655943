"""Metrics text and the reclaim report from constructed sessions and recorded events."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from sessionctl.actions import reclaim
from sessionctl.model import Session, State
from sessionctl.policy.metrics import MetricsView, render
from sessionctl.usage_model import ProcessUsage, SessionUsage, UsageSnapshot, group_by_user

MB = 1 << 20


def _session(sid: str, user: str, idle: float | None, state: State = State.ACTIVE) -> Session:
    return Session(id=sid, name=f"pts/{sid}", user=user, uid=1000, state=state, type="ssh",
                   idle_seconds=idle)


def test_metrics_and_report(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONCTL_STATE_DIR", str(tmp_path))
    alice, bob = _session("1", "alice", 4000.0), _session("2", "bob", 3.0)
    gone = _session("3", "carol", 900.0)
    reclaim.record("warn", "idle", gone)
    reclaim.record("signout", "idle", gone, outcome="logged-off",
                   held=reclaim.Held(700 * MB, 4, None, 900.0))
    reclaim.record("signout", "memory-pressure", alice, outcome="incomplete",
                   held=reclaim.Held(100 * MB, 2, None, 650.0))
    reclaim.record("postpone", "idle", bob)
    proc = ProcessUsage(10, 1, "python3", "S", 50.0, 300 * MB)
    snap = UsageSnapshot(0.0, 1.0, group_by_user([SessionUsage(alice, (proc,)),
                                                  SessionUsage(bob, ())]))
    text = render(MetricsView(0.0, (alice, bob), snap, {"some avg10": 12.5}, {"idle": 1}))
    samples = {k: float(v) for k, v in (x.rsplit(" ", 1) for x in text.splitlines()
                                        if not x.startswith("#"))}
    for line in (
        'sessionctl_sessions{state="Idle",type="ssh"} 1.0',
        'sessionctl_sessions{state="Active",type="ssh"} 1.0',
        'sessionctl_session_idle_seconds{line="pts/1",session="1",type="ssh",user="alice"} 4000.0',
        'sessionctl_user_cpu_cores{user="alice"} 0.5',
        f'sessionctl_user_memory_rss_bytes{{user="alice"}} {float(300 * MB)}',
        'sessionctl_user_sessions{user="bob"} 1.0',
        'sessionctl_memory_pressure_percent{kind="some",window="avg10"} 12.5',
        'sessionctl_policy_pending_signouts{rule="idle"} 1.0',
        'sessionctl_policy_warnings_total{rule="idle"} 1.0',
        'sessionctl_policy_postpones_total{rule="idle"} 1.0',
        'sessionctl_policy_signouts_total{outcome="logged-off",rule="idle"} 1.0',
        'sessionctl_policy_signouts_total{outcome="incomplete",rule="memory-pressure"} 1.0',
        f'sessionctl_policy_reclaimed_rss_bytes_total{{rule="idle"}} {float(700 * MB)}',
    ):
        key, value = line.rsplit(" ", 1)
        assert samples.get(key) == float(value), (line, text)
    assert render(MetricsView(0.0, (alice,), snap), openmetrics=True).endswith("# EOF\n")
    if shutil.which("promtool"):
        res = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                             capture_output=True)
        assert res.returncode == 0, res.stdout + res.stderr
    rows = {(r.rule, r.user): r for r in reclaim.report()}
    assert rows[("idle", "carol")].rss_bytes == 700 * MB
    assert rows[("idle", "carol")].signouts == 1 and rows[("idle", "carol")].processes == 4
    assert rows[("memory-pressure", "alice")].incomplete == 1
    assert reclaim.report(since=10**12) == []
