"""Hosts and groups from an Ansible inventory, INI or YAML (the subset fleets use: groups,
children, host ranges, connection variables; no plugins or scripts)."""

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
    """Read and parse an Ansible inventory file: YAML (.yml, .yaml, .json, or text that
    starts as YAML does) or INI."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read inventory {path}: {exc}") from None
    if str(path).endswith(YAML_SUFFIXES) or _looks_like_yaml(text):
        return parse_yaml_inventory(text, str(path))
    return parse_inventory(text, str(path))


def _looks_like_yaml(text: str) -> bool:
    """YAML's first meaningful line is '---', '{' or 'name:' (INI's is '[group]' or a host)."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            return line.startswith(("---", "{")) or bool(re.match(r"^[\w.\-]+:\s*$", line))
    return False


# -- YAML inventories (Ansible's yaml inventory plugin: all / children / hosts / vars) ---------

YAML_SUFFIXES = (".yml", ".yaml", ".json")


def parse_yaml_inventory(text: str, source: str = "inventory") -> Inventory:
    """Parse an Ansible YAML inventory (the yaml plugin's format, JSON too):

        all:
          hosts: {web01: {ansible_port: 2222}, web02: }
          vars: {ansible_user: deploy}
          children:
            db: {hosts: {"db[01:03]": }}

    Raise InvalidArgument naming FILE:LINE of what does not fit."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise InvalidArgument(f"{source}{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{source}: not valid YAML: {exc}") from None
    inv = Inventory()
    if root is None:
        inv.groups["all"] = []
        return inv
    children: dict[str, list[str]] = {}
    group_vars: dict[str, dict[str, str]] = {}
    order: list[str] = []  # groups, children before their parents (their vars win)

    def where(node: yaml.Node) -> str:
        return f"{source}:{node.start_mark.line + 1}"

    def mapping(node: yaml.Node, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
            return []  # "web01:" with nothing under it
        if not isinstance(node, yaml.MappingNode):
            raise InvalidArgument(f"{where(node)}: {what} must be a mapping")
        return list(node.value)

    def scalar(node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise InvalidArgument(f"{where(node)}: {what} must be a plain value")
        return str(node.value)

    def variables(node: yaml.Node, what: str) -> dict[str, str]:
        return {scalar(k, "a variable name"): scalar(v, f"{what} {k.value}")
                for k, v in mapping(node, what)}

    def group(name: str, node: yaml.Node, path: tuple[str, ...]) -> None:
        if name in path:
            raise InvalidArgument(f"{where(node)}: group cycle: {' → '.join((*path, name))}")
        if not _NAME.match(name):
            raise InvalidArgument(f"{where(node)}: not a group name: {name!r}")
        members = inv.groups.setdefault(name, [])
        for key, value in mapping(node, f"group {name}"):
            part = scalar(key, "a group key")
            if part == "hosts":
                for host_node, vars_node in mapping(value, f"hosts of {name}"):
                    pattern = scalar(host_node, "a host name")
                    if "=" in pattern or not _NAME.match(pattern):
                        raise InvalidArgument(f"{where(host_node)}: not a host name: {pattern!r}")
                    hostvars = variables(vars_node, f"host {pattern}")
                    for host in _expand(pattern, where(host_node)):
                        inv.hostvars.setdefault(host, {}).update(hostvars)
                        if host not in members:
                            members.append(host)
            elif part == "children":
                for child_node, child in mapping(value, f"children of {name}"):
                    child_name = scalar(child_node, "a group name")
                    children.setdefault(name, []).append(child_name)
                    group(child_name, child, (*path, name))
            elif part == "vars":
                group_vars.setdefault(name, {}).update(variables(value, f"vars of {name}"))
            else:
                raise InvalidArgument(
                    f"{where(key)}: group {name}: unknown key {part!r} (hosts, children, vars)"
                )
        if name not in order:
            order.append(name)

    top = mapping(root, "the inventory")
    if any(scalar(k, "a group name") == "_meta" for k, _ in top):
        raise InvalidArgument(
            f"{source}: this is ansible-inventory --list output; give the inventory itself"
        )
    for key, value in top:
        group(scalar(key, "a group name"), value, ())
    _close_children(inv, children, source)
    _apply_group_vars(inv, {g: group_vars[g] for g in order if g in group_vars})
    inv.groups["all"] = inv.hosts
    return inv
