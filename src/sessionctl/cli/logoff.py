"""logoff (= sessionctl logoff): sign a session out completely."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..actions.logoff import DEFAULT_GRACE, MAX_GRACE, LogoffResult, Step
from ..actions.logoff import logoff as do_logoff
from ..errors import NotSupported
from . import fleet as fleet_cli
from .args import COMMON_WINDOWS_FLAGS, Parser, UsageError, add_common, parse_session_command
from .render import emit
from .runner import main as main_of
from .runner import run

if TYPE_CHECKING:
    from ..actions.desktop_logout import DesktopLogoff

USAGE = f"""\
Terminates a session: every process of it ends and the session is deleted.

LOGOFF [sessionid | sessionname] [/SERVER:servername] [/V]
       [--grace SECONDS] [--allow-console] [--audit-log PATH] [--json]
       [--notice DURATION [--message TEXT] [--max-postpone DURATION]]

  sessionid           The ID of the session (see qwinsta).
  sessionname         The name of an Active session (pts/3).
  (none)              Your own session.
                      A user name is not a session, as on Windows: `quser USER` lists
                      the user's session IDs (logoff USER names them too).
  /SERVER:servername  The server holding the session (default: this one); also --server.
  /V                  Report each step: what was signalled, how many, how long; also -v.
  --grace SECONDS     How long processes get after the hangup to save and exit
                      (default {DEFAULT_GRACE:g}); then SIGTERM, then SIGKILL. 0 gives
                      none: SIGTERM and SIGKILL follow at once, and an editor still
                      saving (nano, vim) may lose unsaved work.
  --allow-console     Also log off the console session (refused by default).
  --audit-log PATH    Where the audit record goes (default: /var/log/sessionctl/audit.jsonl
                      for root, ~/.local/state/sessionctl/audit.jsonl otherwise).
  --json              Print the result as JSON.
  --notice DURATION   Warn first and sign out after DURATION (e.g. 10m): a message now,
                      reminders (1 h, 30, 10, 5, 1 min, 10 s before), then the logoff.
                      The user may postpone (sessionctl postpone) up to --max-postpone
                      in total (default 30m; 0 forbids it); root or you may
                      `sessionctl cancel ID`. The countdown survives your terminal closing.
  --message TEXT      Your words in the warning (with --notice).
  --backend NAME      auto (default), procfs, logind or windows.
  /?                  This help; also -h, --help.

Warn the user first with msg: unsaved work is saved only by programs that handle
the hangup (editors such as nano and vim do).
Exit status: 0 signed out completely (or, with --notice, the countdown started); 1 refused,
no such session, a bad command line, or processes left (they are listed); 2 (remote
hosts) a host failed.
Same as: sessionctl logoff [...]

{fleet_cli.FLEET_HELP}

{fleet_cli.SELECT_HELP}
Example: logoff --servers node[01-99] --state Disc --older-than 1h --dry-run"""


def _parser(prog: str) -> Parser:
    parser = Parser(prog, COMMON_WINDOWS_FLAGS)
    add_common(parser)
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE)
    parser.add_argument("--allow-console", action="store_true")
    parser.add_argument("--audit-log", metavar="PATH")
    parser.add_argument("--notice", metavar="DURATION")
    parser.add_argument("--message", metavar="TEXT")
    parser.add_argument("--max-postpone", metavar="DURATION")
    fleet_cli.add_options(parser, selection=True)
    parser.add_argument("target", nargs="?")
    return parser


def _durations(ns) -> tuple[float, float]:
    from ..actions.schedule import DEFAULT_MAX_POSTPONE
    from ..durations import parse_duration

    try:
        notice = parse_duration(ns.notice, what="--notice")
        most = DEFAULT_MAX_POSTPONE
        if ns.max_postpone is not None:
            most = parse_duration(ns.max_postpone, what="--max-postpone", allow_zero=True)
    except Exception as exc:
        raise UsageError(str(exc)) from None
    return notice, most


def _schedule(ns) -> int:
    from ..actions.schedule import schedule_logoff

    notice, most = _durations(ns)
    p, report = schedule_logoff(
        ns.target, notice, message=ns.message, max_postpone=most, grace=ns.grace,
        allow_console=ns.allow_console, backend=ns.backend, audit_log=ns.audit_log,
    )
    delivered = [d.device for d in report.deliveries if d.ok]
    if ns.json:
        emit(json.dumps({**p.to_dict(), "warned_on": delivered}, indent=2))
        return 0
    from datetime import datetime

    at = datetime.fromtimestamp(p.logoff_at).strftime("%Y-%m-%d %H:%M:%S")
    emit(f"Session {p.session_id} ({p.user}) will be logged off at {at}; "
           f"cancel with: sessionctl cancel {p.session_id}")
    if delivered:
        emit(f"Warned on {', '.join(delivered)}.")
    else:
        emit(f"{ns.prog}: warning: the user could not be told (no terminal reached)",
               sys.stderr)
    return 0




def describe(step: Step) -> str:
    """One /v line."""
    extra = f" ({step.detail})" if step.detail else ""
    return (
        f"  {step.name}: {step.signal} to {step.signalled} process(es); "
        f"{step.remaining} left after {step.seconds:.2f} s{extra}"
    )


def describe_desktop(d: DesktopLogoff) -> str:
    """/v lines for a desktop: who ended by themselves, on a signal, or was killed."""
    lines = [f"  desktop: {d.detail or d.request}"]
    lines += [f"  inhibitor: {i.who}: {i.why} ({i.source}{', ' + i.what if i.what else ''}"
              f"{', pid ' + str(i.pid) if i.pid else ''})" for i in d.inhibitors]
    for label, names in (("ended by themselves", d.ended_by_themselves),
                         ("ended on a signal", d.ended_on_signal), ("killed", d.killed)):
        lines.append(f"  {label}: {' '.join(names) if names else '-'}")
    return "\n".join(lines)


def _body(prog: str, argv: Sequence[str]) -> int:
    ns = parse_session_command(_parser(prog), argv, allow_remote=True)
    if not 0 <= ns.grace <= MAX_GRACE:  # checked here too, to print the usage
        raise UsageError(f"--grace must be between 0 and {MAX_GRACE:g} seconds, not {ns.grace:g}")
    if fleet_cli.wanted(ns):
        if ns.notice is not None:
            ns.notice_seconds, ns.max_postpone_seconds = _durations(ns)
        elif ns.message is not None or ns.max_postpone is not None:
            raise UsageError("--message and --max-postpone go with --notice")
        from .fleet_logoff import remote_logoff

        return remote_logoff(prog, ns)
    if ns.user or ns.state or ns.idle_over or ns.older_than or ns.dry_run:
        raise UsageError("--user/--state/--idle-over/--older-than/--dry-run need remote hosts")
    if ns.notice is not None:
        if sys.platform == "win32":
            raise NotSupported("not supported here: a warned logoff (--notice) needs the "
                               "Linux countdown worker; warn with msg, then logoff")
        ns.prog = prog
        return _schedule(ns)
    if ns.message is not None or ns.max_postpone is not None:
        raise UsageError("--message and --max-postpone go with --notice")
    progress = (lambda step: emit(describe(step))) if ns.verbose and not ns.json else None
    result: LogoffResult = do_logoff(
        ns.target,
        grace=ns.grace,
        backend=ns.backend,
        allow_console=ns.allow_console,
        audit_log=ns.audit_log,
        progress=progress,
    )
    if ns.json:
        emit(json.dumps(result.to_dict(), indent=2))
    elif ns.verbose:
        s = result.session
        state = "logged off" if result.ok else "NOT fully logged off"
        emit(
            f"Session {s.id} ({s.user}{', ' + s.name if s.name else ''}) {state} "
            f"in {result.seconds:.2f} s" + ("; login record closed" if result.record_closed else "")
        )
        if result.desktop is not None:
            emit(describe_desktop(result.desktop))
    if not result.ok:
        emit(f"{prog}: session {result.session.id}: NOT fully logged off: "
             f"{len(result.left)} process(es) left", sys.stderr)
        for x in result.left:
            who = ", ".join(w for w in (x.comm, "" if x.user == "?" else x.user) if w)
            emit(f"  {x.pid}{f' ({who})' if who else ''}: {x.reason}", sys.stderr)
        return 1
    return 0


def logoff(argv: Sequence[str], prog: str = "logoff") -> int:
    """logoff command line → exit code."""
    return run(prog, USAGE, lambda: _body(prog, argv))


def main() -> None:
    """Console script entry point."""
    main_of("logoff", lambda: logoff(sys.argv[1:]))
