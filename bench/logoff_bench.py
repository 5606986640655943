"""logoff against pkill on real ssh sessions: time to empty, leftovers, bystanders, unsaved edit.

Run as root from the project venv:  /opt/sessionctl-venv/bin/python bench/logoff_bench.py
Each case: a fresh user with a target login (nano holding an unsaved edit, a setsid and a
nohup child, sleepers up to N processes; "hostile" adds a process ignoring SIGHUP and
SIGTERM and a fork loop), a second login of the same user and another user's login as
bystanders. "time" runs from the command's start until no process of the target's audit
session is left (or the 5 s watch after the command ends runs out).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from common import table, tool
from lab import procs
from lab.login import Login
from lab.sshd import Sshd
from lab.users import create_user, remove_user

WATCH = 5.0


def left_in(asid: int) -> set[int]:
    return {p for p in procs.pids_by_audit_session().get(asid, set()) if not procs.is_zombie(p)}


def build_target(login: Login, size: int, hostile: bool) -> None:
    """Fill the target login up to ``size`` processes, nano with an unsaved edit last."""
    login.run("setsid sleep 900 >/dev/null 2>&1 & nohup sleep 900 >/dev/null 2>&1 &")
    if hostile:
        login.run("sh -c 'trap \"\" HUP TERM; exec sleep 900' >/dev/null 2>&1 &")
        login.run("sh -c 'trap \"\" HUP TERM; end=$(( $(date +%s) + 60 )); "
                  "while [ $(date +%s) -lt $end ]; do sleep 60 & done' >/dev/null 2>&1 &")
    extra = size - len(login.pids()) - 2  # nano and the sh below
    if extra > 0 and not hostile:
        login.run(f"sh -c 'for i in $(seq {extra}); do sleep 900 & done; wait' "
                  ">/dev/null 2>&1 &")
        procs.wait_until(lambda: len(login.pids()) >= size - 1, 30)
    elif hostile:
        procs.wait_until(lambda: len(login.pids()) >= size - 1, 30)
    login.send("nano ~/draft.txt\n")
    login.wait_output("GNU nano", 10)
    login.send("unsaved draft 4711")
    time.sleep(0.3)


def run_case(sshd: Sshd, method: str, size: int, hostile: bool, grace: str) -> list[str]:
    target_user, other_user = create_user(), create_user()
    logins: list[Login] = []
    try:
        target = Login(target_user, sshd)
        same, other = Login(target_user, sshd), Login(other_user, sshd)
        logins += [target, same, other]
        for b in (same, other):
            b.run("sleep 900 >/dev/null 2>&1 & setsid sleep 900 >/dev/null 2>&1 &")
        build_target(target, size, hostile)
        asid = target.audit_session_id
        bystanders = {p: procs.start_time_of(p) for p in same.pids() | other.pids()}
        n_start = len(left_in(asid))
        if method == "logoff":
            argv = [tool("logoff"), str(asid)] + ([] if grace == "default" else
                                                   ["--grace", grace])
        elif method == "pkill -KILL -s SID":
            argv = ["pkill", "-KILL", "-s", str(os.getsid(target.shell_pid))]
        else:
            argv = ["pkill", "-u", target_user.name]
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, timeout=120)
        t_cmd = time.perf_counter() - t0
        deadline = time.perf_counter() + WATCH
        while left_in(asid) and time.perf_counter() < deadline:
            time.sleep(0.01)
        t_empty = time.perf_counter() - t0
        left = len(left_in(asid))
        killed = sum(1 for p, st in bystanders.items()
                     if procs.start_time_of(p) != st or procs.is_zombie(p))
        saved = Path(target_user.home, "draft.txt.save")
        kept = saved.exists() and "unsaved draft 4711" in saved.read_text()
        return [method, str(size) if not hostile else f"{size} hostile",
                grace if method == "logoff" else "-", str(n_start),
                f"{t_empty:.3f}" if not left else f">{t_empty:.1f}", f"{t_cmd:.3f}",
                str(left), str(killed), "yes" if kept else "no"]
    finally:
        for login in logins:
            with contextlib.suppress(Exception):
                login.close()
        for u in (target_user, other_user):
            remove_user(u)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,1000")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates users and an sshd")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with Sshd() as sshd:
        for size in sizes:
            for hostile in (False, True):
                for grace in ("0", "default"):
                    rows.append(run_case(sshd, "logoff", size, hostile, grace))
                    print(" | ".join(rows[-1]), file=sys.stderr)
                for method in ("pkill -KILL -s SID", "pkill -u USER"):
                    rows.append(run_case(sshd, method, size, hostile, "-"))
                    print(" | ".join(rows[-1]), file=sys.stderr)
    print(table(rows, ["method", "processes", "grace", "at start", "time to empty s",
                       "command s", "left", "bystanders killed", "unsaved edit kept"]))
    print("\nloginctl terminate-session: no systemd on this host; see bench/logind_bench.py.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
