"""Command-line wiring for remote and fleet runs: /server:NAME, --servers NODESET and friends.

qwinsta, quser, logoff (and msg) call :func:`wanted` after parsing; when it is true the
command runs on the named hosts over SSH (sessionctl.fleet) instead of this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator

from ..errors import InvalidArgument, NotSupported
from .args import Parser, UsageError, is_local_server
from .render import printable

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (startup time)
if TYPE_CHECKING:
    from ..fleet.select import Selection

#: Exit code when one or more hosts did not answer (any status but ok).
EXIT_HOST_FAILED = 2

FLEET_HELP = """\
Remote hosts (over the system ssh; your ~/.ssh/config, agent and known_hosts apply):
  /SERVER:name, --server NAME   One remote host (same output as locally); user@name.
  --servers NODESET   Many hosts: web[01-50], a,b, @group, web[01-50]!web07,
                      root@web[01-50] (each comma-separated item may name its user).
  --hosts-file PATH   Hosts (or node sets) one per line; --inventory PATH: Ansible INI or
                      YAML inventory (its groups become @groups; alone: all its hosts).
  --exclude NODESET   Leave these hosts out.       --max-hosts N  Refuse more (10000).
  --fanout N          Hosts in flight at once (64). --fold  Fold identical outputs.
  --connect-timeout S (10) / --command-timeout S (60): a host that takes longer is
                      reported as timeout.
  --ssh-config PATH, --ssh-option Key=Value, --control-dir DIR, --persist S (600),
  --no-reuse (no ControlMaster), --remote-python CMD (python3).
  --json              One JSON line per host: {"host", "status", "error", "result"}.
  Exit code 2 when any host failed (unreachable, auth, hostkey, timeout, error)."""

SELECT_HELP = """\
Choosing sessions (fleet logoff/msg):
  --user NAME         Sessions of this user (repeatable).
  --state Active|Disc Sessions in this state.
  --idle-over DUR     Idle longer than DUR (30m, 1h, 2d); Disc sessions have no idle time.
  --older-than DUR    Logged on longer ago than DUR.
  --dry-run           Show what would be done on each host; do nothing."""


def add_options(parser: Parser, *, selection: bool = False) -> None:
    """The remote/fleet options of a session command."""
    add = parser.add_argument
    add("--servers", metavar="NODESET")
    add("--hosts-file", metavar="PATH")
    add("--inventory", metavar="PATH")
    add("--exclude", metavar="NODESET")
    add("--max-hosts", type=int, default=None)
    add("--fanout", type=int, default=64)
    add("--connect-timeout", type=float, default=10.0)
    add("--command-timeout", type=float, default=None)
    add("--fold", action="store_true")
    add("--ssh-config", metavar="PATH")
    add("--ssh-option", action="append", default=[], metavar="KEY=VALUE")
    add("--control-dir", metavar="DIR")
    add("--persist", type=int, default=600)
    add("--no-reuse", action="store_true")
    add("--remote-python", default="python3")
    if selection:
        add("--user", action="append", default=[])
        add("--state", action="append", default=[])
        add("--idle-over", metavar="DURATION")
        add("--older-than", metavar="DURATION")
        add("--dry-run", action="store_true")


def wanted(ns: argparse.Namespace) -> bool:
    """True when the command line names remote hosts."""
    many = ns.servers is not None or ns.hosts_file is not None or ns.inventory is not None
    remote = many or not is_local_server(ns.server)
    if remote and sys.platform == "win32":
        raise NotSupported("not supported here: remote hosts (/server, --servers) need the "
                           "Linux fleet runner; run the command on the host itself")
    return remote


def single(ns: argparse.Namespace) -> bool:
    """True for /server:NAME alone (output as the local command prints it)."""
    return ns.servers is None and ns.hosts_file is None and ns.inventory is None


def hosts_of(ns: argparse.Namespace) -> list:
    """The hosts the command line names (checked, bounded)."""
    from ..fleet.hosts import DEFAULT_MAX_HOSTS, Host, resolve, split_user

    if single(ns):
        if ns.exclude:
            raise UsageError("--exclude needs --servers, --hosts-file or --inventory")
        user, name = split_user(ns.server or "", "/SERVER")
        if not name or name.startswith("-") or any(c.isspace() or c in "[],@!&^" for c in name):
            raise InvalidArgument(f"Error opening Terminal server {ns.server}: not a host name")
        return [Host(name, user=user)]
    if ns.server is not None and not is_local_server(ns.server):
        raise UsageError("give either /server:NAME or --servers, not both")
    return resolve(
        ns.servers,
        hosts_file=ns.hosts_file,
        inventory=ns.inventory,
        exclude=ns.exclude,
        max_hosts=ns.max_hosts or DEFAULT_MAX_HOSTS,
    )


def options_of(ns: argparse.Namespace, command_timeout: float = 60.0):
    """SshOptions from the command line."""
    from ..fleet.ssh import SshOptions

    opts = SshOptions(
        ssh_config=ns.ssh_config,
        connect_timeout=ns.connect_timeout,
        command_timeout=ns.command_timeout or command_timeout,
        fanout=ns.fanout,
        reuse=not ns.no_reuse,
        persist=ns.persist,
        control_dir=ns.control_dir,
        ssh_options=tuple(ns.ssh_option),
        python=ns.remote_python,
    )
    opts.check()
    return opts


def selection_of(ns: argparse.Namespace) -> Selection:
    """The session selection given by --user/--state/--idle-over/--older-than."""
    from ..durations import parse_duration
    from ..fleet.select import Selection
    from ..validate import check_target

    for user in ns.user:
        check_target(user)
    return Selection(
        users=tuple(ns.user),
        states=tuple(ns.state),
        idle_over=parse_duration(ns.idle_over, what="--idle-over", allow_zero=True)
        if ns.idle_over else None,
        older_than=parse_duration(ns.older_than, what="--older-than", allow_zero=True)
        if ns.older_than else None,
    )


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal and after a second."""

    def __init__(self, total: int, stream=None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.shown = False
        self.last = 0.0
        self.done = 0
        self.failed = 0
        self.enabled = total > 1 and hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        now = time.monotonic()
        if not self.enabled or now - self.started < 1.0 or now - self.last < 0.1:
            return
        self.last = now
        width = 30
        filled = width * self.done // self.total
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total} hosts, {self.failed} failed, "
            f"{now - self.started:.1f} s "
        )
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def collect(results: Iterator, total: int, on_each: Callable | None = None) -> list:
    """Drain a fleet run with a progress bar; return the results."""
    progress = Progress(total)
    out = []
    try:
        for result in results:
            out.append(result)
            if on_each is not None:
                on_each(result)
            progress.update(result.ok)
    finally:
        progress.finish()
    return out


def print_json_line(result) -> None:
    print(json.dumps(result.to_dict()), flush=True)


def in_host_order(results: list, hosts: list) -> list:
    order = {h.name: i for i, h in enumerate(hosts)}
    return sorted(results, key=lambda r: order.get(r.host, len(order)))


def report_failures(prog: str, results: list) -> int:
    """Failed hosts on stderr (one line each, then a summary); return the exit code."""
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(printable(f"{r.host}: {r.status}: {r.error}"), file=sys.stderr)
    if failed:
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in counts.items())
        print(f"{prog}: {len(results)} hosts: {summary}", file=sys.stderr)
        return EXIT_HOST_FAILED
    return 0


def with_host_column(blocks: list[tuple[str, str]]) -> str:
    """(host, table text with header) pairs → one table with a HOST column."""
    width = max([len("HOST"), *(len(h) for h, _ in blocks)]) + 1
    header = ""
    lines: list[str] = []
    for host, text in blocks:
        rows = text.split("\n")
        header = header or rows[0]
        lines.extend(f"{printable(host):<{width}}{row}" for row in rows[1:])
    return "\n".join([f"{'HOST':<{width}}{header}", *lines]) if header else ""


def folded(blocks: list[tuple[str, str]]) -> str:
    """dshbak -c style: hosts with identical output share one block under a node set."""
    from ..fleet.hosts import fold

    groups: dict[str, list[str]] = {}
    for host, text in blocks:
        groups.setdefault(text, []).append(host)
    out = []
    for text, hosts in groups.items():
        name = fold(hosts)
        bar = "-" * max(15, min(len(name), 78))
        out += [bar, f"{name} ({len(hosts)})", bar, text or "(no sessions)"]
    return "\n".join(out)
