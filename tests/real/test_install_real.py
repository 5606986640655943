"""The install step puts commands, man pages and shell completion where admins look
(as loginctl's package does), generated from the commands themselves."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from importlib.metadata import distribution
from pathlib import Path

import pytest

pytestmark = pytest.mark.real
ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("SESSIONCTL_VENV") or sys.prefix)
SCRIPTS = sorted(e.name for e in distribution("sessionctl").entry_points
                 if e.group == "console_scripts")


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("prefix")
    res = subprocess.run([str(ROOT / "scripts" / "install-commands.sh"), str(VENV), str(where)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return where


def man(prefix: Path, *page: str) -> str:
    res = subprocess.run(["man", "-M", str(prefix / "share" / "man"), *page],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat",
                              "PAGER": "cat"})
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_every_command_linked_with_a_page(prefix: Path) -> None:
    assert {"qwinsta", "quser", "logoff", "msg", "sessionctl"} <= set(SCRIPTS)
    for name in SCRIPTS:
        assert os.readlink(prefix / "bin" / name) == str(VENV / "bin" / name)
        page = man(prefix, name)
        assert page.startswith(f"{name.upper()}(1)") and "SYNOPSIS" in page, name
        help_text = subprocess.run([str(prefix / "bin" / name), "--help"], capture_output=True,
                                   text=True, timeout=60).stdout
        flat = re.sub(r"[\s\u2010]+", " ", page.replace("\u2010\n", ""))
        for option in sorted(set(re.findall(r"--[a-z][a-z-]+", help_text))):
            assert option in flat, f"{name}: {option} missing from its man page"
    policy = man(prefix, "5", "sessionctl-policy")
    assert "idle_limit" in policy and "disc_limit" in policy and "SYSTEMD" in policy
    whole = man(prefix, "sessionctl")
    for sub in ("sessionctl users", "sessionctl policy check", "sessionctl status"):
        assert sub in whole


def bash_complete(prefix: Path, *words: str) -> list[str]:
    name = words[0]
    script = (
        f"source {prefix}/share/bash-completion/completions/{name}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        f"$(complete -p {name} | sed 's/.*-F \\([^ ]*\\).*/\\1/')\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_bash_completion_from_the_parsers(prefix: Path) -> None:
    assert bash_complete(prefix, "msg", "--ti") == ["--time"]
    assert bash_complete(prefix, "sessionctl", "users", "--sort", "c") == ["cpu"]
    assert bash_complete(prefix, "sessionctl", "policy", "") == ["check"]
    assert bash_complete(prefix, "sessionctl", "query", "se") == ["session"]
    assert "logind" in bash_complete(prefix, "qwinsta", "--backend", "")
    assert "/V" in bash_complete(prefix, "qwinsta", "/")
    assert "root" in bash_complete(prefix, "quser", "roo")  # user names for the target


def zsh_complete(prefix: Path, line: str, timeout: float = 15.0) -> str:
    """What an interactive zsh (in a real pty) shows after LINE and a Tab."""
    functions = prefix / "share" / "zsh" / "site-functions"
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvpe("zsh", ["zsh", "-f", "-i"],
                   {"TERM": "dumb", "PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    out = b""

    def read_until(pattern: bytes | None, seconds: float) -> None:
        nonlocal out
        end = time.monotonic() + seconds
        while time.monotonic() < end and (pattern is None or pattern not in out):
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    try:
        os.write(fd, f"fpath=({functions} $fpath); autoload -Uz compinit; compinit -u -D; "
                     "echo READY''NOW\n".encode())
        read_until(b"READYNOW", timeout)
        start = len(out)
        os.write(fd, line.encode() + b"\t")
        read_until(None, 2.0)  # whatever completion printed (it may also just ring)
        return out[start:].decode(errors="replace")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed "
                    "(scripts/bootstrap.sh --test installs it)")
def test_zsh_completion_from_the_parsers(prefix: Path) -> None:
    assert "msg --time " in zsh_complete(prefix, "msg --ti")
    assert "sessionctl users --sort cpu " in zsh_complete(prefix, "sessionctl users --sort c")
    assert "sessionctl policy check " in zsh_complete(prefix, "sessionctl policy ch")
    assert "qwinsta --backend logind " in zsh_complete(prefix, "qwinsta --backend l")


def test_the_systemd_units_documentation_is_installed(prefix: Path) -> None:
    """Documentation= used to name file:///opt/sessionctl/docs/policy.md, never installed."""
    unit = (ROOT / "contrib" / "systemd" / "sessionctl-policy.service").read_text()
    (line,) = [x for x in unit.splitlines() if x.startswith("Documentation=")]
    uris = line.removeprefix("Documentation=").split()
    assert uris
    for uri in uris:
        m = re.fullmatch(r"man:([\w.-]+)\((\d)\)", uri)
        assert m, f"{uri}: not a man: URI"
        assert man(prefix, m.group(2), m.group(1)).strip()
