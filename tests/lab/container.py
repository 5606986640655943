"""A throwaway systemd container (systemd-nspawn) with a real systemd-logind, for lab tests.

The host has no systemd, so the systemd-logind backend is tested against a Debian
bookworm (systemd 252) container booted with ``systemd-nspawn -b``.

Lifecycle (``with SystemdContainer() as c: ...`` or ``start()``/``stop()``):

* ``scripts/lab-rootfs.sh`` makes sure the cached rootfs exists
  (``/var/cache/sessionctl-lab/rootfs``, about 45 s the first time, then instant);
* the run gets an overlayfs (lowerdir = cached rootfs, upper/work dirs in
  ``/var/tmp/sessionctl-lab/<name>``); the overlay is mounted only inside a private mount
  namespace (``unshare -m``) that nspawn runs in, so it disappears with the container and
  never shows up (or lingers) on the host.  The cached rootfs is never written to;
  ``copy_mode="copy"`` uses ``cp -a --reflink=auto`` instead (about 1 s slower);
* before boot the upper layer gets: a fresh machine-id and hostname, an sshd drop-in
  (own port on a free 127.0.0.x, UsePAM, password auth, root by key), logind
  ``KillUserProcesses=no``, volatile journal and masked timers/gettys;
* nspawn runs in its own cgroup (``<cgroup root>/sessionctl-lab/<name>``, in every
  hierarchy of a hybrid host), so parallel containers do not share nspawn's
  ``payload``/``supervisor`` cgroups and ``stop()`` can kill exactly our process tree;
* the container uses the unified cgroup hierarchy (cgroup v2) even on a hybrid host
  (``cgroup="unified"``), so sessions get ``/sys/fs/cgroup/user.slice/.../session-N.scope``
  with ``cgroup.kill``/``cgroup.freeze`` like on a current distribution;
* the venv the tests run from (``sys.prefix``) and the project checkout are bind-mounted read-only
  at the same paths, so ``/opt/sessionctl-venv/bin/<tool>`` runs inside;
* ``stop()`` asks the container to halt (SIGTERM to nspawn), kills our cgroup if that
  takes too long, and removes the run directory, our cgroups and nspawn's leftovers in
  ``/run/systemd/nspawn``.  A crashed test run leaves at most a run directory and empty
  cgroups behind (nspawn gets SIGTERM through PR_SET_PDEATHSIG); the next start sweeps them.

Facts worth knowing (measured on the Debian 12 lab VM, systemd 252 inside):

* boot to "running" + logind on the bus + sshd listening: about 0.35 s; stop: about 0.2 s;
* ``loginctl list-sessions --output=json`` works on 252 (keys: session, uid, user, seat,
  tty; no state/class - use ``show_session()``);
* ssh logins get numeric session ids (the kernel audit session id; pam_loginuid works in
  the container), ``su -`` via nsenter gets ``cN`` ids;
* ``exec()`` runs via ``nsenter -t <init> -a``: all namespaces, but the process stays in the
  caller's cgroup (``/../../..`` inside), outside any session;
* the system bus is reachable from the host too: ``system_bus_address``;
* ``loginctl terminate-session`` returns at once; a session whose process ignores SIGTERM and
  SIGHUP stays "closing" for 90 s (DefaultTimeoutStopSec) until systemd SIGKILLs the scope.

Pytest integration: tests/conftest.py can wrap the generator ``container_fixture()``::

    @pytest.fixture(scope="session")
    def systemd_container():
        yield from container_fixture()

It skips (pytest.skip) when not root / no systemd-nspawn, boots one container, yields the
``SystemdContainer`` and stops it afterwards.  Manual use: ``python tests/lab/container.py``
boots a container and prints how to enter it until Ctrl-C.

Needs root, systemd-nspawn (package systemd-container), util-linux (nsenter, unshare,
runuser inside), debootstrap (first run), openssh-client and sshpass for the ssh helpers.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ROOTFS_SCRIPT = PROJECT_ROOT / "scripts" / "lab-rootfs.sh"
LAB_DIR = Path(os.environ.get("SESSIONCTL_LAB_DIR", "/var/cache/sessionctl-lab"))
ROOTFS = LAB_DIR / "rootfs"
ROOTFS_MARKER = ".sessionctl-lab-ready"
RUN_BASE = Path("/var/tmp/sessionctl-lab")
# The venv the tests run from (its tools are what the tests call), bound at the same path.
VENV = Path(os.environ.get("SESSIONCTL_VENV") or sys.prefix)
CGROUP_GROUP = "sessionctl-lab"
NSPAWN = "systemd-nspawn"
ADDRESS_RANGE = range(20, 251)  # 127.0.0.20 .. 127.0.0.250

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Units that only cost boot time or wake up during tests.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-tmpfiles-clean.timer",
    "console-getty.service",
    "getty@tty1.service",
    "systemd-pstore.service",
)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PR_SET_PDEATHSIG = 1


class ContainerError(RuntimeError):
    """The lab container could not be prepared, booted or controlled."""


# -- helpers ----------------------------------------------------------------------------------


def unavailable_reason() -> str | None:
    """Why a container cannot be booted here (None if it can)."""
    if os.geteuid() != 0:
        return "systemd container lab needs root"
    if shutil.which(NSPAWN) is None:
        return "systemd-nspawn is not installed (apt-get install systemd-container)"
    for tool in ("nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    return None


def ensure_rootfs() -> Path:
    """Return the cached rootfs, building it with scripts/lab-rootfs.sh if needed.

    The script is the single source of truth for "complete" (its marker holds the
    recipe's version); when the rootfs is ready it returns within milliseconds.
    """
    proc = subprocess.run(
        ["bash", str(ROOTFS_SCRIPT)],
        capture_output=True,
        text=True,
        env={**os.environ, "SESSIONCTL_LAB_DIR": str(LAB_DIR)},
        check=False,
    )
    if proc.returncode != 0:
        raise ContainerError(f"{ROOTFS_SCRIPT} failed ({proc.returncode}):\n{proc.stderr}")
    path = Path(proc.stdout.strip().splitlines()[-1])
    if not (path / ROOTFS_MARKER).is_file():
        raise ContainerError(f"{ROOTFS_SCRIPT} printed {path}, which has no {ROOTFS_MARKER}")
    return path


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (identifies a process together with its pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start_time: str | None) -> bool:
    return start_time is not None and _proc_start_time(pid) == start_time


def cgroup_roots() -> list[Path]:
    """Mount points of the hierarchies nspawn places itself in: cgroup2 and name=systemd."""
    roots: list[Path] = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            fstype, _src, opts = [*post.split(), "", "", ""][:3]
            mnt = Path(fields[4].replace("\\040", " "))
            if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in opts.split(",")):
                roots.append(mnt)
    return roots


def _rmdir_cgroup_tree(path: Path) -> None:
    """Remove an (empty of processes) cgroup directory tree, deepest first."""
    if not path.is_dir():
        return
    for dirpath, _dirnames, _files in os.walk(path, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)


def _cgroup_pids(path: Path) -> set[int]:
    pids: set[int] = set()
    for dirpath, _dirnames, _files in os.walk(path):
        with contextlib.suppress(OSError):
            pids.update(int(x) for x in Path(dirpath, "cgroup.procs").read_text().split())
    return pids


def _kill_cgroup(path: Path) -> None:
    """SIGKILL every process in a cgroup tree (cgroup.kill on v2, else one by one)."""
    if not path.is_dir():
        return
    kill_file = path / "cgroup.kill"
    if kill_file.exists():
        with contextlib.suppress(OSError):
            kill_file.write_text("1")
            return
    for pid in _cgroup_pids(path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _rm_tree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], check=False)


def _listening_ipv4() -> set[str]:
    """Local IPv4 addresses with a listening TCP socket (0.0.0.0 included)."""
    found: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] == "0A":  # TCP_LISTEN
                hexaddr = parts[1].split(":")[0]
                found.add(socket.inet_ntoa(bytes.fromhex(hexaddr)[::-1]))
    return found


def _reserved_addresses() -> set[str]:
    """Addresses recorded by other live runs of this module."""
    reserved: set[str] = set()
    if RUN_BASE.is_dir():
        for entry in RUN_BASE.iterdir():
            with contextlib.suppress(OSError):
                reserved.add((entry / "address").read_text().split()[0])
    return reserved


@contextlib.contextmanager
def _runs_lock() -> Iterator[None]:
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(LAB_DIR / ".runs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def sweep_stale_runs() -> list[str]:
    """Remove run directories (and cgroups) of earlier runs whose owner process is gone."""
    removed: list[str] = []
    runs = list(RUN_BASE.iterdir()) if RUN_BASE.is_dir() else []
    for run in runs:
        owner = run / "owner"
        try:
            pid_s, start = owner.read_text().split()
            if _alive(int(pid_s), start):
                continue
        except (OSError, ValueError):
            # No owner file: a start that died before writing it; give it time.
            with contextlib.suppress(OSError):
                if time.time() - run.stat().st_mtime < 600:
                    continue
        for root in cgroup_roots():
            _kill_cgroup(root / CGROUP_GROUP / run.name)
        time.sleep(0.2)
        for root in cgroup_roots():
            _rmdir_cgroup_tree(root / CGROUP_GROUP / run.name)
        _remove_nspawn_runtime(run.name)
        _rm_tree(run)
        removed.append(run.name)
    for root in cgroup_roots():
        with contextlib.suppress(OSError):
            (root / CGROUP_GROUP).rmdir()  # fails while another run uses it
    with contextlib.suppress(OSError):
        RUN_BASE.rmdir()
    return removed


def _remove_nspawn_runtime(machine: str) -> None:
    """nspawn leaves /run/systemd/nspawn/*/MACHINE when /run is not a tmpfs."""
    base = Path("/run/systemd/nspawn")
    if base.is_dir():
        for sub in base.iterdir():
            target = sub / machine
            if target.exists() or target.is_symlink():
                _rm_tree(target)


def _set_pdeathsig() -> None:
    """preexec_fn: SIGTERM nspawn if the Python process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


# The wrapper runs inside `unshare -m --propagation private`: it moves itself into our
# cgroups, mounts the overlay (only visible in this mount namespace) and execs nspawn.
_WRAPPER = r"""
set -e
IFS=:
for f in $LAB_CGROUP_PROCS; do echo $$ > "$f"; done
unset IFS
if [ -n "$1" ]; then mount -t overlay sessionctl-lab -o "$1" "$2"; fi
shift 2
exec "$@"
"""


# -- the container ----------------------------------------------------------------------------


class SystemdContainer:
    """A booted Debian bookworm systemd container; see the module docstring.

    Attributes after start(): ``name`` (machine name), ``address``/``port`` (its sshd),
    ``root`` (the container's / as seen from the host, via /proc/PID/root), ``init_pid``
    (host pid of the container's systemd), ``nspawn_pid``, ``run_dir``, ``log_path``.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        boot_timeout: float = 60.0,
        copy_mode: str = "overlay",
        cgroup: str = "unified",
        bind_ro: Sequence[str | Path] | None = None,
        bind_venv: bool = True,
        extra_nspawn_args: Sequence[str] = (),
        host_packages: Sequence[str] = (),
        layers: Sequence[str | Path] = (),
    ) -> None:
        if copy_mode not in ("overlay", "copy"):
            raise ValueError("copy_mode must be 'overlay' or 'copy'")
        if cgroup not in ("unified", "hybrid", "auto"):
            raise ValueError("cgroup must be 'unified', 'hybrid' or 'auto'")
        self.name = name or f"sctlab-{secrets.token_hex(4)}"
        self.boot_timeout = boot_timeout
        self.copy_mode = copy_mode
        self.cgroup = cgroup
        binds = [PROJECT_ROOT] if bind_ro is None else [Path(p) for p in bind_ro]
        if bind_venv:
            binds.insert(0, VENV)
        self.bind_ro = [p for p in binds if p.exists()]
        self.extra_nspawn_args = list(extra_nspawn_args)
        self.host_packages = list(host_packages)
        # Read-only layers stacked over the rootfs, topmost first (e.g. the desktop layer
        # of scripts/lab-desktop-layer.sh); overlay mode only.
        self.layers = [Path(p) for p in layers]
        if self.layers and copy_mode != "overlay":
            raise ValueError("layers need copy_mode='overlay'")

        self.run_dir = RUN_BASE / self.name
        self.log_path = self.run_dir / "nspawn.log"
        self.ssh_key = self.run_dir / "id_ed25519"
        self.address = ""
        self.port = 0
        self.rootfs = ROOTFS
        self.nspawn_pid = 0
        self.init_pid = 0
        self.timings: dict[str, float] = {}
        self.system_state = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None
        self._tree: Path | None = None  # directory nspawn boots (-D)
        self._layer: Path | None = None  # where configuration is written before boot
        self._cgroups: list[Path] = []
        self._spawned: list[subprocess.Popen] = []
        self._started = False
        self._own_run_dir = False

    # -- context manager --------------------------------------------------------------------

    def __enter__(self) -> SystemdContainer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def root(self) -> Path:
        """The container's root directory as seen from the host."""
        return Path(f"/proc/{self.init_pid}/root")

    @property
    def system_bus_address(self) -> str:
        """D-Bus address of the container's system bus, usable from the host as root
        (e.g. ``jeepney.io.blocking.open_dbus_connection(c.system_bus_address)``)."""
        return f"unix:path=/proc/{self.init_pid}/root/run/dbus/system_bus_socket"

    # -- start --------------------------------------------------------------------------------

    def start(self) -> SystemdContainer:
        if self._started:
            raise ContainerError("container already started")
        reason = unavailable_reason()
        if reason:
            raise ContainerError(reason)
        self._started = True
        t0 = time.monotonic()
        try:
            self.rootfs = ensure_rootfs()
            self.timings["rootfs"] = time.monotonic() - t0
            sweep_stale_runs()
            with _runs_lock():
                self._reserve_address()
            t1 = time.monotonic()
            self._prepare_tree()
            self.timings["copy"] = time.monotonic() - t1
            t2 = time.monotonic()
            self._configure()
            self.timings["configure"] = time.monotonic() - t2
            t3 = time.monotonic()
            self._launch()
            self._wait_until_ready(t3 + self.boot_timeout)
            self.timings["boot"] = time.monotonic() - t3
        except BaseException:
            self.stop()
            raise
        return self

    def _reserve_address(self) -> None:
        RUN_BASE.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(mode=0o700)  # fails if the name is in use
        self._own_run_dir = True
        (self.run_dir / "owner").write_text(f"{os.getpid()} {_proc_start_time(os.getpid())}\n")
        busy = _listening_ipv4() | _reserved_addresses()
        if "0.0.0.0" in busy:
            busy.discard("0.0.0.0")  # a wildcard listener only blocks its own port
        candidates = [f"127.0.0.{x}" for x in ADDRESS_RANGE]
        random.shuffle(candidates)
        for address in candidates:
            if address in busy:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((address, 0))
                    port = sock.getsockname()[1]
            except OSError:
                continue
            self.address, self.port = address, port
            (self.run_dir / "address").write_text(f"{address} {port}\n")
            return
        raise ContainerError("no free loopback address in 127.0.0.20-250")

    def _prepare_tree(self) -> None:
        if self.copy_mode == "copy":
            tree = self.run_dir / "rootfs"
            subprocess.run(["cp", "-a", "--reflink=auto", str(self.rootfs), str(tree)], check=True)
            self._tree = self._layer = tree
            return
        for sub in ("upper", "work", "merged"):
            (self.run_dir / sub).mkdir()
        upper = self.run_dir / "upper"
        # The upper dir's own metadata becomes that of the container's "/" (mkdir gave 0700).
        st = self.rootfs.stat()
        os.chmod(upper, st.st_mode & 0o7777)
        os.chown(upper, st.st_uid, st.st_gid)
        for path in (self.rootfs, self.run_dir, *self.layers):
            if {",", ":"} & set(str(path)):
                raise ContainerError(f"overlay paths may not contain ',' or ':': {path}")
        self._tree = self.run_dir / "merged"
        self._layer = upper

    # Writing into the upper layer before the overlay is mounted: parent directories are
    # created with the metadata of the lower ones, otherwise they would shadow them.
    def _layer_path(self, rel: str) -> Path:
        assert self._layer is not None
        rel = rel.lstrip("/")
        parts = Path(rel).parts
        cur_layer, below = self._layer, Path()
        for part in parts[:-1]:
            cur_layer, below = cur_layer / part, below / part
            cur_lower = self._lower(below)
            if cur_layer.is_dir():
                continue
            if cur_lower.is_symlink() or (cur_lower.exists() and not cur_lower.is_dir()):
                raise ContainerError(f"cannot write below {cur_lower}: not a directory")
            if cur_lower.is_dir():
                st = cur_lower.stat()
                cur_layer.mkdir()
                os.chmod(cur_layer, st.st_mode & 0o7777)
                os.chown(cur_layer, st.st_uid, st.st_gid)
            else:
                cur_layer.mkdir(mode=0o755)
        return self._layer / rel

    def _lower(self, rel: Path) -> Path:
        """``rel`` in the topmost read-only layer that has it (the rootfs last)."""
        for layer in self.layers:
            if (layer / rel).exists() or (layer / rel).is_symlink():
                return layer / rel
        return self.rootfs / rel

    def _write(self, rel: str, content: str, mode: int = 0o644) -> None:
        path = self._layer_path(rel)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.write_text(content)
        os.chmod(path, mode)

    def _configure(self) -> None:
        self._write("etc/machine-id", secrets.token_hex(16) + "\n", 0o444)
        self._write("etc/hostname", self.name + "\n")
        self._write(
            "etc/hosts",
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.name}\n::1\tlocalhost ip6-localhost\n",
        )
        self._write(
            "etc/ssh/sshd_config.d/sessionctl-lab.conf",
            "# written by tests/lab/container.py\n"
            f"ListenAddress {self.address}:{self.port}\n"
            "UsePAM yes\n"
            "PasswordAuthentication yes\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin yes\n"
            "UseDNS no\n"
            "MaxStartups 100:30:200\n"
            "MaxSessions 100\n"
            "LoginGraceTime 30\n",
        )
        self._write(
            "etc/systemd/logind.conf.d/sessionctl-lab.conf",
            "[Login]\nKillUserProcesses=no\n",
        )
        self._write(
            "etc/systemd/journald.conf.d/sessionctl-lab.conf",
            "[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n",
        )
        for unit in MASKED_UNITS:
            link = self._layer_path(f"etc/systemd/system/{unit}")
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to("/dev/null")
        # Root logs in with a per-run key (no root password is set).
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                self.name,
                "-f",
                str(self.ssh_key),
            ],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        self._write(
            "root/.ssh/authorized_keys",
            Path(f"{self.ssh_key}.pub").read_text(),
            0o600,
        )
        self._install_host_packages()

    def _install_host_packages(self) -> None:
        """Copy the files of Debian packages installed on the host (same release as the
        rootfs) into this run's upper layer: extra tools for one container, while the
        shared cached rootfs stays as it is. Modes, owners (setgid utmp helpers) and
        symlinks are kept; dpkg's database inside does not know about them."""
        for package in self.host_packages:
            listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
            if listed.returncode != 0:
                raise ContainerError(f"host package {package} is not installed: "
                                     f"{listed.stderr.strip()}")
            paths = listed.stdout.splitlines()
            for path in list(paths):  # SONAME links made by ldconfig are not listed
                if ".so." in path:
                    directory = Path(path).parent
                    paths += [str(link) for link in directory.glob(Path(path).name.split(
                        ".so.")[0] + ".so.*") if link.is_symlink()
                        and os.readlink(link) == Path(path).name]
            for path in paths:
                src = Path(path)
                if not path.startswith("/") or (src.is_dir() and not src.is_symlink()):
                    continue
                if src.is_symlink() and src.resolve().is_dir():
                    continue  # e.g. /lib -> usr/lib: the rootfs has its own
                if not src.exists() and not src.is_symlink():
                    continue  # a diversion or a file removed on the host
                # through the rootfs's own links (merged /usr: /lib -> usr/lib)
                parent = Path(os.path.realpath(self.rootfs / src.parent.relative_to("/")))
                if not parent.is_relative_to(self.rootfs):
                    continue
                rel = parent.relative_to(self.rootfs) / src.name
                if (self.rootfs / rel).exists() or (self.rootfs / rel).is_symlink():
                    continue  # the rootfs has it already
                dest = self._layer_path(str(rel))
                if dest.is_symlink() or dest.exists():
                    continue
                subprocess.run(["cp", "-a", "--no-dereference", path, str(dest)], check=True)
        if "screen" in self.host_packages:  # as Debian's screen-cleanup does at boot
            self._write("etc/tmpfiles.d/sessionctl-lab-screen.conf",
                        "d /run/screen 1777 root utmp -\n")

    def _make_cgroups(self) -> list[Path]:
        procs: list[Path] = []
        for root in cgroup_roots():
            group = root / CGROUP_GROUP / self.name
            group.mkdir(parents=True)  # a fresh name: must not exist yet
            self._cgroups.append(group)
            procs.append(group / "cgroup.procs")
        return procs

    def _nspawn_argv(self) -> list[str]:
        assert self._tree is not None
        argv = [
            NSPAWN,
            "--boot",
            f"--directory={self._tree}",
            f"--machine={self.name}",
            "--register=no",
            "--keep-unit",
            "--console=read-only",
            "--link-journal=no",
            "--resolv-conf=off",
            "--timezone=off",
        ]
        argv += [f"--bind-ro={p}" for p in self.bind_ro]
        argv += self.extra_nspawn_args
        return argv

    def _launch(self) -> None:
        overlay_opts = ""
        if self.copy_mode == "overlay":
            overlay_opts = (
                f"lowerdir={':'.join(str(p) for p in [*self.layers, self.rootfs])},"
                f"upperdir={self.run_dir / 'upper'},"
                f"workdir={self.run_dir / 'work'}"
            )
        env = {
            "PATH": os.environ.get("PATH", CONTAINER_PATH),
            "LAB_CGROUP_PROCS": ":".join(str(p) for p in self._make_cgroups()),
            "SYSTEMD_COLORS": "0",
        }
        if self.cgroup == "unified":
            env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1"
        elif self.cgroup == "hybrid":
            env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "0"
        argv = [
            "unshare", "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", _WRAPPER, "sessionctl-lab", overlay_opts, str(self._tree),
            *self._nspawn_argv(),
        ]  # fmt: skip
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_set_pdeathsig,
        )
        self.nspawn_pid = self._proc.pid  # unshare and sh exec, so this becomes nspawn
        (self.run_dir / "nspawn.pid").write_text(
            f"{self.nspawn_pid} {_proc_start_time(self.nspawn_pid)}\n"
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        text = _ANSI.sub("", text).replace("\r", "")
        return "\n".join(text.splitlines()[-lines:])

    def _fail(self, what: str) -> ContainerError:
        return ContainerError(
            f"container {self.name}: {what}\n--- {self.log_path} (tail) ---\n{self.log_tail()}"
        )

    def _find_init_pid(self) -> int:
        """The container's PID 1: a child of nspawn whose innermost pid is 1."""
        try:
            children = (
                Path(f"/proc/{self.nspawn_pid}/task/{self.nspawn_pid}/children").read_text().split()
            )
        except OSError:
            return 0
        for child in children:
            try:
                status = Path(f"/proc/{child}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    if len(ids) >= 2 and ids[-1] == "1":
                        return int(child)
        return 0

    def _wait_until_ready(self, deadline: float) -> None:
        assert self._proc is not None
        stage = "waiting for the container's init process"

        def check_alive() -> None:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise self._fail(f"nspawn exited with {self._proc.returncode} ({stage})")

        while not self.init_pid:
            check_alive()
            if time.monotonic() > deadline:
                raise self._fail(f"timed out {stage}")
            self.init_pid = self._find_init_pid()
            if not self.init_pid:
                time.sleep(0.02)

        steps: list[tuple[str, list[str] | None]] = [
            ("systemctl is-system-running", ["systemctl", "is-system-running"]),
            (
                "logind to answer ListSessions on the system bus",
                ["busctl", "--timeout=2", "call", "org.freedesktop.login1",
                 "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                 "ListSessions"],
            ),
            (f"sshd to listen on {self.address}:{self.port}", None),
        ]  # fmt: skip
        last = ""
        for stage, cmd in steps:  # check_alive() reports the current stage
            while True:
                check_alive()
                if time.monotonic() > deadline:
                    raise self._fail(f"timed out waiting for {stage} (last: {last.strip()!r})")
                if cmd is None:
                    if self._ssh_banner():
                        break
                else:
                    remaining = max(1.0, deadline - time.monotonic())
                    try:
                        res = self.exec(cmd, timeout=min(5.0, remaining))
                    except subprocess.TimeoutExpired:
                        last = "timeout"
                        continue
                    last = res.stdout + res.stderr
                    if cmd[0] == "systemctl":
                        state = res.stdout.strip()
                        if state in ("running", "degraded"):
                            self.system_state = state
                            break
                        if state in ("maintenance", "stopping"):
                            raise self._fail(f"system state is {state!r}")
                    elif res.returncode == 0:
                        break
                time.sleep(0.05)

    def _ssh_banner(self) -> bool:
        try:
            with socket.create_connection((self.address, self.port), timeout=1.0) as sock:
                return sock.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    # -- running things inside -----------------------------------------------------------------

    def nsenter_argv(self, user: str | None = None) -> list[str]:
        """Host argv prefix that runs a command inside the container (as root or USER)."""
        if not self.init_pid:
            raise ContainerError("container is not running")
        argv = ["nsenter", "--target", str(self.init_pid), "--all", "--"]
        if user is not None and user != "root":
            argv += ["runuser", "-u", user, "--"]
        return argv

    @staticmethod
    def container_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment for commands inside (the host's is not passed through)."""
        base = {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
        base.update(env or {})
        return base

    def exec(
        self,
        cmd: Sequence[str],
        user: str | None = None,
        *,
        timeout: float | None = 60.0,
        input: str | None = None,
        check: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run cmd inside the container (via nsenter; as USER via runuser) and wait.

        The command runs in all of the container's namespaces but stays in the caller's
        cgroup (outside any logind session).  On timeout the whole process group is
        killed and subprocess.TimeoutExpired is raised.
        """
        argv = self.nsenter_argv(user) + list(cmd)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.container_env(env),
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(argv, timeout or 0, out, err) from None
        result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        if check and result.returncode != 0:
            raise ContainerError(
                f"{' '.join(cmd)} failed with {result.returncode} in {self.name}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def spawn(
        self, cmd: Sequence[str], user: str | None = None, **popen_kwargs: object
    ) -> subprocess.Popen:
        """Start cmd inside the container in the background; stop() kills leftovers."""
        popen_kwargs.setdefault("env", self.container_env())
        popen_kwargs.setdefault("start_new_session", True)
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(self.nsenter_argv(user) + list(cmd), **popen_kwargs)  # type: ignore[call-overload]
        self._spawned.append(proc)
        return proc

    def add_user(self, name_prefix: str = "sctest") -> tuple[str, str]:
        """Create a user with a home directory and a random password inside."""
        name = f"{name_prefix}{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(12)
        self.exec(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
        self.exec(["chpasswd"], input=f"{name}:{password}\n", check=True)
        return name, password

    # -- ssh ---------------------------------------------------------------------------------

    def ssh_login_argv(
        self,
        user: str,
        password: str | None = None,
        *,
        tty: bool = True,
        command: Sequence[str] = (),
    ) -> list[str]:
        """Host argv for an ssh login to the container's sshd.

        tty=True gives ``ssh -tt`` (an interactive login with a pty on the remote side;
        run it in a local pty); tty=False gives ``ssh -T``.  With a password the argv
        starts with ``sshpass -p``; without one only root can log in (per-run key).
        """
        argv = [
            "ssh",
            "-tt" if tty else "-T",
            "-F", "/dev/null",
            "-p", str(self.port),
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10",
            "-o", "ServerAliveInterval=5",
        ]  # fmt: skip
        if password is None:
            if user != "root":
                raise ValueError("a password is needed for non-root users")
            argv += [
                "-i", str(self.ssh_key),
                "-o", "IdentitiesOnly=yes",
                "-o", "PreferredAuthentications=publickey",
                "-o", "BatchMode=yes",
            ]  # fmt: skip
        else:
            argv = ["sshpass", "-p", password, *argv]
            argv += [
                "-o", "PreferredAuthentications=password",
                "-o", "PubkeyAuthentication=no",
                "-o", "NumberOfPasswordPrompts=1",
            ]  # fmt: skip
        argv += [f"{user}@{self.address}", *command]
        return argv

    def ssh_notty_argv(
        self, user: str, password: str | None = None, command: Sequence[str] = ()
    ) -> list[str]:
        """Like ssh_login_argv(tty=False): no pty on either side (ssh -T)."""
        return self.ssh_login_argv(user, password, tty=False, command=command)

    # -- logind -----------------------------------------------------------------------------

    def loginctl_sessions(self) -> list[dict]:
        """``loginctl list-sessions --output=json`` inside (systemd 252: session, uid,
        user, seat, tty)."""
        res = self.exec(["loginctl", "list-sessions", "--no-pager", "--output=json"], check=True)
        return json.loads(res.stdout or "[]")

    def show_session(self, session_id: str) -> dict[str, str]:
        """``loginctl show-session ID`` properties (Id, Name, TTY, State, Scope, Leader...)."""
        res = self.exec(["loginctl", "show-session", "--no-pager", session_id], check=True)
        return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)

    # -- stop -------------------------------------------------------------------------------

    def stop(self, timeout: float = 15.0) -> None:
        """Halt the container, then remove everything this run created. Idempotent."""
        if not self._started:
            return
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)  # nspawn: container halt
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for group in self._cgroups:
                    _kill_cgroup(group)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        # Anything still in our cgroups (nothing, normally) is killed.
        for group in self._cgroups:
            if _cgroup_pids(group):
                _kill_cgroup(group)
        for spawned in self._spawned:
            if spawned.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(spawned.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spawned.wait(5)
        self._spawned.clear()
        deadline = time.monotonic() + 5
        for group in self._cgroups:
            while _cgroup_pids(group) and time.monotonic() < deadline:
                time.sleep(0.05)
            _rmdir_cgroup_tree(group)
            with contextlib.suppress(OSError):
                group.parent.rmdir()  # .../sessionctl-lab, if no other run uses it
        self._cgroups.clear()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._own_run_dir:
            _remove_nspawn_runtime(self.name)
            _rm_tree(self.run_dir)
            self._own_run_dir = False
        with contextlib.suppress(OSError):
            RUN_BASE.rmdir()
        self._proc = None
        self.init_pid = 0
        self._started = False


def leftovers_of(name: str) -> list[str]:
    """What a stopped container NAME left behind on the host (empty list: nothing)."""
    found = []
    if (RUN_BASE / name).exists():
        found.append(f"run dir {RUN_BASE / name}")
    for root in cgroup_roots():
        if (root / CGROUP_GROUP / name).exists():
            found.append(f"cgroup {root / CGROUP_GROUP / name}")
    found += [f"nspawn runtime {p}" for p in Path("/run/systemd/nspawn").glob(f"*/{name}")]
    if name in Path("/proc/self/mountinfo").read_text():
        found.append("a mount in /proc/self/mountinfo")
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if name.encode() in cmdline:
            found.append(f"process {proc.name}: {cmdline!r}")
    return found


def container_fixture(**kwargs: object) -> Iterator[SystemdContainer]:
    """Generator for a pytest fixture: skip if impossible, boot, yield, stop.

    Wrap it in conftest.py: ``yield from container_fixture()`` inside a fixture.
    kwargs go to SystemdContainer.
    """
    import pytest

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with SystemdContainer(**kwargs) as container:  # type: ignore[arg-type]
        yield container


def _main(argv: Sequence[str]) -> int:
    reason = unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 1

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Explicit handlers: a shell may start us with SIGINT ignored (background job).
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with SystemdContainer() as c:
        print(f"container {c.name} up: {c.timings}", flush=True)
        print(f"  enter:  {' '.join(c.nsenter_argv())} bash")
        print(f"  ssh:    {' '.join(c.ssh_login_argv('root'))}")
        print("Ctrl-C (or SIGTERM) stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
