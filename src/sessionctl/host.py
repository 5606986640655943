"""What differs between the platforms sessionctl runs on, decided once at import.

Who the caller is (:class:`Caller`), user and group lookups for the policy, and where
state and audit files go by default. POSIX lookups use ``pwd``/``grp``; on Windows the
caller comes from the windows backend (GetUserNameW, IsUserAnAdmin) and there is no
group database here, so group lookups say so instead of guessing.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .model import Session

WINDOWS = sys.platform == "win32"
#: Who may act on other users' sessions, for messages.
ADMIN_WORD = "an administrator" if WINDOWS else "root"
#: Open flag that keeps a descriptor out of child processes.
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0) or getattr(os, "O_NOINHERIT", 0)


@dataclass(frozen=True, slots=True)
class Caller:
    """The user a library call acts for.

    ``uid``: the POSIX uid; on Windows the account's relative id (-1 when unknown).
    ``admin``: root, or on Windows a member of Administrators with an elevated token.
    ``by_name``: sessions are matched by user name (Windows), not by uid.
    """

    uid: int
    name: str
    admin: bool
    by_name: bool = False

    def owns(self, session: Session) -> bool:
        """True if ``session`` belongs to this caller."""
        if self.by_name:
            return bool(session.user) and session.user.casefold() == self.name.casefold()
        return session.uid == self.uid


def posix_caller(uid: int | None = None) -> Caller:
    """The calling process's real uid (or ``uid``) as a Caller."""
    from .linux.accounts import user_name

    uid = os.getuid() if uid is None else uid
    return Caller(uid, user_name(uid), uid == 0)


def default_state_dir() -> Path:
    """/var/lib/sessionctl; on Windows %ProgramData%\\sessionctl."""
    if WINDOWS:
        return Path(os.environ.get("PROGRAMDATA") or "C:\\ProgramData", "sessionctl")
    return Path("/var/lib/sessionctl")


def default_audit_path(admin: bool) -> Path:
    """Where audit records go when nothing says otherwise (see actions/audit.py)."""
    if WINDOWS:
        base = os.environ.get("PROGRAMDATA") if admin else os.environ.get("LOCALAPPDATA")
        return Path(base or os.path.expanduser("~"), "sessionctl", "audit.jsonl")
    if admin:
        return Path("/var/log/sessionctl/audit.jsonl")
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(state, "sessionctl", "audit.jsonl")


def is_admin() -> bool:
    """Root (effective uid 0), or on Windows an elevated administrator."""
    if WINDOWS:
        from .windows.wtsapi import load

        return bool(load().IsUserAnAdmin())
    return os.geteuid() == 0


# -- users and groups (the policy's selectors) -----------------------------------------


def user_exists(name: str) -> bool | None:
    """Whether a local account of that name exists; None where it cannot be told here."""
    if WINDOWS:
        return None
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def group_exists(name: str) -> bool | None:
    """Whether a group of that name exists; None where there is no group database."""
    if WINDOWS:
        return None
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def groups_of(user: str) -> set[str]:
    """Names of every group a user is in (primary included); empty where unknown."""
    if WINDOWS:
        return set()
    import contextlib
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return set()
    names = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    with contextlib.suppress(KeyError):
        names.add(grp.getgrgid(entry.pw_gid).gr_name)
    return names


def group_members(name: str) -> set[str]:
    """Users in a group: listed members and those whose primary group it is."""
    if WINDOWS:
        return set()
    import grp
    import pwd

    entry = grp.getgrnam(name)
    return set(entry.gr_mem) | {p.pw_name for p in pwd.getpwall() if p.pw_gid == entry.gr_gid}
