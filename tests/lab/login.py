"""Real ssh logins driven from a Python pty (interactive) or pipes (no tty)."""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import re
import secrets
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from typing import TYPE_CHECKING

from . import procs
from .utmp import UtmpEntry, user_entries

if TYPE_CHECKING:
    from .sshd import Sshd
    from .users import LabUser

#: Prompt set inside interactive logins (PS1).
PROMPT = "sctest-lab$ "
_READY = "sctest-lab-ready"
_SSH_OPTIONS = (
    "StrictHostKeyChecking=no",
    "UserKnownHostsFile=/dev/null",
    "LogLevel=ERROR",
    "PubkeyAuthentication=no",
    "GSSAPIAuthentication=no",
    "PreferredAuthentications=password",
    "NumberOfPasswordPrompts=1",
    "ControlMaster=no",
    "ControlPath=none",
    "ConnectTimeout=10",
)
# Run once after an interactive login: make it scriptable, report shell pid, audit id, tty.
_SETUP = (
    f"export PS1='{PROMPT}' PS2='' PROMPT_COMMAND=''; unset HISTFILE; set +H; "
    "bind 'set enable-bracketed-paste off' 2>/dev/null; "
    "bind 'set disable-completion on' 2>/dev/null; "
    'echo "$$ $(cat /proc/self/sessionid) $(tty)"'
)
_ESCAPES = re.compile(r"\x1b\[\?2004[hl]")


def keep_typing(login: Login, stop: threading.Event) -> None:
    """Input every second (a letter, then Ctrl-U to clear the line) until ``stop``."""
    while not stop.wait(1.0):
        login.send("a")
        time.sleep(0.05)
        login.send("\x15")


class LoginError(RuntimeError):
    """The ssh login failed, or the session ended while we were waiting for it."""


def ssh_argv(user: LabUser, sshd: Sshd, *ssh_args: str) -> list[str]:
    """argv for ``sshpass -e ssh ...`` to user@sshd; the password goes in env SSHPASS."""
    argv = ["sshpass", "-e", "ssh", "-F", "/dev/null"]
    for opt in _SSH_OPTIONS:
        argv += ["-o", opt]
    return [*argv, "-p", str(sshd.port), *ssh_args, f"{user.name}@{sshd.address}"]


def _client_env(user: LabUser, term: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "LC_", "SSHPASS"))}
    env.update(SSHPASS=user.password, TERM=term, LANG="C.UTF-8")
    return env


def _end_client(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """End an sshpass process we spawned (SIGTERM; sshpass passes it on to its ssh child).

    Fallback if that does not work: SIGKILL its ssh child (checked via pidfd), then itself.
    Signalling proc is safe: an unreaped child's pid cannot have been recycled.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:

            def is_our_ssh(pid: int, parent: int = proc.pid) -> bool:
                return procs.ppid_of(pid) == parent and procs.comm_of(pid) == "ssh"

            for child in procs.children_of(proc.pid):
                procs.signal_pid_if(child, signal.SIGKILL, is_our_ssh)
            proc.kill()
            proc.wait(timeout)


class Login:
    """An interactive ssh login (remote pty, utmp entry, own audit session) of a lab user.

    The client is ``sshpass -e ssh -tt`` running on a local pty we own (cols x rows; its
    modes are copied to the remote pty). ``run()`` executes a shell command in the login and
    returns its output; ``send()``/``wait_output()``/``wait_prompt()`` drive it like a person
    typing. ``source_address`` (e.g. "127.0.0.77") makes the login come from that address,
    which then shows up as the remote host in utmp/who (default: 127.0.0.1). ``ssh_args``
    are more ssh options (e.g. ``("-L", "127.0.0.1:PORT:127.0.0.1:PORT")``).
    """

    def __init__(
        self,
        user: LabUser,
        sshd: Sshd,
        *,
        cols: int = 200,
        rows: int = 50,
        term: str = "xterm",
        timeout: float = 20.0,
        source_address: str | None = None,
        ssh_args: tuple[str, ...] = (),
    ) -> None:
        self.user = user
        self.sshd = sshd
        self._buf = ""
        self.raw = bytearray()  # every byte the login's terminal ever showed us
        self._eof = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._info: tuple[int, int, str] | None = None
        self.last_status: int | None = None
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        # Keep the new pty's default (cooked) modes: ssh sends them to sshd, which applies them
        # to the remote pty; ssh itself then switches this local side to raw.
        self._fd: int | None = master
        try:
            extra = [*(["-b", source_address] if source_address else []), *ssh_args]
            self.proc = subprocess.Popen(
                ssh_argv(user, sshd, "-tt", *extra),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=_client_env(user, term),
                start_new_session=True,
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            )
        except BaseException:
            os.close(master)
            self._fd = None
            raise
        finally:
            os.close(slave)
        try:
            self._setup(timeout)
        except BaseException:
            self.close()
            raise

    # -- low level I/O ---------------------------------------------------------------------
    @property
    def client_pid(self) -> int:
        """Pid of the local sshpass process (parent of the ssh client)."""
        return self.proc.pid

    @property
    def closed(self) -> bool:
        """True once the client process has exited."""
        return self.proc.poll() is not None

    def _fill(self, timeout: float) -> int:
        """Read what arrives within timeout into the buffer; return bytes read, -1 on EOF."""
        if self._eof or self._fd is None:
            return -1
        ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
        if not ready:
            return 0
        try:
            data = os.read(self._fd, 65536)
        except OSError:  # EIO: every holder of the pty slave is gone
            data = b""
        self.raw += data
        if not data:
            self._eof = True
            self._buf += self._decoder.decode(b"", final=True)
            return -1
        self._buf += self._decoder.decode(data)
        return len(data)

    def send(self, text: str | bytes) -> None:
        """Write raw keystrokes to the login (e.g. "ls\\r", "\\x03" for Ctrl-C)."""
        if self._fd is None:
            raise LoginError("login closed")
        data = text.encode() if isinstance(text, str) else text
        while data:
            n = os.write(self._fd, data)
            data = data[n:]

    def read_available(self, timeout: float = 0.1) -> str:
        """Return (and consume) all output received so far, waiting up to timeout for more."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            got = self._fill(max(remaining, 0.0))
            if got < 0 or (got == 0 and remaining <= 0):
                break
        text, self._buf = self._buf, ""
        return text

    def wait_output(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """Wait until pattern matches the unconsumed output; consume up to the match end."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self._buf)
            if match:
                self._buf = self._buf[match.end() :]
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{regex.pattern!r} not seen; output: {self._buf[-2000:]!r}")
            if self._fill(min(remaining, 0.5)) < 0 and not regex.search(self._buf):
                raise LoginError(f"login ended before {regex.pattern!r}: {self._buf[-2000:]!r}")

    def wait_prompt(self, timeout: float = 10.0) -> str:
        """Wait for the next shell prompt; return (and consume) the output before it."""
        return self.wait_output(r"(?s)(.*?)" + re.escape(PROMPT), timeout).group(1)

    # -- commands --------------------------------------------------------------------------
    def _command_lines(self, cmd: str, token: str) -> str:
        # Markers are printed with printf '%s%s' so the echoed command line never contains
        # them verbatim. The brace group (own lines) tolerates commands ending in '&'.
        return f"printf '%s%s\\n' {token} S; {{\n{cmd}\n}}; printf '\\n%s%s%s\\n' {token} E $?\n"

    def run_status(self, cmd: str, timeout: float = 10.0) -> tuple[int, str]:
        """Run a shell command in the login; return (exit status, output with \\r removed)."""
        self.read_available(0)
        token = "lab" + secrets.token_hex(6)
        self.send(self._command_lines(cmd, token))
        regex = re.compile(rf"(?s){token}S\r?\n(.*?)\r?\n{token}E(\d+)\r?\n")
        match = self.wait_output(regex, timeout)
        self.last_status = int(match.group(2))
        # Consume the prompt that follows, so a later wait_prompt() waits for a new one.
        with contextlib.suppress(TimeoutError, LoginError):
            self.wait_output(r"\A(?:\x1b\[\?2004[hl])*" + re.escape(PROMPT), 1.0)
        return self.last_status, _ESCAPES.sub("", match.group(1)).replace("\r", "")

    def run(self, cmd: str, timeout: float = 10.0) -> str:
        """Run a shell command in the login and return its output (stdout+stderr, no echo)."""
        return self.run_status(cmd, timeout)[1]

    def _setup(self, timeout: float) -> None:
        """Wait for the remote shell, make it scriptable and learn pid, audit id and tty."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                out = self.run(_SETUP, timeout=min(3.0, max(remaining, 0.1)))
                pid, sid, dev = out.split()
                self._info = (int(pid), int(sid), dev)
                return
            except TimeoutError:
                if remaining <= 0:
                    raise
            except LoginError:
                raise LoginError(
                    f"ssh login of {self.user.name} to {self.sshd.address}:{self.sshd.port} "
                    f"failed (sshpass exit {self.proc.poll()}); output ends: {self._buf[-300:]!r}"
                ) from None

    # -- facts from inside -----------------------------------------------------------------
    def _facts(self) -> tuple[int, int, str]:
        assert self._info is not None  # filled in by _setup()
        return self._info

    @property
    def shell_pid(self) -> int:
        """Pid of the login shell (``echo $$`` inside, at login)."""
        return self._facts()[0]

    @property
    def audit_session_id(self) -> int:
        """Audit session id of the login (``cat /proc/self/sessionid`` inside, at login)."""
        return self._facts()[1]

    @property
    def tty(self) -> str:
        """Remote terminal device, e.g. ``/dev/pts/5``."""
        return self._facts()[2]

    @property
    def tty_line(self) -> str:
        """The tty as utmp/who name it, e.g. ``pts/5``."""
        return self.tty.removeprefix("/dev/")

    def pids(self) -> set[int]:
        """Live pids currently in this login's audit session (read from /proc)."""
        return procs.pids_by_audit_session().get(self.audit_session_id, set())

    def utmp_entry(self) -> UtmpEntry | None:
        """This login's USER_PROCESS utmp record (its pid is the ``sshd: user [priv]``)."""
        matches = [e for e in user_entries(self.user.name) if e.line == self.tty_line]
        return matches[-1] if matches else None

    # -- ending ----------------------------------------------------------------------------
    def logout(self, timeout: float = 10.0) -> int | None:
        """Type ``exit`` and wait for the ssh client to end; return its exit status."""
        if self.closed:
            return self.proc.returncode
        self.send("exit\n")
        deadline = time.monotonic() + timeout
        resent = False
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._fill(0.05)
            self._buf = self._buf[-65536:]
            if not resent and (
                "There are stopped jobs" in self._buf or time.monotonic() > deadline - timeout / 2
            ):
                self.send("exit\n")  # bash refuses the first exit while jobs are stopped
                resent = True
        if self.proc.poll() is None:
            raise TimeoutError(f"login of {self.user.name} did not end after exit")
        self.close()
        return self.proc.returncode

    def close(self) -> None:
        """End the local ssh client if still running and release the pty. Idempotent."""
        _end_client(self.proc)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Login:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def open_notty(user: LabUser, sshd: Sshd, command: str = "sleep 300") -> NoTtyLogin:
        """Start a no-tty ssh session (``ssh -T``) of user running command; see NoTtyLogin."""
        return NoTtyLogin(user, sshd, command)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"Login({self.user.name}@{self.sshd.address}:{self.sshd.port}, {state})"


class NoTtyLogin:
    """A non-interactive ssh session without a tty (``ssh -T user@host CMD``).

    It gets its own audit session id but no utmp entry. The remote shell reports its pid and
    audit session id, then ``exec``s command, so ``remote_pid`` is the command's pid.
    """

    def __init__(
        self, user: LabUser, sshd: Sshd, command: str = "sleep 300", timeout: float = 20.0
    ) -> None:
        self.user = user
        self.sshd = sshd
        self.command = command
        remote = f'read -r s < /proc/self/sessionid; echo "{_READY} $s $$"; exec {command}'
        self.proc = subprocess.Popen(
            [*ssh_argv(user, sshd, "-T", "-n"), remote],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_client_env(user, "dumb"),
            start_new_session=True,
        )
        try:
            self.audit_session_id, self.remote_pid = self._wait_ready(timeout)
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float) -> tuple[int, int]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                data = os.read(fd, 4096)
                if not data:
                    break
                seen += data
                match = re.search(rb"%s (\d+) (\d+)\n" % _READY.encode(), seen)
                if match:
                    sid, pid = int(match.group(1)), int(match.group(2))
                    self._wait_exec(pid, deadline)
                    return sid, pid
        raise LoginError(
            f"no-tty ssh of {self.user.name} not ready (exit {self.proc.poll()}): {seen!r}"
        )

    @staticmethod
    def _wait_exec(pid: int, deadline: float) -> None:
        """Wait until the remote shell has exec'd the command (argv no longer ours)."""
        while time.monotonic() < deadline:
            argv = procs.cmdline_of(pid)
            if not procs.alive(pid) or (argv and not any(_READY in a for a in argv)):
                return
            time.sleep(0.005)

    @property
    def closed(self) -> bool:
        """True once the client process has exited."""
        return self.proc.poll() is not None

    def close(self) -> None:
        """End the local ssh client (the remote command may outlive it). Idempotent."""
        _end_client(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> NoTtyLogin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_notty(user: LabUser, sshd: Sshd, command: str = "sleep 300") -> NoTtyLogin:
    """Start a no-tty ssh session running command (see NoTtyLogin)."""
    return NoTtyLogin(user, sshd, command)
