"""Numeric kernels generated from the proven symbolic results.

`compile_kernel(network)` returns a `Kernel` whose `value_and_grad(params, x, y)` computes the
mean cost of a mini-batch and its gradient, with no Python loop over examples. One module per
backend: layered (BP1–BP4 in matrix form), cnn (each layer of derive.layers supplies its own
stage), stack (layers over a mini-batch, each from its formula set proven for every size) and freeform (one lambdified function, regrouped into array code by codegen); base holds
what every kernel shares, elementwise the formulas lambdified from the derivation.

Sigmoid and softmax are computed without overflow; the loss of softmax with log-likelihood and
of sigmoid with cross-entropy goes through log-sum-exp. What can still overflow (a user's cost
with log or 1/x, parameters driven to huge values by a large learning rate) comes back as inf
or nan, never as a warning or an exception: kernels run with numpy's floating-point warnings
off. The caller checks (training does).
"""

from __future__ import annotations

from derive.derivation import Derivations
from derive.errors import InputError
from derive.graph.network import Network
from derive.kernels.base import DTYPES, Block, Kernel
from derive.kernels.cnn import ConvolutionalKernel
from derive.kernels.elementwise import KernelError
from derive.kernels.freeform import FreeFormKernel
from derive.kernels.layered import LayeredKernel
from derive.kernels.stack import StackKernel


def compile_kernel(network: Network, dtype: str = "float64", backend: str | None = None) -> Kernel:
    """A kernel for `network`: "layered", "cnn" or "free-form" (default: by the network's kind)."""
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}")
    backend = backend or {"layered": "layered", "cnn": "cnn", "stack": "stack"}.get(network.kind, "free-form")
    if (backend == "stack") != (network.kind == "stack"):
        raise InputError(f"the {backend} backend does not compile a {network.kind} network")
    if backend == "stack":  # compiled from formula sets proven for every size: no per-example derivation
        return StackKernel(network, None, dtype)
    derivations = Derivations(network)
    if backend == "layered":
        return LayeredKernel(network, derivations, dtype)
    if backend == "cnn":
        return ConvolutionalKernel(network, derivations, dtype)
    if backend == "free-form":
        return FreeFormKernel(network, derivations, dtype)
    raise InputError(f"unknown kernel backend '{backend}' (known: layered, cnn, free-form, stack)")


__all__ = ["Block", "ConvolutionalKernel", "FreeFormKernel", "Kernel", "KernelError", "LayeredKernel", "StackKernel", "compile_kernel"]
