"""Account lookups: uid ↔ login name."""

from __future__ import annotations

import pwd


def user_name(uid: int) -> str:
    """Login name of a uid, or the number as text if it has no passwd entry."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def user_uid(name: str) -> int | None:
    """Uid of a login name, None if unknown."""
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None
