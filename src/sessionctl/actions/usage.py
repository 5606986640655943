"""Sampling resource use per process, session and user (CPU %, memory, disk rates).

Membership comes from the backend's sessions (Session.processes): a user's figures are
the union of their sessions' processes. Processes outside every session (daemons, or
a user's processes without a login session) are not shown. Two readings ``interval``
seconds apart give the rates.

A sampler kept between calls (the top screen) looks at every process only every
``rescan`` seconds (a full ``sessions()``); in between, each sample re-reads the known
members, drops those that exited and places the processes created since the last
sample: the PIDs handed out since then (proc.pid_counters: forks since boot and the
last PID; PIDs are given out in turn), each asked once which session it is in. More
than NEW_LIMIT forks in one interval mean a full look; new logins wait for the next
one. Full looks themselves use the backend's id cache where it has one (procfs
remember_ids: only PIDs that may be new are read).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from ..backends import Backend, get_backend
from ..model import ProcessRef, Session
from ..usage_model import (
    IDLE_AFTER,
    Counters,
    ProcessUsage,
    SessionUsage,
    UsageSnapshot,
    group_by_user,
)

DEFAULT_INTERVAL = 1.0
MIN_INTERVAL = 0.1
MAX_INTERVAL = 3600.0
NEW_LIMIT = 4096  # more PIDs handed out than this between samples: look at everything


@dataclass
class _Reading:
    at: float  # monotonic
    btime_ticks: float  # the reader's clock (start_ticks) at the reading
    counters: dict[tuple[int, int], Counters]


class UsageSampler:
    """Successive readings of every session's processes; each sample() gives rates.

    ``pss``: also read PSS (/proc/PID/smaps_rollup; costs a page-table walk per
    process, so off by default). ``io``: read disk counters (/proc/PID/io).
    ``rescan``: seconds between full looks (0: every sample is one).
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        backend: Backend | str | None = None,
        pss: bool = False,
        io: bool = True,
        idle_after: float = IDLE_AFTER,
        rescan: float = 0.0,
    ) -> None:
        self.target = target
        self.backend = get_backend(backend)
        self.pss = pss
        self.io = io
        self.idle_after = idle_after
        self.rescan = rescan
        self._last: _Reading | None = None
        self._looked_at = 0.0
        self._counters: object | None = None
        self.reader = self.backend.counter_reader()
        if rescan > 0:
            self.backend.remember_ids()
        self.sessions: list[Session] = []
        self.full_looks = 0

    def _list(self) -> list[Session]:
        from ..api import sessions

        self._counters = self.reader.pid_marks() if self.rescan > 0 else None
        # sessions nobody is signed in to (Windows' services and listeners) are no user's
        found = [s for s in sessions(self.target, backend=self.backend) if s.user]
        self.full_looks += 1
        self._looked_at = time.monotonic()
        return found

    def rescan_now(self) -> None:
        """Make the next sample a full look (after acting on sessions, say)."""
        self._looked_at = 0.0

    def _update(self) -> list[Session] | None:
        """The last listing with the processes created since placed in their sessions;
        None if that cannot be told cheaply (a full look is needed)."""
        now = self.reader.pid_marks()
        if now is None or self._counters is None:
            return None
        new = self.reader.pids_since(self._counters, now, NEW_LIMIT)
        if new is None:
            return None
        self._counters = now
        known = {r.pid for s in self.sessions for r in s.processes}
        added: dict[str, list[ProcessRef]] = {}
        for pid in new:
            if pid in known:
                continue
            s = self.backend.session_of(pid, self.sessions)  # None for most (gone, threads)
            ref = self.reader.process_ref(pid) if s is not None else None
            if s is not None and ref is not None:
                added.setdefault(s.id, []).append(ref)
        return [
            replace(s, processes=s.processes + tuple(added[s.id])) if s.id in added else s
            for s in self.sessions
        ]

    def _read(self, found: list[Session]) -> tuple[_Reading, int, int]:
        counters: dict[tuple[int, int], Counters] = {}
        unreadable = vanished = 0
        at = time.monotonic()
        now_ticks = self.reader.now_ticks()
        for s in found:
            for ref in s.processes:
                c, denied = self.reader.read(ref.pid, ref.start_ticks, io=self.io, pss=self.pss)
                unreadable += denied
                if c is None or c.state in "ZX":  # gone, or a zombie (holds nothing)
                    vanished += 1
                    continue
                counters[(c.pid, c.start_ticks)] = c
        return _Reading(at, now_ticks, counters), unreadable, vanished

    def _listing(self, listing: list[Session] | None) -> tuple[list[Session], bool]:
        if listing is not None:
            return listing, True
        due = time.monotonic() - self._looked_at >= self.rescan
        if self.rescan > 0 and not due and self._last is not None:
            updated = self._update()
            if updated is not None:
                return updated, False
        return self._list(), True

    def prime(self) -> None:
        """Take a first reading (rates are measured from here)."""
        self.sessions = self._list()
        self._last = self._read(self.sessions)[0]

    def sample(self, listing: list[Session] | None = None) -> UsageSnapshot:
        """Sessions now, with rates since the previous reading (prime() first, or 0s).

        ``listing``: sessions already listed (sessions()) to read instead of a new look.
        """
        found, full = self._listing(listing)
        reading, unreadable, vanished = self._read(found)
        prev = self._last
        self._last = reading
        elapsed = reading.at - prev.at if prev is not None else 0.0
        since_ticks = prev.btime_ticks if prev is not None else reading.btime_ticks
        usages = []
        kept = []
        for s in found:
            rows = []
            live = []
            for ref in s.processes:
                c = reading.counters.get((ref.pid, ref.start_ticks))
                if c is None:
                    continue
                live.append(ref)
                old = prev.counters.get((c.pid, c.start_ticks)) if prev else None
                rows.append(self._rates(c, old, elapsed, since_ticks))
            if not live and not full:
                continue  # every process of it ended since the last full look
            if len(live) != len(s.processes):
                s = replace(s, processes=tuple(live))
            kept.append(s)
            usages.append(SessionUsage(s, tuple(rows), self.idle_after))
        self.sessions = kept
        notes = [f"warning: {w}" for w in self.backend.warnings()]
        if unreadable:
            notes.append(
                f"{unreadable} process(es) of other users: disk"
                + (" and PSS" if self.pss else "")
                + " figures not readable (run as root to see them)"
            )
        if vanished and full:
            notes.append(f"{vanished} process(es) exited while being read")
        return UsageSnapshot(
            taken_at=time.time(),
            interval=elapsed,
            users=group_by_user(usages),
            pss=self.pss,
            unreadable=unreadable,
            vanished=vanished if full else 0,
            notes=notes,
        )

    def _rates(
        self, c: Counters, old: Counters | None, elapsed: float, since_ticks: float
    ) -> ProcessUsage:
        """Rates over ``elapsed`` s; a process born during it counts from its start."""
        if old is None and c.start_ticks >= since_ticks:
            old = Counters(c.pid, c.start_ticks, c.comm, c.state, 0, 0, 0, 0)
        cpu = rd = wr = None
        if old is not None and elapsed > 0:
            cpu = max(0, c.cpu_ticks - old.cpu_ticks) / self.reader.ticks_per_second / elapsed * 100
            if c.read_bytes is not None and old.read_bytes is not None:
                rd = max(0, c.read_bytes - old.read_bytes) / elapsed
            if c.write_bytes is not None and old.write_bytes is not None:
                wr = max(0, c.write_bytes - old.write_bytes) / elapsed
        elif c.read_bytes is not None:
            rd = wr = 0.0  # first sight: no rate yet, but readable
        return ProcessUsage(
            pid=c.pid,
            start_ticks=c.start_ticks,
            comm=c.comm,
            state=c.state,
            cpu_percent=cpu or 0.0,
            rss_bytes=c.rss_bytes,
            pss_bytes=c.pss_bytes,
            read_bytes_per_s=rd,
            write_bytes_per_s=wr,
        )


def usage(
    target: str | None = None,
    *,
    interval: float = DEFAULT_INTERVAL,
    pss: bool = False,
    backend: Backend | str | None = None,
    idle_after: float = IDLE_AFTER,
) -> UsageSnapshot:
    """Each user's use measured over ``interval`` seconds (two readings that far apart).

    ``target`` limits it to one user, session name or id, as sessions() does.
    """
    from ..errors import InvalidArgument

    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:  # also refuses NaN
        raise InvalidArgument(
            f"interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds, "
            f"not {interval}"
        )
    sampler = UsageSampler(target, backend=backend, pss=pss, idle_after=idle_after)
    sampler.prime()
    primed = sampler._last
    assert primed is not None  # prime() took the first reading
    time.sleep(max(0.0, interval - (time.monotonic() - primed.at)))
    return sampler.sample()
