"""The policy file: TOML, validated strictly, every error with file and line.

Shape (all documented in docs/policy.md)::

    [defaults]
    warn_before = "5m"      max_postpone = "30m"    grace = "10s"    interval = "30s"
    exempt_users = ["root"] exempt_groups = []      message = "..."

    activity = ["input"]    cpu_active = "5%"

    [[rule]]
    name = "idle-logins"
    idle_limit = "1h"       # exactly one of idle_limit, disc_limit, max_session
    users = ["*"]           # and/or groups = [...]; types = [...]; remote_hosts = [...]
    activity = ["input", "output"]   min_rss = "2G"   min_cpu = "10%"

    [pressure]              # optional: sign out idle holders while memory pressure is high
    measure = "some avg10"  above = 10   idle_after = "10m"   warn_before = "1m"

    [metrics]               # optional: the daemon serves /metrics here
    listen = "127.0.0.1:9464"
"""

from __future__ import annotations

import errno
import fnmatch
import ipaddress
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import host
from ..durations import parse_duration
from ..errors import InvalidArgument
from ..quantities import parse_percent, parse_size
from ..sanitize import checked_message

LIMIT_KINDS = ("idle_limit", "disc_limit", "max_session")
#: What may count as activity (docs/policy.md "What counts as activity").
ACTIVITY_SOURCES = ("input", "output", "cpu", "clients", "forwards")
DEFAULT_ACTIVITY = ("input",)
DEFAULT_CPU_ACTIVE = 5.0  # percent of one core over the interval
RESOURCE_KEYS = ("min_rss", "min_pss", "min_cpu")
DEFAULT_KEYS = {
    "warn_before", "max_postpone", "grace", "interval", "exempt_users", "exempt_groups",
    "message", "activity", "cpu_active",
}
RULE_KEYS = {
    "name", *LIMIT_KINDS, "users", "groups", "types", "remote_hosts", "exempt_users",
    "exempt_groups", "warn_before", "max_postpone", "grace", "message", "activity",
    "cpu_active", *RESOURCE_KEYS, "on_limit",
}
ON_LIMIT = ("logoff", "disconnect")
PRESSURE_RULE = "memory-pressure"  # the name pressure sign-outs carry (reserved)
PRESSURE_MEASURES = ("some avg10", "full avg10", "some avg60", "full avg60")
PRESSURE_KEYS = {
    "file", "cgroup", "measure", "above", "idle_after", "activity", "cpu_active",
    "warn_before", "max_postpone", "grace", "message", "at_once", "min_rss", "rank",
    "users", "groups", "types", "exempt_users", "exempt_groups",
}
METRICS_KEYS = {"listen", "allow_remote"}
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
    activity: tuple[str, ...] = DEFAULT_ACTIVITY  # what counts as activity (idle rules)
    cpu_active: float = DEFAULT_CPU_ACTIVE  # "cpu": more than this % of a core is activity
    min_rss: int = 0  # select only sessions holding at least this much (bytes)
    min_pss: int = 0
    min_cpu: float = 0.0  # ... or using at least this % of a core
    on_limit: str = "logoff"  # or "disconnect": end the connection, keep tmux/screen

    @property
    def needs_usage(self) -> bool:
        """Does deciding need the session's resource figures (CPU, memory)?"""
        return bool(self.min_rss or self.min_pss or self.min_cpu or "cpu" in self.activity)


@dataclass(frozen=True)
class Pressure:
    """``[pressure]``: while ``measure`` of ``file`` is above ``above``, sign out idle
    sessions, the largest holders first, ``at_once`` at a time (see docs/policy.md)."""

    file: str
    measure: str  # "some avg10" ...
    above: float  # percent
    rule: Rule  # who may be chosen, notice, grace, activity, idle_after (= rule.limit)
    at_once: int = 1
    rank: str = "rss"  # "rss" or "pss"
    line: int = 0


@dataclass(frozen=True)
class Metrics:
    """``[metrics]``: the daemon serves /metrics on ``host``:``port``."""

    host: str
    port: int
    line: int = 0


@dataclass(frozen=True)
class Policy:
    path: str
    rules: tuple[Rule, ...]
    interval: float = 30.0
    exempt_users: tuple[str, ...] = ("root",)
    exempt_groups: tuple[str, ...] = ()
    defaults: dict[str, object] = field(default_factory=dict, compare=False)
    pressure: Pressure | None = None
    metrics: Metrics | None = None

    @property
    def all_rules(self) -> tuple[Rule, ...]:
        """The rules and the pressure section's rule (what may select a session)."""
        return self.rules + ((self.pressure.rule,) if self.pressure else ())

    @property
    def activity_sources(self) -> set[str]:
        """Every activity source some rule (or [pressure]) asks for."""
        return {a for r in self.all_rules for a in r.activity}

    @property
    def needs_usage(self) -> bool:
        return self.pressure is not None or any(r.needs_usage for r in self.rules)

    @property
    def needs_pss(self) -> bool:
        return any(r.min_pss for r in self.rules) or (
            self.pressure is not None and self.pressure.rank == "pss")


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


def load(path: str | Path, *, bound: Metrics | None = None) -> Policy:
    """Read and validate a policy file; raise ConfigError("FILE:LINE: ...").

    ``bound``: the metrics address this process already serves (a reload keeping it is
    not "in use")."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse(text, path, bound=bound)


def parse(text: str, path: str = "<policy>", *, bound: Metrics | None = None,
          probe: bool = True) -> Policy:
    """Validate policy text (``probe``: check the pressure file exists and the metrics
    address can be bound, as load() does)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"{path}:{m.group(1) if m else '?'}: TOML syntax: {exc}") from None
    lines = _Lines(text)

    def fail(table: str, index: int, key: str | None, msg: str) -> ConfigError:
        return ConfigError(f"{path}:{lines.of(table, index, key)}: {msg}")

    unknown = set(data) - {"defaults", "rule", "pressure", "metrics"}
    if unknown:
        key = sorted(unknown)[0]
        raise fail("", 0, key, f"unknown section or key {key!r} (expected [defaults], "
                   "[[rule]], [pressure], [metrics])")
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
    dfail = lambda k, m: fail("defaults", 0, k, m)  # noqa: E731
    interval = _duration(defaults, "interval", 30.0, dfail)
    base["activity"] = _activity(defaults, DEFAULT_ACTIVITY, dfail)
    base["cpu_active"] = _percent(defaults, "cpu_active", DEFAULT_CPU_ACTIVE, dfail)
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
        if name == PRESSURE_RULE:
            raise rfail("name", f"the rule name {PRESSURE_RULE!r} is reserved for [pressure]")
        if name in names:
            raise rfail("name", f"rule name {name!r} is already used on line {names[name]}")
        names[name] = lines.of("rule", i, "name")
        kinds = [k for k in LIMIT_KINDS if k in raw]
        if len(kinds) != 1:
            raise rfail(kinds[1] if len(kinds) > 1 else None,
                        f"rule {name!r} needs exactly one of {', '.join(LIMIT_KINDS)}")
        limit = _duration(raw, kinds[0], None, rfail)
        common = _common(raw, rfail, {**base, "exempt_users": (), "exempt_groups": ()})
        selectors: dict[str, Any] = {k: _names(raw, k, rfail)
                                     for k in ("users", "groups", "types", "remote_hosts")}
        for user in selectors["users"]:
            _check_user(user, lambda m: rfail("users", m))
        for group in selectors["groups"]:
            _check_group(group, lambda m: rfail("groups", m))
        if common["warn_before"] >= limit and kinds[0] != "disc_limit":
            raise rfail("warn_before", f"warn_before ({common['warn_before']:g} s) must be "
                        f"shorter than {kinds[0]} ({limit:g} s)")
        on_limit = raw.get("on_limit", "logoff")
        if on_limit not in ON_LIMIT:
            raise rfail("on_limit", f"on_limit must be one of {', '.join(ON_LIMIT)}, "
                        f"not {on_limit!r}")
        if on_limit == "disconnect" and kinds[0] == "disc_limit":
            raise rfail("on_limit", "on_limit = \"disconnect\" does not go with disc_limit "
                        "(a Disc session has no connection left to end)")
        resources: dict[str, Any] = {k: _size(raw, k, rfail) for k in ("min_rss", "min_pss")}
        rules.append(Rule(
            name=name, kind=kinds[0], limit=limit, line=lines.of("rule", i), **selectors,
            **_rule_fields(raw, base, common, rfail),
            min_cpu=_percent(raw, "min_cpu", 0.0, rfail), on_limit=on_limit, **resources,
        ))
    for user in base["exempt_users"]:
        _check_user(user, lambda m: fail("defaults", 0, "exempt_users", m))
    for group in base["exempt_groups"]:
        _check_group(group, lambda m: fail("defaults", 0, "exempt_groups", m))
    _check_overlaps(rules, path)
    pressure = _pressure(data, base, fail, lines, probe)
    metrics = _metrics(data, fail, lines, bound, probe)
    return Policy(path=path, rules=tuple(rules), interval=interval,
                  exempt_users=tuple(base["exempt_users"]),
                  exempt_groups=tuple(base["exempt_groups"]), defaults=dict(defaults),
                  pressure=pressure, metrics=metrics)


def _rule_fields(raw: dict, base: dict, common: dict, fail) -> dict[str, Any]:
    """What a [[rule]] and [pressure] take alike: exemptions (added to the defaults'),
    notice, postponing, grace, message, activity sources and the CPU share."""
    return {
        "exempt_users": tuple(base["exempt_users"]) + tuple(common["exempt_users"]),
        "exempt_groups": tuple(base["exempt_groups"]) + tuple(common["exempt_groups"]),
        "warn_before": common["warn_before"], "max_postpone": common["max_postpone"],
        "grace": common["grace"], "message": common["message"],
        "activity": _activity(raw, base["activity"], fail),
        "cpu_active": _percent(raw, "cpu_active", base["cpu_active"], fail),
    }


def _table(data: dict, name: str, keys: set[str], fail) -> dict | None:
    raw = data.get(name)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise fail("", 0, name, f"{name} must be a table: [{name}]")
    for key in raw:
        if key not in keys:
            raise fail(name, 0, key, f"unknown key {key!r} in [{name}] "
                       f"(known: {', '.join(sorted(keys))})")
    return raw


def _pressure(data: dict, base: dict, fail, lines: _Lines, probe: bool) -> Pressure | None:
    raw = _table(data, "pressure", PRESSURE_KEYS, fail)
    if raw is None:
        return None

    def pfail(key: str | None, msg: str) -> ConfigError:
        return fail("pressure", 0, key, msg)

    if "file" in raw and "cgroup" in raw:
        raise pfail("cgroup", "[pressure] takes file or cgroup, not both")
    for key in ("file", "cgroup"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].startswith("/")):
            raise pfail(key, f"{key} must be an absolute path")
    path = (raw["cgroup"].rstrip("/") + "/memory.pressure" if "cgroup" in raw
            else raw.get("file", "/proc/pressure/memory"))
    if probe and not os.path.isfile(path):
        raise pfail("cgroup" if "cgroup" in raw else "file",
                    f"pressure file {path} does not exist (a kernel without PSI: it needs "
                    "CONFIG_PSI=y and, on some, the boot option psi=1; a cgroup's "
                    "memory.pressure needs cgroup v2)")
    measure = raw.get("measure", "some avg10")
    if measure not in PRESSURE_MEASURES:
        raise pfail("measure", f"measure must be one of {', '.join(PRESSURE_MEASURES)}, "
                    f"not {measure!r}")
    above = raw.get("above", 10.0)
    if isinstance(above, bool) or not isinstance(above, int | float) or not 0 < above < 100:
        raise pfail("above", f"above must be a number of percent between 0 and 100 "
                    f"(exclusive), not {above!r}")
    at_once = raw.get("at_once", 1)
    if isinstance(at_once, bool) or not isinstance(at_once, int) or not 1 <= at_once <= 100:
        raise pfail("at_once", f"at_once must be a whole number from 1 to 100, not {at_once!r}")
    rank = raw.get("rank", "rss")
    if rank not in ("rss", "pss"):
        raise pfail("rank", f"rank must be \"rss\" or \"pss\", not {rank!r}")
    common = _common(raw, pfail, {**base, "warn_before": 60.0, "max_postpone": 0.0,
                                  "exempt_users": (), "exempt_groups": ()})
    selectors: dict[str, Any] = {k: _names(raw, k, pfail) for k in ("users", "groups", "types")}
    for user in selectors["users"]:
        _check_user(user, lambda m: pfail("users", m))
    for group in selectors["groups"]:
        _check_group(group, lambda m: pfail("groups", m))
    rule = Rule(
        name=PRESSURE_RULE, kind="pressure", line=lines.of("pressure", 0),
        limit=_duration(raw, "idle_after", 600.0, pfail), **selectors,
        **_rule_fields(raw, base, common, pfail), min_rss=_size(raw, "min_rss", pfail),
    )
    return Pressure(file=path, measure=measure, above=float(above), rule=rule,
                    at_once=at_once, rank=rank, line=lines.of("pressure", 0))


def _metrics(data: dict, fail, lines: _Lines, bound: Metrics | None,
             probe: bool) -> Metrics | None:
    raw = _table(data, "metrics", METRICS_KEYS, fail)
    if raw is None:
        return None

    def mfail(key: str | None, msg: str) -> ConfigError:
        return fail("metrics", 0, key, msg)

    listen = raw.get("listen")
    if not isinstance(listen, str):
        raise mfail("listen", "[metrics] needs listen = \"ADDRESS:PORT\", e.g. "
                    "\"127.0.0.1:9464\"")
    allow_remote = raw.get("allow_remote", False)
    if not isinstance(allow_remote, bool):
        raise mfail("allow_remote", "allow_remote must be true or false")
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise mfail("listen", str(exc)) from None
    if not allow_remote and not ipaddress.ip_address(host).is_loopback:
        raise mfail("listen", f"{host} is not a loopback address: /metrics names users and "
                    "their sessions; set allow_remote = true to serve it beyond this host")
    metrics = Metrics(host, port, lines.of("metrics", 0, "listen"))
    if probe and (bound is None or (bound.host, bound.port) != (host, port)):
        problem = bind_problem(host, port)
        if problem:
            raise mfail("listen", f"cannot serve metrics on {listen}: {problem}")
    return metrics


def parse_listen(text: str) -> tuple[str, int]:
    """"ADDRESS:PORT" ("127.0.0.1:9464", "[::1]:9464", "localhost:9464") → (ip, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"listen {text!r}: write ADDRESS:PORT, e.g. \"127.0.0.1:9464\"")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"listen {text!r}: port {port} is out of range (1-65535)")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"listen {text!r}: {host!r} is not an IP address") from None
    return host, port


def bind_problem(host: str, port: int) -> str | None:
    """Why ``host``:``port`` cannot be listened on now (in use, not ours, privileged),
    None if it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = {errno.EADDRINUSE: "the address is in use",
                   errno.EADDRNOTAVAIL: "not an address of this host",
                   errno.EACCES: "not allowed (a port below 1024 needs root)"}
            return why.get(exc.errno or 0, exc.strerror or str(exc))
    return None


def _activity(table: dict, default: tuple[str, ...], fail) -> tuple[str, ...]:
    if "activity" not in table:
        return tuple(default)
    value = table["activity"]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise fail("activity", "activity must be a non-empty list, e.g. activity = "
                   "[\"input\", \"output\"]")
    for v in value:
        if v not in ACTIVITY_SOURCES:
            raise fail("activity", f"unknown activity {v!r} (known: "
                       f"{', '.join(ACTIVITY_SOURCES)})")
    return tuple(dict.fromkeys(value))


def _percent(table: dict, key: str, default: float, fail) -> float:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise fail(key, f"{key} must be a percentage string like \"5%\", not {value!r}")
    try:  # a share of one core: up to every core of this machine
        return parse_percent(value, what=key, high=100.0 * (os.cpu_count() or 1))
    except InvalidArgument as exc:
        raise fail(key, str(exc)) from None


def _size(table: dict, key: str, fail) -> int:
    if key not in table:
        return 0
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise fail(key, f"{key} must be a size string like \"2G\", not {value!r}")
    try:
        size = parse_size(value, what=key)
    except InvalidArgument as exc:
        raise fail(key, str(exc)) from None
    if size <= 0:
        raise fail(key, f"{key}: {value!r} must be more than 0 (leave it out for no minimum)")
    return size


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


def _resources(rule: Rule) -> tuple[int, int, float]:
    return rule.min_rss, rule.min_pss, rule.min_cpu


def _check_overlaps(rules: list[Rule], path: str) -> None:
    """Two rules of the same kind that can select the same session are ambiguous."""
    for i, a in enumerate(rules):
        for b in rules[i + 1:]:
            if a.kind != b.kind or _resources(a) != _resources(b):
                continue  # rules for different holdings may overlap: the soonest applies
            wa, wb = _who(a), _who(b)
            who_meet = wa is None or wb is None or bool(wa & wb)
            if (who_meet and _may_meet(a.types, b.types)
                    and _may_meet(a.remote_hosts, b.remote_hosts)):
                raise ConfigError(
                    f"{path}:{b.line}: rule {b.name!r} overlaps rule {a.name!r} (line {a.line}):"
                    f" both set {a.kind} for sessions they can both select; narrow users, "
                    "groups, types or remote_hosts so each session has one limit of a kind"
                )
