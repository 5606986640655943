"""One pass over /proc: audit session ids, and process details read only where needed."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..model import ProcessRef

PROC = "/proc"
AUDIT_UNSET = 4294967295


@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of /proc/PID/stat that sessions need."""

    pid: int
    comm: str
    state: str
    ppid: int
    sid: int
    tty_nr: int
    start_ticks: int


def _read(path: str, size: int = 4096) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def pids(proc: str = PROC) -> list[int]:
    """Every PID visible now."""
    return [int(n) for n in os.listdir(proc) if n.isdigit()]


PARALLEL_MIN = 4000  # below this many processes one reader is as fast as several
_UNSET_RAW = b"4294967295"


def _read_ids(
    dfd: int,
    names: list[str],
    known: dict[int, int],
    learned: dict[int, int] | None,
    out: dict[int, int],
) -> None:
    """Read /proc/NAME/sessionid for each name (relative to ``dfd``) into ``out``."""
    flags = os.O_RDONLY | os.O_CLOEXEC
    for name in names:
        if known:
            value = known.get(int(name))
            if value is not None:
                if learned is not None:
                    learned[int(name)] = value
                if value != AUDIT_UNSET:
                    out[int(name)] = value
                continue
        try:
            fd = os.open(name + "/sessionid", flags, dir_fd=dfd)
        except OSError:
            continue  # gone mid-scan, or no audit support
        try:
            raw = os.read(fd, 16)
        except OSError:
            continue
        finally:
            os.close(fd)
        if not raw.isdigit():
            continue
        if learned is not None:
            learned[int(name)] = int(raw)
        if raw != _UNSET_RAW:
            out[int(name)] = int(raw)


def _read_ids_forked(dfd: int, names: list[str], workers: int) -> dict[int, int] | None:
    """Split the reads over ``workers`` processes (this one included); None if fork fails."""
    chunks = [names[i::workers] for i in range(workers)]
    children: list[tuple[int, int]] = []
    for chunk in chunks[1:]:
        try:
            rfd, wfd = os.pipe()
            pid = os.fork()
        except OSError:
            break
        if pid == 0:  # child: read, report "pid id" lines, leave without cleanup
            try:
                os.close(rfd)
                found: dict[int, int] = {}
                _read_ids(dfd, chunk, {}, None, found)
                payload = "\n".join(f"{p} {a}" for p, a in found.items()).encode()
                view = memoryview(payload)
                while view:
                    view = view[os.write(wfd, view) :]
            finally:
                os._exit(0)
        os.close(wfd)
        children.append((pid, rfd))
    if len(children) != len(chunks) - 1:
        for pid, rfd in children:
            os.close(rfd)
            os.waitpid(pid, 0)
        return None
    out: dict[int, int] = {}
    _read_ids(dfd, chunks[0], {}, None, out)
    for pid, rfd in children:
        data = bytearray()
        while piece := os.read(rfd, 65536):
            data += piece
        os.close(rfd)
        os.waitpid(pid, 0)
        for line in bytes(data).split(b"\n"):
            if line:
                p, a = line.split()
                out[int(p)] = int(a)
    return out


def audit_sessions(
    proc: str = PROC,
    known: dict[int, int] | Callable[[], dict[int, int]] | None = None,
    learned: dict[int, int] | None = None,
    workers: int = 1,
    unset: list[int] | None = None,
) -> dict[int, int]:
    """PID → audit session id for every process that has one (one read per process).

    This is the hot loop of every listing: one openat relative to /proc per process,
    spread over ``workers`` forked readers on big hosts. ``known`` gives ids the caller
    already vouches for (PID → id, AUDIT_UNSET for none): those are not read again;
    ``learned`` receives the id of every PID listed (read, or taken from ``known``).
    ``known`` may be a callable, called
    after the directory listing (so what it vouches for is judged after the listing).
    ``unset`` receives the PIDs listed without an id (some may have exited since).
    """
    out: dict[int, int] = {}
    dfd = os.open(proc, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        names = [n for n in os.listdir(dfd) if n.isdigit()]
        if callable(known):
            known = known()
        forked = None
        if workers > 1 and len(names) >= PARALLEL_MIN and not known and learned is None:
            forked = _read_ids_forked(dfd, names, workers)
        if forked is not None:
            out = forked
        else:
            _read_ids(dfd, names, known or {}, learned, out)
    finally:
        os.close(dfd)
    if unset is not None:
        unset.extend(p for p in map(int, names) if p not in out)
    return out


def last_pid(proc: str = PROC) -> int | None:
    """The last PID handed out in our PID namespace (ns_last_pid), None if unknown."""
    try:
        return int(_read(f"{proc}/sys/kernel/ns_last_pid", 32))
    except (OSError, ValueError):
        return None


def pids_since(cursor: int, now: int, pid_max: int) -> range | list[int]:
    """The PIDs handed out after ``cursor`` up to ``now``: PIDs are handed out in turn,
    wrapping round after ``pid_max``."""
    if now >= cursor:
        return range(cursor + 1, now + 1)
    return [*range(cursor + 1, pid_max), *range(1, now + 1)]


def pid_counters(proc: str = PROC) -> tuple[int, int] | None:
    """(forks since boot, last PID handed out in our PID namespace), None if unknown."""
    last = last_pid(proc)
    if last is None:
        return None
    try:
        with open(f"{proc}/stat", "rb") as f:
            for line in f:
                if line.startswith(b"processes "):
                    return int(line.split()[1]), last
    except (OSError, ValueError):
        pass
    return None


def pid_max(proc: str = PROC) -> int:
    """The kernel's pid_max (PIDs wrap around after it), 32768 if unknown."""
    try:
        return int(_read(f"{proc}/sys/kernel/pid_max", 32))
    except (TypeError, ValueError):
        return 32768


def default_workers() -> int:
    """Readers for a listing: one per CPU we may run on, at most four."""
    try:
        return max(1, min(4, len(os.sched_getaffinity(0))))
    except OSError:
        return 1


def _audit_value(pid: int | str, name: str, proc: str) -> int | None:
    try:
        value = int(_read(f"{proc}/{pid}/{name}", 16))
    except (OSError, ValueError):
        return None
    return None if value == AUDIT_UNSET else value


def audit_session(pid: int | str, proc: str = PROC) -> int | None:
    """The audit session id of one process (None if unset or gone)."""
    return _audit_value(pid, "sessionid", proc)


def loginuid(pid: int | str, proc: str = PROC) -> int | None:
    """The login uid of one process (None if unset or gone)."""
    return _audit_value(pid, "loginuid", proc)


def split_stat(raw: bytes) -> tuple[str, list[bytes]]:
    """(comm, the fields after it) of /proc/PID/stat text; comm may hold spaces and ')'."""
    close = raw.rindex(b")")
    return raw[raw.index(b"(") + 1 : close].decode("utf-8", "replace"), raw[close + 2 :].split()


def parse_stat(pid: int, raw: bytes) -> Stat:
    """Parse /proc/PID/stat text (comm may hold spaces and parentheses)."""
    comm, f = split_stat(raw)
    return Stat(
        pid=pid,
        comm=comm,
        state=f[0].decode(),
        ppid=int(f[1]),
        sid=int(f[3]),
        tty_nr=int(f[4]),
        start_ticks=int(f[19]),
    )


def alive_since(pid: int, when: float, btime: float, slack: float = 60.0,
                proc: str = PROC) -> Stat | None:
    """The live, non-zombie process ``pid`` if it started by ``when`` (epoch seconds, e.g.
    a utmp record's time) + ``slack``; None if it is gone or younger (a recycled PID).
    The slack absorbs clock steps between boot and the record."""
    st = stat(pid, proc)
    if st is None or st.state in "ZX" or start_time(st.start_ticks, btime) > when + slack:
        return None
    return st


def stat(pid: int, proc: str = PROC) -> Stat | None:
    """/proc/PID/stat of one process, None if it is gone."""
    try:
        return parse_stat(pid, _read(f"{proc}/{pid}/stat", 1024))
    except (OSError, ValueError, IndexError):
        return None


DEAD = "ZX"  # a task in one of these states has exited


def task_states(pid: int, proc: str = PROC) -> list[str]:
    """The state of every task (thread) of process ``pid``, [] if it is gone."""
    try:
        tids = os.listdir(f"{proc}/{pid}/task")
    except OSError:
        return []
    states = []
    for tid in tids:
        try:
            states.append(split_stat(_read(f"{proc}/{pid}/task/{tid}/stat", 1024))[1][0].decode())
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
    return states


def group_state(st: Stat, proc: str = PROC) -> str:
    """The state of the process (thread group) ``st`` is the leader of.

    A leader whose thread has exited shows ``Z`` while other threads of it still run:
    the process lives, so the state of one of its live tasks is returned (a stopped one
    if any is stopped). ``Z`` only when every task has exited.
    """
    if st.state not in DEAD:
        return st.state
    live = [s for s in task_states(st.pid, proc) if s not in DEAD]
    stopped = [s for s in live if s in "Tt"]
    return (stopped or live or [st.state])[0]


_SIGSTOP_BIT = 1 << (19 - 1)


def group_stopped(pid: int, start_ticks: int, proc: str = PROC) -> bool:
    """True if the process can no longer fork: every live task is stopped, or a SIGSTOP
    is pending for the process (a task in the kernel, e.g. a vfork parent in ``D``, stops
    before it runs again, and a fork under way is restarted after the stop); also True
    when it is gone (or the PID names another process now)."""
    st = stat(pid, proc)
    if st is None or st.start_ticks != start_ticks:
        return True
    if st.state in "Tt" + DEAD and all(s in "Tt" + DEAD for s in task_states(pid, proc)):
        return True
    try:
        pending = int(_status_fields(pid, proc, (b"ShdPnd",))[b"ShdPnd"], 16)
    except (OSError, KeyError, ValueError):
        return stat(pid, proc) is None
    return bool(pending & _SIGSTOP_BIT)


@dataclass(frozen=True, slots=True)
class Dispositions:
    """What a process does with signals, from /proc/PID/status (bit n-1 is signal n)."""

    ignored: int = 0  # SigIgn
    caught: int = 0  # SigCgt: a handler of its own
    ns_init: bool = False  # PID 1 of a child PID namespace

    def deaf_to(self, sig: int) -> bool:
        """True if ``sig`` (not SIGKILL/SIGSTOP) cannot reach the process: it ignores it,
        or it is a PID namespace's init without a handler (the kernel drops the signal)."""
        bit = 1 << (sig - 1)
        return bool(self.ignored & bit) or (self.ns_init and not self.caught & bit)


def _status_fields(pid: int, proc: str, names: tuple[bytes, ...]) -> dict[bytes, bytes]:
    raw = _read(f"{proc}/{pid}/status", 4096)
    out = {}
    for line in raw.split(b"\n"):
        name, _, value = line.partition(b":")
        if name in names:
            out[name] = value.strip()
    return out


def dispositions(pid: int, proc: str = PROC) -> Dispositions | None:
    """The signal dispositions of a process now, None if it is gone or unreadable."""
    try:
        f = _status_fields(pid, proc, (b"SigIgn", b"SigCgt", b"NSpid"))
        nspid = f.get(b"NSpid", b"").split()
        return Dispositions(
            ignored=int(f[b"SigIgn"], 16),
            caught=int(f[b"SigCgt"], 16),
            ns_init=len(nspid) > 1 and nspid[-1] == b"1",
        )
    except (OSError, KeyError, ValueError):
        return None


def uids(pid: int, proc: str = PROC) -> tuple[int, int, int, int] | None:
    """(real, effective, saved, filesystem) uid of a process, None if it is gone."""
    try:
        real, eff, saved, fs = _status_fields(pid, proc, (b"Uid",))[b"Uid"].split()
        return int(real), int(eff), int(saved), int(fs)
    except (OSError, KeyError, ValueError):
        return None


def all_stats(proc: str = PROC) -> list[Stat]:
    """/proc/PID/stat of every process (those that vanish mid-read are left out)."""
    return [s for s in (stat(p, proc) for p in pids(proc)) if s is not None]


def owner_uid(pid: int, proc: str = PROC) -> int | None:
    """Effective uid of a process as /proc shows it (owner of /proc/PID)."""
    try:
        return os.stat(f"{proc}/{pid}").st_uid
    except OSError:
        return None


def process_ref(pid: int, proc: str = PROC, with_uid: bool = True) -> ProcessRef | None:
    """A ProcessRef for one process, None if it vanished (uid -1 unless asked).

    Its state is the thread group's (``group_state``): ``Z`` only if every thread exited.
    """
    st = stat(pid, proc)
    uid = owner_uid(pid, proc) if with_uid else -1
    if st is None or uid is None:
        return None
    return ProcessRef(pid, st.ppid, uid, st.start_ticks, st.comm, group_state(st, proc))


def live_refs(pids: Iterable[int], proc: str = PROC, with_uid: bool = True) -> list[ProcessRef]:
    """ProcessRefs of those PIDs that are alive (zombies hold nothing; a zombie leader
    with a live thread is alive)."""
    refs = []
    for pid in pids:
        ref = process_ref(pid, proc, with_uid)
        if ref is not None and ref.state not in DEAD:
            refs.append(ref)
    return refs


def boot_time(proc: str = PROC) -> float:
    """System boot time (epoch seconds) from /proc/stat."""
    with open(f"{proc}/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start_time(start_ticks: int, btime: float) -> float:
    """Epoch seconds at which a process with this start tick count started."""
    return btime + start_ticks / CLOCK_TICKS


def environ(pid: int | str, proc: str = PROC) -> dict[str, str]:
    """The environment a process started with (empty if gone or not ours to read)."""
    try:
        raw = _read(f"{proc}/{pid}/environ", 1 << 20)
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep and name:
            out[name.decode(errors="replace")] = value.decode(errors="replace")
    return out
