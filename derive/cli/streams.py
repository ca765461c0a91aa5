"""The command line's output streams: one whole JSON value on stdout, progress bars on stderr."""

from __future__ import annotations

import sys


def emit_json(data) -> None:
    """One complete JSON value on stdout, or nothing: it is built whole before a byte is written.

    JSON has no NaN or infinity: a non-finite float is written as null.
    """
    from derive.jsontext import json_text

    try:
        text = json_text(data)
    except ValueError:  # a NaN or an infinity somewhere: walk the data only then
        text = json_text(_finite_json(data))
    sys.stdout.write(text + "\n")


def _finite_json(data):
    """`data` with every non-finite float replaced by None (an iterative walk: deep data cannot recurse)."""
    import math

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if hasattr(value, "dtype") and getattr(value, "shape", None) == ():  # a numpy scalar
            value = value.item()
            return None if isinstance(value, float) and not math.isfinite(value) else value
        return value

    root = [clean(data)]
    stack = [(root, 0)]
    while stack:
        container, key = stack.pop()
        value = container[key]
        if isinstance(value, dict):
            value = container[key] = {k: clean(v) for k, v in value.items()}
            stack.extend((value, k) for k in value)
        elif isinstance(value, (list, tuple)):
            value = container[key] = [clean(v) for v in value]
            stack.extend((value, i) for i in range(len(value)))
    return root[0]


class progress_bar:
    """A tqdm bar on stderr, drawn only when stderr is a terminal and the work is long."""

    def __init__(self, total: int, description: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=description, file=sys.stderr, disable=None, leave=False, delay=1.0)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def wrap(self, items):
        for item in items:
            yield item
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
