"""The helper process that signs out its caller's own session (``signout.in_helper``).

A caller that cannot protect itself from the signals of its own sign-out (it is not on
its main thread, e.g. a TUI worker thread) starts this module instead of changing its
own dispositions. Here, on our own main thread, we ignore those signals for good (we
exit when done), sign the session out sparing the caller, and report on stdout, one
JSON object a line: ``{"step": ...}`` per stage, then ``{"result": ...}`` or
``{"error": ..., "type": ...}``. If the caller has gone meanwhile (its terminal hung up),
we finish the sign-out all the same: the audit log has the record.

Request on stdin: {"session", "backend", "grace", "audit_log", "base", "spare"}.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys

from ..api import find_session
from ..backends import get_backend
from ..errors import SessionctlError
from .logoff import finish_linux
from .reports import Step
from .signout import SHIELD, carry_out


def _say(out: int | None, payload: dict[str, object]) -> int | None:
    """One line to the caller; None from then on if it has gone."""
    if out is None:
        return None
    data = (json.dumps(payload, default=str) + "\n").encode()
    try:
        while data:
            data = data[os.write(out, data) :]
    except OSError:
        return None
    return out


def main() -> int:
    for sig in SHIELD:
        signal.signal(sig, signal.SIG_IGN)
    request = json.loads(sys.stdin.buffer.read())
    out: int | None = os.dup(sys.stdout.fileno())
    with contextlib.suppress(OSError):  # nothing else of ours may write to the caller
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 1)
        os.close(devnull)

    def progress(step: Step) -> None:
        nonlocal out
        out = _say(out, {"step": step.__dict__})

    try:
        be = get_backend(request["backend"])
        session = find_session(request["session"], backend=be)
        spare = {(int(p), int(s)) for p, s in request["spare"]}
        done = carry_out(be, session, float(request["grace"]), progress, spare)
        result = finish_linux(be, session, request["base"], request["audit_log"], done)
    except SessionctlError as exc:
        _say(out, {"error": str(exc), "type": type(exc).__name__})
        return 1
    _say(out, {"result": {**result.to_dict(), "audit_path": result.audit_path}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
