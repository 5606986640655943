"""A compromised host in a fleet run (issue 18): real sshd, a ForceCommand of ours.

The fleet: 3 healthy hosts fnode01-03 (real sshd, real sessionctl agents) and hostile
hosts on 127.0.2.x (one real sshd whose ForceCommand, lab/hostile_host.py, answers each
request badly: a record that does not fit the schema, floods, an endless line, a hang,
a long error full of escape sequences). Each bad host is that host's ``error`` (or
``timeout``) with a short reason; the healthy rows print as usual; exit 2; the client's
peak memory stays under MEMORY_BOUND whatever the hosts send.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab import tool_path
from lab.hostile import HostileFleet
from lab.users import create_user, remove_user

pytestmark = pytest.mark.real

HEALTHY = "fnode[01-03]"
#: Peak RSS of the whole client (sessionctl and the ssh processes it reaped), in MiB, with
#: every flooding host of the lab in one run. An idle run is ~30 MiB; each host's answer
#: is cut at 4 MiB, its stderr at 64 KiB.
MEMORY_BOUND = 96


@pytest.fixture(scope="module")
def hostile(sshd) -> Iterator[HostileFleet]:  # the lab sshd first: stale-lab cleanup has run
    admin = create_user()
    try:
        with HostileFleet(count=3, admin=admin.name) as lab:
            lab.admin_user = admin  # type: ignore[attr-defined]
            yield lab
    finally:
        remove_user(admin)


class Run:
    """A finished command: returncode, stdout, stderr and its peak RSS (MiB)."""

    def __init__(self, returncode: int, stdout: str, stderr: str, maxrss_mib: float) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.maxrss_mib = maxrss_mib

    def rows(self) -> dict[str, dict]:
        lines = [json.loads(x) for x in self.stdout.splitlines() if x.startswith("{")]
        return {r["host"]: r for r in lines}


#: Runs argv[2:] as its child and writes the child's peak RSS (KiB, from wait4: the child
#: and every process it reaped, i.e. the ssh clients) to the file argv[1]. The child is
#: forked from this small interpreter, not from pytest: a process's peak RSS starts at
#: the size of the image it was forked from (the kernel keeps it across exec), so a
#: child forked from a big pytest would report pytest's size.
_MEASURE = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "code = os.waitstatus_to_exitcode(status)\n"
    "if code < 0:\n"
    "    os.kill(os.getpid(), -code)  # die of the same signal: the same returncode\n"
    "sys.exit(code)\n"
)


def sctl(lab: HostileFleet, *argv: str, timeout: float = 120) -> Run:
    """Run a sessionctl command against the lab; measure its peak RSS (_MEASURE)."""
    common = ["--ssh-config", str(lab.ssh_config), "--control-dir", str(lab.control_dir),
              "--connect-timeout", "3"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as peak:
        proc = subprocess.Popen(
            ["/usr/bin/python3", "-S", "-c", _MEASURE, peak.name,
             str(tool_path("sessionctl")), argv[0], *common, *argv[1:]],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own launcher's group: it and the command
            proc.wait()
        out.seek(0)
        err.seek(0)
        kib = peak.read().strip()
        return Run(proc.returncode, out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"),
                   int(kib) / 1024 if kib else math.inf)  # unmeasured: never within a bound


def _no_internal_errors(run: Run) -> None:
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert "\x1b" not in run.stdout + run.stderr


def _healthy_ok(rows: dict[str, dict]) -> None:
    for host in ("fnode01", "fnode02", "fnode03"):
        assert rows[host]["status"] == "ok" and isinstance(rows[host]["result"], list), rows


BAD_RECORDS = {
    "bogus-state": "bad answer: session '4242' state is not a session state",
    "uid-x": "bad answer: session '4242' uid is not an integer",
    "pids-5": "bad answer: session '4242' pids is not a list",
    "login-yesterday": "bad answer: session '4242' login_time is not an ISO date and time",
    "idle-abc": "bad answer: session '4242' idle_seconds is not a number",
    "deep-json": "bad answer: not JSON",
}


def test_malformed_hosts_are_their_own_errors_and_healthy_rows_print(hostile) -> None:
    bad = ",".join([*BAD_RECORDS, "long-error"])
    run = sctl(hostile, "qwinsta", "--servers", f"{HEALTHY},{bad}", "--json")
    assert run.returncode == 2, run.stderr
    _no_internal_errors(run)
    rows = run.rows()
    _healthy_ok(rows)
    for host, why in BAD_RECORDS.items():
        assert rows[host]["status"] == "error" and rows[host]["result"] is None, rows[host]
        assert rows[host]["error"].startswith(why), rows[host]
    long = rows["long-error"]["error"]  # 1,074 characters with escape sequences, remotely
    assert long.startswith("AAAA") and long.endswith("...") and len(long) <= 160, long
    # The table: the healthy hosts' rows, the bad hosts on stderr one short line each.
    table = sctl(hostile, "qwinsta", "--servers", f"{HEALTHY},{bad}")
    assert table.returncode == 2
    _no_internal_errors(table)
    lines = table.stdout.splitlines()
    assert lines[0].startswith("HOST")
    assert {ln.split()[0] for ln in lines[1:]} == {"fnode01", "fnode02", "fnode03"}
    for host, why in BAD_RECORDS.items():
        assert f"{host}: error: {why}" in table.stderr
    assert all(len(ln) < 200 for ln in table.stderr.splitlines()), table.stderr
    summary = table.stderr.splitlines()[-1]
    assert f"{3 + len(BAD_RECORDS) + 1} hosts:" in summary and "3 ok" in summary
    assert f"{len(BAD_RECORDS) + 1} error" in summary
    # One server alone: the same reason, the usual "Error opening Terminal server".
    one = sctl(hostile, "quser", "/server:uid-x")
    assert one.returncode == 2
    assert ("Error opening Terminal server uid-x: error: bad answer: session '4242' uid is "
            "not an integer") in one.stderr


def test_malformed_logoff_items_and_msg_reports(hostile) -> None:
    nobody = ["--user", "sctest-nobody-here"]  # the healthy hosts match nothing: no harm
    res = sctl(hostile, "logoff", "--servers", f"{HEALTHY},logoff-no-session", *nobody,
               "--grace", "1", "--json")
    assert res.returncode == 2, res.stderr
    _no_internal_errors(res)
    rows = res.rows()
    assert [rows[h]["result"] for h in ("fnode01", "fnode02", "fnode03")] == [[], [], []]
    assert rows["logoff-no-session"]["error"] == "bad answer: answer[0] has no session"
    res = sctl(hostile, "msg", "--servers", f"{HEALTHY},msg-list", *nobody, "--json", "*",
               "hello")
    assert res.returncode == 2, res.stderr
    _no_internal_errors(res)
    rows = res.rows()
    assert all(rows[h]["status"] == "ok" for h in ("fnode01", "fnode02", "fnode03")), rows
    assert rows["msg-list"]["error"] == "bad answer: answer is not an object"


FLOODS = {
    "flood-stdout": "answer larger than 4 MiB",
    "endless-line": "answer larger than 4 MiB",
    "no-header-flood": "no sessionctl header in the first 16 KiB of output",
    "flood-stderr": "remote sent more than 64 KiB on stderr",
}


@pytest.mark.parametrize("mode", [*FLOODS, "all"])
def test_floods_are_cut_classified_and_memory_stays_bounded(hostile, mode: str) -> None:
    floods = list(FLOODS) if mode == "all" else [mode]
    started = time.monotonic()
    run = sctl(hostile, "qwinsta", "--servers", ",".join([HEALTHY, *floods]), "--json",
               "--command-timeout", "60")
    took = time.monotonic() - started
    idle = sctl(hostile, "qwinsta", "--servers", HEALTHY, "--json")
    print(f"\n{mode}: peak RSS {run.maxrss_mib:.1f} MiB (healthy hosts only: "
          f"{idle.maxrss_mib:.1f} MiB), {took:.1f} s")
    assert run.returncode == 2, run.stderr
    _no_internal_errors(run)
    rows = run.rows()
    _healthy_ok(rows)
    for host in floods:
        assert rows[host]["status"] == "error" and rows[host]["error"] == FLOODS[host], rows[host]
    assert run.maxrss_mib < MEMORY_BOUND, f"peak RSS {run.maxrss_mib:.1f} MiB"


def test_a_hang_after_the_handshake_is_a_timeout_of_the_command(hostile) -> None:
    # No reuse: ssh's own log says the user got in, so the wait was the command's.
    run = sctl(hostile, "qwinsta", "--servers", "fnode01,hang,stall", "--json",
               "--command-timeout", "3", "--no-reuse")
    assert run.returncode == 2, run.stderr
    rows = run.rows()
    assert rows["fnode01"]["status"] == "ok"
    assert rows["hang"] == {"host": "hang", "status": "timeout", "result": None,
                            "error": "no answer within 6 s (running the command)"}
    # the stopped sshd never sent a banner: a timeout of the connection, not the command
    assert rows["stall"]["status"] == "timeout", rows["stall"]
    assert "banner exchange" in rows["stall"]["error"]
    # With reuse: the first run starts a ControlMaster, the second goes through it (a
    # mux client logs nothing; the master answering says the connection is up).
    for _ in range(2):
        run = sctl(hostile, "qwinsta", "--servers", "hang", "--json", "--command-timeout", "3")
        assert run.rows()["hang"]["error"] == "no answer within 6 s (running the command)"


def test_non_root_admin_with_a_root_owned_xdg_runtime_dir(hostile, make_user,
                                                           open_login) -> None:
    """su/sudo can leave XDG_RUNTIME_DIR pointing at root's dir: the control sockets then go
    under the user's own ~/.cache, and the query works."""
    user = make_user()
    login = open_login(user)
    mine = Path(user.home, "fleet")
    mine.mkdir(mode=0o700)
    key = mine / "id"
    key.write_bytes(Path(hostile.key).read_bytes())
    config = mine / "config"
    config.write_text(hostile.ssh_config.read_text().replace(str(hostile.key), str(key)))
    (mine / "known_hosts").write_text(hostile.known_hosts.read_text())
    config.write_text(config.read_text().replace(str(hostile.known_hosts),
                                                 str(mine / "known_hosts")))
    for path in (mine, key, config, mine / "known_hosts"):
        os.chown(path, user.uid, user.gid)
    os.chmod(key, 0o600)
    root_dir = Path(tempfile.mkdtemp(prefix="sctest-xdg-", dir="/run"))
    os.chmod(root_dir, 0o755)  # root's, and the user may not write there
    try:
        status, out = login.run_status(
            f"XDG_RUNTIME_DIR={root_dir} {tool_path('qwinsta')} /server:fnode01 "
            f"--ssh-config {config} --connect-timeout 3", timeout=60)
        assert "internal error" not in out and "PermissionError" not in out, out
        assert status == 0, out
        assert out.splitlines()[0].startswith(" SESSIONNAME"), out
        control = Path(user.home, ".cache", "sessionctl", "ssh")
        assert control.is_dir() and control.stat().st_uid == user.uid
        assert list(root_dir.iterdir()) == []
        login.run(f"{tool_path('sessionctl')} disconnect --servers fnode01 "
                  f"--ssh-config {config}", timeout=30)
    finally:
        os.rmdir(root_dir)
