"""The WTS API as Python values: sessions, session details, processes, and the actions.

:class:`Wts` wraps an :class:`~sessionctl.windows.wtsapi.Api` (the real DLLs, or a stand-in
built from the documented structures in tests). It reads what the functions return
(arrays, UTF-16 strings, SIDs, FILETIMEs) and raises :class:`Win32Error` with the
function name and the GetLastError() code when a call fails. No policy here: the backend
decides what an error means for the user.
"""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Callable
from ctypes import POINTER, c_uint8, c_uint16, c_void_p, cast, pointer, sizeof
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from . import wtsapi as w
from .wtsapi import DWORD, WTS_CLIENT_ADDRESS, WTS_PROCESS_INFOW, WTS_SESSION_INFOW, WTSINFOW

T = TypeVar("T")
MAX_STRING = 32768  # UTF-16 units read at most from one NUL-terminated string
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)

#: Messages for the codes we meet (FormatMessageW is not needed for these).
ERROR_TEXT = {
    w.ERROR_FILE_NOT_FOUND: "The system cannot find the file specified.",
    w.ERROR_ACCESS_DENIED: "Access is denied.",
    w.ERROR_NOT_SUPPORTED: "The request is not supported.",
    w.ERROR_INVALID_PARAMETER: "The parameter is incorrect.",
    w.ERROR_CALL_NOT_IMPLEMENTED: "This function is not supported on this system.",
    w.ERROR_CTX_WINSTATION_NOT_FOUND: "The specified session cannot be found.",
    w.ERROR_CTX_NOT_CONSOLE: "The requested operation can be performed only on the system "
    "console.",
    w.ERROR_CTX_WINSTATION_ACCESS_DENIED: "The requested session access is denied.",
}


class Win32Error(OSError):
    """A WTS/Win32 call failed; ``code`` is GetLastError() (0: the call failed without one)."""

    def __init__(self, function: str, code: int, detail: str = "") -> None:
        text = detail or ERROR_TEXT.get(code, "") or ("no error code" if code == 0 else "")
        super().__init__(code, f"{function} failed (error {code}{': ' + text if text else ''})")
        self.function = function
        self.code = code


@dataclass(frozen=True, slots=True)
class WtsSession:
    """One entry of WTSEnumerateSessionsW."""

    id: int
    station: str
    state: int


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """WTSINFOW: state, names and FILETIME-based times of one session (None: not set)."""

    id: int
    state: int
    station: str
    user: str
    domain: str
    connect_time: datetime | None
    disconnect_time: datetime | None
    last_input_time: datetime | None
    logon_time: datetime | None
    current_time: datetime | None

    @property
    def idle_seconds(self) -> float | None:
        """Seconds since the last input (CurrentTime - LastInputTime), None if unknown."""
        if self.last_input_time is None or self.current_time is None:
            return None
        return max(0.0, (self.current_time - self.last_input_time).total_seconds())


@dataclass(frozen=True, slots=True)
class WtsProcess:
    """One entry of WTSEnumerateProcessesW; ``sid`` is the binary SID (b"" if NULL)."""

    session_id: int
    pid: int
    name: str
    sid: bytes


def read_utf16(address: int | None, limit: int = MAX_STRING) -> str:
    """The NUL-terminated UTF-16LE string at ``address`` ("" for NULL)."""
    if not address:
        return ""
    units = cast(c_void_p(address), POINTER(c_uint16))
    n = 0
    while n < limit and units[n]:
        n += 1
    raw = ctypes.string_at(address, 2 * n)
    return raw.decode("utf-16-le", errors="replace")


def utf16_field(units: ctypes.Array) -> str:
    """A fixed WCHAR[] member up to its first NUL."""
    out = []
    for u in units:
        if not u:
            break
        out.append(u)
    return b"".join(x.to_bytes(2, "little") for x in out).decode("utf-16-le", errors="replace")


def filetime(value: int) -> datetime | None:
    """A FILETIME (100 ns units since 1601-01-01 UTC) as an aware datetime; None for 0."""
    if value <= 0:
        return None
    return _FILETIME_EPOCH + timedelta(microseconds=value // 10)


def sid_bytes(address: int | None) -> bytes:
    """The binary SID at ``address`` (Revision, SubAuthorityCount, 6-byte authority, DWORDs)."""
    if not address:
        return b""
    head = ctypes.string_at(address, 8)
    count = head[1]
    if head[0] != 1 or count > 15:
        return b""
    return ctypes.string_at(address, 8 + 4 * count)


def sid_string(sid: bytes) -> str:
    """S-1-5-21-…-1001 for a binary SID."""
    if len(sid) < 8:
        return ""
    authority = int.from_bytes(sid[2:8], "big")
    subs = [int.from_bytes(sid[8 + 4 * i : 12 + 4 * i], "little") for i in range(sid[1])]
    return "-".join(["S", str(sid[0]), str(authority), *map(str, subs)])


def sid_rid(sid: bytes) -> int | None:
    """The last sub-authority (the account's relative id), None for an empty SID."""
    if len(sid) < 12 or sid[1] == 0:
        return None
    return int.from_bytes(sid[8 + 4 * (sid[1] - 1) : 12 + 4 * (sid[1] - 1)], "little")


def client_address(raw: WTS_CLIENT_ADDRESS) -> str:
    """The text form of a WTS_CLIENT_ADDRESS ("" for families without an IP address)."""
    data = bytes(raw.Address)
    if raw.AddressFamily == w.AF_INET:
        return str(ipaddress.IPv4Address(data[2:6]))
    if raw.AddressFamily == w.AF_INET6:
        return str(ipaddress.IPv6Address(data[:16]))
    return ""


class Wts:
    """Calls into an :class:`Api` and reads what comes back (one server: this machine)."""

    def __init__(self, api: w.Api) -> None:
        self.api = api
        self._sid_names: dict[bytes, tuple[str, str]] = {}
        self._rids: dict[str, int | None] = {}

    def _call(self, function: str, *args: object) -> int:
        """Call ``function`` with the thread's last error cleared first, so a stub that
        fails without setting one reports 0, not an earlier call's code."""
        self.api.set_last_error(0)
        return getattr(self.api, function)(*args)

    def _fail(self, function: str) -> Win32Error:
        return Win32Error(function, int(self.api.last_error()))

    # -- listing ------------------------------------------------------------------------

    def _enumerate(self, function: str, kind: type[ctypes.Structure],
                   convert: Callable[[Any], T]) -> list[T]:
        """The array an Enumerate* function hands out, each element converted, then freed."""
        buf = c_void_p()
        count = DWORD()
        if not self._call(function, w.WTS_CURRENT_SERVER_HANDLE, 0, 1, pointer(buf),
                          pointer(count)):
            raise self._fail(function)
        try:
            if not buf.value:
                return []
            items = cast(buf, POINTER(kind))
            return [convert(items[i]) for i in range(count.value)]
        finally:
            if buf.value:
                self.api.WTSFreeMemory(buf)

    def sessions(self) -> list[WtsSession]:
        """WTSEnumerateSessionsW: every session's id, station name and state."""
        return self._enumerate(
            "WTSEnumerateSessionsW", WTS_SESSION_INFOW,
            lambda e: WtsSession(int(e.SessionId), read_utf16(e.pWinStationName), int(e.State)),
        )

    def processes(self) -> list[WtsProcess]:
        """WTSEnumerateProcessesW: every process with its session, name and user's SID."""
        return self._enumerate(
            "WTSEnumerateProcessesW", WTS_PROCESS_INFOW,
            lambda e: WtsProcess(int(e.SessionId), int(e.ProcessId),
                                 read_utf16(e.pProcessName), sid_bytes(e.pUserSid)),
        )

    # -- one session ----------------------------------------------------------------------

    def _query(self, session_id: int, info_class: int) -> tuple[bytes, int]:
        """(a copy of the bytes, the size reported) of one WTSQuerySessionInformationW answer."""
        buf = c_void_p()
        size = DWORD()
        ok = self._call("WTSQuerySessionInformationW", w.WTS_CURRENT_SERVER_HANDLE,
                        session_id, info_class, pointer(buf), pointer(size))
        if not ok:
            raise self._fail(f"WTSQuerySessionInformationW({_INFO_NAMES.get(info_class)})")
        try:
            if not buf.value:
                return b"", 0
            if info_class in _STRING_CLASSES:
                text = read_utf16(buf.value, max(1, size.value // 2))
                return text.encode("utf-16-le"), size.value
            return ctypes.string_at(buf.value, size.value), size.value
        finally:
            if buf.value:
                self.api.WTSFreeMemory(buf)

    def query_string(self, session_id: int, info_class: int) -> str:
        """A string-valued class (WTSUserName, WTSDomainName, WTSWinStationName, …)."""
        raw, _ = self._query(session_id, info_class)
        return raw.decode("utf-16-le", errors="replace")

    def session_info(self, session_id: int) -> SessionInfo:
        """WTSSessionInfo: state, station, user, domain and the session's times."""
        raw, size = self._query(session_id, w.WTSSessionInfo)
        if size < sizeof(WTSINFOW):
            raise Win32Error("WTSQuerySessionInformationW(WTSSessionInfo)", 0,
                             f"returned {size} bytes, not the {sizeof(WTSINFOW)} of WTSINFOW")
        info = WTSINFOW.from_buffer_copy(raw[: sizeof(WTSINFOW)])
        return SessionInfo(
            id=int(info.SessionId),
            state=int(info.State),
            station=utf16_field(info.WinStationName),
            user=utf16_field(info.UserName),
            domain=utf16_field(info.Domain),
            connect_time=filetime(info.ConnectTime),
            disconnect_time=filetime(info.DisconnectTime),
            last_input_time=filetime(info.LastInputTime),
            logon_time=filetime(info.LogonTime),
            current_time=filetime(info.CurrentTime),
        )

    def client_address(self, session_id: int) -> str:
        """WTSClientAddress as text ("" when the session has no network client)."""
        raw, size = self._query(session_id, w.WTSClientAddress)
        if size < sizeof(WTS_CLIENT_ADDRESS):
            return ""
        raw = raw[: sizeof(WTS_CLIENT_ADDRESS)]
        return client_address(WTS_CLIENT_ADDRESS.from_buffer_copy(raw))

    def protocol(self, session_id: int) -> int:
        """WTSClientProtocolType: 0 console, 1 ICA, 2 RDP."""
        raw, size = self._query(session_id, w.WTSClientProtocolType)
        return int.from_bytes(raw[:2], "little") if size >= 2 else w.PROTOCOL_CONSOLE

    # -- processes ------------------------------------------------------------------------

    def session_of(self, pid: int) -> int | None:
        """ProcessIdToSessionId; None when the process is gone or not ours to ask about."""
        out = DWORD()
        if not self._call("ProcessIdToSessionId", pid, pointer(out)):
            return None
        return int(out.value)

    def current_session(self) -> int | None:
        """The session this process runs in."""
        return self.session_of(int(self.api.GetCurrentProcessId()))

    def console_session(self) -> int | None:
        """WTSGetActiveConsoleSessionId; None when no session is attached to the console."""
        value = int(self.api.WTSGetActiveConsoleSessionId())
        return None if value == w.NO_CONSOLE_SESSION else value

    def account_of_sid(self, sid: bytes) -> tuple[str, str]:
        """(user, domain) of a binary SID through LookupAccountSidW; ("", "") if unmapped."""
        if not sid:
            return "", ""
        if sid in self._sid_names:
            return self._sid_names[sid]
        holder = (c_uint8 * len(sid)).from_buffer_copy(sid)
        name = ctypes.create_unicode_buffer(256)
        domain = ctypes.create_unicode_buffer(256)
        n_name, n_domain, use = DWORD(256), DWORD(256), DWORD()
        ok = self._call("LookupAccountSidW", None, ctypes.addressof(holder), name,
                        pointer(n_name), domain, pointer(n_domain), pointer(use))
        found = (name.value, domain.value) if ok else ("", "")
        self._sid_names[sid] = found
        return found

    def account_rid(self, user: str, domain: str = "") -> int | None:
        """The relative id of an account (LookupAccountNameW), None if it cannot be found."""
        if not user:
            return None
        account = f"{domain}\\{user}" if domain else user
        if account not in self._rids:
            self._rids[account] = self._lookup_rid(account)
        return self._rids[account]

    def _lookup_rid(self, account: str) -> int | None:
        sid = (c_uint8 * 68)()
        n_sid, n_domain, use = DWORD(68), DWORD(256), DWORD()
        dom = ctypes.create_unicode_buffer(256)
        if not self._call("LookupAccountNameW", None, account, ctypes.addressof(sid),
                          pointer(n_sid), dom, pointer(n_domain), pointer(use)):
            return None
        return sid_rid(bytes(sid)[: max(8, n_sid.value)])

    def caller(self) -> tuple[str, bool]:
        """(user name, administrator?) of this process (GetUserNameW, IsUserAnAdmin)."""
        buf = ctypes.create_unicode_buffer(257)
        size = DWORD(257)
        name = buf.value if self._call("GetUserNameW", buf, pointer(size)) else ""
        return name, bool(self.api.IsUserAnAdmin())

    # -- actions --------------------------------------------------------------------------

    def logoff(self, session_id: int, wait: bool = True) -> None:
        """WTSLogoffSession; raises Win32Error if Windows refuses or cannot."""
        if not self._call("WTSLogoffSession", w.WTS_CURRENT_SERVER_HANDLE, session_id, int(wait)):
            raise self._fail("WTSLogoffSession")

    def disconnect(self, session_id: int, wait: bool = True) -> None:
        """WTSDisconnectSession; success here is only what the function returned."""
        if not self._call("WTSDisconnectSession", w.WTS_CURRENT_SERVER_HANDLE, session_id,
                          int(wait)):
            raise self._fail("WTSDisconnectSession")

    def send_message(self, session_id: int, title: str, text: str, *, timeout: int,
                     wait: bool, style: int = w.MB_OK | w.MB_ICONINFORMATION) -> int:
        """WTSSendMessageW; returns the response (IDOK, IDTIMEOUT, IDASYNC, …)."""
        response = DWORD()
        ok = self._call(
            "WTSSendMessageW", w.WTS_CURRENT_SERVER_HANDLE, session_id,
            title, len(title.encode("utf-16-le")), text, len(text.encode("utf-16-le")),
            style, timeout, pointer(response), int(wait),
        )
        if not ok:
            raise self._fail("WTSSendMessageW")
        return int(response.value)


_STRING_CLASSES = {w.WTSUserName, w.WTSWinStationName, w.WTSDomainName, w.WTSClientName}
_INFO_NAMES = {
    w.WTSUserName: "WTSUserName",
    w.WTSWinStationName: "WTSWinStationName",
    w.WTSDomainName: "WTSDomainName",
    w.WTSConnectState: "WTSConnectState",
    w.WTSClientName: "WTSClientName",
    w.WTSClientAddress: "WTSClientAddress",
    w.WTSClientProtocolType: "WTSClientProtocolType",
    w.WTSSessionInfo: "WTSSessionInfo",
}
