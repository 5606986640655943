"""logoff against pkill on real ssh sessions: time to empty, leftovers, bystanders, unsaved edit.

Run as root from the project venv (under the bench lock; a shared machine):
    flock /tmp/sessionctl-bench.lock /opt/sessionctl-venv/bin/python bench/logoff_bench.py \
        [--before-bin /opt/sessionctl-venv-main/bin]
Each case: a fresh user with a target login (nano holding an unsaved edit, a setsid and a
nohup child, sleepers up to N processes; "hostile" adds a process ignoring SIGHUP and
SIGTERM and a fork loop), a second login of the same user and another user's login as
bystanders. "time" runs from the command's start until no process of the target's audit
session is left (or the 5 s watch after the command ends runs out).

The second table has the adversarial cases, each for this logoff and (with --before-bin,
the bin directory of a venv with an earlier sessionctl) the earlier one, and pkill -u as
the reference tool: a process whose main thread exited while another thread runs
(zombie leader), a root process started through sudo that the user cannot end (the
user signs the session out from another login of theirs), vim editing a 2-million-line
buffer (swap kept, out of --vim-tries), and a session whose only processes ignore
SIGHUP and SIGTERM. "said" is the exit code and outcome reported; "truthful" is whether
the outcome matches what was left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import table, tool
from lab import adversary, procs, sudo
from lab.checks import left_in, settled_pids
from lab.login import Login
from lab.sshd import Sshd
from lab.users import LabUser, create_user, remove_user

WATCH = 5.0


def watch(asid: int, t0: float, bystanders: dict[int, int | None]) -> tuple[float, int, int]:
    """After the command: (seconds from t0 until the session was empty, or until the watch
    ran out; processes left; bystanders killed)."""
    deadline = time.perf_counter() + WATCH
    while left_in(asid) and time.perf_counter() < deadline:
        time.sleep(0.01)
    t_empty = time.perf_counter() - t0
    killed = sum(1 for p, st in bystanders.items()
                 if procs.start_time_of(p) != st or not procs.alive(p))
    return t_empty, len(left_in(asid)), killed


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
        bystanders = {p: procs.start_time_of(p) for p in settled_pids([same, other])}
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
        t_empty, left, killed = watch(asid, t0, bystanders)
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


# -- adversarial cases ----------------------------------------------------------------------

BIG_LINES = 2_000_000


def _setup_zombie(user: LabUser, login: Login) -> None:
    login.run(f"setsid {adversary.command(user, 'zombie_leader.py', f'{user.home}/beat', 'deaf')}"
              " >/dev/null 2>&1 < /dev/null &")
    procs.wait_until(lambda: any(
        (procs.status_fields(p) or {}).get("State", "")[:1] == "Z" and procs.alive(p)
        for p in login.pids()), 10)


def _setup_deaf(user: LabUser, login: Login) -> None:
    login.run("sh -c 'trap \"\" HUP TERM; exec sleep 900' >/dev/null 2>&1 &")
    login.run("setsid sh -c 'trap \"\" HUP TERM; exec sleep 900' >/dev/null 2>&1 &")
    procs.wait_until(lambda: len(login.pids()) >= 5, 10)


def _setup_sudo(user: LabUser, login: Login) -> None:
    login.run("sudo -n nohup sh -c 'trap \"\" TERM; exec sleep 900' >/dev/null 2>&1 &")
    procs.wait_until(lambda: any(procs.uids_of(p) == (0, 0, 0, 0)
                                 and procs.comm_of(p) == "sleep" for p in login.pids()), 10)


def _setup_vim(user: LabUser, login: Login, big: Path) -> None:
    target = Path(user.home, "big.txt")
    shutil.copyfile(big, target)
    os.chown(target, user.uid, user.gid)
    login.send("vim -N -u NONE -i NONE ~/big.txt\n")
    login.wait_output(f"{BIG_LINES}L", 120)
    login.send("ggOMARKER-4711\x1b:%s/$/ changed/\r")
    login.wait_output(f"substitutions on {BIG_LINES + 1} lines", 300)


def _swap_kept(user: LabUser) -> bool:
    rec = Path(user.home, "recovered.txt")
    subprocess.run(["runuser", "-u", user.name, "--", "vim", "-N", "-u", "NONE", "-i", "NONE",
                    "-es", "-r", f"{user.home}/big.txt", "-c", f"w! {rec}", "-c", "qa!"],
                   capture_output=True, timeout=300, cwd=user.home)
    try:
        with open(rec) as f:
            return f.readline() == "MARKER-4711 changed\n"
    except OSError:
        return False


def adversarial_case(sshd: Sshd, case: str, method: str, bin_dir: str | None,
                     big: Path | None) -> list[str]:
    """One adversarial case with one method; the row of the second table."""
    user, other = create_user(), create_user()
    logins: list[Login] = []
    cleanup = contextlib.ExitStack()
    try:
        if case == "sudo root process":
            cleanup.enter_context(sudo.rule(user, "/usr/bin/nohup"))
        target = Login(user, sshd)
        admin, stranger = Login(user, sshd), Login(other, sshd)
        logins += [target, admin, stranger]
        for b in (admin, stranger):
            b.run("sleep 900 >/dev/null 2>&1 & setsid sleep 900 >/dev/null 2>&1 &")
        if case == "zombie leader + live thread":
            _setup_zombie(user, target)
        elif case == "only HUP+TERM-deaf left":
            _setup_deaf(user, target)
        elif case == "sudo root process":
            _setup_sudo(user, target)
        else:
            assert big is not None
            _setup_vim(user, target, big)
        asid = target.audit_session_id
        bystanders = {p: procs.start_time_of(p) for p in settled_pids([admin, stranger])}
        n_start = len(left_in(asid))
        said = "-"
        t0 = time.perf_counter()
        if method == "pkill -u USER":
            subprocess.run(["pkill", "-u", user.name], capture_output=True, timeout=120)
        elif case == "sudo root process":  # the user signs out their own other session
            status, out = admin.run_status(f"{Path(bin_dir or '', 'logoff')} {asid} --json",
                                           timeout=120)
            said = f"{status} {_outcome(out)}"
        else:
            res = subprocess.run([str(Path(bin_dir, "logoff")) if bin_dir else tool("logoff"),
                                  str(asid), "--json"], capture_output=True, text=True,
                                 timeout=120)
            said = f"{res.returncode} {_outcome(res.stdout)}"
        t_cmd = time.perf_counter() - t0
        t_empty, left, killed = watch(asid, t0, bystanders)
        truthful = "-" if said == "-" else (
            "yes" if (said.startswith("0 logged-off")) == (left == 0) else "NO")
        kept = "-"
        if case.startswith("vim"):
            kept = "yes" if _swap_kept(user) else "no"
        return [case, method, str(n_start), f"{t_empty:.3f}" if not left else f">{t_empty:.1f}",
                f"{t_cmd:.3f}", str(left), said, truthful, str(killed), kept]
    finally:
        for login in logins:
            with contextlib.suppress(Exception):
                login.close()
        cleanup.close()
        for u in (user, other):
            remove_user(u)


def _outcome(out: str) -> str:
    try:
        return str(json.loads(out[out.index("{"):out.rindex("}") + 1])["outcome"])
    except (ValueError, KeyError):
        return "?"


def adversarial(sshd: Sshd, before_bin: str | None, vim_tries: int) -> list[list[str]]:
    methods: list[tuple[str, str | None]] = [("logoff", str(Path(tool("logoff")).parent))]
    if before_bin:
        methods.insert(0, ("logoff (before)", before_bin))
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="sctest-bench-"))
    try:
        big = tmp / "big.txt"
        with open(big, "w") as f:
            f.writelines(f"{i} some text on this line\n" for i in range(1, BIG_LINES + 1))
        for case in ("zombie leader + live thread", "sudo root process",
                     "only HUP+TERM-deaf left", "vim 2M-line buffer"):
            tries = vim_tries if case.startswith("vim") else 1
            for name, bin_dir in [*methods, ("pkill -u USER", None)]:
                if case in ("sudo root process", "vim 2M-line buffer") and name.startswith(
                        "pkill"):
                    continue  # root's pkill ends anything; the user's cannot: nothing to learn
                for _ in range(tries):
                    row = adversarial_case(sshd, case, name, bin_dir, big)
                    rows.append(row)
                    print(" | ".join(row), file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,1000")
    ap.add_argument("--before-bin", help="bin directory of a venv with an earlier sessionctl")
    ap.add_argument("--vim-tries", type=int, default=4)
    ap.add_argument("--only", choices=("table", "adversarial"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates users and an sshd")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with Sshd() as sshd:
        if args.only != "adversarial":
            for size in sizes:
                for hostile_ in (False, True):
                    for grace in ("0", "default"):
                        rows.append(run_case(sshd, "logoff", size, hostile_, grace))
                        print(" | ".join(rows[-1]), file=sys.stderr)
                    for method in ("pkill -KILL -s SID", "pkill -u USER"):
                        rows.append(run_case(sshd, method, size, hostile_, "-"))
                        print(" | ".join(rows[-1]), file=sys.stderr)
        adv = [] if args.only == "table" else adversarial(sshd, args.before_bin, args.vim_tries)
    if rows:
        print(table(rows, ["method", "processes", "grace", "at start", "time to empty s",
                           "command s", "left", "bystanders killed", "unsaved edit kept"]))
        print("\nloginctl terminate-session: no systemd on this host; see "
              "bench/logind_bench.py.")
    if adv:
        print()
        print(table(adv, ["case", "method", "at start", "time to empty s", "command s",
                          "left", "said", "truthful", "bystanders killed", "swap kept"]))
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
