"""Layouts: every column offset of Windows' qwinsta/quser, idle formats, truncation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from layout import parse_quser, parse_qwinsta

from sessionctl.cli import render
from sessionctl.model import Session, State


def make(**kw: object) -> Session:
    base: dict[str, object] = dict(
        id="7", name="pts/3", user="alice", uid=1000, state=State.ACTIVE, type="ssh",
        device="/dev/pts/3", remote_host="10.0.0.1", idle_seconds=30.0,
        login_time=datetime(2026, 11, 22, 8, 21, tzinfo=UTC),
    )
    base.update(kw)
    return Session(**base)  # type: ignore[arg-type]


def test_qwinsta_columns_hold() -> None:
    out = render.qwinsta_table([make(current=True), make(id="12345", name="", user="bob",
                                                         state=State.DISC, device="")])
    rows = parse_qwinsta(out)
    assert rows[0] == {"marker": ">", "name": "pts/3", "user": "alice", "id": "7",
                       "state": "Active", "type": "ssh", "device": "/dev/pts/3"}
    assert rows[1]["marker"] == "" and rows[1]["id"] == "12345" and rows[1]["state"] == "Disc"
    line = out.splitlines()[1]
    assert line[0] == ">" and line[1:6] == "pts/3" and line[19:24] == "alice"
    assert line[45] == "7" and line[48:54] == "Active" and line[56:59] == "ssh"
    assert line[68:] == "/dev/pts/3"


def test_quser_columns_hold() -> None:
    out = render.quser_table([make(idle_seconds=5940.0), make(id="8", idle_seconds=None)])
    rows = parse_quser(out)
    assert rows[0]["user"] == "alice" and rows[0]["name"] == "pts/3" and rows[0]["id"] == "7"
    assert rows[0]["state"] == "Active" and rows[0]["idle"] == "1:39"
    assert rows[0]["logon"] == "2026-11-22 08:21"
    assert rows[1]["idle"] == "none"
    line = out.splitlines()[1]
    assert line[1:6] == "alice" and line[23:28] == "pts/3" and line[43] == "7"
    assert line[46:52] == "Active" and line[59:63] == "1:39" and line[65:] == "2026-11-22 08:21"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "."), (59.9, "."), (60, "1"), (7 * 60 + 5, "7"), (3599, "59"), (3600, "1:00"),
    (99 * 60, "1:39"), (86399, "23:59"), (86400, "1+00:00"), (2 * 86400 + 3 * 3600 + 600,
                                                             "2+03:10"), (None, "none"),
])
def test_idle_formats(seconds: float | None, text: str) -> None:
    assert render.format_idle(seconds) == text


def test_long_usernames_and_ids_keep_columns() -> None:
    long_user = "averyveryverylongusername_x"  # 27 characters
    out = render.qwinsta_table([make(user=long_user, id="4294967294")])
    row = parse_qwinsta(out)[0]
    assert row["id"] == "4294967294"
    assert long_user.startswith(row["user"].rstrip("+")) and row["user"].endswith("+")
    line = out.splitlines()[1]
    assert line[48:54] == "Active"
    q = render.quser_table([make(user=long_user, id="4294967294")])
    qrow = parse_quser(q)[0]
    assert qrow["user"].endswith("+") and len(qrow["user"]) <= 21 and qrow["id"] == "4294967294"


def test_twenty_character_username_fits_whole() -> None:
    name = "u" * 20
    row = parse_qwinsta(render.qwinsta_table([make(user=name)]))[0]
    assert row["user"] == name


def test_control_characters_never_reach_output() -> None:
    out = render.qwinsta_table([make(user="ev\x1b[31mil", remote_host="x\x07")], verbose=True)
    assert "\x1b" not in out and "\x07" not in out


def column(line: str, title: str) -> str:
    col, width, _ = render.VERBOSE_COLUMNS[title]
    return line[col:col + width].strip()


def test_verbose_columns_take_devices_place_within_120_columns() -> None:
    """qwinsta /v was ~130 columns wide (it wrapped in a 120-column terminal)."""
    long_host = "a-rather-long-remote-host-name.example.org"
    out = render.qwinsta_table([make(leader_pid=4194304, remote_host=long_host,
                                     idle_seconds=9_999_999.0)], verbose=True)
    header, line = out.splitlines()
    assert header.startswith(render.QWINSTA_HEADER[:68])
    assert line[:68] == render.qwinsta_line(make(leader_pid=4194304))[:68]
    assert max(len(header), len(line)) <= render.MAX_WIDTH
    assert [column(header, t) for t in render.VERBOSE_COLUMNS] == list(render.VERBOSE_COLUMNS)
    assert column(line, "LEADER") == "4194304" and column(line, "LOGOFF AT") == "-"
    assert column(line, "IDLE(s)") == "9999999" and column(line, "FROM").endswith("+")
    short = render.qwinsta_table([make()], verbose=True).splitlines()[1]
    assert column(short, "FROM") == "10.0.0.1"
