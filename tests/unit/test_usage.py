"""Usage model, /proc parsers and the top screen's row building (recorded data)."""

from __future__ import annotations

import pytest

from sessionctl.cli import usagefmt
from sessionctl.linux.usage import PAGE_SIZE, parse_io, parse_pss, parse_stat_counters
from sessionctl.model import ProcessRef, Session, State
from sessionctl.tui.rows import build, parent_key
from sessionctl.usage_model import (
    ProcessUsage,
    SessionUsage,
    UsageSnapshot,
    group_by_user,
    session_status,
    sort_rows,
)

STAT = (b"4242 (tmux: server) (x)) R 1 4242 4242 0 -1 4194560 7207 0 0 0 1234 567 0 0 20 0 "
        b"1 0 98765 9203712 1024 18446744073709551615 1 1 0 0 0 0 0 4096 17475 0 0 0 17 1 0 0")
IO = b"rchar: 5000\nwchar: 300\nsyscr: 9\nsyscw: 3\nread_bytes: 8192\nwrite_bytes: 4096\n" \
     b"cancelled_write_bytes: 0\n"
ROLLUP = b"55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss: 5000 kB\nPss: 1234 kB\nPss_Anon: 9 kB\n"


def test_parsers() -> None:
    c = parse_stat_counters(4242, STAT)
    assert (c.comm, c.state, c.cpu_ticks, c.start_ticks) == ("tmux: server) (x)", "R", 1801, 98765)
    assert c.rss_bytes == 1024 * PAGE_SIZE
    assert parse_io(IO) == (8192, 4096)
    assert parse_pss(ROLLUP) == 1234 * 1024
    assert parse_pss(b"Rss: 1 kB\n") is None


def session(sid: str, user: str, idle: float | None, state: State = State.ACTIVE) -> Session:
    refs = (ProcessRef(int(sid) * 10, 1, 1000, 5),)
    return Session(sid, f"pts/{sid}", user, 1000, state, "ssh", idle_seconds=idle, processes=refs)


def proc(pid: int, cpu: float, rss: int, io: float | None = 0.0) -> ProcessUsage:
    return ProcessUsage(pid, pid * 7, f"p{pid}", "S", cpu, rss, None, io, io)


def snapshot() -> UsageSnapshot:
    a1 = SessionUsage(session("1", "alice", 10), (proc(11, 50.0, 100), proc(12, 1.0, 900)))
    a2 = SessionUsage(session("2", "alice", 900), (proc(21, 0.0, 10, None),))
    b1 = SessionUsage(session("3", "bob", None, State.DISC), (proc(31, 80.0, 5),))
    return UsageSnapshot(0.0, 1.0, group_by_user([a1, a2, b1]))


def test_totals_status_and_json() -> None:
    snap = snapshot()
    alice, bob = snap.users
    assert alice.cpu_percent == pytest.approx(51.0) and alice.rss_bytes == 1010
    assert alice.io_partial and alice.read_bytes_per_s == 0.0
    assert [s.status for s in alice.sessions] == ["Active", "Idle"]
    assert (alice.status, bob.status, alice.idle_seconds) == ("Active", "Disc", 10)
    assert session_status(session("9", "x", 299.0)) == "Active"
    d = alice.to_dict(with_processes=True)
    assert d["sessions"] == 2 and d["processes"] == 3
    assert d["session_list"][1]["process_list"][0]["read_bytes_per_s"] is None
    assert [u.user for u in sort_rows(snap.users, "cpu")] == ["bob", "alice"]
    assert [u.user for u in sort_rows(snap.users, "cpu", reverse=True)] == ["alice", "bob"]
    assert [u.user for u in sort_rows(snap.users, "rss")] == ["alice", "bob"]
    with pytest.raises(ValueError):
        sort_rows(snap.users, "nope")


def test_rows_expand_collapse_and_cap() -> None:
    snap = snapshot()
    assert [r.key for r in build(snap, set(), "cpu")] == ["u:bob", "u:alice"]
    rows = build(snap, {"u:alice", "s:1"}, "cpu")
    assert [r.key for r in rows] == ["u:bob", "u:alice", "s:1", "p:11:77", "p:12:84", "s:2"]
    assert [r.depth for r in rows] == [0, 0, 1, 2, 2, 1]
    assert parent_key(rows[3]) == "s:1" and parent_key(rows[2]) == "u:alice"
    capped = build(snap, {"u:alice", "s:1"}, "cpu", max_processes=1)
    assert capped[4].kind == "more" and "1 more" in capped[4].cells["user"]


def test_formatting() -> None:
    assert [usagefmt.size(n) for n in (0, 999, 1024 * 12.3, 845 << 20, 1.21 * (1 << 30))] == [
        "0B", "999B", "12.3K", "845M", "1.2G"]
    assert usagefmt.size(None) == "-" and usagefmt.rate(10.0, partial=True) == "10B*"
    assert [usagefmt.idle(s) for s in (None, 30, 300, 3900)] == ["-", ".", "5", "1:05"]
    assert usagefmt.until(160.0, now=100.0) == "logoff in 1:00"
    cells = usagefmt.cells(snapshot().users[0])
    assert cells["user"] == "alice" and cells["read"] == "0B*"


@pytest.mark.parametrize(("typed", "seconds"), [("90", 90.0), ("5m", 300.0), ("1h30m", 5400.0),
                                                ("2d", 172800.0), ("x", None), ("0", None)])
def test_sign_out_dialog_reads_the_notice_as_everywhere_else(
    typed: str, seconds: float | None
) -> None:
    """The top screen's notice field takes what README documents (1h30m, 2d): it used to
    have a parser of its own that refused both."""
    import asyncio

    from textual.app import App
    from textual.widgets import Input

    from sessionctl.tui.dialogs import SignOutDialog

    results: list[object] = []

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(SignOutDialog("session 7", 3), results.append)

    async def scenario() -> None:
        app = Host()
        async with app.run_test() as pilot:
            await pilot.pause()
            app.screen.query_one("#notice", Input).value = typed
            await pilot.click("#warn")
            await pilot.pause()
    asyncio.run(scenario())
    if seconds is None:
        assert results == []  # refused with a notification; the dialog stays open
    else:
        assert results == [("warn", seconds, "")]


def test_pids_since_wraps_and_gives_up_on_many_forks() -> None:
    from sessionctl.linux.usage import pids_since

    assert pids_since((100, 500), (103, 503), 4096, 32768) == [501, 502, 503]
    assert pids_since((100, 32766), (103, 301), 4096, 32768)[:2] == [32767, 1]
    assert pids_since((100, 500), (100, 500), 4096, 32768) == []
    assert pids_since((100, 500), (5000, 900), 4096, 32768) is None  # more forks than that
    assert pids_since((100, 500), (90, 900), 4096, 32768) is None  # counters went back


def test_users_table_and_top_screen_share_one_column_table() -> None:
    """Same keys, titles and order; every top column holds what the users table's holds
    (the top screen had a table of its own whose READ/s column cut '12.3K*' short)."""
    from sessionctl.tui import app

    assert [c.key for c in app.COLUMNS] == [c.key for c in usagefmt.COLUMNS]
    for top, table in zip(app.COLUMNS, usagefmt.COLUMNS, strict=True):
        assert top.width - 1 >= table.width and top.right == table.right
        assert top.title == table.title or top.key == "user"
    widths = {c.key: c.width for c in usagefmt.COLUMNS}
    for exp in range(0, 60):
        for mantissa in (1.0, 9.99, 99.94, 99.96, 999.4, 999.6, 1023.9):
            n = mantissa * 2.0 ** exp
            if n >= 999 * 2.0 ** 50:
                continue  # beyond 999 PiB
            assert len(usagefmt.size(n)) <= widths["rss"], n
            assert len(usagefmt.rate(n, partial=True)) <= widths["read"], n
    total = sum(c.width for c in app.COLUMNS if c.key != "pss")
    assert total <= 80  # the whole row fits an 80-column terminal (PSS off)
