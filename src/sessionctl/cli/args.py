"""Windows-style (/server:X, /v, /?) and POSIX (--server X, -v, --help) command lines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import InvalidArgument

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (startup time)
if TYPE_CHECKING:
    from typing import NoReturn

INVALID = "Invalid parameter(s)"
HELP_TOKENS = ("/?", "-h", "--help")


class UsageError(Exception):
    """A command line that does not parse; the front end prints INVALID and the usage."""


class HelpRequested(Exception):
    """/? or --help was given."""


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so every front end controls its output."""

    def __init__(self, prog: str, windows_flags: dict[str, tuple[str, bool]]) -> None:
        super().__init__(prog=prog, add_help=False, allow_abbrev=False, exit_on_error=False)
        self.windows_flags = {"?": ("--help", False), **windows_flags}
        self.add_argument("-h", "--help", action="store_true")

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def translate(self, argv: Sequence[str]) -> list[str]:
        """Rewrite /flag and /flag:value tokens into their POSIX spellings.

        A parser with no Windows flags (a sessionctl-only command) leaves tokens that
        start with '/' alone, except `/?`: they are paths.
        """
        if len(self.windows_flags) == 1:
            return ["--help" if token == "/?" else token for token in argv]
        out: list[str] = []
        value_next = False
        for token in argv:
            if value_next or not token.startswith("/") or len(token) < 2:
                action = self._option_string_actions.get(token)
                value_next = not value_next and action is not None and action.nargs != 0
                out.append(token)
                continue
            key, sep, value = token[1:].partition(":")
            spec = self.windows_flags.get(key.lower())
            if spec is None:
                raise UsageError(f"unknown option {token}")
            option, takes_value = spec
            if takes_value != bool(sep) or (takes_value and not value):
                raise UsageError(
                    f"option {token} " + ("needs a value" if takes_value else "takes no value")
                )
            out.extend([option, value] if takes_value else [option])
        return out

    def value_options(self) -> set[str]:
        """Option strings that take a value (--time 5), as this parser defines them."""
        return {o for a in self._actions if a.nargs != 0 for o in a.option_strings}

    def wants_help(self, argv: Sequence[str]) -> bool:
        """/?, -h or --help as an option (not as the value of one, nor after --)."""
        takes_value = self.value_options()
        value_next = False
        for token in argv:
            if token == "--" and not value_next:
                return False
            if not value_next and token in HELP_TOKENS:
                return True
            value_next = not value_next and token in takes_value
        return False

    def _check_options(self, tokens: Sequence[str]) -> None:
        """An unknown option is the error to report, before any missing argument."""
        takes_value = self.value_options()
        value_next = False
        for token in tokens:
            if token == "--" and not value_next:
                return
            option = token.split("=", 1)[0]
            unknown = option.startswith("-") and option not in self._option_string_actions
            if not value_next and len(option) > 1 and unknown:
                raise UsageError(f"unknown option {token}")
            value_next = not value_next and token in takes_value

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        """Parse; raise HelpRequested (help wins over every other problem) or UsageError."""
        if self.wants_help(argv):
            raise HelpRequested
        tokens = self.translate(argv)
        self._check_options(tokens)
        try:
            ns = self.parse_args(tokens)
        except argparse.ArgumentError as exc:
            raise UsageError(str(exc)) from None
        if ns.help:
            raise HelpRequested
        return ns


def add_common(parser: Parser) -> None:
    """Options every session command takes."""
    parser.add_argument("--server", metavar="NAME")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--json", action="store_true")
    add_backend(parser)


def add_backend(parser: Parser) -> None:
    """--backend NAME, NAME one of the registered backends (or auto)."""
    from ..backends import names

    parser.add_argument("--backend", choices=names(), metavar="NAME")


COMMON_WINDOWS_FLAGS = {"server": ("--server", True), "v": ("--verbose", False)}


def is_local_server(name: str | None) -> bool:
    """True if /server names this machine."""
    if name is None:
        return True
    import socket

    local = {
        "localhost",
        ".",
        "127.0.0.1",
        "::1",
        socket.gethostname().lower(),
        socket.getfqdn().lower(),
    }
    return name.lower() in local


def require_local(name: str | None) -> None:
    """Raise unless /server names this machine (remote servers come with fleet support)."""
    if not is_local_server(name):
        raise InvalidArgument(
            f"Error opening Terminal server {name}: remote servers are not supported yet"
        )


def parse_session_command(
    parser: Parser, argv: Sequence[str], *, allow_remote: bool = False
) -> argparse.Namespace:
    """Parse a session command line: options, a local /server (unless the command runs
    remotely too: ``allow_remote``) and a well-formed target."""
    ns = parser.parse(argv)
    if not allow_remote:
        require_local(getattr(ns, "server", None))
    if ns.target is not None:
        from ..validate import check_target

        try:
            check_target(ns.target)
        except InvalidArgument as exc:
            raise UsageError(str(exc)) from None
    return ns


def say(prog: str, message: str) -> None:
    """A message on stderr, prefixed with the command's name."""
    print(f"{prog}: {message}", file=sys.stderr)


def checked_interval(seconds: float, low: float = 0.1, high: float = 60.0,
                     flag: str = "--interval") -> float:
    """A measuring interval in [low, high] seconds, else a UsageError (NaN too)."""
    if not low <= seconds <= high:
        raise UsageError(f"{flag} must be between {low:g} and {high:g} seconds")
    return seconds
