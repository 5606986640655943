"""msg's command line: where the options end and the message begins (pure)."""

from __future__ import annotations

import pytest

from sessionctl.cli.msg import _parser, split_message

VALUES = _parser("msg").value_options()


@pytest.mark.parametrize(("argv", "head", "words"), [
    (["bob", "hello", "there"], ["bob"], ["hello", "there"]),
    (["/time:30", "/w", "bob", "save", "/tmp/x", "now"], ["/time:30", "/w", "bob"],
     ["save", "/tmp/x", "now"]),
    (["-t", "30", "bob", "-v", "is", "-v"], ["-t", "30", "bob", "-v"], ["is", "-v"]),
    (["--idle-over", "2h", "--servers", "web[1-3]", "*", "bye"],
     ["--idle-over", "2h", "--servers", "web[1-3]", "*"], ["bye"]),
    (["--", "-odd-user", "text"], ["-odd-user"], ["text"]),
    (["bob"], ["bob"], []),
])
def test_split_message(argv: list[str], head: list[str], words: list[str]) -> None:
    assert split_message(argv, VALUES) == (head, words)


def test_every_value_option_of_the_parser_takes_its_value() -> None:
    """The set comes from the parser (it used to be a list kept in step by hand)."""
    assert {"-t", "--time", "--server", "--backend", "--servers", "--ssh-option",
            "--idle-over", "--older-than", "--user", "--state"} <= VALUES
    for option in sorted(VALUES):
        head, words = split_message([option, "x", "bob", "hi"], VALUES)
        assert (head, words) == ([option, "x", "bob"], ["hi"]), option
