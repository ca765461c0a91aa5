"""Softmax with the cross-entropy loss over a batch, as course assignments state it (CS231n assignment 1).

    p_{nc} = e^{x_{nc}} / Σ_k e^{x_{nk}},  L = −(1/N) Σ_n Σ_c y_{nc} log p_{nc}

x is N×C, the scores (C = the spec's `input`); y, N×C, the one-hot targets, targets of the network.
This module is the end of the network: it supplies its own loss L instead of a generic loss of its
outputs. Names: `x1_2`, `p1_2`, `y1_2`. Where each row of y sums to 1, dx = (p − y)/N.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.graph import functions as fn
from derive.graph.network import symbol
from derive.layers.modules.base import Module, Parts, input_matrix, names


@dataclass
class LossParts(Parts):
    """Parts of a module that ends the network: its targets and its own loss (derive.graph.modules reads them)."""

    targets: list[str] = field(default_factory=list)
    loss: sp.Expr | None = None


class SoftmaxCrossEntropy(Module):
    keys = {"type"}

    def build(self, rows: int, features: int) -> Parts:
        self.sizes = (rows, features)
        parts = LossParts()
        x = input_matrix(parts, rows, features)
        parts.matrices["x"]["shape"] = ("N", "C")  # the scores: N examples of C classes
        parts.matrix("p", rows, features, "p{r}_{c}", "p_{{{r} {c}}}", shape=("N", "C"))
        parts.matrix("y", rows, features, "y{r}_{c}", "y_{{{r} {c}}}", shape=("N", "C"))
        parts.targets = [f"y{r}_{c}" for r in range(1, rows + 1) for c in range(1, features + 1)]
        y = names(parts, "y", rows, features)
        terms = []
        for n in range(1, rows + 1):
            for c in range(1, features + 1):
                parts.equations[f"p{n}_{c}"] = fn.softmax(sp.Integer(c), *x[n - 1])
                parts.outputs.append(f"p{n}_{c}")
                terms.append(y[n - 1][c - 1] * sp.log(symbol(f"p{n}_{c}")))
        parts.loss = -sp.Add(*terms) / rows
        return parts

    def facts(self) -> dict:
        rows, classes = getattr(self, "sizes", (None, None))
        return {"integers": {"N": rows, "D": classes, "C": classes}} if rows else {}
