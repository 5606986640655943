"""Hosts and groups from an Ansible INI inventory (the subset fleets use; no plugins)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidArgument

#: Host variables that change how we reach a host (older ansible_ssh_* spellings too).
CONNECTION_VARS = {
    "ansible_host": "hostname",
    "ansible_ssh_host": "hostname",
    "ansible_port": "port",
    "ansible_ssh_port": "port",
    "ansible_user": "user",
    "ansible_ssh_user": "user",
}
_SECTION = re.compile(r"^\[([A-Za-z0-9_.\-]+)(?::(children|vars))?\]$")
_RANGE = re.compile(r"\[([^\[\]]*)\]")
_NAME = re.compile(r"^[A-Za-z0-9_.\-:\[\]]+$")
MAX_RANGE = 100_000


@dataclass
class Inventory:
    """Groups (name → ordered host names) and per-host connection settings."""

    groups: dict[str, list[str]] = field(default_factory=dict)
    hostvars: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        """Every host, in the order first seen."""
        return list(self.hostvars)


def _expand(pattern: str, where: str) -> list[str]:
    """Ansible host ranges: web[01:50], db-[a:f], node[0:10:2] → names."""
    match = _RANGE.search(pattern)
    if match is None:
        if "[" in pattern or "]" in pattern:
            raise InvalidArgument(f"{where}: unbalanced bracket in host pattern {pattern!r}")
        return [pattern]
    parts = match.group(1).split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise InvalidArgument(f"{where}: bad host range [{match.group(1)}] in {pattern!r}")
    start, end = parts[0], parts[1]
    step = 1
    if len(parts) == 3:
        if not parts[2].isdigit() or int(parts[2]) == 0:
            raise InvalidArgument(f"{where}: bad step in host range [{match.group(1)}]")
        step = int(parts[2])
    if start.isdigit() and end.isdigit():
        lo, hi = int(start), int(end)
        width = len(start) if start.startswith("0") else 0
        values = [str(n).zfill(width) for n in range(lo, hi + 1, step)] if lo <= hi else []
    elif len(start) == 1 and len(end) == 1 and start.isalpha() and end.isalpha():
        values = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    else:
        raise InvalidArgument(f"{where}: bad host range [{match.group(1)}] in {pattern!r}")
    if not values or len(values) > MAX_RANGE:
        raise InvalidArgument(f"{where}: empty or too large host range in {pattern!r}")
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [name for v in values for name in _expand(head + v + tail, where)]


def parse_inventory(text: str, source: str = "inventory") -> Inventory:
    """Parse INI inventory text; raise InvalidArgument naming the line that does not parse."""
    inv = Inventory()
    children: dict[str, list[str]] = {}
    group_vars: dict[str, dict[str, str]] = {}
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            match = _SECTION.match(line)
            if match is None:
                raise InvalidArgument(f"{where}: not a valid section header: {line!r}")
            section, kind = match.group(1), match.group(2) or "hosts"
            if kind == "hosts":
                inv.groups.setdefault(section, [])
            elif kind == "children":
                children.setdefault(section, [])
            continue
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InvalidArgument(f"{where}: {exc}: {line!r}") from None
        if not tokens:
            continue
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise InvalidArgument(f"{where}: expected key=value in [{section}:vars]")
            group_vars.setdefault(section, {})[key.strip()] = value.strip()
            continue
        if kind == "children":
            if len(tokens) != 1 or not _NAME.match(tokens[0]):
                raise InvalidArgument(f"{where}: expected one group name, got {line!r}")
            children.setdefault(section, []).append(tokens[0])
            continue
        name, pairs = tokens[0], tokens[1:]
        if "=" in name or not _NAME.match(name):
            raise InvalidArgument(f"{where}: not a host name: {name!r}")
        hostvars: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise InvalidArgument(f"{where}: expected key=value after the host, got {pair!r}")
            hostvars[key] = value
        for host in _expand(name, where):
            inv.hostvars.setdefault(host, {}).update(hostvars)
            members = inv.groups.setdefault(section, [])
            if host not in members:
                members.append(host)
    _close_children(inv, children, source)
    _apply_group_vars(inv, group_vars)
    inv.groups["all"] = inv.hosts
    return inv


def _close_children(inv: Inventory, children: dict[str, list[str]], source: str) -> None:
    """Add each child group's hosts to its parents (cycles are an error)."""

    def members(group: str, path: tuple[str, ...]) -> list[str]:
        if group in path:
            raise InvalidArgument(f"{source}: group cycle: {' → '.join((*path, group))}")
        out = list(inv.groups.get(group, []))
        for child in children.get(group, []):
            if child not in inv.groups and child not in children:
                raise InvalidArgument(f"{source}: [{group}:children] names unknown group {child}")
            out.extend(h for h in members(child, (*path, group)) if h not in out)
        return out

    resolved = {g: members(g, ()) for g in children}
    inv.groups.update(resolved)


def _apply_group_vars(inv: Inventory, group_vars: dict[str, dict[str, str]]) -> None:
    """Connection variables of a group apply to its hosts unless the host sets its own."""
    for group, values in group_vars.items():
        for host in inv.groups.get(group, inv.hosts if group == "all" else []):
            for key, value in values.items():
                inv.hostvars[host].setdefault(key, value)


def load_inventory(path: str | Path) -> Inventory:
    """Read and parse an INI inventory file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read inventory {path}: {exc}") from None
    if text.lstrip().startswith(("---", "{", "all:")):
        raise InvalidArgument(f"{path}: YAML/JSON inventories are not supported; use INI")
    return parse_inventory(text, str(path))
