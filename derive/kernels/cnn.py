"""The convolutional backend: each layer of the network supplies its own stage.

A layer (derive.layers) checks its units against the symbols it declares and builds its stage
through a `StageCompiler`, which lends it what is the kernel's to know: the units feeding it,
its parameters' place in the flat buffer, and its formulas lambdified from the derivation (the
activation and σ', a pooling window's forward formula and its routing factors — the max mask,
1/|window|, a/aP — taken from the pool unit's definition and local partials). The kernel then
runs the stages forward and back; the output error δ^L is the layered backend's.

Inside, the maps of conv and pool stages are laid out channel first, (C, m, H, W), so that a
convolution is one product (K, C·kr·kc) @ (C·kr·kc, m·h·w) whose result is already the next
stage's contiguous input, and each window position of a pooling is a strided view of it.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import sympy as sp

from derive.derivation import Derivations
from derive.graph import functions as fn
from derive.graph.network import Network
from derive.kernels.base import Block, Kernel
from derive.kernels.elementwise import NUMPY_FUNCTIONS, Elementwise, KernelError, lambdify_safe, quiet
from derive.kernels.layered import Output, activation_pieces, dense_blocks, softmax_rows


def _first_maxima(pooled, *elements):
    """For each k, where element k is its window's first maximal element in row-major order
    (PyTorch's choice at a tie): element k equals the pooled maximum and no earlier one did."""
    masks, taken = [], None
    for element in elements:
        hit = element == pooled
        if taken is None:
            taken = hit.copy()
        else:
            hit &= ~taken
            taken |= hit
        masks.append(hit)
    return masks


class _first_maxima_of(sp.Function):
    """_first_maxima_of(P, e_1…e_n): the n masks of _first_maxima, computed once for all n partials."""


class _mask(sp.Function):
    """_mask(masks, k): the k-th (1-based) of those masks."""


POOL_FUNCTIONS = {
    "maxpool": lambda *elements: functools.reduce(np.maximum, elements),
    "_first_maxima_of": _first_maxima,
    "_mask": lambda masks, k: masks[k - 1],
}


class StageCompiler:
    """What a layer's `kernel_stage` asks of the kernel being compiled, layer after layer.

    `current` holds the units feeding the layer, by (c, i, j) for a feature map or (n,) once
    flat; `blocks` the parameter blocks allocated so far, in order."""

    error = KernelError  # what a layer raises when its units are not what it declares
    softmax_rows = staticmethod(softmax_rows)  # a softmax output's activation, row by row

    def __init__(self, network: Network):
        self.network = network
        self.current = {k if len(k) == 3 else (1, *k): s for k, s in network.families["x"].items()}
        self.blocks: list[Block] = []
        self.offset = 0

    def sources(self) -> list[sp.Symbol]:
        """The units feeding the layer, in Nielsen's order of a flattened map ((c, i, j) row-major)."""
        return [self.current[k] for k in sorted(self.current)]

    def parameters(self, weight_name: str, weights: np.ndarray, bias_name: str, biases: np.ndarray,
                   fan_in: int) -> tuple[Block, Block]:
        """The next weight and bias blocks of the flat buffer, holding these symbols."""
        weight = Block(weight_name, weights.shape, self.offset, weights, fan_in=fan_in)
        bias = Block(bias_name, biases.shape, self.offset + weight.size, biases, is_bias=True)
        return self._allocated(weight, bias)

    def dense_parameters(self, label: str, zs: list[sp.Symbol]) -> tuple[Block, Block]:
        """The next blocks of a dense layer, after checking z_j = Σ_k w_jk s_k + b_j for every unit."""
        return self._allocated(*dense_blocks(self.network, f"w{label}", f"b{label}", zs, self.sources(), self.offset))

    def _allocated(self, weight: Block, bias: Block) -> tuple[Block, Block]:
        self.blocks += [weight, bias]
        self.offset += weight.size + bias.size
        return weight, bias

    def activation(self, zs: list[sp.Symbol], nodes: list[sp.Symbol]) -> tuple[Callable | None, Callable | None]:
        """The layer's activation z -> a (None: softmax) and σ' (z, a) -> σ'(z), checked for every unit."""
        return activation_pieces(self.network, zs, nodes)

    def window_functions(self, unit: sp.Symbol, members: list[sp.Symbol]) -> tuple[Elementwise, Callable]:
        """A pooling unit's forward formula of its window's elements, and its routing (e_1…e_n, unit) ->
        [∂unit/∂e_k for each k], from its definition and local partials.

        Every unit of a pooling layer is the same function of its window, so the first unit's, over
        placeholders e_1…e_n and P for the unit, are the whole layer's."""
        elements = [sp.Symbol(f"E{k}", real=True) for k in range(1, len(members) + 1)]
        pooled = sp.Symbol("P", real=True)
        names = dict(zip(members, elements))
        definition = self.network.definitions[unit].xreplace(names)
        partials = self.network.local_partials(unit)
        routing = [partials[m].xreplace({**names, unit: pooled}) for m in members]
        # is_max(k, e…): e_k is the maximum, that is the unit P, and (at a tie) the first such;
        # one scan of the window, shared by all k
        routing = [r.replace(fn.is_max, lambda k, *e: _mask(_first_maxima_of(pooled, *e), k)) for r in routing]
        modules = [POOL_FUNCTIONS, NUMPY_FUNCTIONS, "numpy"]
        return Elementwise(definition, elements, modules), lambdify_safe(routing, [*elements, pooled], modules, cse=True)

    def advance(self, label: str) -> None:
        """The layer labelled `label` is compiled: its units feed the next."""
        self.current = dict(self.network.families[f"a{label}"])


class ConvolutionalKernel(Kernel):
    """The network's layers as stages: convolutions as im2col matrix products, pooling as strided
    window views, then dense layers (see the module's docstring for the layout)."""

    backend = "cnn"

    def __init__(self, network: Network, derivations: Derivations, dtype: str):
        self.input_shape = tuple(network.facts["input_shape"])
        compiler = StageCompiler(network)
        self.stages: list = []
        for layer in network.facts["layers"]:
            self.stages.append(layer.kernel_stage(compiler))
            compiler.advance(layer.label)
        super().__init__(network, dtype, compiler.blocks)
        last = self.stages[-1]
        self.output = Output(network, derivations, last.zs, last.nodes, network.facts["output_activation"])

    def _forward(self, params, x, buffered: bool = True):
        """Every stage's cached arrays; `buffered`: large arrays in workspaces kept between calls."""
        m = x.shape[0]
        a = self._cast(x).reshape((m, *self.input_shape)).transpose(1, 0, 2, 3)  # (C, m, H, W)
        cache = []
        for index, stage in enumerate(self.stages):
            cached, a = stage.forward(self, index, params, a, buffered)
            cache.append(cached)
        return cache

    @quiet
    def predict(self, params, x):
        return self._forward(params, x, buffered=False)[-1][2]

    @quiet
    def value_and_grad(self, params, x, y):
        x, y = self._cast(x), self._cast(y)
        cache = self._forward(params, x)
        grad = np.empty_like(params)
        flat, z, out, memo = cache[-1]
        loss, delta = self.output.loss_and_error(z, out, y, memo, self.ones(y.shape[1]))  # δ^L (BP1), batch mean
        last = len(self.stages) - 1
        # ∂C/∂(each stage's output), owned by this call: updated in place
        upstream = self.stages[last].backward_from_error(self, last, params, grad, delta, flat)
        for index in range(last - 1, -1, -1):
            upstream = self.stages[index].backward(self, index, params, grad, upstream, cache[index])
        return loss, grad
