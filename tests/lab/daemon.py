"""`sessionctl daemon` as a child process of a test, stderr collected in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from . import procs, tool_path


def policy_env(workdir: Path) -> dict[str, str]:
    """Environment for sessionctl commands of one test: its own state and run dirs."""
    state, run = workdir / "state", workdir / "run"
    state.mkdir(exist_ok=True)
    run.mkdir(exist_ok=True)
    return {**os.environ, "SESSIONCTL_STATE_DIR": str(state), "SESSIONCTL_RUN_DIR": str(run)}


class DaemonProc:
    """`sessionctl daemon --config FILE --audit-log LOG [extra...]`; waits until started."""

    def __init__(self, config: Path, audit_log: Path, *extra: str,
                 env: dict[str, str] | None = None) -> None:
        self.err_path = config.with_suffix(f".{time.monotonic_ns()}.err")
        self.err = open(self.err_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(tool_path("sessionctl")), "daemon", "--config", str(config),
             "--audit-log", str(audit_log), *extra],
            stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        assert procs.wait_until(lambda: "started" in self.stderr or self.proc.poll() is not None,
                                10)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_log(self, text: str, timeout: float) -> None:
        assert procs.wait_until(lambda: text in self.stderr, timeout), self.stderr

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.err.close()
