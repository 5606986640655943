"""Making untrusted text safe to put on someone's terminal.

Escape and control sequences (ESC, CSI, OSC, DCS, C1 controls, bare CR, backspace) could
move the cursor, rewrite what the user sees, set the window title or the clipboard
(OSC 52). Everything that is not printable text goes: whole escape sequences are dropped,
any other control or format character (bidi overrides, zero-width marks) too; invalid
UTF-8 becomes U+FFFD. Only letters, marks, numbers, punctuation, symbols, spaces and line
breaks remain.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidArgument

MAX_MESSAGE_CHARS = 4000
MAX_MESSAGE_LINES = 60
TAB = "    "

# ESC-introduced sequences (7-bit) and their 8-bit C1 forms: CSI, OSC/DCS/APC/PM/SOS
# strings up to BEL or ST, and two-character escapes.
_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI
    r"|(?:\x1b[\]P_^X]|[\x90\x9d\x9e\x9f\x98])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # strings
    r"|\x1b[ -/]*[0-~]?"  # other escapes (charset, keypad, RIS...)
)
_KEEP_CATEGORIES = ("L", "M", "N", "P", "S", "Zs")


def _printable(ch: str) -> str:
    if ch == "\n":
        return ch
    if ch == "\t":
        return TAB
    if ch in "\u2028\u2029":
        return "\n"
    cat = unicodedata.category(ch)
    if cat.startswith(_KEEP_CATEGORIES) or cat == "Zs":
        return ch if cat != "Zs" else " "
    return ""


def ascii_text(text: str) -> str:
    """``text`` in printable ASCII: accents dropped (é → e), compatibility forms folded
    (ﬁ → fi), anything else '?'; line breaks kept. For a terminal that is not in UTF-8
    mode: there the bytes of UTF-8 characters (0x80-0x9F among them: 0x9B is CSI) would
    be taken for control characters."""
    folded = unicodedata.normalize("NFKD", text)
    return "".join(
        c if c == "\n" or " " <= c <= "~" else "?"
        for c in folded
        if not unicodedata.combining(c)
    )


def clean_text(text: str | bytes, *, ascii_only: bool = False) -> str:
    """Printable-only text: no escape sequences, controls or format characters.

    Line breaks (LF, CRLF, a bare CR) become ``\\n``; tabs become spaces; trailing
    whitespace on each line is removed. ``ascii_only``: the result is ``ascii_text``,
    for terminals that are not in UTF-8 mode (where bytes 0x80-0x9F are C1 controls).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SEQUENCES.sub("", text)
    out = "".join(_printable(ch) for ch in text)
    if ascii_only:
        out = ascii_text(out)
    return "\n".join(line.rstrip() for line in out.split("\n")).strip("\n")


def checked_message(text: str | bytes, *, ascii_only: bool = False) -> str:
    """clean_text, refusing a message that is empty or too long once cleaned."""
    raw_len = len(text)
    if raw_len > MAX_MESSAGE_CHARS * 4:
        raise InvalidArgument(
            f"the message is too long ({raw_len} characters; at most {MAX_MESSAGE_CHARS})"
        )
    clean = clean_text(text, ascii_only=ascii_only)
    if not clean.strip():
        raise InvalidArgument("the message is empty (nothing printable is left)")
    if len(clean) > MAX_MESSAGE_CHARS:
        raise InvalidArgument(
            f"the message is too long ({len(clean)} characters; at most {MAX_MESSAGE_CHARS})"
        )
    if clean.count("\n") + 1 > MAX_MESSAGE_LINES:
        raise InvalidArgument(
            f"the message has too many lines ({clean.count(chr(10)) + 1}; "
            f"at most {MAX_MESSAGE_LINES})"
        )
    return clean


def tty_bytes(text: str, *, utf8: bool = True) -> bytes:
    """Bytes for a raw tty write: each line cleaned (blank lines kept), CRLF line ends;
    UTF-8 for a terminal in UTF-8 mode (termios IUTF8), else ASCII (``ascii_text``), so
    no byte 0x80-0xFF reaches a terminal that could take it for a C1 control."""
    out = "\n".join(clean_text(line, ascii_only=not utf8) for line in text.split("\n"))
    return out.replace("\n", "\r\n").encode("utf-8" if utf8 else "ascii")


def one_line(text: str | bytes, limit: int = 200) -> str:
    """Untrusted text as one short printable line (for an error shown to the admin):
    clean_text, line breaks and runs of spaces as one space, cut to ``limit`` characters
    with a trailing "..." marking the cut."""
    flat = " ".join(clean_text(text[: limit * 8]).split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 3)] + "..."
