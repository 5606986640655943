"""Typed reads of JSON objects that come from elsewhere (remote hosts, the countdown
worker, state.db): a value of the wrong type reads as absent, never as a crash."""

from __future__ import annotations

from collections.abc import Mapping


def text(data: Mapping[str, object], key: str) -> str | None:
    """A string value; None if absent or not a string."""
    value = data.get(key)
    return value if isinstance(value, str) else None


def number(data: Mapping[str, object], key: str) -> float | None:
    """A number (int or float, not bool); None if absent or not a number."""
    value = data.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def whole(data: Mapping[str, object], key: str) -> int | None:
    """An integer (not bool); None if absent or not an integer."""
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def strings(data: Mapping[str, object], key: str) -> tuple[str, ...]:
    """A list of strings (other items dropped); () if absent or not a list."""
    value = data.get(key)
    if not isinstance(value, list | tuple):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def items(data: Mapping[str, object], key: str) -> list[object]:
    """A list value; [] if absent or not a list."""
    value = data.get(key)
    return list(value) if isinstance(value, list | tuple) else []


def mapping(data: Mapping[str, object], key: str) -> dict[str, object]:
    """An object value; {} if absent or not an object."""
    value = data.get(key)
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}
