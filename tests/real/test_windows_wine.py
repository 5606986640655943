"""The windows backend for real: a Windows CPython under Wine runs tests/windows/ (the
backend's real ctypes calls into Wine's wtsapi32, kernel32, advapi32), and the installed
console script's behaviour is checked from here through pipes.

The lab (Wine 8.0, the Windows CPython, its psutil and pytest wheels, a booted prefix) is
built once by scripts/wine-lab.sh, which scripts/test.sh runs; each test session works in
its own copy of the prefix and ends the Wine processes of that copy only.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath

import pytest

WINE_DIR = Path(os.environ.get("SESSIONCTL_WINE_DIR", "/var/cache/sessionctl-wine"))
WINE = "/usr/lib/wine/wine64"
WINESERVER = "/usr/lib/wine/wineserver"
ROOT = Path(__file__).resolve().parents[2]
WINDOWS_TESTS = ROOT / "tests" / "windows"


def z(path: Path) -> str:
    """A Linux path as the Windows programs under Wine see it (drive Z: is /)."""
    return str(PureWindowsPath("Z:\\", *path.resolve().parts[1:]))


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not (WINE_DIR / "ready").is_file():
        pytest.skip(f"the Wine lab is not built in {WINE_DIR}: run scripts/wine-lab.sh "
                    "(scripts/test.sh does)")
    if os.geteuid() != 0:
        pytest.skip("the Wine lab's prefix belongs to root")
    where = tmp_path_factory.mktemp("wine") / "prefix"
    subprocess.run(["cp", "-a", str(WINE_DIR / "prefix"), str(where)], check=True)
    try:
        yield where
    finally:
        # end the Wine processes of this prefix only (its own wineserver), then remove it
        subprocess.run([WINESERVER, "-k"], env={**os.environ, "WINEPREFIX": str(where)},
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
        subprocess.run([WINESERVER, "-w"], env={**os.environ, "WINEPREFIX": str(where)},
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
        shutil.rmtree(where.parent, ignore_errors=True)


def windows_python(prefix: Path, *args: str, timeout: float = 900,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the Windows python.exe with the checkout's src and tests on its path. Output
    goes through pipes (capture_output): Windows Python cannot write to a regular Linux
    file."""
    full = {
        **os.environ,
        "WINEPREFIX": str(prefix),
        "WINEDEBUG": "-all",
        "WINEDLLOVERRIDES": "mscoree,mshtml=",
        "PYTHONPATH": f"{z(ROOT / 'src')};{z(ROOT / 'tests')}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        **(env or {}),
    }
    full.pop("DISPLAY", None)
    return subprocess.run([WINE, str(WINE_DIR / "python" / "python.exe"), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          encoding="utf-8",
                          errors="replace", env=full, timeout=timeout, check=False)


def windows_test_names() -> set[str]:
    found = set()
    for path in WINDOWS_TESTS.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        found |= {f"{path.name}::{n.name}" for n in tree.body
                  if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    return found


def test_windows_side_suite_under_wine(prefix: Path) -> None:
    done = windows_python(prefix, "-m", "pytest", "-rA", "-q", "--rootdir",
                          z(WINDOWS_TESTS), z(WINDOWS_TESTS))
    report = done.stdout + done.stderr
    passed = set(re.findall(r"^PASSED (\S+)", report, re.MULTILINE))
    expected = windows_test_names()
    assert len(expected) >= 9
    assert {p.rsplit("/", 1)[-1].rsplit("\\", 1)[-1] for p in passed} == expected, report
    assert done.returncode == 0, report
    assert not re.search(r"^(FAILED|ERROR|SKIPPED)", report, re.MULTILINE), report


def test_console_script_under_wine(prefix: Path) -> None:
    """qwinsta as Windows starts it: a clear refusal on stderr, exit code 1, no traceback."""
    done = windows_python(prefix, "-c",
                          "from sessionctl.cli.query import qwinsta_main; qwinsta_main()",
                          timeout=300)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("not supported here: WTSEnumerateSessionsW listed no "
                                  "sessions"), done.stderr
    assert "Traceback" not in done.stderr
