"""The logind backend's mapping of recorded logind replies (the D-Bus layer is faked)."""

from __future__ import annotations

from sessionctl.backends.logind import LogindBackend
from sessionctl.errors import NoSuchSession
from sessionctl.model import State

# Properties as GetAll returned them for an ssh login on systemd 252 (trimmed).
SSH_PROPS = {
    "Id": ("s", "1247"), "Name": ("s", "alice"), "User": ("(uo)", (1000, "/u/1000")),
    "TTY": ("s", "pts/0"), "Display": ("s", ""), "Remote": ("b", True),
    "RemoteHost": ("s", "127.0.0.1"), "Service": ("s", "sshd"), "Type": ("s", "tty"),
    "Class": ("s", "user"), "State": ("s", "active"), "Scope": ("s", "session-1247.scope"),
    "Leader": ("u", 52), "Timestamp": ("t", 1795320664000000), "VTNr": ("u", 0),
    "IdleHint": ("b", False), "IdleSinceHint": ("t", 0),
}


class Recorded(LogindBackend):
    """LogindBackend answering from recorded replies instead of a bus."""

    def __init__(self, sessions: dict[str, dict | None]) -> None:
        super().__init__(connection=None)
        self.recorded = sessions

    def _call(self, path, interface, method, signature=None, body=(), bus_name=None):
        if method == "ListSessions":
            return ([(sid, 1000, "alice", "", f"/s/{sid}") for sid in self.recorded],)
        if method == "GetAll" and path.startswith("/s/"):
            props = self.recorded[path[3:]]
            if props is None:
                raise NoSuchSession(f"No session exists for {path[3:]}")
            return (props,)
        raise NoSuchSession("no such unit")  # GetUnit: no systemd here


def test_mapping_of_an_ssh_session() -> None:
    (s,) = Recorded({"1247": SSH_PROPS}).sessions()
    assert (s.id, s.user, s.uid, s.name, s.device) == ("1247", "alice", 1000, "pts/0",
                                                       "/dev/pts/0")
    assert s.state is State.ACTIVE and s.type == "ssh" and s.service == "sshd"
    assert s.remote_host == "127.0.0.1" and s.leader_pid == 52 and not s.console
    assert s.login_time is not None and s.login_time.year == 2026
    assert s.extra == {"class": "user", "scope": "session-1247.scope", "logind_state": "active"}
    assert s.backend == "logind"


def test_closing_is_disc_and_vanished_sessions_are_skipped() -> None:
    closing = {**SSH_PROPS, "Id": ("s", "1250"), "State": ("s", "closing")}
    found = Recorded({"1250": closing, "1251": None}).sessions()
    assert [(s.id, s.state) for s in found] == [("1250", State.DISC)]


def test_su_session_without_tty_and_graphical_idle_hint() -> None:
    su = {**SSH_PROPS, "Id": ("s", "c1"), "TTY": ("s", ""), "Service": ("s", "su-l"),
          "Type": ("s", "unspecified"), "Remote": ("b", False), "RemoteHost": ("s", "")}
    x11 = {**SSH_PROPS, "Id": ("s", "c2"), "TTY": ("s", ""), "Display": ("s", ":0"),
           "Type": ("s", "x11"), "Service": ("s", "gdm-password"), "IdleHint": ("b", True),
           "IdleSinceHint": ("t", 1795320000000000), "VTNr": ("u", 2)}
    by_id = {s.id: s for s in Recorded({"c1": su, "c2": x11}).sessions()}
    assert by_id["c1"].name == "" and by_id["c1"].idle_seconds is None
    assert by_id["c1"].type == "unspecified"
    assert by_id["c2"].name == ":0" and by_id["c2"].type == "x11" and by_id["c2"].console
    assert by_id["c2"].idle_seconds is not None and by_id["c2"].idle_seconds > 600
