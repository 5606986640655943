"""msg on remote hosts: one server (/server:NAME) or a fleet, with a session selection."""

from __future__ import annotations

import argparse
import json

from . import fleet as fleet_cli
from .render import emit


def _items(report: dict[str, object], key: str) -> list[object]:
    value = report.get(key)
    return value if isinstance(value, list) else []


def _deliveries(report: dict[str, object]) -> list[dict[str, object]]:
    return [d for d in _items(report, "deliveries") if isinstance(d, dict)]


def _lines(host: str, report: object, width: int, dry_run: bool) -> list[str]:
    if not isinstance(report, dict):
        return []
    if dry_run:
        ids = ", ".join(map(str, _items(report, "sessions"))) or "(none)"
        return [f"{host:<{width}} would send to session(s) {ids}"]
    out = []
    for d in _deliveries(report):
        where = d.get("device") or "(no terminal)"
        detail = f": {d['detail']}" if d.get("detail") else ""
        out.append(f"{host:<{width}} {d.get('session_id')} ({d.get('user')}) {where} "
                   f"{d.get('status')}{detail}")
    for sid in _items(report, "skipped"):
        out.append(f"{host:<{width}} {sid} skipped: no terminal or desktop")
    acked = report.get("acknowledged_by")
    for sid, user in (acked.items() if isinstance(acked, dict) else ()):
        out.append(f"{host:<{width}} {sid} acknowledged by {user}")
    return out


def _reached_all(report: dict[str, object]) -> bool:
    reached = {d.get("session_id") for d in _deliveries(report) if d.get("status") == "delivered"}
    return all(s in reached for s in _items(report, "sessions"))


def remote_msg(prog: str, ns: argparse.Namespace, text: str) -> int:
    """Send on the named hosts; exit 2 if a host failed, 1 if a session was not reached
    (or, with /W, did not acknowledge), else 0."""
    from ..fleet import message
    from ..sanitize import clean_text

    selection = fleet_cli.selection_of(ns)
    hosts = fleet_cli.hosts_of(ns)
    opts = fleet_cli.options_of(ns, command_timeout=60.0 + (ns.time if ns.wait else 0))
    results = message(
        hosts, clean_text(text), ns.target, select=selection, dry_run=ns.dry_run,
        wait=ns.wait, timeout=ns.time, backend=ns.backend, options=opts,
    )
    if ns.json:
        if fleet_cli.single(ns):
            done = list(results)
            if done[0].ok:
                emit(json.dumps(done[0].result, indent=2))
        else:
            done = fleet_cli.collect(results, len(hosts), fleet_cli.print_json_line)
    else:
        done = fleet_cli.in_host_order(fleet_cli.collect(results, len(hosts)), hosts)
        width = max([4, *(len(r.host) for r in done)])
        lines = [ln for r in done if r.ok for ln in _lines(r.host, r.result, width, ns.dry_run)]
        if lines:
            emit("\n".join(lines))
    code = fleet_cli.report_failures(prog, done)
    if code or ns.dry_run:
        return code
    reports = [r.result for r in done if r.ok and isinstance(r.result, dict)]
    missed = any(not _reached_all(rep) for rep in reports)
    unacked = ns.wait and any(rep.get("acknowledged") is False for rep in reports)
    return 1 if missed or unacked else 0
