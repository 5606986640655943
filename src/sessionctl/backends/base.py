"""The interface every backend implements. Backends find and describe; they never print."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..host import Caller, posix_caller
from ..model import ProcessRef, Session, State

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (startup time)
if TYPE_CHECKING:
    from typing import Protocol, Self

    from ..linux.session_manager import Inhibitor
    from ..usage_model import Counters

    class CounterReader(Protocol):
        """Per-process figures for the users view, from the platform's own source."""

        #: units of ``start_ticks`` and ``cpu_ticks`` per second
        ticks_per_second: float

        def now_ticks(self) -> float:
            """Now, on the clock that ``start_ticks`` counts on."""
            ...

        def read(self, pid: int, start: int | None, *, io: bool = True,
                 pss: bool = False) -> tuple[Counters | None, bool]:
            """(counters, denied): one reading; None if gone or the PID names another process."""
            ...

        def pid_marks(self) -> object | None:
            """A mark of the PIDs handed out so far; None: new processes need a full look."""
            ...

        def pids_since(self, before: object, after: object, limit: int) -> list[int] | None:
            """PIDs handed out between two marks; None if more than ``limit`` (look at all)."""
            ...

        def process_ref(self, pid: int) -> ProcessRef | None:
            """A live process (not a thread, not a zombie) with that PID, or None."""
            ...


@dataclass
class NativeLogoff:
    """What a backend's own sign-out did (Windows: WTSLogoffSession), read back after."""

    call: str  # the system call that did it
    processes: int  # members before
    remaining: list[int]  # members found afterwards
    seconds: float
    detail: str = ""


@dataclass
class BoxReply:
    """One message shown through the system's own means (Windows: WTSSendMessageW)."""

    status: str  # delivered, denied, gone, error
    detail: str = ""
    acknowledged: bool = False  # the user answered (pressed OK) before the time ran out
    response: int | None = None  # the raw response code (IDOK, IDTIMEOUT, IDASYNC, ...)


@dataclass
class DisconnectReport:
    """A disconnect through the backend, with the state read back afterwards."""

    verified: bool  # the session was read back as Disc (or gone)
    state: State | None  # what was read back; None: it could not be read
    detail: str = ""

class Backend(ABC):
    """A source of truth about login sessions on this machine.

    Get one with ``sessionctl.get_backend()`` (chosen once per process and shared);
    construct one yourself only for a private instance (tests, recorded data).
    """

    name: str = ""
    #: the backend shows messages itself (message_box), not on the session's terminals
    shows_messages: bool = False

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

    def overview(self) -> list[Session]:
        """Every session now, for listings that do not show processes: a backend may
        leave out process lists that are costly to find (procfs: sessions without an
        audit id); every other field is as :meth:`sessions` gives it."""
        return self.sessions()

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

    def inhibitors(self, session: Session) -> list[Inhibitor]:
        """Inhibitor locks held by the session's processes (who, why), where the system
        keeps them (logind); empty where it does not."""
        return []

    def warnings(self) -> list[str]:
        """Things the last look skipped or could not read, for the front end to show."""
        return []

    def caller(self, uid: int | None = None) -> Caller:
        """Who this process acts as (``uid`` overrides the POSIX uid, for tests)."""
        return posix_caller(uid)

    def counter_reader(self) -> CounterReader:
        """Where the users view reads CPU, memory and disk figures (Linux: /proc)."""
        from ..linux.usage import ProcCounters

        return ProcCounters()

    def sign_out(self, session: Session) -> NativeLogoff | None:
        """Sign the session out through the system's own means and report what is left;
        None: the backend has none (the shared Linux sequence in actions/ does it)."""
        return None

    def message_box(self, session: Session, title: str, text: str, *, timeout: int,
                    wait: bool) -> BoxReply | None:
        """Show a message through the system's own means (``shows_messages``); None: the
        backend has none (actions/message.py writes to the session's terminals)."""
        return None

    def disconnects_itself(self, session: Session) -> bool:
        """True when :meth:`disconnect` ends this session's connection by the system's own
        means and its work is kept by design (every Windows session, a VNC desktop); the
        shared Linux sequence is not needed then."""
        return False

    def disconnect(self, session: Session) -> DisconnectReport | None:
        """Disconnect the session (its work runs on), checked by reading the state back;
        None: the backend has no way of its own."""
        return None
