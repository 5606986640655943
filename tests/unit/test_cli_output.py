"""The commands' own output: write errors are ordinary errors; 8-bit terminals get ASCII.

Runs the installed console scripts (the venv's bin directory) as child processes, with
stdout on /dev/full, on a pipe nobody reads, closed, or on a real pty.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys

import pytest
from lab.tty import set_iutf8

BIN = os.path.dirname(sys.executable)
# commands that always print to stdout, whether anyone is logged in or not (a plain
# qwinsta with no session says so on stderr; --json prints [] then)
COMMANDS = [["qwinsta", "--json"], ["quser", "--json"], ["qwinsta", "/?"],
            ["sessionctl", "--help"], ["sessionctl", "query", "session", "--json"],
            ["sessionctl", "status"], ["logoff", "--help"], ["sessionctl", "pending"],
            ["tsdiscon", "/?"]]
ERRORS = {"full": "No space left on device", "pipe": "Broken pipe",
          "closed": "standard output is closed"}


def _run(argv: list[str], how: str) -> subprocess.CompletedProcess[str]:
    cmd = [os.path.join(BIN, argv[0]), *argv[1:]]
    if how == "full":
        with open("/dev/full", "w") as full:
            return subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True,
                                  timeout=60)
    if how == "pipe":
        r, w = os.pipe()
        os.close(r)  # nobody will ever read: a write gets EPIPE
        try:
            return subprocess.run(cmd, stdout=w, stderr=subprocess.PIPE, text=True,
                                  timeout=60)
        finally:
            os.close(w)
    return subprocess.run(cmd, stderr=subprocess.PIPE, text=True, timeout=60,
                          preexec_fn=lambda: os.close(1))


@pytest.mark.parametrize("how", sorted(ERRORS))
@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_write_errors_are_one_line_and_exit_1(argv: list[str], how: str) -> None:
    res = _run(argv, how)
    assert res.returncode == 1, res.stderr
    lines = [line for line in res.stderr.splitlines() if "cannot write output" in line]
    assert len(lines) == 1 and lines[0].endswith(f"cannot write output: {ERRORS[how]}"), \
        res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    assert "Exception ignored" not in res.stderr


def test_a_command_that_prints_nothing_is_not_an_error_with_stdout_closed() -> None:
    """logoff without /v prints nothing on success: here, a refusal on stderr only."""
    res = _run(["logoff", "4000000000"], "closed")
    assert res.returncode == 1 and res.stderr.strip() == "No session exists for 4000000000"


@pytest.mark.parametrize("utf8", [True, False])
def test_an_8bit_terminal_gets_ascii(utf8: bool) -> None:
    """Text echoed back to the user's own terminal: no UTF-8 bytes on a -iutf8 tty."""
    master, slave = os.openpty()
    try:
        set_iutf8(slave, utf8)
        proc = subprocess.Popen([os.path.join(BIN, "quser"), "\u011b2J"], stdin=slave,
                                stdout=slave, stderr=slave, env={**os.environ,
                                                                "LANG": "C.UTF-8"})
        os.close(slave)
        slave = -1
        shown = b""
        while True:
            ready = select.select([master], [], [], 10)[0]
            try:
                chunk = os.read(master, 65536) if ready else b""
            except OSError:  # EIO: the child closed the pty
                chunk = b""
            if not chunk:
                break
            shown += chunk
        assert proc.wait(10) == 1
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    if utf8:
        assert "'\u011b2J'".encode() in shown
    else:
        assert b"'e2J'" in shown and all(b < 0x80 for b in shown), shown
