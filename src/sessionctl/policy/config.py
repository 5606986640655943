"""The policy file: TOML, validated strictly, every error with file and line.

Shape (all documented in docs/policy.md)::

    [defaults]
    warn_before = "5m"      max_postpone = "30m"    grace = "10s"    interval = "30s"
    exempt_users = ["root"] exempt_groups = []      message = "..."

    [[rule]]
    name = "idle-logins"
    idle_limit = "1h"       # exactly one of idle_limit, disc_limit, max_session
    users = ["*"]           # and/or groups = [...]; types = [...]; remote_hosts = [...]
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .. import host
from ..durations import parse_duration
from ..errors import InvalidArgument
from ..sanitize import checked_message

LIMIT_KINDS = ("idle_limit", "disc_limit", "max_session")
DEFAULT_KEYS = {
    "warn_before", "max_postpone", "grace", "interval", "exempt_users", "exempt_groups",
    "message",
}
RULE_KEYS = {
    "name", *LIMIT_KINDS, "users", "groups", "types", "remote_hosts", "exempt_users",
    "exempt_groups", "warn_before", "max_postpone", "grace", "message",
}
GLOB = re.compile(r"[*?\[]")


class ConfigError(InvalidArgument):
    """An invalid policy file; the message starts with FILE:LINE."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str  # one of LIMIT_KINDS
    limit: float
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    remote_hosts: tuple[str, ...] = ()
    exempt_users: tuple[str, ...] = ()
    exempt_groups: tuple[str, ...] = ()
    warn_before: float = 300.0
    max_postpone: float = 1800.0
    grace: float = 10.0
    message: str = ""
    line: int = 0


@dataclass(frozen=True)
class Policy:
    path: str
    rules: tuple[Rule, ...]
    interval: float = 30.0
    exempt_users: tuple[str, ...] = ("root",)
    exempt_groups: tuple[str, ...] = ()
    defaults: dict[str, object] = field(default_factory=dict, compare=False)


class _Lines:
    """Line numbers of tables and keys in a (flat) TOML file, for error messages."""

    def __init__(self, text: str) -> None:
        self.keys: dict[tuple[str, int, str], int] = {}
        self.tables: dict[tuple[str, int], int] = {}
        table, index, counts = "", 0, {"rule": -1}
        for no, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line.startswith("[["):
                table = line.strip("[] ").split("#")[0].strip()
                counts[table] = counts.get(table, -1) + 1
                index = counts[table]
                self.tables[(table, index)] = no
            elif line.startswith("["):
                table, index = line.strip("[] ").split("#")[0].strip(), 0
                self.tables[(table, 0)] = no
            else:
                m = re.match(r'["\']?([A-Za-z0-9_-]+)["\']?\s*=', line)
                if m:
                    self.keys.setdefault((table, index, m.group(1)), no)

    def of(self, table: str, index: int, key: str | None = None) -> int:
        if key is not None and (table, index, key) in self.keys:
            return self.keys[(table, index, key)]
        if not table and key is not None and (key, 0) in self.tables:
            return self.tables[(key, 0)]  # a top-level table named like the key
        return self.tables.get((table, index), 1)


def load(path: str | Path) -> Policy:
    """Read and validate a policy file; raise ConfigError("FILE:LINE: ...")."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse(text, path)


def parse(text: str, path: str = "<policy>") -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"{path}:{m.group(1) if m else '?'}: TOML syntax: {exc}") from None
    lines = _Lines(text)

    def fail(table: str, index: int, key: str | None, msg: str) -> ConfigError:
        return ConfigError(f"{path}:{lines.of(table, index, key)}: {msg}")

    unknown = set(data) - {"defaults", "rule"}
    if unknown:
        key = sorted(unknown)[0]
        raise fail("", 0, key, f"unknown section or key {key!r} (expected [defaults], [[rule]])")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise fail("", 0, "defaults", "defaults must be a table: [defaults]")
    for key in defaults:
        if key not in DEFAULT_KEYS:
            raise fail("defaults", 0, key, f"unknown key {key!r} in [defaults] "
                       f"(known: {', '.join(sorted(DEFAULT_KEYS))})")
    base = _common(defaults, lambda k, m: fail("defaults", 0, k, m), {
        "warn_before": 300.0, "max_postpone": 1800.0, "grace": 10.0, "message": "",
        "exempt_users": ("root",), "exempt_groups": (),
    })
    interval = _duration(defaults, "interval", 30.0, lambda k, m: fail("defaults", 0, k, m))
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise fail("", 0, "rule", "rules are written [[rule]] (an array of tables)")
    if not raw_rules:
        raise ConfigError(f"{path}:1: no [[rule]]: the policy would do nothing")
    rules = []
    names: dict[str, int] = {}
    for i, raw in enumerate(raw_rules):
        def rfail(key: str | None, msg: str, i: int = i) -> ConfigError:
            return fail("rule", i, key, msg)

        for key in raw:
            if key not in RULE_KEYS:
                raise rfail(key, f"unknown key {key!r} in [[rule]] "
                            f"(known: {', '.join(sorted(RULE_KEYS))})")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise rfail("name", "every [[rule]] needs a name = \"...\"")
        if name in names:
            raise rfail("name", f"rule name {name!r} is already used on line {names[name]}")
        names[name] = lines.of("rule", i, "name")
        kinds = [k for k in LIMIT_KINDS if k in raw]
        if len(kinds) != 1:
            raise rfail(kinds[1] if len(kinds) > 1 else None,
                        f"rule {name!r} needs exactly one of {', '.join(LIMIT_KINDS)}")
        limit = _duration(raw, kinds[0], None, rfail)
        common = _common(raw, rfail, {**base, "exempt_users": (), "exempt_groups": ()})
        selectors = {k: _names(raw, k, rfail) for k in ("users", "groups", "types",
                                                        "remote_hosts")}
        for user in selectors["users"]:
            _check_user(user, lambda m: rfail("users", m))
        for group in selectors["groups"]:
            _check_group(group, lambda m: rfail("groups", m))
        if common["warn_before"] >= limit and kinds[0] != "disc_limit":
            raise rfail("warn_before", f"warn_before ({common['warn_before']:g} s) must be "
                        f"shorter than {kinds[0]} ({limit:g} s)")
        rules.append(Rule(
            name=name, kind=kinds[0], limit=limit, line=lines.of("rule", i), **selectors,
            exempt_users=tuple(base["exempt_users"]) + tuple(common["exempt_users"]),
            exempt_groups=tuple(base["exempt_groups"]) + tuple(common["exempt_groups"]),
            warn_before=common["warn_before"], max_postpone=common["max_postpone"],
            grace=common["grace"], message=common["message"],
        ))
    for user in base["exempt_users"]:
        _check_user(user, lambda m: fail("defaults", 0, "exempt_users", m))
    for group in base["exempt_groups"]:
        _check_group(group, lambda m: fail("defaults", 0, "exempt_groups", m))
    _check_overlaps(rules, path)
    return Policy(path=path, rules=tuple(rules), interval=interval,
                  exempt_users=tuple(base["exempt_users"]),
                  exempt_groups=tuple(base["exempt_groups"]), defaults=dict(defaults))


def _duration(table: dict, key: str, default: float | None, fail) -> float:
    if key not in table:
        assert default is not None
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise fail(key, f"{key} must be a duration string like \"5m\", not {value!r}")
    try:
        return parse_duration(value, what=key, allow_zero=key in ("max_postpone", "grace"))
    except InvalidArgument as exc:
        raise fail(key, str(exc)) from None


def _names(table: dict, key: str, fail) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(key, f"{key} must be a list of strings, e.g. {key} = [\"a\", \"b\"]")
    return tuple(value)


def _common(table: dict, fail, base: dict) -> dict:
    out = dict(base)
    for key in ("warn_before", "max_postpone", "grace"):
        if key in table:
            out[key] = _duration(table, key, None, fail)
    for key in ("exempt_users", "exempt_groups"):
        if key in table:
            out[key] = _names(table, key, fail)
    if "message" in table:
        if not isinstance(table["message"], str):
            raise fail("message", "message must be a string")
        try:
            out["message"] = checked_message(table["message"])
        except InvalidArgument as exc:
            raise fail("message", str(exc)) from None
    return out


def _check_user(name: str, fail) -> None:
    if GLOB.search(name):
        return
    if host.user_exists(name) is False:  # None: cannot be told here (Windows)
        raise fail(f"user {name!r} does not exist")


def _check_group(name: str, fail) -> None:
    if GLOB.search(name):
        return
    exists = host.group_exists(name)
    if exists is None:
        raise fail(f"group {name!r}: groups cannot be looked up on this platform")
    if not exists:
        raise fail(f"group {name!r} does not exist")


def _may_meet(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Could a value match both selectors (empty = anything; globs compared both ways)?"""
    if not a or not b:
        return True
    return any(x == y or fnmatch.fnmatchcase(x, y) or fnmatch.fnmatchcase(y, x)
               or (GLOB.search(x) and GLOB.search(y)) for x in a for y in b)


def _who(rule: Rule) -> set[str] | None:
    """The users a rule's users/groups select; None = anyone (or a pattern)."""
    if not rule.users and not rule.groups:
        return None
    if any(GLOB.search(u) for u in rule.users) or any(GLOB.search(g) for g in rule.groups):
        return None
    who = set(rule.users)
    for g in rule.groups:
        who.update(host.group_members(g))
    return who


def _check_overlaps(rules: list[Rule], path: str) -> None:
    """Two rules of the same kind that can select the same session are ambiguous."""
    for i, a in enumerate(rules):
        for b in rules[i + 1:]:
            if a.kind != b.kind:
                continue
            wa, wb = _who(a), _who(b)
            who_meet = wa is None or wb is None or bool(wa & wb)
            if (who_meet and _may_meet(a.types, b.types)
                    and _may_meet(a.remote_hosts, b.remote_hosts)):
                raise ConfigError(
                    f"{path}:{b.line}: rule {b.name!r} overlaps rule {a.name!r} (line {a.line}):"
                    f" both set {a.kind} for sessions they can both select; narrow users, "
                    "groups, types or remote_hosts so each session has one limit of a kind"
                )
