"""Small adversarial programs for sign-out tests, run by lab users inside their logins.

Each is a Python script for Debian's /usr/bin/python3, copied into the user's home (the
checkout may live where lab users cannot read, e.g. /root). They take their options from
argv and never touch anything outside their own process tree and the user's home.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .users import LabUser

PYTHON = "/usr/bin/python3"

_DEAF = """
import signal
for _s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
    signal.signal(_s, signal.SIG_IGN)
"""

SCRIPTS: dict[str, str] = {
    # The main thread exits (the leader shows Z in /proc) while another thread works on,
    # writing a heartbeat file. argv: BEAT_FILE [deaf] [stop-thread]
    "zombie_leader.py": """
import ctypes, os, sys, threading, time
if "deaf" in sys.argv:
""" + "".join("    " + line + "\n" for line in _DEAF.strip().splitlines()) + """
beat = sys.argv[1]
def work():
    while True:
        with open(beat + ".tmp", "w") as f:
            f.write(str(time.time()))
        os.replace(beat + ".tmp", beat)
        time.sleep(0.05)
threading.Thread(target=work).start()
time.sleep(0.2)
ctypes.CDLL(None).syscall(60, 0)  # SYS_exit: ends the calling (main) thread only
""",
    # A PID hopper: forks a child and exits, forever, so its PID keeps changing (with
    # "fast": at once, else after 2 ms). argv: [deaf] [fast]
    "hopper.py": """
import os, sys, time
if "deaf" in sys.argv:
""" + "".join("    " + line + "\n" for line in _DEAF.strip().splitlines()) + """
pause = 0 if "fast" in sys.argv else 0.002
while True:
    try:
        if os.fork():
            os._exit(0)
    except OSError:
        time.sleep(0.01)
    if pause:
        time.sleep(pause)
""",
    # A child subreaper that ignores HUP/TERM and keeps making orphans (double forks),
    # which it adopts. argv: COUNT
    "subreaper.py": _DEAF + """
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:  # a middle child that leaves an orphan behind for us to adopt
        if os.fork() == 0:
            while True:
                time.sleep(60)
        os._exit(0)
    os.waitpid(pid, 0)
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        time.sleep(0.1)
""",
    # A process whose comm (and argv[0]) is hostile text. argv: NAME_HEX [deaf]
    "rename.py": """
import ctypes, sys, time
if "deaf" in sys.argv:
""" + "".join("    " + line + "\n" for line in _DEAF.strip().splitlines()) + """
name = bytes.fromhex(sys.argv[1])[:15]
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
while True:
    time.sleep(60)
""",
    # A fork storm with threads: keeps about N processes alive, each with a few threads,
    # replacing any that die. argv: N
    "storm.py": _DEAF + """
import os, sys, threading, time
n = int(sys.argv[1])
def spin():
    while True:
        time.sleep(0.01)
kids = set()
while True:
    while len(kids) < n:
        try:
            pid = os.fork()
        except OSError:
            time.sleep(0.01)
            break
        if pid == 0:
            for _ in range(3):
                threading.Thread(target=spin, daemon=True).start()
            while True:
                time.sleep(60)
        kids.add(pid)
    try:
        pid, _ = os.waitpid(-1, 0)
        kids.discard(pid)
    except ChildProcessError:
        kids.clear()
""",
    # Signs out its own session by the library call, from its main thread or another one
    # (argv: RESULT_FILE main|thread), and writes its signal dispositions before and
    # after and the result as JSON. Run with the venv's python (it imports sessionctl).
    "own_session_caller.py": r"""
import json, signal, sys, threading
from sessionctl.actions.logoff import logoff

WATCHED = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP,
           signal.SIGPIPE, signal.SIGTTOU, signal.SIGTTIN, signal.SIGUSR1, signal.SIGCHLD)

def mine(signum, frame):
    pass

signal.signal(signal.SIGHUP, mine)  # a handler of the caller's own
signal.signal(signal.SIGQUIT, signal.SIG_IGN)

def dispositions():
    masks = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("SigIgn", "SigCgt", "SigBlk"):
                # signals 1-31: glibc claims a real-time one of its own for the first thread
                masks[name] = hex(int(value, 16) & 0x7FFFFFFF)
    return {"python": {s.name: repr(signal.getsignal(s)) for s in WATCHED}, "kernel": masks}

out = {"before": dispositions()}
def call():
    try:
        r = logoff(None, grace=2.0)
        out.update(outcome=r.outcome, remaining=r.remaining, steps=[s.name for s in r.steps])
    except BaseException as exc:
        out["error"] = repr(exc)
if sys.argv[2] == "thread":
    t = threading.Thread(target=call)
    t.start()
    t.join()
else:
    call()
out["after"] = dispositions()
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(out, f)
import os
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
""",
}


# C programs, for what Python cannot do (compiled into the user's home with gcc).
C_SOURCES: dict[str, str] = {
    # A vfork parent waits in the kernel (state D) while its child pauses; both ignore
    # SIGHUP and SIGTERM. A SIGSTOP stays pending on the parent until the child is gone.
    "vfork_parent": r"""
#include <signal.h>
#include <unistd.h>
int main(void) {
    signal(SIGHUP, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    if (vfork() == 0)
        for (;;)
            pause();
    return 0;
}
""",
}


def compile_c(user: LabUser, name: str) -> str:
    """Compile C program ``name`` into the user's home; return the executable's path."""
    src = Path(user.home, name + ".c")
    exe = Path(user.home, name)
    src.write_text(C_SOURCES[name])
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True, capture_output=True)
    os.chown(exe, user.uid, user.gid)
    exe.chmod(0o755)
    return str(exe)


def install(user: LabUser, name: str) -> str:
    """Copy script ``name`` into the user's home (owned by them); return its path."""
    path = Path(user.home, name)
    path.write_text(SCRIPTS[name].lstrip())
    os.chown(path, user.uid, user.gid)
    path.chmod(0o644)
    return str(path)


def command(user: LabUser, name: str, *args: str) -> str:
    """Shell command line that runs script ``name`` (installed first) with ``args``."""
    return " ".join([PYTHON, install(user, name), *args])
