"""The public Python API: real functions, one name each, cheap to import, one backend."""

from __future__ import annotations

import ast
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import sessionctl
from sessionctl import backends
from sessionctl.backends.procfs import ProcfsBackend

SRC = Path(sessionctl.__file__).resolve().parent


def test_usage_can_be_called_twice() -> None:
    """The first call used to import sessionctl/usage.py, which rebound sessionctl.usage
    to the module: the second call raised TypeError."""
    first = sessionctl.usage(interval=0.1, backend="procfs")
    second = sessionctl.usage(interval=0.1, backend="procfs")
    assert isinstance(first, sessionctl.UsageSnapshot)
    assert isinstance(second, sessionctl.UsageSnapshot)


def test_no_exported_name_is_also_a_submodule() -> None:
    submodules = {m.name for m in pkgutil.iter_modules([str(SRC)])}
    assert not submodules & set(sessionctl.__all__)


def test_exports_are_the_real_functions_with_their_signatures() -> None:
    from sessionctl.actions import logoff, message, process, schedule, usage

    assert sessionctl.logoff is logoff.logoff
    assert sessionctl.send_message is message.send_message
    assert sessionctl.end_process is process.end_process
    assert sessionctl.schedule_logoff is schedule.schedule_logoff
    assert sessionctl.UsageSampler is usage.UsageSampler
    assert "grace" in inspect.signature(sessionctl.logoff).parameters
    assert "wait" in inspect.signature(sessionctl.send_message).parameters
    for name in sessionctl.__all__:
        value = getattr(sessionctl, name)
        assert name == "__version__" or inspect.getdoc(value), f"{name} has no docstring"
        if inspect.isfunction(value):
            assert "**options" not in str(inspect.signature(value)), name


def test_lazy_names_match_what_type_checkers_see() -> None:
    """Each lazily imported name is also imported under TYPE_CHECKING (so mypy and readers
    see the real thing) from the same module, and listed in __all__."""
    tree = ast.parse((SRC / "__init__.py").read_text())
    checked: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                for alias in imp.names:
                    checked[alias.asname or alias.name] = (imp.module or "").lstrip(".")
    assert checked == sessionctl._LAZY
    assert set(sessionctl._LAZY) <= set(sessionctl.__all__)
    assert set(dir(sessionctl)) >= set(sessionctl.__all__)


def test_import_is_cheap_actions_load_on_first_use() -> None:
    code = (
        "import sys, sessionctl\n"
        "print(sorted(m for m in sys.modules if m.startswith('sessionctl.actions')))\n"
        "sessionctl.logoff\n"
        "print('sessionctl.actions.logoff' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(SRC.parent)},
    ).stdout.split("\n")
    assert out[:2] == ["[]", "True"]


def test_no_module_imports_another_modules_private_names() -> None:
    """Private helpers stay private (actions used to import api._backend)."""
    found = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            ours = isinstance(node, ast.ImportFrom) and (
                node.level > 0 or (node.module or "").startswith("sessionctl"))
            if ours and isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.add((path.relative_to(SRC).as_posix(), alias.name))
    assert found == set()


def test_one_backend_per_name_and_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(backends.ENV, raising=False)
    first = backends.get_backend("procfs")
    assert isinstance(first, ProcfsBackend)
    assert backends.get_backend("procfs") is first
    assert backends.get_backend(first) is first
    monkeypatch.setenv(backends.ENV, "procfs")
    assert backends.get_backend() is first
    assert backends.get_backend("auto") is backends.get_backend(None)
    with pytest.raises(sessionctl.BackendUnavailable, match="choose from auto, procfs"):
        backends.get_backend("nosuch")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked child must get its own (a bus connection is not shared)
        os.write(write, b"same" if backends.get_backend("procfs") is first else b"own")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 10) == b"own"
    os.close(read)
    os.close(write)


def test_backend_names_are_written_once() -> None:
    """The CLI's --backend choices and the registry are the same list."""
    from sessionctl.cli.args import Parser, add_common

    parser = Parser("qwinsta", {})
    add_common(parser)
    action = next(a for a in parser._actions if "--backend" in a.option_strings)
    assert tuple(action.choices or ()) == backends.names()


class Listed(backends.Backend):
    """A backend answering with constructed sessions (no /proc, no bus)."""

    name = "listed"

    def __init__(self, found: list[sessionctl.Session]) -> None:
        self.found = found

    def sessions(self) -> list[sessionctl.Session]:
        return list(self.found)

    def member_pids(self, session, cache=None) -> set[int]:
        return set()


def test_find_session_explains_that_a_user_name_is_not_a_session() -> None:
    """logoff USER said only "No session exists for USER" while quser USER listed them."""
    from sessionctl import State

    be = Listed([
        sessionctl.Session("45", "pts/3", "fresh2", 1001, State.ACTIVE, "ssh"),
        sessionctl.Session("47", "", "fresh2", 1001, State.DISC, "unspecified"),
        sessionctl.Session("50", "pts/4", "other", 1002, State.ACTIVE, "ssh"),
    ])
    assert sessionctl.find_session("pts/3", backend=be).id == "45"
    with pytest.raises(sessionctl.NoSuchSession) as caught:
        sessionctl.find_session("fresh2", backend=be)
    text = str(caught.value)
    assert text.startswith("No session exists for fresh2: a session is named by its ID")
    assert "fresh2's sessions: 45 (pts/3, Active), 47 (Disc)" in text
    with pytest.raises(sessionctl.NoSuchSession, match=r"^No session exists for nobody$"):
        sessionctl.find_session("nobody", backend=be)
