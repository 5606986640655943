"""quser/qwinsta against w and who on a host with 10,000 extra processes and 5+ real logins,
then the same with a root tmux of 10 panes running (no audit id; every pane in utmp).

Run as root from the project venv:  /opt/sessionctl-venv/bin/python bench/query_bench.py
Prints wall and CPU medians, the speed-up over `w`, and the floor (interpreter start,
and interpreter start + one read of /proc/PID/sessionid per process).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys

from common import SleeperFarm, median_times, table, tool
from lab.login import Login
from lab.mux import RootTmux
from lab.sshd import Sshd
from lab.users import create_user, remove_user

FLOOR_READ = (
    "import os\n"
    "for n in os.listdir('/proc'):\n"
    "    if n.isdigit():\n"
    "        try:\n"
    "            fd = os.open('/proc/' + n + '/sessionid', os.O_RDONLY)\n"
    "            os.read(fd, 16); os.close(fd)\n"
    "        except OSError: pass\n"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=10_000)
    ap.add_argument("--logins", type=int, default=5)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--tmux-panes", type=int, default=10)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates users and an sshd")
    py = sys.executable
    commands = {
        "quser (sessionctl)": [tool("quser")],
        "qwinsta (sessionctl)": [tool("qwinsta")],
        "qwinsta --json (sessionctl)": [tool("qwinsta"), "--json"],
        "w": ["w"],
        "who": ["who"],
        "floor: interpreter start": [py, "-c", "pass"],
        "floor: start + 1 read/process": [py, "-c", FLOOR_READ],
    }
    with contextlib.ExitStack() as stack:
        sshd = stack.enter_context(Sshd())
        users = [create_user() for _ in range(args.logins)]
        stack.callback(lambda: [remove_user(u) for u in users])
        logins = [stack.enter_context(Login(u, sshd)) for u in users]
        for login in logins:
            login.run("sleep 3600 >/dev/null 2>&1 &")
        stack.enter_context(SleeperFarm(args.processes))
        nproc = sum(1 for n in os.listdir("/proc") if n.isdigit())
        out = subprocess.run([tool("quser")], capture_output=True, text=True).stdout
        shown = sum(1 for u in users if u.name in out)
        who_lines = len(subprocess.run(["who"], capture_output=True, text=True).stdout.splitlines())
        plain = {name: median_times(argv, args.runs) for name, argv in commands.items()}
        tm = stack.enter_context(RootTmux())
        for _ in range(args.tmux_panes - 1):
            tm.new_window("sleep 3600")
        out = subprocess.run([tool("quser")], capture_output=True, text=True).stdout
        tmux_rows = sum(1 for line in out.splitlines() if f" p{tm.pid} " in line)
        with_tmux = {name: median_times(argv, args.runs) for name, argv in commands.items()}
    print(f"processes on host: {nproc}; utmp logins (who): {who_lines}; "
          f"lab logins listed by quser: {shown}/{len(users)}; median of {args.runs} runs\n")
    ok = shown == len(users) and tmux_rows == 1
    for title, results in (("without tmux", plain),
                           (f"with a root tmux of {args.tmux_panes} panes "
                            f"(quser rows for it: {tmux_rows})", with_tmux)):
        w_wall, w_cpu = results["w"]
        rows = [[name, f"{wall * 1000:.1f}", f"{cpu * 1000:.1f}", f"{w_wall / wall:.1f}x",
                 f"{w_cpu / cpu:.1f}x" if cpu else "-"] for name, (wall, cpu) in results.items()]
        print(f"{title}:\n")
        print(table(rows, ["command", "wall ms", "CPU ms", "wall vs w", "CPU vs w"]))
        q_wall = results["quser (sessionctl)"][0]
        floor = results["floor: start + 1 read/process"][0]
        print(f"\nquser is {w_wall / q_wall:.1f}x faster than w (goal >= 25x); "
              f"{(q_wall - floor) * 1000:.1f} ms above the floor "
              f"(start + one sessionid read per process).\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
