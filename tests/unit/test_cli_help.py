"""Every command and subcommand: help is always help (exit 0, stdout), a bad parameter
gets the error and a short usage, and every option the parser takes is in the help."""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from sessionctl.cli import args as cli_args
from sessionctl.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]


def console_scripts() -> dict[str, Callable[[], None]]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    out = {}
    for name, target in scripts.items():
        module, func = target.split(":")
        out[name] = getattr(importlib.import_module(module), func)
    return out


SCRIPTS = console_scripts()
SUBCOMMANDS = [
    *[[c] for c in cli_main.COMMANDS],
    ["query"], ["query", "session"], ["query", "user"], ["policy", "check"],
]
WINDOWS = ("qwinsta", "quser", "logoff", "msg", "tsdiscon")


def call(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run a command line in-process: (exit code, stdout, stderr)."""
    name, rest = argv[0], argv[1:]
    if name == "sessionctl":
        code = cli_main.dispatch(rest)
    else:
        old = sys.argv
        sys.argv = [name, *rest]
        try:
            SCRIPTS[name]()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


COMMAND_LINES = [[s] for s in SCRIPTS if s != "sessionctl"] + [
    ["sessionctl", *sub] for sub in SUBCOMMANDS] + [["sessionctl"]]


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
@pytest.mark.parametrize("flag", ["--help", "-h", "/?"])
def test_help_is_always_help(argv: list[str], flag: str, capsys) -> None:
    if flag == "/?" and argv[0] not in WINDOWS and argv[:2] != ["sessionctl", "msg"]:
        flag = "--help"
    code, out, err = call([*argv, flag], capsys)
    assert (code, err) == (0, ""), (code, err)
    assert len(out.strip().split("\n")) >= 3


def test_help_after_a_target_and_sessionctl_help_command(capsys) -> None:
    assert call(["msg", "someone", "/?"], capsys)[0] == 0
    code, out, _ = call(["sessionctl", "help", "policy", "check"], capsys)
    assert code == 0 and "sessionctl policy check FILE" in out


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_a_bad_parameter_gets_the_error_and_a_short_usage(argv: list[str], capsys) -> None:
    code, out, err = call([*argv, "--no-such-option"], capsys)
    assert code == 1 and out == ""
    lines = err.strip().split("\n")
    assert lines[0] == "Invalid parameter(s)"
    assert "no-such-option" in lines[1] or "unknown command" in lines[1], err
    assert 3 <= len(lines) <= 7, err
    assert lines[-1].startswith("Type '") and "--help" in lines[-1]


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_every_option_is_in_the_help(argv: list[str], capsys, monkeypatch) -> None:
    seen: list[cli_args.Parser] = []
    original = cli_args.Parser.parse

    def spy(self, tokens):
        seen.append(self)
        return original(self, tokens)

    monkeypatch.setattr(cli_args.Parser, "parse", spy)
    code, out, _ = call([*argv, "--help"], capsys)
    assert code == 0
    for parser in seen:
        for action in parser._actions:
            names = set(action.option_strings)
            if not names:
                continue
            windows = {f"/{k}".upper() for k, (opt, _) in parser.windows_flags.items()
                       if opt in names}
            assert any(n in out for n in names) or any(w in out.upper() for w in windows), (
                f"{' '.join(argv)}: {sorted(names)} not in its help")
