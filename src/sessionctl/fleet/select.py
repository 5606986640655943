"""Which sessions a fleet logoff or msg acts on: user, state, idle time, age (pure)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from .. import jsonvalues
from ..errors import InvalidArgument
from ..model import Session, State


@dataclass(frozen=True)
class Selection:
    """Criteria a session must all meet; empty lists/None mean 'any'."""

    users: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    idle_over: float | None = None
    older_than: float | None = None
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        known = {s.value.lower(): s.value for s in State}
        states = []
        for state in self.states:
            if state.lower() not in known:
                raise InvalidArgument(
                    f"unknown state {state!r} (use one of {', '.join(s.value for s in State)})"
                )
            states.append(known[state.lower()])
        object.__setattr__(self, "states", tuple(states))
        for value in (self.idle_over, self.older_than):
            if value is not None and not value >= 0:
                raise InvalidArgument("durations must be 0 or more")

    @property
    def empty(self) -> bool:
        """True when nothing narrows the selection (every session matches)."""
        return not (self.users or self.states or self.names) and (
            self.idle_over is None and self.older_than is None
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Selection:
        return cls(
            users=jsonvalues.strings(data, "users"),
            states=jsonvalues.strings(data, "states"),
            idle_over=jsonvalues.number(data, "idle_over"),
            older_than=jsonvalues.number(data, "older_than"),
            names=jsonvalues.strings(data, "names"),
        )

    def matches(self, s: Session, now: float | None = None) -> bool:
        """Whether session ``s`` meets every criterion (our own session never does)."""
        if s.current:
            return False
        if self.users and s.user not in self.users:
            return False
        if self.states and s.state.value not in self.states:
            return False
        if self.names and not any(s.matches(n) for n in self.names):
            return False
        idle = s.idle_seconds
        if self.idle_over is not None and (idle is None or idle < self.idle_over):
            return False
        if self.older_than is not None:
            if s.login_time is None:
                return False
            age = (time.time() if now is None else now) - s.login_time.timestamp()
            if age < self.older_than:
                return False
        return True
