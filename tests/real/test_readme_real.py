"""README's examples are what the tools print today (scripts/readme_examples.py --write
regenerates them); tables fit a 120-column terminal."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.real
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def test_readme_examples_match_real_output(sshd) -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        import readme_examples as rx
    finally:
        sys.path.remove(str(SCRIPTS))
    with rx.lab(sshd) as made:
        intro, examples = rx.scenario(made)
    assert rx.too_wide(examples) == []
    assert rx.shape(rx.block(intro, examples)) == rx.shape(rx.current()), (
        "README.md's examples differ from the tools' output: run "
        "scripts/readme_examples.py --write")
