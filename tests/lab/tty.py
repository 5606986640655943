"""Terminal modes for tests: a pty in UTF-8 mode or not (termios IUTF8)."""

from __future__ import annotations

import termios

IUTF8 = getattr(termios, "IUTF8", 0o40000)  # c_iflag bit; missing from some Pythons


def set_iutf8(fd: int, on: bool) -> None:
    """Turn the terminal's UTF-8 input mode on or off (``stty [-]iutf8``)."""
    attrs = termios.tcgetattr(fd)
    attrs[0] = attrs[0] | IUTF8 if on else attrs[0] & ~IUTF8
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
