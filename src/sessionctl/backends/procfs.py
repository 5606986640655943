"""The procfs backend: utmp logins + /proc grouped by audit session id. Works anywhere.

A session's id is its audit session id (pam_loginuid gives every login a fresh one,
inherited by every process of the login, setsid/nohup/double fork included). A utmp
login whose process has no audit id of its own (containers without audit, logins
without pam_loginuid) becomes a session keyed ``p<login pid>`` whose members are the
login process's descendants and the processes on its tty.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import SourceError
from ..linux import proc, tty, utmp
from ..linux.accounts import user_name, user_uid
from ..model import ProcessRef, Session, State
from . import desktops
from .base import Backend, DisconnectReport

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


@dataclass
class _Login:
    """utmp logins that share one session key, the first one primary."""

    entries: list[utmp.UtmpEntry] = field(default_factory=list)


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

    def _plausible(self, entry: utmp.UtmpEntry) -> bool:
        """The login process is alive and, if it has a login uid, it is the entry's user."""
        if not _alive(entry.pid, self.proc_root):
            return False  # stale record: its login process is gone
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
        self._warnings = []
        now = time.time()
        logins = [e for e in self._logins() if self._plausible(e)]
        audit = self._audit_ids(logins)
        groups: dict[int, list[int]] = defaultdict(list)
        for pid, asid in audit.items():
            groups[asid].append(pid)

        by_audit: dict[int, list[tuple[int, utmp.UtmpEntry]]] = defaultdict(list)
        no_audit: list[utmp.UtmpEntry] = []
        for entry in logins:
            own = audit.get(entry.pid)
            depth = None if own is None else self._owner_chain(entry.pid, own, audit)
            if own is None or depth is None:
                no_audit.append(entry)
            else:
                by_audit[own].append((depth, entry))

        btime = proc.boot_time(self.proc_root)
        me = os.getpid()
        out: list[Session] = []
        for asid, pids in groups.items():
            refs = self._refs(pids)
            if not refs:
                continue
            entries = [
                e for _, e in sorted(by_audit.get(asid, []), key=lambda d: (d[0], d[1].login_time))
            ]
            out.append(self._audit_session(asid, refs, entries, btime, now, me))
        if no_audit:
            out.extend(self._no_audit_sessions(no_audit, now, me))
        out.sort(key=_sort_key)
        return desktops.enrich(out)

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

    def _audit_ids(self, logins: list[utmp.UtmpEntry]) -> dict[int, int]:
        if self._id_cache is None:
            return proc.audit_sessions(self.proc_root, workers=proc.default_workers())
        trusted: dict[int, int] = {}

        def known() -> dict[int, int]:  # judged after the /proc listing
            trusted.update(self._trusted(logins))
            return trusted

        learned: dict[int, int] = {}
        with self._ids_lock:  # two threads listing at once must not mix cache and counters
            audit = proc.audit_sessions(self.proc_root, known=known, learned=learned)
            self._id_cache = learned  # every PID present now (unset ids included)
        return audit

    def _refs(self, pids: list[int]) -> list[ProcessRef]:
        return proc.live_refs(pids, self.proc_root)

    def _audit_session(
        self,
        asid: int,
        refs: list[ProcessRef],
        entries: list[utmp.UtmpEntry],
        btime: float,
        now: float,
        me: int,
    ) -> Session:
        pids = {r.pid for r in refs}
        current = me in pids
        if entries:
            lines = tuple(dict.fromkeys(e.line for e in entries if e.line))
            return self._login_session(str(asid), entries[0], lines, refs, now, current)
        # No live login record: a tty-less session (ssh command, cron job) whose spawning
        # service still holds it, or what a finished login left behind (Disc).
        roots = [r for r in refs if r.ppid not in pids]
        spawned = [r for r in roots if r.ppid > 1]
        leader = min(spawned or roots, key=lambda r: (r.start_ticks, r.pid))
        luid = proc.loginuid(leader.pid, self.proc_root)
        uid = luid if luid is not None else leader.uid
        service = leader.comm if spawned else ""
        return Session(
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
        )

    def _login_session(
        self,
        sid: str,
        login: utmp.UtmpEntry,
        lines: tuple[str, ...],
        refs: list[ProcessRef],
        now: float,
        current: bool,
    ) -> Session:
        """An Active session from its (primary) utmp login record and its processes."""
        idles = [i for i in (tty.idle_seconds(line, now) for line in lines) if i is not None]
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
        )

    def _no_audit_sessions(
        self, entries: list[utmp.UtmpEntry], now: float, me: int
    ) -> list[Session]:
        stats = proc.all_stats(self.proc_root)
        out = []
        for entry in entries:
            member_pids = _tree_and_tty(entry, stats, self.proc_root)
            refs = self._refs(sorted(member_pids))
            lines = (entry.line,) if entry.line else ()
            out.append(
                self._login_session(
                    f"{NO_AUDIT_PREFIX}{entry.pid}", entry, lines, refs, now, me in member_pids
                )
            )
        return out

    # -- acting ------------------------------------------------------------------------

    def member_pids(self, session: Session, cache: dict[int, bool] | None = None) -> set[int]:
        if session.id.startswith(NO_AUDIT_PREFIX):
            leader = session.leader_pid or 0
            entry = utmp.UtmpEntry(
                utmp.USER_PROCESS, leader, session.name, b"", session.user, "", 0, 0.0, "", -1
            )
            stats = proc.all_stats(self.proc_root)
            return _tree_and_tty(entry, stats, self.proc_root)
        asid = int(session.id)
        if cache is None:
            return {p for p, a in proc.audit_sessions(self.proc_root).items() if a == asid}
        hints = {p: asid if member else proc.AUDIT_UNSET for p, member in cache.items()}
        learned: dict[int, int] = {}
        found = proc.audit_sessions(self.proc_root, hints, learned)
        cache.update((p, a == asid) for p, a in learned.items())
        return {p for p, a in found.items() if a == asid}

    def is_member(self, session: Session, pid: int) -> bool | None:
        if session.id.startswith(NO_AUDIT_PREFIX):
            return None
        return proc.audit_session(pid, self.proc_root) == int(session.id)

    def session_of(self, pid: int, sessions: list[Session]) -> Session | None:
        asid = proc.audit_session(pid, self.proc_root)  # one read, whatever the count
        if asid is None:
            return None
        return next((s for s in sessions if s.id == str(asid)), None)

    def disconnect(self, session: Session) -> DisconnectReport | None:
        return desktops.disconnect(session)  # VNC desktops; None for the rest

    def close_login(self, session: Session) -> bool:
        return close_login_records(session, self.proc_root, self.utmp_path, self.wtmp_path)


def close_login_records(
    session: Session,
    proc_root: str = proc.PROC,
    utmp_path: str = utmp.UTMP_PATH,
    wtmp_path: str = utmp.WTMP_PATH,
) -> bool:
    """Close the utmp records of a session whose login process died without doing it."""
    closed = False
    try:
        entries, _ = utmp.user_processes(utmp_path)
    except OSError:
        return False
    for entry in entries:
        if entry.pid == session.leader_pid and entry.line in session.ttys:
            if _alive(entry.pid, proc_root):
                continue  # the login process lives on: it is not ours to close
            closed |= utmp.close_login(entry, utmp_path, wtmp_path)
    return closed


def _alive(pid: int, proc_root: str) -> bool:
    """True if the process exists and is not a zombie."""
    st = proc.stat(pid, proc_root)
    return st is not None and st.state not in "ZX"


def _tree_and_tty(entry: utmp.UtmpEntry, stats: list[proc.Stat], proc_root: str) -> set[int]:
    """PIDs descending from a login process, plus processes whose controlling tty is its line."""
    children: dict[int, list[int]] = defaultdict(list)
    for s in stats:
        children[s.ppid].append(s.pid)
    tty_nr = _tty_nr(entry.line)
    members = {entry.pid} if any(s.pid == entry.pid for s in stats) else set()
    members.update(s.pid for s in stats if tty_nr and s.tty_nr == tty_nr)
    todo = list(members)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in members:
                members.add(child)
                todo.append(child)
    return members


def _tty_nr(line: str) -> int:
    path = tty.device_path(line)
    if not path:
        return 0
    try:
        rdev = os.stat(path).st_rdev
    except OSError:
        return 0
    major, minor = os.major(rdev), os.minor(rdev)
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def _sort_key(s: Session) -> tuple[int, int, str]:
    return (0 if s.id.isdigit() else 1, int(s.id) if s.id.isdigit() else 0, s.id)
