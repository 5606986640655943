"""The Users screen: users with expandable sessions and processes, refreshed every second."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static

import sessionctl

from ..cli import usagefmt
from ..cli.render import printable
from ..errors import SessionctlError
from ..usage_model import SORT_KEYS, ProcessUsage, SessionUsage, UsageSnapshot, UserUsage
from .dialogs import (
    DisconnectDialog,
    EndProcessDialog,
    HelpScreen,
    MessageDialog,
    SignOutDialog,
)
from .rows import Row, build, parent_key

if TYPE_CHECKING:
    from ..actions.logoff import LogoffResult
    from ..actions.message import MessageReport
    from ..actions.process import EndResult
    from ..actions.reports import DisconnectResult
    from ..actions.schedule import PendingLogoff

MIN_WIDTH, MIN_HEIGHT = 60, 10

# The users table's columns (usagefmt.COLUMNS), one blank wider (cells have no padding);
# the first one, a tree here, also holds the indented sessions and processes.
TREE_TITLE, TREE_EXTRA = "USER / SESSION / PROCESS", 3
COLUMNS = [
    replace(c, title=TREE_TITLE, width=c.width + 1 + TREE_EXTRA) if c.key == "user"
    else replace(c, width=c.width + 1)
    for c in usagefmt.COLUMNS
]
WIDTHS = {c.key: c.width for c in COLUMNS}
RIGHT = {c.key for c in COLUMNS if c.right}
STATE_STYLE = {"Active": "green", "Idle": "yellow", "Disc": "bright_black",
               "Warned": "bold red"}
SORTABLE = [c.key for c in COLUMNS if c.key in SORT_KEYS]


class UsersTable(DataTable):
    """The table, with tree keys: Right/Space expand, Left collapses."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right", "app.expand", "Expand", show=False),
        Binding("space", "app.toggle_row", "Expand", show=False),
        Binding("left", "app.collapse", "Collapse", show=False),
    ]


class TopApp(App[None]):
    """`sessionctl top`."""

    TITLE = "sessionctl top"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #title { height: 1; background: $primary-background; color: $text; }
    #notes { height: auto; max-height: 3; color: $warning; }
    #toosmall { display: none; color: $error; text-style: bold; }
    UsersTable { height: 1fr; scrollbar-size-vertical: 1; }
    MessageDialog, SignOutDialog, EndProcessDialog, DisconnectDialog, HelpScreen {
        align: center middle; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("m", "message", "Msg"),
        Binding("l", "sign_out", "Sign out"),
        Binding("d", "disconnect", "Disconnect"),
        Binding("k,delete", "end_process", "End proc", key_display="k"),
        Binding("s", "sort_next", "Sort"),
        Binding("S", "sort_prev", "Sort back", show=False),
        Binding("r", "reverse", "Rev"),
        Binding("e", "expand_all", "Expand all"),
        Binding("p", "toggle_pss", "PSS", show=False),
    ]

    def __init__(
        self,
        *,
        target: str | None = None,
        interval: float = 1.0,
        backend: str | None = None,
        pss: bool = False,
        idle_after: float = 300.0,
        sort: str = "cpu",
        rescan: float = 5.0,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.sampler = sessionctl.UsageSampler(
            target, backend=backend, pss=pss, idle_after=idle_after, rescan=rescan
        )
        self.expanded: set[str] = set()
        self.sort = sort
        self.reverse = False
        self.snapshot: UsageSnapshot | None = None
        self.rows: list[Row] = []
        self.error = ""
        self.refreshes = 0
        self.outcomes: list[str] = []  # what each action did, newest last
        self._busy = False
        self._shown_pss: bool | None = None

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("sessionctl top: reading sessions ...", id="title")
        yield Static("", id="toosmall")
        yield UsersTable(id="table", cursor_type="row", cell_padding=0, zebra_stripes=False)
        yield Static("", id="notes")
        yield Footer()

    @property
    def table(self) -> UsersTable:
        return self.query_one("#table", UsersTable)

    def _columns(self) -> None:
        pss = self.sampler.pss
        if self._shown_pss == pss:
            return
        self._shown_pss = pss
        table = self.table
        table.clear(columns=True)
        for c in COLUMNS:
            if c.key == "pss" and not pss:
                continue
            label = Text(c.title, justify="right" if c.right else "left")
            table.add_column(label, width=c.width, key=c.key)
        self.rows = []

    async def on_mount(self) -> None:
        self._columns()
        self.table.focus()
        self._check_size()
        await self._sample(prime=True)
        self.set_interval(self.interval, self.tick)

    def on_resize(self) -> None:
        self._check_size()

    def _check_size(self) -> None:
        width, height = self.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        note = self.query_one("#toosmall", Static)
        note.update(
            f"Terminal too small ({width}x{height}); sessionctl top needs at least "
            f"{MIN_WIDTH}x{MIN_HEIGHT}. Enlarge it, or use 'sessionctl users'."
        )
        note.display = small
        self.table.display = not small

    # -- sampling ----------------------------------------------------------------------

    async def tick(self) -> None:
        await self._sample()

    async def _sample(self, prime: bool = False) -> None:
        if self._busy:
            return  # the previous reading is still running: skip this beat
        self._busy = True
        try:
            if prime:
                await asyncio.to_thread(self.sampler.prime)
            snap = await asyncio.to_thread(self.sampler.sample)
        except SessionctlError as exc:
            self.error = printable(str(exc))
        except Exception as exc:  # a bad reading must not end the screen
            self.error = printable(f"reading failed: {type(exc).__name__}: {exc}")
        else:
            self.error = ""
            self.snapshot = snap
            self.refreshes += 1
        finally:
            self._busy = False
        self.redraw()

    # -- drawing -----------------------------------------------------------------------

    def _cell(self, row: Row, key: str, width: int) -> Text:
        value = row.cells.get(key, "")
        if key == "user":
            mark = ""
            if row.kind in ("user", "session"):
                mark = "- " if row.expanded else "+ "
            text = "  " * row.depth + mark + value
            text = usagefmt.fit(text, width - 1)
            style = {"user": "bold", "session": "", "process": "", "more": "italic"}[row.kind]
            return Text(text, style=style, justify="left", no_wrap=True)
        style = ""
        if key == "state":
            style = STATE_STYLE.get(value, "")
        elif key == "cpu" and row.item is not None:
            pct = row.item.cpu_percent
            style = "bold red" if pct >= 80 else "yellow" if pct >= 20 else ""
        if row.kind == "process" and key != "cpu":
            style = style or "bright_black" if key == "state" else style
        return Text(usagefmt.fit(value, width - 1), style=style,
                    justify="right" if key in RIGHT else "left", no_wrap=True)

    def redraw(self) -> None:
        self._check_size()
        self._columns()
        snap = self.snapshot
        self._title(snap)
        self._notes(snap)
        if snap is None:
            return
        table = self.table
        rows = build(snap, self.expanded, self.sort, self.reverse)
        keys = [c.key for c in COLUMNS if c.key != "pss" or self.sampler.pss]
        widths = WIDTHS
        current = self.current_row()
        if [r.key for r in rows] == [r.key for r in self.rows]:
            for old, new in zip(self.rows, rows, strict=True):
                if old.cells != new.cells or old.expanded != new.expanded:
                    for k in keys:
                        if old.cells.get(k) != new.cells.get(k) or k == "user":
                            table.update_cell(new.key, k, self._cell(new, k, widths[k]))
            self.rows = rows
            return
        self.rows = rows
        table.clear()
        for r in rows:
            table.add_row(*(self._cell(r, k, widths[k]) for k in keys), key=r.key)
        if current is not None:
            index = next((i for i, r in enumerate(rows) if r.key == current.key), None)
            if index is None:
                parent = parent_key(current)
                index = next((i for i, r in enumerate(rows) if r.key == parent), None)
            if index is not None:
                table.move_cursor(row=index, animate=False)

    def _title(self, snap: UsageSnapshot | None) -> None:
        title = self.query_one("#title", Static)
        if snap is None:
            title.update("sessionctl top: reading sessions ...")
            return
        arrow = "^" if self.reverse else "v"
        name = next(c.title for c in COLUMNS if c.key == self.sort).split(" ")[0]
        nproc = sum(len(u.processes) for u in snap.users)
        cpu = sum(u.cpu_percent for u in snap.users)
        title.update(
            f" {time.strftime('%H:%M:%S')}  {len(snap.users)} users  {len(snap.sessions)} "
            f"sessions  {nproc} procs  CPU {cpu:.1f}%  sort {name} {arrow}  "
            f"every {self.interval:g}s"
        )

    def _notes(self, snap: UsageSnapshot | None) -> None:
        lines = []
        if self.error:
            lines.append(self.error)
        if snap is not None:
            pending = [s for s in snap.sessions if s.logoff_at is not None]
            if pending:
                lines.append(
                    "Pending sign-outs: "
                    + "; ".join(
                        f"{s.session.id} ({printable(s.session.user)}) "
                        + usagefmt.until(s.logoff_at)
                        for s in pending
                    )
                )
            lines.extend(printable(n) for n in snap.notes)
        notes = self.query_one("#notes", Static)
        notes.update("\n".join(lines))
        notes.display = bool(lines)

    # -- cursor and tree -----------------------------------------------------------------

    def current_row(self) -> Row | None:
        if not self.rows:
            return None
        index = self.table.cursor_row
        return self.rows[index] if 0 <= index < len(self.rows) else None

    def select(self, key: str) -> bool:
        """Put the cursor on the row with ``key`` (True if it is shown)."""
        index = next((i for i, r in enumerate(self.rows) if r.key == key), None)
        if index is None:
            return False
        self.table.move_cursor(row=index, animate=False)
        return True

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_toggle_row()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTABLE:
            self.reverse = not self.reverse if key == self.sort else False
            self.sort = key
            self.redraw()

    def action_toggle_row(self) -> None:
        row = self.current_row()
        if row is None or row.kind not in ("user", "session"):
            return
        self.expanded.symmetric_difference_update({row.key})
        self.redraw()

    def action_expand(self) -> None:
        row = self.current_row()
        if row is not None and row.kind in ("user", "session") and not row.expanded:
            self.expanded.add(row.key)
            self.redraw()

    def action_collapse(self) -> None:
        row = self.current_row()
        if row is None:
            return
        if row.expanded:
            self.expanded.discard(row.key)
        else:
            parent = parent_key(row)
            if parent is None:
                return
            self.expanded.discard(parent)
            self.redraw()
            self.select(parent)
            return
        self.redraw()

    def action_expand_all(self) -> None:
        if self.snapshot is None:
            return
        every = {f"u:{u.user}" for u in self.snapshot.users}
        every |= {f"s:{s.session.id}" for s in self.snapshot.sessions}
        self.expanded = set() if every <= self.expanded else every
        self.redraw()

    def _step_sort(self, step: int) -> None:
        index = SORTABLE.index(self.sort) if self.sort in SORTABLE else 0
        self.sort = SORTABLE[(index + step) % len(SORTABLE)]
        if self.sort == "pss" and not self.sampler.pss:
            self.sort = SORTABLE[(index + 2 * step) % len(SORTABLE)]
        self.redraw()

    def action_sort_next(self) -> None:
        self._step_sort(1)

    def action_sort_prev(self) -> None:
        self._step_sort(-1)

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.redraw()

    def action_toggle_pss(self) -> None:
        self.sampler.pss = not self.sampler.pss
        self.redraw()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # -- actions -------------------------------------------------------------------------

    def _done(self, text: str, error: bool = False) -> None:
        self.outcomes.append(text)
        self.notify(printable(text), severity="error" if error else "information",
                    timeout=8 if error else 5)

    def _run(self, what: str, call: Callable[[], str]) -> None:
        """Run an API call off the screen's thread; report its outcome when it ends."""

        async def work() -> None:
            try:
                text = await asyncio.to_thread(call)
            except SessionctlError as exc:
                self._done(f"{what}: {exc}", error=True)
            except Exception as exc:  # report, never crash the screen
                self._done(f"{what}: failed: {type(exc).__name__}: {exc}", error=True)
            else:
                self._done(text)
            self.sampler.rescan_now()
            await self._sample()

        self.run_worker(work(), group="actions")

    def _session_of(self, row: Row | None) -> str | None:
        """The session id a row stands for: its own, or a user's only session."""
        if row is None:
            return None
        if row.session is not None:
            return row.session.session.id
        if isinstance(row.item, UserUsage) and len(row.item.sessions) == 1:
            return row.item.sessions[0].session.id
        return None

    def action_message(self) -> None:
        row = self.current_row()
        if row is None or row.kind == "more":
            return
        if isinstance(row.item, UserUsage):
            target, label = row.item.user, f"user {row.item.user}"
        elif row.session is not None:
            s = row.session.session
            target, label = s.id, f"session {s.id} ({s.user} {s.name})".rstrip()
        else:
            return

        def sent(text: str | None) -> None:
            if text:
                self._run(f"message to {target}", lambda: _describe_message(
                    target, sessionctl.send_message(target, text)))

        self.push_screen(MessageDialog(label), sent)

    def _chosen_session(self) -> SessionUsage | None:
        """The session under the cursor (a user row with one session counts), or None
        (with a note when the row is a user with several)."""
        row = self.current_row()
        sid = self._session_of(row)
        if sid is None:
            if row is not None and row.kind == "user":
                self._done("this user has several sessions: expand and pick one", True)
            return None
        if self.snapshot is None:
            return None
        return next((s for s in self.snapshot.sessions if s.session.id == sid), None)

    def action_sign_out(self) -> None:
        sess = self._chosen_session()
        if sess is None:
            return
        s = sess.session
        sid = s.id
        label = f"session {s.id} ({s.user}{', ' + s.name if s.name else ''})"
        # a warned sign-out needs root (its countdown runs as root): offered only then
        can_warn = os.geteuid() == 0

        def chosen(choice: tuple[str, float, str] | None) -> None:
            if choice is None:
                return
            how, notice, text = choice
            if how == "warn" and can_warn:
                self._run(f"sign-out of {sid}", lambda: _describe_schedule(
                    sid, sessionctl.schedule_logoff(sid, notice, message=text or None)[0]))
            elif how == "now":
                self._run(f"sign-out of {sid}", sign_out_now)

        def sign_out_now() -> str:
            result = sessionctl.logoff(sid)
            if s.current and getattr(result, "ok", False):
                self.call_from_thread(self.exit)  # our own session has ended: so do we
            return _describe_logoff(sid, result)

        self.push_screen(SignOutDialog(label, len(sess.processes), can_warn,
                                       desktop=bool(s.display)), chosen)

    def action_disconnect(self) -> None:
        sess = self._chosen_session()
        if sess is None:
            return
        s = sess.session
        sid = s.id
        if not s.multiplexers:
            self._done(f"session {sid} has no tmux or screen: nothing would keep running "
                       "(sign it out with l)", True)
            return
        kept = ", ".join(f"{m.kind} {m.pid}" for m in s.multiplexers)
        label = f"session {s.id} ({s.user}{', ' + s.name if s.name else ''})"

        def chosen(yes: bool | None) -> None:
            if yes:
                self._run(f"disconnect of {sid}", lambda: _describe_disconnect(
                    sid, sessionctl.disconnect(sid)))

        self.push_screen(DisconnectDialog(label, kept), chosen)

    def action_end_process(self) -> None:
        row = self.current_row()
        p = row.item if row is not None else None
        if row is None or not isinstance(p, ProcessUsage) or row.session is None:
            if row is not None:
                self._done("put the cursor on a process to end it", True)
            return
        sid = row.session.session.id

        def chosen(yes: bool | None) -> None:
            if yes:
                self._run(f"ending {p.pid}", lambda: _describe_end(
                    sessionctl.end_process(p.pid, start_ticks=p.start_ticks, session_id=sid)))

        self.push_screen(EndProcessDialog(f"{p.pid} ({p.comm})"), chosen)


def _describe_message(target: str, report: MessageReport) -> str:
    counts = Counter(d.status for d in report.deliveries)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no terminal"
    return f"message to {target}: {summary}"


def _describe_schedule(sid: str, pending: PendingLogoff) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(pending.logoff_at))
    return f"session {sid} warned; sign-out at {when}"


def _describe_logoff(sid: str, result: LogoffResult) -> str:
    if result.ok:
        return f"session {sid} signed out in {result.seconds:.2f} s"
    return f"session {sid}: NOT fully signed out ({len(result.remaining)} process(es) left)"


def _describe_disconnect(sid: str, result: DisconnectResult) -> str:
    if result.ok:
        return f"session {sid} disconnected; {len(result.kept)} process(es) kept running"
    problems = "; ".join(result.problems or ["?"])
    return f"session {sid}: NOT fully disconnected: {problems}"


def _describe_end(result: EndResult) -> str:
    return f"process {result.pid}: {result.outcome}"
