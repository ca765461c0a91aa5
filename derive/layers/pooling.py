"""A pooling layer: `{type = "maxpool" | "avgpool" | "l2pool", size, stride = size, label}`.

Each channel apart, a window of the feature map becomes one unit: its maximum,
its average or its L2 norm. A pooling unit's z is its a: `aP_k_i_j`, also
named `zP_k_i_j`; a second pooling layer is labelled P2.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
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
                    window = self._window(current, c, i, j)
                    a = context.make(f"a{label}", (c, i, j), f"a{label}_{c}_{i}_{j}",
                                     f"a^{{{label}}}_{{{c},{layer_index_latex(i, j)}}}")
                    context.families.setdefault(f"z{label}", {})[(c, i, j)] = a
                    context.alias(a, f"z{label}_{c}_{i}_{j}")
                    if i < 10 and j < 10:
                        context.alias(a, f"a{label}_{c}_{i}{j}", f"z{label}_{c}_{i}{j}")
                    context.define(a, _pooled(self.pool, window))
                    nxt[(c, i, j)] = a
        context.current = nxt

    def _window(self, current: Mapping, c: int, i: int, j: int) -> list[sp.Symbol]:
        """The units of channel c of the map `current` that unit (c, i, j) pools, in row-major order."""
        s = self.stride
        return [current[(c, s * (i - 1) + p, s * (j - 1) + q)] for p in range(1, self.mr + 1) for q in range(1, self.mc + 1)]

    def kernel_stage(self, compiler) -> PoolingStage:
        network = compiler.network
        first = None
        for (c, i, j), unit in network.families[f"a{self.label}"].items():  # each window is the declared one
            members = self._window(compiler.current, c, i, j)
            if network.definitions[unit] != _pooled(self.pool, members):
                raise compiler.error(f"{unit} is not the pooling window its layer declares")
            first = first or (unit, members)
        forward, routing = compiler.window_functions(*first)
        return PoolingStage((self.mr, self.mc), self.stride, (self.in_shape[0], self.out_h, self.out_w), forward, routing)

    def drawing_column(self) -> tuple[str, tuple[int, ...], str]:
        name = {"max": r"\max", "average": r"\text{avg}", "l2": r"L_2"}[self.pool]
        return f"a^{{{self.label}}}", (self.in_shape[0], self.out_h, self.out_w), rf"{name}\ {self.mr}\times{self.mc}"

    def report_row(self, index: int, t) -> dict:
        details = t.name("layer_details", "pool", pool=t.name("pool", self.pool), size=f"{self.mr}×{self.mc}",
                         stride=self.stride)
        return {"index": index, "kind": "pool", "kind_text": t.name("layer_kind", "pool"), "units": "",
                "activation": "", "shape": f"{self.in_shape[0]}×{self.out_h}×{self.out_w}", "details": details}

    def integers(self) -> dict[str, int]:
        if self.number != 1:  # the first pooling layer's, for the formula sets
            return {}
        return dict(pr=self.mr, pc=self.mc, pstride=self.stride, rowsP=self.out_h, colsP=self.out_w)


class PoolingStage:
    """A pooling layer in a numeric kernel: each window position a strided view of the (C, m, H, W) map.

    `forward` (e_1…e_n) -> the pooled unit and `routing` (e_1…e_n, unit) -> [∂unit/∂e_k for each k]
    are the layer's definition and local partials, lambdified by the kernel."""

    def __init__(self, size: tuple[int, int], stride: int, out_shape: tuple[int, int, int], forward, routing: Callable):
        self.size, self.stride, self.out_shape = size, stride, out_shape
        self.forward_formula, self.routing = forward, routing

    def forward(self, kernel, index: int, params: np.ndarray, a: np.ndarray, buffered: bool):
        """(what backward needs, the pooled map) from the input map `a`."""
        elements = self._elements(a)
        out = (self.forward_formula if buffered else self.forward_formula.plain)(*elements)
        return (a, elements, out), out

    def backward(self, kernel, index: int, params: np.ndarray, grad: np.ndarray, upstream: np.ndarray, cached):
        """∂C/∂(window element k) = ∂C/∂(unit) · ∂unit/∂e_k, the local partial the derivation gives."""
        source, elements, out = cached
        result = kernel.workspace(index, "up", shape=source.shape, zero=not self._covers(source.shape))
        mr, mc = self.size
        _, out_h, out_w = self.out_shape
        s = self.stride
        disjoint = s >= mr and s >= mc  # each element in one window at most: write instead of add
        for k, factor in enumerate(self.routing(*elements, out)):
            p, q = divmod(k, mc)
            part = result[:, :, p : p + s * (out_h - 1) + 1 : s, q : q + s * (out_w - 1) + 1 : s]
            if disjoint:
                np.multiply(upstream, factor, out=part)
            else:
                part += upstream * factor
        return result

    def _elements(self, a: np.ndarray) -> list[np.ndarray]:
        """The window's k-th element of every pooling unit, for each k in row-major order: strided views of a."""
        mr, mc = self.size
        _, out_h, out_w = self.out_shape
        s = self.stride
        return [a[:, :, p : p + s * (out_h - 1) + 1 : s, q : q + s * (out_w - 1) + 1 : s] for p in range(mr) for q in range(mc)]

    def _covers(self, shape) -> bool:
        """Whether the windows tile the map exactly: then the backward pass writes every element once
        (the result needs no zeroing first)."""
        (mr, mc), s = self.size, self.stride
        _, out_h, out_w = self.out_shape
        return s == mr == mc and shape[2] == s * out_h and shape[3] == s * out_w
