"""Nothing Linux-only is imported by what must run on Windows, and nothing Windows-only
is touched on Linux. Each check runs in a fresh interpreter with a meta-path finder that
refuses the other platform's modules (and a ctypes without WinDLL/windll on Linux)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

#: modules that must import (and the CLIs that must run) on Windows
NEUTRAL = [
    "sessionctl", "sessionctl.api", "sessionctl.model", "sessionctl.errors", "sessionctl.host",
    "sessionctl.usage_model", "sessionctl.state", "sessionctl.durations", "sessionctl.sanitize",
    "sessionctl.validate", "sessionctl.backends", "sessionctl.backends.base",
    "sessionctl.backends.windows", "sessionctl.windows.wts", "sessionctl.windows.wtsapi",
    "sessionctl.windows.processes", "sessionctl.actions.logoff", "sessionctl.actions.message",
    "sessionctl.actions.usage", "sessionctl.actions.audit", "sessionctl.actions.schedule",
    "sessionctl.policy.config", "sessionctl.policy.engine", "sessionctl.policy.daemon",
    "sessionctl.cli.main", "sessionctl.cli.query", "sessionctl.cli.logoff",
    "sessionctl.cli.msg", "sessionctl.cli.users", "sessionctl.cli.policy",
    "sessionctl.cli.pending", "sessionctl.cli.render", "sessionctl.cli.args",
    "sessionctl.cli.runner", "sessionctl.cli.fleet", "sessionctl.cli.usagefmt",
    "sessionctl.actions.disconnect", "sessionctl.cli.disconnect",
]
#: what a Windows Python does not have, and sessionctl's Linux-only modules
LINUX_ONLY = ["fcntl", "termios", "pwd", "grp", "resource", "pty", "tty", "posix_ipc",
              "jeepney", "sessionctl.linux", "sessionctl.backends.procfs",
              "sessionctl.backends.logind", "sessionctl.actions.signout",
              "sessionctl.actions.countdown", "sessionctl.fleet.ssh",
              "sessionctl.actions.linux_disconnect", "sessionctl.backends.multiplexers"]
#: what a Linux Python must never reach for
WINDOWS_ONLY = ["sessionctl.windows", "sessionctl.backends.windows", "winreg", "msvcrt",
                "_winapi", "_overlapped", "nt", "wmi", "_wmi"]

BLOCKER = """
import ctypes, importlib.abc, sys
import psutil  # cross-platform: it picks its own platform module (_pslinux, _pswindows)
BLOCKED = {blocked!r}
SEEN = []
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            if importer().startswith("sessionctl"):
                SEEN.append(name)
            raise ImportError(f"blocked: {{name}}")
        return None
def importer():
    # the module whose code asked (stdlib and third-party try-imports of the other
    # platform's modules, e.g. mimetypes' winreg, are theirs, not ours)
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
            ("importlib", "_frozen_importlib")):
        frame = frame.f_back
    return "" if frame is None else frame.f_globals.get("__name__", "")
sys.meta_path.insert(0, Block())
for loaded in list(sys.modules):  # loaded already (by psutil, site): make them be asked for
    if any(loaded == b or loaded.startswith(b + ".") for b in BLOCKED):
        del sys.modules[loaded]
for attr in ("WinDLL", "windll", "oledll", "OleDLL", "WinError", "get_last_error"):
    if hasattr(ctypes, attr):
        delattr(ctypes, attr)
sys.path.insert(0, {tests!r})
"""


def run(code: str, blocked: list[str], tmp: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    script = BLOCKER.format(blocked=blocked, tests=str(TESTS)) + textwrap.dedent(code)
    env = {**os.environ, "TMPDIR_FOR_TEST": str(tmp or TESTS)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=env)


def test_windows_modules_import_without_linux_ones() -> None:
    done = run(f"""
        import importlib
        for name in {NEUTRAL!r}:
            importlib.import_module(name)
        print("ok", sorted(set(SEEN)))
    """, LINUX_ONLY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok []", done.stdout  # no sessionctl module asked for one


def test_windows_clis_run_without_linux_modules(tmp_path: Path) -> None:
    """The CLIs on the windows backend (constructed WTS data) with Linux modules refused:
    query session/user, logoff, msg, users --json and a policy check."""
    done = run("""
        import contextlib, io, os, sys, time
        from lab.wtsfake import FakeApi, FakeProcess, FakeSession, FakeWorld, user_sid
        from sessionctl.windows import wtsapi as w
        from sessionctl.windows.wts import Wts
        from sessionctl.backends.windows import WindowsBackend
        from sessionctl.cli.main import dispatch
        now = time.time()
        world = FakeWorld(
            [FakeSession(0, "services", w.WTSDisconnected),
             FakeSession(2, "RDP-Tcp#0", w.WTSActive, "bob", "LAB", logon=now - 60,
                         last_input=now - 5, protocol=w.PROTOCOL_RDP),
             FakeSession(3, "", w.WTSDisconnected, "carol", "LAB", logon=now - 60)],
            [FakeProcess(2, os.getpid(), "python.exe", user_sid(1002))],
            {user_sid(1002): ("bob", "LAB"), user_sid(1003): ("carol", "LAB")},
            current_pid=os.getpid(), caller=("bob", True), now=now)
        be = WindowsBackend(Wts(FakeApi(world).api()))
        import sessionctl.host
        sessionctl.host.WINDOWS = True  # user and group lookups as on Windows
        for name, mod in list(sys.modules.items()):
            if name.startswith("sessionctl") and hasattr(mod, "get_backend"):
                mod.get_backend = lambda *a, **k: be
        os.environ["SESSIONCTL_AUDIT_LOG"] = os.devnull
        policy = os.path.join(os.environ["TMPDIR_FOR_TEST"], "p.toml")
        with open(policy, "w") as f:
            f.write('[[rule]]\\nname = "idle"\\nidle_limit = "1h"\\n')
        for argv in (["query", "session"], ["query", "user"], ["msg", "2", "hi"],
                     ["users", "--json", "--interval", "0.1"], ["logoff", "3"],
                     ["policy", "check", policy]):
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                code = dispatch(argv)
            print(argv[0], code, repr(err.getvalue()[-200:]))
        print("seen", sorted(set(SEEN)))
    """, LINUX_ONLY, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [
        ["query", "0"], ["query", "0"], ["msg", "0"], ["users", "0"], ["logoff", "0"],
        ["policy", "0"]], done.stdout
    assert lines[-1] == "seen []"


def test_linux_never_touches_windows_modules() -> None:
    done = run("""
        import contextlib, importlib, io, pathlib
        import sessionctl
        from sessionctl.cli.main import dispatch
        root = pathlib.Path(sessionctl.__file__).parent
        skip = ("sessionctl.windows", "sessionctl.backends.windows")
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if not name.startswith(skip):
                importlib.import_module(name)
        for argv in (["query", "session", "--backend", "procfs"],
                     ["query", "session", "--backend", "windows"]):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = dispatch(argv)
            print(argv[-1], code, repr(err.getvalue().strip()))
        print("seen", sorted(set(SEEN)))
    """, WINDOWS_ONLY)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] in (["procfs", "0"], ["procfs", "1"])
    assert lines[1] == "windows 1 'the windows backend runs on Windows only'"
    assert lines[-1] == "seen []"
