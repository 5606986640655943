"""Which hosts a fleet command runs on: node sets, hosts files, Ansible inventories.

Node-set syntax and @groups come from ClusterShell's NodeSet (``web[01-50]``, lists,
``@group``, ``!`` exclusion, ``&`` intersection). Only hosts the user named are returned;
unknown groups and malformed sets are errors, never an empty or guessed list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidArgument
from .inventory import CONNECTION_VARS, Inventory, load_inventory

#: Above this many hosts a run is refused unless the caller raises ``max_hosts``.
DEFAULT_MAX_HOSTS = 10_000
_GROUP = re.compile(r"@(?:([A-Za-z0-9_.\-]+):)?([A-Za-z0-9_.\-*]+)")


class TooManyHosts(InvalidArgument):
    """The host list is larger than the allowed maximum."""


@dataclass(frozen=True)
class Host:
    """One target: the name the user gave and how to reach it (None: ssh config decides)."""

    name: str
    hostname: str | None = None
    port: int | None = None
    user: str | None = None

    @classmethod
    def from_vars(cls, name: str, hostvars: dict[str, str]) -> Host:
        found: dict[str, str] = {}
        for key, value in hostvars.items():
            attr = CONNECTION_VARS.get(key)
            if attr is not None:
                found[attr] = value
        port = found.get("port")
        if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
            raise InvalidArgument(f"host {name}: bad port {port!r}")
        return cls(name, found.get("hostname"), int(port) if port else None, found.get("user"))


def _resolver(inventory: Inventory | None):  # -> ClusterShell GroupResolver
    from ClusterShell.NodeUtils import GroupResolver, GroupSource

    if inventory is not None:
        groups = {g: ",".join(hosts) for g, hosts in inventory.groups.items()}
        return GroupResolver(GroupSource("inventory", groups))
    from ClusterShell.NodeSet import std_group_resolver

    return std_group_resolver()


def _known_groups(resolver, namespace: str | None) -> set[str] | None:
    try:
        return set(resolver.grouplist(namespace))
    except Exception:  # no group source configured at all
        return None


def nodeset(expression: str, inventory: Inventory | None = None, what: str = "node set"):
    """Parse a node-set expression into a ClusterShell NodeSet (not yet expanded)."""
    from ClusterShell.NodeSet import NodeSet, NodeSetException

    expression = re.sub(r"\s*,\s*", ",", expression.strip())  # "a, b" is a list
    if not expression:
        raise InvalidArgument(f"empty {what}")
    if any(not c.isprintable() or c.isspace() for c in expression):
        raise InvalidArgument(f"{what} contains control or blank characters: {expression!r}")
    resolver = _resolver(inventory)
    for namespace, group in _GROUP.findall(expression):
        if "*" in group:
            raise InvalidArgument(f"{what}: wildcard groups are not allowed: @{group}")
        known = _known_groups(resolver, namespace or None)
        if known is None or group not in known:
            where = "the inventory" if inventory is not None else "ClusterShell's groups.conf"
            raise InvalidArgument(f"unknown group @{group} (not in {where})")
    try:
        return NodeSet(expression, resolver=resolver)
    except NodeSetException as exc:
        raise InvalidArgument(f"bad {what} {expression!r}: {exc}") from None
    except Exception as exc:  # group source errors (bad groups.conf upcalls)
        raise InvalidArgument(f"cannot resolve {what} {expression!r}: {exc}") from None


def read_hosts_file(path: str | Path, inventory: Inventory | None = None):
    """A file with one host or node set per line (# comments) → NodeSet."""
    from ClusterShell.NodeSet import NodeSet

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read hosts file {path}: {exc}") from None
    out = NodeSet()
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if text:
            out.update(nodeset(text, inventory, what=f"host at {path}:{number}"))
    return out


def resolve(
    servers: str | None = None,
    *,
    hosts_file: str | Path | None = None,
    inventory: str | Path | Inventory | None = None,
    exclude: str | None = None,
    max_hosts: int = DEFAULT_MAX_HOSTS,
) -> list[Host]:
    """The hosts named by a node set and/or hosts file (and inventory), checked and bounded.

    With only an inventory, every host in it. Raises InvalidArgument for malformed input, no
    hosts at all, or more than ``max_hosts`` (TooManyHosts) - before anything is expanded.
    """
    from ClusterShell.NodeSet import NodeSet

    inv = load_inventory(inventory) if isinstance(inventory, (str, Path)) else inventory
    chosen = NodeSet()
    if servers is not None:
        chosen.update(nodeset(servers, inv))
    if hosts_file is not None:
        chosen.update(read_hosts_file(hosts_file, inv))
    if servers is None and hosts_file is None:
        if inv is None:
            raise InvalidArgument("no hosts given (use --servers, --hosts-file or --inventory)")
        chosen.update(nodeset("@all", inv) if inv.hosts else NodeSet())
    if exclude:
        chosen.difference_update(nodeset(exclude, inv, what="exclusion"))
    count = len(chosen)
    if count == 0:
        raise InvalidArgument("the host list is empty: nothing to run on")
    if count > max_hosts:
        raise TooManyHosts(
            f"{count} hosts is more than the limit of {max_hosts}; nothing was run. Split the "
            f"run (e.g. by group) or raise the limit with --max-hosts {count}"
        )
    hostvars = inv.hostvars if inv is not None else {}
    return [Host.from_vars(name, hostvars.get(name, {})) for name in chosen]


def fold(names: list[str]) -> str:
    """Host names folded into node-set syntax: web[01-05],db1."""
    from ClusterShell.NodeSet import NodeSet

    return str(NodeSet.fromlist(names))
