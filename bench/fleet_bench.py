"""Fleet query on 20, 50 and 100 real sshd hosts: sessionctl vs pdsh, clush and Ansible.

Run as root:  flock /tmp/sessionctl-bench.lock /opt/sessionctl-venv/bin/python \\
                  bench/fleet_bench.py --tools-venv /opt/sessionctl-bench
(--tools-venv: a venv with ansible-core and ClusterShell; pdsh from apt; both made by
scripts/bench-tools.sh.)

Every "host" is its own sshd on 127.0.1.N sharing this machine (so the remote side of
every tool runs on the same 2 cores as the client). All tools log in as the same lab
user with the same key, ssh config and known_hosts, fan-out = number of hosts, and run
`who` (ours: a full session listing). Cold = no ssh connection up; for us "cold+ship"
also has an empty remote cache, so the zip is sent. "Warm, first reuse" = our
ControlMaster connections up (this run also starts the per-connection query servers);
"warm" = connections and query servers up (no process spawned per host). Cold runs are
interleaved over --rounds rounds; medians shown.
Default OpenSSH key exchange everywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import table, tool
from lab.fleet import Fleet
from lab.users import create_user, remove_user

from sessionctl.fleet import payload
from sessionctl.fleet.hosts import fold


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20,50,100")
    ap.add_argument("--tools-venv", default="/opt/sessionctl-bench")
    ap.add_argument("--no-ansible", action="store_true")
    ap.add_argument("--warm-runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates a user and sshds")
    sizes = [int(s) for s in args.sizes.split(",")]
    tools_bin = Path(args.tools_venv) / "bin"
    rows = []
    with contextlib.ExitStack() as stack:
        admin = create_user()
        stack.callback(remove_user, admin)
        fleet = stack.enter_context(Fleet(count=max(sizes), admin=admin.name))
        cfg = str(fleet.ssh_config)
        nproc = sum(1 for p in os.listdir("/proc") if p.isdigit())
        print(f"{len(fleet.hosts)} sshds up; {nproc} processes on this machine", flush=True)
        tmp = Path(tempfile.mkdtemp(prefix="sctest-fleetbench-"))
        stack.callback(shutil.rmtree, tmp, True)
        for n in sizes:
            nodes = fold(fleet.names[:n])  # fnode[01-99,100]
            ours = [tool("sessionctl"), "quser", "--servers", nodes, "--fanout", str(n),
                    "--ssh-config", cfg, "--control-dir", str(fleet.control_dir), "--json"]
            cache = admin.home / ".cache" / "sessionctl"

            def cold_ours(ship: bool, ours=ours, cache=cache) -> tuple[float, float, int]:
                fleet.close_masters()
                for marker in fleet.control_dir.glob("m-*"):  # no memory of earlier runs
                    marker.unlink()
                if ship:
                    shutil.rmtree(cache, ignore_errors=True)
                return run_timed(ours)

            env = {**os.environ, "PDSH_SSH_ARGS": f"-F {cfg} -o BatchMode=yes -l%u %h"}
            pdsh = ["pdsh", "-R", "ssh", "-l", admin.name, "-f", str(n), "-w", nodes, "who"]
            clush = [str(tools_bin / "clush"), "-f", str(n), "-l", admin.name, "-o", f"-F {cfg}",
                     "-w", nodes, "who"]
            # Other work may share the CPU: interleave the cold runs and take medians.
            samples: dict[str, list[tuple[float, float, int]]] = {}
            samples["sessionctl cold+ship"] = [cold_ours(True)]
            # pdsh running our remote agent (zip already cached there): the same remote
            # work as ours, so this row compares the fan-out engines alone
            zipped = f"~/.cache/sessionctl/sessionctl-{payload.build().digest[:40]}.pyz"
            snippet = (f"import os,sys; sys.path.insert(0, os.path.expanduser({zipped!r})); "
                       "from sessionctl.fleet.agent import main; main(['{\"op\": \"query\"}'])")
            same = f"python3 -I -S -c {shlex.quote(snippet)}"
            pdsh_same = [*pdsh[:-1], same]
            for _ in range(args.rounds):
                samples.setdefault("sessionctl cold", []).append(cold_ours(False))
                samples.setdefault("sessionctl warm, first reuse", []).append(run_timed(ours))
                samples.setdefault("sessionctl warm", []).extend(
                    run_timed(ours) for _ in range(args.warm_runs)
                )
                fleet.close_masters()
                samples.setdefault("pdsh -R ssh", []).append(_timed_env(pdsh, env))
                samples.setdefault("pdsh, our remote command", []).append(
                    _timed_env(pdsh_same, env))
                samples.setdefault("clush", []).append(run_timed(clush))
            if not args.no_ansible:
                samples["ansible -m command"] = [_ansible(tools_bin, tmp, fleet, admin.name, n)]
            results = {name: _median(runs) for name, runs in samples.items()}
            base = results["sessionctl cold"][0]
            for name, (wall, cpu, rc) in results.items():
                rows.append([str(n), name, f"{wall:.2f}", f"{cpu:.2f}", f"{cpu / n * 1000:.1f}",
                             f"{wall / base:.2f}", str(rc)])
            print(table(rows[-len(results):], HEADER), flush=True)
            print(flush=True)
    print(table(rows, HEADER))
    return 0


HEADER = ["hosts", "tool", "wall s", "client CPU s", "CPU ms/host", "wall / ours cold", "exit"]


def run_timed(argv: list[str]) -> tuple[float, float, int]:
    """common.run_timed, but a failed run's stderr is shown (figures must not hide errors)."""
    import time

    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and "sessionctl" in argv[0]:
            err.seek(0)
            print(f"[{' '.join(argv[:3])}... exit {code}]\n{err.read().decode()[-2000:]}",
                  file=sys.stderr, flush=True)
    return wall, usage.ru_utime + usage.ru_stime, code


def _median(runs: list[tuple[float, float, int]]) -> tuple[float, float, int]:
    return (
        statistics.median(w for w, _, _ in runs),
        statistics.median(c for _, c, _ in runs),
        max(r for _, _, r in runs),
    )


def _timed_env(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    old = dict(os.environ)
    os.environ.update(env)
    try:
        return run_timed(argv)
    finally:
        os.environ.clear()
        os.environ.update(old)


def _ansible(tools_bin: Path, tmp: Path, fleet: Fleet, user: str, n: int):
    inventory = tmp / f"inv{n}.ini"
    inventory.write_text("[fleet]\n" + "".join(f"fnode{i:02d}\n" for i in range(1, n + 1)))
    cp = tmp / f"cp{n}"
    cp.mkdir(mode=0o700)
    env = {
        "ANSIBLE_SSH_ARGS": f"-F {fleet.ssh_config} -o ControlMaster=auto -o ControlPersist=60s",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(cp),
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_REMOTE_USER": user,
        "ANSIBLE_NOCOLOR": "1",
    }
    argv = [str(tools_bin / "ansible"), "all", "-i", str(inventory), "-m", "command",
            "-a", "who", "-f", str(n)]
    try:
        return _timed_env(argv, env)
    finally:
        for sock in cp.iterdir():  # stop Ansible's own masters
            subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit",
                            "x"], capture_output=True, timeout=10)


if __name__ == "__main__":
    sys.exit(main())
