"""sessionctl top against htop -d 10, and one `sessionctl users`, on a host with 10,000
extra processes and real logins.

Run as root from the project venv (wrap in the shared bench lock):
  flock /tmp/sessionctl-bench.lock /opt/sessionctl-venv/bin/python bench/top_bench.py
Both screens run at the same time, each in its own 80x24 tmux window on a private tmux
server, for --seconds (default 60) at 1 Hz (htop -d 10 = every 1.0 s). CPU is read from
/proc/PID/stat of each screen's process (user + system, children included) from after a
warm-up to the end. `sessionctl users` is timed with wait4 (median of --runs runs; its
1 s measuring interval is a sleep, not CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time

from common import SleeperFarm, median_times, table, tool
from lab import procs
from lab.login import Login
from lab.sshd import Sshd
from lab.users import create_user, remove_user

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a process, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    fields = raw[raw.rindex(b")") + 2 :].split()
    return sum(int(x) for x in fields[11:15]) / TICKS


class Screen:
    """One command in an 80x24 window of a private tmux server."""

    def __init__(self, name: str, command: str) -> None:
        self.base = ["tmux", "-L", f"sctest-bench-{os.getpid()}-{name}", "-f", "/dev/null"]
        subprocess.run([*self.base, "new-session", "-d", "-x", "80", "-y", "24", "-s", name,
                        "-e", "TERM=xterm-256color", f"exec {command}"], check=True)
        out = subprocess.run([*self.base, "display", "-p", "-t", name, "#{pane_pid}"],
                             capture_output=True, text=True, check=True).stdout
        self.pid = int(out.strip())

    def capture(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p"], capture_output=True,
                              text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=10_000)
    ap.add_argument("--logins", type=int, default=5)
    ap.add_argument("--per-login", type=int, default=100, help="sleepers in each login")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--screenshot", action="store_true", help="print top's screen at the end")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates users and an sshd")
    if shutil.which("htop") is None or shutil.which("tmux") is None:
        sys.exit("needs htop and tmux (scripts/bootstrap.sh --test installs them)")
    with contextlib.ExitStack() as stack:
        sshd = stack.enter_context(Sshd())
        users = [create_user() for _ in range(args.logins)]
        stack.callback(lambda: [remove_user(u) for u in users])
        logins = [stack.enter_context(Login(u, sshd)) for u in users]
        for login in logins:
            login.run(f"sh -c 'for i in $(seq {args.per_login}); do sleep 3600 & done; wait' "
                      ">/dev/null 2>&1 &")
        logins[0].run("sh -c 'while :; do :; done' >/dev/null 2>&1 &")
        procs.wait_until(lambda: all(len(g.pids()) >= args.per_login for g in logins), 60)
        stack.enter_context(SleeperFarm(args.processes))
        nproc = sum(1 for n in os.listdir("/proc") if n.isdigit())
        in_sessions = sum(len(g.pids()) for g in logins)

        users_cpu = {
            "sessionctl users": median_times([tool("sessionctl"), "users"], args.runs)[1],
            "sessionctl users --processes --pss": median_times(
                [tool("sessionctl"), "users", "--processes", "--pss"], args.runs)[1],
        }
        top = Screen("top", f"{tool('sessionctl')} top")
        stack.callback(top.close)
        htop = Screen("htop", "htop -d 10")
        stack.callback(htop.close)
        time.sleep(5)  # warm-up: start-up and the first readings are not counted
        top.keys("e")  # expand every user and session: the heaviest view
        start = {s: cpu_seconds(s.pid) for s in (top, htop)}
        t0 = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - t0
        used = {s: cpu_seconds(s.pid) - start[s] for s in (top, htop)}
        shot = top.capture()
        shown = sum(1 for u in users if u.name in shot)

    rows = []
    for name, screen in (("sessionctl top (1 s)", top), ("htop -d 10 (1 s)", htop)):
        rows.append([name, f"{used[screen]:.2f}", f"{used[screen] / elapsed * 100:.1f}"])
    for name, cpu in users_cpu.items():
        rows.append([f"{name} (one run)", f"{cpu:.3f}", "-"])
    print(f"processes on host: {nproc} ({in_sessions} in {args.logins} lab logins, one "
          f"spinning); screens watched for {elapsed:.0f} s; `users` median of {args.runs}\n")
    print(table(rows, ["command", "CPU s", "% of one core"]))
    pct = used[top] / elapsed * 100
    print(f"\nsessionctl top used {pct:.1f} % of one core (goal <= 10 %); htop "
          f"{used[htop] / elapsed * 100:.1f} %. Lab users on top's screen: {shown}.")
    if args.screenshot:
        print("\n" + shot)
    return 0 if pct <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
