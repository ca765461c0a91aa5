"""SECURITY.md states each limit with the value the code has: the table is read back and compared."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from derive import limits

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| `(?P<name>[A-Z_]+)` \| (?P<value>[\d,]+) \| (?P<where>derive/[\w/]+\.py) \|", re.M)


def table() -> list[tuple[str, int, str]]:
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    return [(m["name"], int(m["value"].replace(",", "")), m["where"]) for m in ROW.finditer(text)]


def test_every_row_gives_the_value_the_code_has():
    rows = table()
    assert len(rows) >= 30
    for name, value, where in rows:
        module = importlib.import_module(where.removesuffix(".py").replace("/", "."))
        assert getattr(module, name) == value, f"SECURITY.md: {name} in {where}"


def test_every_limit_of_derive_limits_is_in_the_table():
    named = {(name, where) for name, _, where in table()}
    for name in dir(limits):
        if name.startswith("MAX_"):
            assert (name, "derive/limits.py") in named, f"SECURITY.md does not list {name}"
