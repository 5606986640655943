"""Tests that run inside Windows: under Wine with a Windows CPython (tests/real/
test_windows_wine.py starts them), or on real Windows. Not collected anywhere else."""

from __future__ import annotations

import sys

if sys.platform != "win32":
    collect_ignore_glob = ["test_*.py"]
