"""Turning API errors into messages and exit codes: never a traceback for the user."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from ..errors import SessionctlError
from .args import INVALID, HelpRequested, UsageError


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
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # the last line of defence: a message, not a traceback
        if os.environ.get("SESSIONCTL_DEBUG"):
            raise
        print(f"{prog}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 70
