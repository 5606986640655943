"""`sessionctl`: one command with subcommands; the Windows-named commands are aliases."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from . import runner
from .args import HELP_TOKENS

USAGE = """\
See, warn and sign out login sessions on this machine or many (qwinsta, quser, logoff,
msg as on Windows, and more).

sessionctl COMMAND [ARGS...]
sessionctl --version | --help | help COMMAND

Commands:
  status                what answers here and how many sessions there are
  query session [...]   list sessions (same as qwinsta)
  query user [...]      list users' sessions (same as quser)
  qwinsta [...]         same as query session
  quser [...]           same as query user
  logoff [...]          sign a session out completely (same as logoff);
                        --notice 10m warns first and counts down
  users [...]           CPU, memory and disk use per user, session and process
  top [...]             interactive Users screen (expand, sort, message, sign out)
  msg [...]             send a message to sessions' terminals (same as msg)
  ack [TOKEN]           acknowledge a message sent with msg /W
  disconnect [...]      end a session's connection, keep its tmux/screen running
                        (same as tsdiscon)
  close-connections --servers NODESET   close sessionctl's reused SSH connections
                        to those hosts (was: disconnect --servers)
  postpone [DURATION]   push back a sign-out announced for your session
  cancel ID             cancel a warned logoff
  pending               list warned logoffs counting down
  daemon --config FILE  enforce the idle-session policy (--once, --dry-run)
  policy check FILE     validate a policy and show what each session would get
  metrics               session and policy metrics (Prometheus text format)
  report [--since 7d]   what the policy's sign-outs reclaimed, per rule and user

Run 'sessionctl COMMAND --help' for a command's options; man sessionctl, man qwinsta...
Exit status: 0 done; 1 refused, not found, not (fully) done, or a bad command line;
2 a remote host failed; 70 an internal error."""

QUERY_USAGE = """\
Lists sessions (query session = qwinsta) or users' sessions (query user = quser).

sessionctl query {session | user} [username | sessionname | sessionid] [/SERVER:name]
                 [/V] [--json] [--servers NODESET ...]

Run 'sessionctl query session --help' or 'sessionctl query user --help' for the options."""


#: command → (module under sessionctl.cli, function); a command's module is imported only
#: when it runs, so one command's platform needs never stop another from starting.
COMMANDS: dict[str, tuple[str, str]] = {
    "status": ("status", "status"),
    "qwinsta": ("query", "qwinsta"),
    "quser": ("query", "quser"),
    "logoff": ("logoff", "logoff"),
    "users": ("users", "users"),
    "top": ("top", "top"),
    "msg": ("msg", "msg"),
    "ack": ("msg", "ack"),
    "postpone": ("pending", "postpone"),
    "cancel": ("pending", "cancel"),
    "pending": ("pending", "pending"),
    "daemon": ("policy", "daemon"),
    "policy": ("policy", "policy"),
    "disconnect": ("disconnect", "disconnect"),
    "close-connections": ("fleet_close", "close_connections"),
    "metrics": ("metrics", "metrics"),
    "report": ("metrics", "report"),
}
#: what needs Linux (unix sockets, fork, signals, ssh control sockets): refused on Windows
LINUX_ONLY = {"ack", "postpone", "cancel", "pending", "daemon", "close-connections", "top",
              "metrics", "report"}


def _command(name: str) -> Callable[[Sequence[str], str], int]:
    module, function = COMMANDS[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)


def _usage_error(prog: str, usage: str, message: str) -> int:
    from .args import INVALID
    from .runner import short_usage

    print(f"{INVALID}\n{prog}: {message}\n{short_usage(prog, usage)}", file=sys.stderr)
    return 1


def dispatch(argv: Sequence[str]) -> int:
    """Run one sessionctl command line; return the exit code."""
    if not argv or argv[0] in HELP_TOKENS:
        print(USAGE)
        return 0
    if argv[0] in ("-V", "--version"):
        from .. import __version__

        print(f"sessionctl {__version__}")
        return 0
    head, rest = argv[0], list(argv[1:])
    if head == "help":  # sessionctl help [COMMAND [SUBCOMMAND]]
        return dispatch([*rest, "--help"]) if rest else dispatch([])
    if head == "query":
        kinds = {"session": "qwinsta", "user": "quser"}
        if rest and rest[0] in HELP_TOKENS:
            print(QUERY_USAGE)
            return 0
        if not rest or rest[0].lower() not in kinds:
            what = f"unknown query {rest[0]!r}" if rest else "query what: session or user?"
            return _usage_error("sessionctl query", QUERY_USAGE, what)
        head, rest, prog = kinds[rest[0].lower()], rest[1:], f"sessionctl query {rest[0].lower()}"
    else:
        prog = f"sessionctl {head}"
    if head not in COMMANDS:
        return _usage_error("sessionctl", USAGE, f"unknown command {head!r}")
    if sys.platform == "win32" and head in LINUX_ONLY:
        print(f"{prog}: not supported on Windows", file=sys.stderr)
        return 1
    return _command(head)(rest, prog)


def main() -> None:
    """Console script entry point."""
    runner.main("sessionctl", lambda: dispatch(sys.argv[1:]))
