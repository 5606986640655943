"""Checks on what users type, shared by the API and the front ends."""

from __future__ import annotations

import re

from .errors import InvalidArgument

# user names (POSIX portable + '$' for machine accounts), tty lines (pts/3, tty1, :0),
# session ids (digits, or a letter prefix as logind's c1 and procfs' p1234)
_TARGET = re.compile(
    r"^(?:[A-Za-z0-9_.][A-Za-z0-9_.@$-]{0,63}|pts/\d{1,7}|:\d{1,4}(?:\.\d{1,3})?)$"
)
MAX_ID = 2**32 - 1


def check_target(target: str) -> str:
    """Return ``target`` if it can be a user name, session name or id; else raise."""
    if not target or not _TARGET.match(target) or ".." in target:
        raise InvalidArgument(f"invalid session, user or id: {target!r}")
    if target.isdigit() and int(target) > MAX_ID:
        raise InvalidArgument(f"session id out of range: {target}")
    return target
