"""`sessionctl top` exits non-zero when its screen ended on an internal error."""

from __future__ import annotations

import io

import pytest

from sessionctl.cli import top


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("code", "exit_code"), [(None, 0), (0, 0), (1, 70)])
def test_exit_code_follows_the_screen(monkeypatch: pytest.MonkeyPatch, code, exit_code) -> None:
    import sessionctl.tui.app as app

    class Screen:
        def __init__(self, **options: object) -> None:
            self.return_code = code

        def run(self) -> None:
            pass

    monkeypatch.setattr(app, "TopApp", Screen)
    monkeypatch.setattr("sys.stdin", _Tty())
    monkeypatch.setattr("sys.stdout", _Tty())
    monkeypatch.setenv("TERM", "xterm")
    assert top.top([]) == exit_code
