"""sessionctl status: what answers here and how many sessions there are (exit 0 when the
tool works, also when nobody is logged in: the first thing to run after installing)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from .. import __version__, api
from ..backends import get_backend
from .args import Parser, add_backend
from .render import emit
from .runner import run

USAGE = """\
Shows that sessionctl works here: its version, the backend that answers, and how many
sessions and users there are (exit 0 even when nobody is logged in).

sessionctl status [--json] [--backend NAME]

  --json              The same as one JSON object.
  --backend NAME      auto (default), or a backend by name.
  -h, --help          This help.

Then: qwinsta (sessions), quser (users), sessionctl users (what each uses); see
man sessionctl."""


def _body(prog: str, argv: Sequence[str]) -> int:
    parser = Parser(prog, {})
    parser.add_argument("--json", action="store_true")
    add_backend(parser)
    ns = parser.parse(argv)
    backend = get_backend(ns.backend)
    found = api.sessions(backend=backend)
    states = Counter(s.state.value for s in found)
    users = sorted({s.user for s in found})
    from ..actions.schedule import pending_logoffs

    pending = len(pending_logoffs())
    if ns.json:
        emit(json.dumps({
            "version": __version__, "backend": backend.name, "sessions": len(found),
            "states": dict(states), "users": len(users), "pending_logoffs": pending,
        }))
        return 0
    emit(f"sessionctl {__version__}, backend {backend.name}")
    if not found:
        emit("No one is logged in (0 sessions).")
    else:
        by_state = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        emit(f"{len(found)} session(s) ({by_state}) of {len(users)} user(s); "
             f"{pending} sign-out(s) pending.")
    return 0


def status(argv: Sequence[str], prog: str = "sessionctl status") -> int:
    """sessionctl status command line → exit code."""
    return run(prog, USAGE, lambda: _body(prog, argv))
