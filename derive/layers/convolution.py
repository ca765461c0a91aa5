"""A convolution layer: `{type = "conv", filters, kernel, stride, padding, activation, label}`.

The book's (and PyTorch's) cross-correlation, with x zero outside the image:

    z^F_{k,ij} = Σ_{c,p,q} w^F_{k,c,pq} x_{c, s(i−1)+p−pad, s(j−1)+q−pad} + b^F_k,   a^F_{k,ij} = f(z^F_{k,ij})

Names: `wF_k_p_q` (`wF_k_c_p_q` with several input channels), `bF_k`,
`zF_k_i_j`, `aF_k_i_j`; a second convolution is labelled F2.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import sympy as sp
from numpy.lib.stride_tricks import sliding_window_view

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
        label = self.label
        z = context.make(f"z{label}", (k, i, j), f"z{label}_{k}_{i}_{j}",
                         f"z^{{{label}}}_{{{k},{layer_index_latex(i, j)}}}")
        context.define(z, self._cross_correlation(weights, bias, context.current, i, j))
        a = context.make(f"a{label}", (k, i, j), f"a{label}_{k}_{i}_{j}",
                         f"a^{{{label}}}_{{{k},{layer_index_latex(i, j)}}}")
        context.define(a, registry.ACTIVATIONS[self.activation](z))
        if i < 10 and j < 10:
            context.alias(z, f"z{label}_{k}_{i}{j}")
            context.alias(a, f"a{label}_{k}_{i}{j}")
        return a

    def _cross_correlation(self, weights: Mapping, bias: sp.Symbol, current: Mapping, i: int, j: int) -> sp.Expr:
        """z at (i, j) of the filter with these weights (by (c, p, q)) over the map `current` (by (c, i, j))."""
        terms = []
        for (c, p, q), w in weights.items():
            source = current.get((c, self.stride * (i - 1) + p - self.pad_r, self.stride * (j - 1) + q - self.pad_c))
            if source is not None:  # zero padding contributes nothing
                terms.append(product(w, source))
        return sp.Add(*terms, bias)

    def kernel_stage(self, compiler) -> ConvolutionStage:
        network, label, channels = compiler.network, self.label, self.in_shape[0]
        weights = np.empty((self.filters, channels, self.kr, self.kc), dtype=object)
        for key, s in network.families[f"w{label}"].items():
            if len(key) == 4:
                k, c, p, q = key
                weights[k - 1, c - 1, p - 1, q - 1] = s
        biases = np.array([network.families[f"b{label}"][(k,)] for k in range(1, self.filters + 1)], dtype=object)
        by_filter = [{(c + 1, p + 1, q + 1): w for (c, p, q), w in np.ndenumerate(weights[k])} for k in range(self.filters)]
        for (k, i, j), z in network.families[f"z{label}"].items():  # each unit is the declared cross-correlation
            if network.definitions[z] != self._cross_correlation(by_filter[k - 1], biases[k - 1], compiler.current, i, j):
                raise compiler.error(f"{z} is not the convolution its layer declares")
        weight, bias = compiler.parameters(f"W{label}", weights, f"b{label}", biases, fan_in=channels * self.kr * self.kc)
        zs = [network.families[f"z{label}"][(k, 1, 1)] for k in range(1, self.filters + 1)]
        nodes = [network.families[f"a{label}"][(k, 1, 1)] for k in range(1, self.filters + 1)]
        activation, derivative = compiler.activation(zs, nodes)
        return ConvolutionStage(weight, bias, self.stride, (self.pad_r, self.pad_c), activation, derivative,
                                (self.filters, self.out_h, self.out_w))

    def drawing_column(self) -> tuple[str, tuple[int, ...], str]:
        stride = rf",\ s={self.stride}" if self.stride != 1 else ""
        return f"a^{{{self.label}}}", (self.filters, self.out_h, self.out_w), rf"\text{{conv }}{self.kr}\times{self.kc}" + stride

    def report_row(self, index: int, t) -> dict:
        details = t.name("layer_details", "conv", filters=self.filters, size=f"{self.kr}×{self.kc}",
                         stride=self.stride, padding=f"{self.pad_r},{self.pad_c}")
        return {"index": index, "kind": "conv", "kind_text": t.name("layer_kind", "conv"), "units": "",
                "activation": self.activation, "shape": f"{self.filters}×{self.out_h}×{self.out_w}", "details": details}

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


class ConvolutionStage:
    """A convolution in a numeric kernel: im2col, one matrix product, the activation; and back.

    Maps are laid out channel first, (C, m, H, W): the product (K, C·kr·kc) @ (C·kr·kc, m·h·w)
    is then already the next stage's contiguous input."""

    def __init__(self, weight, bias, stride: int, padding: tuple[int, int], activation: Callable,
                 derivative: Callable, out_shape: tuple[int, int, int]):
        self.weight, self.bias = weight, bias  # blocks of the flat parameter buffer: (K, C, kr, kc), (K,)
        self.stride, self.padding = stride, padding
        self.activation, self.derivative = activation, derivative
        self.out_shape = out_shape

    def forward(self, kernel, index: int, params: np.ndarray, a: np.ndarray, buffered: bool):
        """(what backward needs, the output map) from the input map `a`; `buffered`: into the kernel's workspaces."""
        cols = _im2col(a, self, kernel.workspace(index, "cols", shape=self._cols_shape(a)) if buffered else None)
        K = self.out_shape[0]
        z = kernel.workspace(index, "z", shape=(K, cols.shape[1])) if buffered else None
        z = np.matmul(self.weight.view(params).reshape(K, -1), cols, out=z)  # (K, m·h·w)
        z += params[self.bias.offset : self.bias.end, None]
        out = (self.activation if buffered else self.activation.plain)(z)
        return (a, cols, z, out), out.reshape(K, a.shape[1], *self.out_shape[1:])

    def backward(self, kernel, index: int, params: np.ndarray, grad: np.ndarray, upstream: np.ndarray, cached):
        """∂C/∂(its input map) from ∂C/∂(its output) `upstream` (None for the first stage); its parameters'
        gradients into `grad`."""
        source, cols, z, out = cached
        K = self.out_shape[0]
        delta = upstream.reshape(K, -1)  # (K, m·h·w): a view, upstream being contiguous here
        delta *= self.derivative(z, out)
        np.matmul(delta, cols.T, out=self.weight.view(grad).reshape(K, -1))
        np.add.reduce(delta, axis=1, out=grad[self.bias.offset : self.bias.end])
        if not index:
            return None
        w = self.weight.view(params).reshape(K, -1)
        columns = np.matmul(w.T, delta, out=kernel.workspace(index, "dcols", shape=cols.shape))
        padded = self._padded_shape(source.shape)
        return _col2im(columns, source.shape, self, kernel.workspace(index, "up", shape=padded, zero=True))

    def _cols_shape(self, a: np.ndarray) -> tuple[int, int]:
        _, out_h, out_w = self.out_shape
        _, C, kr, kc = self.weight.shape
        return (C * kr * kc, a.shape[1] * out_h * out_w)

    def _padded_shape(self, shape) -> tuple[int, ...]:
        C, m, H, W = shape
        pad_r, pad_c = self.padding
        return (C, m, H + 2 * pad_r, W + 2 * pad_c)


def _im2col(a: np.ndarray, stage: ConvolutionStage, out: np.ndarray | None = None) -> np.ndarray:
    """Every receptive field as a column: (C·kr·kc, m·out_h·out_w) from a (C, m, H, W), one strided copy."""
    pad_r, pad_c = stage.padding
    if pad_r or pad_c:
        a = np.pad(a, ((0, 0), (0, 0), (pad_r, pad_r), (pad_c, pad_c)))
    _, out_h, out_w = stage.out_shape
    _, C, kr, kc = stage.weight.shape
    s = stage.stride
    windows = sliding_window_view(a, (kr, kc), axis=(2, 3))[:, :, : s * (out_h - 1) + 1 : s, : s * (out_w - 1) + 1 : s]
    # (C, m, out_h, out_w, kr, kc) -> (C, kr, kc, m, out_h, out_w): the innermost run stays a row of the map
    windows = windows.transpose(0, 4, 5, 1, 2, 3)
    if out is None:
        return np.ascontiguousarray(windows).reshape(C * kr * kc, -1)
    np.copyto(out.reshape(windows.shape), windows)
    return out


def _col2im(cols: np.ndarray, shape, stage: ConvolutionStage, out: np.ndarray) -> np.ndarray:
    """The transpose of _im2col: add each column's entries back onto the (C, m, H, W) input, in `out` (zeros, padded)."""
    C, m, H, W = shape
    pad_r, pad_c = stage.padding
    _, out_h, out_w = stage.out_shape
    _, _, kr, kc = stage.weight.shape
    s = stage.stride
    patches = cols.reshape(C, kr, kc, m, out_h, out_w)
    for p in range(kr):
        for q in range(kc):
            out[:, :, p : p + s * out_h : s, q : q + s * out_w : s] += patches[:, p, q]
    return out[:, :, pad_r : pad_r + H, pad_c : pad_c + W]
