"""Typed reads of JSON objects that come from elsewhere (remote hosts, the countdown
worker, state.db): a value of the wrong type reads as absent, never as a crash."""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (startup time)
if TYPE_CHECKING:
    from typing import TypeVar

    from _typeshed import DataclassInstance

    T = TypeVar("T", bound=DataclassInstance)


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


def build(cls: type[T], data: Mapping[str, object]) -> T:
    """A dataclass from a JSON object, every field checked against its annotated type
    (``int | None``, ``float`` also taking an int, ``str``, ``bool``). Unknown keys are
    ignored; a missing field takes its default. ValueError names a missing or mistyped
    field. New fields of ``cls`` are read without any change here."""
    import dataclasses
    import types
    import typing

    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        value = data.get(f.name)
        if value is None:
            if type(None) in allowed:
                values[f.name] = None
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"lacks {f.name}")
            continue
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        kinds = tuple(a for a in allowed if isinstance(a, type) and a is not type(None))
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValueError(f"{f.name} is not {' or '.join(k.__name__ for k in kinds)}")
        values[f.name] = value
    return cls(**values)
