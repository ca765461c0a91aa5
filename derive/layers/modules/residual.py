"""A residual block, as course assignments state it (He et al. 2016): the input skips past one layer.

    z_{nd} = Σ_k x_{nk} W_{kd} + b_d,  h_{nd} = f(z_{nd}),  out_{nd} = x_{nd} + h_{nd}

W is D×D (the block keeps the width, so the sum is defined), f the `activation` key's function (relu by
default; any of derive.graph.registry's activations). Names: `x1_2`, `W1_2`, `b2`, `z1_2`, `h1_2`,
`out1_2`. Its backward pass adds the skip's path to the layer's: dx = dout + (dout ⊙ f'(z)) Wᵀ,
dW = xᵀ (dout ⊙ f'(z)), db = Σ_n dout ⊙ f'(z).
"""

from __future__ import annotations

from typing import Mapping

import sympy as sp

from derive.graph import registry
from derive.graph.network import symbol
from derive.layers.base import activation
from derive.layers.modules.base import Module, Parts, input_matrix, names


class Residual(Module):
    keys = {"type", "activation"}
    products = "matrix"  # x W is the matrix product; * and \odot are entrywise

    def __init__(self, table: Mapping, where: str) -> None:
        super().__init__(table, where)
        self.activation = activation(table.get("activation", "relu"), where, allow_softmax=False)

    def build(self, rows: int, features: int) -> Parts:
        parts = Parts()
        x = input_matrix(parts, rows, features)
        parts.matrix("W", features, features, "W{r}_{c}", "W_{{{r} {c}}}", shape=("D", "D"))
        parts.matrix("b", 1, features, "b{c}", "b_{{{c}}}", shape=("1", "D"))
        for name in ("z", "h"):
            parts.matrix(name, rows, features, name + "{r}_{c}", name + "_{{{r} {c}}}")
        parts.matrix("out", rows, features, "out{r}_{c}", r"\mathrm{{out}}_{{{r} {c}}}")
        parts.parameters = [f"W{r}_{c}" for r in range(1, features + 1) for c in range(1, features + 1)]
        parts.parameters += [f"b{d}" for d in range(1, features + 1)]
        weights = names(parts, "W", features, features)
        function = registry.ACTIVATIONS[self.activation]
        for n in range(1, rows + 1):
            for d in range(1, features + 1):
                total = sp.Add(*[x[n - 1][k] * weights[k][d - 1] for k in range(features)])
                parts.equations[f"z{n}_{d}"] = total + symbol(f"b{d}")
                parts.equations[f"h{n}_{d}"] = function(symbol(f"z{n}_{d}"))
        for n in range(1, rows + 1):
            for d in range(1, features + 1):
                parts.equations[f"out{n}_{d}"] = x[n - 1][d - 1] + symbol(f"h{n}_{d}")
                parts.outputs.append(f"out{n}_{d}")
        return parts

    def facts(self) -> dict:
        return {"activation": self.activation}
