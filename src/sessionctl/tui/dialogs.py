"""Modal dialogs of the top screen: message, sign out, end process, help."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ..cli.render import printable
from ..durations import parse_duration
from ..errors import InvalidArgument

DIALOG_CSS = """
.dialog { width: 70; max-width: 100%; height: auto; max-height: 100%;
          border: thick $primary; background: $surface; padding: 0 1; }
.dialog .title { text-style: bold; color: $text; }
.dialog .warn { color: $warning; }
.dialog Input { margin: 0 0; }
.dialog Horizontal { height: auto; margin-top: 1; }
.dialog Button { margin-right: 1; min-width: 10; }
"""

WARN_DEFAULT = 300  # seconds of notice for a warned sign-out


class MessageDialog(ModalScreen[str | None]):
    """Ask for the text of a message to a session or user."""

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, target_label: str) -> None:
        super().__init__()
        self.target_label = target_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="message-dialog"):
            yield Label(f"Send a message to {printable(self.target_label)}", classes="title")
            yield Input(placeholder="message text (Enter sends)", id="message-text")
            with Horizontal():
                yield Button("Send", variant="primary", id="send")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#message-text", Input).focus()

    def _send(self) -> None:
        text = self.query_one("#message-text", Input).value.strip()
        if text:
            self.dismiss(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._send()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self._send()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SignOutDialog(ModalScreen[tuple[str, float, str] | None]):
    """Confirm a sign-out: warn first (logoff after a notice) or now; or cancel.

    Result: ("warn", seconds, message) or ("now", 0, "") or None.
    """

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, session_label: str, processes: int, can_warn: bool = True,
                 desktop: bool = False) -> None:
        super().__init__()
        self.session_label = session_label
        self.processes = processes
        self.can_warn = can_warn
        self.desktop = desktop

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="signout-dialog"):
            yield Label(f"Sign out {printable(self.session_label)}?", classes="title")
            if self.desktop:
                text = (f"The desktop's session manager is asked to log out first, so its "
                        f"applications are asked to save their work; whatever of its "
                        f"{self.processes} process(es) is left after the grace is ended. "
                        "Warning the user first gives them time to save.")
            else:
                text = (f"Its {self.processes} process(es) will be ended. Unsaved work in "
                        "them may be lost: programs that handle the hangup (editors) save, "
                        "others do not. Warning the user first gives them time to save.")
            yield Static(text, classes="warn")
            if self.can_warn:
                yield Label("Notice before the sign-out (e.g. 90s, 5m, 1h30m):")
                yield Input(value=f"{WARN_DEFAULT // 60}m", id="notice")
                yield Input(placeholder="message to the user (optional)", id="warn-message")
            with Horizontal():
                if self.can_warn:
                    yield Button("Warn, then sign out", variant="primary", id="warn")
                yield Button("Sign out now", variant="error", id="now")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#warn" if self.can_warn else "#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "now":
            self.dismiss(("now", 0.0, ""))
        elif event.button.id == "warn":
            try:
                notice = parse_duration(self.query_one("#notice", Input).value, what="notice")
            except InvalidArgument as exc:
                self.notify(printable(str(exc)), severity="error")
                return
            text = self.query_one("#warn-message", Input).value.strip()
            self.dismiss(("warn", notice, text))
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class EndProcessDialog(ModalScreen[bool]):
    """Confirm ending one process."""

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="end-dialog"):
            yield Label(f"End process {printable(self.label)}?", classes="title")
            yield Static(
                "It gets SIGTERM, then SIGKILL after 3 s. Unsaved work in it may be lost.",
                classes="warn",
            )
            with Horizontal():
                yield Button("End process", variant="error", id="end")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "end")

    def action_cancel(self) -> None:
        self.dismiss(False)


class DisconnectDialog(ModalScreen[bool]):
    """Confirm a disconnect (the connection ends, tmux/screen keep running)."""

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, label: str, kept: str) -> None:
        super().__init__()
        self.label = label
        self.kept = kept

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="disconnect-dialog"):
            yield Label(f"Disconnect {printable(self.label)}?", classes="title")
            yield Static(
                f"The user's connection ends; {printable(self.kept)} keep running and the "
                "session shows as Disc until the user logs in again and attaches.",
            )
            with Horizontal():
                yield Button("Disconnect", variant="warning", id="disconnect")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "disconnect")

    def action_cancel(self) -> None:
        self.dismiss(False)


HELP = """\
sessionctl top: who uses what on this machine

Up/Down PgUp/PgDn  move           Enter Space Right  expand / collapse
Left     collapse, go to parent   e    expand all / collapse all
s / S    next / previous sort     r    reverse order (or click a title)
m        message to the user or session under the cursor
l        sign out the session under the cursor (asks; offers a warning)
d        disconnect it: the connection ends, its tmux/screen keep running (asks)
k, Del   end the process under the cursor (asks)
p        PSS on/off (proportional memory; costs more to read)
?, F1    this help                q    quit

CPU% 100 = one core. RSS resident memory; PSS shared pages divided.
READ/s WRITE/s storage I/O; '*' some processes not readable (not root),
'-' not readable. IDLE since the last key on the session's terminal.
STATE Active, Idle (5 min+), Disc (no connection: login ended or
disconnected, processes or a detached tmux/screen left),
Warned (a sign-out is pending). Processes outside login sessions are
not shown. Figures cover the last refresh interval.

Press Escape, q or ? to close this help."""


class HelpScreen(ModalScreen[None]):
    """The key and column reference."""

    DEFAULT_CSS = DIALOG_CSS + "#help { width: 76; }"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close"),
        Binding("question_mark", "close", "Close"),
        Binding("f1", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Static(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
