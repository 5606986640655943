"""sessionctl users: one row per user with their CPU, memory and disk use (Task Manager's
Users tab), expandable to sessions and processes."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from .. import jsonvalues
from ..actions.usage import DEFAULT_INTERVAL, MAX_INTERVAL, MIN_INTERVAL
from ..usage_model import SORT_KEYS, UsageSnapshot, sort_rows
from . import usagefmt
from .args import Parser, UsageError, add_backend, parse_session_command
from .runner import run

USAGE = f"""\
Show what each logged-on user's sessions use: CPU, memory and disk.

sessionctl users [username | sessionname | sessionid] [--sessions] [--processes]
                 [--sort KEY] [--reverse] [--interval SECONDS] [--pss] [--json]

  --sessions          Also list each user's sessions under them.
  --processes         Also list each session's processes (implies --sessions).
  --sort KEY          Order rows by {", ".join(SORT_KEYS)} (default user;
                      figures sort largest first); --reverse flips it.
  --interval SECONDS  CPU % and disk rates are measured over this many seconds
                      (default {DEFAULT_INTERVAL:g}; {MIN_INTERVAL:g} to {MAX_INTERVAL:g}).
  --pss               Also read PSS (proportional memory; costs more on big hosts).
  --idle-after SECONDS  A session idle this long counts as Idle (default 300).
  --json              JSON instead of the table.
  --backend NAME      auto (default), procfs, logind or windows.
  /?                  This help; also -h, --help.

CPU% 100 = one core. RSS sums resident memory per process (shared pages count once per
process; PSS divides them). READ/s and WRITE/s are storage I/O (/proc/PID/io read_bytes,
write_bytes); '*' marks a sum that leaves out processes not readable without root,
'-' a figure that could not be read. A user's figures are the union of their sessions'
processes; processes outside every login session are not counted.
Exit status: 0 listed; 1 nobody matched ("No User exists for X") or a bad command line."""


def _parser(prog: str) -> Parser:
    parser = Parser(prog, {})
    parser.add_argument("--json", action="store_true")
    add_backend(parser)
    parser.add_argument("--sessions", action="store_true")
    parser.add_argument("--processes", action="store_true")
    parser.add_argument("--sort", default="user", choices=tuple(SORT_KEYS), metavar="KEY")
    parser.add_argument("--reverse", action="store_true")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL)
    parser.add_argument("--idle-after", type=float, default=300.0)
    parser.add_argument("--pss", action="store_true")
    parser.add_argument("target", nargs="?")
    return parser


def render(
    snap: UsageSnapshot, *, sort: str = "user", reverse: bool = False,
    with_sessions: bool = False, with_processes: bool = False,
) -> str:
    """The users table (with expanded sessions/processes) as text."""
    columns = usagefmt.shown(snap.pss)
    keys = [c.key for c in columns]
    out = [usagefmt.line({c.key: c.title for c in columns}, keys)]
    for user in sort_rows(snap.users, sort, reverse):
        out.append(usagefmt.line(usagefmt.cells(user), keys))
        if not (with_sessions or with_processes):
            continue
        for sess in sort_rows(user.sessions, sort, reverse):
            out.append(usagefmt.line(usagefmt.cells(sess), keys, indent=2))
            if with_processes:
                for p in sort_rows(sess.processes, sort, reverse):
                    out.append(usagefmt.line(usagefmt.cells(p), keys, indent=4))
    return "\n".join(out)


def _body(prog: str, argv: Sequence[str]) -> int:
    ns = parse_session_command(_parser(prog), argv)
    if not MIN_INTERVAL <= ns.interval <= MAX_INTERVAL:
        raise UsageError(
            f"--interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds"
        )
    if not ns.idle_after >= 0:
        raise UsageError("--idle-after must be 0 or more seconds")
    from ..actions.usage import usage

    snap = usage(ns.target, interval=ns.interval, pss=ns.pss, backend=ns.backend,
                 idle_after=ns.idle_after)
    if ns.json:
        doc = snap.to_dict(ns.sessions, ns.processes)
        doc["users"] = [
            u.to_dict(ns.sessions, ns.processes) for u in sort_rows(snap.users, ns.sort,
                                                                    ns.reverse)
        ]
        print(json.dumps(doc, indent=2))
    else:
        if snap.users:
            print(render(snap, sort=ns.sort, reverse=ns.reverse,
                         with_sessions=ns.sessions, with_processes=ns.processes))
        held = snap.idle_held()
        if held["sessions"]:
            rss, pss = jsonvalues.number(held, "rss_bytes"), jsonvalues.number(held, "pss_bytes")
            print(f"Idle and Disc sessions hold {usagefmt.size(rss)} RSS"
                  + (f" ({usagefmt.size(pss)} PSS)" if pss is not None else "")
                  + f" in {held['processes']} process(es) of {held['sessions']} session(s), "
                  f"CPU {held['cpu_percent']}%")
        print(f"(measured over {snap.interval:.2f} s; CPU% 100 = one core)")
    for note in snap.notes:
        print(f"{prog}: {usagefmt.printable(note)}", file=sys.stderr)
    if not snap.users:
        print(f"No User exists for {ns.target or '*'}", file=sys.stderr)
        return 1
    return 0


def users(argv: Sequence[str], prog: str = "sessionctl users") -> int:
    """sessionctl users command line → exit code."""
    return run(prog, USAGE, lambda: _body(prog, argv))
