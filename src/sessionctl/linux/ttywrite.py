"""Writing a few lines to another user's terminal, as wall(1) does, without hanging."""

from __future__ import annotations

import errno
import os
import select
import stat
import termios
import time
from dataclasses import dataclass

from ..sanitize import tty_bytes

WRITE_TIMEOUT = 2.0
IUTF8 = getattr(termios, "IUTF8", 0o40000)  # c_iflag bit (Linux); missing from some Pythons


@dataclass(frozen=True)
class TtyWrite:
    """The outcome of writing to one terminal."""

    device: str
    status: str  # "delivered", "mesg-n", "denied", "busy", "gone", "not-owner", "error"
    detail: str = ""


def messages_enabled(device: str) -> bool | None:
    """The tty's `mesg` setting (group write bit), None if it cannot be read."""
    try:
        return bool(os.stat(device).st_mode & stat.S_IWGRP)
    except OSError:
        return None


def decodes_utf8(fd: int) -> bool:
    """True if the terminal on ``fd`` is in UTF-8 mode (termios IUTF8); False if it is not
    (an 8-bit terminal: bytes 0x80-0x9F are C1 controls there) or cannot tell."""
    try:
        return bool(termios.tcgetattr(fd)[0] & IUTF8)
    except (termios.error, OSError):
        return False


def write_tty(
    device: str,
    text: str,
    *,
    owner_uid: int | None,
    respect_mesg: bool,
    timeout: float = WRITE_TIMEOUT,
) -> TtyWrite:
    """Write ``text`` to ``device``, cleaned and encoded for that terminal (``tty_bytes``:
    UTF-8 if the tty decodes UTF-8, else ASCII).

    The device must still be a character device owned by ``owner_uid`` (a tty that changed
    hands is left alone). ``respect_mesg``: a tty with `mesg n` is not written. The write is
    non-blocking with an overall ``timeout`` (a stopped or flow-controlled terminal).
    """
    if not device.startswith("/dev/") or ".." in device:
        return TtyWrite(device, "error", "not a terminal device path")
    try:
        flags = os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(device, flags)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENXIO, errno.EIO):
            return TtyWrite(device, "gone", exc.strerror or "")
        if exc.errno in (errno.EACCES, errno.EPERM):
            if respect_mesg and messages_enabled(device) is False:
                return TtyWrite(device, "mesg-n", "the user has messages disabled (mesg n)")
            return TtyWrite(device, "denied", "no permission to write to this terminal")
        return TtyWrite(device, "error", exc.strerror or str(exc))
    try:
        st = os.fstat(fd)
        if not stat.S_ISCHR(st.st_mode):
            return TtyWrite(device, "error", "not a character device")
        if owner_uid is not None and st.st_uid != owner_uid:
            return TtyWrite(device, "not-owner", "the terminal now belongs to someone else")
        if respect_mesg and not st.st_mode & stat.S_IWGRP:
            return TtyWrite(device, "mesg-n", "the user has messages disabled (mesg n)")
        return _write_all(fd, device, tty_bytes(text, utf8=decodes_utf8(fd)), timeout)
    finally:
        os.close(fd)


def _write_all(fd: int, device: str, data: bytes, timeout: float) -> TtyWrite:
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
            continue
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno == errno.EIO:
                return TtyWrite(device, "gone", "the terminal hung up")
            return TtyWrite(device, "error", exc.strerror or str(exc))
        left = deadline - time.monotonic()
        if left <= 0:
            return TtyWrite(device, "busy", f"terminal not accepting output after {timeout:g} s")
        poller.poll(left * 1000)
    return TtyWrite(device, "delivered")
