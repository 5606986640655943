"""The X server of a desktop session: idle time (MIT-SCREEN-SAVER) and a message window.

Everything here talks to the X server as the session's own user, from a child process
(``linux.asuser``) that has the user's uid and the session's ``XAUTHORITY``: the X
server's access control decides, exactly as for the user's own programs. We never add
hosts or cookies to a server. Waits are bounded (``X11_TIMEOUT``): an X server that does
not answer, or refuses us, gives an error text instead of an idle time, never a hang.
python-xlib is pure Python (no libX11 needed), which is why it was chosen.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import asuser

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

X11_TIMEOUT = 1.0  # seconds for one round of idle readings (all displays at once)
LOCAL_DISPLAY = re.compile(r"^:\d{1,5}(\.\d{1,3})?$")


@dataclass(frozen=True, slots=True)
class Target:
    """A display to ask, as ``uid``, with the cookie file ``xauthority`` (None: ~/.Xauthority)."""

    display: str
    uid: int
    xauthority: str | None = None


@dataclass(frozen=True, slots=True)
class IdleReading:
    """Milliseconds since the last input the X server saw, or why there is none."""

    display: str
    idle_ms: int | None
    error: str = ""

    @property
    def seconds(self) -> float | None:
        return None if self.idle_ms is None else self.idle_ms / 1000.0


def is_local_display(display: str) -> bool:
    """``:N`` or ``:N.S`` (we never open TCP connections to a display named elsewhere)."""
    return bool(LOCAL_DISPLAY.match(display))


def _env(target: Target) -> dict[str, str]:
    env = {"DISPLAY": target.display}
    if target.xauthority:
        env["XAUTHORITY"] = target.xauthority
    return env


def _open(display: str) -> Any:
    """In the child: a connection over the local socket only. ``unix:N`` rather than
    ``:N``: for ``:N`` python-xlib falls back to TCP port 6000+N when the socket is
    missing, which could reach some other X server."""
    from Xlib import display as xdisplay

    return xdisplay.Display("unix" + display)


def _query_idle(display: str) -> str:
    """In the child: the server's idle counter in ms. Two round trips on python-xlib's
    protocol layer (QueryExtension, ScreenSaverQueryInfo) instead of the full Display,
    which asks for every extension it knows first (18 round trips, 3x the CPU)."""
    from Xlib.display import _BaseDisplay
    from Xlib.ext import screensaver
    from Xlib.protocol import request

    conn = _BaseDisplay("unix" + display)  # local socket only: see _open
    try:
        ext = request.QueryExtension(display=conn, name=screensaver.extname)
        if not ext.present:
            raise RuntimeError("the X server has no MIT-SCREEN-SAVER extension")
        root = conn.info.roots[0].root
        info = screensaver.QueryInfo(display=conn, opcode=ext.major_opcode, drawable=root)
        return str(int(info.idle))
    finally:
        conn.close()


def _warm() -> None:
    """Import python-xlib here, before forking: each child would import it again."""
    import importlib

    for module in ("Xlib.display", "Xlib.ext.screensaver", "Xlib.protocol.request"):
        importlib.import_module(module)


def read_idle(targets: Sequence[Target], timeout: float = X11_TIMEOUT) -> list[IdleReading]:
    """Idle time of each display, all asked at once; the whole call takes at most
    ``timeout`` seconds (plus fork and reap)."""
    out: list[IdleReading | None] = [None] * len(targets)
    jobs, where = [], []
    for i, t in enumerate(targets):
        if not is_local_display(t.display):
            out[i] = IdleReading(t.display, None, f"not a local display: {t.display!r}")
            continue
        jobs.append(asuser.Job(t.uid, functools.partial(_query_idle, t.display), _env(t)))
        where.append(i)
    if jobs:
        _warm()

        for i, outcome in zip(where, asuser.call_many(jobs, timeout), strict=True):
            display = targets[i].display
            if outcome.ok and outcome.detail.isdigit():
                out[i] = IdleReading(display, int(outcome.detail))
            elif outcome.status == "timeout":
                out[i] = IdleReading(display, None,
                                     f"X server {display} did not answer within {timeout:g} s")
            else:
                out[i] = IdleReading(display, None, f"X server {display}: {outcome.detail}")
    return [r for r in out if r is not None]


def show_window_forever(display: str, title: str, text: str, seconds: float,
                        ready: Callable[[str], None]) -> None:
    """In a detached child: a plain X11 window with ``text`` until clicked, a key is
    pressed or ``seconds`` pass (the fallback when no notification service answers)."""
    from Xlib import X, Xatom

    conn = _open(display)
    screen = conn.screen()
    font = conn.open_font("fixed")
    lines = [line[:100] for line in [title, "", *text.splitlines(), "", "(click to close)"]]
    width = min(screen.width_in_pixels - 40, 20 + 7 * max(len(line) for line in lines))
    height = 20 + 15 * len(lines)
    x = max(0, (screen.width_in_pixels - width) // 2)
    y = max(0, (screen.height_in_pixels - height) // 3)
    win = screen.root.create_window(
        x, y, width, height, 2, screen.root_depth, X.InputOutput, X.CopyFromParent,
        background_pixel=screen.white_pixel, border_pixel=screen.black_pixel,
        # not the window manager's to place or hold back: a desktop whose window manager
        # hangs (its bus stopped) still shows the message, as notification popups do
        override_redirect=True,
        event_mask=X.ExposureMask | X.ButtonPressMask | X.KeyPressMask)
    win.set_wm_name(title)
    win.change_property(conn.intern_atom("_NET_WM_NAME"), conn.intern_atom("UTF8_STRING"), 8,
                        title.encode())
    win.change_property(conn.intern_atom("_NET_WM_STATE"), Xatom.ATOM, 32,
                        [conn.intern_atom("_NET_WM_STATE_ABOVE")])
    win.set_wm_normal_hints(flags=1 | 4, x=x, y=y)  # USPosition | PPosition
    gc = win.create_gc(foreground=screen.black_pixel, background=screen.white_pixel,
                       font=font)
    win.map()
    deadline = time.monotonic() + seconds

    def draw() -> None:
        for n, line in enumerate(lines):
            win.image_text(gc, 10, 22 + 15 * n, line.encode("latin-1", "replace"))
        conn.flush()

    draw()
    conn.sync()  # the server has the window: report it shown
    ready(f"message window 0x{win.id:x} on {display}")
    import select

    while time.monotonic() < deadline:
        while conn.pending_events():
            event = conn.next_event()
            if event.type == X.Expose:
                draw()
            elif event.type in (X.ButtonPress, X.KeyPress):
                return
        select.select([conn.fileno()], [], [], max(0.0, min(1.0, deadline - time.monotonic())))
    conn.close()


def show_message_window(target: Target, title: str, text: str, seconds: float,
                        timeout: float = X11_TIMEOUT * 3) -> asuser.Outcome:
    """Show the fallback message window on ``target`` as its user, held by a detached
    process that ends by itself after ``seconds`` (or a click). Waits at most ``timeout``
    s for the window to be up; the outcome says shown (ok), the X error, or timeout."""
    if not is_local_display(target.display):
        return asuser.Outcome("error", f"not a local display: {target.display!r}")
    _warm()
    _pid, outcome = asuser.spawn_detached(
        target.uid,
        lambda ready: show_window_forever(target.display, title, text, seconds, ready),
        timeout, _env(target))
    return outcome
