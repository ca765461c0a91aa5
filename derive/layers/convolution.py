"""A convolution layer: `{type = "conv", filters, kernel, stride, padding, activation, label}`.

The book's (and PyTorch's) cross-correlation, with x zero outside the image:

    z^F_{k,ij} = Σ_{c,p,q} w^F_{k,c,pq} x_{c, s(i−1)+p−pad, s(j−1)+q−pad} + b^F_k,   a^F_{k,ij} = f(z^F_{k,ij})

Names: `wF_k_p_q` (`wF_k_c_p_q` with several input channels), `bF_k`,
`zF_k_i_j`, `aF_k_i_j`; a second convolution is labelled F2.
"""

from __future__ import annotations

from typing import Mapping

import sympy as sp

from derive.graph import registry
from derive.errors import InputError
from derive.graph.network import layer_index_latex, product
from derive.layers.base import Context, Layer, activation, check_keys, label, pair, positive


class Convolution(Layer):
    keys = {"type", "filters", "kernel", "stride", "padding", "activation", "label"}
    architecture = "conv"

    def __init__(self, table: Mapping, where: str, context: Context) -> None:
        check_keys(table, self.keys, where)
        if context.flat:
            raise InputError("a convolution cannot follow a dense layer", where=where)
        self.number = context.count("conv")
        self.label = label(table, "F" if self.number == 1 else f"F{self.number}", where)
        self.filters = positive(table.get("filters"), f"{where} filters")
        self.kr, self.kc = pair(table.get("kernel"), f"{where} kernel")
        self.stride = positive(table.get("stride", 1), f"{where} stride")
        self.activation = activation(table.get("activation", "sigmoid"), where, allow_softmax=False)
        self.padding = table.get("padding", "valid")

    def build(self, context: Context, number: int, where: str) -> None:
        self.in_shape = in_c, in_h, in_w = context.shape()
        self.pad_r, self.pad_c, self.out_h, self.out_w = _padding(
            self.padding, in_h, in_w, self.kr, self.kc, self.stride, where
        )
        if self.out_h < 1 or self.out_w < 1:
            raise InputError("the kernel is larger than its (padded) input", where=where)
        per_filter = in_c * self.kr * self.kc
        context.check_size(number, self.filters * (per_filter + 1), self.filters * self.out_h * self.out_w * per_filter,
                           where)
        nxt: dict[tuple[int, int, int], sp.Symbol] = {}
        for k in range(1, self.filters + 1):
            weights = self._weights(context, k, in_c)
            bias = context.make(f"b{self.label}", (k,), f"b{self.label}_{k}", f"b^{{{self.label}}}_{{{k}}}")
            context.parameters.append(bias)
            for i in range(1, self.out_h + 1):
                for j in range(1, self.out_w + 1):
                    nxt[(k, i, j)] = self._unit(context, weights, bias, k, i, j)
        context.current = nxt

    def _weights(self, context: Context, k: int, in_c: int) -> dict[tuple[int, int, int], sp.Symbol]:
        """Filter k's weights w^F_{k,c,pq}, by (c, p, q)."""
        label = self.label
        weights = {}
        for c in range(1, in_c + 1):
            for p in range(1, self.kr + 1):
                for q in range(1, self.kc + 1):
                    if in_c == 1:
                        w = context.make(f"w{label}", (k, p, q), f"w{label}_{k}_{p}_{q}",
                                         f"w^{{{label}}}_{{{k},{layer_index_latex(p, q)}}}", (k, 1, p, q))
                        if p < 10 and q < 10:
                            context.alias(w, f"w{label}_{k}_{p}{q}")
                    else:
                        w = context.make(f"w{label}", (k, c, p, q), f"w{label}_{k}_{c}_{p}_{q}",
                                         f"w^{{{label}}}_{{{k},{c},{layer_index_latex(p, q)}}}")
                    weights[(c, p, q)] = w
                    context.parameters.append(w)
        return weights

    def _unit(self, context: Context, weights: Mapping, bias: sp.Symbol, k: int, i: int, j: int) -> sp.Symbol:
        """z^F_{k,ij} and a^F_{k,ij}; returns the a."""
        label, stride = self.label, self.stride
        terms = []
        for (c, p, q), w in weights.items():
            source = context.current.get((c, stride * (i - 1) + p - self.pad_r, stride * (j - 1) + q - self.pad_c))
            if source is not None:  # zero padding contributes nothing
                terms.append(product(w, source))
        z = context.make(f"z{label}", (k, i, j), f"z{label}_{k}_{i}_{j}",
                         f"z^{{{label}}}_{{{k},{layer_index_latex(i, j)}}}")
        context.define(z, sp.Add(*terms, bias))
        a = context.make(f"a{label}", (k, i, j), f"a{label}_{k}_{i}_{j}",
                         f"a^{{{label}}}_{{{k},{layer_index_latex(i, j)}}}")
        context.define(a, registry.ACTIVATIONS[self.activation](z))
        if i < 10 and j < 10:
            context.alias(z, f"z{label}_{k}_{i}{j}")
            context.alias(a, f"a{label}_{k}_{i}{j}")
        return a

    def plan(self) -> dict:
        return {"kind": "conv", "label": self.label, "filters": self.filters, "kernel": (self.kr, self.kc),
                "stride": self.stride, "padding": (self.pad_r, self.pad_c), "in_shape": self.in_shape,
                "out_shape": (self.filters, self.out_h, self.out_w)}

    def integers(self) -> dict[str, int]:
        if self.number != 1:  # the first convolution's, for the formula sets
            return {}
        return dict(K=self.filters, Cin=self.in_shape[0], kr=self.kr, kc=self.kc, stride=self.stride,
                    padr=self.pad_r, padc=self.pad_c, rowsF=self.out_h, colsF=self.out_w)


def _padding(padding, h: int, w: int, kr: int, kc: int, stride: int, where: str) -> tuple[int, int, int, int]:
    """(pad rows, pad cols, output height, output width) for 'valid', 'same' or an integer."""
    if padding == "valid":
        pr = pc = 0
    elif padding == "same":
        if stride != 1:
            raise InputError("'same' padding needs stride 1 (as in PyTorch); give the padding as a number", where=f"{where} padding")
        pr, pc = (kr - 1) // 2, (kc - 1) // 2
        if kr % 2 == 0 or kc % 2 == 0:
            raise InputError("'same' padding needs an odd kernel; give the padding as a number", where=f"{where} padding")
    elif isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        pr = pc = padding
    else:
        raise InputError("must be \"valid\", \"same\" or a number of zero rows and columns", where=f"{where} padding")
    return pr, pc, (h + 2 * pr - kr) // stride + 1, (w + 2 * pc - kc) // stride + 1
