"""The ForceCommand of the lab's compromised host (run by sshd, as the login user).

    /usr/bin/python3 hostile_host.py MODES.json

MODES.json maps a server address to a mode; the address this connection came to
(SSH_CONNECTION) picks how to answer the request that arrives on stdin: a record that does
not fit the schema, a flood, an endless line, a hang, a long error with escape sequences.
Stdlib only: it runs under the system python3, not sessionctl's.
"""

from __future__ import annotations

import json
import os
import select
import sys

SESSION = {
    "id": "4242", "name": "pts/9", "user": "mallory", "uid": 6666, "state": "Active",
    "type": "ssh", "device": "/dev/pts/9", "remote_host": "10.9.9.9", "service": "sshd",
    "login_time": "2026-01-01T10:00:00+00:00", "idle_seconds": 12.5, "leader_pid": 4242,
    "pids": [4242, 4243], "current": False, "console": False, "ttys": ["pts/9"],
    "backend": "procfs", "logoff_at": None, "display": "", "protocol": "ssh", "remote": True,
    "client_address": "10.9.9.9", "idle_source": "tty", "multiplexers": [],
    "attached_from": [],
}
BAD_SESSION = {
    "bogus-state": {"state": "Bogus"},
    "uid-x": {"uid": "x"},
    "pids-5": {"pids": 5},
    "login-yesterday": {"login_time": "yesterday"},
    "idle-abc": {"idle_seconds": "abc"},
}
OUT = sys.stdout.buffer


def answer(result: object, ok: bool = True, error: str | None = None) -> None:
    body = {"ok": ok, "result": result} if ok else {"ok": False, "error": error}
    OUT.write(b"SCTL HAVE\n" + json.dumps(body).encode() + b"\n")
    OUT.flush()


def good(op: str) -> object:
    if op == "logoff":
        return [{"session": "4242", "user": "mallory", "name": "pts/9", "outcome": "gone"}]
    if op == "msg":
        return {"sessions": [], "deliveries": [], "dry_run": True}
    return [SESSION]


def flood(stream, chunk: bytes) -> None:
    try:
        while True:
            stream.write(chunk)
            stream.flush()
    except OSError:  # the client cut us off
        pass


def wait_for_hangup() -> None:
    """Say nothing until the connection goes (stdin ends), at most 10 minutes."""
    while True:
        ready, _, _ = select.select([sys.stdin.buffer], [], [], 600)
        if not ready or not os.read(sys.stdin.fileno(), 65536):
            return


def main() -> None:
    with open(sys.argv[1]) as f:
        modes = json.load(f)
    server = [*os.environ.get("SSH_CONNECTION", "").split(), "", "", ""][2]
    mode = modes.get(server, "hang")
    line = sys.stdin.buffer.readline(1 << 20)
    try:
        op = json.loads(line).get("op", "query")
    except ValueError:
        op = "query"
    if mode in BAD_SESSION:
        if op == "query":
            answer([{**SESSION, **BAD_SESSION[mode]}])
        else:
            answer(good(op))
    elif mode == "logoff-no-session":
        answer([{"user": "mallory", "outcome": "logged-off"}] if op == "logoff" else good(op))
    elif mode == "msg-list":
        answer([] if op == "msg" else good(op))
    elif mode == "long-error":
        answer(None, ok=False, error="\x1b[31m" + "A" * 1074 + "\x1b]0;pwned\x07\r\nEND")
    elif mode == "deep-json":
        OUT.write(b"SCTL HAVE\n" + b'{"ok": true, "result": ' + b"[" * 200_000 + b"\n")
        OUT.flush()
    elif mode == "flood-stdout":
        OUT.write(b"SCTL HAVE\n")
        flood(OUT, (b"x" * 1023 + b"\n") * 64)
    elif mode == "flood-stderr":
        flood(sys.stderr.buffer, (b"y" * 1023 + b"\n") * 64)
    elif mode == "endless-line":
        OUT.write(b"SCTL HAVE\n")
        flood(OUT, b"z" * 65536)
    elif mode == "no-header-flood":
        flood(OUT, b"w" * 65536)
    else:  # hang: the connection is up, the command never answers
        wait_for_hangup()


if __name__ == "__main__":
    main()
