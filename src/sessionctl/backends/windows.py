"""Windows: sessions from the WTS API (wtsapi32) through ctypes, processes from
WTSEnumerateProcessesW, per-process details from psutil.

Everything goes through a :class:`~sessionctl.windows.wts.Wts` built on an injectable
:class:`~sessionctl.windows.wtsapi.Api` (the real DLLs here; tests pass one built from the
documented structures). States are qwinsta's words. A call that the system only stubs
(Wine implements some of these functions as stubs) raises NotSupported with the
function's name, never a success it did not have.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import AccessDenied, BackendUnavailable, NoSuchSession, NotSupported, SourceError
from ..host import ADMIN_WORD, Caller
from ..model import ProcessRef, Session, State
from ..windows import processes as procinfo
from ..windows import wtsapi as w
from ..windows.wts import SessionInfo, Win32Error, Wts, WtsProcess, sid_rid
from .base import Backend, BoxReply, DisconnectReport, NativeLogoff

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from .base import CounterReader

T = TypeVar("T")

#: WTS_CONNECTSTATE_CLASS → qwinsta's word
STATES = {
    w.WTSActive: State.ACTIVE,
    w.WTSConnected: State.CONNECTED,
    w.WTSConnectQuery: State.CONNECT_QUERY,
    w.WTSShadow: State.SHADOW,
    w.WTSDisconnected: State.DISC,
    w.WTSIdle: State.IDLE,
    w.WTSListen: State.LISTEN,
    w.WTSReset: State.RESET,
    w.WTSDown: State.DOWN,
    w.WTSInit: State.INIT,
}

#: WTSSendMessageW responses → what they mean for msg
RESPONSES = {
    w.IDOK: "ok",
    w.IDCANCEL: "cancel",
    w.IDABORT: "abort",
    w.IDRETRY: "retry",
    w.IDIGNORE: "ignore",
    w.IDYES: "yes",
    w.IDNO: "no",
    w.IDTRYAGAIN: "try again",
    w.IDCONTINUE: "continue",
    w.IDTIMEOUT: "timeout",
    w.IDASYNC: "async",
}

_GONE = {w.ERROR_CTX_WINSTATION_NOT_FOUND, w.ERROR_FILE_NOT_FOUND, w.ERROR_INVALID_PARAMETER}
_DENIED = {w.ERROR_ACCESS_DENIED, w.ERROR_CTX_WINSTATION_ACCESS_DENIED}
_STUB = {0, w.ERROR_CALL_NOT_IMPLEMENTED, w.ERROR_NOT_SUPPORTED}


def not_supported(exc: Win32Error) -> NotSupported:
    """The error for a function this system only stubs (Wine) or lacks."""
    return NotSupported(f"not supported here: {exc.strerror}")


def _session_type(station: str, protocol: int, console: bool) -> tuple[str, str, bool | None]:
    """(type, protocol, remote) as qwinsta's TYPE column and the model spell them."""
    if console or station.casefold() == "console":
        return "console", "local", False
    if protocol == w.PROTOCOL_RDP or station.casefold().startswith("rdp-tcp"):
        return "rdpwd", "rdp", True
    if protocol == w.PROTOCOL_ICA:
        return "ica", "ica", True
    return "", "", None


class WindowsBackend(Backend):
    """Sessions on this Windows machine, through the WTS API."""

    name = "windows"
    shows_messages = True

    def __init__(self, wts: Wts | None = None) -> None:
        self.wts = wts if wts is not None else Wts(w.load())
        self._warnings: list[str] = []

    @classmethod
    def open(cls, required: bool = False) -> WindowsBackend | None:
        """The backend on the real DLLs; None (or BackendUnavailable if ``required``) when
        they cannot be loaded."""
        try:
            return cls()
        except BackendUnavailable:
            if required:
                raise
            return None

    # -- errors ---------------------------------------------------------------------------

    def _mapped(self, exc: Win32Error, session: Session | None = None,
                doing: str = "") -> Exception:
        """A Win32 failure as the error the Linux backends raise for the same situation."""
        if exc.code in _DENIED and session is not None:
            return AccessDenied(
                f"Access is denied: session {session.id} belongs to {session.user or 'nobody'}; "
                f"only {ADMIN_WORD} may {doing or 'act on'} other users' sessions"
            )
        if exc.code in _DENIED:
            return AccessDenied(f"Access is denied: {exc.strerror}")
        if exc.code in _GONE and session is not None:
            return NoSuchSession(f"No session exists for {session.id}")
        if exc.code in _STUB:
            return not_supported(exc)
        return SourceError(str(exc.strerror))

    # -- listing --------------------------------------------------------------------------

    def _listed(self) -> list[tuple[int, str, int]]:
        try:
            found = self.wts.sessions()
        except Win32Error as exc:
            raise self._mapped(exc) from None
        if not found:
            # Real Windows always has session 0 (services): an empty list is a stub's answer.
            raise NotSupported(
                "not supported here: WTSEnumerateSessionsW listed no sessions, not even "
                "session 0 (services); this system's Terminal Services API is a stub"
            )
        return [(s.id, s.station, s.state) for s in found]

    def _info(self, session_id: int) -> SessionInfo | None:
        """WTSSessionInfo, None if the session vanished since it was listed."""
        try:
            return self.wts.session_info(session_id)
        except Win32Error as exc:
            if exc.code in _GONE:
                return None
            raise self._mapped(exc) from None

    def _listed_info(self, session_id: int, station: str, state: int) -> SessionInfo | None:
        """WTSSessionInfo for the listing; a session whose details we may not read is
        shown with what the enumeration said, and a warning."""
        try:
            return self._info(session_id)
        except AccessDenied:
            self._warnings.append(f"session {session_id}: details not readable "
                                  "(Access is denied)")
            return SessionInfo(session_id, state, station, "", "", None, None, None, None,
                               None)

    def _optional(self, fn: Callable[[int], T], session_id: int, default: T) -> T:
        """A detail that may be missing (no network client, a stubbed class)."""
        try:
            return fn(session_id)
        except Win32Error:
            return default

    def _processes(self) -> list[WtsProcess]:
        try:
            return self.wts.processes()
        except Win32Error as exc:
            raise self._mapped(exc) from None

    def _refs(self, procs: list[WtsProcess]) -> list[ProcessRef]:
        known = procinfo.details(p.pid for p in procs)
        refs = []
        for p in procs:
            if p.pid not in known:
                continue  # exited since WTSEnumerateProcessesW listed it
            ppid, start = known[p.pid]
            rid = sid_rid(p.sid)
            refs.append(ProcessRef(pid=p.pid, ppid=ppid, uid=-1 if rid is None else rid,
                                   start_ticks=start, comm=p.name, state=procinfo.RUNNING))
        return refs

    def sessions(self) -> list[Session]:
        self._warnings = []
        listed = self._listed()
        procs = self._processes()
        refs = {r.pid: r for r in self._refs(procs)}
        by_session: dict[int, list[ProcessRef]] = {}
        for p in procs:
            if p.pid in refs:
                by_session.setdefault(p.session_id, []).append(refs[p.pid])
        me = self.wts.current_session()
        console = self.wts.console_session()
        out = []
        for sid, station, state in listed:
            info = self._listed_info(sid, station, state)
            if info is None:
                continue  # logged off between the listing and the question
            out.append(self._session(sid, station or info.station, state, info, me, console,
                                     tuple(by_session.get(sid, ()))))
        return out

    def _session(self, sid: int, station: str, listed_state: int, info: SessionInfo,
                 me: int | None, console_id: int | None,
                 procs: tuple[ProcessRef, ...]) -> Session:
        is_console = sid == console_id or station.casefold() == "console"
        protocol = self._optional(self.wts.protocol, sid, w.PROTOCOL_CONSOLE)
        kind, proto, remote = _session_type(station, protocol, is_console)
        address = self._optional(self.wts.client_address, sid, "") if remote else ""
        client = self._optional(lambda i: self.wts.query_string(i, w.WTSClientName), sid, "")
        rid = self.wts.account_rid(info.user, info.domain) if info.user else None
        idle = info.idle_seconds if info.user else None
        logon = info.logon_time.astimezone() if info.logon_time else None
        return Session(
            id=str(sid),
            name=station,
            user=info.user,
            uid=-1 if rid is None else rid,
            state=STATES.get(info.state, STATES.get(listed_state, State.DOWN)),
            type=kind,
            remote_host=client if remote else "",
            service="",
            login_time=logon,
            idle_seconds=idle,
            processes=procs,
            current=sid == me,
            console=is_console,
            backend=self.name,
            protocol=proto,
            remote=remote,
            client_address=address,
            idle_source="wts" if idle is not None else "",
            extra={"domain": info.domain} if info.domain else {},
        )

    def member_pids(self, session: Session, cache: dict[int, bool] | None = None) -> set[int]:
        sid = _number(session)
        return {p.pid for p in self._processes() if p.session_id == sid}

    def members(self, session: Session) -> list[ProcessRef]:
        sid = _number(session)
        return self._refs([p for p in self._processes() if p.session_id == sid])

    def is_member(self, session: Session, pid: int) -> bool | None:
        found = self.wts.session_of(pid)
        return None if found is None else found == _number(session)

    def session_of(self, pid: int, sessions: list[Session]) -> Session | None:
        found = self.wts.session_of(pid)
        return next((s for s in sessions if found is not None and s.id == str(found)), None)

    def warnings(self) -> list[str]:
        return list(self._warnings)

    # -- who is asking ----------------------------------------------------------------------

    def caller(self, uid: int | None = None) -> Caller:
        name, admin = self.wts.caller()
        rid = self.wts.account_rid(name)
        return Caller(uid=-1 if rid is None else rid, name=name, admin=admin, by_name=True)

    def counter_reader(self) -> CounterReader:
        return procinfo.PsutilCounters()

    # -- actions ----------------------------------------------------------------------------

    def state_of(self, session: Session) -> State | None:
        """The session's state read now; None if it is gone."""
        info = self._info(_number(session))
        return None if info is None else STATES.get(info.state, State.DOWN)

    def sign_out(self, session: Session) -> NativeLogoff:
        """WTSLogoffSession (waiting for it), then the session read back: gone or empty."""
        sid = _number(session)
        before = self.member_pids(session)
        t0 = time.monotonic()
        try:
            self.wts.logoff(sid, wait=True)
        except Win32Error as exc:
            raise self._mapped(exc, session, "log off") from None
        remaining = sorted(self.member_pids(session))
        state = self.state_of(session) if remaining else None
        detail = "session gone" if state is None else f"session still listed as {state}"
        return NativeLogoff("WTSLogoffSession", len(before), remaining,
                            time.monotonic() - t0, detail)

    def disconnects_itself(self, session: Session) -> bool:
        return True  # WTSDisconnectSession: the session and its work stay

    def disconnect(self, session: Session) -> DisconnectReport:
        """WTSDisconnectSession, then the state read back: only Disc (or gone) counts."""
        try:
            self.wts.disconnect(_number(session), wait=True)
        except Win32Error as exc:
            raise self._mapped(exc, session, "disconnect") from None
        try:
            state = self.state_of(session)
        except NotSupported as exc:
            return DisconnectReport(False, None, "WTSDisconnectSession returned success but "
                                    f"the state cannot be read back ({exc}): unverified")
        if state is None or state is State.DISC:
            return DisconnectReport(True, state, "disconnected" if state else "session gone")
        return DisconnectReport(False, state, "WTSDisconnectSession returned success but the "
                                f"session is still {state}")

    def message_box(self, session: Session, title: str, text: str, *, timeout: int,
                    wait: bool) -> BoxReply:
        """WTSSendMessageW with MB_OK; its response says whether the user answered."""
        try:
            code = self.wts.send_message(_number(session), title, text, timeout=timeout,
                                         wait=wait)
        except Win32Error as exc:
            if exc.code in _DENIED:
                return BoxReply("denied", f"Access is denied ({exc.strerror})")
            if exc.code in _GONE:
                return BoxReply("gone", "the session no longer exists")
            if exc.code in _STUB:
                return BoxReply("unsupported", str(not_supported(exc)))
            return BoxReply("error", str(exc.strerror))
        meaning = RESPONSES.get(code, f"response {code}")
        answered = wait and code not in (w.IDTIMEOUT, w.IDASYNC)
        return BoxReply("delivered", meaning, acknowledged=answered, response=code)


def _number(session: Session) -> int:
    try:
        return int(session.id)
    except ValueError:
        raise NoSuchSession(f"No session exists for {session.id}") from None

