"""Signalling one exact process through a pidfd, so a recycled PID is never hit."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from enum import Enum

from ..model import ProcessRef
from . import proc


class Sent(Enum):
    """What happened to one signal."""

    SENT = "sent"
    GONE = "gone"  # exited, became a zombie, or the PID now names another process
    DENIED = "denied"  # not permitted (another user's process, for a non-root caller)


def same_process(ref: ProcessRef, proc_root: str = proc.PROC) -> bool:
    """True while ``ref`` still names a live, non-zombie process (same PID, same start)."""
    st = proc.stat(ref.pid, proc_root)
    return st is not None and st.start_ticks == ref.start_ticks and st.state not in "ZX"


def send(
    ref: ProcessRef,
    sig: int,
    still_member: Callable[[int], bool] | None = None,
    proc_root: str = proc.PROC,
) -> Sent:
    """Send ``sig`` to exactly the process ``ref`` names, if it is still that process.

    The pidfd is opened first, then the process is checked (start time, and membership
    through ``still_member``); the fd pins it, so the check holds when the signal lands.
    """
    try:
        fd = os.pidfd_open(ref.pid)
    except ProcessLookupError:
        return Sent.GONE
    except OSError:
        return Sent.GONE
    try:
        if not same_process(ref, proc_root):
            return Sent.GONE
        if still_member is not None and not still_member(ref.pid):
            return Sent.GONE
        signal.pidfd_send_signal(fd, sig)
        return Sent.SENT
    except ProcessLookupError:
        return Sent.GONE
    except PermissionError:
        return Sent.DENIED
    finally:
        os.close(fd)


def is_stopped(ref: ProcessRef, proc_root: str = proc.PROC) -> bool:
    """True if the process is stopped (it can no longer fork) or gone."""
    st = proc.stat(ref.pid, proc_root)
    return st is None or st.start_ticks != ref.start_ticks or st.state in "TtZX"
