"""Desktop notifications on a user's D-Bus session bus (org.freedesktop.Notifications)."""

from __future__ import annotations

import contextlib
import html
import os
import pwd
import select
import signal
from pathlib import Path

from ..model import Session

GRAPHICAL_TYPES = {"x11", "wayland", "mir"}
BUS_TIMEOUT = 5.0


def is_graphical(session: Session) -> bool:
    """A session with a display (X11/Wayland type, or an X display as its line)."""
    return session.type in GRAPHICAL_TYPES or any(t.startswith(":") for t in session.ttys)


def bus_path(uid: int, runtime_root: str = "/run/user") -> Path:
    return Path(runtime_root, str(uid), "bus")


def notify(uid: int, summary: str, body: str, *, timeout: float, caller_uid: int,
           runtime_root: str = "/run/user") -> tuple[str, str]:
    """Show a notification on ``uid``'s session bus; returns (status, detail).

    The call is made by a child process running as that user (the bus only accepts its
    owner), so root never talks to a user's bus as root. Other callers can reach only
    their own bus.
    """
    path = bus_path(uid, runtime_root)
    body = html.escape(body, quote=False)  # notification bodies may be read as markup
    if caller_uid not in (0, uid):
        return "denied", "only root can reach another user's desktop"
    if not path.is_socket():
        return "no-desktop", f"no session bus at {path}"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become the user, call Notify, report through the pipe
        code = 1
        try:
            os.close(read_end)
            if os.getuid() != uid:
                entry = pwd.getpwuid(uid)
                os.setgroups([])
                os.setgid(entry.pw_gid)
                os.setuid(uid)
            detail = _call_notify(str(path), summary, body, timeout)
            os.write(write_end, detail.encode()[:400])
            code = 0
        except BaseException as exc:  # report anything, never return into the caller
            with contextlib.suppress(OSError):
                os.write(write_end, f"{type(exc).__name__}: {exc}".encode()[:400])
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], BUS_TIMEOUT + 1)
        detail = os.read(read_end, 512).decode(errors="replace") if ready else ""
        if not ready:
            os.kill(pid, signal.SIGKILL)  # our own child, not yet reaped: pid cannot be reused
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(read_end)
    if not ready:
        return "busy", f"the session bus did not answer within {BUS_TIMEOUT:g} s"
    if os.waitstatus_to_exitcode(status) == 0:
        return "delivered", detail
    return "error", detail


def _call_notify(address: str, summary: str, body: str, timeout: float) -> str:
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    target = DBusAddress("/org/freedesktop/Notifications",
                         bus_name="org.freedesktop.Notifications",
                         interface="org.freedesktop.Notifications")
    msg = new_method_call(target, "Notify", "susssasa{sv}i",
                          ("sessionctl", 0, "", summary, body, [], {},
                           int(min(timeout, 3600) * 1000)))
    with open_dbus_connection(f"unix:path={address}") as conn:
        reply = conn.send_and_get_reply(msg, timeout=BUS_TIMEOUT)
    if reply.header.message_type.name == "error":
        raise RuntimeError(str(reply.body[0]) if reply.body else "D-Bus error")
    return f"notification id {reply.body[0]}"
