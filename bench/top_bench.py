"""sessionctl top against htop -d 10, and one `sessionctl users`, on a host with 10,000
extra processes and real logins.

Run as root from the project venv (wrap in the shared bench lock):
  flock /tmp/sessionctl-bench.lock /opt/sessionctl-venv/bin/python bench/top_bench.py
The screens run at the same time, each on its own 80x24 pty, for --seconds (default 60)
at 1 Hz (htop -d 10 = every 1.0 s): top as it starts (one row per user) and top with
every user and session expanded (every process a row), and htop. CPU is read from
/proc/PID/stat of each screen's process (user + system, children included) from after a
warm-up to the end. `sessionctl users` is timed with wait4 (median of --runs runs; its
1 s measuring interval is a sleep, not CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import struct
import subprocess
import sys
import termios
import threading
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
    """One full-screen command on its own 80x24 pty (no utmp record: the harness adds no
    login sessions of its own), its output drained and discarded; keys can be typed."""

    def __init__(self, command: list[str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
        self.proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave,
                                     env=env, start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.master = master
        self.pid = self.proc.pid
        self.seen = 0
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self.master, 65536):
                self.seen += len(chunk)

    def keys(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # our own child: its PID cannot have been reused
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        os.close(self.master)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=10_000)
    ap.add_argument("--logins", type=int, default=5)
    ap.add_argument("--per-login", type=int, default=100, help="sleepers in each login")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates users and an sshd")
    if shutil.which("htop") is None:
        sys.exit("needs htop (scripts/bootstrap.sh --test installs it)")
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
        screens = {
            "sessionctl top (1 s; users view)": Screen([tool("sessionctl"), "top"]),
            "sessionctl top (1 s; all expanded)": Screen([tool("sessionctl"), "top"]),
            "htop -d 10 (1 s)": Screen(["htop", "-d", "10"]),
        }
        for screen in screens.values():
            stack.callback(screen.close)
        time.sleep(5)  # warm-up: start-up and the first readings are not counted
        screens["sessionctl top (1 s; all expanded)"].keys("e")  # every user and session
        time.sleep(1)
        start = {name: cpu_seconds(s.pid) for name, s in screens.items()}
        t0 = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - t0
        used = {name: cpu_seconds(s.pid) - start[name] for name, s in screens.items()}
        drawn = all(s.seen > 0 and s.proc.poll() is None for s in screens.values())

    rows = [[name, f"{cpu:.2f}", f"{cpu / elapsed * 100:.1f}"] for name, cpu in used.items()]
    for name, cpu in users_cpu.items():
        rows.append([f"{name} (one run)", f"{cpu:.3f}", "-"])
    print(f"processes on host: {nproc} ({in_sessions} in {args.logins} lab logins, one "
          f"spinning); screens watched for {elapsed:.0f} s; `users` median of {args.runs}\n")
    print(table(rows, ["command", "CPU s", "% of one core"]))
    pct = used["sessionctl top (1 s; users view)"] / elapsed * 100
    print(f"\nsessionctl top (users view) used {pct:.1f} % of one core (goal <= 10 %); "
          f"htop {used['htop -d 10 (1 s)'] / elapsed * 100:.1f} %. Screens kept drawing: "
          f"{drawn}. Other work on this machine may have shared the CPU (load average "
          f"{os.getloadavg()[0]:.1f}).")
    return 0 if pct <= 10 and drawn else 1


if __name__ == "__main__":
    sys.exit(main())
