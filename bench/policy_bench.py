"""Cost of one policy tick on a host with 10,000 extra processes and 20 real logins.

Run as root from the project venv:  /opt/sessionctl-venv/bin/python bench/policy_bench.py
The daemon's tick (list sessions, read pending logoffs and policy state, decide) is run
in this process; its CPU time (user + system, including forked /proc readers) is taken
from getrusage around each tick. Two policies on the same host, ticks alternating: the
input-only rules of before, and every activity source on (input, output, cpu, clients,
forwards; each login has an SSH local forward), a min_rss rule and a [pressure] section.
For reference, the same run times `w -h` (what cron idle-killer scripts parse) and `who`.
Goals: input-only tick <= 50 ms CPU; every source on <= 25 ms CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import SleeperFarm, median_times, table
from lab.login import Login
from lab.sshd import Sshd
from lab.users import create_user, remove_user


def cpu_now() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=10_000)
    ap.add_argument("--logins", type=int, default=20)
    ap.add_argument("--ticks", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates users and an sshd")
    from sessionctl.policy.config import ACTIVITY_SOURCES
    from sessionctl.policy.daemon import Daemon

    with contextlib.ExitStack() as stack:
        sshd = stack.enter_context(Sshd())
        users = [create_user() for _ in range(args.logins)]
        stack.callback(lambda: [remove_user(u) for u in users])
        ports = [_free_port() for _ in users]
        logins = [stack.enter_context(Login(u, sshd, ssh_args=(
            "-L", f"127.0.0.1:{port}:{sshd.address}:{sshd.port}")))
            for u, port in zip(users, ports, strict=True)]
        forwards = [socket.create_connection(("127.0.0.1", port), timeout=10)
                    for port in ports]  # each forward carries an SSH banner: real traffic
        stack.callback(lambda: [c.close() for c in forwards])
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        os.environ["SESSIONCTL_STATE_DIR"] = str(workdir / "state")
        os.environ["SESSIONCTL_RUN_DIR"] = str(workdir / "run")
        names = ", ".join(f'"{u.name}"' for u in users)
        plain, every = workdir / "plain.toml", workdir / "every.toml"
        plain.write_text(f'[defaults]\ninterval = "30s"\n[[rule]]\nname = "idle"\n'
                         f'idle_limit = "8h"\nusers = [{names}]\n[[rule]]\nname = "disc"\n'
                         f'disc_limit = "2h"\nusers = [{names}]\n')
        every.write_text(
            f'[defaults]\ninterval = "30s"\nactivity = {json.dumps(list(ACTIVITY_SOURCES))}\n'
            f'cpu_active = "5%"\n[[rule]]\nname = "idle"\nidle_limit = "8h"\n'
            f'users = [{names}]\n[[rule]]\nname = "big"\nidle_limit = "1h"\nmin_rss = "1G"\n'
            f'users = [{names}]\n[[rule]]\nname = "disc"\ndisc_limit = "2h"\n'
            f'users = [{names}]\n[pressure]\nabove = 50\nusers = [{names}]\n')
        stack.enter_context(SleeperFarm(args.processes))
        nproc = sum(1 for n in os.listdir("/proc") if n.isdigit())
        daemons = {name: Daemon(str(path), dry_run=True, log=lambda line: None,
                                audit_log=str(workdir / "audit.jsonl"))
                   for name, path in (("plain", plain), ("every", every))}
        seen = {}
        for name, daemon in daemons.items():
            decisions = daemon.tick()
            seen[name] = {d.session.user for d in decisions if d.rule is not None}
            forwarded = [d for d in decisions if "forwards" in d.readings.last_active]
            if name == "every" and len(forwarded) != len(users):
                print(f"only {len(forwarded)} logins with forward traffic seen", file=sys.stderr)
                return 1
        cpus: dict[str, list[float]] = {name: [] for name in daemons}
        walls: dict[str, list[float]] = {name: [] for name in daemons}
        for _ in range(args.ticks):
            for name, daemon in daemons.items():
                c0, w0 = cpu_now(), time.perf_counter()
                daemon.tick()
                cpus[name].append(cpu_now() - c0)
                walls[name].append(time.perf_counter() - w0)
        w = median_times(["w", "-h"], 7)
        who = median_times(["who"], 7)
        del logins
    rows = []
    for name, what in (("plain", "policy tick, input only (in the daemon)"),
                       ("every", "policy tick, every activity source + min_rss + pressure")):
        c = sorted(cpus[name])
        p90 = c[int(len(c) * 0.9) - 1]
        rows.append([what, f"{statistics.median(walls[name]) * 1000:.1f}",
                     f"{statistics.median(c) * 1000:.1f}", f"{p90 * 1000:.1f}"])
    rows += [
        ["w -h (whole command)", f"{w[0] * 1000:.1f}", f"{w[1] * 1000:.1f}", "-"],
        ["who (whole command)", f"{who[0] * 1000:.1f}", f"{who[1] * 1000:.1f}", "-"],
    ]
    print(f"processes on host: {nproc}; lab logins selected by the rules: "
          f"{len(seen['every'])}/{len(users)}; {args.ticks} ticks each; load average "
          f"{os.getloadavg()[0]:.2f}\n")
    print(table(rows, ["what", "wall ms (median)", "CPU ms (median)", "CPU ms (p90)"]))
    plain_med, every_med = (statistics.median(cpus[n]) for n in ("plain", "every"))
    print(f"\ninput-only tick CPU {plain_med * 1000:.1f} ms (goal <= 50 ms): "
          f"{'met' if plain_med <= 0.05 else 'NOT met'}")
    print(f"every-source tick CPU {every_med * 1000:.1f} ms (goal <= 25 ms): "
          f"{'met' if every_med <= 0.025 else 'NOT met'}")
    return 0 if all(len(v) == len(users) for v in seen.values()) else 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
