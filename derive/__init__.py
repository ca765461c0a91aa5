"""derive: derive backpropagation symbolically and prove the textbook formulas.

    >>> import derive
    >>> net = derive.load("two-two-two")            # a built-in network, or a .toml path
    >>> result = derive.derive(net)                 # every ∂E/∂θ, ∂E/∂v and δ recurrence
    >>> report = derive.prove(net)                  # the formula sets that apply, proven
    >>> report.summary()
    {'proven': 12, 'refuted': 0, 'undecided': 0, 'total': 12}

Networks are SymPy objects: build one with `derive.layered([12, 3, 2])`,
`derive.free_form({...equations...}, cost="E", inputs=[...], targets=[...])` or
`derive.convolutional([6, 6], [{"type": "conv", ...}, {"type": "maxpool", "size": 2}, ...])`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from derive.derivation import Derivations, Derived
from derive.errors import DeriveError, FormulaError, InputError
from derive.proof.formulas import FormulaSet, builtin_sets, load_set
from derive.graph.convolutional import convolutional
from derive.graph.free_form import free_form
from derive.graph.layered import layered
from derive.graph.network import Network
from derive.proof import ProofReport, Prover, Verdict
from derive.proof import prove as _prove
from derive.graph.spec import builtin_names, load, parse_spec


def derive(network: Network) -> Derived:
    """Every gradient, node derivative and recurrence of the network's cost."""
    return Derived(network)


def prove(network: Network, formulas=None, *, budget: float = 5.0, seed: int = 0) -> ProofReport:
    """Prove the formula sets that apply to `network` (all built-in sets by default).

    `formulas`: built-in set ids, `FormulaSet` objects or paths to .toml files.
    """
    from derive.proof.sets import applicable_sets

    return _prove(network, applicable_sets(network, formulas), budget=budget, seed=seed)


__all__ = [
    "DeriveError",
    "Derivations",
    "Derived",
    "FormulaError",
    "FormulaSet",
    "InputError",
    "Network",
    "ProofReport",
    "Prover",
    "Verdict",
    "builtin_names",
    "builtin_sets",
    "convolutional",
    "derive",
    "free_form",
    "layered",
    "load",
    "load_set",
    "parse_spec",
    "prove",
]
