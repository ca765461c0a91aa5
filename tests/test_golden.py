"""Every recorded output (tests/golden.py) is reproduced byte for byte, timings masked.

The recordings were made before the layout of issue 10 changed: text, LaTeX
and JSON of derive, prove and check on the built-in networks and the examples
must come out the same after it.
"""

from __future__ import annotations

import pytest

from golden import GOLDEN, commands, render

CASES = commands()


def test_every_command_has_a_recording():
    assert sorted(p.name for p in GOLDEN.glob("*.txt")) == sorted(CASES)


@pytest.mark.parametrize("file", sorted(CASES))
def test_output_is_unchanged(file):
    expected = (GOLDEN / file).read_text(encoding="utf-8")
    assert render(CASES[file]) == expected
