"""Asking a desktop's own session manager to log out, and who holds the logout up.

A desktop's session manager ends its applications the way they expect (XSMP
save-yourself, D-Bus "query end session"), the Linux counterpart of Windows'
WM_QUERYENDSESSION. We find which one runs on the session's bus and call its Logout
without a dialog and with saving allowed:

* Xfce: ``org.xfce.SessionManager`` ``Logout(show_dialog=false, allow_save=true)``;
* GNOME: ``org.gnome.SessionManager`` ``Logout(1)`` (no confirmation; inhibitors still
  hold it), inhibitors from ``GetInhibitors`` (app id, reason);
* KDE Plasma 6 ``org.kde.Shutdown`` ``logout``; Plasma 5 ``org.kde.ksmserver``
  ``logout(0, 0, 0)`` (no confirmation, logout, now).

Every call runs as the session's user (``linux.asuser``) with ``CALL_TIMEOUT``; a session
manager that never answers is reported as such and the caller goes on with signals.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import Session
from . import asuser, desktop

CALL_TIMEOUT = 3.0  # seconds for finding the manager and calling Logout
DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")

# name → (bus name, object path, interface, method, signature, body)
MANAGERS: dict[str, tuple[str, str, str, str, str | None, tuple]] = {
    "xfce": ("org.xfce.SessionManager", "/org/xfce/SessionManager",
             "org.xfce.Session.Manager", "Logout", "bb", (False, True)),
    "gnome": ("org.gnome.SessionManager", "/org/gnome/SessionManager",
              "org.gnome.SessionManager", "Logout", "u", (1,)),
    "kde": ("org.kde.Shutdown", "/Shutdown", "org.kde.Shutdown", "logout", None, ()),
    "kde5": ("org.kde.ksmserver", "/KSMServer", "org.kde.KSMServerInterface", "logout", "iii",
             (0, 0, 0)),
}


@dataclass(frozen=True, slots=True)
class Inhibitor:
    """Something that holds a logout up: who, why, and where it was found."""

    source: str  # "logind" or the session manager's name
    who: str
    why: str
    what: str = ""
    mode: str = ""
    pid: int | None = None
    uid: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "who": self.who, "why": self.why, "what": self.what,
                "mode": self.mode, "pid": self.pid, "uid": self.uid}


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """What asking the session manager did: ``status`` asked, none (no manager on the
    bus), no-bus, timeout or error; ``manager`` which one was asked."""

    status: str
    manager: str = ""
    detail: str = ""
    inhibitors: tuple[Inhibitor, ...] = ()

    @property
    def asked(self) -> bool:
        return self.status == "asked"


def _present(address: str) -> list[str]:
    names = set(desktop.bus_call(address, DBUS, "ListNames", None, (), CALL_TIMEOUT)[0])
    return [k for k, spec in MANAGERS.items() if spec[0] in names]


def _gnome_inhibitors(address: str) -> list[tuple[str, str]]:
    name, path, interface = MANAGERS["gnome"][:3]
    (paths,) = desktop.bus_call(address, (name, path, interface), "GetInhibitors", None, (),
                                CALL_TIMEOUT)
    out = []
    for obj in paths:
        dest = (name, obj, "org.gnome.SessionManager.Inhibitor")
        app = desktop.bus_call(address, dest, "GetAppId", None, (), CALL_TIMEOUT)[0]
        reason = desktop.bus_call(address, dest, "GetReason", None, (), CALL_TIMEOUT)[0]
        out.append((str(app), str(reason)))
    return out


def _ask(address: str) -> str:
    """In the child: find the manager, list its inhibitors, call Logout. One line per
    fact: ``manager NAME``, ``inhibitor WHO\\tWHY``, ``called``."""
    found = _present(address)
    if not found:
        return "none"
    kind = found[0]
    lines = [f"manager {kind}"]
    if kind == "gnome":
        lines += [f"inhibitor {who}\t{why}" for who, why in _gnome_inhibitors(address)]
    name, path, interface, method, signature, body = MANAGERS[kind]
    try:
        desktop.bus_call(address, (name, path, interface), method, signature, body,
                         CALL_TIMEOUT)
        lines.append("called")
    except TimeoutError:
        lines.append("no-reply")  # sent; a manager busy logging out may answer late or never
    return "\n".join(lines)


def request_logout(session: Session, timeout: float = CALL_TIMEOUT) -> LogoutRequest:
    """Ask the session's session manager to log out (no dialog, saving allowed).

    Returns at once when the manager accepted the request (the logout then runs on its
    own), or after at most ``timeout`` s (plus a second for the child) when it does not
    answer. Never raises for the desktop's faults: they are in the result.
    """
    where = desktop.surroundings(session)
    if not where.bus:
        return LogoutRequest("no-bus", detail="no session bus found for the session")
    import jeepney.io.blocking  # noqa: F401 - imported before fork

    limit = timeout * 2 + 1  # the bus's own answers, then the Logout call's reply
    outcome = asuser.call(session.uid, lambda: _ask(where.bus), limit)
    if outcome.status == "timeout":
        return LogoutRequest("timeout", detail=f"the session bus did not answer within "
                             f"{limit:g} s")
    if not outcome.ok:
        return LogoutRequest("error", detail=outcome.detail.splitlines()[0][:300]
                             if outcome.detail else "failed")
    lines = outcome.detail.splitlines()
    if lines == ["none"]:
        return LogoutRequest("none", detail="no known session manager on the session bus")
    manager = lines[0].split(" ", 1)[1]
    inhibitors = tuple(Inhibitor(manager, *line[len("inhibitor "):].partition("\t")[::2])
                       for line in lines if line.startswith("inhibitor "))
    detail = f"{manager} session manager asked to log out"
    if lines[-1] == "no-reply":
        detail += f" (it did not reply within {timeout:g} s)"
    return LogoutRequest("asked", manager, detail, inhibitors)
