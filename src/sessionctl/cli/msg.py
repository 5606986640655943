"""msg (= sessionctl msg): send a message to sessions' terminals; sessionctl ack."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from ..actions.message import (
    DEFAULT_TIME,
    MAX_TIME,
    Delivery,
    MessageReport,
    acknowledge,
    send_message,
)
from ..errors import InvalidArgument
from ..sanitize import MAX_MESSAGE_CHARS
from . import fleet as fleet_cli
from .args import COMMON_WINDOWS_FLAGS, Parser, UsageError, add_common
from .render import emit
from .runner import main as main_of
from .runner import run

USAGE = f"""\
Sends a message to the terminals (and desktops) of one or more sessions.

MSG {{username | sessionname | sessionid | @filename | *}} [/SERVER:servername]
    [/TIME:seconds] [/V] [/W] [message]

  username            Every session of that user that has a terminal or desktop.
  sessionname         The session on that terminal (pts/3).
  sessionid           The session with that ID (see qwinsta).
  @filename           Every user, session name or id listed in the file (one per line).
  *                   Every session with a terminal or desktop.
  /SERVER:servername  The server (default: this one); also --server.
  /TIME:seconds       With /W: how long to wait for the acknowledgement (default {DEFAULT_TIME:g});
                      also --time.
  /V                  Report each delivery; also -v.
  /W                  Wait until the recipient acknowledges (they run `sessionctl ack`);
                      also -w, --wait.
  --json              Print what happened as JSON.
  --backend NAME      Where sessions come from: auto (default), procfs or logind.
  message             The text. None: it is read from standard input (at most
                      {MAX_MESSAGE_CHARS} characters once control sequences are removed).
  /?                  This help; also -h, --help.

Root reaches terminals whose user ran `mesg n`; other senders respect it.
msg says which sessions got the message. A user's sessions that nobody can read (Disc,
a nohup job, ssh host cmd: no terminal, no desktop) are skipped, not failures; name such
a session by its id to make it a target.
Exit status: 0 every target session saw the message (with /W: and acknowledged it);
1 a target session did not (the reason is printed), nothing matched, or a bad command
line; 2 (remote hosts) a host failed.
Same as: sessionctl msg [...]

{fleet_cli.FLEET_HELP}

{fleet_cli.SELECT_HELP}
  /W waits on every host at once; the exit status is 2 if a host failed.
Example: msg --servers web[01-50] --idle-over 2h '*' Please save your work"""

ACK_USAGE = """\
Acknowledges a message sent with msg /W to this session (all waiting messages, or the one
TOKEN names). The sender sees who acknowledged and from which session.

sessionctl ack [TOKEN]

  TOKEN               The token the message showed (default: every waiting message).
  -h, --help          This help.

Exit status: 0 acknowledged; 1 nothing was waiting, or refused."""


def _parser(prog: str) -> Parser:
    flags = {**COMMON_WINDOWS_FLAGS, "time": ("--time", True), "w": ("--wait", False)}
    parser = Parser(prog, flags)
    add_common(parser)
    parser.add_argument("-t", "--time", type=float, default=DEFAULT_TIME)
    parser.add_argument("-w", "--wait", action="store_true")
    fleet_cli.add_options(parser, selection=True)
    parser.add_argument("target")
    return parser


def _read_stdin() -> str:
    if sys.stdin is None:
        raise InvalidArgument("no message given and no standard input to read it from")
    if sys.stdin.isatty():
        print("Enter message to send; end message by pressing CTRL-D on a new line.",
              file=sys.stderr)
    data = sys.stdin.buffer.read(MAX_MESSAGE_CHARS * 4 + 1)
    return data.decode("utf-8", errors="replace")


def describe(d: Delivery) -> str:
    where = d.device or "(no terminal)"
    if d.ok:
        return f"Message sent to session {d.session_id} ({d.user}) on {where}."
    return f"Message NOT sent to session {d.session_id} ({d.user}) on {where}: {d.detail}"


def reached_lines(report: MessageReport) -> list[str]:
    """One line per target session that saw the message: where."""
    out = []
    for s in report.sessions:
        where = [d.device for d in report.deliveries if d.session_id == s.id and d.ok]
        if where:
            out.append(f"Message sent to session {s.id} ({s.user}) on {', '.join(where)}.")
    return out


def skipped_lines(report: MessageReport, everyone: bool = False) -> list[str]:
    """What was skipped (no terminal or desktop): each session, or a count for *."""
    if not report.skipped:
        return []
    if everyone:
        return [f"{len(report.skipped)} session(s) without a terminal or desktop skipped."]
    return [f"Session {s.id} ({s.user}, {s.state.value}) skipped: no terminal or desktop "
            "to show a message on." for s in report.skipped]


def split_message(
    argv: Sequence[str], value_options: set[str]
) -> tuple[list[str], list[str]]:
    """(options and target, message words): the message starts at the second plain word.

    Everything from there on is text, even words that look like flags (`see /tmp/x`).
    ``value_options``: the options whose next word is their value (from the parser).
    """
    head: list[str] = []
    seen_target = False
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            rest = list(argv[i + 1 :])
            if not seen_target and rest:
                return [*head, rest[0]], rest[1:]
            return head, rest
        if token.startswith(("-", "/")) and len(token) > 1 and not (
            token.startswith("/") and seen_target and ":" not in token and "/" in token[1:]
        ):
            head.append(token)
            if token in value_options and i + 1 < len(argv):
                head.append(argv[i + 1])
                i += 1
            i += 1
            continue
        if seen_target:
            return head, list(argv[i:])
        head.append(token)
        seen_target = True
        i += 1
    return head, []


def _body(prog: str, argv: Sequence[str]) -> int:
    parser = _parser(prog)
    head, words = split_message(argv, parser.value_options())
    ns = parser.parse(head)
    ns.message = words
    if not 0 < ns.time <= MAX_TIME:
        raise UsageError(f"/TIME must be between 1 and {MAX_TIME:g} seconds")
    if fleet_cli.wanted(ns):
        from .fleet_msg import remote_msg

        if ns.target.startswith("@"):
            raise UsageError("@filename targets are read on this machine; name users instead")
        text = " ".join(ns.message) if ns.message else _read_stdin()
        return remote_msg(prog, ns, text)
    if ns.user or ns.state or ns.idle_over or ns.older_than or ns.dry_run:
        raise UsageError("--user/--state/--idle-over/--older-than/--dry-run need remote hosts")
    text = " ".join(ns.message) if ns.message else _read_stdin()
    if ns.verbose and not ns.json:
        print(f"Sending message to {ns.target}" + (f", waiting up to {ns.time:g} s for an "
              "acknowledgement" if ns.wait else ""))
    progress = (lambda d: emit(describe(d))) if ns.verbose and not ns.json else None
    report = send_message(ns.target, text, wait=ns.wait, timeout=ns.time,
                          backend=ns.backend, progress=progress)
    if ns.json:
        emit(json.dumps(report.to_dict(), indent=2))
    else:
        if not ns.verbose:
            for line in reached_lines(report):
                emit(line)
        for line in skipped_lines(report, everyone=ns.target == "*"):
            emit(line)
        for d in report.deliveries:
            if not d.ok and not ns.verbose:
                emit(f"{prog}: {describe(d)}", sys.stderr)
        if ns.wait:
            for s in report.sessions:
                if s.id in report.acknowledged_by:
                    emit(f"Message to session {s.id} ({s.user}) acknowledged by "
                           f"{report.acknowledged_by[s.id]}.")
                elif report.reached(s.id):
                    emit(f"Message to session {s.id} ({s.user}) not acknowledged "
                           f"within {ns.time:g} s.")
    if not report.ok:
        return 1
    return 0 if not ns.wait or report.acknowledged else 1


def msg(argv: Sequence[str], prog: str = "msg") -> int:
    """msg command line → exit code."""
    return run(prog, USAGE, lambda: _body(prog, argv))


def _ack_body(prog: str, argv: Sequence[str]) -> int:
    parser = Parser(prog, {})
    parser.add_argument("token", nargs="?")
    ns = parser.parse(argv)
    replies = acknowledge(ns.token)
    if not replies:
        emit(f"{prog}: no message is waiting for an acknowledgement", sys.stderr)
        return 1
    accepted = 0
    for token, reply in replies:
        if reply.startswith("ok"):
            accepted += 1
            emit(f"Acknowledged message {token}.")
        else:
            emit(f"{prog}: message {token}: {reply}", sys.stderr)
    return 0 if accepted else 1


def ack(argv: Sequence[str], prog: str = "sessionctl ack") -> int:
    return run(prog, ACK_USAGE, lambda: _ack_body(prog, argv))


def main() -> None:
    """Console script entry point."""
    main_of("msg", lambda: msg(sys.argv[1:]))
