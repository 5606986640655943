"""qwinsta / quser on remote hosts: one table with a HOST column, folded, or JSON lines."""

from __future__ import annotations

import argparse
import json
import sys

from . import fleet as fleet_cli
from . import render


def _table(sessions: list, kind: str, verbose: bool) -> str:
    if not sessions:
        return ""
    if kind == "session":
        return render.qwinsta_table(sessions, verbose=verbose)
    return render.quser_table(sessions)


def remote_query(prog: str, ns: argparse.Namespace, kind: str) -> int:
    """Run query session/user on the hosts the command line names."""
    from ..fleet import query
    from ..fleet.records import sessions_of

    hosts = fleet_cli.hosts_of(ns)
    opts = fleet_cli.options_of(ns, command_timeout=60.0)
    results = query(hosts, ns.target, backend=ns.backend, options=opts)
    if fleet_cli.single(ns):
        (result,) = list(results)
        if not result.ok:
            print(
                render.printable(
                    f"Error opening Terminal server {result.host}: {result.status}: {result.error}"
                ),
                file=sys.stderr,
            )
            return fleet_cli.EXIT_HOST_FAILED
        found = sessions_of(result.result)
        if ns.json:
            print(json.dumps(result.result, indent=2))
        elif found:
            print(_table(found, kind, ns.verbose))
        if not found:
            noun = "User" if kind == "user" else "session"
            print(f"No {noun} exists for {ns.target or '*'}", file=sys.stderr)
            return 1
        return 0
    if ns.json:
        done = fleet_cli.collect(results, len(hosts), fleet_cli.print_json_line)
        return fleet_cli.report_failures(prog, done) if any(not r.ok for r in done) else 0
    done = fleet_cli.in_host_order(fleet_cli.collect(results, len(hosts)), hosts)
    blocks = [
        (r.host, _table(sessions_of(r.result), kind, ns.verbose)) for r in done if r.ok
    ]
    if ns.fold:
        text = fleet_cli.folded(blocks)
    else:
        text = fleet_cli.with_host_column([b for b in blocks if b[1]])
    if text:
        print(text, flush=True)
    return fleet_cli.report_failures(prog, done)
