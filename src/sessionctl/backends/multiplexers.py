"""Multiplexers in the session model, for every Linux backend.

A tmux or screen server belongs to the session whose processes include it (audit id or
logind scope); its panes are that session's terminals, never logins of their own. The
state of a session is decided by real connections: its own (sshd, getty, a display
manager) or a client attached to one of its multiplexers from anywhere (another login of
the same user, another user through a shared socket). A session with neither is Disc.
When clients are attached, the session's idle time is the least idle of its own
terminals and its clients' terminals.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ..linux import mux, proc, tty, utmp
from ..linux.accounts import user_name
from ..model import Multiplexer, MuxClient, ProcessRef, Session, State


@dataclass
class Draft:
    """A session before its multiplexers' clients are placed: what its backend knows."""

    session: Session
    connected: bool  # has a live connection of its own
    views: list[mux.ServerView] = field(default_factory=list)


class Servers:
    """The multiplexer servers of one listing, each read once."""

    def __init__(self, proc_root: str = proc.PROC) -> None:
        self.proc_root = proc_root
        self.views: dict[int, mux.ServerView] = {}
        self._sockets: list[tuple[int, int, str]] | None = None

    def sockets(self) -> list[tuple[int, int, str]]:
        if self._sockets is None:
            self._sockets = mux.unix_sockets(self.proc_root)
        return self._sockets

    def read(self, pid: int, kind: str) -> mux.ServerView | None:
        """The server ``pid`` (read at most once per listing)."""
        if pid not in self.views:
            view = mux.read_server(pid, kind, self.proc_root, self.sockets())
            if view is None:
                return None
            self.views[pid] = view
        return self.views[pid]

    def among(self, refs: Iterable[ProcessRef]) -> list[mux.ServerView]:
        """The servers among a session's processes."""
        out = []
        for r in refs:
            kind = mux.server_kind(r.pid, r.comm, self.proc_root)
            if kind is not None:
                view = self.read(r.pid, kind)
                if view is not None:
                    out.append(view)
        return out

    def settle(self) -> None:
        """Fill in 'attached' for servers whose fd tables we could not read."""
        guesses = mux.guess_attached(self.views.values(), self.sockets())
        for pid, attached in guesses.items():
            self.views[pid] = replace(self.views[pid], attached=attached)


def pane_server(entry: utmp.UtmpEntry, btime: float, proc_root: str = proc.PROC
                ) -> tuple[int, str] | None:
    """(server PID, kind) of the live server a pane/window record names; None if the
    record is no pane's, or stale (its process gone, not that server any more, or younger
    than the record)."""
    kind = mux.utmp_kind(entry.host)
    if kind is None:
        return None
    st = proc.alive_since(entry.pid, entry.login_time, btime, proc=proc_root)
    if st is None:
        return None
    if kind[0] == mux.TMUX:  # ut_pid is the server
        if kind[1] != st.pid or mux.server_kind(st.pid, st.comm, proc_root) != mux.TMUX:
            return None
        return st.pid, mux.TMUX
    parent = proc.stat(st.ppid, proc_root)  # screen: ut_pid is the window's process
    if parent is None or mux.server_kind(parent.pid, parent.comm, proc_root) != mux.SCREEN:
        return None
    return parent.pid, mux.SCREEN


def named_servers(entries: Iterable[utmp.UtmpEntry], btime: float,
                  proc_root: str = proc.PROC) -> dict[int, str]:
    """Servers (PID → kind) named by utmp pane/window records and by screen's sockets we
    can list: how servers outside every session are found without reading every
    process."""
    out: dict[int, str] = {}
    for entry in entries:
        found = pane_server(entry, btime, proc_root)
        if found is not None:
            out[found[0]] = found[1]
    for pid in mux.screen_servers():
        if pid not in out:
            st = proc.stat(pid, proc_root)
            if st is not None and mux.server_kind(pid, st.comm, proc_root) == mux.SCREEN:
                out[pid] = mux.SCREEN
    return out


def below(roots: Iterable[int], processes: Iterable[proc.Stat | ProcessRef]) -> set[int]:
    """``roots`` and every process below them among ``processes`` (parent links)."""
    children: dict[int, list[int]] = {}
    for s in processes:
        children.setdefault(s.ppid, []).append(s.pid)
    out = set(roots)
    todo = list(out)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def mux_only_session(
    view: mux.ServerView, refs: list[ProcessRef], btime: float, backend: str, current: bool
) -> Session:
    """The session of a server that belongs to no login (started outside any: root's tmux
    from a service or a container shell). Keyed ``p<server pid>``; Disc until a client is
    attached. Its processes are the server and what runs below it."""
    return Session(
        id=f"p{view.pid}",
        name="",
        user=user_name(view.uid),
        uid=view.uid,
        state=State.DISC,
        type=view.kind,
        service=view.kind,
        login_time=_started(view.start_ticks, btime),
        leader_pid=view.pid,
        processes=tuple(sorted(refs, key=lambda r: r.pid)),
        current=current,
        backend=backend,
    )


def _started(ticks: int, btime: float):
    from datetime import datetime

    return datetime.fromtimestamp(proc.start_time(ticks, btime)).astimezone()


def is_mux_only(session: Session) -> bool:
    """True for the session of a server that belongs to no login (see mux_only_session)."""
    return session.service in (mux.TMUX, mux.SCREEN) and any(
        m.pid == session.leader_pid for m in session.multiplexers)


def assemble(drafts: list[Draft], now: float | None = None,
             proc_root: str = proc.PROC) -> list[Session]:
    """Sessions with their multiplexers, attached clients, state and idle time decided."""
    now = time.time() if now is None else now
    owner: dict[str, str] = {}
    for d in drafts:
        if d.connected:
            for line in d.session.ttys:
                owner.setdefault(line, d.session.id)
        for v in d.views:
            for line in v.terminals:
                owner.setdefault(line, d.session.id)
    by_id = {d.session.id: d.session for d in drafts}
    out = []
    for d in drafts:
        s = d.session
        if not d.connected and (s.name or s.ttys):
            # no connection: its terminal is gone (or already someone else's, e.g. logind
            # keeps a closing session's TTY): no name, terminals or idle time of its own
            s = replace(s, name="", device="", ttys=(), idle_seconds=None, idle_source="")
        if not d.views:
            out.append(s)
            continue
        muxes = []
        client_idle: list[float] = []
        others: list[str] = []
        attached_any = False
        for v in d.views:
            clients = []
            for line in v.client_ttys:
                sid = owner.get(line)
                idle = tty.idle_seconds(line, now)
                if idle is not None:
                    client_idle.append(idle)
                candidates = [r.pid for r in by_id[sid].processes
                              if mux.is_client(r.pid, r.comm, proc_root)] if sid else []
                clients.append(MuxClient(
                    pid=mux.client_pid(candidates, line, proc_root),
                    tty=line,
                    user=by_id[sid].user if sid else "",
                    session_id=sid,
                    activity=None if idle is None else now - idle,
                ))
                if sid and sid != s.id:
                    others.append(sid)
            attached = bool(v.attached)
            attached_any |= attached
            muxes.append(Multiplexer(v.kind, v.pid, v.name, attached, tuple(clients),
                                     v.terminals))
        state = s.state
        idle, source = s.idle_seconds, s.idle_source
        if d.connected:
            if client_idle and (idle is None or min(client_idle) < idle):
                idle, source = min(client_idle), "clients"
        elif attached_any:
            state = State.ACTIVE
            idle, source = (min(client_idle), "clients") if client_idle else (None, "")
        else:
            state = State.DISC
        out.append(replace(s, state=state, idle_seconds=idle, idle_source=source,
                           multiplexers=tuple(muxes),
                           attached_from=tuple(dict.fromkeys(others))))
    return out
