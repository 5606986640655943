"""Sampling resource use per process, session and user (CPU %, memory, disk rates).

Membership comes from the backend's sessions (Session.processes): a user's figures are
the union of their sessions' processes. Processes outside every session (daemons, or
a user's processes without a login session) are not shown. Two readings ``interval``
seconds apart give the rates; a sampler kept between calls (the top screen) reuses its
last reading, so each refresh costs one reading.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..api import _backend
from ..backends.base import Backend
from ..linux.proc import CLOCK_TICKS
from ..linux.usage import Counters, read_counters
from ..model import Session
from ..usage import IDLE_AFTER, ProcessUsage, SessionUsage, UsageSnapshot, group_by_user

DEFAULT_INTERVAL = 1.0
MIN_INTERVAL = 0.1
MAX_INTERVAL = 3600.0


@dataclass
class _Reading:
    at: float  # monotonic
    btime_ticks: float  # clock ticks since boot at the reading
    counters: dict[tuple[int, int], Counters]


def _uptime_ticks() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME) * CLOCK_TICKS


class UsageSampler:
    """Successive readings of every session's processes; each sample() gives rates.

    ``pss``: also read PSS (/proc/PID/smaps_rollup; costs a page-table walk per
    process, so off by default). ``io``: read disk counters (/proc/PID/io).
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        backend: Backend | str | None = None,
        pss: bool = False,
        io: bool = True,
        idle_after: float = IDLE_AFTER,
    ) -> None:
        self.target = target
        self.backend = _backend(backend)
        self.pss = pss
        self.io = io
        self.idle_after = idle_after
        self._last: _Reading | None = None
        self.sessions: list[Session] = []

    def _list(self) -> list[Session]:
        from ..api import sessions

        return sessions(self.target, backend=self.backend)

    def _read(self, found: list[Session]) -> tuple[_Reading, int, int]:
        counters: dict[tuple[int, int], Counters] = {}
        unreadable = vanished = 0
        at = time.monotonic()
        now_ticks = _uptime_ticks()
        for s in found:
            for ref in s.processes:
                c, denied = read_counters(ref.pid, ref.start_ticks, io=self.io, pss=self.pss)
                unreadable += denied
                if c is None or c.state in "ZX":  # gone, or a zombie (holds nothing)
                    vanished += 1
                    continue
                counters[(c.pid, c.start_ticks)] = c
        return _Reading(at, now_ticks, counters), unreadable, vanished

    def prime(self) -> None:
        """Take a first reading (rates are measured from here)."""
        found = self._list()
        self._last = self._read(found)[0]

    def sample(self, listing: list[Session] | None = None) -> UsageSnapshot:
        """Sessions now, with rates since the previous reading (prime() first, or 0s).

        ``listing``: sessions already listed (sessions()) to read instead of a new look.
        """
        found = self._list() if listing is None else listing
        reading, unreadable, vanished = self._read(found)
        prev = self._last
        self._last = reading
        self.sessions = found
        elapsed = reading.at - prev.at if prev is not None else 0.0
        since_ticks = prev.btime_ticks if prev is not None else reading.btime_ticks
        usages = []
        for s in found:
            rows = []
            for ref in s.processes:
                c = reading.counters.get((ref.pid, ref.start_ticks))
                if c is None:
                    continue
                old = prev.counters.get((c.pid, c.start_ticks)) if prev else None
                rows.append(self._rates(c, old, elapsed, since_ticks))
            usages.append(SessionUsage(s, tuple(rows), self.idle_after))
        notes = [f"warning: {w}" for w in self.backend.warnings()]
        if unreadable:
            notes.append(
                f"{unreadable} process(es) of other users: disk"
                + (" and PSS" if self.pss else "")
                + " figures not readable (run as root to see them)"
            )
        if vanished:
            notes.append(f"{vanished} process(es) exited while being read")
        return UsageSnapshot(
            taken_at=time.time(),
            interval=elapsed,
            users=group_by_user(usages),
            pss=self.pss,
            unreadable=unreadable,
            vanished=vanished,
            notes=notes,
        )

    @staticmethod
    def _rates(
        c: Counters, old: Counters | None, elapsed: float, since_ticks: float
    ) -> ProcessUsage:
        """Rates over ``elapsed`` s; a process born during it counts from its start."""
        if old is None and c.start_ticks >= since_ticks:
            old = Counters(c.pid, c.start_ticks, c.comm, c.state, 0, 0, 0, 0)
        cpu = rd = wr = None
        if old is not None and elapsed > 0:
            cpu = max(0, c.cpu_ticks - old.cpu_ticks) / CLOCK_TICKS / elapsed * 100
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
    time.sleep(max(0.0, interval - (time.monotonic() - sampler._last.at)))  # type: ignore[union-attr]
    return sampler.sample()

