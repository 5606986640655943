"""Sanitising text for terminals: property-based, down to the bytes a real pty shows."""

from __future__ import annotations

import os
import select

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionctl.actions.message import frame
from sessionctl.durations import parse_duration
from sessionctl.errors import InvalidArgument
from sessionctl.linux.ttywrite import write_tty
from sessionctl.sanitize import checked_message, clean_text

PIECES = ["\x1b", "\x9b", "\x9d", "\x90", "\x07", "\r", "\n", "\x08", "[", "]", ";", "0",
          "2J", "P", "\\", "\u202e", "\x85", "\x00", "\x7f", "é", "\x1b]52;c;", "\x1b[?1049h"]
ESCAPY = st.lists(st.one_of(st.sampled_from(PIECES), st.characters()), max_size=200).map("".join)


def _no_controls(text: str) -> None:
    for ch in text:
        assert ch in "\r\n" or not (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F), repr(ch)
    assert "\u202e" not in text


@given(ESCAPY)
def test_clean_text_leaves_only_printable(text: str) -> None:
    _no_controls(clean_text(text))


@given(st.binary(max_size=300))
def test_invalid_utf8_is_replaced(raw: bytes) -> None:
    out = clean_text(raw)
    out.encode("utf-8")  # always valid
    _no_controls(out)


@settings(max_examples=60, deadline=None)
@given(ESCAPY)
def test_no_escape_or_c1_byte_reaches_a_pty(text: str) -> None:
    """Frame arbitrary text as msg does, write it to a real pty, read what the pty shows."""
    if not clean_text(text).strip():
        return
    master, slave = os.openpty()
    try:
        device = os.ttyname(slave)
        data = frame(checked_message(text), sender="root", sender_tty="pts/0", host="h",
                     when=__import__("datetime").datetime.now(), token=None)
        result = write_tty(device, data, owner_uid=os.getuid(), respect_mesg=False)
        assert result.status == "delivered", result
        shown = b""
        while select.select([master], [], [], 0.2)[0]:
            shown += os.read(master, 65536)
    finally:
        os.close(master)
        os.close(slave)
    assert b"\x1b" not in shown
    decoded = shown.decode("utf-8")  # valid UTF-8: bytes 0x80-0x9F only inside characters
    _no_controls(decoded)


def test_bounds() -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        checked_message("\x1b[2J \t\r\n")
    with pytest.raises(InvalidArgument, match="too long"):
        checked_message("x" * 4001)
    with pytest.raises(InvalidArgument, match="too many lines"):
        checked_message("a\n" * 61)
    assert checked_message("ok") == "ok"


@pytest.mark.parametrize("bad", ["-5m", "abc", "", "0", "5x", "1e9", "nan", "--1"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_duration(bad)


def test_durations() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("10m") == 600
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2d") == 172800
    assert parse_duration("0", allow_zero=True) == 0
