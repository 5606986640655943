"""Plain data the session actions report (for /v, --json and the audit log): the stages
of a sign-out, what it left running, and what a disconnect did. A module of their own,
so that the modules that fill them in (logoff, signout, desktop_logout; disconnect,
linux_disconnect) import them one way."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Session


def about(session: Session) -> dict[str, object]:
    """The session an action's result is about, as every result's JSON names it."""
    return {"session": session.id, "user": session.user, "name": session.name}


@dataclass
class Step:
    """One stage of the sign-out sequence, for /v and the audit log."""

    name: str
    signal: str
    signalled: int
    remaining: int
    seconds: float
    detail: str = ""


@dataclass
class Leftover:
    """A process still running when a sign-out ended, and why."""

    pid: int
    comm: str
    uid: int  # effective uid (-1 if unknown)
    user: str
    reason: str


@dataclass
class DisconnectResult:
    """What a disconnect did, checked afterwards."""

    session: Session
    outcome: str  # "disconnected" or "incomplete"
    connections: list[int] = field(default_factory=list)  # connection processes ended
    detached: list[str] = field(default_factory=list)  # "pts/5 from tmux 1234"
    kept: list[int] = field(default_factory=list)  # PIDs of the work kept
    lost: list[int] = field(default_factory=list)  # PIDs of that work gone afterwards
    problems: list[str] = field(default_factory=list)
    state: str = ""  # the session's state afterwards
    seconds: float = 0.0
    steps: list[str] = field(default_factory=list)
    audit_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "disconnected"

    def to_dict(self) -> dict[str, object]:
        return {
            **about(self.session),
            "outcome": self.outcome,
            "connections": self.connections,
            "detached": self.detached,
            "kept": self.kept,
            "lost": self.lost,
            "problems": self.problems,
            "state": self.state,
            "seconds": round(self.seconds, 3),
            "steps": self.steps,
        }
