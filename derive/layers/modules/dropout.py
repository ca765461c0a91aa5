"""Inverted dropout, as course assignments state it (CS231n assignment 2).

    out_{nd} = x_{nd} mask_{nd} / p

The mask is an input of the network (`mask1_2`: 0 or 1, the data's draw, as the assignment keeps it from
the forward pass) and p, the probability of keeping a unit, a constant; the layer has no parameters.
With `keep = 0.5` in the layer's table p is that number (still named `p`, a node fixed to it), so that a
claim off by 1/p is off by a number; without it p is any value. Names: `x1_2`, `mask1_2`, `out1_2`, `p`.
Its backward pass: dx = dout ⊙ mask / p.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Mapping

import sympy as sp

from derive.errors import InputError
from derive.graph.network import symbol
from derive.layers.modules.base import Module, Parts, input_matrix, names


class Dropout(Module):
    keys = {"type", "keep"}

    def __init__(self, table: Mapping, where: str) -> None:
        super().__init__(table, where)
        keep = table.get("keep")
        self.keep = None
        if keep is not None:
            if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
                raise InputError("must be a number greater than 0 and at most 1", where=f"{where} keep")
            self.keep = Fraction(str(keep)).limit_denominator(1000)

    def build(self, rows: int, features: int) -> Parts:
        parts = Parts(constants=[] if self.keep is not None else ["p"])
        if self.keep is not None:
            parts.equations["p"] = sp.Rational(self.keep.numerator, self.keep.denominator)
        x = input_matrix(parts, rows, features)
        parts.matrix("mask", rows, features, "mask{r}_{c}", r"\mathrm{{mask}}_{{{r} {c}}}")
        parts.inputs += [f"mask{r}_{c}" for r in range(1, rows + 1) for c in range(1, features + 1)]
        mask = names(parts, "mask", rows, features)
        parts.matrix("out", rows, features, "out{r}_{c}", r"\mathrm{{out}}_{{{r} {c}}}")
        keep = symbol("p")
        for n in range(1, rows + 1):
            for d in range(1, features + 1):
                parts.equations[f"out{n}_{d}"] = x[n - 1][d - 1] * mask[n - 1][d - 1] / keep
                parts.outputs.append(f"out{n}_{d}")
        parts.latex["p"] = "p"
        return parts

    def facts(self) -> dict:
        return {"keep": "given" if self.keep is not None else "any"}
