"""Throwaway local users (``sctest`` + random suffix) for real-login tests."""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .procs import alive, kill_processes_of_uid, start_time_of

PREFIX = "sctest"
#: GECOS marker identifying users made by this lab and the process that owns them.
MARKER = "sessionctl-lab"
_MARKER_RE = re.compile(rf"^{MARKER} pid=(\d+) start=(\d+)")
_ALPHABET = string.ascii_lowercase + string.digits
# userdel/useradd exit codes worth retrying: 1/10 = passwd/group file locked, 8 = user busy.
_RETRY_CODES = {1, 8, 10}


class UserError(RuntimeError):
    """Creating or removing a lab user failed."""


@dataclass(frozen=True)
class LabUser:
    """A throwaway user created by the lab."""

    name: str
    uid: int
    password: str
    home: Path

    @property
    def gid(self) -> int:
        """Primary group id."""
        return pwd.getpwnam(self.name).pw_gid


def _owner_tag(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{MARKER} pid={pid} start={start_time_of(pid)}"


def _run(argv: list[str], *, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=input_text, capture_output=True, text=True, check=False, timeout=60
    )


def create_user(prefix: str = PREFIX, suffix_len: int = 4) -> LabUser:
    """Create a user ``<prefix><random>`` with a home dir, bash and a random password."""
    for _attempt in range(20):
        name = prefix + "".join(secrets.choice(_ALPHABET) for _ in range(suffix_len))
        try:
            pwd.getpwnam(name)
            continue
        except KeyError:
            pass
        res = _run(["useradd", "-m", "-s", "/bin/bash", "-c", _owner_tag(), name])
        if res.returncode == 9:  # name taken meanwhile
            continue
        if res.returncode in _RETRY_CODES:
            time.sleep(0.1 + secrets.randbelow(200) / 1000)
            continue
        if res.returncode != 0:
            raise UserError(f"useradd {name} failed ({res.returncode}): {res.stderr.strip()}")
        password = secrets.token_hex(12)
        res = _run(["chpasswd"], input_text=f"{name}:{password}\n")
        if res.returncode != 0:
            remove_user(name)
            raise UserError(f"chpasswd {name} failed: {res.stderr.strip()}")
        entry = pwd.getpwnam(name)
        return LabUser(name=name, uid=entry.pw_uid, password=password, home=Path(entry.pw_dir))
    raise UserError("could not create a unique lab user")


def remove_user(user: LabUser | str, *, prefix: str = PREFIX) -> None:
    """End all processes of the user (uid or loginuid), then ``userdel -r``. Idempotent."""
    name = user.name if isinstance(user, LabUser) else user
    if not name.startswith(prefix):
        raise UserError(f"refusing to remove non-lab user {name!r}")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return
    if entry.pw_uid == 0:
        raise UserError(f"refusing to remove uid 0 user {name!r}")
    if isinstance(user, LabUser) and user.uid != entry.pw_uid:
        raise UserError(f"{name} now has uid {entry.pw_uid}, expected {user.uid}")
    res: subprocess.CompletedProcess[str] | None = None
    # userdel also counts the user's zombies, which init reaps when it gets to them (on a
    # busy machine that can take seconds): keep trying for a while
    deadline = time.monotonic() + 60
    while True:
        survivors = kill_processes_of_uid(entry.pw_uid)
        if survivors:
            raise UserError(f"processes of {name} survived SIGKILL: {sorted(survivors)}")
        res = _run(["userdel", "-r", name])
        try:
            pwd.getpwnam(name)
        except KeyError:
            break
        if res.returncode not in _RETRY_CODES:
            raise UserError(f"userdel {name} failed ({res.returncode}): {res.stderr.strip()}")
        if time.monotonic() > deadline:
            raise UserError(f"userdel {name} kept failing: {res.stderr.strip()}")
        time.sleep(0.1 + secrets.randbelow(200) / 1000)
    home = Path(entry.pw_dir)
    if home.name == name and home.parent == Path("/home") and home.exists():
        shutil.rmtree(home, ignore_errors=True)


def lab_users(prefix: str = PREFIX) -> list[pwd.struct_passwd]:
    """All existing users whose name starts with prefix and that carry the lab marker."""
    return [
        entry
        for entry in pwd.getpwall()
        if entry.pw_name.startswith(prefix) and _MARKER_RE.match(entry.pw_gecos)
    ]


def is_stale(entry: pwd.struct_passwd) -> bool:
    """True if the process that created this lab user no longer exists."""
    match = _MARKER_RE.match(entry.pw_gecos)
    if match is None:
        return False
    pid, start = int(match.group(1)), int(match.group(2))
    return not (alive(pid) and start_time_of(pid) == start)


def remove_stale_test_users(prefix: str = PREFIX) -> list[str]:
    """Remove lab users left by crashed runs (their creating process is gone).

    Users of concurrently running test processes are kept, and so are ``sctest*`` users
    without the lab's GECOS marker (made by hand, not by this lab).
    """
    removed = []
    for entry in lab_users(prefix):
        if is_stale(entry):
            remove_user(entry.pw_name, prefix=prefix)
            removed.append(entry.pw_name)
    return removed
