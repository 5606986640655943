"""What both backends add to graphical sessions: protocol, viewers, idle from the desktop.

For each session with a display (X11/Wayland type, an X display line): the protocol
(vnc when a VNC server is one of its processes, rdp for xrdp, local otherwise), the
connected viewer's address and Active/Disc from the VNC server's own connections, and
the idle time from the X server (MIT-SCREEN-SAVER), else GNOME Mutter's IdleMonitor on
the session bus (Wayland), else what the backend already had (logind's IdleHint). All
desktops are asked at once, as their users, with one bounded wait (``x11.X11_TIMEOUT``);
one that does not answer keeps the backend's idle and says why in ``extra``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import replace

from ..linux import asuser, desktop, vnc, x11
from ..model import Session, State
from .base import DisconnectReport

RDP_SERVICES = ("xrdp-sesman", "xrdp")
MUTTER = ("org.gnome.Mutter.IdleMonitor", "/org/gnome/Mutter/IdleMonitor/Core",
          "org.gnome.Mutter.IdleMonitor")


def _mutter_idle(address: str) -> str:
    (ms,) = desktop.bus_call(address, MUTTER, "GetIdletime", None, (), x11.X11_TIMEOUT)
    return str(int(ms))


def _vnc_server(session: Session) -> int | None:
    return next((r.pid for r in session.processes if vnc.is_server(r.comm)), None)


def protocol_of(session: Session, has_vnc_server: bool) -> str:
    """How the user reaches the session: vnc, rdp, ssh, or local (a seat, a console)."""
    if has_vnc_server:
        return "vnc"
    if session.service in RDP_SERVICES:
        return "rdp"
    if session.service == "sshd" or session.type == "ssh":
        return "ssh"
    if session.remote:
        return session.protocol
    return "local"


def enrich(sessions: list[Session], timeout: float = x11.X11_TIMEOUT) -> list[Session]:
    """``sessions`` with the desktop facts filled in (see the module docstring)."""
    out = list(sessions)
    x_jobs: list[tuple[int, x11.Target]] = []
    bus_jobs: list[tuple[int, asuser.Job]] = []
    for i, s in enumerate(out):
        if not desktop.is_graphical(s):
            continue
        where = desktop.surroundings(s)
        server = _vnc_server(s)
        client_address, state = s.client_address, s.state
        if server is not None:
            seen = vnc.viewers(server)
            if seen is not None:
                client_address = seen[0] if seen else ""
                state = State.ACTIVE if seen else State.DISC
                s.extra["viewers"] = seen
        out[i] = s = replace(s, display=s.display or where.display,
                             protocol=protocol_of(s, server is not None),
                             client_address=client_address, state=state)
        target = where.x11
        if target is not None and x11.is_local_display(target.display):
            x_jobs.append((i, target))
        elif where.bus and s.type == "wayland":
            bus = where.bus
            bus_jobs.append((i, asuser.Job(s.uid, functools.partial(_mutter_idle, bus))))
    if x_jobs:
        for (i, _), reading in zip(x_jobs, x11.read_idle([t for _, t in x_jobs], timeout),
                                   strict=True):
            if reading.idle_ms is not None:
                out[i] = replace(out[i], idle_seconds=reading.seconds, idle_source="x11")
            else:
                out[i].extra["idle_error"] = reading.error
    if bus_jobs:
        import jeepney.io.blocking  # noqa: F401 - imported before fork

        outcomes = asuser.call_many([j for _, j in bus_jobs], timeout)
        for (i, _), outcome in zip(bus_jobs, outcomes, strict=True):
            if outcome.ok and outcome.detail.isdigit():
                out[i] = replace(out[i], idle_seconds=int(outcome.detail) / 1000.0,
                                 idle_source="mutter")
            else:
                out[i].extra["idle_error"] = f"Mutter IdleMonitor: {outcome.detail}"
    return out


DISCONNECT_SETTLE = 3.0  # seconds to see the viewers gone after the server was told


def disconnects_itself(session: Session) -> bool:
    """A VNC desktop is disconnected here (its viewers go, the desktop stays)."""
    return session.protocol == "vnc"


def disconnect(session: Session, settle: float = DISCONNECT_SETTLE) -> DisconnectReport | None:
    """End the viewer connections of a VNC desktop and keep the desktop running (the
    ``tsdiscon`` of a desktop); None for a session without a VNC server (not ours to
    disconnect). Verified only when the server's own connections show no viewer any
    more (then the session reads back as Disc). The caller checks permission first."""
    server = _vnc_server(session)
    if server is None:
        return None
    target = desktop.surroundings(session).x11
    if target is None:
        return DisconnectReport(False, None, f"session {session.id}: no display found")
    before = vnc.viewers(server) or []
    outcome = vnc.disconnect(target)
    if not outcome.ok:
        return DisconnectReport(False, None, f"the VNC server on {target.display} refused: "
                                f"{outcome.detail}")
    deadline = time.monotonic() + settle
    left = vnc.viewers(server)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = vnc.viewers(server)
    if left is None:
        return DisconnectReport(False, None, f"{outcome.detail} on {target.display}; the "
                                "viewers cannot be read back: unverified")
    if left:
        return DisconnectReport(False, State.ACTIVE, f"viewers still connected after "
                                f"{settle:g} s: {', '.join(left)}")
    gone = ", ".join(before) if before else "no viewer was connected"
    return DisconnectReport(True, State.DISC, f"{outcome.detail} on {target.display} ({gone})")
