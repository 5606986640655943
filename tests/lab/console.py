"""A real local console login: `login -f USER` on a free virtual terminal (tty5..tty12)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import termios
import time

from . import procs
from .users import LabUser
from .utmp import user_entries

#: Virtual terminals a test may log in on, most likely free first. SESSIONCTL_LAB_VTS
#: (space-separated) narrows them; "" means none (tests then skip, saying why).
VTS = tuple(f"tty{n}" for n in range(12, 4, -1))


def free_vt() -> str | None:
    """A virtual terminal that exists and nobody is logged in on, or None."""
    wanted = os.environ.get("SESSIONCTL_LAB_VTS")
    candidates = VTS if wanted is None else tuple(wanted.split())
    busy = {line.split()[1] for line in subprocess.run(
        ["who"], capture_output=True, text=True).stdout.splitlines() if line.split()}
    return next((line for line in candidates
                 if line not in busy and os.path.exists(f"/dev/{line}")), None)


NO_FREE_VT = ("no free virtual terminal for a console login (tty5..tty12 absent or all "
              "logged in on)")


class ConsoleLogin:
    """`login -f` (pre-authenticated, root only) with a VT as controlling terminal.

    PAM runs as for a getty login: pam_loginuid gives a fresh audit id, utmp gets a
    record for ``ttyN``, and bash waits for input on the VT.
    """

    def __init__(self, user: LabUser, timeout: float = 10.0) -> None:
        self.user = user
        line = free_vt()
        if line is None:
            raise RuntimeError(NO_FREE_VT)
        self.line = line
        fd = os.open(f"/dev/{self.line}", os.O_RDWR | os.O_NOCTTY)
        try:
            self.proc = subprocess.Popen(
                ["/bin/login", "-f", user.name], stdin=fd, stdout=fd, stderr=fd,
                start_new_session=True,
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 1),
            )
        finally:
            os.close(fd)
        entry = procs.wait_until(
            lambda: next((e for e in user_entries(user.name) if e.line == self.line), None),
            timeout)
        self.login_pid = entry.pid
        self.audit_session_id = procs.wait_until(
            lambda: procs.audit_session_of(self.login_pid), timeout)
        time.sleep(0.2)

    def pids(self) -> set[int]:
        """Live pids of the console session's audit id."""
        return procs.pids_by_audit_session().get(self.audit_session_id, set())

    def close(self) -> None:
        """End only this login's processes (by its audit id), then reap our child."""
        asid = self.audit_session_id
        for pid in self.pids():
            procs.signal_pid_if(pid, 9, lambda p: procs.audit_session_of(p) == asid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
