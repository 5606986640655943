"""Command lines: Windows and POSIX spellings, usage, and bad input (no tracebacks)."""

from __future__ import annotations

import pytest

from sessionctl.cli import query
from sessionctl.cli.args import COMMON_WINDOWS_FLAGS, Parser, UsageError, add_common


def parser() -> Parser:
    p = Parser("t", COMMON_WINDOWS_FLAGS)
    add_common(p)
    p.add_argument("--path")
    p.add_argument("target", nargs="?")
    return p


def test_windows_flags_translate() -> None:
    ns = parser().parse(["/SERVER:host1", "/v", "bob"])
    assert ns.server == "host1" and ns.verbose and ns.target == "bob"


def test_values_of_posix_options_are_not_windows_flags() -> None:
    ns = parser().parse(["--path", "/var/log/x", "bob"])
    assert ns.path == "/var/log/x" and ns.target == "bob"


@pytest.mark.parametrize("argv", [["/bogus"], ["/server"], ["/v:1"], ["--nope"], ["a", "b"],
                                  ["--server"]])
def test_bad_command_lines_raise_usage_error(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parser().parse(argv)


@pytest.mark.parametrize("argv", [["/?"], ["-h"], ["--help"]])
def test_help_prints_usage_on_stdout(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert query.quser(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Display information about users") and err == ""


@pytest.mark.parametrize("bad", ["-5", "../etc", "a/b", "/x", "99999999999", "pts/../1", "",
                                 "-1", "bob;rm"])
def test_bad_targets_are_invalid_parameters(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert query.qwinsta([bad]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("Invalid parameter(s)") and "Traceback" not in err
    assert "QWINSTA [sessionname" in err


def test_remote_server_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    # /server now goes over ssh (docs/fleet.md); a name that does not resolve is "unreachable"
    assert query.quser(["/server:elsewhere.invalid", "--connect-timeout", "5"]) == 2
    err = capsys.readouterr().err
    assert "Error opening Terminal server elsewhere.invalid: unreachable" in err
