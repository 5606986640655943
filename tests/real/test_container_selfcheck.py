"""Self-check of the systemd container lab (tests/lab/container.py).

Boots one Debian bookworm container (real systemd 252 + logind) for the module, logs in to
it over ssh from a pty on the host and checks what the systemd-logind backend tests rely on.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import secrets
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab.container import ROOTFS_MARKER, VENV, SystemdContainer, container_fixture, leftovers_of

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(os.geteuid() != 0, reason="systemd container lab needs root"),
    pytest.mark.skipif(
        shutil.which("systemd-nspawn") is None,
        reason="systemd-nspawn is not installed (apt-get install systemd-container)",
    ),
]


@pytest.fixture(scope="module")
def container() -> Iterator[SystemdContainer]:
    yield from container_fixture()


class PtyLogin:
    """An interactive ``sshpass ... ssh -tt`` login running on a local pty (pty.fork)."""

    def __init__(self, argv: list[str], timeout: float = 20.0) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child: the pty is our controlling terminal
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        self.buf = ""
        self.run("export PS1='$ ' PROMPT_COMMAND=''; stty -echo", timeout=timeout)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the other side is gone
            data = b""
        self.buf += data.decode("utf-8", "replace")
        return bool(data)

    def run(self, cmd: str, timeout: float = 10.0) -> str:
        """Run a shell command in the login, return its output."""
        token = secrets.token_hex(4)
        # printf splits the markers so the echoed command line never matches.
        os.write(
            self.fd, f"printf '%s%s\\n' {token} B; {cmd}; printf '%s%s\\n' {token} E\n".encode()
        )
        regex = re.compile(rf"(?s){token}B\r?\n(.*?){token}E\r?\n")
        deadline = time.monotonic() + timeout
        while not (match := regex.search(self.buf)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no output for {cmd!r}: {self.buf[-2000:]!r}")
            if not self._read(0.2):
                raise RuntimeError(f"login ended: {self.buf[-2000:]!r}")
        self.buf = self.buf[match.end() :]
        return match.group(1).replace("\r", "")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.fd, b"\nexit\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            self._read(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.fixture(scope="module")
def login(container: SystemdContainer) -> Iterator[tuple[str, PtyLogin]]:
    user, password = container.add_user()
    session = PtyLogin(container.ssh_login_argv(user, password))
    yield user, session
    session.close()


def test_boot_is_fast_and_healthy(container: SystemdContainer) -> None:
    assert container.system_state in ("running", "degraded")
    assert container.timings["boot"] < 30, container.timings
    state = container.exec(["systemctl", "is-system-running"]).stdout.strip()
    assert state in ("running", "degraded"), container.exec(["systemctl", "--failed"]).stdout
    assert container.exec(["stat", "-fc", "%T", "/sys/fs/cgroup"]).stdout.strip() == "cgroup2fs"
    out = container.exec(["systemd-analyze", "cat-config", "systemd/logind.conf"]).stdout
    assert "KillUserProcesses=no" in out


def test_interactive_ssh_login_is_a_logind_session(
    container: SystemdContainer, login: tuple[str, PtyLogin]
) -> None:
    user, session = login
    assert session.run("id -un").strip() == user
    tty = session.run("tty").strip()
    assert re.fullmatch(r"/dev/pts/\d+", tty), tty
    shell_pid = session.run("echo $$").strip()

    mine = [s for s in container.loginctl_sessions() if s["user"] == user]
    assert len(mine) == 1, container.loginctl_sessions()
    assert mine[0]["tty"] == tty.removeprefix("/dev/")

    props = container.show_session(mine[0]["session"])
    assert props["Name"] == user
    assert props["Remote"] == "yes"
    assert props["Service"] == "sshd"
    assert props["State"] in ("active", "online")
    scope = props["Scope"]
    assert scope == f"session-{mine[0]['session']}.scope"

    uid = container.exec(["id", "-u", user], check=True).stdout.strip()
    cg = f"/sys/fs/cgroup/user.slice/user-{uid}.slice/{scope}"
    container.exec(
        ["test", "-e", f"{cg}/cgroup.kill", "-a", "-e", f"{cg}/cgroup.freeze"], check=True
    )
    procs = container.exec(["cat", f"{cg}/cgroup.procs"], check=True).stdout.split()
    assert shell_pid in procs


def test_logind_answers_on_the_bus(
    container: SystemdContainer, login: tuple[str, PtyLogin]
) -> None:
    user, _ = login
    res = container.exec(
        [
            "busctl",
            "call",
            "org.freedesktop.login1",
            "/org/freedesktop/login1",
            "org.freedesktop.login1.Manager",
            "ListSessions",
        ],
        check=True,
    )
    assert res.stdout.startswith("a(susso) "), res.stdout
    assert f'"{user}"' in res.stdout


def test_exec_as_user_is_not_a_session(container: SystemdContainer) -> None:
    user, _ = container.add_user("scx")
    before = container.loginctl_sessions()
    res = container.exec(["sh", "-c", "id -un; echo $HOME"], user=user, check=True)
    assert res.stdout.split() == [user, f"/home/{user}"]
    assert container.loginctl_sessions() == before


def test_root_ssh_with_key_and_notty_variant(container: SystemdContainer) -> None:
    res = subprocess.run(
        container.ssh_notty_argv("root", command=["hostname"]),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == container.name


@pytest.mark.skipif(not (VENV / "bin" / "python").exists(), reason=f"{VENV} does not exist")
def test_venv_runs_inside(container: SystemdContainer) -> None:
    res = container.exec([f"{VENV}/bin/python", "-c", "import sys; print(sys.prefix)"], check=True)
    assert res.stdout.strip() == str(VENV)
    # read-only bind mount
    assert container.exec(["touch", f"{VENV}/sctest-ro-probe"]).returncode != 0


def test_second_container_in_parallel_and_clean_stop(container: SystemdContainer) -> None:
    links_before = sorted(os.listdir("/sys/class/net"))
    with SystemdContainer() as other:
        assert other.name != container.name
        assert other.address != container.address
        assert other.init_pid != container.init_pid
        # Separate cgroups: the other container does not see our sessions.
        assert other.loginctl_sessions() == []
        upper_hostname = other.exec(["cat", "/etc/hostname"]).stdout.strip()
        assert upper_hostname == other.name
        nspawn_pid = other.nspawn_pid
    assert not Path(f"/proc/{nspawn_pid}").exists()
    assert leftovers_of(other.name) == []
    assert sorted(os.listdir("/sys/class/net")) == links_before
    # The cached rootfs was not modified.
    rootfs = other.rootfs
    assert (rootfs / ROOTFS_MARKER).is_file()
    assert not (rootfs / "etc/ssh/sshd_config.d/sessionctl-lab.conf").exists()
    assert (rootfs / "etc/hostname").read_text().strip() != other.name


def test_system_bus_reachable_from_host(container: SystemdContainer) -> None:
    jeepney = pytest.importorskip("jeepney")
    from jeepney.io.blocking import open_dbus_connection

    manager = jeepney.DBusAddress(
        "/org/freedesktop/login1",
        bus_name="org.freedesktop.login1",
        interface="org.freedesktop.login1.Manager",
    )
    with open_dbus_connection(container.system_bus_address) as conn:
        reply = conn.send_and_get_reply(jeepney.new_method_call(manager, "ListSessions"))
    assert reply.header.message_type == jeepney.MessageType.method_return
    assert isinstance(reply.body[0], list)
