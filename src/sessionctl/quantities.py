"""Sizes and shares as admins type them: ``2G``, ``200M``, ``512K``, ``5%``."""

from __future__ import annotations

import math
import re

from .errors import InvalidArgument

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Bytes in ``text``: a bare number is bytes; K, M, G, T are powers of 1024 (``2G``,
    ``200M``, ``1.5GiB``, ``512KB``). Negative, empty or odd input raises InvalidArgument."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise InvalidArgument(f"{what}: {text!r} must not be negative")
        return text
    m = _SIZE.fullmatch(str(text).strip().lower())
    if m is None:
        raise InvalidArgument(f"{what}: {text!r} is not a size (use e.g. 500M, 2G, 1.5G)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def parse_percent(
    text: str | int | float, *, what: str = "share", low: float = 0.0, high: float = 100.0
) -> float:
    """Percent in ``text`` (``"5%"``, ``"12.5%"``; a bare number is percent too), which must
    lie in (``low``, ``high``]."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _PERCENT.fullmatch(str(text).strip())
        if m is None:
            raise InvalidArgument(f"{what}: {text!r} is not a percentage (use e.g. \"5%\")")
        value = float(m.group(1))
    if not math.isfinite(value) or not low < value <= high:
        raise InvalidArgument(
            f"{what}: {text!r} is out of range (more than {low:g}%, at most {high:g}%)")
    return value


def format_size(n: float | None) -> str:
    """Bytes for people: ``512 B``, ``12.3 KiB``, ``845 MiB``, ``1.21 GiB``; '-' if unknown."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    return "-"  # not reached
