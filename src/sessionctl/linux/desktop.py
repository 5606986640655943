"""A desktop session's own surroundings: its environment, its session bus, notifications.

A desktop's session bus is often not ``/run/user/UID/bus``: VNC and xrdp desktops start
one with ``dbus-launch`` and only the session's processes know its address
(``DBUS_SESSION_BUS_ADDRESS`` in ``/proc/PID/environ``). So is its ``XAUTHORITY``. Every
call to the bus is made by a child running as the session's user (``linux.asuser``):
the bus only accepts its owner, and root never talks to a user's bus as root. Waits are
bounded by ``BUS_TIMEOUT`` (a bus whose daemon is stopped gives "busy", never a hang).
"""

from __future__ import annotations

import html
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..model import Session
from . import asuser, proc, x11

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

GRAPHICAL_TYPES = {"x11", "wayland", "mir"}
BUS_TIMEOUT = 3.0  # seconds for one call on a session bus (connect + auth + reply)
SESSION_VARS = ("DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS", "WAYLAND_DISPLAY")
NOTIFY = ("org.freedesktop.Notifications", "/org/freedesktop/Notifications",
          "org.freedesktop.Notifications")
NO_SERVICE = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.Spawn.",
              "org.freedesktop.DBus.Error.NameHasNoOwner")


def is_graphical(session: Session) -> bool:
    """A session with a display (X11/Wayland type, or an X display as its line)."""
    return (session.type in GRAPHICAL_TYPES or bool(session.display)
            or any(t.startswith(":") for t in session.ttys))


def bus_path(uid: int, runtime_root: str = "/run/user") -> Path:
    return Path(runtime_root, str(uid), "bus")


def session_environment(session: Session, names: tuple[str, ...] = SESSION_VARS,
                        proc_root: str = proc.PROC) -> dict[str, str]:
    """The values of ``names`` that the session's own processes (those of its user) hold;
    where they disagree, the value most of them hold."""
    votes: dict[str, Counter[str]] = {n: Counter() for n in names}
    for ref in session.processes:
        uid = ref.uid if ref.uid >= 0 else proc.owner_uid(ref.pid, proc_root)
        if uid != session.uid:
            continue  # root's helpers (the VNC session starter) hold no desktop variables
        env = proc.environ(ref.pid, proc_root)
        for name in names:
            if env.get(name):
                votes[name][env[name]] += 1
    return {n: c.most_common(1)[0][0] for n, c in votes.items() if c}


@dataclass(frozen=True, slots=True)
class Surroundings:
    """Where a desktop session can be reached: its bus, its display and cookie file."""

    uid: int
    bus: str  # D-Bus address, "" if none found
    display: str
    xauthority: str | None

    @property
    def x11(self) -> x11.Target | None:
        return x11.Target(self.display, self.uid, self.xauthority) if self.display else None


def surroundings(session: Session, runtime_root: str = "/run/user") -> Surroundings:
    """The session's bus (its processes' DBUS_SESSION_BUS_ADDRESS, then
    /run/user/UID/bus), its display and XAUTHORITY."""
    env = session_environment(session)
    bus = env.get("DBUS_SESSION_BUS_ADDRESS", "")
    if not bus and bus_path(session.uid, runtime_root).is_socket():
        bus = f"unix:path={bus_path(session.uid, runtime_root)}"
    display = session.display or env.get("DISPLAY", "")
    if not display:
        display = next((t for t in session.ttys if x11.is_local_display(t)), "")
    return Surroundings(session.uid, bus, display, env.get("XAUTHORITY"))


# -- calls on the session bus (run in the user's child) ----------------------------------


def bus_call(address: str, dest: tuple[str, str, str], method: str, signature: str | None,
             body: tuple, timeout: float = BUS_TIMEOUT) -> tuple:
    """One method call on ``address`` (in the child: we are the bus's user already)."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection
    from jeepney.wrappers import unwrap_msg

    name, path, interface = dest
    msg = new_method_call(DBusAddress(path, bus_name=name, interface=interface), method,
                          signature, body)
    with open_dbus_connection(address, auth_timeout=timeout) as conn:
        return tuple(unwrap_msg(conn.send_and_get_reply(msg, timeout=timeout)))


def _notify_msg(summary: str, body: str, timeout: float, actions: list[str]) -> Any:
    from jeepney import DBusAddress, new_method_call

    name, path, interface = NOTIFY
    return new_method_call(
        DBusAddress(path, bus_name=name, interface=interface), "Notify", "susssasa{sv}i",
        ("sessionctl", 0, "", summary, body, actions, {"urgency": ("y", 2)},
         int(min(timeout, 3600) * 1000)))


def _notify_child(address: str, summary: str, body: str, timeout: float) -> str:
    from jeepney.io.blocking import open_dbus_connection
    from jeepney.wrappers import unwrap_msg

    with open_dbus_connection(address, auth_timeout=BUS_TIMEOUT) as conn:
        reply = conn.send_and_get_reply(_notify_msg(summary, body, timeout, []),
                                        timeout=BUS_TIMEOUT)
        return f"notification id {unwrap_msg(reply)[0]}"


@dataclass(frozen=True, slots=True)
class Followup:
    """What a shown notification does next, in a detached process of the user's:
    ``action`` (key, label) is a button whose press runs ``on_action()``; ``relevant`` is
    asked every ``RECHECK`` s and closes the notification once it returns False (a
    warning that was withdrawn or superseded)."""

    action: tuple[str, str] | None = None
    on_action: Callable[[], object] | None = None
    relevant: Callable[[], bool] | None = None


RECHECK = 1.0


def _still(relevant: Callable[[], bool]) -> bool:
    """``relevant()``, and True when it cannot tell (a notice stays rather than vanish)."""
    try:
        return relevant()
    except Exception:
        return True


def _notify_and_listen(address: str, summary: str, body: str, timeout: float,
                       follow: Followup, ready: Callable[[str], None]) -> None:
    """In a detached child: show the notification (with the button if the server has
    actions), report its id, then follow it until it is closed, its button is pressed,
    it is no longer relevant (then closed) or ``timeout`` passes."""
    from jeepney import HeaderFields, MatchRule, message_bus
    from jeepney.io.blocking import Proxy, open_dbus_connection
    from jeepney.wrappers import unwrap_msg

    _name, path, interface = NOTIFY
    with open_dbus_connection(address, auth_timeout=BUS_TIMEOUT) as conn:
        caps = bus_call_on(conn, NOTIFY, "GetCapabilities")[0]
        action = follow.action if follow.action and follow.on_action else None
        actions = list(action) if action and "actions" in caps else []
        rule = MatchRule(type="signal", interface=interface, path=path)
        Proxy(message_bus, conn, timeout=BUS_TIMEOUT).AddMatch(rule)
        with conn.filter(rule) as queue:
            reply = conn.send_and_get_reply(_notify_msg(summary, body, timeout, actions),
                                            timeout=BUS_TIMEOUT)
            nid = unwrap_msg(reply)[0]
            ready(f"notification id {nid}" + (f" with action {actions[1]!r}" if actions else
                                             " (no action shown)" if action else ""))
            if not actions and follow.relevant is None:
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    signal_msg = conn.recv_until_filtered(
                        queue, timeout=min(RECHECK, deadline - time.monotonic()))
                except TimeoutError:
                    if follow.relevant is not None and not _still(follow.relevant):
                        bus_call_on(conn, NOTIFY, "CloseNotification", "u", (nid,))
                        return
                    continue
                member = signal_msg.header.fields.get(HeaderFields.member)
                if not signal_msg.body or signal_msg.body[0] != nid:
                    continue
                run = follow.on_action
                if member == "ActionInvoked" and action and signal_msg.body[1] == action[0]:
                    try:
                        if run is not None:
                            run()
                    except Exception as exc:  # tell the user, who pressed the button
                        conn.send_and_get_reply(_notify_msg(
                            f"{action[1]} failed", html.escape(str(exc)[:300], quote=False),
                            30, []), timeout=BUS_TIMEOUT)
                    return
                if member == "NotificationClosed":
                    return


def bus_call_on(conn: Any, dest: tuple[str, str, str], method: str,
                signature: str | None = None, body: tuple[object, ...] = ()) -> tuple[Any, ...]:
    """A method call on an open connection (in the child)."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.wrappers import unwrap_msg

    name, path, interface = dest
    msg = new_method_call(DBusAddress(path, bus_name=name, interface=interface), method,
                          signature, body)
    return tuple(unwrap_msg(conn.send_and_get_reply(msg, timeout=BUS_TIMEOUT)))


def notify(session: Session, summary: str, body: str, *, timeout: float, caller_uid: int,
           follow: Followup | None = None, runtime_root: str = "/run/user") -> tuple[str, str]:
    """Show a notification on the session's desktop; returns (status, detail).

    Status: delivered, denied (another user's desktop and we are not root), no-desktop,
    busy (the bus did not answer in time) or error. ``follow`` (a button, a relevance
    check) is carried out by a detached process of the user's for up to ``timeout``.
    With no notification service, or a bus that does not answer, a plain X11 window
    shows the text instead (status delivered, detail says so).
    """
    if caller_uid not in (0, session.uid):
        return "denied", "only root can reach another user's desktop"
    body = html.escape(body, quote=False)  # notification bodies may be read as markup
    where = surroundings(session, runtime_root)
    import jeepney.io.blocking  # noqa: F401 - imported before fork: the children start warm

    if where.bus and follow is not None:
        _pid, outcome = asuser.spawn_detached(
            session.uid,
            lambda ready: _notify_and_listen(where.bus, summary, body, timeout, follow, ready),
            BUS_TIMEOUT * 2)
    elif where.bus:
        outcome = asuser.call(session.uid,
                              lambda: _notify_child(where.bus, summary, body, timeout),
                              BUS_TIMEOUT * 2)
    else:
        outcome = asuser.Outcome("error", f"no session bus (none in the session's processes, "
                                 f"none at {bus_path(session.uid, runtime_root)})")
    if outcome.ok:
        return "delivered", outcome.detail
    target = where.x11
    if target is None:
        status = "busy" if outcome.status == "timeout" else (
            "no-desktop" if not where.bus else "error")
        detail = ("the session bus did not answer within "
                  f"{BUS_TIMEOUT * 2:g} s" if outcome.status == "timeout" else outcome.detail)
        return status, detail
    first = outcome.detail.splitlines()[0][:200] if outcome.detail else outcome.status
    why = ("the session bus did not answer" if outcome.status == "timeout"
           else "no session bus" if not where.bus
           else f"no notification service: {first}" if any(e in first for e in NO_SERVICE)
           else first)
    shown = x11.show_message_window(target, summary, html.unescape(body), timeout)
    if shown.ok:
        return "delivered", f"{shown.detail} ({why})"
    return ("busy" if shown.status == "timeout" else "error",
            f"{why}; the fallback window failed too: {shown.detail}")
