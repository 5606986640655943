"""A sudo rule for one lab user, so a login can start root processes (EPERM cases).

The rule lives in ``/etc/sudoers.d/sctest-<user>`` (mode 0440, checked with visudo before
it is put in place) and is removed when the context ends; rules whose user no longer
exists are swept at the start of a run (a crashed run leaves at most a rule for a user
that is gone).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .users import PREFIX, LabUser

SUDOERS_D = Path("/etc/sudoers.d")
SUDO = "/usr/bin/sudo"


def available() -> str | None:
    """None if sudo can be used, else why not."""
    if not os.path.exists(SUDO) or shutil.which("visudo") is None:
        return "sudo is not installed (scripts/bootstrap.sh --test installs it)"
    return None


def _path(user: str) -> Path:
    return SUDOERS_D / f"{PREFIX}-{user}"


@contextlib.contextmanager
def rule(user: LabUser, commands: str = "ALL") -> Iterator[Path]:
    """``user`` may run ``commands`` as root without a password while the context lasts."""
    if not user.name.startswith(PREFIX):
        raise ValueError(f"refusing a sudo rule for non-lab user {user.name!r}")
    path = _path(user.name)
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(f"{user.name} ALL=(root) NOPASSWD: {commands}\n")
    tmp.chmod(0o440)
    try:
        subprocess.run(["visudo", "-cqf", str(tmp)], check=True, capture_output=True)
        tmp.rename(path)  # sudo ignores names with a '.', so the .new file was never live
        yield path
    finally:
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)


def remove_stale_rules() -> list[str]:
    """Delete lab sudo rules whose user no longer exists."""
    removed = []
    for path in SUDOERS_D.glob(f"{PREFIX}-*"):
        user = path.name.removeprefix(f"{PREFIX}-").removesuffix(".new")
        try:
            pwd.getpwnam(user)
        except KeyError:
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed
