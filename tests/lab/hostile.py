"""A compromised host for fleet tests: one real sshd on several 127.0.2.x addresses whose
ForceCommand (lab/hostile_host.py) answers every request badly, one way per address.

``HostileFleet`` is a lab :class:`Fleet` (healthy fnodeNN hosts and the broken ones) plus
one host alias per mode of misbehaviour (``bogus-state``, ``flood-stdout``, ``hang``...), all
in the fleet's private ssh config and known_hosts.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .fleet import Fleet, FleetSshd

HOSTILE_SUBNET = "127.0.2"
MODES = (
    "bogus-state", "uid-x", "pids-5", "login-yesterday", "idle-abc", "logoff-no-session",
    "msg-list", "long-error", "deep-json", "flood-stdout", "flood-stderr", "endless-line",
    "no-header-flood", "hang",
)
SCRIPT = Path(__file__).with_name("hostile_host.py")


class HostileSshd(FleetSshd):
    """One sshd listening on every mode's address, with our script as ForceCommand."""

    def __init__(self, addresses: list[str], authorized_keys: Path, modes_file: Path,
                 script: Path) -> None:
        super().__init__(addresses[0], authorized_keys)
        self.addresses = addresses
        self.modes_file = modes_file
        self.script = script

    def _write_config(self) -> Path:
        config = super()._write_config()
        listen = "".join(f"ListenAddress {a}:{self.port}\n" for a in self.addresses[1:])
        force = f"ForceCommand /usr/bin/python3 {self.script} {self.modes_file}\n"
        config.write_text(listen + force + config.read_text())  # before the Match blocks
        return config


class _Alias:
    """One address of the hostile sshd, as the fleet's config and known_hosts see a host."""

    def __init__(self, server: HostileSshd, address: str) -> None:
        self.server = server
        self.address = address

    @property
    def port(self) -> int:
        return self.server.port

    def host_key_line(self, key_file: Path | None = None) -> str:
        line = self.server.host_key_line(key_file)
        return f"[{self.address}]:{self.port} " + line.split(" ", 1)[1]

    def stop(self) -> None:
        """Stopped with the server it belongs to."""


class HostileFleet(Fleet):
    """A lab fleet plus one hostile host per mode (names = the modes)."""

    def __init__(self, count: int = 3, admin: str = "root", first: int = 1,
                 modes: tuple[str, ...] = MODES, hostile_first: int = 10) -> None:
        super().__init__(count=count, admin=admin, first=first)
        self.modes = modes
        self.hostile_first = hostile_first
        self.hostile: HostileSshd | None = None

    def start(self) -> HostileFleet:
        super().start()
        assert self.workdir is not None
        plan = {mode: f"{HOSTILE_SUBNET}.{self.hostile_first + i}"
                for i, mode in enumerate(self.modes)}
        modes_file = self.workdir / "modes.json"
        modes_file.write_text(json.dumps({addr: mode for mode, addr in plan.items()}))
        script = self.workdir / "hostile_host.py"
        shutil.copy(SCRIPT, script)
        for path in (modes_file, script):
            os.chmod(path, 0o644)
        self.hostile = HostileSshd(list(plan.values()), self.authorized, modes_file, script)
        self.hostile.start()
        for mode, addr in plan.items():
            self.hosts[mode] = _Alias(self.hostile, addr)  # type: ignore[assignment]
        self._write_client_files()
        return self

    def stop(self) -> None:
        if self.hostile is not None:
            self.hostile.stop()
            self.hostile = None
        super().stop()
