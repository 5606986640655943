"""logoff vs loginctl terminate-session inside a real systemd container (logind backend).

Run as root from the project venv:  /opt/sessionctl-venv/bin/python bench/logind_bench.py
Each case: an ssh login holding nano with an unsaved edit and a process that ignores
SIGHUP and SIGTERM. "time" runs from the command's start until the session is gone
from `loginctl list-sessions` (watched for up to --watch seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from common import table, tool
from lab.container import SystemdContainer
from lab.login import Login


def session_with_work(c: SystemdContainer) -> Login:
    name, password = c.add_user()
    login = Login(SimpleNamespace(name=name, password=password),  # type: ignore[arg-type]
                  SimpleNamespace(address=c.address, port=c.port))  # type: ignore[arg-type]
    login.run("sh -c 'trap \"\" HUP TERM; exec sleep 900' >/dev/null 2>&1 &")
    login.send("nano ~/draft.txt\n")
    login.wait_output("GNU nano", 10)
    login.send("unsaved draft 4711")
    time.sleep(0.3)
    return login


def measure(c: SystemdContainer, argv: list[str], login: Login, watch: float) -> list[str]:
    sid = str(login.audit_session_id)
    t0 = time.monotonic()
    c.exec(argv, timeout=watch)
    t_cmd = time.monotonic() - t0
    while time.monotonic() - t0 < watch:
        if sid not in {s["session"] for s in c.loginctl_sessions()}:
            break
        time.sleep(0.05)
    t_gone = time.monotonic() - t0
    gone = sid not in {s["session"] for s in c.loginctl_sessions()}
    saved = Path(c.root, "home", login.user.name, "draft.txt.save")
    kept = saved.exists() and "unsaved draft 4711" in saved.read_text()
    return [" ".join(Path(argv[0]).name.split() + argv[1:]).replace(sid, "ID"),
            f"{t_gone:.2f}" if gone else f">{watch:.0f}", f"{t_cmd:.2f}",
            "yes" if kept else "no"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--watch", type=float, default=120.0)
    ap.add_argument("--grace", default="10")
    args = ap.parse_args()
    rows = []
    for argv in ([tool("logoff"), "ID", "--grace", args.grace],
                 [tool("logoff"), "ID", "--grace", "0"],
                 ["loginctl", "terminate-session", "ID"]):
        with SystemdContainer() as c:  # a fresh container per case (boots in ~0.4 s)
            login = session_with_work(c)
            try:
                real = [a.replace("ID", str(login.audit_session_id)) for a in argv]
                rows.append(measure(c, real, login, args.watch))
                print(" | ".join(rows[-1]), file=sys.stderr)
            finally:
                with contextlib.suppress(Exception):
                    login.close()
    print(table(rows, ["command", "gone from loginctl after s", "command s",
                       "unsaved edit kept"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
