"""Where the data that ships with derive lives, in a wheel and in a checkout.

The formula sets (`formulas/`) and report templates (`reports/`) sit at the top
of the repository because authors edit them as data; the wheel carries them
inside the package as `derive/_data/…` (see pyproject.toml). One lookup for
both, so that moving a module never breaks an installed copy.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def shipped_dir(name: str) -> Path:
    """`formulas` or `reports`: inside the installed package, or at the top of a checkout."""
    packaged = resources.files("derive") / "_data" / name
    if packaged.is_dir():
        return Path(str(packaged))
    return CHECKOUT / name
