"""Sanitising text for terminals: property-based, down to the bytes a real pty shows."""

from __future__ import annotations

import os
import select
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lab.tty import set_iutf8

from sessionctl.actions.message import frame
from sessionctl.durations import parse_duration
from sessionctl.errors import InvalidArgument
from sessionctl.linux.ttywrite import write_tty
from sessionctl.sanitize import ascii_text, checked_message, clean_text, tty_bytes

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


def _shown_on_pty(text: str, utf8: bool) -> bytes:
    """Frame ``text`` as msg does, write it to a real pty in that mode, read what it shows."""
    master, slave = os.openpty()
    try:
        set_iutf8(slave, utf8)
        device = os.ttyname(slave)
        data = frame(checked_message(text), sender="root", sender_tty="pts/0", host="h",
                     when=datetime.now(), token=None)
        result = write_tty(device, data, owner_uid=os.getuid(), respect_mesg=False)
        assert result.status == "delivered", result
        shown = b""
        while select.select([master], [], [], 0.2)[0]:
            shown += os.read(master, 65536)
    finally:
        os.close(master)
        os.close(slave)
    return shown


@settings(max_examples=60, deadline=None)
@given(ESCAPY, st.booleans())
def test_no_escape_or_c1_byte_reaches_a_pty(text: str, utf8: bool) -> None:
    """Arbitrary text on a real pty: nothing but printable text arrives, in the tty's own
    encoding: valid UTF-8 on an IUTF8 tty, ASCII on an 8-bit one (where any byte
    0x80-0x9F, even inside a UTF-8 character, is a C1 control: 0x9B is CSI)."""
    if not clean_text(text).strip():
        return
    shown = _shown_on_pty(text, utf8)
    assert b"\x1b" not in shown
    if not utf8:
        assert all(b < 0x80 for b in shown), shown
    decoded = shown.decode("utf-8")  # valid UTF-8: bytes 0x80-0x9F only inside characters
    _no_controls(decoded)


@pytest.mark.parametrize("utf8", [True, False])
def test_each_tty_gets_its_own_encoding(utf8: bool) -> None:
    shown = _shown_on_pty("\u011b2J Pr\u030ci\u0301li\u0161 \ufb01x \u65e5 end", utf8)
    if utf8:
        assert "\u011b2J".encode() in shown and "\u65e5".encode() in shown
    else:
        assert b"e2J Prilis fix ? end" in shown, shown
        assert b"\x9b" not in shown


def test_ascii_text() -> None:
    shown = ascii_text("\u011b2J \u00c5ngstr\u00f6m \u00bd \u2014 \U0001f642")
    assert shown == "e2J Angstrom 1?2 ? ?"
    assert ascii_text("a\nb") == "a\nb"
    assert tty_bytes("x\n\ny", utf8=False) == b"x\r\n\r\ny"
    assert tty_bytes("\u011b", utf8=True) == "\u011b".encode()


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
