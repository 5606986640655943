"""A private, real OpenSSH server on a loopback address, for creating real logins."""

from __future__ import annotations

import contextlib
import grp
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import procs

SSHD = "/usr/sbin/sshd"
WORKDIR_PREFIX = "sctest-sshd-"
UTMP = Path("/var/run/utmp")
WTMP = Path("/var/log/wtmp")
BTMP = Path("/var/log/btmp")


class SshdError(RuntimeError):
    """The lab sshd could not be started."""


def _ensure_record_file(path: Path, mode: int) -> None:
    """Create path (owned root:utmp, given mode) unless it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return
    try:
        try:
            gid = grp.getgrnam("utmp").gr_gid
        except KeyError:
            gid = 0
        os.fchown(fd, 0, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def ensure_login_records() -> None:
    """Make sure utmp/wtmp/btmp exist; sshd silently writes no utmp entry if utmp is missing."""
    _ensure_record_file(UTMP, 0o664)
    _ensure_record_file(WTMP, 0o664)
    _ensure_record_file(BTMP, 0o660)


def _set_env() -> list[str]:
    """Match blocks (last in sshd_config) passing this test run's directories into logins
    (lab/isolation.py), so tools run there use the same ones as the tests: the state and
    run directories for everyone, and the audit log too for root (a fleet's remote agent
    runs as root; other users keep their own ~/.local/state log)."""
    from .isolation import LOGIN_VARS, VARS

    def pairs(names: tuple[str, ...]) -> str:
        return " ".join(f"{v}={os.environ[v]}" for v in names if os.environ.get(v))

    lines = []
    for who, names in (("root", VARS), ("*,!root", LOGIN_VARS)):
        if pairs(names):
            lines += [f"Match User {who}", f"    SetEnv {pairs(names)}"]
    return lines


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _banner(address: str, port: int) -> bytes | None:
    """Read the SSH identification line at address:port, None if nothing answers yet."""
    try:
        with socket.create_connection((address, port), timeout=1.0) as sock:
            return sock.recv(64)
    except OSError:
        return None


class Sshd:
    """A real sshd listening on 127.0.0.x:port with its own config, host key and pid file.

    Use as a context manager or call start()/stop(). stop() only ever signals the listener
    process this object started; established sessions (children) are left to user cleanup.
    """

    def __init__(self, address: str | None = None, port: int | None = None) -> None:
        self.address = address or f"127.0.0.{random.randint(20, 250)}"
        self.port = port or 0
        self._fixed_port = port is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None

    # -- paths -----------------------------------------------------------------------------
    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise SshdError("sshd not started")
        return self.workdir

    @property
    def pid_file(self) -> Path:
        """The PidFile given to sshd."""
        return self._dir / "sshd.pid"

    @property
    def log_file(self) -> Path:
        """File receiving sshd's stderr log (LogLevel ERROR)."""
        return self._dir / "sshd.log"

    @property
    def pid(self) -> int | None:
        """Pid of the listener process, None when not running."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def log_text(self) -> str:
        """Contents of the sshd log so far."""
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    # -- lifecycle -------------------------------------------------------------------------
    def _write_config(self) -> Path:
        key = self._dir / "ssh_host_ed25519_key"
        if not key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sctest-lab", "-f", key],
                check=True,
                stdin=subprocess.DEVNULL,
            )
        config = self._dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}:{self.port}",
                    f"HostKey {key}",
                    f"PidFile {self.pid_file}",
                    "UsePAM yes",
                    "PasswordAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "MaxStartups 100:30:200",
                    "MaxSessions 100",
                    "MaxAuthTries 3",
                    "LoginGraceTime 30",
                    "LogLevel ERROR",
                    "UseDNS no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "X11Forwarding no",
                    "AcceptEnv LANG LC_*",
                    "Subsystem sftp /usr/lib/openssh/sftp-server",
                    *_set_env(),  # Match blocks: last
                    "",
                ]
            )
        )
        return config

    def start(self, timeout: float = 10.0) -> Sshd:
        """Start sshd and wait until it answers with an SSH banner."""
        if self._proc is not None:
            raise SshdError("already started")
        if not os.path.exists(SSHD):
            raise SshdError(f"{SSHD} not found")
        ensure_login_records()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        me = os.getpid()  # owner encoded in the name, so stale-dir cleanup is race-free
        prefix = f"{WORKDIR_PREFIX}{me}-{procs.start_time_of(me)}-"
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        last_error = ""
        for _attempt in range(5):
            if not self._fixed_port:
                self.port = _free_port(self.address)
            config = self._write_config()
            with open(self.log_file, "ab") as log:
                self._proc = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._proc.poll() is None:
                banner = _banner(self.address, self.port)
                if banner and banner.startswith(b"SSH-") and self._proc.poll() is None:
                    return self
                time.sleep(0.02)
            last_error = self.log_text()
            self._terminate()
            if self._fixed_port:
                break
        raise SshdError(f"sshd on {self.address}:{self.port} did not start: {last_error}")

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # our own unreaped child: the pid cannot have been reused
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def pid_from_file(self) -> int | None:
        """The pid sshd wrote to its PidFile (None if absent or unreadable)."""
        with contextlib.suppress(OSError, ValueError, IndexError, SshdError):
            return int(self.pid_file.read_text().split()[0])
        return None

    def stop(self) -> None:
        """Stop the listener (only the process we started) and remove the work dir."""
        self._terminate()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Sshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sshd({self.address}:{self.port}, pid={self.pid})"


def _owner_alive(workdir: Path) -> bool:
    """Whether the process that created workdir still runs (unknown owner counts as alive).

    The owner's pid and start time are in the dir name; dirs made by older lab versions
    carry them in an ``owner`` file instead.
    """
    match = re.match(rf"{WORKDIR_PREFIX}(\d+)-(\d+)-", workdir.name)
    if match is not None:
        pid, start = int(match.group(1)), int(match.group(2))
    else:
        try:
            pid, start = (int(x) for x in (workdir / "owner").read_text().split())
        except (OSError, ValueError):
            return True
    return procs.alive(pid) and procs.start_time_of(pid) == start


def remove_stale_sshds() -> list[int]:
    """Stop lab sshd listeners whose creating process is gone and delete their work dirs.

    Only processes whose argv is exactly what Sshd.start() runs (config inside a lab work dir)
    are considered. Returns the pids signalled.
    """
    tmp = Path(tempfile.gettempdir())
    stale_dirs = [d for d in tmp.glob(WORKDIR_PREFIX + "*") if d.is_dir() and not _owner_alive(d)]
    configs = {str(d / "sshd_config") for d in stale_dirs}

    def is_stale_listener(pid: int) -> bool:
        # sshd rewrites its title to "sshd: <argv> [listener] ..." after startup.
        text = " ".join(procs.cmdline_of(pid))
        for config in configs:
            argv = f"{SSHD} -D -e -f {config}"
            if text == argv or text.startswith(f"sshd: {argv} [listener]"):
                return procs.uids_of(pid) == (0, 0, 0, 0) and procs.exe_of(pid) == SSHD
        return False

    killed = []
    for pid in procs.all_pids():
        if is_stale_listener(pid) and procs.signal_pid_if(pid, signal.SIGTERM, is_stale_listener):
            killed.append(pid)
    procs.wait_gone(killed, 5.0)
    for d in stale_dirs:
        shutil.rmtree(d, ignore_errors=True)
    return killed
