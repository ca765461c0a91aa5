"""A dense layer: `{type = "dense", units, activation, label}`.

Every unit of the layer before (a feature map's (k, i, j) or a dense layer's m)
feeds every unit n: z^O_n = Σ w^O_{n,…} a_… + b^O_n, a^O_n = f(z^O_n). The
last dense layer is the output O (it alone may use softmax); hidden ones are
H, H2, …. Names: `wO_n_k_i_j` (from a feature map) or `wO_n_m`, `bO_n`, `zO_n`, `aO_n`.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
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
        self.map_shape = None if context.flat else context.shape()  # the feature map it flattens, if any
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

    def kernel_stage(self, compiler) -> DenseStage:
        families, label = compiler.network.families, self.label
        zs = [families[f"z{label}"][(n,)] for n in range(1, self.units + 1)]
        nodes = [families[f"a{label}"][(n,)] for n in range(1, self.units + 1)]
        weight, bias = compiler.dense_parameters(label, zs)
        activation, derivative = compiler.activation(zs, nodes)
        softmax = compiler.softmax_rows if activation is None else None
        return DenseStage(weight, bias, zs, nodes, activation, derivative, softmax, self.map_shape)

    def drawing_column(self) -> tuple[str, tuple[int, ...], str]:
        return f"a^{{{self.label}}}", (self.units,), r"\text{dense}"

    def report_row(self, index: int, t) -> dict:
        return {"index": index, "kind": "dense", "kind_text": t.name("layer_kind", "dense"), "units": self.units,
                "activation": self.activation, "shape": str(self.units), "details": ""}

    def integers(self) -> dict[str, int]:
        return {"N": self.units}


class DenseStage:
    """A dense layer in a numeric kernel: BP1–BP4 in matrix form, one row per example.

    A feature map before it, (C, m, h, w) channel first, is flattened in each example's (c, i, j)
    order, Nielsen's order of the flattened map, and its gradient folded back the same way."""

    def __init__(self, weight, bias, zs: list[sp.Symbol], nodes: list[sp.Symbol], activation: Callable | None,
                 derivative: Callable | None, softmax: Callable | None, map_shape: tuple[int, int, int] | None):
        self.weight, self.bias = weight, bias  # blocks of the flat parameter buffer: (units, sources), (units,)
        self.zs, self.nodes = zs, nodes  # its units' symbols: the output error δ^L is derived over them
        self.activation, self.derivative = activation, derivative  # activation None: softmax rows
        self.softmax = softmax  # z, ones -> (a, what the log-likelihood reuses)
        self.map_shape = map_shape

    def forward(self, kernel, index: int, params: np.ndarray, a: np.ndarray, buffered: bool):
        """(what backward needs, its activations) from its input `a`, a map or rows."""
        if self.map_shape is not None:
            C, m, h, w = a.shape
            flat = kernel.workspace(index, "flat", shape=(m, C * h * w)) if buffered else np.empty((m, C * h * w), a.dtype)
            np.copyto(flat.reshape(m, C, h, w), a.transpose(1, 0, 2, 3))
        else:
            flat = a
        z = flat @ self.weight.view(params).T
        z += params[self.bias.offset : self.bias.end]
        if self.activation is None:
            out, memo = self.softmax(z, kernel.ones(z.shape[1]))
        else:
            out, memo = (self.activation if buffered else self.activation.plain)(z), None
        return (flat, z, out, memo), out

    def backward(self, kernel, index: int, params: np.ndarray, grad: np.ndarray, upstream: np.ndarray, cached):
        """A hidden layer's: δ = ∂C/∂a ⊙ σ'(z), `upstream` being ∂C/∂a (updated in place), then as below."""
        flat, z, out, _ = cached
        delta = upstream
        delta *= self.derivative(z, out)
        return self.backward_from_error(kernel, index, params, grad, delta, flat)

    def backward_from_error(self, kernel, index: int, params: np.ndarray, grad: np.ndarray, delta: np.ndarray,
                            flat: np.ndarray):
        """From its δ = ∂C/∂z: its gradients into `grad` (BP3, BP4), and ∂C/∂(its input) (BP2's
        product, None for the first stage), back in its input's layout."""
        m = len(delta)
        weight = self.weight.view(params)
        np.matmul(delta.T, flat, out=self.weight.view(grad))
        np.matmul(kernel.ones(m), delta, out=grad[self.bias.offset : self.bias.end])
        if not index:
            return None
        upstream = np.matmul(delta, weight, out=kernel.workspace(index, "up", shape=(m, weight.shape[1])))
        if self.map_shape is not None:  # back to (C, m, h, w)
            C, h, w = self.map_shape
            upstream = upstream.reshape(m, C, h, w).transpose(1, 0, 2, 3)
        return upstream
