"""sessionctl top: the interactive Users screen (see sessionctl.tui)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..actions.usage import MAX_INTERVAL
from ..usage_model import SORT_KEYS
from .args import Parser, UsageError, add_backend, parse_session_command
from .runner import run

USAGE = """\
Show who uses what, live: users with their sessions and processes, refreshed every
second; send messages, sign sessions out, end processes.

sessionctl top [username | sessionname | sessionid] [--interval SECONDS] [--sort KEY]
               [--pss] [--idle-after SECONDS] [--rescan SECONDS] [--backend NAME]

  --interval SECONDS  Refresh (and measuring) interval, 0.5 to 3600 (default 1).
  --sort KEY          Initial sort column (default cpu).
  --pss               Also show PSS (proportional memory).
  --idle-after SECONDS  A session idle this long shows as Idle (default 300).
  --rescan SECONDS    Look at every process (new logins) this often (default 5);
                      in between, known sessions' processes and new PIDs are read.
  --backend NAME      auto (default), procfs or logind.
  /?                  This help; also -h, --help.

Keys: arrows move, Enter/Space/Right expand, Left collapse, s sort, r reverse,
m message, l sign out, k end process, ? help, q quit. Needs a terminal of at
least 60x10. Exit status: 0 after q; 1 no terminal, or a bad command line."""


def _parser(prog: str) -> Parser:
    parser = Parser(prog, {})
    add_backend(parser)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--sort", default="cpu", choices=tuple(SORT_KEYS), metavar="KEY")
    parser.add_argument("--pss", action="store_true")
    parser.add_argument("--rescan", type=float, default=5.0)
    parser.add_argument("--idle-after", type=float, default=300.0)
    parser.add_argument("target", nargs="?")
    return parser


def _body(prog: str, argv: Sequence[str]) -> int:
    ns = parse_session_command(_parser(prog), argv)
    if not 0.5 <= ns.interval <= MAX_INTERVAL:
        raise UsageError(f"--interval must be between 0.5 and {MAX_INTERVAL:g} seconds")
    if not 0 <= ns.rescan <= MAX_INTERVAL:
        raise UsageError(f"--rescan must be between 0 and {MAX_INTERVAL:g} seconds")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(f"{prog}: needs a terminal; use 'sessionctl users' in scripts", file=sys.stderr)
        return 1
    if os.environ.get("TERM", "dumb") == "dumb":
        print(f"{prog}: TERM is unset or dumb; set TERM (e.g. xterm-256color)", file=sys.stderr)
        return 1
    from ..tui.app import TopApp

    app = TopApp(target=ns.target, interval=ns.interval, backend=ns.backend, pss=ns.pss,
                 idle_after=ns.idle_after, sort=ns.sort, rescan=ns.rescan)
    app.run()
    if app.return_code:  # the screen ended on an internal error (Textual printed it)
        print(f"{prog}: internal error: the screen ended unexpectedly", file=sys.stderr)
        return 70
    return 0


def top(argv: Sequence[str], prog: str = "sessionctl top") -> int:
    """sessionctl top command line → exit code."""
    return run(prog, USAGE, lambda: _body(prog, argv))
