"""The audit log: one JSON object per line for every action taken or refused.

Root appends only to a file it alone owns and can write, in directories nobody else can
write, never through a symlink (linux/safepath.py): a log path another user chose is
refused with UnsafePath (exit 1) before the action, by ``check_path``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import datetime
from pathlib import Path

from .. import host


def default_path() -> Path:
    """Root: /var/log/sessionctl/audit.jsonl; others: their XDG state directory.
    Windows: %ProgramData%\\sessionctl for administrators, %LOCALAPPDATA% for others.

    ``SESSIONCTL_AUDIT_LOG`` overrides both.
    """
    env = os.environ.get("SESSIONCTL_AUDIT_LOG")
    if env:
        return Path(env)
    return host.default_audit_path(host.is_admin())


def _strict() -> bool:
    """Root on a POSIX system: the checks of linux/safepath.py apply."""
    return not host.WINDOWS and os.geteuid() == 0


def check_path(path: Path | str | None = None) -> Path:
    """The audit log's path, checked now (root: root's alone, no symlinks; directories
    created 0750): call before acting so a log root cannot trust stops the action first.

    Raises UnsafePath.
    """
    target = Path(path) if path is not None else default_path()
    if _strict():
        from ..linux import safepath

        with (safepath.open_dir(target.parent, 0o750, target) as directory,
              contextlib.suppress(FileNotFoundError)):
            os.close(safepath.open_file(directory, target.name, os.O_RDONLY))
    return target


def _open(target: Path) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    if not _strict():
        target.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        return os.open(target, flags | host.O_CLOEXEC, 0o600)
    from ..linux import safepath

    with safepath.open_dir(target.parent, 0o750, target) as directory:
        return safepath.open_file(directory, target.name, flags, 0o600)


def record(event: str, fields: dict[str, object], path: Path | str | None = None) -> Path:
    """Append one record; create the file (mode 600) and its directory (750) if needed.

    Root writes only to a file that is root's alone (UnsafePath otherwise, nothing written).
    """
    target = Path(path) if path is not None else default_path()
    entry = {
        "time": datetime.now().astimezone().isoformat(timespec="milliseconds"),
        "host": socket.gethostname(),
        "event": event,
        **fields,
    }
    line = (json.dumps(entry, default=str, sort_keys=False) + "\n").encode()
    fd = _open(target)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return target
