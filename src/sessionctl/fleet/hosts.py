"""Which hosts a fleet command runs on: node sets, hosts files, Ansible inventories.

Node-set syntax and @groups come from ClusterShell's NodeSet (``web[01-50]``, lists,
``@group``, ``!`` exclusion, ``&`` intersection). Only hosts the user named are returned;
unknown groups and malformed sets are errors, never an empty or guessed list. Each
comma-separated item may name the remote user as ssh does: ``alice@web[01-50],db1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InvalidArgument
from .inventory import CONNECTION_VARS, Inventory, load_inventory

#: Above this many hosts a run is refused unless the caller raises ``max_hosts``.
DEFAULT_MAX_HOSTS = 10_000
_GROUP = re.compile(r"@(?:([A-Za-z0-9_.\-]+):)?([A-Za-z0-9_.\-*]+)")
#: A remote login name we pass to ``ssh -l``: what useradd accepts, no leading '-'.
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?")
_USER_AT = re.compile(r"([^@\[\],]+)@(.+)", re.S)


def check_user(user: str, where: str = "") -> str:
    """A remote user name, validated (it becomes ``ssh -l USER``); InvalidArgument else."""
    if not _USER.fullmatch(user):
        raise InvalidArgument(f"{where or 'remote user'}: not a user name: {user!r}")
    return user


def split_items(expression: str) -> list[str]:
    """The top-level comma-separated items of a node-set expression (brackets kept)."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(expression):
        depth += {"[": 1, "]": -1}.get(c, 0)
        if c == "," and depth == 0:
            items.append(expression[start:i])
            start = i + 1
    items.append(expression[start:])
    return [item.strip() for item in items]


def split_user(item: str, what: str = "node set") -> tuple[str | None, str]:
    """``alice@web[01-05]`` → ("alice", "web[01-05]"); ``@group`` and ``web1`` → no user."""
    m = _USER_AT.fullmatch(item)
    if m is None:
        return None, item
    return check_user(m.group(1), what), m.group(2)


class TooManyHosts(InvalidArgument):
    """The host list is larger than the allowed maximum."""


@dataclass(frozen=True)
class Host:
    """One target: the name the user gave and how to reach it (None: ssh config decides)."""

    name: str
    hostname: str | None = None
    port: int | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if self.user is not None:
            check_user(self.user, f"host {self.name}")

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


class _Chosen:
    """Hosts chosen so far, and the remote user each was named with (user@host)."""

    def __init__(self) -> None:
        from ClusterShell.NodeSet import NodeSet

        self.names = NodeSet()
        self.users: dict[str, str] = {}

    def add(self, expression: str, inventory: Inventory | None, what: str) -> None:
        for item in split_items(expression):
            user, rest = split_user(item, what)
            found = nodeset(rest, inventory, what=what)
            if user is not None:
                for name in found:
                    if self.users.setdefault(name, user) != user:
                        raise InvalidArgument(
                            f"{what}: host {name} named with two users "
                            f"({self.users[name]}, {user})"
                        )
            self.names.update(found)


def read_hosts_file(path: str | Path, inventory: Inventory | None = None) -> _Chosen:
    """A file with one host or node set per line (# comments; user@host allowed)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read hosts file {path}: {exc}") from None
    out = _Chosen()
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if text:
            out.add(text, inventory, what=f"host at {path}:{number}")
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
    picked = _Chosen()
    if servers is not None:
        picked.add(servers, inv, "node set")
    if hosts_file is not None:
        from_file = read_hosts_file(hosts_file, inv)
        picked.names.update(from_file.names)
        for name, user in from_file.users.items():
            if picked.users.setdefault(name, user) != user:
                raise InvalidArgument(f"host {name} named with two users")
    if servers is None and hosts_file is None:
        if inv is None:
            raise InvalidArgument("no hosts given (use --servers, --hosts-file or --inventory)")
        picked.names.update(nodeset("@all", inv) if inv.hosts else NodeSet())
    chosen = picked.names
    if exclude:
        if "@" in exclude and any(split_user(i)[0] for i in split_items(exclude)):
            raise InvalidArgument("--exclude takes host names, not user@host")
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
    hosts = [Host.from_vars(name, hostvars.get(name, {})) for name in chosen]
    return [replace(h, user=picked.users.get(h.name, h.user)) for h in hosts]


def fold(names: list[str]) -> str:
    """Host names folded into node-set syntax: web[01-05],db1."""
    from ClusterShell.NodeSet import NodeSet

    return str(NodeSet.fromlist(names))
