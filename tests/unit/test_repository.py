"""The repository holds source, not build artifacts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = (".whl", ".tar.gz", ".zip", ".pyz", ".egg", ".deb")


def tracked() -> list[str]:
    res = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True)
    if res.returncode != 0:
        pytest.skip("not a git checkout (the check reads git's list of tracked files)")
    return [p for p in res.stdout.decode().split("\0") if p]


def test_no_build_artifacts_or_large_files_are_committed() -> None:
    """Two unused wheels (1 MB) used to sit at the root."""
    files = tracked()
    assert [f for f in files if f.endswith(ARTIFACTS)] == []
    big = [f for f in files if not f.startswith("tests/data/")
           and (ROOT / f).is_file() and (ROOT / f).stat().st_size > 256 * 1024]
    assert big == []
