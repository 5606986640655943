"""Shared fixtures: the host test lab (real users, a private sshd, real ssh logins).

Nothing here imports sessionctl. Lab modules are importable as ``lab`` (``from lab import
tool_path``; ``from lab.procs import ...``).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:  # also works with --import-mode=importlib
    sys.path.insert(0, _TESTS_DIR)

from lab.isolation import ISOLATED as _ISOLATED  # noqa: E402
from lab.isolation import (  # noqa: E402
    isolate_paths,
    remove_stale_isolation_dirs,
    system_marks,
    system_writes,
)
from lab.login import Login, NoTtyLogin  # noqa: E402
from lab.sshd import SSHD, Sshd, remove_stale_sshds  # noqa: E402
from lab.sudo import remove_stale_rules  # noqa: E402
from lab.users import LabUser, create_user, remove_stale_test_users, remove_user  # noqa: E402

_SYSTEM_MARKS = pytest.StashKey[dict]()  # the system's sessionctl files at the start


def _not_root_reason() -> str | None:
    if os.geteuid() != 0:
        return "host lab needs root (it creates users and runs sshd)"
    return None


def _no_sshd_reason() -> str | None:
    return _not_root_reason() or (None if os.path.exists(SSHD) else f"{SSHD} is not installed")


def pytest_configure(config: pytest.Config) -> None:
    """Point sessionctl's audit log, state and run directories at this run's own
    directory (SESSIONCTL_AUDIT_LOG/STATE_DIR/RUN_DIR), before any test or tool starts:
    the suite never writes the system's real ones. Tools started by the tests inherit
    it; logins get the state and run directories through the lab sshd (SetEnv)."""
    config.stash[_ISOLATED] = isolate_paths()
    config.stash[_SYSTEM_MARKS] = system_marks()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The run fails if anything wrote the system's own audit log, state or run directory."""
    before = session.config.stash.get(_SYSTEM_MARKS, None)
    changed = system_writes(before) if before is not None else []
    if changed:
        sys.stderr.write("\nthe suite wrote the system's own sessionctl files: "
                         + ", ".join(changed) + "\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    base = config.stash.get(_ISOLATED, None)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove lab users, sshds and sudo rules left behind by crashed earlier runs."""
    if _not_root_reason() is not None:
        return
    try:
        remove_stale_test_users()
        remove_stale_sshds()
        remove_stale_rules()
        remove_stale_isolation_dirs()
    except Exception as exc:  # a failed sweep must not abort the run; tests use fresh names
        sys.stderr.write(f"\nlab: cleanup of stale test users/sshds failed: {exc}\n")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The count of adversarial cases passed (tests/real/test_adversarial_real.py)."""
    outcomes: dict[str, int] = {}
    for kind in ("passed", "failed", "skipped", "xfailed", "xpassed", "error"):
        for report in terminalreporter.stats.get(kind, []):
            nodeid = getattr(report, "nodeid", "")
            if "test_adversarial_real.py" in nodeid and getattr(report, "when", "call") in (
                "call", "setup"
            ) and not (kind == "passed" and report.when == "setup"):
                outcomes[kind] = outcomes.get(kind, 0) + 1
    total = sum(outcomes.values())
    if total:
        detail = ", ".join(f"{n} {k}" for k, n in outcomes.items() if k != "passed")
        terminalreporter.write_line(
            f"adversarial: {outcomes.get('passed', 0)} of {total} cases passed"
            + (f" ({detail})" if detail else "")
        )


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    """A real sshd on 127.0.0.x:port shared by the whole test session."""
    reason = _no_sshd_reason()
    if reason:
        pytest.skip(reason)
    with Sshd() as server:
        yield server


@pytest.fixture
def make_user() -> Iterator[Callable[..., LabUser]]:
    """Factory ``make_user(prefix="sctest") -> LabUser``; users are removed at teardown."""
    reason = _not_root_reason()
    if reason:
        pytest.skip(reason)
    made: list[tuple[LabUser, str]] = []

    def factory(prefix: str = "sctest") -> LabUser:
        user = create_user(prefix)
        made.append((user, prefix))
        return user

    yield factory
    errors = []
    for user, prefix in reversed(made):
        try:
            remove_user(user, prefix=prefix)
        except Exception as exc:  # keep removing the others
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def lab_user(make_user: Callable[..., LabUser]) -> LabUser:
    """One fresh throwaway user."""
    return make_user()


@pytest.fixture
def open_login(sshd: Sshd, make_user: Callable[..., LabUser]) -> Iterator[Callable[..., Login]]:
    """Factory ``open_login(user, **kw) -> Login`` (interactive ssh -tt login via the lab sshd).

    Logins are closed at teardown, before the users are removed.
    """
    logins: list[Login] = []

    def factory(user: LabUser, **kwargs: object) -> Login:
        login = Login(user, sshd, **kwargs)  # type: ignore[arg-type]
        logins.append(login)
        return login

    yield factory
    for login in logins:
        login.close()


@pytest.fixture
def open_notty(
    sshd: Sshd, make_user: Callable[..., LabUser]
) -> Iterator[Callable[..., NoTtyLogin]]:
    """Factory ``open_notty(user, command="sleep 300") -> NoTtyLogin`` (ssh -T, no utmp)."""
    sessions: list[NoTtyLogin] = []

    def factory(user: LabUser, command: str = "sleep 300") -> NoTtyLogin:
        session = NoTtyLogin(user, sshd, command)
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        session.close()


@pytest.fixture
def ct_login(ct) -> Iterator[Callable[..., Login]]:
    """Factory: an interactive ssh login (host pty) into the container ``ct`` (each
    container test module defines which) as a new user, or as ``user`` again."""
    from types import SimpleNamespace

    logins: list[Login] = []

    def factory(user: SimpleNamespace | None = None) -> Login:
        if user is None:
            name, password = ct.add_user()
            user = SimpleNamespace(name=name, password=password)
        login = Login(user, SimpleNamespace(address=ct.address, port=ct.port))  # type: ignore[arg-type]
        logins.append(login)
        return login

    yield factory
    for login in logins:
        login.close()


@pytest.fixture(scope="session")
def systemd_container() -> Iterator[object]:
    """One real systemd + logind container (systemd-nspawn) for the whole test session."""
    from lab.container import container_fixture

    yield from container_fixture()


@pytest.fixture(scope="session")
def desktop_container() -> Iterator[object]:
    """A systemd container with the desktop layer (TigerVNC, Xfce, xrdp) for the session."""
    from lab.container import container_fixture, unavailable_reason
    from lab.desktop import ensure_desktop_layer

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    yield from container_fixture(layers=[ensure_desktop_layer()])
