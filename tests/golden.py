"""Recorded CLI outputs on the built-in networks and the examples: what a change of layout must not change.

`python tests/golden.py --record` writes tests/data/golden/*.txt from the
working tree; tests/test_golden.py compares every command's output with them.
Timings (`in 0.07 s`, `"seconds": 0.0193`) are masked: they are the only part
of the output that differs from run to run.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"

NETWORKS = ["two-two-two", "book-12-3-2", "generic-2-3-2", "generic-3-4-4-2", "zhou-2-2-2", "book-cnn",
            "softmax-4-5-3", "cross-entropy-l2-4-5-3"]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*-homework.toml"))


def commands() -> dict[str, list[str]]:
    """Each recorded output's file name → the command line that makes it."""
    found = {"list.txt": ["list"], "list-json.txt": ["list", "--json"]}
    for name in NETWORKS:
        found[f"derive-{name}.txt"] = ["derive", name]
        found[f"derive-{name}-json.txt"] = ["derive", name, "--json"]
        found[f"derive-{name}-latex.txt"] = ["derive", name, "--latex"]
        found[f"prove-{name}.txt"] = ["prove", name]
        found[f"prove-{name}-json.txt"] = ["prove", name, "--json"]
    for name in EXAMPLES:
        stem = name.removesuffix(".toml")
        found[f"check-{stem}.txt"] = ["check", f"examples/{name}"]
        found[f"check-{stem}-json.txt"] = ["check", f"examples/{name}", "--json"]
    return found


_TIMES = [
    (re.compile(r'("seconds": )[0-9.e+-]+'), r"\1<t>"),
    (re.compile(r"\b(in|after) \d+(\.\d+)? s\b"), r"\1 <t> s"),
    (re.compile(r"\(\d+(\.\d+)? s\)"), "(<t> s)"),
]


def masked(text: str) -> str:
    for pattern, replacement in _TIMES:
        text = pattern.sub(replacement, text)
    return text


def run(argv: list[str]) -> tuple[int, str]:
    """`derive ARGV` in this process, from the repository's top: exit code and stdout."""
    from derive.cli import main

    out, err = io.StringIO(), io.StringIO()
    here = Path.cwd()
    try:
        import os

        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.chdir(here)
    return code, out.getvalue()


def render(argv: list[str]) -> str:
    code, out = run(argv)
    return f"$ derive {' '.join(argv)}\n# exit {code}\n{masked(out)}"


def record() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for file, argv in commands().items():
        (GOLDEN / file).write_text(render(argv), encoding="utf-8")
        print(f"recorded {file}", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        record()
    else:
        print(__doc__)
