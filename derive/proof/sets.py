"""Which formula sets a proof uses: the ones asked for (by id, object or file), or every built-in set.

`derive prove`, `derive report` and the library's `derive.prove` all choose
their sets here, so that a name means the same set everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from derive.errors import InputError
from derive.graph.network import Network
from derive.proof.formulas import FormulaSet, builtin_sets, load_set


def formula_sets(requested: Iterable[str | Path | FormulaSet] | None = None) -> list[FormulaSet]:
    """The sets `requested` names: built-in ids, `FormulaSet` objects or .toml paths.

    Nothing requested means every built-in set. A name that is neither a
    built-in id nor a file is an InputError listing the built-in ids.
    """
    builtin = builtin_sets()
    requested = list(requested or [])
    if not requested:
        return list(builtin.values())
    sets = []
    for item in requested:
        if isinstance(item, FormulaSet):
            sets.append(item)
        elif item in builtin:
            sets.append(builtin[item])
        elif str(item).endswith(".toml") or Path(item).exists():
            sets.append(load_set(item))
        else:
            raise InputError(f"no formula set '{item}' (built-in: {', '.join(builtin)}; or give a .toml path)")
    return sets


def applicable_sets(network: Network, requested: Iterable[str | Path | FormulaSet] | None = None) -> list[FormulaSet]:
    """The sets of `formula_sets(requested)` with a formula that applies to `network`."""
    return [s for s in formula_sets(requested) if s.applicable(network)]
