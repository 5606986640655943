"""sessionctl daemon | policy check: the idle-session policy front ends."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from ..durations import format_duration
from . import usagefmt
from .args import Parser, add_backend, checked_interval
from .render import emit
from .runner import run

DAEMON_USAGE = """\
Enforces the idle-session policy in FILE (TOML; see man sessionctl-policy): warns sessions
over their idle, Disc or session-length limit through the warned logoff (the user may
postpone within max_postpone), cancels a warning when an idle user is back, logs off Disc
sessions over their limit. Every decision goes to stderr and the audit log.

sessionctl daemon --config FILE [--once] [--dry-run] [--audit-log PATH] [--backend NAME]

  --config FILE     The policy (TOML).
  --once            One pass, then exit (for cron).
  --dry-run         Report what would be done; signal, send and schedule nothing.
  --audit-log PATH  Where audit records go (default: SESSIONCTL_AUDIT_LOG, else
                    /var/log/sessionctl/audit.jsonl).
  --backend NAME    auto (default), procfs or logind.
  -h, --help        This help.

SIGHUP reloads FILE; an invalid file is reported (FILE:LINE) and the old rules stay.
Exit status: 0 stopped by SIGTERM/SIGINT (or --once done); 1 FILE invalid at start."""

CHECK_USAGE = """\
Validates a policy file and shows what each current session would get under it: the
rule, the action, why, the latest activity under the rule's sources (and which source),
and what the session holds (RSS, CPU).

sessionctl policy check FILE [--json] [--interval SECONDS] [--backend NAME]

  FILE                The policy (TOML; see man sessionctl-policy).
  --json              One JSON object per session (JSON lines).
  --interval SECONDS  CPU shares (activity "cpu", min_cpu) are measured over this long
                      (default 1).
  --backend NAME      auto (default), procfs or logind.
  -h, --help          This help.

Exit status: 0 valid; 1 invalid (the error names FILE:LINE)."""


def _daemon(prog: str, argv: Sequence[str]) -> int:
    from ..policy.daemon import Daemon

    parser = Parser(prog, {})
    parser.add_argument("--config", required=True, metavar="FILE")
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--audit-log", metavar="PATH")
    add_backend(parser)
    ns = parser.parse(argv)
    daemon = Daemon(ns.config, dry_run=ns.dry_run, audit_log=ns.audit_log, backend=ns.backend)
    if ns.once:
        daemon.tick()
        return 0
    return daemon.run()


def _check(prog: str, argv: Sequence[str]) -> int:
    from ..policy.daemon import check

    parser = Parser(prog, {})
    parser.add_argument("what", choices=("check",))
    parser.add_argument("file")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--interval", type=float, default=1.0)
    add_backend(parser)
    ns = parser.parse(argv)
    checked_interval(ns.interval)
    decisions = check(ns.file, backend=ns.backend, interval=ns.interval)
    if ns.json:
        for d in decisions:
            emit(json.dumps(d.to_dict()))
        return 0
    emit(f"{ns.file}: valid.")
    emit(f"{'ID':>8}  {'USER':<16} {'STATE':<7} {'RULE':<16} {'LAST ACTIVE':<18} {'RSS':>7} "
         f"{'CPU%':>5}  WOULD")
    for d in decisions:
        what = {"warn": f"warn now (sign-out in {format_duration(d.notice)})",
                "logoff": "log off now", "disconnect": "disconnect now", "skip": "skip",
                "none": "nothing",
                "wait": "nothing yet", "pending": "(pending)", "cancel": "cancel the warning",
                "resume": "resume the countdown"}[d.action]
        rule = d.rule.name if d.rule else "-"
        act = (f"{d.activity.source} {format_duration(d.activity.idle)}" if d.activity
               else "-")
        r = d.readings
        cpu = "-" if r.cpu_percent is None else f"{r.cpu_percent:.1f}"
        emit(f"{d.session.id:>8}  {d.session.user[:16]:<16} {d.session.state.value:<7} "
             f"{rule[:16]:<16} {act[:18]:<18} {usagefmt.size(r.rss_bytes):>7} {cpu:>5}  "
             f"{what}: {d.reason}")
    return 0


def daemon(argv: Sequence[str], prog: str = "sessionctl daemon") -> int:
    return run(prog, DAEMON_USAGE, lambda: _daemon(prog, argv))


def policy(argv: Sequence[str], prog: str = "sessionctl policy") -> int:
    return run(prog, CHECK_USAGE, lambda: _check(prog, argv))


def main() -> None:
    sys.exit(daemon(sys.argv[1:]))
