"""The Win32 functions sessionctl calls, their structures and constants, as documented.

Structures use fixed-size members (UTF-16 code units as ``c_uint16``, pointers as
``c_void_p``) so they have the same layout on every platform: a test on Linux builds
exactly the bytes wtsapi32.dll hands out on 64-bit Windows. Nothing here loads a DLL at
import; :func:`load` does, and only on Windows.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, Structure, c_int32, c_int64, c_uint8, c_uint16, c_uint32, c_void_p
from dataclasses import dataclass
from typing import Any

from ..errors import BackendUnavailable

DWORD = c_uint32
BOOL = c_int32
WCHAR = c_uint16
LARGE_INTEGER = c_int64

WTS_CURRENT_SERVER_HANDLE = None
WTS_CURRENT_SESSION = 0xFFFFFFFF
NO_CONSOLE_SESSION = 0xFFFFFFFF  # WTSGetActiveConsoleSessionId: no session is attached

# WTS_CONNECTSTATE_CLASS
WTSActive, WTSConnected, WTSConnectQuery, WTSShadow, WTSDisconnected = 0, 1, 2, 3, 4
WTSIdle, WTSListen, WTSReset, WTSDown, WTSInit = 5, 6, 7, 8, 9

# WTS_INFO_CLASS (the ones used here)
WTSUserName = 5
WTSWinStationName = 6
WTSDomainName = 7
WTSConnectState = 8
WTSClientName = 10
WTSClientAddress = 14
WTSClientProtocolType = 16
WTSSessionInfo = 24

# WTSClientProtocolType values
PROTOCOL_CONSOLE, PROTOCOL_ICA, PROTOCOL_RDP = 0, 1, 2

# WTSSendMessageW responses (winuser.h, wtsapi32.h)
IDOK, IDCANCEL, IDABORT, IDRETRY, IDIGNORE, IDYES, IDNO = 1, 2, 3, 4, 5, 6, 7
IDTRYAGAIN, IDCONTINUE = 10, 11
IDTIMEOUT, IDASYNC = 32000, 32001
MB_OK = 0x0
MB_ICONINFORMATION = 0x40
MB_SETFOREGROUND = 0x10000

# Win32 error codes that change what we tell the user
ERROR_FILE_NOT_FOUND = 2
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_PARAMETER = 87
ERROR_INSUFFICIENT_BUFFER = 122
ERROR_CALL_NOT_IMPLEMENTED = 120
ERROR_NOT_SUPPORTED = 50
ERROR_NONE_MAPPED = 1332
ERROR_CTX_WINSTATION_NOT_FOUND = 7022
ERROR_CTX_NOT_CONSOLE = 7038
ERROR_CTX_WINSTATION_ACCESS_DENIED = 7045

AF_INET = 2
AF_INET6 = 23  # Windows' value (Linux uses 10)

WINSTATIONNAME_LENGTH = 32
DOMAIN_LENGTH = 17
USERNAME_LENGTH = 20


class WTS_SESSION_INFOW(Structure):
    """One element of WTSEnumerateSessionsW's array."""

    _fields_ = [("SessionId", DWORD), ("pWinStationName", c_void_p), ("State", c_int32)]


class WTS_PROCESS_INFOW(Structure):
    """One element of WTSEnumerateProcessesW's array (pUserSid may be NULL)."""

    _fields_ = [
        ("SessionId", DWORD),
        ("ProcessId", DWORD),
        ("pProcessName", c_void_p),
        ("pUserSid", c_void_p),
    ]


class WTSINFOW(Structure):
    """WTSQuerySessionInformationW(WTSSessionInfo); times are FILETIMEs (100 ns since 1601)."""

    _fields_ = [
        ("State", c_int32),
        ("SessionId", DWORD),
        ("IncomingBytes", DWORD),
        ("OutgoingBytes", DWORD),
        ("IncomingFrames", DWORD),
        ("OutgoingFrames", DWORD),
        ("IncomingCompressedBytes", DWORD),
        ("OutgoingCompressedBytes", DWORD),
        ("WinStationName", WCHAR * WINSTATIONNAME_LENGTH),
        ("Domain", WCHAR * DOMAIN_LENGTH),
        ("UserName", WCHAR * (USERNAME_LENGTH + 1)),
        ("ConnectTime", LARGE_INTEGER),
        ("DisconnectTime", LARGE_INTEGER),
        ("LastInputTime", LARGE_INTEGER),
        ("LogonTime", LARGE_INTEGER),
        ("CurrentTime", LARGE_INTEGER),
    ]


class WTS_CLIENT_ADDRESS(Structure):
    """WTSQuerySessionInformationW(WTSClientAddress): IPv4 at Address[2:6]."""

    _fields_ = [("AddressFamily", DWORD), ("Address", c_uint8 * 20)]


#: Sizes on 64-bit Windows (checked by the tests against the constructed structures).
SIZES = {WTS_SESSION_INFOW: 24, WTS_PROCESS_INFOW: 24, WTSINFOW: 216, WTS_CLIENT_ADDRESS: 24}


@dataclass
class Api:
    """The DLL functions sessionctl calls, as callables with the documented signatures.

    Out-parameters are passed as ``ctypes.pointer(...)`` objects, so a stand-in written in
    Python can fill them as the DLL would. ``last_error`` reads the calling thread's
    GetLastError() value saved after the previous call; ``set_last_error`` sets it (to
    clear it before a call).
    """

    WTSEnumerateSessionsW: Any
    WTSQuerySessionInformationW: Any
    WTSEnumerateProcessesW: Any
    WTSFreeMemory: Any
    WTSLogoffSession: Any
    WTSDisconnectSession: Any
    WTSSendMessageW: Any
    ProcessIdToSessionId: Any
    WTSGetActiveConsoleSessionId: Any
    GetCurrentProcessId: Any
    LookupAccountSidW: Any
    LookupAccountNameW: Any
    GetUserNameW: Any
    IsUserAnAdmin: Any
    last_error: Any
    set_last_error: Any
    origin: str = "dll"


def _bind(dll: Any, name: str, argtypes: list[Any], restype: Any) -> Any:
    try:
        fn = getattr(dll, name)
    except AttributeError:
        raise BackendUnavailable(f"{name} is missing from this system's DLLs") from None
    fn.argtypes = argtypes
    fn.restype = restype
    return fn


_loaded: Api | None = None


def load() -> Api:
    """The real functions from wtsapi32, kernel32, advapi32 and shell32 (Windows only)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    windll = getattr(ctypes, "WinDLL", None)
    if windll is None:
        raise BackendUnavailable("the windows backend runs on Windows only")
    try:
        wts = windll("wtsapi32", use_last_error=True)
        k32 = windll("kernel32", use_last_error=True)
        adv = windll("advapi32", use_last_error=True)
        shell = windll("shell32", use_last_error=True)
    except OSError as exc:
        raise BackendUnavailable(f"cannot load the Terminal Services DLLs: {exc}") from None
    pdw, pvp = POINTER(DWORD), POINTER(c_void_p)
    wstr = ctypes.c_wchar_p
    _loaded = Api(
        WTSEnumerateSessionsW=_bind(wts, "WTSEnumerateSessionsW",
                                    [c_void_p, DWORD, DWORD, pvp, pdw], BOOL),
        WTSQuerySessionInformationW=_bind(wts, "WTSQuerySessionInformationW",
                                          [c_void_p, DWORD, c_int32, pvp, pdw], BOOL),
        WTSEnumerateProcessesW=_bind(wts, "WTSEnumerateProcessesW",
                                     [c_void_p, DWORD, DWORD, pvp, pdw], BOOL),
        WTSFreeMemory=_bind(wts, "WTSFreeMemory", [c_void_p], None),
        WTSLogoffSession=_bind(wts, "WTSLogoffSession", [c_void_p, DWORD, BOOL], BOOL),
        WTSDisconnectSession=_bind(wts, "WTSDisconnectSession", [c_void_p, DWORD, BOOL], BOOL),
        WTSSendMessageW=_bind(wts, "WTSSendMessageW",
                              [c_void_p, DWORD, wstr, DWORD, wstr, DWORD, DWORD, DWORD, pdw,
                               BOOL], BOOL),
        ProcessIdToSessionId=_bind(k32, "ProcessIdToSessionId", [DWORD, pdw], BOOL),
        WTSGetActiveConsoleSessionId=_bind(k32, "WTSGetActiveConsoleSessionId", [], DWORD),
        GetCurrentProcessId=_bind(k32, "GetCurrentProcessId", [], DWORD),
        LookupAccountSidW=_bind(adv, "LookupAccountSidW",
                                [wstr, c_void_p, ctypes.c_wchar_p, pdw, ctypes.c_wchar_p, pdw,
                                 pdw], BOOL),
        LookupAccountNameW=_bind(adv, "LookupAccountNameW",
                                 [wstr, wstr, c_void_p, pdw, ctypes.c_wchar_p, pdw, pdw], BOOL),
        GetUserNameW=_bind(adv, "GetUserNameW", [ctypes.c_wchar_p, pdw], BOOL),
        IsUserAnAdmin=_bind(shell, "IsUserAnAdmin", [], BOOL),
        # typeshed has these on Windows only, and mypy checks this module as on Linux
        last_error=ctypes.get_last_error,  # type: ignore[attr-defined]
        set_last_error=ctypes.set_last_error,  # type: ignore[attr-defined]
    )
    return _loaded
