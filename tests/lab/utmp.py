"""Minimal independent utmp reader (glibc x86_64/aarch64 layout, 384-byte records)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

UTMP_PATH = Path("/var/run/utmp")
USER_PROCESS = 7
DEAD_PROCESS = 8
_RECORD = struct.Struct("<hxxi32s4s32s256shhiii16s20s")


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@dataclass(frozen=True)
class UtmpEntry:
    """One utmp record (only the fields tests need)."""

    type: int
    pid: int
    line: str
    id: str
    user: str
    host: str
    session: int
    tv_sec: int


def read_utmp(path: Path = UTMP_PATH) -> list[UtmpEntry]:
    """All records of a utmp-format file ([] if it does not exist)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    entries = []
    for offset in range(0, len(data) - _RECORD.size + 1, _RECORD.size):
        fields = _RECORD.unpack_from(data, offset)
        ut_type, pid, line, ut_id, user, host, _term, _exit, session, sec, _usec = fields[:11]
        entries.append(
            UtmpEntry(
                type=ut_type,
                pid=pid,
                line=_text(line),
                id=_text(ut_id),
                user=_text(user),
                host=_text(host),
                session=session,
                tv_sec=sec,
            )
        )
    return entries


def user_entries(user: str, path: Path = UTMP_PATH) -> list[UtmpEntry]:
    """USER_PROCESS records of the given user name."""
    return [e for e in read_utmp(path) if e.type == USER_PROCESS and e.user == user]


def record(pid: int, line: str, user: str, host: str, tv_sec: int,
           ut_type: int = USER_PROCESS) -> bytes:
    """One utmp record (for private utmp files handed to a backend under test)."""
    return _RECORD.pack(ut_type, pid, line.encode(), line[-4:].encode(), user.encode(),
                        host.encode(), 0, 0, 0, tv_sec, 0, bytes(16), bytes(20))
