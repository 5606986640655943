"""qwinsta / quser (= sessionctl query session / query user)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .. import api
from ..backends import get_backend
from . import fleet as fleet_cli
from . import render
from .args import COMMON_WINDOWS_FLAGS, Parser, add_common, parse_session_command, say
from .runner import main as main_of
from .runner import run

QWINSTA_USAGE = """\
Display information about login sessions.

QWINSTA [sessionname | username | sessionid] [/SERVER:servername] [/V]
        [--json] [--backend auto|procfs|logind|windows]

  sessionname         The session with this name (pts/3, tty1).
  username            The sessions of this user.
  sessionid           The session with this ID (its audit session id).
  /SERVER:servername  The server to query (default: this one); also --server NAME.
  /V                  Also show processes, leader PID, idle seconds and remote host; also -v.
  --json              A JSON list of session objects instead of the table.
  --backend NAME      Where sessions come from (default: auto).
  /?                  This help; also -h, --help.

Exit status: 0 sessions listed; 1 none matched ("No session exists for X") or a bad
command line; 2 (remote hosts) a host failed.
Same as: sessionctl query session [...]

""" + fleet_cli.FLEET_HELP

QUSER_USAGE = """\
Display information about users logged on to the system.

QUSER [username | sessionname | sessionid] [/SERVER:servername] [/V]
      [--json] [--backend auto|procfs|logind|windows]

  username            The sessions of this user.
  sessionname         The session with this name (pts/3, tty1).
  sessionid           The session with this ID (its audit session id).
  /SERVER:servername  The server to query (default: this one); also --server NAME.
  /V                  Accepted for symmetry; also -v.
  --json              A JSON list of session objects instead of the table.
  --backend NAME      Where sessions come from (default: auto).
  /?                  This help; also -h, --help.

Exit status: 0 sessions listed; 1 none matched ("No User exists for X", as on Windows)
or a bad command line; 2 (remote hosts) a host failed.
Same as: sessionctl query user [...]

""" + fleet_cli.FLEET_HELP


def _parser(prog: str) -> Parser:
    parser = Parser(prog, COMMON_WINDOWS_FLAGS)
    add_common(parser)
    fleet_cli.add_options(parser)
    parser.add_argument("target", nargs="?")
    return parser


def _query(prog: str, argv: Sequence[str], kind: str) -> int:
    ns = parse_session_command(_parser(prog), argv, allow_remote=True)
    if fleet_cli.wanted(ns):
        from .fleet_query import remote_query

        return remote_query(prog, ns, kind)
    backend = get_backend(ns.backend)
    # the tables show no processes (qwinsta /V shows their number, JSON their PIDs)
    found = api.sessions(ns.target, backend=backend, processes=ns.json or ns.verbose)
    if kind == "user":  # as quser: sessions nobody is signed in to (listeners, services) stay out
        found = [s for s in found if s.user]
    for warning in backend.warnings():
        say(prog, f"warning: {warning}")
    if ns.json:
        import json

        print(json.dumps([s.to_dict() for s in found], indent=2))
    elif found:
        if kind == "session":
            print(render.qwinsta_table(found, verbose=ns.verbose))
        else:
            print(render.quser_table(found))
    if not found:
        noun = "User" if kind == "user" else "session"
        print(f"No {noun} exists for {ns.target or '*'}", file=sys.stderr)
        return 1
    return 0


def qwinsta(argv: Sequence[str], prog: str = "qwinsta") -> int:
    """query session."""
    return run(prog, QWINSTA_USAGE, lambda: _query(prog, argv, "session"))


def quser(argv: Sequence[str], prog: str = "quser") -> int:
    """query user."""
    return run(prog, QUSER_USAGE, lambda: _query(prog, argv, "user"))


def qwinsta_main() -> None:
    """Console script entry point."""
    main_of("qwinsta", lambda: qwinsta(sys.argv[1:]))


def quser_main() -> None:
    """Console script entry point."""
    main_of("quser", lambda: quser(sys.argv[1:]))
