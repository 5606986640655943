"""Fleet input: node sets, hosts files, inventories, limits, ssh failure classes, payload."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from lab import tool_path

from sessionctl.durations import parse_duration
from sessionctl.errors import InvalidArgument
from sessionctl.fleet import payload
from sessionctl.fleet.hosts import TooManyHosts, fold, resolve
from sessionctl.fleet.inventory import parse_inventory
from sessionctl.fleet.select import Selection
from sessionctl.fleet.ssh import classify
from sessionctl.model import Session, State

INVENTORY = """
# comment
lonely
[web]
web[01:04] ansible_port=2222
[db]
db-[a:c] ansible_host=10.0.0.9 ansible_user=dba
[prod:children]
web
db
[prod:vars]
ansible_user=admin
"""


def names(hosts) -> list[str]:
    return [h.name for h in hosts]


def test_node_sets() -> None:
    assert names(resolve("web[01-03]")) == ["web01", "web02", "web03"]
    assert names(resolve("a,b,web[1-3]!web2")) == ["a", "b", "web1", "web3"]
    assert names(resolve("n[1-5]&n[4-9]")) == ["n4", "n5"]
    assert names(resolve("n[1-4]", exclude="n[2-3]")) == ["n1", "n4"]
    assert fold(["n1", "n2", "n3", "x"]) == "n[1-3],x"


@pytest.mark.parametrize("bad", ["web[01-", "web[5-1]", "a,,b", "x[a-b]", "", "a b", "a\x1b[2Jb"])
def test_malformed_node_sets(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        resolve(bad)


def test_inventory_groups_ranges_and_vars() -> None:
    inv = parse_inventory(INVENTORY)
    assert inv.groups["web"] == ["web01", "web02", "web03", "web04"]
    assert inv.groups["prod"] == [*inv.groups["web"], "db-a", "db-b", "db-c"]
    hosts = {h.name: h for h in resolve("@prod!web02", inventory=inv)}
    assert sorted(hosts) == ["db-a", "db-b", "db-c", "web01", "web03", "web04"]
    assert hosts["web01"].port == 2222 and hosts["web01"].user == "admin"
    assert hosts["db-b"].hostname == "10.0.0.9" and hosts["db-b"].user == "dba"
    assert len(resolve(inventory=inv)) == 8  # alone: every host, 'lonely' too
    with pytest.raises(InvalidArgument, match="unknown group @nope"):
        resolve("@web,@nope", inventory=inv)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[web\nh1", "section header"),
        ("[web:weird]\nh1", "section header"),
        ("h[01:]", "bad host range"),
        ("h[1:9:0]", "bad step"),
        ("h[01:03 x=1", "unbalanced"),
        ("h1 novalue", "key=value"),
        ("h1 x='unclosed", "No closing quotation"),
        ("[a:children]\nb\n[b:children]\na", "cycle"),
        ("[a:children]\nnothere", "unknown group"),
        ("[a:vars]\njustakey", "key=value"),
    ],
)
def test_inventory_that_does_not_parse(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        parse_inventory(text, "inv.ini")
    assert "inv.ini:" in str(info.value)


YAML_INVENTORY = """
# the INI inventory above, in Ansible's YAML format
all:
  hosts:
    lonely:
  children:
    prod:
      children:
        web:
          hosts:
            web[01:04]:
              ansible_port: 2222
        db:
          hosts:
            db-[a:c]: {ansible_host: 10.0.0.9, ansible_user: dba}
      vars:
        ansible_user: admin
"""


def test_yaml_inventory_reads_as_the_ini_one(tmp_path) -> None:
    from sessionctl.fleet.inventory import load_inventory

    path = tmp_path / "hosts.yml"
    path.write_text(YAML_INVENTORY)
    inv, ini = load_inventory(path), parse_inventory(INVENTORY)
    for group in ("web", "db", "all"):
        assert sorted(inv.groups[group]) == sorted(ini.groups[group]), group
    assert sorted(inv.groups["prod"]) == sorted(ini.groups["prod"])
    by_yaml = {h.name: h for h in resolve("@prod", inventory=inv)}
    by_ini = {h.name: h for h in resolve("@prod", inventory=ini)}
    assert by_yaml == by_ini
    assert by_yaml["web01"].port == 2222 and by_yaml["web01"].user == "admin"
    plain = tmp_path / "inventory"  # no suffix: recognised by its first line
    plain.write_text("all:\n  hosts:\n    a1:\n    a2:\n")
    assert load_inventory(plain).hosts == ["a1", "a2"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("all:\n  hosts:\n    web[01:\n", 3, "unbalanced bracket"),
        ("all:\n  hosts:\n    'web[01:]':\n", 3, "bad host range"),
        ("all:\n  hostz:\n    a:\n", 2, "unknown key 'hostz'"),
        ("all:\n  hosts:\n    - a\n    - b\n", 3, "must be a mapping"),
        ("all:\n  children:\n    x:\n      children:\n        x:\n", 5, "cycle"),
        ("all:\n  hosts: {a: {ansible_port: [1, 2]}}\n", 2, "plain value"),
        ("all:\n  hosts:\n    a: {b: 1\n", 4, "not valid YAML"),
    ],
)
def test_yaml_inventory_errors_name_the_line(text: str, line: int, message: str) -> None:
    from sessionctl.fleet.inventory import parse_yaml_inventory

    with pytest.raises(InvalidArgument, match=message) as info:
        parse_yaml_inventory(text, "inv.yml")
    assert str(info.value).startswith(f"inv.yml:{line}:"), info.value


def test_host_counts_zero_and_huge(tmp_path) -> None:
    empty = tmp_path / "hosts"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(InvalidArgument, match="empty"):
        resolve(hosts_file=empty)
    with pytest.raises(InvalidArgument, match="no hosts"):
        resolve()
    started = time.monotonic()
    with pytest.raises(TooManyHosts, match="100000 hosts is more than the limit of 10000"):
        resolve("n[1-100000]")
    assert time.monotonic() - started < 5
    assert len(resolve("n[1-100000]", max_hosts=100_000)) == 100_000
    big = tmp_path / "big"
    big.write_text("".join(f"h{i}\n" for i in range(100_000)))
    with pytest.raises(TooManyHosts):
        resolve(hosts_file=big)


def test_ssh_failure_classes_from_recorded_messages() -> None:
    recorded = {
        "ssh: connect to host 10.1.1.1 port 22: Connection refused": "unreachable",
        "ssh: connect to host 10.1.1.1 port 22: No route to host": "unreachable",
        "ssh: Could not resolve hostname nosuch: Name or service not known": "unreachable",
        "ssh: connect to host 10.1.1.1 port 22: Connection timed out": "timeout",
        "Connection timed out during banner exchange": "timeout",
        "admin@h: Permission denied (publickey).": "auth",
        "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "Host key for h has changed and you have requested strict checking.\n"
        "Host key verification failed.": "hostkey",
        "No ED25519 host key is known for h and you have requested strict checking.\n"
        "Host key verification failed.": "hostkey",
        "kex_exchange_identification: read: Connection reset by peer": "unreachable",
    }
    for stderr, status in recorded.items():
        got, message = classify(stderr)
        assert got == status, stderr
        assert message and "@" not in message[:1]


def test_durations_and_selection() -> None:
    assert parse_duration("90") == 90 and parse_duration("15m") == 900
    assert parse_duration("1h") == 3600 and parse_duration("2d") == 172800
    for bad in ("", "1x", "-5m", "h1"):
        with pytest.raises(InvalidArgument):
            parse_duration(bad)
    with pytest.raises(InvalidArgument, match="unknown state"):
        Selection(states=("Bogus",))
    now = datetime.now(UTC)

    def session(sid: str, user: str, state: State, age: float, idle: float | None,
                current: bool = False) -> Session:
        return Session(sid, "", user, 1000, state, "ssh", login_time=now - timedelta(seconds=age),
                       idle_seconds=idle, current=current)

    old_disc = session("1", "ann", State.DISC, 7200, None)
    new_disc = session("2", "ann", State.DISC, 60, None)
    idle_active = session("3", "bob", State.ACTIVE, 9000, 4000)
    mine = session("4", "ann", State.DISC, 9000, None, current=True)
    pick = Selection(states=("disc",), older_than=3600)
    assert [s.id for s in (old_disc, new_disc, idle_active, mine) if pick.matches(s)] == ["1"]
    assert Selection(idle_over=3600).matches(idle_active)
    assert not Selection(idle_over=3600).matches(old_disc)  # no idle time: never idle-over
    assert not Selection(users=("bob",)).matches(old_disc)
    assert Selection().empty and not pick.empty


def test_payload_is_deterministic_and_runs_through_the_loader(tmp_path) -> None:
    first = payload.build()
    payload.build.cache_clear()
    again = payload.build()
    assert first.digest == again.digest and first.data == again.data
    command = payload.remote_command(first)
    assert shlex.split(command)[-2:] == [first.digest, str(len(first.data))]
    request = json.dumps({"op": "query", "target": "nosuchuser"}).encode() + b"\n"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PATH": os.path.dirname(sys.executable)
           + ":/usr/bin:/bin"}
    # first run: the loader asks for the zip, we send it on stdin
    shell = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = shell.communicate(request + first.data, timeout=60)
    assert out.startswith(b"SCTL NEED\n"), err
    assert json.loads(out.splitlines()[-1]) == {"ok": True, "result": []}
    cached = list((tmp_path / "sessionctl").iterdir())
    assert [p.name for p in cached] == [f"sessionctl-{first.digest[:40]}.pyz"]
    # second run: cached, nothing sent
    out = subprocess.run(["/bin/sh", "-c", command], input=request,
                         capture_output=True, env=env, timeout=60).stdout
    assert out.startswith(b"SCTL HAVE\n") and json.loads(out.splitlines()[-1])["ok"]
    # a tampered cache is not used: the loader asks again
    cached[0].write_bytes(b"PK tampered")
    out = subprocess.run(["/bin/sh", "-c", command], input=request + first.data,
                         capture_output=True, env=env, timeout=60).stdout
    assert out.startswith(b"SCTL NEED\n") and json.loads(out.splitlines()[-1])["ok"]


def _cli(tmp_path, *argv: str) -> subprocess.CompletedProcess[str]:
    """sessionctl with a PATH whose 'ssh' only records that it was run."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    marker = tmp_path / "ssh-was-run"
    (fake / "ssh").write_text(
        "#!/bin/sh\nopts=\n"  # record the options and the host (the command has newlines)
        "while [ $# -gt 0 ]; do\n"
        f'  if [ "$1" = -- ]; then echo "$opts -- $2" >> {marker}; break; fi\n'
        '  opts="$opts $1"; shift\n'
        "done\nexit 255\n"
    )
    (fake / "ssh").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:/usr/bin:/bin"}
    return subprocess.run([str(tool_path("sessionctl")), *argv], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["qwinsta", "--servers", "web[01-"], "missing bracket"),
        (["quser", "--servers", "@nogroup"], "unknown group @nogroup"),
        (["qwinsta", "--servers", "n[1-100000]"], "100000 hosts is more than the limit"),
        (["qwinsta", "--servers", "a", "--fanout", "0"], "fanout must be"),
        (["qwinsta", "--servers", "a", "--connect-timeout", "0"], "connect timeout"),
        (["logoff", "--servers", "a[1-3]"], "needs a session id"),
        (["logoff", "--servers", "a[1-3]", "12"], "choose sessions with"),
        (["logoff", "--servers", "a", "--idle-over", "soon"], "is not a duration"),
        (["logoff", "--state", "Disc"], "need remote hosts"),
        (["qwinsta", "/server:a", "--servers", "b"], "either /server"),
    ],
)
def test_cli_bad_input_runs_nothing(tmp_path, argv: list[str], message: str) -> None:
    res = _cli(tmp_path, *argv)
    assert res.returncode == 1, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "ssh-was-run").exists()


def test_cli_inventory_errors_and_only_named_hosts(tmp_path) -> None:
    bad = tmp_path / "bad.ini"
    bad.write_text("[web]\nweb[01:03 ansible_port=22\n")
    res = _cli(tmp_path, "qwinsta", "--inventory", str(bad))
    assert res.returncode == 1 and f"{bad}:2" in res.stderr
    assert not (tmp_path / "ssh-was-run").exists()
    good = tmp_path / "good.ini"
    good.write_text(INVENTORY)
    res = _cli(tmp_path, "qwinsta", "--inventory", str(good), "--servers", "@db", "--json",
               "--no-reuse")
    assert res.returncode == 2  # our fake ssh fails every host
    ran = (tmp_path / "ssh-was-run").read_text().splitlines()
    targets = sorted(line.split(" -- ")[1].split()[0] for line in ran)
    assert targets == ["db-a", "db-b", "db-c"]
    assert all("-l dba" in line and "HostName=10.0.0.9" in line for line in ran)
    assert all("StrictHostKeyChecking" not in line and "BatchMode=yes" in line for line in ran)
    # user@host, as ssh users type it, wins over the inventory's user
    (tmp_path / "ssh-was-run").unlink()
    yml = tmp_path / "good.yml"
    yml.write_text(YAML_INVENTORY)
    res = _cli(tmp_path, "qwinsta", "--inventory", str(yml), "--servers", "ops@db-a,@web",
               "--json", "--no-reuse")
    ran = (tmp_path / "ssh-was-run").read_text().splitlines()
    users = {line.split(" -- ")[1].split()[0]: line.split(" -l ")[1].split()[0] for line in ran}
    assert users == {"db-a": "ops", "web01": "admin", "web02": "admin", "web03": "admin",
                     "web04": "admin"}


def test_progress_bar_only_on_a_terminal_after_a_second() -> None:
    import io

    from sessionctl.cli.fleet import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet = io.StringIO()
    bar = Progress(10, quiet)
    bar.started -= 5
    bar.update(True)
    bar.finish()
    assert quiet.getvalue() == ""  # not a terminal: nothing
    tty = Tty()
    bar = Progress(10, tty)
    bar.update(True)
    assert tty.getvalue() == ""  # under a second: nothing
    bar.started -= 5
    bar.update(False)
    assert "2/10 hosts, 1 failed" in tty.getvalue()
    bar.finish()
    assert tty.getvalue().endswith("\r\x1b[K")


def test_user_at_host_items() -> None:
    from sessionctl.fleet.hosts import split_items

    assert split_items("alice@web[01,03],@db, bob@x1!x2") == [
        "alice@web[01,03]", "@db", "bob@x1!x2"]
    hosts = {h.name: h.user for h in resolve("alice@web[01-02],db1,bob@@grp",
                                             inventory=parse_inventory("[grp]\ng1\ng2\n"))}
    assert hosts == {"web01": "alice", "web02": "alice", "db1": None, "g1": "bob", "g2": "bob"}
    for bad, why in (("-oProxyCommand=x@web1", "not a user name"),
                     ("a b@web1", "not a user name"),
                     ("alice@web1,bob@web1", "named with two users")):
        with pytest.raises(InvalidArgument, match=why):
            resolve(bad)
    with pytest.raises(InvalidArgument, match="not user@host"):
        resolve("web[1-3]", exclude="alice@web2")
