"""Cost of one policy tick on a host with 10,000 extra processes and 20 real logins.

Run as root from the project venv:  /opt/sessionctl-venv/bin/python bench/policy_bench.py
The daemon's tick (list sessions, read pending logoffs and policy state, decide) is run
in this process; its CPU time (user + system, including forked /proc readers) is taken
from getrusage around each tick. For reference, the same run times `w -h` (what cron
idle-killer scripts parse) and `who`. Goal: tick <= 50 ms CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
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
    from sessionctl.policy.daemon import Daemon

    with contextlib.ExitStack() as stack:
        sshd = stack.enter_context(Sshd())
        users = [create_user() for _ in range(args.logins)]
        stack.callback(lambda: [remove_user(u) for u in users])
        logins = [stack.enter_context(Login(u, sshd)) for u in users]
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        config = workdir / "policy.toml"
        names = ", ".join(f'"{u.name}"' for u in users)
        config.write_text(f'[defaults]\ninterval = "30s"\n[[rule]]\nname = "idle"\n'
                          f'idle_limit = "8h"\nusers = [{names}]\n[[rule]]\nname = "disc"\n'
                          f'disc_limit = "2h"\nusers = [{names}]\n')
        stack.enter_context(SleeperFarm(args.processes))
        nproc = sum(1 for n in os.listdir("/proc") if n.isdigit())
        daemon = Daemon(str(config), dry_run=True, audit_log=str(workdir / "audit.jsonl"),
                        log=lambda line: None)
        decisions = daemon.tick()
        seen = {d.session.user for d in decisions if d.rule is not None}
        cpus, walls = [], []
        for _ in range(args.ticks):
            c0, w0 = cpu_now(), time.perf_counter()
            daemon.tick()
            cpus.append(cpu_now() - c0)
            walls.append(time.perf_counter() - w0)
        w = median_times(["w", "-h"], 7)
        who = median_times(["who"], 7)
        del logins
    med = statistics.median(cpus)
    p90 = sorted(cpus)[int(len(cpus) * 0.9) - 1]
    rows = [
        ["sessionctl policy tick (in the daemon)", f"{statistics.median(walls) * 1000:.1f}",
         f"{med * 1000:.1f}", f"{p90 * 1000:.1f}"],
        ["w -h (whole command)", f"{w[0] * 1000:.1f}", f"{w[1] * 1000:.1f}", "-"],
        ["who (whole command)", f"{who[0] * 1000:.1f}", f"{who[1] * 1000:.1f}", "-"],
    ]
    print(f"processes on host: {nproc}; lab logins selected by the rules: "
          f"{len(seen)}/{len(users)}; {args.ticks} ticks\n")
    print(table(rows, ["what", "wall ms (median)", "CPU ms (median)", "CPU ms (p90)"]))
    print(f"\ntick CPU {med * 1000:.1f} ms (goal <= 50 ms): "
          f"{'met' if med <= 0.05 else 'NOT met'}")
    return 0 if len(seen) == len(users) else 1


if __name__ == "__main__":
    sys.exit(main())
