"""The audit log: one JSON object per line for every action taken or refused."""

from __future__ import annotations

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


def record(event: str, fields: dict[str, object], path: Path | str | None = None) -> Path:
    """Append one record; create the file (mode 600) and its directory (750) if needed."""
    target = Path(path) if path is not None else default_path()
    target.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    entry = {
        "time": datetime.now().astimezone().isoformat(timespec="milliseconds"),
        "host": socket.gethostname(),
        "event": event,
        **fields,
    }
    line = (json.dumps(entry, default=str, sort_keys=False) + "\n").encode()
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | host.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return target
