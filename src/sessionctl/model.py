"""Pure data: what a session is, independent of the backend that found it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class State(StrEnum):
    """Session states, spelled as Windows' WTS_CONNECTSTATE_CLASS short names (qwinsta).

    Linux backends use ACTIVE (a live connection: sshd, getty, a display manager, a
    viewer attached) and DISC (every connection gone, the work runs on: a detached
    tmux/screen, a nohup job, a VNC desktop with no viewer). The others are Windows'.
    """

    ACTIVE = "Active"
    CONNECTED = "Conn"
    CONNECT_QUERY = "ConnQ"
    SHADOW = "Shadow"
    DISC = "Disc"
    IDLE = "Idle"
    LISTEN = "Listen"
    RESET = "Reset"
    DOWN = "Down"
    INIT = "Init"


@dataclass(frozen=True, slots=True)
class ProcessRef:
    """One process of a session, identified well enough to signal it safely.

    ``start_ticks`` is the start time in clock ticks since boot (field 22 of
    /proc/PID/stat); together with ``pid`` it names one process for its whole life,
    so a recycled PID is never mistaken for it.
    """

    pid: int
    ppid: int
    uid: int
    start_ticks: int
    comm: str = ""
    state: str = ""


@dataclass(frozen=True, slots=True)
class MuxClient:
    """A terminal attached to a multiplexer (a tmux client, an attached screen)."""

    pid: int | None  # None: the client process could not be named (listed without processes)
    tty: str = ""
    user: str = ""
    session_id: str | None = None  # the session the client process belongs to
    activity: float | None = None  # epoch seconds of the client's last input, if known

    def to_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "tty": self.tty,
            "user": self.user,
            "session": self.session_id,
            "activity": self.activity,
        }


@dataclass(frozen=True, slots=True)
class Multiplexer:
    """A tmux or screen server that belongs to a session (never a login of its own)."""

    kind: str  # "tmux" | "screen"
    pid: int  # the server process
    name: str = ""  # its socket path (tmux) or session name (screen)
    attached: bool = False
    clients: tuple[MuxClient, ...] = ()
    terminals: tuple[str, ...] = ()  # the panes'/windows' ttys, e.g. ("pts/21",)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "pid": self.pid,
            "name": self.name,
            "attached": self.attached,
            "clients": [c.to_dict() for c in self.clients],
            "terminals": list(self.terminals),
        }


@dataclass(frozen=True, slots=True)
class Session:
    """A login session and every process that belongs to it."""

    id: str
    name: str
    user: str
    uid: int
    state: State
    type: str
    device: str = ""
    remote_host: str = ""
    service: str = ""
    login_time: datetime | None = None
    idle_seconds: float | None = None
    leader_pid: int | None = None
    processes: tuple[ProcessRef, ...] = ()
    current: bool = False
    console: bool = False
    ttys: tuple[str, ...] = ()
    backend: str = ""
    logoff_at: datetime | None = None  # a warned logoff is pending (sessionctl logoff --notice)
    display: str = ""  # X display (":1") of a graphical session
    protocol: str = ""  # how the user reaches it: ssh, vnc, rdp, local, ...
    remote: bool | None = None  # None: unknown
    client_address: str = ""  # the connected client (viewer, ssh peer) where known
    idle_source: str = ""  # what answered idle_seconds: tty, x11, logind, mutter, clients
    multiplexers: tuple[Multiplexer, ...] = ()
    attached_from: tuple[str, ...] = ()  # ids of sessions whose clients keep this one Active
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def pids(self) -> list[int]:
        """PIDs of the session's processes, sorted."""
        return sorted(p.pid for p in self.processes)

    def matches(self, target: str) -> bool:
        """True if ``target`` names this session as Windows filters do: user, name or id."""
        return target in (self.id, self.user) or (bool(self.name) and target == self.name)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of a session (stable keys; see docs/architecture.md)."""
        return {
            "id": self.id,
            "name": self.name,
            "user": self.user,
            "uid": self.uid,
            "state": self.state.value,
            "type": self.type,
            "device": self.device,
            "remote_host": self.remote_host,
            "service": self.service,
            "login_time": self.login_time.isoformat() if self.login_time else None,
            "idle_seconds": None if self.idle_seconds is None else round(self.idle_seconds, 1),
            "leader_pid": self.leader_pid,
            "pids": self.pids,
            "current": self.current,
            "console": self.console,
            "ttys": list(self.ttys),
            "backend": self.backend,
            "logoff_at": self.logoff_at.isoformat(timespec="seconds") if self.logoff_at else None,
            "display": self.display,
            "protocol": self.protocol,
            "remote": self.remote,
            "client_address": self.client_address,
            "idle_source": self.idle_source or None,
            "multiplexers": [m.to_dict() for m in self.multiplexers],
            "attached_from": list(self.attached_from),
            **self.extra,
        }


@dataclass(frozen=True, slots=True)
class UserSummary:
    """All sessions of one user."""

    user: str
    uid: int
    sessions: tuple[Session, ...]

    @property
    def state(self) -> State:
        """Active if any session is active, else Disc."""
        if any(s.state is State.ACTIVE for s in self.sessions):
            return State.ACTIVE
        return State.DISC

    @property
    def pids(self) -> list[int]:
        """PIDs of all the user's sessions."""
        return sorted(pid for s in self.sessions for pid in s.pids)
