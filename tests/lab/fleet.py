"""A fleet of real sshd "hosts" on 127.0.1.x, each its own sshd, plus broken ones.

Every host is a real OpenSSH server sharing this machine's users. The client side uses a
throwaway key, a private ssh config and known_hosts (never ~/.ssh). Special hosts:
``down`` (nothing listening), ``badkey`` (known_hosts holds another key), ``nokey``
(refuses our key) and ``stall`` (its sshd stopped with SIGSTOP).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .sshd import Sshd

SUBNET = "127.0.1"


class FleetSshd(Sshd):
    """A lab sshd that also accepts public keys from one authorized_keys file."""

    def __init__(self, address: str, authorized_keys: Path) -> None:
        super().__init__(address=address)
        self.authorized_keys = authorized_keys

    def _write_config(self) -> Path:
        config = super()._write_config()
        text = config.read_text().replace("PubkeyAuthentication no", "PubkeyAuthentication yes")
        head = f"AuthorizedKeysFile {self.authorized_keys}\nMaxSessions 200\n"
        text = head + text  # before the Match blocks, which come last
        config.write_text(text)
        return config

    def host_key_line(self, key_file: Path | None = None) -> str:
        """The known_hosts line for this host (with its own key unless another is given)."""
        pub = (key_file or self._dir / "ssh_host_ed25519_key").with_suffix(".pub")
        kind, blob = pub.read_text().split()[:2]
        return f"[{self.address}]:{self.port} {kind} {blob}"


def _keygen(path: Path, comment: str) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, stdin=subprocess.DEVNULL,
    )
    return path


class Fleet:
    """``count`` good hosts fnode01.. (admin user) and rnode01.. (root), plus broken ones."""

    def __init__(self, count: int = 20, admin: str = "root", first: int = 1) -> None:
        self.count = count
        self.admin = admin
        self.first = first
        self.hosts: dict[str, FleetSshd] = {}
        self.down_address = f"{SUBNET}.250"
        self.down_port = 0
        self.workdir: Path | None = None
        self._stopped: FleetSshd | None = None

    @property
    def names(self) -> list[str]:
        return [f"fnode{i:02d}" for i in range(1, self.count + 1)]

    def root_names(self, n: int) -> list[str]:
        return [f"rnode{i:02d}" for i in range(1, n + 1)]

    def start(self) -> Fleet:
        # Not under /tmp: sshd's StrictModes refuses key files below a world-writable dir.
        self.workdir = Path(tempfile.mkdtemp(prefix="sctest-fleet-", dir="/run"))
        os.chmod(self.workdir, 0o755)
        self.key = _keygen(self.workdir / "id_ed25519", "sctest-fleet-client")
        self.authorized = self.workdir / "authorized_keys"
        shutil.copy(self.key.with_suffix(".pub"), self.authorized)
        os.chmod(self.authorized, 0o644)
        self.empty_keys = self.workdir / "no_keys"
        self.empty_keys.write_text("")
        os.chmod(self.empty_keys, 0o644)
        self.control_dir = self.workdir / "cm"
        self.control_dir.mkdir(mode=0o700)
        plan = {name: f"{SUBNET}.{self.first + i}" for i, name in enumerate(self.names)}
        plan["badkey"] = f"{SUBNET}.251"
        plan["nokey"] = f"{SUBNET}.252"
        plan["stall"] = f"{SUBNET}.253"
        servers = {
            name: FleetSshd(addr, self.empty_keys if name == "nokey" else self.authorized)
            for name, addr in plan.items()
        }
        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda s: s.start(), servers.values()))
        finally:
            self.hosts = servers
        with socket.socket() as sock:  # a port nobody listens on at the "down" address
            sock.bind((self.down_address, 0))
            self.down_port = sock.getsockname()[1]
        self._write_client_files()
        stall = self.hosts["stall"]
        assert stall.pid is not None
        os.kill(stall.pid, signal.SIGSTOP)  # our own child
        self._stopped = stall
        return self

    def _write_client_files(self) -> None:
        assert self.workdir is not None
        wrong = self.workdir / "wrong_host_key"
        if not wrong.exists():  # written again when hosts are added (lab/hostile.py)
            _keygen(wrong, "sctest-wrong")
        lines = []
        for name, server in self.hosts.items():
            lines.append(server.host_key_line(wrong if name == "badkey" else None))
        self.known_hosts = self.workdir / "known_hosts"
        self.known_hosts.write_text("\n".join(lines) + "\n")
        blocks = []
        for name, server in self.hosts.items():
            aliases = name
            if name.startswith("fnode"):
                aliases += " r" + name[1:]
            blocks.append(f"Host {aliases}\n  HostName {server.address}\n  Port {server.port}\n")
        blocks.append(f"Host down\n  HostName {self.down_address}\n  Port {self.down_port}\n")
        blocks.append("Host rnode*\n  User root\n")
        blocks.append(
            "Host *\n"
            f"  User {self.admin}\n"
            f"  IdentityFile {self.key}\n"
            "  IdentitiesOnly yes\n"
            "  IdentityAgent none\n"
            f"  UserKnownHostsFile {self.known_hosts}\n"
            "  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n"
            "  LogLevel ERROR\n"
        )
        self.ssh_config = self.workdir / "ssh_config"
        self.ssh_config.write_text("\n".join(blocks))

    def ssh_base(self) -> list[str]:
        """ssh argv prefix using the fleet's private config (for direct checks)."""
        return ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes"]

    def close_masters(self) -> None:
        """Stop any ControlMaster started against the fleet's control dir."""
        if self.workdir is None or not self.control_dir.exists():
            return
        for sock in self.control_dir.iterdir():
            if not re.fullmatch(r"[0-9a-f]{40}", sock.name):  # only ControlPath %C sockets
                continue
            with contextlib.suppress(Exception):
                subprocess.run(
                    ["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                    stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
                )

    def stop(self) -> None:
        self.close_masters()
        if self._stopped is not None and self._stopped.pid is not None:
            os.kill(self._stopped.pid, signal.SIGCONT)
        self._stopped = None
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: s.stop(), self.hosts.values()))
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Fleet:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
