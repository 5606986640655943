"""logoff on remote hosts: one session (/server:NAME ID) or a selection across a fleet."""

from __future__ import annotations

import argparse
import sys

from . import fleet as fleet_cli
from .render import emit, qwinsta_table

DONE = ("logged-off", "would-log-off", "gone", "scheduled")


def item_line(host: str, item: dict[str, object], width: int) -> str:
    """One line per session acted on: host, session (user, name), outcome, what is left."""
    name = f", {item['name']}" if item.get("name") else ""
    what = f"{item.get('session')} ({item.get('user')}{name})"
    detail = f" {item.get('seconds', 0):.2f} s" if "seconds" in item else ""
    extra = f": {item['error']}" if item.get("error") else ""
    if item.get("logoff_at"):
        extra += f" at {item['logoff_at']}"
    left, remaining = item.get("left"), item.get("remaining")
    if isinstance(left, list) and left:  # what is still running, whose, and why
        extra += ": left " + "; ".join(
            f"{x.get('pid')} ({x.get('comm')}, {x.get('user')}): {x.get('reason')}"
            for x in left if isinstance(x, dict))
    elif isinstance(remaining, list) and remaining:
        extra += f": processes left {' '.join(map(str, remaining))}"
    return f"{host:<{width}} {what:<32} {item.get('outcome')}{detail}{extra}"


def remote_logoff(prog: str, ns: argparse.Namespace) -> int:
    """Run logoff on the hosts the command line names; exit 2 if a host failed, 1 if a
    session was not fully logged off, else 0."""
    from ..fleet import logoff
    from ..fleet.records import session_from_dict
    from .args import UsageError

    selection = fleet_cli.selection_of(ns)
    if not fleet_cli.single(ns) and ns.target is not None:
        raise UsageError(
            "with --servers, choose sessions with --user/--state/--idle-over/--older-than"
        )
    if ns.target is None and selection.empty:
        raise UsageError(
            "a remote logoff needs a session id (with /server) or a selection "
            "(--user, --state, --idle-over, --older-than)"
        )
    hosts = fleet_cli.hosts_of(ns)
    opts = fleet_cli.options_of(ns, command_timeout=60.0 + 3 * ns.grace)
    results = logoff(
        hosts,
        ns.target if selection.empty else None,
        select=None if selection.empty else selection,
        dry_run=ns.dry_run,
        grace=ns.grace,
        allow_console=ns.allow_console,
        backend=ns.backend,
        options=opts,
        notice=getattr(ns, "notice_seconds", None),
        message=ns.message,
        max_postpone=getattr(ns, "max_postpone_seconds", None),
    )
    if ns.json:
        done = fleet_cli.collect(results, len(hosts), fleet_cli.print_json_line)
    else:
        done = fleet_cli.in_host_order(fleet_cli.collect(results, len(hosts)), hosts)
        width = max([4, *(len(r.host) for r in done)])
        if ns.dry_run:
            blocks = [
                (r.host, qwinsta_table([session_from_dict(i["session"]) for i in r.result]))
                for r in done
                if r.ok and r.result
            ]
            count = sum(len(r.result) for r in done if r.ok and r.result)
            emit(f"Would log off {count} session(s) on {len(blocks)} host(s) (dry run):")
            if blocks:
                emit(fleet_cli.with_host_column(blocks))
        else:
            lines = [item_line(r.host, i, width) for r in done if r.ok for i in (r.result or [])]
            if lines:
                emit("\n".join(lines))
            ok_hosts = sum(r.ok for r in done)
            emit(f"{len(lines)} session(s) matched on {ok_hosts} host(s).", sys.stderr)
    incomplete = any(
        isinstance(i, dict) and i.get("outcome") not in DONE
        for r in done
        if r.ok
        for i in (r.result or [])
    )
    code = fleet_cli.report_failures(prog, done)
    return code or (1 if incomplete else 0)
