"""A pooling layer: `{type = "maxpool" | "avgpool" | "l2pool", size, stride = size, label}`.

Each channel apart, a window of the feature map becomes one unit: its maximum,
its average or its L2 norm. A pooling unit's z is its a: `aP_k_i_j`, also
named `zP_k_i_j`; a second pooling layer is labelled P2.
"""

from __future__ import annotations

from typing import Mapping

import sympy as sp

from derive.graph import functions as fn
from derive.errors import InputError
from derive.graph.network import POOL_KIND, layer_index_latex
from derive.layers.base import Context, Layer, check_keys, label, pair, positive

def _pooled(kind: str, window: list[sp.Symbol]) -> sp.Expr:
    if kind == "max":
        return fn.maxpool(*window)
    if kind == "average":
        return sp.Add(*window) / len(window)
    return sp.sqrt(sp.Add(*[e**2 for e in window]))


class Pooling(Layer):
    """Max, average or L2 pooling, by `pool` ("max", "average", "l2")."""

    keys = {"type", "size", "stride", "label"}

    def __init__(self, table: Mapping, where: str, context: Context) -> None:
        check_keys(table, self.keys, where)
        if context.flat:
            raise InputError("pooling cannot follow a dense layer", where=where)
        self.architecture = table["type"]
        self.pool = POOL_KIND[self.architecture]
        self.number = context.count("pool")
        self.label = label(table, "P" if self.number == 1 else f"P{self.number}", where)
        self.mr, self.mc = pair(table.get("size"), f"{where} size")
        self.stride = positive(table.get("stride", self.mr), f"{where} stride")

    def build(self, context: Context, number: int, where: str) -> None:
        self.in_shape = in_c, in_h, in_w = context.shape()
        mr, mc, stride = self.mr, self.mc, self.stride
        self.out_h, self.out_w = (in_h - mr) // stride + 1, (in_w - mc) // stride + 1
        if self.out_h < 1 or self.out_w < 1:
            raise InputError("the window is larger than its input", where=where)
        context.check_size(number, 0, in_c * self.out_h * self.out_w * mr * mc, where)
        label, current = self.label, context.current
        nxt: dict[tuple[int, int, int], sp.Symbol] = {}
        for c in range(1, in_c + 1):
            for i in range(1, self.out_h + 1):
                for j in range(1, self.out_w + 1):
                    window = [
                        current[(c, stride * (i - 1) + p, stride * (j - 1) + q)]
                        for p in range(1, mr + 1)
                        for q in range(1, mc + 1)
                    ]
                    a = context.make(f"a{label}", (c, i, j), f"a{label}_{c}_{i}_{j}",
                                     f"a^{{{label}}}_{{{c},{layer_index_latex(i, j)}}}")
                    context.families.setdefault(f"z{label}", {})[(c, i, j)] = a
                    context.alias(a, f"z{label}_{c}_{i}_{j}")
                    if i < 10 and j < 10:
                        context.alias(a, f"a{label}_{c}_{i}{j}", f"z{label}_{c}_{i}{j}")
                    context.define(a, _pooled(self.pool, window))
                    nxt[(c, i, j)] = a
        context.current = nxt

    def plan(self) -> dict:
        return {"kind": "pool", "label": self.label, "pool": self.pool, "size": (self.mr, self.mc),
                "stride": self.stride, "in_shape": self.in_shape, "out_shape": (self.in_shape[0], self.out_h, self.out_w)}

    def integers(self) -> dict[str, int]:
        if self.number != 1:  # the first pooling layer's, for the formula sets
            return {}
        return dict(pr=self.mr, pc=self.mc, pstride=self.stride, rowsP=self.out_h, colsP=self.out_w)
