"""sessionctl close-connections: end our reused SSH connections (and their query servers)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import fleet as fleet_cli
from .args import Parser
from .runner import run

USAGE = f"""\
Ends the SSH connections that qwinsta/quser/logoff/msg keep open for reuse
(ControlMaster/ControlPersist) to these hosts; the query servers started through them
exit with them. Without this they end on their own after --persist seconds idle.
(Formerly `sessionctl disconnect --servers`; `sessionctl disconnect` now
disconnects sessions, as tsdiscon does.)

sessionctl close-connections {{--servers NODESET | --hosts-file PATH | --inventory PATH}}
                             [--ssh-config PATH] [--control-dir DIR] [...]

{fleet_cli.FLEET_HELP}"""


def _body(prog: str, argv: Sequence[str]) -> int:
    from ..fleet.ssh import close_connections

    parser = Parser(prog, {})
    parser.add_argument("--server")
    fleet_cli.add_options(parser)
    ns = parser.parse(argv)
    if not fleet_cli.wanted(ns):
        raise fleet_cli.UsageError("name the hosts (--servers, --hosts-file or --inventory)")
    hosts = fleet_cli.hosts_of(ns)
    opts = fleet_cli.options_of(ns)
    stopped = close_connections(hosts, opts)
    count = sum(stopped.values())
    print(f"{count} connection(s) closed; {len(hosts) - count} host(s) had none.",
          file=sys.stderr)
    return 0


def close_connections(argv: Sequence[str], prog: str = "sessionctl close-connections") -> int:
    return run(prog, USAGE, lambda: _body(prog, argv))
