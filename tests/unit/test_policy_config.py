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
