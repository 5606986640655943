"""The procfs backend: utmp logins + /proc grouped by audit session id. Works anywhere.

A session's id is its audit session id (pam_loginuid gives every login a fresh one,
inherited by every process of the login, setsid/nohup/double fork included).

utmp records are of two kinds. **Connections** (sshd, login, a display manager) make
their session Active. **Multiplexer panes** (tmux's ``tmux(PID).%N``, screen's
``…:S.N``, written through libutempter) are terminals of the tmux/screen server they
name, never logins: the server belongs to the session whose audit id it carries, and
that session is Active only through a connection of its own or a client attached to
its server (backends/multiplexers.py), else Disc.

Sessions without an audit id are keyed by a process, ``p<PID>``, so ids never repeat:

* a utmp connection whose process has no audit id of its own (containers without audit,
  logins without pam_loginuid): ``p<login pid>``; members are the login process's
  descendants and the processes on its terminal *in the same mount and PID namespace*
  (a container's ``pts/0`` is another terminal than ours). Only processes that share the
  login's audit id (none, or the one it inherited) are candidates: the others belong to
  sessions of their own and are never read for it;
* a tmux/screen server without an audit id (root's tmux started outside any login):
  ``p<server pid>``, the server and what runs below it; Disc unless a client is attached.
  A login made inside one of its panes (ssh, login) has an audit id and is a session of
  its own, so signing it out ends only that login.

:meth:`ProcfsBackend.overview` leaves the process lists of ``p…`` sessions out (finding
them means reading every candidate process; the tables of qwinsta/quser do not show
them); everything else, ``current`` included, is as in :meth:`sessions`.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from datetime import datetime

from ..errors import SourceError
from ..linux import mux, proc, tty, utmp
from ..linux.accounts import user_name, user_uid
from ..model import ProcessRef, Session, State
from . import desktops
from .base import Backend, DisconnectReport
from .multiplexers import (
    Draft,
    Servers,
    assemble,
    below,
    is_mux_only,
    mux_only_session,
    named_servers,
)

NO_AUDIT_PREFIX = "p"


def session_type(service: str, line: str) -> str:
    """Kind of session: ssh, tty (local text terminal), x11, or unspecified."""
    if service == "sshd":
        return "ssh"
    if line.startswith(":"):
        return "x11"
    if line:
        return "tty"
    return "unspecified"


def protocol_of(service: str, line: str) -> str:
    """How the user reaches the session: ssh, local (a console), or '' if not known."""
    if service == "sshd":
        return "ssh"
    return "local" if tty.is_console(line) else ""


class ProcfsBackend(Backend):
    """Sessions from utmp and /proc; see the module docstring."""

    name = "procfs"

    def __init__(
        self,
        proc_root: str = proc.PROC,
        utmp_path: str = utmp.UTMP_PATH,
        wtmp_path: str = utmp.WTMP_PATH,
    ) -> None:
        self.proc_root = proc_root
        self.utmp_path = utmp_path
        self.wtmp_path = wtmp_path
        self._warnings: list[str] = []
        self._id_cache: dict[int, int] | None = None
        self._ids_lock = threading.Lock()  # one listing at a time uses/renews the id cache

    def warnings(self) -> list[str]:
        return list(self._warnings)

    # -- reading -----------------------------------------------------------------------

    def _logins(self) -> list[utmp.UtmpEntry]:
        try:
            entries, warnings = utmp.user_processes(self.utmp_path)
        except OSError as exc:
            raise SourceError(f"cannot read {self.utmp_path}: {exc.strerror}") from exc
        self._warnings.extend(warnings)
        return entries

    def _owner_chain(self, pid: int, asid: int, audit: dict[int, int]) -> int | None:
        """Steps from ``pid`` up to where audit session ``asid`` began, None if inherited.

        A login owns its audit id when walking up its parents leaves the id (the login
        process or an ancestor inside the same id set it). Reaching the top of this PID
        namespace with the id unchanged means it came from outside (a container whose
        init inherited it).
        """
        steps = 0
        while True:
            st = proc.stat(pid, self.proc_root)
            if st is None or st.ppid == 0:
                return None  # gone, or the top of this PID namespace still has the id
            if audit.get(st.ppid) != asid:
                return steps  # PID 1 included: getty's login is a child of init
            pid = st.ppid
            steps += 1
            if steps > 4096:
                return None

    def _plausible(self, entry: utmp.UtmpEntry, btime: float) -> bool:
        """The login process is alive, not younger than its record, and, if it has a
        login uid, it is the entry's user."""
        if proc.alive_since(entry.pid, entry.login_time, btime, proc=self.proc_root) is None:
            return False  # stale record: its login process is gone (or the PID reused)
        luid = proc.loginuid(entry.pid, self.proc_root)
        if luid is None:
            return True
        if user_uid(entry.user) != luid:
            self._warnings.append(
                f"{self.utmp_path}: skipped record for {entry.user!r} on {entry.line!r}: "
                f"its process {entry.pid} belongs to uid {luid}"
            )
            return False
        return True

    def sessions(self) -> list[Session]:
        return self._listing(members=True)

    def overview(self) -> list[Session]:
        return self._listing(members=False)

    def _listing(self, members: bool) -> list[Session]:
        self._warnings = []
        now = time.time()
        btime = proc.boot_time(self.proc_root)
        entries = self._logins()
        connections = [e for e in entries
                       if mux.utmp_kind(e.host) is None and self._plausible(e, btime)]
        loose = named_servers(entries, btime, self.proc_root)  # pane records, screen dirs
        unset: list[int] = []
        audit = self._audit_ids(connections, unset)
        groups: dict[int, list[int]] = defaultdict(list)
        for pid, asid in audit.items():
            groups[asid].append(pid)

        by_audit: dict[int, list[tuple[int, utmp.UtmpEntry]]] = defaultdict(list)
        no_audit: dict[int, list[utmp.UtmpEntry]] = defaultdict(list)
        for entry in connections:
            own = audit.get(entry.pid)
            depth = None if own is None else self._owner_chain(entry.pid, own, audit)
            if own is not None and depth is not None:
                by_audit[own].append((depth, entry))
            else:
                no_audit[entry.pid].append(entry)

        servers = Servers(self.proc_root)
        refs_of: dict[int, list[ProcessRef]] = {}
        views_of: dict[int, list[mux.ServerView]] = {}
        ours = _pid_namespace("self", self.proc_root)
        for asid, pids in groups.items():
            refs = self._refs(pids)
            if refs and self._here(refs, ours):
                refs_of[asid] = refs
                views_of[asid] = servers.among(refs)
        loose_views = [v for v in (servers.read(pid, kind) for pid, kind in loose.items()
                                   if pid not in audit) if v is not None]
        servers.settle()

        me = os.getpid()
        drafts: list[Draft] = []
        no_audit_pids: set[int] = set()
        if no_audit or loose_views:
            found = self._no_audit_drafts(no_audit, loose_views, audit, groups, unset,
                                          servers, members, btime, now, me)
            for draft in found:
                no_audit_pids.update(r.pid for r in draft.session.processes)
            drafts.extend(found)
        for asid, refs in refs_of.items():
            if no_audit_pids:  # members of p-sessions that carry an inherited id
                refs = [r for r in refs if r.pid not in no_audit_pids]
                if not refs:
                    continue
            entries = [
                e for _, e in sorted(by_audit.get(asid, []), key=lambda d: (d[0], d[1].login_time))
            ]
            views = [servers.views[v.pid] for v in views_of[asid]]
            drafts.append(self._audit_draft(asid, refs, entries, views, btime, now, me))
        out = assemble(drafts, now, self.proc_root)
        out.sort(key=_sort_key)
        return desktops.enrich(out)

    def _here(self, refs: list[ProcessRef], ours: str | None) -> bool:
        """True unless every process of the group runs in another PID namespace: a
        container's logins are that system's sessions (its own users, its own utmp), not
        this one's. Unreadable namespaces (another user's, for a non-root caller) count as
        ours."""
        if ours is None:
            return True
        for r in sorted(refs, key=lambda r: (r.start_ticks, r.pid)):
            ns = _pid_namespace(r.pid, self.proc_root)
            if ns is None or ns == ours:
                return True
        return False

    # (remember_ids / _trusted / _audit_ids: the id cache of long-running callers)

    def remember_ids(self) -> bool:
        """Keep PID → audit id between listings (for a long-running caller such as the
        policy daemon), so later listings read only PIDs that may be new.

        A cached PID is trusted only if it cannot have been handed out again since the
        last listing: the kernel hands PIDs out cyclically, so with F forks since then
        (/proc/stat "processes") and the allocation cursor moved from c1 to c2
        (ns_last_pid), only PIDs in the cyclic range (c1, c2] can be new, unless F comes
        near pid_max (then nothing is trusted). Login processes (utmp) are always read
        afresh: a login process gets its id when it writes loginuid, and it is in utmp by
        the time it matters; its children are new PIDs, read anyway.
        """
        if proc.pid_counters(self.proc_root) is None:
            return False
        with self._ids_lock:
            if self._id_cache is None:
                self._id_cache = {}
                self._counters: tuple[int, int] | None = None
                self._pid_max = proc.pid_max(self.proc_root)
        return True

    def _trusted(self, logins: list[utmp.UtmpEntry]) -> dict[int, int]:
        cache, before = self._id_cache or {}, self._counters
        now = proc.pid_counters(self.proc_root)
        self._counters = now
        if not cache or before is None or now is None:
            return {}
        forks = now[0] - before[0]
        if forks < 0 or forks >= self._pid_max // 2:
            return {}
        c1, c2 = before[1], now[1]

        def maybe_new(pid: int) -> bool:
            return c1 < pid <= c2 if c1 <= c2 else (pid > c1 or pid <= c2)

        login_pids = {e.pid for e in logins}
        return {p: a for p, a in cache.items() if not maybe_new(p) and p not in login_pids}

    def _audit_ids(self, logins: list[utmp.UtmpEntry], unset: list[int]) -> dict[int, int]:
        """PID → audit id of every process that has one; ``unset`` gets the others."""
        if self._id_cache is None:
            return proc.audit_sessions(self.proc_root, workers=proc.default_workers(),
                                       unset=unset)
        trusted: dict[int, int] = {}

        def known() -> dict[int, int]:  # judged after the /proc listing
            trusted.update(self._trusted(logins))
            return trusted

        learned: dict[int, int] = {}
        with self._ids_lock:  # two threads listing at once must not mix cache and counters
            audit = proc.audit_sessions(self.proc_root, known=known, learned=learned)
            self._id_cache = learned  # every PID present now (unset ids included)
        unset.extend(p for p, a in learned.items() if a == proc.AUDIT_UNSET)
        return audit

    def _refs(self, pids: list[int]) -> list[ProcessRef]:
        return proc.live_refs(pids, self.proc_root)

    # -- sessions with an audit id -------------------------------------------------------

    def _audit_draft(
        self,
        asid: int,
        refs: list[ProcessRef],
        entries: list[utmp.UtmpEntry],
        views: list[mux.ServerView],
        btime: float,
        now: float,
        me: int,
    ) -> Draft:
        pids = {r.pid for r in refs}
        current = me in pids
        if entries:
            lines = tuple(dict.fromkeys(e.line for e in entries if e.line))
            s = self._login_session(str(asid), entries[0], lines, refs, now, current)
            return Draft(s, True, views)
        # No live login record: a tty-less session (ssh command, cron job) whose spawning
        # service still holds it, or what a finished login left behind (Disc). A
        # multiplexer server is never the connection, whoever its parent is.
        work = below((v.pid for v in views), refs)
        roots = [r for r in refs if r.ppid not in pids]
        spawned = [r for r in roots if r.ppid > 1 and r.pid not in work]
        leader = min(spawned or roots, key=lambda r: (r.start_ticks, r.pid))
        luid = proc.loginuid(leader.pid, self.proc_root)
        uid = luid if luid is not None else leader.uid
        service = leader.comm if spawned else ""
        s = Session(
            id=str(asid),
            name="",
            user=user_name(uid),
            uid=uid,
            state=State.ACTIVE if spawned else State.DISC,
            type=session_type(service, ""),
            service=service,
            login_time=datetime.fromtimestamp(
                proc.start_time(min(r.start_ticks for r in refs), btime)
            ).astimezone(),
            idle_seconds=None,
            leader_pid=leader.pid if spawned else None,
            processes=tuple(sorted(refs, key=lambda r: r.pid)),
            current=current,
            backend=self.name,
            protocol=protocol_of(service, ""),
        )
        return Draft(s, bool(spawned), views)

    def _login_session(
        self,
        sid: str,
        login: utmp.UtmpEntry,
        lines: tuple[str, ...],
        refs: list[ProcessRef],
        now: float,
        current: bool,
        service: str | None = None,
    ) -> Session:
        """An Active session from its (primary) utmp login record and its processes."""
        idles = [i for i in (tty.idle_seconds(line, now) for line in lines) if i is not None]
        if service is None:
            leader = next((r for r in refs if r.pid == login.pid), None)
            service = leader.comm if leader else ""
        uid = user_uid(login.user)
        return Session(
            id=sid,
            name=login.line,
            user=login.user,
            uid=uid if uid is not None else -1,
            state=State.ACTIVE,
            type=session_type(service, login.line),
            device=tty.device_path(login.line),
            remote_host=login.host,
            service=service,
            login_time=datetime.fromtimestamp(login.login_time).astimezone(),
            idle_seconds=min(idles) if idles else None,
            idle_source="tty" if idles else "",
            leader_pid=login.pid,
            processes=tuple(sorted(refs, key=lambda r: r.pid)),
            current=current,
            console=tty.is_console(login.line),
            ttys=lines,
            backend=self.name,
            protocol=protocol_of(service, login.line),
        )

    # -- sessions without an audit id ----------------------------------------------------

    def _no_audit_drafts(
        self,
        logins: dict[int, list[utmp.UtmpEntry]],
        views: list[mux.ServerView],
        audit: dict[int, int],
        groups: dict[int, list[int]],
        unset: list[int],
        servers: Servers,
        members: bool,
        btime: float,
        now: float,
        me: int,
    ) -> list[Draft]:
        out: list[Draft] = []
        tree = _Tree(self.proc_root, audit, groups, unset) if members else None
        mine = _ancestry(me, self.proc_root) if not members else set()
        claimed: set[int] = set()
        for view in views:
            view = servers.views[view.pid]
            refs: list[ProcessRef] = []
            if tree is not None:
                pids = tree.below(view.pid) - claimed
                claimed |= pids
                refs = self._refs(sorted(pids))
                current = me in pids
            else:
                current = view.pid in mine
            s = mux_only_session(view, refs, btime, self.name, current)
            out.append(Draft(s, False, [view]))
        for pid, entries in logins.items():
            entries = sorted(entries, key=lambda e: e.login_time)
            login = entries[0]
            lines = tuple(dict.fromkeys(e.line for e in entries if e.line))
            refs = []
            if tree is not None:
                pids = tree.login_members(pid, lines, claimed)
                claimed |= pids
                refs = self._refs(sorted(pids))
                current = me in pids
            else:
                current = pid in mine or _on_terminal(me, pid, lines, self.proc_root)
            st = proc.stat(pid, self.proc_root)
            s = self._login_session(f"{NO_AUDIT_PREFIX}{pid}", login, lines, refs, now, current,
                                    service=st.comm if st else "")
            out.append(Draft(s, True, []))
        return out

    # -- acting ------------------------------------------------------------------------

    def member_pids(self, session: Session, cache: dict[int, bool] | None = None) -> set[int]:
        if session.id.startswith(NO_AUDIT_PREFIX):
            return self._no_audit_members(session)
        asid = int(session.id)
        if cache is None:
            return {p for p, a in proc.audit_sessions(self.proc_root).items() if a == asid}
        hints = {p: asid if member else proc.AUDIT_UNSET for p, member in cache.items()}
        learned: dict[int, int] = {}
        found = proc.audit_sessions(self.proc_root, hints, learned)
        cache.update((p, a == asid) for p, a in learned.items())
        return {p for p, a in found.items() if a == asid}

    def _no_audit_members(self, session: Session) -> set[int]:
        leader = session.leader_pid or 0
        unset: list[int] = []
        audit = proc.audit_sessions(self.proc_root, unset=unset)
        groups: dict[int, list[int]] = defaultdict(list)
        for pid, asid in audit.items():
            groups[asid].append(pid)
        tree = _Tree(self.proc_root, audit, groups, unset)
        if is_mux_only(session):
            return tree.below(leader)
        return tree.login_members(leader, session.ttys, set())

    def is_member(self, session: Session, pid: int) -> bool | None:
        if session.id.startswith(NO_AUDIT_PREFIX):
            return None
        return proc.audit_session(pid, self.proc_root) == int(session.id)

    def session_of(self, pid: int, sessions: list[Session]) -> Session | None:
        asid = proc.audit_session(pid, self.proc_root)  # one read, whatever the count
        if asid is None:
            return None
        return next((s for s in sessions if s.id == str(asid)), None)

    def disconnects_itself(self, session: Session) -> bool:
        return desktops.disconnects_itself(session)

    def disconnect(self, session: Session) -> DisconnectReport | None:
        return desktops.disconnect(session)  # VNC desktops; None for the rest

    def close_login(self, session: Session) -> bool:
        return close_login_records(session, self.proc_root, self.utmp_path, self.wtmp_path)


class _Tree:
    """Parent/child and terminal facts of the processes that may belong to a session
    without an audit id: those sharing its audit id (none, or one it inherited). Each
    candidate's stat is read once, and only when a session asks for that group."""

    def __init__(self, proc_root: str, audit: dict[int, int], groups: dict[int, list[int]],
                 unset: list[int]) -> None:
        self.proc_root = proc_root
        self.audit = audit
        self.groups = groups
        self.unset = unset
        self._stats: dict[int | None, dict[int, proc.Stat]] = {}

    def _group(self, pid: int) -> dict[int, proc.Stat]:
        asid = self.audit.get(pid)
        if asid not in self._stats:
            pids = self.groups.get(asid, []) if asid is not None else self.unset
            stats = (proc.stat(p, self.proc_root) for p in pids)
            # alive by thread group: a Z leader with a live thread still runs (and forks)
            self._stats[asid] = {s.pid: s for s in stats
                                 if s is not None and proc.group_state(s, self.proc_root)
                                 not in proc.DEAD}
        return self._stats[asid]

    def below(self, root: int) -> set[int]:
        """``root`` and every candidate process below it."""
        stats = self._group(root)
        return below([root], stats.values()) if root in stats else set()

    def login_members(self, login: int, lines: tuple[str, ...], claimed: set[int]) -> set[int]:
        """A login's descendants and the processes on its terminals (same mount and PID
        namespace as the login), minus ``claimed`` and what runs under a multiplexer."""
        stats = self._group(login)
        if login not in stats:
            return set()
        roots = {login}
        ttys = {nr for nr in (tty.tty_nr(line) for line in lines) if nr}
        if ttys:
            ns = _namespaces(login, self.proc_root)
            for s in stats.values():
                if (s.tty_nr in ttys and s.pid not in claimed and ns is not None
                        and _namespaces(s.pid, self.proc_root) == ns):
                    roots.add(s.pid)
        servers = {s.pid for s in stats.values()
                   if s.pid != login and mux.server_kind(s.pid, s.comm, self.proc_root)}
        return below(roots, [s for p, s in stats.items() if p not in servers]) - claimed


def _namespaces(pid: int, proc_root: str) -> tuple[str, str] | None:
    """(mount, PID) namespace of a process; None if unreadable (then it never joins a
    session by terminal)."""
    try:
        return (os.readlink(f"{proc_root}/{pid}/ns/mnt"), os.readlink(f"{proc_root}/{pid}/ns/pid"))
    except OSError:
        return None


def _pid_namespace(pid: int | str, proc_root: str) -> str | None:
    try:
        return os.readlink(f"{proc_root}/{pid}/ns/pid")
    except OSError:
        return None


def _ancestry(pid: int, proc_root: str) -> set[int]:
    """``pid`` and its ancestors (how a listing without process lists knows 'current')."""
    out: set[int] = set()
    while pid > 0 and pid not in out and len(out) < 4096:
        out.add(pid)
        st = proc.stat(pid, proc_root)
        if st is None:
            break
        pid = st.ppid
    return out


def _on_terminal(pid: int, login: int, lines: tuple[str, ...], proc_root: str) -> bool:
    """True if ``pid`` runs on one of a login's terminals in the login's namespaces."""
    st = proc.stat(pid, proc_root)
    if st is None or st.tty_nr == 0 or st.tty_nr not in {tty.tty_nr(line) for line in lines}:
        return False
    ns = _namespaces(login, proc_root)
    return ns is not None and _namespaces(pid, proc_root) == ns


def close_login_records(
    session: Session,
    proc_root: str = proc.PROC,
    utmp_path: str = utmp.UTMP_PATH,
    wtmp_path: str = utmp.WTMP_PATH,
) -> bool:
    """Close the utmp records of a session whose processes died without doing it: its
    logins, and the pane/window records of its multiplexers."""
    closed = False
    try:
        entries, _ = utmp.user_processes(utmp_path)
    except OSError:
        return False
    servers = {m.pid for m in session.multiplexers}
    panes = {t for m in session.multiplexers for t in m.terminals}
    for entry in entries:
        kind = mux.utmp_kind(entry.host)
        if kind is None:
            ours = entry.pid == session.leader_pid and entry.line in session.ttys
        elif kind[0] == mux.TMUX:
            ours = entry.pid in servers and kind[1] == entry.pid
        else:
            ours = entry.line in panes
        if not ours or _alive(entry.pid, proc_root):
            continue  # not ours, or its process lives on: not ours to close
        closed |= utmp.close_login(entry, utmp_path, wtmp_path)
    return closed


def _alive(pid: int, proc_root: str) -> bool:
    """True if the process exists and one of its threads still runs."""
    st = proc.stat(pid, proc_root)
    return st is not None and proc.group_state(st, proc_root) not in proc.DEAD


def _sort_key(s: Session) -> tuple[int, int, str]:
    return (0 if s.id.isdigit() else 1, int(s.id) if s.id.isdigit() else 0, s.id)
