"""Running one request on many hosts with the system OpenSSH client, in a sliding window.

Every host gets its own ``ssh`` process (the user's ~/.ssh/config, agent, known_hosts and
ProxyJump apply as usual), at most ``fanout`` at a time, driven by asyncio. BatchMode=yes
keeps password prompts from hanging a run; host key checking is left exactly as the user
configured it. Connections are reused with ControlMaster/ControlPersist in a private
directory, so repeated runs pay no new handshake. Each host ends in one outcome class
within connect_timeout + command_timeout; on expiry only the ssh process we spawned is
killed (our own unreaped child, so its pid cannot have been recycled).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import queue
import resource
import stat
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InvalidArgument
from ..sanitize import one_line
from . import payload as payload_mod
from .hosts import Host
from .records import BadRecord, check_result

STATUSES = ("ok", "unreachable", "auth", "hostkey", "timeout", "error")
MAX_FANOUT = 1024
MAX_TIMEOUT = 86400.0
MAX_OUTPUT = 4 << 20  # bytes of answer read from one host (SshOptions.max_output)
MAX_PREAMBLE = 16 << 10  # bytes a login script may print before the loader's header
MAX_STDERR = 64 << 10  # bytes of stderr read from one host
PIPE_LIMIT = 64 << 10  # asyncio's buffer per pipe: it stops reading at twice this
REASON_CHARS = 160  # an error shown to the admin: one sanitized line, at most this long
# ssh's own lines at LogLevel=VERBOSE: the first tells that the user is in (so a hang
# after it is the command's, not the connection's); none of them is an error.
AUTHENTICATED = "Authenticated to "
_VERBOSE = (AUTHENTICATED, "Transferred: sent", "Bytes per second:")

# ssh exits 255 for its own failures; its message tells which. Checked in this order.
_SSH_FAILURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "hostkey",
        (
            "REMOTE HOST IDENTIFICATION HAS CHANGED",
            "Host key verification failed",
            "host key is known for",
            "Host key for",
            "has changed and you have requested strict checking",
        ),
    ),
    ("auth", ("Permission denied", "Too many authentication failures", "Authentication failed")),
    ("timeout", ("timed out", "Timeout, server")),
    (
        "unreachable",
        (
            "Connection refused",
            "No route to host",
            "Network is unreachable",
            "Could not resolve hostname",
            "Name or service not known",
            "Temporary failure in name resolution",
            "Connection reset",
            "Connection closed",
            "kex_exchange_identification",
            "Address family not supported",
            "Cannot assign requested address",
        ),
    ),
)


@dataclass
class HostResult:
    """The outcome on one host: status is one of STATUSES; result is the remote JSON."""

    host: str
    status: str
    error: str | None = None
    result: object = None
    seconds: float = 0.0
    shipped: bool = False
    agent: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "status": self.status,
            "error": self.error,
            "result": self.result,
        }


@dataclass
class SshOptions:
    """How to reach hosts. Defaults suit interactive use; nothing here weakens ssh security."""

    ssh_config: str | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    fanout: int = 64
    reuse: bool = True
    persist: int = 600
    control_dir: str | None = None
    ssh_options: tuple[str, ...] = field(default=())
    python: str = "python3"
    ssh: str = "ssh"
    max_output: int = MAX_OUTPUT

    def check(self) -> None:
        if not 1 <= self.fanout <= MAX_FANOUT:
            raise InvalidArgument(f"fanout must be 1 to {MAX_FANOUT}, not {self.fanout}")
        for name in ("connect_timeout", "command_timeout"):
            value = getattr(self, name)
            if not 0 < value <= MAX_TIMEOUT:
                raise InvalidArgument(f"{name.replace('_', ' ')} must be > 0 s, not {value}")
        if not 0 < self.persist <= MAX_TIMEOUT:
            raise InvalidArgument(f"persist must be > 0 s, not {self.persist}")
        if not 64 << 10 <= self.max_output <= 1 << 30:
            raise InvalidArgument(f"max output must be 64 KiB to 1 GiB, not {self.max_output}")
        for opt in self.ssh_options:
            key = opt.split("=", 1)[0].strip().lower()
            if key in {"stricthostkeychecking", "userknownhostsfile", "globalknownhostsfile"}:
                continue  # passed through as the user asked; never added by us
            if "=" not in opt:
                raise InvalidArgument(f"ssh option must be Key=Value, not {opt!r}")

    @property
    def deadline(self) -> float:
        return self.connect_timeout + self.command_timeout


def _ours(path: str) -> bool:
    """A directory (not a symlink) that we own and nobody else can write."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def default_control_dir() -> Path:
    """A private directory for ControlMaster sockets (short enough for a socket path):
    in $XDG_RUNTIME_DIR when that is ours (not, say, a root-owned dir inherited through
    su or sudo), else under ~/.cache, else /tmp/sessionctl-ssh-UID."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and _ours(base):
        return Path(base) / "sessionctl-ssh"
    home = Path(os.path.expanduser("~"))
    candidate = home / ".cache" / "sessionctl" / "ssh"
    if len(str(candidate)) + 42 <= 100:
        return candidate
    return Path(f"/tmp/sessionctl-ssh-{os.getuid()}")


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) or check that it is ours and private; never follow a symlink."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        st = os.lstat(path)
    except OSError as exc:
        raise InvalidArgument(
            f"cannot use {path} for SSH control sockets: {exc.strerror or exc}; choose a "
            "directory with --control-dir, or --no-reuse"
        ) from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise InvalidArgument(
            f"{path} must be a directory owned by you with mode 0700 (it holds SSH control "
            "sockets); remove it or choose another with --control-dir"
        )
    return path


def ssh_argv(host: Host, opts: SshOptions, *extra: str, command: str | None = None) -> list[str]:
    """The ssh command line for one host: options, ``extra`` options, host, remote command."""
    argv = [opts.ssh]
    if opts.ssh_config:
        argv += ["-F", opts.ssh_config]
    argv += ["-T", "-x", "-a", "-o", "BatchMode=yes", "-o", "LogLevel=VERBOSE"]
    argv += ["-o", f"ConnectTimeout={max(1, math.ceil(opts.connect_timeout))}"]
    if opts.reuse:
        control = private_dir(Path(opts.control_dir) if opts.control_dir else default_control_dir())
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}/%C"]
        argv += ["-o", f"ControlPersist={int(opts.persist)}"]
    else:
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    for opt in opts.ssh_options:
        argv += ["-o", opt]
    if host.user:
        argv += ["-l", host.user]
    if host.port:
        argv += ["-p", str(host.port)]
    if host.hostname:
        argv += ["-o", f"HostName={host.hostname}"]
    if host.name.startswith("-") or (host.hostname or "").startswith("-"):
        raise InvalidArgument(f"host name may not start with '-': {host.name}")
    return [*argv, *extra, "--", host.name, *([command] if command is not None else [])]


def _ssh_lines(stderr: str) -> list[str]:
    """ssh's message lines: no blank lines, '@' banners or VERBOSE chatter."""
    return [ln.strip() for ln in stderr.splitlines()
            if ln.strip() and not ln.startswith("@") and not ln.startswith(_VERBOSE)]


def reason(text: str | bytes) -> str:
    """Untrusted text as an error line for the admin: one short sanitized line."""
    return one_line(text, REASON_CHARS)


def classify(stderr: str) -> tuple[str, str]:
    """(status, message) for an ssh failure (exit 255) from what ssh printed."""
    lines = _ssh_lines(stderr)
    for status, needles in _SSH_FAILURES:
        for line in lines:
            if any(n.lower() in line.lower() for n in needles):
                return status, reason(line)
    tail = lines[-1] if lines else "ssh failed without a message"
    return "unreachable", reason(tail)


def _interpret(host: str, op: str, rc: int, header: bytes, out: bytes, err: str) -> HostResult:
    """Turn one finished ssh process into a HostResult; the answer is checked against the
    schema of ``op`` (a host whose answer does not fit is that host's error)."""
    lines = _ssh_lines(err)
    last = reason(lines[-1]) if lines else ""
    if not header:
        if rc == 255:
            status, message = classify(err)
            return HostResult(host, status, message)
        hint = " (is python3 installed there?)" if rc == 127 else ""
        return HostResult(host, "error", f"remote command failed (exit {rc}){hint}: {last}")
    if header.startswith(payload_mod.OLD):
        version = one_line(header[len(payload_mod.OLD) :], 20)
        return HostResult(host, "error", f"remote python3 is {version}; sessionctl needs 3.11+")
    line = out.rstrip().rsplit(b"\n", 1)[-1]
    try:
        answer = json.loads(line)
    except (ValueError, RecursionError):
        if rc == 255:
            return HostResult(host, "error", f"connection lost: {last or 'exit 255'}")
        if line.strip():
            return HostResult(host, "error", f"bad answer: not JSON (exit {rc})")
        return HostResult(host, "error", f"no answer from remote sessionctl: "
                                         f"{last or f'exit {rc}'}")
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        return HostResult(host, "error", "bad answer: not a sessionctl answer")
    if not answer["ok"]:
        error = answer.get("error")
        return HostResult(host, "error", reason(error) if isinstance(error, str) and error
                          else "the remote side failed without a message")
    try:
        checked = check_result(op, answer.get("result"))
    except BadRecord as exc:
        return HostResult(host, "error", reason(f"bad answer: {exc}"))
    result = HostResult(host, "ok", None, checked)
    agent = answer.get("agent")
    result.agent = agent if isinstance(agent, str) and len(agent) <= 256 else ""
    return result


class _Flood(Exception):
    """A host sent more than we read from it; the text is the host's error."""


class _Capped:
    """What one pipe sent, at most ``cap`` bytes (then ``over``): memory per host is
    bounded whatever the host does."""

    def __init__(self, stream: asyncio.StreamReader, cap: int) -> None:
        self.stream = stream
        self.cap = cap
        self.data = bytearray()
        self.over = False
        self.eof = False

    async def fill(self) -> bool:
        """Read one chunk; False at end of input or once over the cap."""
        if self.eof or self.over:
            return False
        chunk = await self.stream.read(PIPE_LIMIT)
        if not chunk:
            self.eof = True
            return False
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.data += chunk[:room]
            self.over = True
            return False
        self.data += chunk
        return True

    async def read_all(self) -> None:
        while await self.fill():
            pass

    async def line(self, start: int = 0, limit: int | None = None) -> int:
        """Index of the next newline at or after ``start``; -1 if input ended (or
        ``limit`` bytes passed, or the cap) before one."""
        scanned = start
        while True:
            end = self.data.find(b"\n", scanned)
            if end >= 0:
                return end
            scanned = len(self.data)
            if (limit is not None and scanned >= limit) or not await self.fill():
                return -1


async def _header(out: _Capped) -> bytes:
    """The loader's header line (HAVE, NEED or OLD ...), consumed from ``out``; lines a
    login script printed before it are skipped. b"" if output ended without one; raises
    _Flood when none came in the first MAX_PREAMBLE bytes."""
    start = 0
    while True:
        end = await out.line(start, MAX_PREAMBLE)
        if end < 0:
            if len(out.data) >= MAX_PREAMBLE or out.over:
                raise _Flood(f"no sessionctl header in the first {_size(MAX_PREAMBLE)} of "
                             "output")
            return b""
        line = bytes(out.data[start:end]).strip()
        start = end + 1
        if line in (payload_mod.HAVE, payload_mod.NEED) or line.startswith(payload_mod.OLD):
            del out.data[:start]
            return line


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _reuse_paths(host: Host, opts: SshOptions) -> tuple[Path, Path]:
    """(local socket of the forwarded query server, marker of a recent success) for a host."""
    import hashlib

    ident = json.dumps([host.name, host.user, host.port, host.hostname, opts.ssh_config,
                        list(opts.ssh_options), opts.ssh, opts.python])
    key = hashlib.sha256(ident.encode()).hexdigest()[:24]
    control = private_dir(Path(opts.control_dir) if opts.control_dir else default_control_dir())
    return control / f"a-{key}.sock", control / f"m-{key}"


async def _fast(host: Host, op: str, request: str, sock: Path,
                opts: SshOptions) -> HostResult | None:
    """A query through the forwarded socket of the host's query server; None to fall back.

    The answer is read like any other: at most ``opts.max_output`` bytes, then checked.
    """
    started = time.monotonic()
    writer = None
    line = b""
    over = False
    try:
        async with asyncio.timeout(min(5.0, opts.command_timeout)):
            reader, writer = await asyncio.open_unix_connection(str(sock), limit=PIPE_LIMIT)
            writer.write(request.encode() + b"\n")
            await writer.drain()
            got = _Capped(reader, opts.max_output)
            end = await got.line()
            over = got.over
            line = bytes(got.data[:end]) if end >= 0 else b""
    except (OSError, TimeoutError, ValueError):
        line = b""
    finally:
        if writer is not None:
            writer.close()
    if over:
        return HostResult(host.name, "error", f"answer larger than {_size(opts.max_output)}",
                          seconds=time.monotonic() - started)
    if not line:
        with contextlib.suppress(OSError):
            sock.unlink()  # master or server gone: ours, in our private directory
        return None
    result = _interpret(host.name, op, 0, payload_mod.HAVE, line, "")
    result.seconds = time.monotonic() - started
    return result


async def _forward(host: Host, opts: SshOptions, sock: Path, remote: str) -> None:
    """Ask our ControlMaster to forward ``sock`` to the host's query server socket."""
    if not remote.startswith("/") or any(c.isspace() or c == ":" for c in remote):
        return
    argv = ssh_argv(host, opts, "-O", "forward", "-o", "StreamLocalBindUnlink=yes",
                    "-L", f"{sock}:{remote}")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(10):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _run_host(
    host: Host, req: dict[str, object], opts: SshOptions, pay: payload_mod.Payload
) -> HostResult:
    """One host: the reuse fast path for queries when it is up, else ssh + the agent."""
    request = json.dumps(req, separators=(",", ":"))
    op = str(req.get("op"))
    if not (opts.reuse and op == "query"):
        return await _exec(host, op, request, opts, pay)
    try:
        sock, marker = _reuse_paths(host, opts)
    except InvalidArgument as exc:
        return HostResult(host.name, "error", str(exc))
    if sock.exists():
        fast = await _fast(host, op, request, sock, opts)
        if fast is not None:
            return fast
    try:
        recent = time.time() - marker.stat().st_mtime < opts.persist
    except OSError:
        recent = False
    if recent:  # the connection was up before: start the query server for the next runs
        request = json.dumps({**req, "serve": True, "idle": opts.persist}, separators=(",", ":"))
    result = await _exec(host, op, request, opts, pay)
    if result.ok:
        with contextlib.suppress(OSError):
            marker.touch()
        if result.agent:
            with contextlib.suppress(Exception):  # only an optimisation for the next run
                await _forward(host, opts, sock, result.agent)
    return result


async def _exec(
    host: Host, op: str, request: str, opts: SshOptions, pay: payload_mod.Payload
) -> HostResult:
    """Run the agent on the host through ssh (shipping the zip if the host lacks it).

    What the host sends is read up to a cap per stream (a flood is that host's error),
    and all of it within the host's deadline (else a timeout, which says whether the
    connection was up: ssh logs that the user got in, or our ControlMaster answers).
    """
    started = time.monotonic()
    command = payload_mod.remote_command(pay, opts.python)
    try:
        argv = ssh_argv(host, opts, command=command)
    except InvalidArgument as exc:
        return HostResult(host.name, "error", str(exc))
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=PIPE_LIMIT,
        )
    except OSError as exc:
        return HostResult(host.name, "error", f"cannot run {opts.ssh}: {exc}")
    assert proc.stdin and proc.stdout and proc.stderr
    out = _Capped(proc.stdout, opts.max_output + MAX_PREAMBLE)
    err = _Capped(proc.stderr, MAX_STDERR)
    err_task = asyncio.ensure_future(err.read_all())
    header = b""
    shipped = False

    async def talk() -> int:
        nonlocal header, shipped
        assert proc.stdin
        with contextlib.suppress(ConnectionError):
            proc.stdin.write(request.encode() + b"\n")  # small: fits the pipe at once
        header = await _header(out)
        with contextlib.suppress(ConnectionError):
            if header == payload_mod.NEED:
                shipped = True
                proc.stdin.write(pay.data)
                await proc.stdin.drain()
            proc.stdin.close()
        await out.read_all()
        if out.over:
            raise _Flood(f"answer larger than {_size(opts.max_output)}")
        return await proc.wait()

    talking = asyncio.ensure_future(talk())
    try:
        async with asyncio.timeout(opts.deadline):
            await asyncio.wait({talking, err_task}, return_when=asyncio.FIRST_COMPLETED)
            if err.over:
                raise _Flood(f"remote sent more than {_size(MAX_STDERR)} on stderr")
            rc = await talking
            await err_task
            if err.over:
                raise _Flood(f"remote sent more than {_size(MAX_STDERR)} on stderr")
    except TimeoutError:
        up = bool(header) or AUTHENTICATED.encode() in err.data or await _master_up(host, opts)
        stage = "running the command" if up else "connecting"
        await _end(proc, err_task, talking)
        return HostResult(
            host.name, "timeout", f"no answer within {opts.deadline:g} s ({stage})",
            seconds=time.monotonic() - started,
        )
    except _Flood as exc:
        await _end(proc, err_task, talking)
        return HostResult(host.name, "error", str(exc), seconds=time.monotonic() - started)
    except BaseException:
        await _end(proc, err_task, talking)
        raise
    result = _interpret(host.name, op, rc, header, bytes(out.data),
                        err.data.decode(errors="replace"))
    result.seconds = time.monotonic() - started
    result.shipped = shipped
    return result


async def _master_up(host: Host, opts: SshOptions) -> bool:
    """True when our ControlMaster to ``host`` answers (``ssh -O check``): a run through
    it that hangs was past the connection (a mux client logs nothing of its own)."""
    if not opts.reuse:
        return False
    try:
        proc = await asyncio.create_subprocess_exec(
            *ssh_argv(host, opts, "-O", "check"), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    except (OSError, InvalidArgument):
        return False
    try:
        async with asyncio.timeout(5):
            return await proc.wait() == 0
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return False


async def _end(proc: asyncio.subprocess.Process, *tasks: asyncio.Future[Any]) -> None:
    """Kill the ssh process we spawned (only it), see it reaped, and drop our pipe ends.

    Not ``proc.wait()``: on 3.11 that also waits for the pipes to close, and a ControlMaster
    that this very ssh process started keeps a copy of one of them for its whole life.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    for _ in range(200):
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.025)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: nothing is left to warn about later
        task.cancel()
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.close()


def _raise_fd_limit(fanout: int) -> None:
    """Make room for 3 pipes per ssh process in flight (soft limit up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = fanout * 4 + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


async def run_async(
    hosts: Iterable[Host],
    request: dict[str, object],
    opts: SshOptions,
    on_result: Callable[[HostResult], None],
) -> None:
    """Run ``request`` on every host, at most opts.fanout at once; report each as it ends."""
    opts.check()
    pay = payload_mod.build()
    _raise_fd_limit(opts.fanout)
    window = asyncio.Semaphore(opts.fanout)

    async def one(host: Host) -> None:
        async with window:
            try:
                result = await _run_host(host, request, opts, pay)
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:  # one host's trouble never ends the others' run
                result = HostResult(host.name, "error", f"internal error: {exc!r}")
        on_result(result)

    tasks = [asyncio.ensure_future(one(h)) for h in hosts]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _pidfd_watcher(loop: asyncio.AbstractEventLoop) -> None:
    """On Python 3.11, wait for ssh processes with pidfds in the loop instead of the default
    one thread per process: starting a thread waits for it to run, which on a CPU busy with
    a hundred handshakes stalled the whole window (3.12+ already does this)."""
    import sys
    import warnings

    if sys.version_info >= (3, 12) or not hasattr(asyncio, "PidfdChildWatcher"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            watcher = asyncio.PidfdChildWatcher()
            watcher.attach_loop(loop)
            asyncio.get_event_loop_policy().set_child_watcher(watcher)
        except (OSError, NotImplementedError, RuntimeError):
            pass


def run(hosts: list[Host], request: dict[str, object], opts: SshOptions) -> Iterator[HostResult]:
    """Synchronous form of run_async: yields HostResults as hosts finish (any order)."""
    opts.check()
    results: queue.Queue[HostResult | BaseException | None] = queue.Queue()
    loop = asyncio.new_event_loop()
    main: list[asyncio.Future[None]] = []

    def worker() -> None:
        asyncio.set_event_loop(loop)
        _pidfd_watcher(loop)
        try:
            main.append(asyncio.ensure_future(run_async(hosts, request, opts, results.put)))
            loop.run_until_complete(main[0])
            results.put(None)
        except BaseException as exc:  # delivered to the caller's thread
            results.put(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=worker, name="sessionctl-fleet", daemon=True)
    thread.start()
    try:
        while True:
            item = results.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                if isinstance(item, asyncio.CancelledError):
                    break
                raise item
            yield item
    finally:
        if main and not main[0].done():  # the caller stopped early (or ^C): end the run
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(main[0].cancel)
        thread.join()


def close_connections(hosts: list[Host], opts: SshOptions) -> dict[str, bool]:
    """Stop our ControlMaster connections to these hosts (``ssh -O exit``), at most
    ``opts.fanout`` at once, and remove what reuse left for each (the forwarded query-server
    socket, the recent-success marker); host → a connection was stopped."""
    if not opts.reuse:
        return {}
    opts.check()
    _raise_fd_limit(opts.fanout)
    return _in_private_loop(_close_all(hosts, opts))


async def _close_all(hosts: list[Host], opts: SshOptions) -> dict[str, bool]:
    window = asyncio.Semaphore(opts.fanout)
    out: dict[str, bool] = {}

    async def one(host: Host) -> None:
        async with window:
            out[host.name] = await _close_one(host, opts)

    await asyncio.gather(*(one(h) for h in hosts))
    return out


async def _close_one(host: Host, opts: SshOptions) -> bool:
    try:
        argv = ssh_argv(host, opts, "-O", "exit")
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
    except (OSError, InvalidArgument):
        return False
    try:
        async with asyncio.timeout(max(5.0, opts.connect_timeout)):
            stopped = await proc.wait() == 0
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()  # our own child, not reaped yet
        await proc.wait()
        stopped = False
    with contextlib.suppress(OSError, InvalidArgument):  # ours, in our private directory
        for path in _reuse_paths(host, opts):
            path.unlink(missing_ok=True)
    return stopped


T = TypeVar("T")


def _in_private_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end on a private event loop in its own thread (the caller's
    thread may run a loop of its own, e.g. the TUI's)."""
    box: dict[str, Any] = {}

    def worker() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        _pidfd_watcher(loop)
        try:
            box["result"] = loop.run_until_complete(coro)
        except BaseException as exc:  # delivered to the caller's thread
            box["error"] = exc
        finally:
            loop.close()

    thread = threading.Thread(target=worker, name="sessionctl-fleet", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result
