"""What counts as activity, idle sessions that hold resources, memory pressure, metrics and
what was reclaimed: the policy on real logins (issue 16).

Every rule names the test's own throwaway users; every command runs with the test's own
state and run directories (lab.daemon.policy_env) and audit log.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lab import procs, tool_path
from lab.daemon import DaemonProc, policy_env
from lab.login import keep_typing
from lab.procs import gone

pytestmark = pytest.mark.real

MB = 1 << 20


@pytest.fixture
def daemons():
    started: list[DaemonProc] = []

    def start(config: Path, audit_log: Path, env: dict[str, str], *extra: str) -> DaemonProc:
        d = DaemonProc(config, audit_log, *extra, env=env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def sessionctl(env: dict[str, str], *argv: str, check: bool = True,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(tool_path("sessionctl")), *argv], capture_output=True,
                         text=True, timeout=timeout, env=env)
    if check:
        assert res.returncode == 0, (argv, res.stdout, res.stderr)
    return res


def check(env: dict[str, str], config: Path, *extra: str) -> dict[str, dict]:
    """`policy check --json` → session id → decision."""
    out = sessionctl(env, "policy", "check", str(config), "--json", *extra).stdout
    return {d["session"]: d for d in map(json.loads, out.splitlines())}


def rule_for(users, *, name: str = "idle", idle_limit: str = "24s", warn_before: str = "8s",
             **extra: object) -> str:
    names = ", ".join(f'"{u.name}"' for u in users)
    more = "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items())
    return (f'[[rule]]\nname = "{name}"\nidle_limit = "{idle_limit}"\n'
            f'warn_before = "{warn_before}"\nusers = [{names}]\n{more}')


DEFAULTS = '[defaults]\ninterval = "1s"\ngrace = "2s"\nmax_postpone = "0s"\n'


def input_idle(login) -> float:
    """Seconds since the login's terminal last read input (its atime), read directly."""
    return time.time() - os.stat(login.tty).st_atime


def hold_memory(login, megabytes: int) -> int:
    """Start a process in the login that keeps ``megabytes`` resident; its pid."""
    pid = login.run(f"/usr/bin/python3 -c 'import time; b = b\"x\" * ({megabytes} << 20); "
                    f"time.sleep(900)' >/dev/null 2>&1 & echo $!").strip().splitlines()[-1]
    assert procs.wait_until(lambda: _rss(int(pid)) >= megabytes * MB * 0.95, 20)
    return int(pid)


def _rss(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


# -- activity sources ---------------------------------------------------------------------

def test_output_counts_a_printing_job_never_our_own_notices(
    make_user, open_login, tmp_path, daemons
) -> None:
    printer_u, idle_u = make_user(), make_user()
    printer, idle = open_login(printer_u), open_login(idle_u)
    printer.send("while :; do date +tick-%s; sleep 1; done\n")
    printer.wait_output(r"tick-\d+", 5)
    env = policy_env(tmp_path)
    with_output = tmp_path / "output.toml"
    with_output.write_text(DEFAULTS + rule_for([printer_u, idle_u],
                                               activity=["input", "output"]))
    idle_pids = idle.pids()
    d = daemons(with_output, tmp_path / "audit.jsonl", env)
    sid, psid = str(idle.audit_session_id), str(printer.audit_session_id)
    # The idle login is warned; the notice written to its terminal (its mtime moves) must
    # not count as output, or the warning would be withdrawn and never carried out.
    idle.wait_output(rf"Your session {sid} will be signed out in", 40)
    assert procs.wait_until(lambda: gone(idle_pids), 30), d.stderr
    assert f"cancel the sign-out of session {sid}" not in d.stderr
    assert f"session {psid} " not in d.stderr, "the printing login was warned"
    assert input_idle(printer) >= 16  # under input alone it is over the warning point
    input_only = tmp_path / "input.toml"
    input_only.write_text(DEFAULTS + rule_for([printer_u, idle_u], activity=["input"]))
    got = check(env, input_only)[psid]
    assert got["action"] == "warn" and got["activity"]["source"] == "input", got
    got = check(env, with_output)[psid]
    assert got["action"] in ("wait", "pending") and got["activity"]["source"] == "output", got
    assert got["activity"]["idle_seconds"] < 12, got  # the tty's time moves every 8 s


def test_cpu_bound_job_is_activity_under_cpu(make_user, open_login, tmp_path) -> None:
    user = make_user()
    login = open_login(user)
    login.run("(while :; do :; done) >/dev/null 2>&1 &")
    sid = str(login.audit_session_id)
    env = policy_env(tmp_path)
    assert procs.wait_until(lambda: input_idle(login) >= 7, 20)
    plain, cpu = tmp_path / "plain.toml", tmp_path / "cpu.toml"
    plain.write_text(DEFAULTS + rule_for([user], idle_limit="20s", warn_before="14s"))
    cpu.write_text(DEFAULTS + rule_for([user], idle_limit="20s", warn_before="14s",
                                       activity=["input", "cpu"], cpu_active="10%"))
    got = check(env, plain)[sid]
    assert got["action"] == "warn" and got["activity"]["source"] == "input", got
    got = check(env, cpu, "--interval", "2")[sid]
    assert got["action"] == "wait" and got["activity"]["source"] == "cpu", got
    assert got["held"]["cpu_percent"] > 10, got
    # The same rule with nothing burning CPU: idle again.
    login.send("kill %1\n")
    assert procs.wait_until(lambda: check(env, cpu, "--interval", "2")[sid]["action"]
                            == "warn", 20)


def _multiplexers_in_model() -> bool:
    """Do the backends fill Session.multiplexers (tmux/screen clients; issue 12)?"""
    import importlib.util

    return importlib.util.find_spec("sessionctl.backends.multiplexers") is not None


@pytest.mark.skipif(not _multiplexers_in_model(),
                    reason="needs issue 12: the backends do not fill Session.multiplexers yet")
def test_detached_tmux_with_a_client_from_another_login_is_activity_under_clients(
    make_user, open_login, tmp_path
) -> None:
    user = make_user()
    first = open_login(user)
    first.run("tmux new-session -d -s work")
    sid = str(first.audit_session_id)
    first.logout()  # the tmux session is left detached, its server in the first session
    second = open_login(user)
    second.send("tmux attach -t work\n")
    assert procs.wait_until(lambda: "1" in subprocess.run(
        ["su", "-", user.name, "-c", "tmux list-sessions -F '#{session_attached}'"],
        capture_output=True, text=True).stdout, 10)
    env = policy_env(tmp_path)
    plain, clients = tmp_path / "plain.toml", tmp_path / "clients.toml"
    plain.write_text(DEFAULTS + rule_for([user], idle_limit="20s", warn_before="14s"))
    clients.write_text(DEFAULTS + rule_for([user], idle_limit="20s", warn_before="14s",
                                           activity=["input", "clients"]))
    # Nobody types on the attached client: idle as far as input goes.
    assert procs.wait_until(lambda: input_idle(second) >= 7, 20)
    got = check(env, plain)[sid]
    assert got["action"] == "warn" and got["activity"]["source"] == "input", got
    got = check(env, clients)[sid]
    assert got["action"] == "wait" and got["activity"]["source"] == "clients", got


class EchoServer:
    """A TCP echo server on loopback (the forward's target), ended by close()."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_ssh_local_forward_with_traffic_is_activity_under_forwards(
    make_user, sshd, tmp_path
) -> None:
    from lab.login import Login

    user = make_user()
    echo = EchoServer()
    with socket.socket() as probe:  # a free local port for the forward's listening end
        probe.bind(("127.0.0.1", 0))
        lport = probe.getsockname()[1]
    login = Login(user, sshd, ssh_args=("-L", f"127.0.0.1:{lport}:127.0.0.1:{echo.port}"))
    stop = threading.Event()
    try:
        sid = str(login.audit_session_id)
        conn = socket.create_connection(("127.0.0.1", lport), timeout=10)

        def chatter() -> None:
            while not stop.wait(0.5):
                conn.sendall(b"ping")
                conn.recv(16)

        threading.Thread(target=chatter, daemon=True).start()
        env = policy_env(tmp_path)
        assert procs.wait_until(lambda: input_idle(login) >= 7, 20)
        plain, fwd = tmp_path / "plain.toml", tmp_path / "fwd.toml"
        plain.write_text(DEFAULTS + rule_for([user], idle_limit="20s", warn_before="14s"))
        fwd.write_text(DEFAULTS + rule_for([user], idle_limit="20s", warn_before="14s",
                                           activity=["input", "forwards"]))
        got = check(env, plain)[sid]
        assert got["action"] == "warn" and got["activity"]["source"] == "input", got
        got = check(env, fwd)[sid]
        assert got["action"] == "wait" and got["activity"]["source"] == "forwards", got
        assert got["activity"]["idle_seconds"] < 3, got
        # The forward stays open but quiet: it no longer counts.
        stop.set()
        time.sleep(0.6)
        assert procs.wait_until(lambda: check(env, fwd)[sid]["action"] == "warn", 20)
        conn.close()
    finally:
        stop.set()
        login.close()
        echo.close()


# -- resources: min_rss, report, metrics --------------------------------------------------

def test_min_rss_warns_only_the_big_holder_and_report_sums_it(
    make_user, open_login, tmp_path, daemons
) -> None:
    big_u, small_u = make_user(), make_user()
    big, small = open_login(big_u), open_login(small_u)
    hold_memory(big, 500)
    big_pids, small_pids = big.pids(), small.pids()
    env = policy_env(tmp_path)
    config = tmp_path / "policy.toml"
    config.write_text(DEFAULTS + rule_for([big_u, small_u], name="big-idle", min_rss="200M"))
    sid, ssid = str(big.audit_session_id), str(small.audit_session_id)
    got = check(env, config)
    assert got[sid]["held"]["rss_bytes"] >= 500 * MB and got[sid]["rule"] == "big-idle"
    assert got[ssid]["action"] == "none" and got[ssid]["held"]["rss_bytes"] < 200 * MB
    # sessionctl users shows what the idle sessions hold.
    assert procs.wait_until(lambda: input_idle(big) >= 6, 20)
    users = json.loads(sessionctl(env, "users", big_u.name, "--sessions", "--idle-after", "5",
                                  "--json").stdout)
    held = users["users"][0]["session_list"][0]
    assert held["state"] == "Idle" and held["rss_bytes"] >= 500 * MB, users
    assert users["idle_held"]["rss_bytes"] >= 500 * MB
    text = sessionctl(env, "users", big_u.name, "--idle-after", "5").stdout
    assert re.search(r"Idle and Disc sessions hold 5\d\dM RSS", text), text
    d = daemons(config, tmp_path / "audit.jsonl", env)
    big.wait_output(rf"Your session {sid} will be signed out in", 40)
    assert procs.wait_until(lambda: gone(big_pids), 30), d.stderr
    assert f"session {ssid} " not in d.stderr
    assert not gone(small_pids) and "signed out" not in small.read_available(0.2)
    assert procs.wait_until(lambda: "signout" in _events(env), 10)
    rows = json.loads(sessionctl(env, "report", "--since", "1h", "--json").stdout)["rows"]
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["rule"], row["user"], row["signouts"]) == ("big-idle", big_u.name, 1)
    assert row["rss_bytes"] >= 500 * MB and row["processes"] >= 3 and row["idle_seconds"] >= 16
    text = sessionctl(env, "report").stdout
    assert re.search(rf"big-idle\s+{big_u.name}\s+1\s+5\d\dM", text), text
    metrics = sessionctl(env, "metrics").stdout
    assert 'sessionctl_policy_signouts_total{outcome="logged-off",rule="big-idle"} 1.0' in metrics
    assert 'sessionctl_policy_warnings_total{rule="big-idle"} 1.0' in metrics
    reclaimed = re.search(r'sessionctl_policy_reclaimed_rss_bytes_total\{rule="big-idle"\} '
                          r'(\S+)', metrics)
    assert reclaimed and float(reclaimed.group(1)) >= 500 * MB
    promtool(metrics)


def _events(env: dict[str, str]) -> str:
    return sessionctl(env, "report", "--json").stdout


def promtool(text: str) -> None:
    res = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr


def test_metrics_pass_promtool_and_a_real_prometheus_scrapes_the_daemon(
    make_user, open_login, tmp_path, daemons
) -> None:
    user = make_user()
    logins = [open_login(user), open_login(user)]
    env = policy_env(tmp_path)
    promtool(sessionctl(env, "metrics").stdout)
    promtool(sessionctl(env, "metrics", "--openmetrics").stdout)
    address = f"127.0.{random.randint(1, 250)}.{random.randint(2, 250)}"
    with socket.socket() as probe:
        probe.bind((address, 0))
        port = probe.getsockname()[1]
    config = tmp_path / "policy.toml"
    config.write_text(DEFAULTS + rule_for([user], idle_limit="8h")
                      + f'[metrics]\nlisten = "{address}:{port}"\n')
    d = daemons(config, tmp_path / "audit.jsonl", env)
    d.wait_log(f"serving metrics on http://{address}:{port}/metrics", 10)
    with Prometheus(tmp_path, f"{address}:{port}") as prom:
        query = f'sessionctl_user_sessions{{user="{user.name}"}}'
        result = procs.wait_until(lambda: prom.query(query), 60)
        assert result and float(result[0]["value"][1]) == len(logins), result
        total = prom.query("sum(sessionctl_sessions)")
        assert total and float(total[0]["value"][1]) >= len(logins)
        up = prom.query('up{job="sessionctl"}')
        assert up and up[0]["value"][1] == "1"


class Prometheus:
    """A real Prometheus server on loopback with its own data dir, scraping one target;
    ended by PID."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.dir = workdir / "prometheus"
        self.dir.mkdir()
        (self.dir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: sessionctl\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        host = target.split(":")[0]
        with socket.socket() as probe:
            probe.bind((host, 0))
            self.listen = f"{host}:{probe.getsockname()[1]}"
        self.log = open(self.dir / "prometheus.log", "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address={self.listen}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> list:
        import urllib.parse
        import urllib.request

        url = f"http://{self.listen}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.load(resp)["data"]["result"]
        except OSError:
            return []

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


# -- memory pressure ----------------------------------------------------------------------

PSI = "/proc/pressure/memory"
PRESSURE_ABOVE = 4.0
READER = """
import mmap, os, random, sys
sys.stdin.readline()
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, os.fstat(fd).st_size, prot=mmap.PROT_READ)
pages, rnd, total = len(m) // mmap.PAGESIZE, random.Random(1), 0
while True:
    total += m[rnd.randrange(pages) * mmap.PAGESIZE]
"""


def some_avg10() -> float:
    return float(Path(PSI).read_text().split()[1].split("=")[1])


class MemoryPressure:
    """Real memory pressure: random page reads through mmap of a 400 MB file (its page
    cache dropped) by a process in a 64 MiB v1 memory cgroup. The reader is killed by
    PID and the cgroup removed on exit."""

    def __init__(self, workdir: Path) -> None:
        self.file = workdir / "pressure.bin"
        with open(self.file, "wb") as out:
            chunk = os.urandom(MB)
            for _ in range(400):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            os.posix_fadvise(out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        self.cgroup = Path(f"/sys/fs/cgroup/memory/sctest-psi-{os.getpid()}-{time.time_ns()}")
        self.cgroup.mkdir()
        (self.cgroup / "memory.limit_in_bytes").write_text(str(64 * MB))
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", READER, str(self.file)],
                                     stdin=subprocess.PIPE, text=True)
        (self.cgroup / "cgroup.procs").write_text(str(self.proc.pid))
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> MemoryPressure:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self.cgroup.rmdir()
        self.file.unlink(missing_ok=True)


@pytest.mark.skipif(not Path("/sys/fs/cgroup/memory").is_dir() or not Path(PSI).exists(),
                    reason="needs PSI and the v1 memory controller (this machine kind has both)")
def test_memory_pressure_signs_out_the_largest_idle_holder_first_never_an_active_one(
    make_user, open_login, tmp_path, daemons
) -> None:
    big_u, mid_u, active_u = make_user(), make_user(), make_user()
    big, mid, active = open_login(big_u), open_login(mid_u), open_login(active_u)
    hold_memory(big, 400)
    hold_memory(mid, 150)
    hold_memory(active, 600)
    big_pids, mid_pids, active_pids = big.pids(), mid.pids(), active.pids()
    sid, msid, asid = (str(x.audit_session_id) for x in (big, mid, active))
    stop = threading.Event()
    typist = threading.Thread(target=keep_typing, args=(active, stop), daemon=True)
    typist.start()
    env = policy_env(tmp_path)
    config = tmp_path / "policy.toml"
    users = [big_u, mid_u, active_u]
    names = ", ".join(f'"{u.name}"' for u in users)
    config.write_text(DEFAULTS + rule_for(users, idle_limit="8h") + f"""
[pressure]
measure = "some avg10"
above = {PRESSURE_ABOVE}
idle_after = "20s"
warn_before = "20s"
grace = "2s"
users = [{names}]
""")
    audit = tmp_path / "audit.jsonl"
    try:
        assert procs.wait_until(lambda: some_avg10() < PRESSURE_ABOVE / 2, 90), \
            f"the machine is under memory pressure already: {Path(PSI).read_text()}"
        # idle_after is well above the kernel's tty atime granularity (updated at most every
        # 8 s), so the typing session can never look idle long enough to be chosen
        assert procs.wait_until(lambda: input_idle(big) >= 21 and input_idle(mid) >= 21, 40)
        d = daemons(config, audit, env)
        time.sleep(3)
        assert "memory-pressure" not in d.stderr, "warned without pressure"
        with MemoryPressure(tmp_path) as pressure:
            pressure.start()
            d.wait_log(f"[rule memory-pressure] warn session {sid} ", 90)
            big.wait_output(rf"Your session {sid} will be signed out in", 10)
            assert f"session {msid} " not in d.stderr and f"session {asid} " not in d.stderr
            assert procs.wait_until(lambda: gone(big_pids), 40), d.stderr
            # Pressure is still there: the next largest idle holder is warned.
            d.wait_log(f"[rule memory-pressure] warn session {msid} ", 30)
            pressure.stop()
            assert procs.wait_until(lambda: some_avg10() <= PRESSURE_ABOVE, 60)
            d.wait_log(f"cancel the sign-out of session {msid}", 10)
            assert "memory pressure fell" in d.stderr
            after = len(d.stderr)
            time.sleep(4)
            assert "warn session" not in d.stderr[after:], d.stderr[after:]
        assert not gone(mid_pids) and not gone(active_pids)
        assert f"session {asid} " not in d.stderr, "an active session was chosen"
        mid.wait_output(rf"The scheduled sign-out of session {msid} was cancelled", 5)
        rows = json.loads(sessionctl(env, "report", "--json").stdout)["rows"]
        assert [(r["rule"], r["user"]) for r in rows] == [("memory-pressure", big_u.name)]
        assert rows[0]["rss_bytes"] >= 400 * MB
    finally:
        stop.set()
        typist.join()
    events = [json.loads(x)["event"] for x in audit.read_text().splitlines()]
    assert events.count("policy-warn") == 2 and "policy-cancel" in events


# -- bad input ------------------------------------------------------------------------------

def test_bad_input_at_start_and_on_reload(make_user, tmp_path, daemons) -> None:
    user = make_user()
    env = policy_env(tmp_path)
    config = tmp_path / "policy.toml"
    good = DEFAULTS + rule_for([user], idle_limit="8h")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cases = [
            (good + '[pressure]\nfile = "/proc/pressure/nothing"\n', ":11:",
             "does not exist (a kernel without PSI"),
            (good + f'[metrics]\nlisten = "127.0.0.1:{port}"\n', ":11:", "address is in use"),
            (good + 'activity = ["input", "keys"]\n', ":10:", "unknown activity 'keys'"),
            (good + 'min_cpu = "0%"\n', ":10:", "out of range"),
        ]
        for text, line, what in cases:
            config.write_text(text)
            for argv in (["policy", "check", str(config)], ["daemon", "--config", str(config)]):
                res = sessionctl(env, *argv, check=False)
                assert res.returncode == 1, (argv, res.stderr)
                assert f"{config}{line}" in res.stderr and what in res.stderr, res.stderr
        config.write_text(good)
        d = daemons(config, tmp_path / "audit.jsonl", env)
        for text, _line, what in cases:
            config.write_text(text)
            d.proc.send_signal(1)  # SIGHUP
            assert procs.wait_until(lambda what=what: d.stderr.count(what) >= 1, 10), d.stderr
        assert d.stderr.count("config reload failed") == len(cases)
        assert "keeping the rules loaded at" in d.stderr and d.proc.poll() is None
    # A pressure file that goes away at run time (a cgroup removed): said once, clearly.
    cgroup = Path(f"/sys/fs/cgroup/unified/sctest-psi-{os.getpid()}-{time.time_ns()}")
    cgroup.mkdir()
    try:
        config.write_text(good + f'[pressure]\ncgroup = "{cgroup}"\n')
        d.proc.send_signal(1)
        d.wait_log("reloaded", 10)
    finally:
        cgroup.rmdir()
    d.wait_log(f"cannot read memory pressure from {cgroup}/memory.pressure", 10)
    time.sleep(2)
    assert d.stderr.count("cannot read memory pressure") == 1 and d.proc.poll() is None
