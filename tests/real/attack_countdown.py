"""Run by a lab user inside their login: throw hostile requests at a countdown's socket.

    python attack_countdown.py SOCKET CORPUS OUT

CORPUS holds one JSON object per line: {"data": base64 bytes, "close": bool}. Each case is
one connection: the bytes, then (if close) end of input, then whatever the worker answers.
After the corpus: connections held open without a word (slowloris), connections sending
one byte every 0.3 s, and a burst of connect/close. OUT gets the replies and timings.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
import time


def one(path: str, data: bytes, close: bool) -> str:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    try:
        s.connect(path)
        try:
            s.sendall(data)
            if close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the worker may close early (too large): read what it said
        reply = b""
        while len(reply) < 1 << 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply.decode("utf-8", "replace")
    except OSError as exc:
        return f"OSError: {exc}"
    finally:
        s.close()


def main(path: str, corpus: str, out: str) -> None:
    started = time.monotonic()
    replies = []
    with open(corpus) as f:
        for line in f:
            case = json.loads(line)
            replies.append(one(path, base64.b64decode(case["data"]), case.get("close", True)))
    held = []
    for _ in range(60):  # slowloris: connect and say nothing
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
        except OSError:
            s.close()
            continue
        held.append(s)
    drip_end = time.monotonic() + 3
    while time.monotonic() < drip_end:  # drip one byte at a time into what is still open
        for s in held:
            with contextlib.suppress(OSError):
                s.send(b" ")
        time.sleep(0.3)
    for s in held:
        s.close()
    burst = 0
    for _ in range(2000):  # many connections in a row
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            burst += 1
        except OSError:
            pass
        s.close()
    with open(out, "w") as f:
        json.dump({"replies": replies, "held": len(held), "burst": burst,
                   "seconds": time.monotonic() - started}, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
