"""Desktops: logoff (session manager first) vs loginctl terminate-session; idle reading cost.

Run as root from the project venv:  /opt/sessionctl-venv/bin/python bench/desktop_bench.py
In one systemd container with the desktop layer, identical TigerVNC + Xfce desktops (an
xterm with vim and one with nano, both holding unsaved text typed through a VNC viewer)
are signed out alternately by ``logoff ID --grace G`` and ``loginctl terminate-session ID``.
"time" runs from the command's start until the session's scope is empty; "text kept"
says whether vim's swap file and nano's .save file hold what was typed.

Then the CPU cost of one idle reading of a desktop: sessionctl's X11 reader (a forked
child as the user, python-xlib, MIT-SCREEN-SAVER) against ``xprintidle`` (the reference
tool, libXss), each as seen by getrusage (ours: the child's CPU; xprintidle: its whole
process), and a full ``qwinsta --json`` for scale.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import table, tool
from lab.container import SystemdContainer
from lab.desktop import (
    VncDesktop,
    ensure_desktop_layer,
    type_into,
    wait_for_screen,
    wait_until,
)

READER = r"""
import json, os, resource, sys, time
from sessionctl.linux import x11
target = x11.Target(sys.argv[1], int(sys.argv[2]), sys.argv[3])
x11.read_idle([target])  # warm up (imports)
n = int(sys.argv[4])
usage = resource.getrusage
r0, c0 = usage(resource.RUSAGE_SELF), usage(resource.RUSAGE_CHILDREN)
t0 = time.perf_counter()
for _ in range(n):
    (reading,) = x11.read_idle([target])
    assert reading.idle_ms is not None, reading.error
wall = time.perf_counter() - t0
r1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = lambda a, b: (b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime)
print(json.dumps({"wall": wall / n, "parent": cpu(r0, r1) / n, "child": cpu(c0, c1) / n}))
"""

REFERENCE = r"""
import json, os, resource, subprocess, sys, time
env = {"DISPLAY": sys.argv[1], "XAUTHORITY": sys.argv[3], "PATH": "/usr/bin:/bin"}
uid = int(sys.argv[2]); n = int(sys.argv[4])
run = lambda: subprocess.run(["xprintidle"], env=env, user=uid, check=True, capture_output=True)
run()
c0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
for _ in range(n):
    run()
wall = time.perf_counter() - t0
c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
print(json.dumps({"wall": wall / n, "child": cpu / n}))
"""


def desktop_with_work(c: SystemdContainer) -> VncDesktop:
    user, _ = c.add_user()
    home = f"/home/{user}"
    d = VncDesktop(c, user, autostart={
        "vim": f"xterm -geometry 80x20+0+0 -title vimterm -e vim {home}/notes.txt",
        "nano": f"xterm -geometry 80x20+0+380 -title nanoterm -e nano {home}/draft.txt"}
                   ).start()
    shot = Path(tempfile.mkdtemp(prefix="sctbench-")) / "screen.png"
    wait_for_screen(d, ["notes", "nano"], 60, shot)
    try:
        type_into(d, (200, 150, "iunsaved vim 4711"), (200, 500, "unsaved nano 4711"))
    except RuntimeError as exc:  # a viewer connection dropped on a loaded host: once more
        print(f"retrying the typing: {exc}", file=sys.stderr)
        type_into(d, (200, 150, "iunsaved vim 4711"), (200, 500, "unsaved nano 4711"))
    shutil.rmtree(shot.parent)  # whether the text arrived: "text kept" (the files) says
    return d


def signout(c: SystemdContainer, d: VncDesktop, argv: list[str], watch: float) -> list[str]:
    t0 = time.monotonic()
    c.exec(argv, timeout=watch, env={"SESSIONCTL_AUDIT_LOG": "/tmp/bench-audit.jsonl"})
    t_cmd = time.monotonic() - t0
    empty = wait_until(lambda: d.scope_pids() == [], max(0.0, watch - t_cmd), 0.05)
    t_empty = time.monotonic() - t0
    home = c.root / "home" / d.user
    swap, save = home / ".notes.txt.swp", home / "draft.txt.save"
    kept = (swap.exists() and b"unsaved vim 4711" in swap.read_bytes(),
            save.exists() and b"unsaved nano 4711" in save.read_bytes())
    d.started = False  # signed out: nothing to stop
    return [" ".join([argv[0].rsplit("/", 1)[-1], *argv[1:]]).replace(d.session_id, "ID"),
            f"{t_empty:.2f}" if empty else f">{watch:.0f}", f"{t_cmd:.2f}",
            f"vim {'yes' if kept[0] else 'no'}, nano {'yes' if kept[1] else 'no'}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--grace", default="10")
    ap.add_argument("--watch", type=float, default=120.0)
    ap.add_argument("--readings", type=int, default=200)
    args = ap.parse_args()
    rows = []
    with SystemdContainer(layers=[ensure_desktop_layer()]) as c:
        for _ in range(args.rounds):
            for argv in ([tool("logoff"), "ID", "--grace", args.grace],
                         ["loginctl", "terminate-session", "ID"]):
                d = desktop_with_work(c)
                real = [a.replace("ID", d.session_id) for a in argv]
                rows.append(signout(c, d, real, args.watch))
                print(" | ".join(rows[-1]), file=sys.stderr)
        print(table(rows, ["command", "scope empty after s", "command s", "text kept"]))

        d = VncDesktop(c, c.add_user()[0]).start()
        uid = c.exec(["id", "-u", d.user]).stdout.strip()
        xauth = f"/home/{d.user}/.Xauthority"
        py = tool("python")
        ours = json.loads(c.exec([py, "-c", READER, d.name, uid, xauth, str(args.readings)],
                                 timeout=600).stdout)
        ref = json.loads(c.exec([py, "-c", REFERENCE, d.name, uid, xauth, str(args.readings)],
                                timeout=600).stdout)
        walls = []
        for _ in range(20):
            t0 = time.perf_counter()
            c.exec([tool("qwinsta"), "--json"], check=True)
            walls.append(time.perf_counter() - t0)
        cost = [
            ["sessionctl x11.read_idle (fork + python-xlib)",
             f"{ours['child'] * 1000:.2f}", f"{ours['parent'] * 1000:.2f}",
             f"{ours['wall'] * 1000:.2f}"],
            ["xprintidle (libXss, one process)", f"{ref['child'] * 1000:.2f}", "-",
             f"{ref['wall'] * 1000:.2f}"],
            ["qwinsta --json (whole command, 1 desktop)", "-", "-",
             f"{statistics.median(walls) * 1000:.1f}"],
        ]
        print()
        print(table(cost, ["one idle reading", "child CPU ms", "caller CPU ms", "wall ms"]))
        d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
