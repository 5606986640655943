"""The logind backend: sessions from org.freedesktop.login1 over D-Bus (jeepney).

jeepney is pure Python with no C extension, so it installs anywhere the tool does,
and its blocking API with per-call timeouts is all a command-line tool needs. Processes
come from the session scope's cgroup.procs; idle time from the tty's atime (logind's
IdleHint is "no" for text sessions unless an idle policy is configured).
"""

from __future__ import annotations

import os
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, NoSuchSession
from ..linux import cgroup, proc, tty, utmp
from ..linux.session_manager import Inhibitor
from ..model import Session, State
from . import desktops
from .base import Backend, DisconnectReport
from .multiplexers import (
    Draft,
    Servers,
    assemble,
    below,
    is_mux_only,
    mux_only_session,
    named_servers,
)
from .procfs import close_login_records, protocol_of, session_type

if TYPE_CHECKING:
    from jeepney.io.blocking import DBusConnection

BUS = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
SYSTEMD = "org.freedesktop.systemd1"
TIMEOUT = 2.0
STATES = {"active": State.ACTIVE, "online": State.ACTIVE, "closing": State.DISC}
CONNECTED = ("active", "online")  # closing: the login is gone, processes are left


SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"


def bus_present() -> bool:
    """A system bus might answer (checked before importing any D-Bus code)."""
    return bool(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")) or os.path.exists(SYSTEM_BUS_SOCKET)


class LogindBackend(Backend):
    """Sessions as systemd-logind knows them.

    One system-bus connection, opened on first use and kept for the backend's life;
    ``close()`` closes it (the next call opens a new one). Calls from several threads
    are serialised on it.
    """

    name = "logind"

    def __init__(self, connection: DBusConnection | None = None) -> None:
        self.conn = connection
        self._lock = threading.Lock()
        self._scopes: dict[str, Path | None] = {}

    @classmethod
    def open(cls, required: bool = False) -> LogindBackend | None:
        """A backend if logind answers on the system bus; None (or raise, if required)."""
        if not bus_present():
            if required:
                raise BackendUnavailable("logind backend: no system D-Bus on this machine")
            return None
        backend = cls()
        try:
            backend._call(MANAGER_PATH, "org.freedesktop.login1.Manager", "ListSessions")
        except (BackendUnavailable, NoSuchSession) as exc:
            backend.close()
            if required:
                raise BackendUnavailable(f"logind backend: {exc}") from None
            return None
        return backend

    def close(self) -> None:
        with self._lock:
            conn, self.conn = self.conn, None
            self._scopes.clear()
        if conn is not None:
            conn.close()

    # -- D-Bus -------------------------------------------------------------------------

    def _connection(self) -> DBusConnection:
        if self.conn is None:
            try:
                from jeepney.io.blocking import open_dbus_connection
            except ImportError as exc:
                raise BackendUnavailable(f"jeepney is not installed: {exc}") from None
            try:
                self.conn = open_dbus_connection("SYSTEM", auth_timeout=TIMEOUT)
            except (OSError, ValueError) as exc:  # ValueError: a malformed bus address
                raise BackendUnavailable(f"system bus: {exc}") from None
        return self.conn

    def _call(
        self,
        path: str,
        interface: str,
        method: str,
        signature: str | None = None,
        body: tuple[object, ...] = (),
        bus_name: str = BUS,
    ) -> tuple[Any, ...]:
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg

        addr = DBusAddress(path, bus_name=bus_name, interface=interface)
        msg = new_method_call(addr, method, signature, body)
        try:
            with self._lock:
                reply = self._connection().send_and_get_reply(msg, timeout=TIMEOUT)
            result: tuple[Any, ...] = unwrap_msg(reply)
            return result
        except TimeoutError:
            raise BackendUnavailable(
                f"logind did not answer {method} within {TIMEOUT:g} s"
            ) from None
        except DBusErrorResponse as exc:
            if exc.name in (
                "org.freedesktop.login1.NoSuchSession",
                "org.freedesktop.DBus.Error.UnknownObject",
            ):
                raise NoSuchSession(f"No session exists for {body[0] if body else '?'}") from None
            raise BackendUnavailable(f"logind refused {method}: {exc.name}: {exc.data}") from None
        except OSError as exc:
            self.close()  # a broken connection: the next call opens a new one
            raise BackendUnavailable(f"system bus: {exc}") from None

    def _props(self, path: str, interface: str, bus_name: str = BUS) -> dict[str, object]:
        (raw,) = self._call(
            path, "org.freedesktop.DBus.Properties", "GetAll", "s", (interface,), bus_name
        )
        return {k: v for k, (_sig, v) in raw.items()}

    # -- reading -----------------------------------------------------------------------

    def _scope_dir(self, scope: str) -> Path | None:
        if scope in self._scopes:
            return self._scopes[scope]
        root = cgroup.cgroup2_root()
        found: Path | None = None
        if root is not None and scope:
            try:
                (unit,) = self._call(
                    "/org/freedesktop/systemd1",
                    "org.freedesktop.systemd1.Manager",
                    "GetUnit",
                    "s",
                    (scope,),
                    SYSTEMD,
                )
                group = self._props(unit, "org.freedesktop.systemd1.Scope", SYSTEMD).get(
                    "ControlGroup", ""
                )
                if group:
                    found = root / str(group).lstrip("/")
            except (BackendUnavailable, NoSuchSession):
                found = None
        self._scopes[scope] = found
        return found

    def sessions(self) -> list[Session]:
        """logind's sessions; a tmux/screen server in a session's scope is one of its
        multiplexers, and a client attached to it makes a closing session Active."""
        (listed,) = self._call(MANAGER_PATH, "org.freedesktop.login1.Manager", "ListSessions")
        drafts = []
        servers = Servers()
        for sid, _uid, _user, _seat, path in listed:
            try:
                s = self._session(sid, path)
            except NoSuchSession:
                continue  # ended between the list and the look
            drafts.append(Draft(s, s.extra.get("logind_state") in CONNECTED,
                                servers.among(s.processes)))
        drafts.extend(self._loose(servers, {r.pid for d in drafts for r in d.session.processes}))
        servers.settle()
        for d in drafts:
            d.views = [servers.views[v.pid] for v in d.views]
        out = assemble(drafts)
        out.sort(key=lambda s: (not s.id.isdigit(), int(s.id) if s.id.isdigit() else 0, s.id))
        return desktops.enrich(out)

    def _loose(self, servers: Servers, known: set[int]) -> list[Draft]:
        """tmux/screen servers outside every logind session (root's tmux started from a
        service or a shell outside any login): a session of their own, ``p<server pid>``,
        as on procfs. Found by their utmp pane records and screen's sockets; their
        processes are the server and what runs below it in its cgroup."""
        try:
            entries, _ = utmp.user_processes()
        except OSError:
            entries = []
        btime = proc.boot_time()
        me = os.getpid()
        out = []
        for pid, kind in named_servers(entries, btime).items():
            view = None if pid in known else servers.read(pid, kind)
            if view is None:
                continue
            members = self._below_server(pid, known)
            refs = proc.live_refs(members)
            out.append(Draft(mux_only_session(view, refs, btime, self.name, me in members),
                             False, [view]))
        return out

    @staticmethod
    def _below_server(pid: int, outside: set[int]) -> set[int]:
        """A server outside every session and what runs below it (not in ``outside``)."""
        directory = cgroup.of_pid(pid)
        pids = cgroup.procs(directory) if directory and ".." not in directory.parts else set()
        if pid not in pids:  # its cgroup is not readable here: look at every process
            pids = set(proc.pids())
        stats = [st for st in (proc.stat(p) for p in pids - outside) if st is not None]
        return below([pid], stats) if pid in {st.pid for st in stats} else set()

    def _session(self, sid: str, path: str) -> Session:
        p = self._props(path, "org.freedesktop.login1.Session")
        scope = str(p.get("Scope", ""))
        directory = self._scope_dir(scope)
        refs = proc.live_refs(cgroup.procs(directory)) if directory else []
        line = str(p.get("TTY", "")) or str(p.get("Display", ""))
        service = str(p.get("Service", ""))
        ltype = str(p.get("Type", "unspecified"))
        kind = session_type(service, line) if ltype in ("tty", "unspecified") else ltype
        user = p.get("User")
        uid = int(user[0]) if isinstance(user, tuple) and user else -1
        idle: float | None = tty.idle_seconds(line) if line and not line.startswith(":") else None
        idle_source = "tty" if idle is not None else ""
        if p.get("IdleHint") and p.get("IdleSinceHint"):
            idle = max(0.0, datetime.now().timestamp() - _int(p["IdleSinceHint"]) / 1e6)
            idle_source = "logind"
        remote_host = str(p.get("RemoteHost", ""))
        stamp = _int(p.get("Timestamp"))
        me = os.getpid()
        return Session(
            id=sid,
            name=line,
            user=str(p.get("Name", "")),
            uid=uid,
            state=STATES.get(str(p.get("State", "")), State.ACTIVE),
            type=kind,
            device=tty.device_path(line),
            remote_host=remote_host,
            service=service,
            login_time=datetime.fromtimestamp(stamp / 1e6).astimezone() if stamp else None,
            idle_seconds=idle,
            idle_source=idle_source,
            display=str(p.get("Display", "")),
            remote=bool(p.get("Remote")),
            client_address=remote_host if service == "sshd" else "",
            leader_pid=_int(p.get("Leader")) or None,
            processes=tuple(sorted(refs, key=lambda r: r.pid)),
            current=any(r.pid == me for r in refs),
            console=bool(p.get("VTNr")) or tty.is_console(line),
            ttys=(line,) if line else (),
            backend=self.name,
            protocol=protocol_of(service, line),
            extra={
                "class": str(p.get("Class", "")),
                "scope": scope,
                "logind_state": str(p.get("State", "")),
            },
        )

    # -- acting ------------------------------------------------------------------------

    def member_pids(self, session: Session, cache: dict[int, bool] | None = None) -> set[int]:
        if is_mux_only(session):
            return self._below_server(session.leader_pid or 0, set())
        directory = self.cgroup_dir(session)
        return cgroup.procs(directory) if directory else set()

    def is_member(self, session: Session, pid: int) -> bool | None:
        if is_mux_only(session):
            return None  # by process tree, as procfs's p<pid> sessions
        directory = self.cgroup_dir(session)
        where = cgroup.of_pid(pid)
        if directory is None or where is None:
            return False
        return where == directory or directory in where.parents

    def cgroup_dir(self, session: Session) -> Path | None:
        return self._scope_dir(str(session.extra.get("scope", "")))

    def hangup(self, session: Session) -> bool:
        try:
            for sig in (signal.SIGHUP, signal.SIGCONT):
                self._call(
                    MANAGER_PATH,
                    "org.freedesktop.login1.Manager",
                    "KillSession",
                    "ssi",
                    (session.id, "all", int(sig)),
                )
        except (BackendUnavailable, NoSuchSession):
            return False  # e.g. refused to a non-root caller, or gone: we signal ourselves
        return True

    def terminate(self, session: Session) -> bool:
        try:
            self._call(
                MANAGER_PATH,
                "org.freedesktop.login1.Manager",
                "TerminateSession",
                "s",
                (session.id,),
            )
        except (BackendUnavailable, NoSuchSession):
            return False
        return True

    def disconnects_itself(self, session: Session) -> bool:
        return desktops.disconnects_itself(session)

    def disconnect(self, session: Session) -> DisconnectReport | None:
        return desktops.disconnect(session)  # VNC desktops; None for the rest

    def close_login(self, session: Session) -> bool:
        return close_login_records(session)

    def inhibitors(self, session: Session) -> list[Inhibitor]:
        try:
            (rows,) = self._call(MANAGER_PATH, "org.freedesktop.login1.Manager", "ListInhibitors")
        except (BackendUnavailable, NoSuchSession):
            return []
        return [
            Inhibitor("logind", str(who), str(why), str(what), str(mode), int(pid), int(uid))
            for what, who, why, mode, uid, pid in rows
            if self.is_member(session, int(pid))
        ]


def _int(value: object) -> int:
    """A D-Bus integer property (0 if absent or not a number)."""
    return value if isinstance(value, int) else 0
