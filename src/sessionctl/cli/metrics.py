"""sessionctl metrics | report: Prometheus metrics now, and what the policy reclaimed."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

from ..durations import format_duration, parse_duration
from ..errors import InvalidArgument
from . import usagefmt
from .args import Parser, UsageError, add_backend, checked_interval
from .render import emit
from .runner import run

METRICS_USAGE = """\
Prints the session and policy metrics in Prometheus' text format (for node_exporter's
textfile collector: sessionctl metrics > DIR/sessionctl.prom.$$ && mv ... DIR/sessionctl.prom):
sessions by state and type, idle seconds per session, per-user CPU (cores), memory and
processes, memory pressure, and the policy's warnings, postponements, cancels,
sign-outs (by rule and outcome) and reclaimed memory. The policy daemon serves the same
on /metrics when its policy has a [metrics] section.

sessionctl metrics [--openmetrics] [--interval SECONDS] [--backend NAME]

  --openmetrics       OpenMetrics text instead of the Prometheus 0.0.4 format.
  --interval SECONDS  CPU is measured over this long (default 1).
  --backend NAME      auto (default), procfs or logind.
  -h, --help          This help."""

REPORT_USAGE = """\
What the policy's sign-outs reclaimed, summed per rule and user: sign-outs (and how many
left processes behind), the resident memory and processes the sessions held just before,
and their idle time. Figures are recorded by the daemon and the countdown workers in
state.db.

sessionctl report [--since DURATION] [--json]

  --since DURATION    Only sign-outs in the last DURATION (e.g. 7d, 12h; default: all).
  --json              One JSON document instead of the table.
  -h, --help          This help."""


def _metrics(prog: str, argv: Sequence[str]) -> int:
    parser = Parser(prog, {})
    parser.add_argument("--openmetrics", action="store_true")
    parser.add_argument("--interval", type=float, default=1.0)
    add_backend(parser)
    ns = parser.parse(argv)
    checked_interval(ns.interval)
    from ..policy import metrics

    view = metrics.current_view(interval=ns.interval, backend=ns.backend)
    sys.stdout.write(metrics.render(view, openmetrics=ns.openmetrics))
    return 0


def _report(prog: str, argv: Sequence[str]) -> int:
    parser = Parser(prog, {})
    parser.add_argument("--since")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse(argv)
    since = 0.0
    if ns.since is not None:
        try:
            since = time.time() - parse_duration(ns.since, what="--since")
        except InvalidArgument as exc:
            raise UsageError(str(exc)) from None
    from ..actions.reclaim import report

    rows = report(since)
    if ns.json:
        print(json.dumps({"since": since or None, "rows": [r.to_dict() for r in rows],
                          "total": _total(rows)}, indent=2))
        return 0
    span = f"in the last {format_duration(time.time() - since)}" if ns.since else "recorded"
    if not rows:
        emit(f"No policy sign-outs {span}.")
        return 0
    emit(f"Policy sign-outs {span}:")
    emit(f"{'RULE':<20} {'USER':<16} {'SIGN-OUTS':>9} {'RSS':>7} {'PROCS':>6} {'IDLE (sum)':>12}")
    for r in rows:
        emit(f"{r.rule[:20]:<20} {r.user[:16]:<16} {r.signouts:>9} "
             f"{usagefmt.size(r.rss_bytes):>7} {r.processes:>6} "
             f"{format_duration(r.idle_seconds):>12}"
             + (f"  ({r.incomplete} incomplete)" if r.incomplete else ""))
    t = _total(rows)
    emit(f"{'total':<20} {'':<16} {t['signouts']:>9} {usagefmt.size(t['rss_bytes']):>7} "
         f"{t['processes']:>6} {format_duration(t['idle_seconds']):>12}")
    return 0


def _total(rows: list) -> dict:
    return {"signouts": sum(r.signouts for r in rows),
            "incomplete": sum(r.incomplete for r in rows),
            "rss_bytes": sum(r.rss_bytes for r in rows),
            "processes": sum(r.processes for r in rows),
            "idle_seconds": round(sum(r.idle_seconds for r in rows), 1)}


def metrics(argv: Sequence[str], prog: str = "sessionctl metrics") -> int:
    return run(prog, METRICS_USAGE, lambda: _metrics(prog, argv))


def report(argv: Sequence[str], prog: str = "sessionctl report") -> int:
    return run(prog, REPORT_USAGE, lambda: _report(prog, argv))
