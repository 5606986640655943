"""What the top screen shows: the visible rows for a snapshot, expanded sets and sort.

Pure (no Textual, no I/O), so it can be tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..cli import usagefmt
from ..usage_model import ProcessUsage, SessionUsage, UsageSnapshot, UserUsage, sort_rows

MAX_PROCESS_ROWS = 100  # per expanded session; the rest is summarised in one row


@dataclass(frozen=True)
class Row:
    """One visible line: its stable key, kind, depth, the thing it shows and its cells."""

    key: str  # "u:USER", "s:SESSIONID", "p:PID:START", "m:SESSIONID" (more)
    kind: str  # "user", "session", "process", "more"
    depth: int
    item: UserUsage | SessionUsage | ProcessUsage | None
    cells: dict[str, str]
    expanded: bool = False
    session: SessionUsage | None = None  # the session a session/process row belongs to


def user_key(u: UserUsage) -> str:
    return f"u:{u.user}"


def session_key(s: SessionUsage) -> str:
    return f"s:{s.session.id}"


def process_key(p: ProcessUsage) -> str:
    return f"p:{p.pid}:{p.start_ticks}"


def build(
    snap: UsageSnapshot,
    expanded: set[str],
    sort: str = "cpu",
    reverse: bool = False,
    max_processes: int = MAX_PROCESS_ROWS,
) -> list[Row]:
    """The rows to show, users first, each followed by its expanded sessions/processes.

    Keys are unique even if the snapshot were not (a process listed in two sessions):
    a repeated key gets a ``#N`` suffix, so the table never sees one twice."""
    out: list[Row] = []
    for user in sort_rows(snap.users, sort, reverse):
        ukey = user_key(user)
        uopen = ukey in expanded
        out.append(Row(ukey, "user", 0, user, usagefmt.cells(user), uopen))
        if not uopen:
            continue
        for sess in sort_rows(user.sessions, sort, reverse):
            skey = session_key(sess)
            sopen = skey in expanded
            cells = usagefmt.cells(sess)
            if sess.logoff_at is not None:
                cells["state"] = "Warned"
            out.append(Row(skey, "session", 1, sess, cells, sopen, sess))
            if not sopen:
                continue
            procs = sort_rows(sess.processes, sort, reverse)
            for p in procs[:max_processes]:
                out.append(Row(process_key(p), "process", 2, p, usagefmt.cells(p), session=sess))
            if len(procs) > max_processes:
                more = {"user": f"... {len(procs) - max_processes} more processes"}
                out.append(Row(f"m:{sess.session.id}", "more", 2, None, more, session=sess))
    return _unique(out)


def _unique(rows: list[Row]) -> list[Row]:
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        n = seen.get(r.key, 0)
        seen[r.key] = n + 1
        out.append(r if n == 0 else replace(r, key=f"{r.key}#{n + 1}"))
    return out


def parent_key(row: Row) -> str | None:
    """The key of the row a row is nested under (for collapsing from a child)."""
    if row.kind in ("process", "more") and row.session is not None:
        return f"s:{row.session.session.id}"
    if row.kind == "session" and row.session is not None:
        return f"u:{row.session.session.user}"
    return None
