"""Turning API errors into messages and exit codes: never a traceback for the user.

Output that cannot be written (a full disk, a closed pipe, a closed stdout) is an
ordinary error too: one line on stderr, exit 1.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ..errors import SessionctlError
from ..host import WINDOWS
from ..sanitize import ascii_text
from .args import INVALID, HelpRequested, UsageError


class OutputError(OSError):
    """Our standard output could not be written."""


class _Stdout(io.RawIOBase):
    """fd 1 for sys.stdout, turning a failed write into OutputError."""

    def __init__(self, closed_at_start: bool) -> None:
        super().__init__()
        self.closed_at_start = closed_at_start

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return not self.closed_at_start and os.isatty(1)

    def write(self, data) -> int:  # any buffer (typeshed's ReadableBuffer)
        if self.closed_at_start:
            raise OutputError(errno.EBADF, "standard output is closed")
        try:
            return os.write(1, data)
        except OSError as exc:
            raise OutputError(exc.errno, exc.strerror) from None


def _fill_std_fds() -> bool:
    """Give closed fds 0-2 /dev/null, so no file we open later takes their place (stdout
    gets a read-only one: writing to it fails). True if stdout was closed."""
    closed = set()
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            new = os.open(os.devnull, mode)  # the lowest free fd: this one
            if new != fd:
                os.dup2(new, fd)
                os.close(new)
            closed.add(fd)
    if 2 in closed or sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - lives as long as we do
    return 1 in closed


def _ascii_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: what cannot be ASCII becomes its ``ascii_text`` form."""
    assert isinstance(exc, UnicodeEncodeError)
    return ascii_text(exc.object[exc.start : exc.end]), exc.end


codecs.register_error("sessionctl-ascii", _ascii_fallback)


def _eight_bit(fd: int) -> bool:
    """True if ``fd`` is a terminal that does not decode UTF-8 (termios -iutf8; never on
    Windows, whose console is not a termios terminal)."""
    if WINDOWS or not os.isatty(fd):
        return False
    from ..linux.ttywrite import decodes_utf8

    return not decodes_utf8(fd)


def _install_stdout() -> None:
    """sys.stdout over fd 1 that reports failed writes as OutputError; ASCII on a
    terminal that is not in UTF-8 mode (stdout and stderr alike). A sys.stdout someone
    else put in place (a caller running the command in-process, a test's capture) is
    left as it is."""
    if sys.stdout is not sys.__stdout__:
        return
    closed = _fill_std_fds()
    old = sys.stdout
    raw = _Stdout(closed)
    eight_bit = not closed and _eight_bit(1)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding="ascii" if eight_bit else getattr(old, "encoding", None) or "utf-8",
        errors="sessionctl-ascii" if eight_bit else getattr(old, "errors", None) or "strict",
        line_buffering=raw.isatty(),
    )
    if _eight_bit(2) and isinstance(sys.stderr, io.TextIOWrapper):
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.reconfigure(encoding="ascii", errors="sessionctl-ascii")


def _output_failed(prog: str, exc: OSError) -> int:
    """One line on stderr; stdout then goes to /dev/null (nothing more to lose). Exit 1."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    raw = getattr(getattr(sys.stdout, "buffer", None), "raw", None)
    if isinstance(raw, _Stdout):
        raw.closed_at_start = False
    with contextlib.suppress(OSError, ValueError):
        print(f"{prog}: cannot write output: {exc.strerror or exc}", file=sys.stderr,
              flush=True)
    return 1


def main(prog: str, command: Callable[[], int]) -> NoReturn:
    """A console script's whole life: ``command`` with write errors as ordinary errors."""
    _install_stdout()
    try:
        code = command()
        sys.stdout.flush()
    except (OutputError, BrokenPipeError) as exc:
        code = _output_failed(prog, exc)
    sys.exit(code)


def _resume_countdowns(prog: str) -> None:
    """Root: resume warned logoffs whose countdown died with its supervisor (one line
    each on stderr). Never in the way of the command itself."""
    try:
        from ..actions.resume import resume_dead_countdowns

        resumed = resume_dead_countdowns(noticed_by=prog)
    except Exception:
        return
    from .render import printable

    for p in resumed:
        print(printable(f"{prog}: resumed the countdown of session {p.session_id} "
                        f"({p.user}); its worker had died"), file=sys.stderr)


def synopsis(usage: str) -> str:
    """The synopsis of a command's help: its second paragraph (the first says what the
    command does), or the first if that one starts with 'usage:'."""
    paragraphs = [p for p in usage.split("\n\n") if p.strip()]
    if not paragraphs:
        return ""
    first = paragraphs[0]
    if first.lower().startswith("usage:") or len(paragraphs) == 1:
        return first.removeprefix("usage: ")
    return paragraphs[1]


def short_usage(prog: str, usage: str) -> str:
    """What a bad command line gets: the synopsis and where the rest is."""
    windows = prog.split()[0] in ("qwinsta", "quser", "logoff", "msg", "tsdiscon")
    more = f"'{prog} /?' or '{prog} --help'" if windows else f"'{prog} --help'"
    lines = synopsis(usage).split("\n")
    body = "\n".join([lines[0], *(" " * 7 + line for line in lines[1:])])
    return f"Usage: {body}\nType {more} for the options."


def run(prog: str, usage: str, body: Callable[[], int], argv: Sequence[str] | None = None,
        *, resume: bool = True) -> int:
    """Run a command body, mapping every failure to a message and an exit code.

    As root, dead countdowns are resumed first (``resume=False``: not for `cancel`, which
    must be able to stop an overdue one without setting it off).

    Exit codes: 0 done; 1 refused, not found, not (fully) done, or a bad command line;
    2 a remote host failed (fleet); 70 an internal error; 130 interrupted.
    """
    del argv
    try:
        if resume:
            _resume_countdowns(prog)
        return body()
    except HelpRequested:
        print(usage)
        return 0
    except UsageError as exc:
        print(f"{INVALID}\n{prog}: {exc}\n{short_usage(prog, usage)}", file=sys.stderr)
        return 1
    except SessionctlError as exc:
        from .render import printable

        print(printable(str(exc)), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except (OutputError, BrokenPipeError) as exc:
        return _output_failed(prog, exc)
    except Exception as exc:  # the last line of defence: a message, not a traceback
        if os.environ.get("SESSIONCTL_DEBUG"):
            raise
        print(f"{prog}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 70
