"""Pure parts of the desktop support: protocol, TYPE/FROM columns, /proc/net/tcp parsing,
viewers and session environments from constructed /proc trees."""

from __future__ import annotations

import os
from pathlib import Path

from sessionctl.actions.desktop_logout import DesktopLogoff
from sessionctl.backends.desktops import protocol_of
from sessionctl.cli.render import qwinsta_line, type_label, where_from
from sessionctl.linux import desktop, vnc
from sessionctl.linux.session_manager import Inhibitor
from sessionctl.model import ProcessRef, Session, State


def _session(**kw) -> Session:
    base = dict(id="c4", name=":1", user="ann", uid=1000, state=State.DISC, type="x11")
    return Session(**{**base, **kw})


def test_protocol_of_each_kind() -> None:
    assert protocol_of(_session(service="tigervnc"), True) == "vnc"
    assert protocol_of(_session(service="xrdp-sesman"), False) == "rdp"
    assert protocol_of(_session(type="ssh", service="sshd", name="pts/1"), False) == "ssh"
    assert protocol_of(_session(service="lightdm", remote=False), False) == "local"


def test_type_and_from_columns() -> None:
    s = _session(protocol="vnc", client_address="127.0.0.1:50112", remote_host="203.0.113.9")
    assert type_label(s) == "x11/vnc" and where_from(s) == "127.0.0.1:50112"
    assert where_from(_session(protocol="vnc", remote_host="203.0.113.9")) == ""
    ssh = _session(type="ssh", protocol="ssh", remote_host="10.1.2.3", name="pts/2")
    assert type_label(ssh) == "ssh" and where_from(ssh) == "10.1.2.3"
    line = qwinsta_line(s, verbose=True)
    assert line[56:63] == "x11/vnc" and line.endswith("127.0.0.1:50112")


def test_tcp_addresses() -> None:
    assert vnc._address("0100007F:1770") == ("127.0.0.1", 6000)
    v6 = "0000000000000000FFFF00000100007F:170D"
    assert vnc._address(v6) == ("127.0.0.1", 5901)
    assert vnc._address("00000000000000000000000001000000:170D") == ("::1", 5901)


def _fake_proc(tmp: Path, pid: int, sockets: dict[str, str], tcp: list[str],
               environ: dict[str, str] | None = None) -> None:
    base = tmp / str(pid)
    (base / "fd").mkdir(parents=True)
    (base / "net").mkdir()
    for fd, inode in sockets.items():
        os.symlink(f"socket:[{inode}]", base / "fd" / fd)
    os.symlink("/dev/null", base / "fd" / "0")
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt" \
             "   uid  timeout inode\n"
    (base / "net" / "tcp").write_text(header + "".join(tcp))
    if environ is not None:
        (base / "environ").write_bytes(
            b"".join(f"{k}={v}".encode() + b"\0" for k, v in environ.items()))


def _row(local: str, remote: str, state: str, inode: str) -> str:
    return f"   0: {local} {remote} {state} 00000000:00000000 00:00000000 00000000  1000 " \
           f"       0 {inode} 1 0000000000000000 100 0 0 10 0\n"


def test_viewers_are_connections_on_the_servers_own_listening_port(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 118, {"3": "100", "4": "101", "5": "102", "6": "103"}, [
        _row("0100007F:170D", "00000000:0000", "0A", "100"),  # RFB listener 5901
        _row("0100007F:170D", "0100007F:C350", "01", "101"),  # a viewer from :50000
        _row("0100007F:1770", "00000000:0000", "0A", "102"),  # X11 over TCP: not a viewer
        _row("0100007F:1770", "0100007F:C351", "01", "103"),
        _row("0100007F:170D", "0100007F:C352", "01", "999"),  # someone else's socket
    ])
    assert vnc.viewers(118, str(tmp_path)) == ["127.0.0.1:50000"]
    assert vnc.viewers(119, str(tmp_path)) is None  # gone or not ours to read


def test_session_environment_takes_the_users_majority(tmp_path: Path) -> None:
    uid = os.getuid()
    bus = "unix:path=/tmp/dbus-AbCd,guid=1"
    _fake_proc(tmp_path, 10, {}, [], {"DBUS_SESSION_BUS_ADDRESS": bus, "DISPLAY": ":1"})
    _fake_proc(tmp_path, 11, {}, [], {"DBUS_SESSION_BUS_ADDRESS": bus, "DISPLAY": ":1"})
    _fake_proc(tmp_path, 12, {}, [], {"DISPLAY": ":7"})
    _fake_proc(tmp_path, 13, {}, [], {"DISPLAY": ":9", "XAUTHORITY": "/root/x"})
    refs = (ProcessRef(10, 1, uid, 1), ProcessRef(11, 1, uid, 1), ProcessRef(12, 1, uid, 1),
            ProcessRef(13, 1, uid + 1, 1))  # 13: another user's helper, ignored
    env = desktop.session_environment(_session(uid=uid, processes=refs),
                                      proc_root=str(tmp_path))
    assert env == {"DBUS_SESSION_BUS_ADDRESS": bus, "DISPLAY": ":1"}


def test_desktop_report_survives_the_sign_out_helper() -> None:
    """An own-session sign-out run in a helper process sends its result as JSON: the
    desktop part comes back whole."""
    report = DesktopLogoff("asked", "xfce4-session", "ok",
                           [Inhibitor("logind", "vim", "editing", "shutdown", "delay", 42, 1000)],
                           1.5, False, ["xfwm4[10]"], ["mousepad[11]"], ["deaf[12]"])
    back = DesktopLogoff.from_dict(report.to_dict())
    assert back == report
