"""A stand-in for the Win32 DLL functions the windows backend calls, built from Microsoft's
documented structure layouts (sessionctl.windows.wtsapi), for tests on any platform.

Each function has the DLL's signature and fills its out-parameters the way the DLL does:
arrays of WTS_SESSION_INFOW / WTS_PROCESS_INFOW, WTSINFOW, WTS_CLIENT_ADDRESS, UTF-16
strings and binary SIDs in memory the caller must give back through WTSFreeMemory (every
allocation is tracked: ``leaks()`` lists what was not freed). Behaviour of the actions is
set per session (``logoff``/``disconnect``: "ok", "denied", "stub", "noop"; ``response``
for WTSSendMessageW). ``real`` (an Api from wtsapi.load()) lends any function not
overridden, so a test under Wine can mix constructed sessions with real processes.
"""

from __future__ import annotations

import ctypes
import threading
from ctypes import c_uint8
from dataclasses import dataclass, field, replace

from sessionctl.windows import wtsapi as w

TICKS_PER_SECOND = 10_000_000
EPOCH_AS_FILETIME = 116444736000000000  # 1970-01-01 in 100 ns units since 1601


def filetime(epoch: float) -> int:
    """Epoch seconds as a FILETIME."""
    return EPOCH_AS_FILETIME + round(epoch * TICKS_PER_SECOND)


def sid(*parts: int, authority: int = 5) -> bytes:
    """A binary SID: S-1-<authority>-<parts...>."""
    out = bytes([1, len(parts)]) + authority.to_bytes(6, "big")
    return out + b"".join(p.to_bytes(4, "little") for p in parts)


def user_sid(rid: int) -> bytes:
    return sid(21, 1111, 2222, 3333, rid)


SYSTEM_SID = sid(18)


@dataclass
class FakeSession:
    id: int
    station: str
    state: int
    user: str = ""
    domain: str = ""
    logon: float = 0.0  # epoch seconds; 0: none
    last_input: float = 0.0
    connect: float = 0.0
    disconnect_time: float = 0.0
    client: str = ""  # client name
    address: tuple[int, bytes] | None = None  # (family, 20 raw bytes)
    protocol: int = w.PROTOCOL_CONSOLE
    logoff: str = "ok"  # ok | denied | stub | gone
    disconnect: str = "ok"  # ok | denied | noop | stub
    response: int = w.IDOK  # WTSSendMessageW with bWait
    message: str = "ok"  # ok | denied | stub | gone


@dataclass
class FakeProcess:
    session_id: int
    pid: int
    name: str
    sid: bytes = b""


@dataclass
class FakeWorld:
    sessions: list[FakeSession]
    processes: list[FakeProcess]
    accounts: dict[bytes, tuple[str, str]] = field(default_factory=dict)  # SID → (user, dom)
    current_pid: int = 0
    console: int = w.NO_CONSOLE_SESSION
    caller: tuple[str, bool] = ("Administrator", True)
    now: float = 0.0  # epoch seconds for WTSINFOW.CurrentTime
    stub_enumerate: bool = False  # WTSEnumerateSessionsW: TRUE with 0 sessions (Wine)
    stub_classes: set[int] = field(default_factory=set)  # FALSE, last error 0 (Wine)
    denied_sessions: set[int] = field(default_factory=set)  # queries fail with error 5


class FakeApi:
    """Build ``api()`` for sessionctl.windows.wts.Wts from a FakeWorld."""

    def __init__(self, world: FakeWorld, real: w.Api | None = None) -> None:
        self.world = world
        self.real = real
        self.allocated: dict[int, object] = {}  # address → object kept alive
        self.handed: list[int] = []  # what an out-parameter received (to be freed)
        self.freed: list[int] = []
        self.calls: list[tuple] = []
        self._tls = threading.local()
        self._lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------------

    def _error(self, code: int) -> int:
        self._tls.error = code
        return 0

    def last_error(self) -> int:
        return getattr(self._tls, "error", 0)

    def set_last_error(self, value: int) -> int:
        old = self.last_error()
        self._tls.error = value
        return old

    def _keep(self, obj: object) -> int:
        addr = ctypes.addressof(obj)  # type: ignore[arg-type]
        with self._lock:
            self.allocated[addr] = obj
        return addr

    def _wide(self, text: str) -> int:
        return self._keep(ctypes.create_string_buffer(text.encode("utf-16-le") + b"\0\0"))

    def _sid(self, raw: bytes) -> int:
        return self._keep((c_uint8 * len(raw)).from_buffer_copy(raw)) if raw else 0

    def _session(self, session_id: int) -> FakeSession | None:
        return next((s for s in self.world.sessions if s.id == session_id), None)

    def leaks(self) -> list[int]:
        """Buffers handed out and never given back through WTSFreeMemory."""
        return [a for a in self.handed if a not in self.freed]

    def _hand_out(self, obj: object) -> int:
        addr = self._keep(obj)
        self.handed.append(addr)
        return addr

    # -- wtsapi32 --------------------------------------------------------------------------

    def WTSFreeMemory(self, p) -> None:
        addr = p.value if hasattr(p, "value") else p
        if self.real is not None and addr not in self.allocated:
            self.real.WTSFreeMemory(p)
            return
        assert addr in self.handed, f"WTSFreeMemory of memory never handed out: {addr}"
        assert addr not in self.freed, "double WTSFreeMemory"
        self.freed.append(addr)

    def WTSEnumerateSessionsW(self, h, reserved, version, pp, pcount):
        self.calls.append(("WTSEnumerateSessionsW",))
        listed = [] if self.world.stub_enumerate else self.world.sessions
        arr = (w.WTS_SESSION_INFOW * max(1, len(listed)))()
        for i, s in enumerate(listed):
            arr[i].SessionId = s.id
            arr[i].pWinStationName = self._wide(s.station)
            arr[i].State = s.state
        pp[0] = self._hand_out(arr)
        pcount[0] = len(listed)
        return 1

    def WTSEnumerateProcessesW(self, h, reserved, version, pp, pcount):
        if self.real is not None and not self.world.processes:
            return self.real.WTSEnumerateProcessesW(h, reserved, version, pp, pcount)
        arr = (w.WTS_PROCESS_INFOW * max(1, len(self.world.processes)))()
        for i, p in enumerate(self.world.processes):
            arr[i].SessionId = p.session_id
            arr[i].ProcessId = p.pid
            arr[i].pProcessName = self._wide(p.name)
            arr[i].pUserSid = self._sid(p.sid)
        pp[0] = self._hand_out(arr)
        pcount[0] = len(self.world.processes)
        return 1

    def _info_bytes(self, s: FakeSession, cls: int) -> bytes | None:
        if cls == w.WTSSessionInfo:
            info = w.WTSINFOW()
            info.State = s.state
            info.SessionId = s.id
            for name, text, n in (("WinStationName", s.station, w.WINSTATIONNAME_LENGTH),
                                  ("Domain", s.domain, w.DOMAIN_LENGTH),
                                  ("UserName", s.user, w.USERNAME_LENGTH + 1)):
                units = text.encode("utf-16-le")[: 2 * (n - 1)]
                ctypes.memmove(ctypes.addressof(info) + getattr(w.WTSINFOW, name).offset,
                               units, len(units))
            info.ConnectTime = filetime(s.connect) if s.connect else 0
            info.DisconnectTime = filetime(s.disconnect_time) if s.disconnect_time else 0
            info.LastInputTime = filetime(s.last_input) if s.last_input else 0
            info.LogonTime = filetime(s.logon) if s.logon else 0
            info.CurrentTime = filetime(self.world.now)
            return bytes(info)
        if cls == w.WTSClientAddress:
            addr = w.WTS_CLIENT_ADDRESS()
            if s.address is not None:
                addr.AddressFamily = s.address[0]
                ctypes.memmove(addr.Address, s.address[1], 20)
            return bytes(addr)
        if cls == w.WTSClientProtocolType:
            return s.protocol.to_bytes(2, "little")
        text = {w.WTSUserName: s.user, w.WTSDomainName: s.domain,
                w.WTSWinStationName: s.station, w.WTSClientName: s.client}.get(cls)
        if text is None:
            return None
        return text.encode("utf-16-le") + b"\0\0"

    def WTSQuerySessionInformationW(self, h, session_id, cls, pp, psize):
        self.calls.append(("WTSQuerySessionInformationW", session_id, cls))
        if cls in self.world.stub_classes:
            return self._error(0)
        if session_id in self.world.denied_sessions:
            return self._error(w.ERROR_ACCESS_DENIED)
        s = self._session(session_id)
        if s is None:
            if self.real is not None:
                return self.real.WTSQuerySessionInformationW(h, session_id, cls, pp, psize)
            return self._error(w.ERROR_CTX_WINSTATION_NOT_FOUND)
        raw = self._info_bytes(s, cls)
        if raw is None:
            return self._error(w.ERROR_INVALID_PARAMETER)
        pp[0] = self._hand_out(ctypes.create_string_buffer(raw, len(raw)))
        psize[0] = len(raw)
        return 1

    def WTSLogoffSession(self, h, session_id, wait):
        self.calls.append(("WTSLogoffSession", session_id, wait))
        s = self._session(session_id)
        if s is None:
            return self._error(w.ERROR_CTX_WINSTATION_NOT_FOUND)
        if s.logoff == "denied":
            return self._error(w.ERROR_ACCESS_DENIED)
        if s.logoff == "stub":
            return self._error(w.ERROR_CALL_NOT_IMPLEMENTED)
        if s.logoff == "ok":
            self.world.sessions.remove(s)
            self.world.processes = [p for p in self.world.processes if p.session_id != s.id]
        return 1  # "leftover": TRUE, but the processes stay (a false success to catch)

    def WTSDisconnectSession(self, h, session_id, wait):
        self.calls.append(("WTSDisconnectSession", session_id, wait))
        s = self._session(session_id)
        if s is None:
            return self._error(w.ERROR_CTX_WINSTATION_NOT_FOUND)
        if s.disconnect == "denied":
            return self._error(w.ERROR_ACCESS_DENIED)
        if s.disconnect == "stub":
            return self._error(w.ERROR_CALL_NOT_IMPLEMENTED)
        if s.disconnect == "ok":
            s.state = w.WTSDisconnected
        return 1  # "noop": TRUE and nothing happens (Wine 8.0)

    def WTSSendMessageW(self, h, session_id, title, title_len, text, text_len, style,
                        timeout, presponse, wait):
        self.calls.append(("WTSSendMessageW", session_id, title, title_len, text, text_len,
                           style, timeout, wait))
        assert title_len == len(title.encode("utf-16-le")), "TitleLength is in bytes"
        assert text_len == len(text.encode("utf-16-le")), "MessageLength is in bytes"
        s = self._session(session_id)
        if s is None or s.message == "gone":
            return self._error(w.ERROR_CTX_WINSTATION_NOT_FOUND)
        if s.message == "denied":
            return self._error(w.ERROR_ACCESS_DENIED)
        if s.message == "stub":
            return self._error(0)
        presponse[0] = s.response if wait else w.IDASYNC
        return 1

    # -- kernel32, advapi32, shell32 -------------------------------------------------------

    def ProcessIdToSessionId(self, pid, pout):
        if self.real is not None and not self.world.processes:
            return self.real.ProcessIdToSessionId(pid, pout)
        p = next((p for p in self.world.processes if p.pid == pid), None)
        if p is None:
            return self._error(w.ERROR_INVALID_PARAMETER)
        pout[0] = p.session_id
        return 1

    def WTSGetActiveConsoleSessionId(self):
        return self.world.console

    def GetCurrentProcessId(self):
        if self.real is not None and not self.world.current_pid:
            return self.real.GetCurrentProcessId()
        return self.world.current_pid

    def LookupAccountSidW(self, system, sid_addr, name, pname, domain, pdomain, puse):
        head = ctypes.string_at(sid_addr, 8)
        raw = ctypes.string_at(sid_addr, 8 + 4 * head[1])
        if raw not in self.world.accounts:
            if self.real is not None:
                return self.real.LookupAccountSidW(system, sid_addr, name, pname, domain,
                                                   pdomain, puse)
            return self._error(w.ERROR_NONE_MAPPED)
        user, dom = self.world.accounts[raw]
        name.value, domain.value = user, dom
        return 1

    def LookupAccountNameW(self, system, account, sid_addr, psid, domain, pdomain, puse):
        dom_part, _, user = account.rpartition("\\")
        for raw, (u, d) in self.world.accounts.items():
            if u.casefold() == user.casefold() and (not dom_part or d.casefold() ==
                                                   dom_part.casefold()):
                ctypes.memmove(sid_addr, raw, len(raw))
                psid[0] = len(raw)
                domain.value = d
                return 1
        if self.real is not None:
            return self.real.LookupAccountNameW(system, account, sid_addr, psid, domain,
                                                pdomain, puse)
        return self._error(w.ERROR_NONE_MAPPED)

    def GetUserNameW(self, buf, psize):
        buf.value = self.world.caller[0]
        psize[0] = len(self.world.caller[0]) + 1
        return 1

    def IsUserAnAdmin(self):
        return int(self.world.caller[1])

    def api(self) -> w.Api:
        names = [f.name for f in w.Api.__dataclass_fields__.values()
                 if f.name not in ("last_error", "set_last_error", "origin")]
        return w.Api(**{n: getattr(self, n) for n in names}, last_error=self.last_error,
                     set_last_error=self.set_last_error, origin="constructed")


def copy_world(world: FakeWorld) -> FakeWorld:
    """A deep enough copy to change one session without touching the original."""
    return replace(world, sessions=[replace(s) for s in world.sessions],
                   processes=[replace(p) for p in world.processes])


__all__ = ["FakeApi", "FakeProcess", "FakeSession", "FakeWorld", "copy_world", "filetime",
           "sid", "user_sid"]
