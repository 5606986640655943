"""Signing a desktop out gracefully: its session manager first, then the shared signals
(Linux; called from actions/signout.py).

Windows asks every application before a sign-out (WM_QUERYENDSESSION); a Linux desktop
has the same in its session manager. For a graphical session, ``logoff`` first:

1. lists the inhibitor locks held by the session's processes (logind) and those its
   session manager knows (GNOME), with who and why;
2. asks the session manager to log out without a dialog, saving allowed
   (``linux.session_manager``), as the session's user, bounded;
3. waits up to the grace for the session to empty by itself;

and only then runs the shared HUP → TERM → KILL sequence (``actions/signout.py``) on what
is left, with what is left of the grace. It records which applications ended by
themselves, which ended on a signal and which had to be killed. A desktop whose bus or
session manager does not answer gets the signals at once, with the reason in the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..backends.base import Backend
from ..linux import desktop, session_manager
from ..linux.session_manager import Inhibitor
from ..linux.signals import Pins
from ..model import ProcessRef, Session
from .reports import Step


class Run(Protocol):
    """What the desktop part uses of the shared sequence's run (signout.SignOutRun)."""

    backend: Backend
    session: Session
    progress: Callable[[Step], None] | None
    steps: list[Step]
    last: list[ProcessRef]
    pins: Pins

    def members(self, thorough: bool = False) -> list[ProcessRef]: ...

POLL = 0.1
MIN_HANGUP = 0.2  # the hangup stage keeps at least this much when the desktop used the grace


def _label(ref: ProcessRef) -> str:
    return f"{ref.comm or '?'}[{ref.pid}]"


@dataclass
class DesktopLogoff:
    """What the graceful part of a desktop's sign-out did (for /v, JSON and the audit)."""

    request: str  # asked, none, no-bus, timeout, error (linux.session_manager)
    manager: str = ""
    detail: str = ""
    inhibitors: list[Inhibitor] = field(default_factory=list)
    waited: float = 0.0
    emptied_by_itself: bool = False
    ended_by_themselves: list[str] = field(default_factory=list)
    ended_on_signal: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "request": self.request,
            "manager": self.manager,
            "detail": self.detail,
            "inhibitors": [i.to_dict() for i in self.inhibitors],
            "waited": round(self.waited, 3),
            "emptied_by_itself": self.emptied_by_itself,
            "ended_by_themselves": self.ended_by_themselves,
            "ended_on_signal": self.ended_on_signal,
            "killed": self.killed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> DesktopLogoff:
        """The inverse of ``to_dict`` (the report of a sign-out run in a helper process)."""
        fields: dict = dict(data)
        fields["inhibitors"] = [Inhibitor(**i) for i in fields.get("inhibitors", [])]
        return cls(**fields)


class Graceful:
    """The desktop part of one sign-out; ``ask()`` runs it, the shared sequence follows."""

    def __init__(self, run: Run, grace: float) -> None:
        self.run = run
        self.grace = grace
        self.report = DesktopLogoff("not-asked")
        self.after_desktop: list[ProcessRef] = []
        self.left: list[ProcessRef] | None = None
        outer = run.progress
        run.progress = lambda step: self._watch(step, outer)

    def ask(self) -> float:
        """Ask the session manager, wait for the session to empty; returns the grace
        left for the shared sequence's hangup stage."""
        run, started = self.run, time.monotonic()
        before = run.members()
        report = self.report
        report.inhibitors = run.backend.inhibitors(run.session)
        request = session_manager.request_logout(run.session)
        report.request, report.manager, report.detail = (request.status, request.manager,
                                                         request.detail)
        report.inhibitors += list(request.inhibitors)
        left = before
        if request.asked:
            deadline = started + self.grace
            while left and time.monotonic() < deadline:
                run.pins.wait_exit(left, min(deadline, time.monotonic() + POLL))
                left = run.members()
            if not left:
                left = run.members(thorough=True)
        report.waited = time.monotonic() - started
        report.emptied_by_itself = request.asked and not left
        still = {r.pid for r in left}
        report.ended_by_themselves = [_label(r) for r in before if r.pid not in still]
        self.after_desktop = left
        detail = report.detail
        if report.inhibitors:
            detail += "; inhibited by " + ", ".join(
                f"{i.who} ({i.why})" for i in report.inhibitors)
        step = Step("desktop-logout", report.manager or "-", 1 if request.asked else 0,
                    len(left), report.waited, detail)
        run.steps.append(step)
        if run.progress:
            run.progress(step)
        if not request.asked:
            return self.grace
        return max(MIN_HANGUP if self.grace > 0 else 0.0, self.grace - report.waited)

    def _watch(self, step: Step, outer: Callable[[Step], None] | None) -> None:
        """After each stage: who is still alive (what the kill stage gets is 'killed')."""
        if step.name in ("hangup", "terminate"):
            self.left = [r for r in self.run.last if self.run.pins.alive(r)]
        elif step.name == "kill":
            killed = {r.pid for r in self.left or []}
            self.report.killed = [_label(r) for r in self.left or []]
            self.report.ended_on_signal = [
                _label(r) for r in self.after_desktop if r.pid not in killed]
        if outer:
            outer(step)


def applies(session: Session) -> bool:
    """Sessions with a desktop get the graceful part."""
    return desktop.is_graphical(session)
