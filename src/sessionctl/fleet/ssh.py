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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidArgument
from . import payload as payload_mod
from .hosts import Host

STATUSES = ("ok", "unreachable", "auth", "hostkey", "timeout", "error")
MAX_FANOUT = 1024
MAX_TIMEOUT = 86400.0

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

    def check(self) -> None:
        if not 1 <= self.fanout <= MAX_FANOUT:
            raise InvalidArgument(f"fanout must be 1 to {MAX_FANOUT}, not {self.fanout}")
        for name in ("connect_timeout", "command_timeout"):
            value = getattr(self, name)
            if not 0 < value <= MAX_TIMEOUT:
                raise InvalidArgument(f"{name.replace('_', ' ')} must be > 0 s, not {value}")
        if not 0 < self.persist <= MAX_TIMEOUT:
            raise InvalidArgument(f"persist must be > 0 s, not {self.persist}")
        for opt in self.ssh_options:
            key = opt.split("=", 1)[0].strip().lower()
            if key in {"stricthostkeychecking", "userknownhostsfile", "globalknownhostsfile"}:
                continue  # passed through as the user asked; never added by us
            if "=" not in opt:
                raise InvalidArgument(f"ssh option must be Key=Value, not {opt!r}")

    @property
    def deadline(self) -> float:
        return self.connect_timeout + self.command_timeout


def default_control_dir() -> Path:
    """A private directory for ControlMaster sockets (short enough for a socket path)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "sessionctl-ssh"
    home = Path(os.path.expanduser("~"))
    candidate = home / ".cache" / "sessionctl" / "ssh"
    if len(str(candidate)) + 42 <= 100:
        return candidate
    return Path(f"/tmp/sessionctl-ssh-{os.getuid()}")


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) or check that it is ours and private; never follow a symlink."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = os.lstat(path)
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
    argv += ["-T", "-x", "-a", "-o", "BatchMode=yes"]
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


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text.strip())


def classify(stderr: str) -> tuple[str, str]:
    """(status, message) for an ssh failure (exit 255) from what ssh printed."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("@")]
    for status, needles in _SSH_FAILURES:
        for line in lines:
            if any(n.lower() in line.lower() for n in needles):
                return status, _clean(line)
    tail = lines[-1] if lines else "ssh failed without a message"
    return "unreachable", _clean(tail)


def _interpret(host: str, rc: int, header: bytes, out: bytes, err: str) -> HostResult:
    """Turn one finished ssh process into a HostResult."""
    if not header:
        if rc == 255:
            status, message = classify(err)
            return HostResult(host, status, message)
        last = _clean(err.strip().splitlines()[-1]) if err.strip() else ""
        hint = " (is python3 installed there?)" if rc == 127 else ""
        return HostResult(host, "error", f"remote command failed (exit {rc}){hint}: {last}")
    if header.startswith(payload_mod.OLD):
        version = header[len(payload_mod.OLD) :].decode(errors="replace").strip()
        return HostResult(host, "error", f"remote python3 is {version}; sessionctl needs 3.11+")
    try:
        answer = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError, UnicodeDecodeError):
        last = _clean(err.strip().splitlines()[-1]) if err.strip() else f"exit {rc}"
        if rc == 255:
            return HostResult(host, "error", f"connection lost: {last}")
        return HostResult(host, "error", f"no answer from remote sessionctl: {last}")
    if not answer.get("ok"):
        return HostResult(host, "error", _clean(str(answer.get("error"))), answer.get("result"))
    result = HostResult(host, "ok", None, answer.get("result"))
    result.agent = str(answer.get("agent") or "")
    return result


def _reuse_paths(host: Host, opts: SshOptions) -> tuple[Path, Path]:
    """(local socket of the forwarded query server, marker of a recent success) for a host."""
    import hashlib

    ident = json.dumps([host.name, host.user, host.port, host.hostname, opts.ssh_config,
                        list(opts.ssh_options), opts.ssh, opts.python])
    key = hashlib.sha256(ident.encode()).hexdigest()[:24]
    control = private_dir(Path(opts.control_dir) if opts.control_dir else default_control_dir())
    return control / f"a-{key}.sock", control / f"m-{key}"


async def _fast(host: Host, request: str, sock: Path, timeout: float) -> HostResult | None:
    """A query through the forwarded socket of the host's query server; None to fall back."""
    started = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(sock), limit=2**24)
            writer.write(request.encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
    except (OSError, TimeoutError, ValueError):
        line = b""
    finally:
        if writer is not None:
            writer.close()
    if not line:
        with contextlib.suppress(OSError):
            sock.unlink()  # master or server gone: ours, in our private directory
        return None
    result = _interpret(host.name, 0, payload_mod.HAVE, line, "")
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
    if not (opts.reuse and req.get("op") == "query"):
        return await _exec(host, request, opts, pay)
    try:
        sock, marker = _reuse_paths(host, opts)
    except InvalidArgument as exc:
        return HostResult(host.name, "error", str(exc))
    if sock.exists():
        fast = await _fast(host, request, sock, min(5.0, opts.command_timeout))
        if fast is not None:
            return fast
    try:
        recent = time.time() - marker.stat().st_mtime < opts.persist
    except OSError:
        recent = False
    if recent:  # the connection was up before: start the query server for the next runs
        request = json.dumps({**req, "serve": True, "idle": opts.persist}, separators=(",", ":"))
    result = await _exec(host, request, opts, pay)
    if result.ok:
        with contextlib.suppress(OSError):
            marker.touch()
        if result.agent:
            with contextlib.suppress(Exception):  # only an optimisation for the next run
                await _forward(host, opts, sock, result.agent)
    return result


async def _exec(
    host: Host, request: str, opts: SshOptions, pay: payload_mod.Payload
) -> HostResult:
    """Run the agent on the host through ssh (shipping the zip if the host lacks it)."""
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
            limit=2**24,
        )
    except OSError as exc:
        return HostResult(host.name, "error", f"cannot run {opts.ssh}: {exc}")
    assert proc.stdin and proc.stdout and proc.stderr
    err_task = asyncio.ensure_future(proc.stderr.read())
    header = b""
    shipped = False
    try:
        async with asyncio.timeout(opts.deadline):
            with contextlib.suppress(ConnectionError):
                proc.stdin.write(request.encode() + b"\n")  # small: fits the pipe at once
            header = (await proc.stdout.readline()).strip()
            with contextlib.suppress(ConnectionError):
                if header == payload_mod.NEED:
                    shipped = True
                    proc.stdin.write(pay.data)
                    await proc.stdin.drain()
                proc.stdin.close()
            out = await proc.stdout.read()
            rc = await proc.wait()
            err = (await err_task).decode(errors="replace")
    except TimeoutError:
        stage = "running the command" if header else "connecting"
        await _end(proc, err_task)
        return HostResult(
            host.name, "timeout", f"no answer within {opts.deadline:g} s ({stage})",
            seconds=time.monotonic() - started,
        )
    except BaseException:
        await _end(proc, err_task)
        raise
    result = _interpret(host.name, rc, header, out, err)
    result.seconds = time.monotonic() - started
    result.shipped = shipped
    return result


async def _end(proc: asyncio.subprocess.Process, err_task: asyncio.Future[bytes]) -> None:
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
    err_task.cancel()
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
    """Stop our ControlMaster connections to these hosts (``ssh -O exit``); host → stopped."""
    import subprocess

    if not opts.reuse:
        return {}
    out: dict[str, bool] = {}
    procs = []
    for host in hosts:
        argv = ssh_argv(host, opts, "-O", "exit")
        procs.append((host.name, subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )))
    for name, proc in procs:
        try:
            out[name] = proc.wait(max(5.0, opts.connect_timeout)) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            out[name] = False
    return out
