"""Durations as admins type them: ``90``, ``45s``, ``10m``, ``1h30m``, ``2d``."""

from __future__ import annotations

import math
import re

from .errors import InvalidArgument

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(
    text: str | float | int, *, what: str = "duration", allow_zero: bool = False
) -> float:
    """Seconds in ``text``; a bare number is seconds. Negative, empty or odd input raises.

    ``what`` names the value in the error (``--notice``, ``postpone``...).
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", raw):
            value = float(raw)
        elif raw and _PART.sub("", raw) == "":
            value = sum(float(n) * _UNITS[u] for n, u in _PART.findall(raw))
        else:
            raise InvalidArgument(
                f"{what}: {text!r} is not a duration (use e.g. 90, 45s, 10m, 1h30m, 2d)"
            )
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgument(f"{what}: {text!r} must be a positive duration")
    return value


def format_duration(seconds: float) -> str:
    """Short human form: ``10 s``, ``5 min``, ``1 h 30 min``, ``2 d 3 h``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, rest = divmod(s, 60)
        return f"{m} min" + (f" {rest} s" if rest and m < 5 else "")
    if s < 86400:
        h, rest = divmod(s, 3600)
        return f"{h} h" + (f" {rest // 60} min" if rest // 60 else "")
    d, rest = divmod(s, 86400)
    return f"{d} d" + (f" {rest // 3600} h" if rest // 3600 else "")
