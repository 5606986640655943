"""The interface every backend implements. Backends find and describe; they never print."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType

from ..model import ProcessRef, Session

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (startup time)
if TYPE_CHECKING:
    from typing import Self


class Backend(ABC):
    """A source of truth about login sessions on this machine.

    Get one with ``sessionctl.get_backend()`` (chosen once per process and shared);
    construct one yourself only for a private instance (tests, recorded data).
    """

    name: str = ""

    @classmethod
    def open(cls, required: bool = False) -> Self | None:
        """A ready backend, or None when it cannot answer here (``required``: raise
        BackendUnavailable instead). The default needs nothing to be opened."""
        return cls()

    def close(self) -> None:
        """Release what the backend holds open (a bus connection). It stays usable: the
        next call reopens what it needs."""
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def remember_ids(self) -> bool:
        """Keep what the backend learns between listings (for a long-running caller);
        True if the backend does (see the procfs backend)."""
        return False

    @abstractmethod
    def sessions(self) -> list[Session]:
        """Every session now, each with its processes."""

    @abstractmethod
    def member_pids(self, session: Session, cache: dict[int, bool] | None = None) -> set[int]:
        """PIDs that belong to ``session`` right now (a fresh look; zombies may be in it).

        ``cache`` (PID → member?) holds what earlier looks found; a backend may trust it
        instead of looking again, and adds what it learns. None: look at everything.
        """

    def members(self, session: Session) -> list[ProcessRef]:
        """The live processes that belong to ``session`` right now."""
        from ..linux import proc

        return proc.live_refs(self.member_pids(session), with_uid=False)

    def is_member(self, session: Session, pid: int) -> bool | None:
        """Whether ``pid`` belongs to ``session`` now; None if only a full look can tell."""
        return None

    def session_of(self, pid: int, sessions: list[Session]) -> Session | None:
        """Which of ``sessions`` ``pid`` belongs to now (None: none of them, or only a full
        look can tell). Lets a caller place a new process without listing everything."""
        return next((s for s in sessions if self.is_member(s, pid)), None)

    def cgroup_dir(self, session: Session) -> Path | None:
        """The session's own cgroup directory, if it has one (race-free kill)."""
        return None

    def hangup(self, session: Session) -> bool:
        """Hang the session up through the backend's own means; False: not done here."""
        return False

    def terminate(self, session: Session) -> bool:
        """Ask the backend to terminate the session (SIGTERM); False: not done here."""
        return False

    def close_login(self, session: Session) -> bool:
        """Close the session's login record if its login process did not; True if closed."""
        return False

    def warnings(self) -> list[str]:
        """Things the last look skipped or could not read, for the front end to show."""
        return []
