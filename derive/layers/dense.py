"""A dense layer: `{type = "dense", units, activation, label}`.

Every unit of the layer before (a feature map's (k, i, j) or a dense layer's m)
feeds every unit n: z^O_n = Σ w^O_{n,…} a_… + b^O_n, a^O_n = f(z^O_n). The
last dense layer is the output O (it alone may use softmax); hidden ones are
H, H2, …. Names: `wO_n_k_i_j` (from a feature map) or `wO_n_m`, `bO_n`, `zO_n`, `aO_n`.
"""

from __future__ import annotations

from typing import Mapping

import sympy as sp

from derive.graph import functions as fn
from derive.graph import registry
from derive.graph.network import layer_index_latex, product
from derive.layers.base import Context, Layer, activation, check_keys, label, positive


class Dense(Layer):
    keys = {"type", "units", "activation", "label"}
    architecture = "dense"

    def __init__(self, table: Mapping, where: str, context: Context) -> None:
        check_keys(table, self.keys, where)
        number = context.count("dense")
        is_last = number == context.dense_total
        self.label = label(table, "O" if is_last else ("H" if number == 1 else f"H{number}"), where)
        self.units = positive(table.get("units"), f"{where} units")
        self.activation = activation(table.get("activation", "sigmoid"), where, allow_softmax=is_last)

    def build(self, context: Context, number: int, where: str) -> None:
        sources = list(context.current.items())
        context.check_size(number, self.units * (len(sources) + 1), self.units * len(sources), where)
        zs = [self._net_input(context, n, sources) for n in range(1, self.units + 1)]
        label = self.label
        outputs: dict[tuple[int, ...], sp.Symbol] = {}
        for n, z in enumerate(zs, start=1):
            a = context.make(f"a{label}", (n,), f"a{label}_{n}", f"a^{{{label}}}_{{{n}}}")
            if self.activation == "softmax":
                context.define(a, fn.softmax(sp.Integer(n), *zs))
            else:
                context.define(a, registry.ACTIVATIONS[self.activation](z))
            outputs[(n,)] = a
        context.current = outputs
        context.flat = True

    def _net_input(self, context: Context, n: int, sources: list) -> sp.Symbol:
        """Unit n's weights, bias and z^O_n."""
        label = self.label
        terms = []
        for index, source in sources:
            text = "_".join(str(v) for v in (n, *index))
            if len(index) == 3:  # from a unit (k, i, j) of a feature map: w^O_{n,k,ij}
                k, i, j = index
                tex = f"w^{{{label}}}_{{{n},{k},{layer_index_latex(i, j)}}}"
            else:
                tex = f"w^{{{label}}}_{{{layer_index_latex(n, *index)}}}"
            w = context.make(f"w{label}", (n, *index), f"w{label}_{text}", tex)
            if len(index) == 3 and index[1] < 10 and index[2] < 10:
                context.alias(w, f"w{label}_{n}_{index[0]}_{index[1]}{index[2]}")
            context.parameters.append(w)
            terms.append(product(w, source))
        bias = context.make(f"b{label}", (n,), f"b{label}_{n}", f"b^{{{label}}}_{{{n}}}")
        context.parameters.append(bias)
        z = context.make(f"z{label}", (n,), f"z{label}_{n}", f"z^{{{label}}}_{{{n}}}")
        context.define(z, sp.Add(*terms, bias))
        return z

    def plan(self) -> dict:
        return {"kind": "dense", "label": self.label, "units": self.units}

    def integers(self) -> dict[str, int]:
        return {"N": self.units}
