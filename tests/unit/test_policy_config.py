"""Policy files: every mistake is a clear error with file and line; good files load."""

from __future__ import annotations

import pytest

from sessionctl.policy.config import ConfigError, parse

GOOD = """\
[defaults]
warn_before = "5m"        # notice period before acting
max_postpone = "30m"
exempt_users = ["root"]
exempt_groups = []

[[rule]]
name = "idle-logins"
idle_limit = "1h"
users = ["*"]

[[rule]]
name = "leftovers"
disc_limit = "2h"

[[rule]]
name = "long"
max_session = "12h"
types = ["ssh"]
remote_hosts = ["10.*"]
"""


def test_the_documented_shape_loads() -> None:
    policy = parse(GOOD, "p.toml")
    assert [r.name for r in policy.rules] == ["idle-logins", "leftovers", "long"]
    idle = policy.rules[0]
    assert idle.kind == "idle_limit" and idle.limit == 3600 and idle.warn_before == 300
    assert idle.exempt_users == ("root",) and idle.max_postpone == 1800
    assert policy.rules[2].types == ("ssh",) and policy.rules[2].line == 16


def test_root_is_exempt_unless_stated() -> None:
    policy = parse('[[rule]]\nname = "a"\nidle_limit = "1h"\n')
    assert policy.rules[0].exempt_users == ("root",)
    policy = parse('[defaults]\nexempt_users = []\n[[rule]]\nname = "a"\nidle_limit = "1h"\n')
    assert policy.rules[0].exempt_users == ()


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ('[defaults]\nwarn_befor = "5m"\n[[rule]]\nname="a"\nidle_limit="1h"\n', ":2:",
         "unknown key 'warn_befor'"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\nuser = ["x"]\n', ":4:", "unknown key 'user'"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[extra]\nx=1\n', ":4:", "unknown section"),
        ('[[rule]]\nname="a"\n\nidle_limit = "-5m"\n', ":4:", "not a duration"),
        ('[[rule]]\nname="a"\nidle_limit = "abc"\n', ":3:", "not a duration"),
        ('[[rule]]\nname="a"\nidle_limit = true\n', ":3:", "must be a duration"),
        ('[[rule]]\nname="a"\nidle_limit = "1h"\nusers = "bob"\n', ":4:", "list of strings"),
        ('[[rule]]\nname="a"\nidle_limit = "1h"\nusers = ["no-such-user-x"]\n', ":4:",
         "user 'no-such-user-x' does not exist"),
        ('[[rule]]\nname="a"\nidle_limit = "1h"\ngroups = ["no-such-group-x"]\n', ":4:",
         "group 'no-such-group-x' does not exist"),
        ('[defaults]\nexempt_groups = ["no-such-group-x"]\n[[rule]]\nname="a"\n'
         'idle_limit="1h"\n', ":2:", "does not exist"),
        ('[[rule]]\nname="a"\n', ":1:", "exactly one of"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\nmax_session="2h"\n', ":4:", "exactly one of"),
        ('[[rule]]\nidle_limit="1h"\n', ":1:", "needs a name"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[[rule]]\nname="a"\nmax_session="1h"\n',
         ":5:", "already used on line 2"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\nusers=["*"]\n\n[[rule]]\nname="b"\n'
         'idle_limit="2h"\nusers=["root"]\n', ":6:", "overlaps rule 'a' (line 1)"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\ntypes=["ssh"]\n[[rule]]\nname="b"\n'
         'idle_limit="2h"\n', ":5:", "overlaps"),
        ('[[rule]]\nname="a"\nidle_limit="5m"\nwarn_before="10m"\n', ":4:", "shorter than"),
        ('[defaults]\nwarn_before = "5m"\n', ":1:", "no [[rule]]"),
        ('[[rule]\nname="a"\n', ":1:", "TOML syntax"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\nmessage="\\u001b[2J"\n', ":4:", "empty"),
    ],
)
def test_mistakes_name_file_and_line(text: str, where: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text, "policy.toml")
    message = str(err.value)
    assert message.startswith("policy.toml" + where), message
    assert what in message, message


def test_disjoint_rules_of_one_kind_are_fine() -> None:
    text = ('[[rule]]\nname="ssh"\nidle_limit="1h"\ntypes=["ssh"]\n'
            '[[rule]]\nname="tty"\nidle_limit="2h"\ntypes=["tty"]\n')
    assert len(parse(text).rules) == 2


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ('[defaults]\nactivity = ["input", "typing"]\n[[rule]]\nname="a"\nidle_limit="1h"\n',
         ":2:", "unknown activity 'typing'"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\nactivity = []\n', ":4:", "non-empty list"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\ncpu_active = "0%"\n', ":4:", "out of range"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\ncpu_active = "5 percent"\n', ":4:",
         "not a percentage"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\nmin_cpu = "100000%"\n', ":4:", "out of range"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n\nmin_rss = "2 lots"\n', ":5:", "not a size"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\nmin_rss = "0"\n', ":4:", "more than 0"),
        ('[[rule]]\nname="memory-pressure"\nidle_limit="1h"\n', ":2:", "reserved"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[pressure]\nabove = 0\n', ":5:", "above"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[pressure]\nabove = 100\n', ":5:", "above"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[pressure]\nmeasure = "some avg5"\n', ":5:",
         "measure must be one of"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[pressure]\nfile = "/proc/no-psi-here"\n',
         ":5:", "does not exist (a kernel without PSI"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[pressure]\ncgroup = "/sys/fs/cgroup/nope"\n',
         ":5:", "/sys/fs/cgroup/nope/memory.pressure does not exist"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[pressure]\nat_once = 0\n', ":5:", "at_once"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[pressure]\nactivity = ["keys"]\n', ":5:",
         "unknown activity"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[pressure]\nspeed = 1\n', ":5:",
         "unknown key 'speed' in [pressure]"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[metrics]\nlisten = "127.0.0.1"\n', ":5:",
         "ADDRESS:PORT"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[metrics]\nlisten = "127.0.0.1:70000"\n',
         ":5:", "out of range"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[metrics]\nlisten = "0.0.0.0:9464"\n', ":5:",
         "not a loopback address"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[metrics]\nlisten = "host.example:9464"\n',
         ":5:", "not an IP address"),
        ('[[rule]]\nname="a"\nidle_limit="1h"\n[metrics]\nlisten = "192.0.2.7:9464"\n'
         'allow_remote = true\n', ":5:", "not an address of this host"),
    ],
)
def test_activity_resources_pressure_metrics_mistakes(text: str, where: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text, "policy.toml")
    message = str(err.value)
    assert message.startswith("policy.toml" + where), message
    assert what in message, message


def test_metrics_address_in_use_is_an_error_unless_we_hold_it() -> None:
    import socket

    from sessionctl.policy.config import Metrics

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        text = f'[[rule]]\nname="a"\nidle_limit="1h"\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
        with pytest.raises(ConfigError, match=r"policy.toml:5: .* the address is in use"):
            parse(text, "policy.toml")
        policy = parse(text, "policy.toml", bound=Metrics("127.0.0.1", port))
        assert policy.metrics == Metrics("127.0.0.1", port, 5)


def test_activity_resources_and_pressure_load() -> None:
    policy = parse("""
[defaults]
activity = ["input", "output"]
cpu_active = "7.5%"

[[rule]]
name = "big"
idle_limit = "30m"
min_rss = "2G"
activity = ["input", "output", "cpu", "clients", "forwards"]

[[rule]]
name = "all"
idle_limit = "8h"

[pressure]
measure = "full avg10"
above = 20
idle_after = "15m"
warn_before = "45s"
min_rss = "100M"
exempt_users = ["root"]

[metrics]
listen = "127.0.0.1:1"
""", "p.toml", probe=False)
    big, everyone = policy.rules
    assert big.min_rss == 2 << 30 and big.activity[-1] == "forwards" and big.cpu_active == 7.5
    assert everyone.activity == ("input", "output") and everyone.min_rss == 0
    p = policy.pressure
    assert p is not None and p.file == "/proc/pressure/memory" and p.measure == "full avg10"
    assert p.above == 20 and p.rule.limit == 900 and p.rule.warn_before == 45
    assert p.rule.min_rss == 100 << 20 and p.rule.max_postpone == 0 and p.line == 16
    assert policy.activity_sources == {"input", "output", "cpu", "clients", "forwards"}
    assert policy.needs_usage and not policy.needs_pss
    assert policy.metrics is not None and policy.metrics.host == "127.0.0.1"


def test_sizes_and_percentages() -> None:
    from sessionctl.quantities import parse_percent, parse_size

    assert parse_size("2G") == 2 << 30 and parse_size("200M") == 200 << 20
    assert parse_size("1.5GiB") == 3 << 29 and parse_size("512kb") == 512 << 10
    assert parse_size(4096) == 4096
    assert parse_percent("5%") == 5.0 and parse_percent(12.5) == 12.5
    with pytest.raises(Exception, match="out of range"):
        parse_percent("150%")
