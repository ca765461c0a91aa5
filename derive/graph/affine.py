"""One affine layer as course assignments write its backward pass (rows are examples).

    out = x w + b        x: N×D, w: D×M, b: M (broadcast over the N rows), out: N×M
    L = L(out)           any downstream loss of the outputs (a generic function)

The assignment's gradients are dout = ∂L/∂out (given from upstream) and
dx = dout wᵀ, dw = xᵀ dout, db = Σ_rows dout. Names in formulas: `x1_2`
(row 1, column 2), `w2_3`, `b3`, `out1_3`, the loss `L`. A free-form network
underneath, like Zhou's; its facts say it is an affine layer.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import sympy as sp

from derive.errors import InputError
from derive.graph import functions as fn
from derive.graph.free_form import free_form
from derive.graph.network import symbol, with_values

MAX_SIDE = 12


def affine(N: int, D: int, M: int, *, name: str | None = None, values: Mapping[str, object] | None = None,
           description: str = "", source: str | None = None):
    sizes = (N, D, M)
    if not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_SIDE for n in sizes):
        raise InputError(f"must be three sizes [N, D, M] between 1 and {MAX_SIDE}", where="[network] affine")
    equations: dict[str, sp.Expr] = {}
    for n in range(1, N + 1):
        for m in range(1, M + 1):
            total = sp.Add(*[symbol(f"x{n}_{d}") * symbol(f"w{d}_{m}") for d in range(1, D + 1)])
            equations[f"out{n}_{m}"] = total + symbol(f"b{m}")
    equations["L"] = fn.cost(*[symbol(f"out{n}_{m}") for n in range(1, N + 1) for m in range(1, M + 1)])
    latex = {f"x{n}_{d}": f"x_{{{n} {d}}}" for n in range(1, N + 1) for d in range(1, D + 1)}
    latex.update({f"w{d}_{m}": f"w_{{{d} {m}}}" for d in range(1, D + 1) for m in range(1, M + 1)})
    latex.update({f"b{m}": f"b_{{{m}}}" for m in range(1, M + 1)})
    latex.update({f"out{n}_{m}": rf"\mathrm{{out}}_{{{n} {m}}}" for n in range(1, N + 1) for m in range(1, M + 1)})
    network = free_form(
        equations, cost="L",
        inputs=[f"x{n}_{d}" for n in range(1, N + 1) for d in range(1, D + 1)],
        parameters=[f"w{d}_{m}" for d in range(1, D + 1) for m in range(1, M + 1)] + [f"b{m}" for m in range(1, M + 1)],
        name=name or f"affine-{N}-{D}-{M}", latex_names=latex, description=description, source=source,
    )
    matrices = {"x": {"rows": N, "cols": D, "entry": "x{r}_{c}"}, "w": {"rows": D, "cols": M, "entry": "w{r}_{c}"},
                "b": {"rows": 1, "cols": M, "entry": "b{c}"}, "out": {"rows": N, "cols": M, "entry": "out{r}_{c}"}}
    network = dataclasses.replace(network, kind="affine", facts={
        "kind": "affine", "name": network.name, "sizes": sizes, "integers": {"N": N, "D": D, "M": M}, "cost": "generic", "matrices": matrices, "loss": "L"})
    return network if values is None else with_values(network, values)
