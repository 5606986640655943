"""Where sessionctl keeps state between processes: one SQLite file.

Pending (warned) logoffs live here, written by the scheduling command and its countdown
worker, read by every query (``logoff_at``); the policy daemon keeps its state here too.
Rows carry the boot id, so nothing from before a reboot is taken for current.
Root's file is /var/lib/sessionctl/state.db (mode 644: queries by other users read it);
``SESSIONCTL_STATE_DIR`` moves it. Root refuses a directory or file that is not root's
alone (see linux/safepath.py), so nobody else can swap the database or plant a symlink.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from .host import O_CLOEXEC, WINDOWS, default_state_dir

DB_NAME = "state.db"
BUSY_TIMEOUT_MS = 10000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    session_id TEXT PRIMARY KEY,
    boot_id TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    boot_id TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


def state_dir() -> Path:
    env = os.environ.get("SESSIONCTL_STATE_DIR")
    return Path(env) if env else default_state_dir()


def db_path() -> Path:
    return state_dir() / DB_NAME


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _db_file(readonly: bool) -> str | None:
    """The database path to give SQLite; None (read-only) when there is no state yet.

    For root the directory chain and the file are checked first (linux/safepath: owned by
    root, nobody else can write, no symlinks), so the path names what was checked.
    """
    if WINDOWS or os.geteuid() != 0:
        path = db_path()
        if readonly:
            return str(path) if path.exists() else None
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | O_CLOEXEC, 0o644))
        return str(path)
    from .linux import safepath

    try:
        directory = safepath.open_dir(state_dir(), None if readonly else 0o755)
    except FileNotFoundError:
        if readonly:
            return None
        raise
    with directory:
        flags = os.O_RDONLY if readonly else os.O_RDWR | os.O_CREAT
        try:
            os.close(safepath.open_file(directory, DB_NAME, flags, 0o644))
        except FileNotFoundError:
            return None
        return directory.join(DB_NAME)


@contextlib.contextmanager
def connect(readonly: bool = False) -> Iterator[sqlite3.Connection | None]:
    """A connection in one transaction; ``None`` (read-only) when there is no state yet.

    Raises UnsafePath when root is pointed at a state directory or file it cannot trust.
    """
    path = _db_file(readonly)
    if path is None:
        yield None
        return
    if readonly:
        uri = "file:" + path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
        conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    else:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.executescript(_SCHEMA + _POLICY_SCHEMA)
    try:
        if not readonly:
            conn.execute("BEGIN IMMEDIATE")
        yield conn
        if not readonly:
            conn.execute("COMMIT")
    except BaseException:
        if not readonly and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def _current_row(conn: sqlite3.Connection, session_id: str) -> tuple[str] | None:
    return conn.execute(
        "SELECT data FROM pending WHERE session_id = ? AND boot_id = ?",
        (session_id, boot_id()),
    ).fetchone()


def put_pending(session_id: str, data: dict[str, object]) -> None:
    with connect() as conn:
        assert conn is not None
        conn.execute(
            "INSERT OR REPLACE INTO pending (session_id, boot_id, data) VALUES (?, ?, ?)",
            (session_id, boot_id(), json.dumps(data)),
        )


def insert_pending(session_id: str, data: dict[str, object]) -> dict[str, object] | None:
    """Insert unless a current row exists; return the existing row's data if it does."""
    with connect() as conn:
        assert conn is not None
        row = _current_row(conn, session_id)
        if row:
            return json.loads(row[0])
        conn.execute(
            "INSERT OR REPLACE INTO pending (session_id, boot_id, data) VALUES (?, ?, ?)",
            (session_id, boot_id(), json.dumps(data)),
        )
    return None


def get_pending(session_id: str) -> dict[str, object] | None:
    with connect(readonly=True) as conn:
        if conn is None:
            return None
        try:
            row = _current_row(conn, session_id)
        except sqlite3.OperationalError:  # no table yet
            return None
    return json.loads(row[0]) if row else None


def all_pending() -> list[dict[str, object]]:
    try:
        with connect(readonly=True) as conn:
            if conn is None:
                return []
            rows = conn.execute(
                "SELECT data FROM pending WHERE boot_id = ?", (boot_id(),)
            ).fetchall()
    except sqlite3.Error:
        return []
    return [json.loads(r[0]) for r in rows]


def delete_pending(session_id: str) -> None:
    with connect() as conn:
        assert conn is not None
        conn.execute("DELETE FROM pending WHERE session_id = ?", (session_id,))


def update_pending(session_id: str, only_if: dict[str, object] | None = None,
                   **changes: object) -> dict[str, object] | None:
    """Change fields of a current row in one transaction; the new data, None if gone (or
    if a field named in ``only_if`` no longer has that value)."""
    with connect() as conn:
        assert conn is not None
        row = _current_row(conn, session_id)
        if not row:
            return None
        old = json.loads(row[0])
        if only_if and any(old.get(k) != v for k, v in only_if.items()):
            return None
        data = {**old, **changes}
        conn.execute("UPDATE pending SET data = ? WHERE session_id = ?",
                     (json.dumps(data), session_id))
    return data


def kv_all(prefix: str) -> dict[str, dict[str, object]]:
    """Every current (this boot) kv row whose key starts with ``prefix``."""
    try:
        with connect(readonly=True) as conn:
            if conn is None:
                return {}
            rows = conn.execute(
                "SELECT key, data FROM kv WHERE boot_id = ? AND key LIKE ?",
                (boot_id(), prefix.replace("%", "") + "%"),
            ).fetchall()
    except sqlite3.Error:
        return {}
    return {k: json.loads(d) for k, d in rows}


def kv_put(key: str, data: dict[str, object]) -> None:
    with connect() as conn:
        assert conn is not None
        conn.execute("INSERT OR REPLACE INTO kv (key, boot_id, data) VALUES (?, ?, ?)",
                     (key, boot_id(), json.dumps(data)))


def kv_delete(keys: list[str]) -> None:
    if not keys:
        return
    with connect() as conn:
        assert conn is not None
        conn.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k in keys])


def kv_put_many(rows: dict[str, dict[str, object]]) -> None:
    """Several kv rows in one transaction."""
    if not rows:
        return
    with connect() as conn:
        assert conn is not None
        conn.executemany("INSERT OR REPLACE INTO kv (key, boot_id, data) VALUES (?, ?, ?)",
                         [(k, boot_id(), json.dumps(v)) for k, v in rows.items()])


# -- what sessionctl wrote to terminals, and what the policy reclaimed --------------------
# Terminal writes are kv rows "tty-write:LINE" (this boot only). Policy events (warnings,
# postponements, cancels, sign-outs with what the session held) are kept across boots for
# `sessionctl report` and the metrics.

TTY_WRITE_PREFIX = "tty-write:"

_POLICY_SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    rule TEXT NOT NULL,
    user TEXT NOT NULL,
    session_id TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT '',
    rss_bytes INTEGER,
    pss_bytes INTEGER,
    processes INTEGER,
    idle_seconds REAL
);
CREATE INDEX IF NOT EXISTS policy_events_at ON policy_events (at);
"""

POLICY_EVENT_FIELDS = ("at", "event", "rule", "user", "session_id", "outcome", "rss_bytes",
                       "pss_bytes", "processes", "idle_seconds")


def note_tty_writes(lines: list[str], at: float) -> None:
    """Remember that sessionctl wrote to these terminal lines at ``at`` (so the policy's
    "output" activity does not take its own notices for the user's)."""
    kv_put_many({TTY_WRITE_PREFIX + line: {"at": at} for line in lines})


def tty_writes() -> dict[str, float]:
    """Terminal line → when sessionctl last wrote to it (this boot)."""
    out = {}
    for key, data in kv_all(TTY_WRITE_PREFIX).items():
        at = data.get("at")
        if isinstance(at, int | float):
            out[key[len(TTY_WRITE_PREFIX):]] = float(at)
    return out


def add_policy_event(**fields: object) -> None:
    """Append one policy event (keys: POLICY_EVENT_FIELDS; ``at`` and ``event`` needed)."""
    unknown = set(fields) - set(POLICY_EVENT_FIELDS)
    if unknown:
        raise ValueError(f"unknown policy event fields: {sorted(unknown)}")
    names = [f for f in POLICY_EVENT_FIELDS if f in fields]
    with connect() as conn:
        assert conn is not None
        conn.execute(f"INSERT INTO policy_events ({', '.join(names)}) "
                     f"VALUES ({', '.join('?' * len(names))})", [fields[n] for n in names])


def policy_events(since: float = 0.0, event: str | None = None) -> list[dict[str, object]]:
    """Policy events at or after ``since`` (epoch seconds), oldest first."""
    query = f"SELECT {', '.join(POLICY_EVENT_FIELDS)} FROM policy_events WHERE at >= ?"
    args: list[object] = [since]
    if event is not None:
        query += " AND event = ?"
        args.append(event)
    try:
        with connect(readonly=True) as conn:
            if conn is None:
                return []
            rows = conn.execute(query + " ORDER BY at, id", args).fetchall()
    except sqlite3.Error:  # no table yet
        return []
    return [dict(zip(POLICY_EVENT_FIELDS, r, strict=True)) for r in rows]


def policy_event_counts() -> list[tuple[str, str, str, int, int]]:
    """(event, rule, outcome, count, rss_bytes summed) over every policy event kept."""
    try:
        with connect(readonly=True) as conn:
            if conn is None:
                return []
            return conn.execute(
                "SELECT event, rule, outcome, COUNT(*), COALESCE(SUM(rss_bytes), 0) "
                "FROM policy_events GROUP BY event, rule, outcome ORDER BY 1, 2, 3"
            ).fetchall()
    except sqlite3.Error:
        return []
