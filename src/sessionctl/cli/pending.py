"""sessionctl postpone | cancel | pending: the warned-logoff commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime

from ..actions.schedule import cancel_logoff, pending_logoffs, postpone_logoff
from ..durations import format_duration, parse_duration
from .args import Parser, UsageError
from .render import emit
from .runner import run

POSTPONE_USAGE = """\
Pushes back the sign-out announced for your session.

sessionctl postpone [DURATION] [--session ID] [--json]

  DURATION            How much later (90, 45s, 10m, 1h30m, 2d); default 10 min, or what
                      is left of the limit the admin set (--max-postpone).
  --session ID        The session whose sign-out to push back (default: your own).
  --json              Print the pending sign-out as JSON.
  -h, --help          This help.

Only the session's own user (or root) may postpone. Exit status: 0 postponed; 1 refused,
nothing pending, or over the limit."""

CANCEL_USAGE = """\
Cancels a warned logoff (root, or whoever scheduled it); the user is told.

sessionctl cancel SESSIONID [--json]

  SESSIONID           The session whose announced sign-out to cancel (see pending).
  --json              Print {"cancelled": SESSIONID}.
  -h, --help          This help.

Exit status: 0 cancelled; 1 refused or nothing pending."""

PENDING_USAGE = """\
Lists the warned logoffs that are counting down.

sessionctl pending [--json]

  --json              One JSON object per pending sign-out (JSON lines).
  -h, --help          This help."""


def _at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _postpone(prog: str, argv: Sequence[str]) -> int:
    parser = Parser(prog, {})
    parser.add_argument("duration", nargs="?")
    parser.add_argument("--session", metavar="ID")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse(argv)
    seconds = None
    if ns.duration is not None:
        try:
            seconds = parse_duration(ns.duration, what="postpone")
        except Exception as exc:
            raise UsageError(str(exc)) from None
    p = postpone_logoff(seconds, ns.session)
    if ns.json:
        emit(json.dumps(p.to_dict(), indent=2))
    else:
        emit(f"The sign-out of session {p.session_id} is now at {_at(p.logoff_at)}; "
               f"{format_duration(p.allowance)} more postponement allowed.")
    return 0


def _cancel(prog: str, argv: Sequence[str]) -> int:
    parser = Parser(prog, {})
    parser.add_argument("session")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse(argv)
    p = cancel_logoff(ns.session)
    if ns.json:
        emit(json.dumps({"cancelled": p.session_id}))
    else:
        emit(f"The sign-out of session {p.session_id} ({p.user}) is cancelled.")
    return 0


def _pending(prog: str, argv: Sequence[str]) -> int:
    parser = Parser(prog, {})
    parser.add_argument("--json", action="store_true")
    ns = parser.parse(argv)
    rows = pending_logoffs()
    if ns.json:
        for p in rows:
            emit(json.dumps({**p.to_dict(), "worker_alive": p.worker_alive}))
        return 0
    if not rows:
        emit("No sign-out is pending.")
        return 0
    emit(f"{'ID':>8}  {'USER':<20} {'LOGOFF AT':<19}  {'BY':<12} STATUS")
    for p in rows:
        status = "counting down" if p.worker_alive else "countdown not running"
        emit(f"{p.session_id:>8}  {p.user[:20]:<20} {_at(p.logoff_at):<19}  "
               f"{p.scheduled_by[:12]:<12} {status}")
    return 0


def postpone(argv: Sequence[str], prog: str = "sessionctl postpone") -> int:
    return run(prog, POSTPONE_USAGE, lambda: _postpone(prog, argv))


def cancel(argv: Sequence[str], prog: str = "sessionctl cancel") -> int:
    return run(prog, CANCEL_USAGE, lambda: _cancel(prog, argv), resume=False)


def pending(argv: Sequence[str], prog: str = "sessionctl pending") -> int:
    return run(prog, PENDING_USAGE, lambda: _pending(prog, argv))


def main() -> None:
    sys.exit(pending(sys.argv[1:]))
