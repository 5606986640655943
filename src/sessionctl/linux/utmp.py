"""utmp/wtmp records (glibc x86-64 layout, 384 bytes): read, close a login, log a logout."""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

UTMP_PATH = "/var/run/utmp"
WTMP_PATH = "/var/log/wtmp"

# type, pid, line, id, user, host, exit(term, code), session, tv_sec, tv_usec, addr_v6, reserved
_RECORD = struct.Struct("<hxxi32s4s32s256shhiii16s20s")
RECORD_SIZE = _RECORD.size  # 384
USER_PROCESS = 7
DEAD_PROCESS = 8
_MAX_TYPE = 9


@dataclass(frozen=True, slots=True)
class UtmpEntry:
    """One utmp record, decoded."""

    type: int
    pid: int
    line: str
    id: bytes
    user: str
    host: str
    session: int
    login_time: float
    addr: str
    offset: int  # byte offset of the record in its file


class UtmpCorrupt(ValueError):
    """A record in a utmp file cannot be a real one."""


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _addr(raw: bytes) -> str:
    if raw[4:] == bytes(12):
        return "" if raw[:4] == bytes(4) else str(IPv4Address(raw[:4]))
    return str(IPv6Address(raw))


def decode(record: bytes, offset: int = 0) -> UtmpEntry:
    """Decode one record; raise UtmpCorrupt if its fields cannot be real."""
    typ, pid, line, ut_id, user, host, _t, _c, sess, sec, usec, addr, _r = _RECORD.unpack(record)
    if not 0 <= typ <= _MAX_TYPE or pid < 0 or not 0 <= usec < 1_000_000:
        raise UtmpCorrupt(f"record at byte {offset}: type={typ} pid={pid}")
    return UtmpEntry(
        type=typ,
        pid=pid,
        line=_cstr(line),
        id=ut_id,
        user=_cstr(user),
        host=_cstr(host),
        session=sess,
        login_time=sec + usec / 1e6,
        addr=_addr(addr),
        offset=offset,
    )


def read(path: str = UTMP_PATH) -> tuple[list[UtmpEntry], list[str]]:
    """All records of a utmp file and a list of warnings about parts that were skipped.

    A missing file is an empty list (no logins recorded). Unreadable files raise OSError.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], []
    entries: list[UtmpEntry] = []
    warnings: list[str] = []
    usable = len(data) - len(data) % RECORD_SIZE
    if usable != len(data):
        warnings.append(f"{path}: ignored {len(data) - usable} trailing bytes (partial record)")
    for off in range(0, usable, RECORD_SIZE):
        try:
            entries.append(decode(data[off : off + RECORD_SIZE], off))
        except UtmpCorrupt as exc:
            warnings.append(f"{path}: skipped corrupt {exc}")
    return entries, warnings


def user_processes(path: str = UTMP_PATH) -> tuple[list[UtmpEntry], list[str]]:
    """USER_PROCESS records (logins), with warnings as in :func:`read`."""
    entries, warnings = read(path)
    return [e for e in entries if e.type == USER_PROCESS and e.pid > 0 and e.user], warnings


def _logout_record(entry: UtmpEntry, now: float) -> bytes:
    sec = int(now)
    return _RECORD.pack(
        DEAD_PROCESS,
        entry.pid,
        entry.line.encode()[:32],
        entry.id,
        b"",
        b"",
        0,
        0,
        0,
        sec,
        int((now - sec) * 1e6),
        bytes(16),
        bytes(20),
    )


def close_login(entry: UtmpEntry, utmp_path: str = UTMP_PATH, wtmp_path: str = WTMP_PATH) -> bool:
    """Mark a login's utmp record DEAD_PROCESS and append a wtmp logout record.

    Does what glibc's logout()/logwtmp() do, under the same fcntl lock. Returns False
    if the record is no longer that login's (already closed or reused), True if closed.
    """
    now = time.time()
    record = _logout_record(entry, now)
    with open(utmp_path, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        try:
            f.seek(entry.offset)
            current = f.read(RECORD_SIZE)
            if len(current) != RECORD_SIZE:
                return False
            now_entry = decode(current, entry.offset)
            if (now_entry.type, now_entry.pid, now_entry.line) != (
                USER_PROCESS,
                entry.pid,
                entry.line,
            ):
                return False
            f.seek(entry.offset)
            f.write(record)
            f.flush()
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)
    try:
        fd = os.open(wtmp_path, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return True  # no wtmp kept on this machine
        raise
    try:
        os.write(fd, record)
    finally:
        os.close(fd)
    return True

