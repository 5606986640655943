"""The X11 reader's bounds on this host: a vanished display, an X server that accepts the
connection and never answers, one that refuses us. Real sockets, real children."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
from pathlib import Path

import pytest

from sessionctl.linux import x11

pytestmark = pytest.mark.real

X_DIR = Path("/tmp/.X11-unix")


def _free_display() -> int:
    used = Path("/proc/net/unix").read_text()
    while True:
        n = random.randint(700, 999)
        if f"X11-unix/X{n}" not in used and not (X_DIR / f"X{n}").exists():
            return n


@pytest.fixture
def fake_x_server():
    """A listening socket at /tmp/.X11-unix/XN; ``behaviour`` decides what it does."""
    if os.geteuid() != 0:
        pytest.skip("needs root (creates a socket in /tmp/.X11-unix)")
    X_DIR.mkdir(mode=0o1777, exist_ok=True)
    n = _free_display()
    path = X_DIR / f"X{n}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    held: list[socket.socket] = []
    mode = {"reply": None}

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)  # hang: read nothing, answer nothing
            if mode["reply"] is not None:
                with contextlib.suppress(OSError):
                    conn.recv(4096)
                    conn.sendall(mode["reply"])
                    conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield n, mode
    finally:
        server.close()
        for conn in held:
            conn.close()
        path.unlink(missing_ok=True)


def test_vanished_display_is_an_error_at_once() -> None:
    n = _free_display()
    t0 = time.monotonic()
    (reading,) = x11.read_idle([x11.Target(f":{n}", os.getuid())])
    assert time.monotonic() - t0 < x11.X11_TIMEOUT
    assert reading.idle_ms is None and f":{n}" in reading.error
    assert "did not answer" not in reading.error  # refused at once, not timed out


def test_x_server_that_never_answers_times_out(fake_x_server) -> None:
    n, _ = fake_x_server
    t0 = time.monotonic()
    (reading,) = x11.read_idle([x11.Target(f":{n}", os.getuid())], timeout=1.0)
    took = time.monotonic() - t0
    assert reading.idle_ms is None and "did not answer within 1 s" in reading.error
    assert 1.0 <= took < 3.0, took


def test_x_server_that_refuses_us_says_so(fake_x_server) -> None:
    n, mode = fake_x_server
    reason = b"No protocol specified\n"
    # X11 connection setup "Failed": status 0, reason length, protocol 11.0, length in words
    pad = (-len(reason)) % 4
    mode["reply"] = (bytes([0, len(reason)]) + (11).to_bytes(2, "little")
                     + (0).to_bytes(2, "little")
                     + ((len(reason) + pad) // 4).to_bytes(2, "little") + reason + b"\0" * pad)
    (reading,) = x11.read_idle([x11.Target(f":{n}", os.getuid())], timeout=2.0)
    assert reading.idle_ms is None and "No protocol specified" in reading.error, reading


def test_only_local_displays_are_asked() -> None:
    (reading,) = x11.read_idle([x11.Target("example.org:0", os.getuid())])
    assert reading.idle_ms is None and "not a local display" in reading.error
