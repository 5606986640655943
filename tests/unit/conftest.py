"""Unit tests never read or write the machine's own state, run directory or audit log:
the commands they run in-process get private ones (as root, every command first looks
for countdowns to resume in the state directory)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_state(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("SESSIONCTL_STATE_DIR", str(base / "state"))
    monkeypatch.setenv("SESSIONCTL_RUN_DIR", str(base / "run"))
    monkeypatch.setenv("SESSIONCTL_AUDIT_LOG", str(base / "audit.jsonl"))
