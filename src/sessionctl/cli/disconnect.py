"""tsdiscon (= sessionctl disconnect): end a session's connection, keep its work."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..actions.disconnect import DEFAULT_TIMEOUT
from ..actions.disconnect import disconnect as do_disconnect
from ..actions.reports import DisconnectResult
from . import fleet as fleet_cli
from .args import COMMON_WINDOWS_FLAGS, Parser, UsageError, add_common, parse_session_command
from .render import emit
from .runner import main as main_of
from .runner import run

USAGE = f"""\
Disconnects a session: its connection ends, the work in it keeps running.

TSDISCON [sessionid | sessionname] [/SERVER:servername] [/V]
         [--timeout SECONDS] [--audit-log PATH] [--json] [--backend NAME]

  sessionid           The ID of the session (see qwinsta).
  sessionname         The name of an Active session (pts/3).
  (none)              Your own session.
  /SERVER:servername  The server holding the session (default: this one); also --server.
  /V                  Report each step; also -v.
  --timeout SECONDS   How long to wait for the connection to end and the session to
                      show as Disc (default {DEFAULT_TIMEOUT:g}).
  --audit-log PATH    Where the audit record goes (as for logoff).
  --json              Print the result as JSON.
  --backend NAME      auto (default), procfs, logind or windows.
  /?                  This help; also -h, --help.

The connection ends as if the network had dropped (the ssh connection closes, the
terminal hangs up); tmux and screen keep running with every process in them, and the
session shows as Disc until the user logs in again and runs `tmux attach` (or
`screen -r`). A session with nothing that would keep running (no tmux or screen) is
refused: that would be a sign-out; use logoff. So are the console and, unless you are
root, other users' sessions. Exit code 0 only when the session is Disc afterwards with
all of its kept work still running.
Same as: sessionctl disconnect [...]

{fleet_cli.FLEET_HELP}

{fleet_cli.SELECT_HELP}
With a selection only sessions whose work a multiplexer keeps are disconnected; the
others are listed as refused. (Closing sessionctl's own reused SSH connections is
`sessionctl close-connections`.)
Example: sessionctl disconnect --servers node[01-99] --idle-over 1h --dry-run"""


def _parser(prog: str) -> Parser:
    parser = Parser(prog, COMMON_WINDOWS_FLAGS)
    add_common(parser)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--audit-log", metavar="PATH")
    fleet_cli.add_options(parser, selection=True)
    parser.add_argument("target", nargs="?")
    return parser


def summary(result: DisconnectResult) -> str:
    """One line: what happened to the session."""
    s = result.session
    what = f"Session {s.id} ({s.user}{', ' + s.name if s.name else ''})"
    if result.ok:
        return f"{what} disconnected in {result.seconds:.2f} s; {len(result.kept)} " \
               "process(es) kept running"
    return f"{what} NOT fully disconnected: " + "; ".join(result.problems)


def _body(prog: str, argv: Sequence[str]) -> int:
    ns = parse_session_command(_parser(prog), argv, allow_remote=True)
    if not 0 < ns.timeout <= 3600:
        raise UsageError(f"--timeout must be between 0 and 3600 seconds, not {ns.timeout:g}")
    if fleet_cli.wanted(ns):
        return remote_disconnect(prog, ns)
    if ns.user or ns.state or ns.idle_over or ns.older_than or ns.dry_run:
        raise UsageError("--user/--state/--idle-over/--older-than/--dry-run need remote hosts")
    progress = (lambda line: emit(f"  {line}")) if ns.verbose and not ns.json else None
    result = do_disconnect(ns.target, backend=ns.backend, timeout=ns.timeout,
                           audit_log=ns.audit_log, progress=progress)
    if ns.json:
        emit(json.dumps(result.to_dict(), indent=2))
    elif ns.verbose or not result.ok:
        emit(summary(result), sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def remote_disconnect(prog: str, ns: argparse.Namespace) -> int:
    """tsdiscon /server:NAME ID, or a selection across hosts; exit 2 if a host failed,
    1 if a session was not fully disconnected (or a named one refused), else 0."""
    from ..fleet import disconnect
    from ..fleet.records import session_from_dict
    from .fleet_logoff import item_line
    from .render import qwinsta_table

    selection = fleet_cli.selection_of(ns)
    if not fleet_cli.single(ns) and ns.target is not None:
        raise UsageError(
            "with --servers, choose sessions with --user/--state/--idle-over/--older-than")
    if ns.target is None and selection.empty:
        raise UsageError(
            "a remote disconnect needs a session id (with /server) or a selection "
            "(--user, --state, --idle-over, --older-than); to close sessionctl's reused "
            "SSH connections use 'sessionctl close-connections'")
    hosts = fleet_cli.hosts_of(ns)
    opts = fleet_cli.options_of(ns, command_timeout=60.0 + 3 * ns.timeout)
    results = disconnect(hosts, ns.target if selection.empty else None,
                         select=None if selection.empty else selection, dry_run=ns.dry_run,
                         backend=ns.backend, options=opts)
    if ns.json:
        done = fleet_cli.collect(results, len(hosts), fleet_cli.print_json_line)
    else:
        done = fleet_cli.in_host_order(fleet_cli.collect(results, len(hosts)), hosts)
        width = max([4, *(len(r.host) for r in done)])
        items = [(r.host, i) for r in done if r.ok for i in (r.result or [])]
        if ns.dry_run:
            blocks = [(r.host, qwinsta_table([session_from_dict(i["session"])
                                              for i in r.result or []
                                              if i.get("outcome") == "would-disconnect"]))
                      for r in done if r.ok]
            count = sum(1 for _, i in items if i.get("outcome") == "would-disconnect")
            emit(f"Would disconnect {count} session(s) (dry run):")
            shown = [b for b in blocks if b[1].count("\n")]
            if shown:
                emit(fleet_cli.with_host_column(shown))
            items = [(h, i) for h, i in items if i.get("outcome") != "would-disconnect"]
        lines = [item_line(h, {**i, "error": i.get("error") or "; ".join(i.get("problems") or [])},
                       width) for h, i in items]
        if lines:
            emit("\n".join(lines))
    bad = ("incomplete", "failed") + (("refused",) if selection.empty else ())
    incomplete = any(isinstance(i, dict) and i.get("outcome") in bad
                     for r in done if r.ok for i in (r.result or []))
    code = fleet_cli.report_failures(prog, done)
    return code or (1 if incomplete else 0)


def disconnect(argv: Sequence[str], prog: str = "tsdiscon") -> int:
    """tsdiscon command line → exit code."""
    return run(prog, USAGE, lambda: _body(prog, argv))


def main() -> None:
    """Console script entry point."""
    main_of("tsdiscon", lambda: disconnect(sys.argv[1:]))
