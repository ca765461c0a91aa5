"""Zhou Zhihua's one-hidden-layer network with thresholds (机器学习, ch. 5), in his names.

It is a free-form network underneath: its equations are written out here in
Zhou's names and read by `free_form`, so it shares every check of that path.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from derive.errors import InputError
from derive.graph.free_form import free_form
from derive.graph.network import Network, layer_index_latex, with_values


def zhou(
    d: int = 2,
    q: int = 2,
    l: int = 2,
    *,
    name: str | None = None,
    values: Mapping[str, object] | None = None,
    description: str = "",
    source: str | None = None,
) -> Network:
    """Zhou Zhihua's d-q-l network (机器学习, ch. 5), in his names.

    α_h = Σ_i v_{ih} x_i, b_h = f(α_h − γ_h), β_j = Σ_h w_{hj} b_h, ŷ_j = f(β_j − θ_j),
    E = ½ Σ_j (ŷ_j − y_j)², f the sigmoid. Note the index order: v_{ih} and w_{hj}
    run *from* first (Nielsen's w^l_{jk} runs *to* first), and γ, θ are
    thresholds, subtracted. Names in formulas: `x1`, `y1`, `v12` (v_{12}, from
    input 1 to hidden 2), `w21`, `gamma1`, `theta1`, nodes `alpha1`, `b1`,
    `beta1`, `yhat1`, the cost `E`; with an index ≥ 10, `v1_12`.
    """
    sizes = (d, q, l)
    if not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 99 for n in sizes):
        raise InputError("must be three layer sizes [d, q, l] between 1 and 99", where="[network] zhou")
    wide = max(sizes) >= 10

    def pair(a: int, b: int) -> str:
        return f"{a}_{b}" if wide else f"{a}{b}"

    equations: dict[str, str] = {}
    for h in range(1, q + 1):
        equations[f"alpha{h}"] = " + ".join(f"v{pair(i, h)}*x{i}" for i in range(1, d + 1))
    for h in range(1, q + 1):
        equations[f"b{h}"] = f"sigmoid(alpha{h} - gamma{h})"
    for j in range(1, l + 1):
        equations[f"beta{j}"] = " + ".join(f"w{pair(h, j)}*b{h}" for h in range(1, q + 1))
    for j in range(1, l + 1):
        equations[f"yhat{j}"] = f"sigmoid(beta{j} - theta{j})"
    equations["E"] = "(" + " + ".join(f"(yhat{j} - y{j})**2" for j in range(1, l + 1)) + ") / 2"
    parameters = (
        [f"v{pair(i, h)}" for i in range(1, d + 1) for h in range(1, q + 1)]
        + [f"gamma{h}" for h in range(1, q + 1)]
        + [f"w{pair(h, j)}" for h in range(1, q + 1) for j in range(1, l + 1)]
        + [f"theta{j}" for j in range(1, l + 1)]
    )
    latex = {}
    for i in range(1, d + 1):
        for h in range(1, q + 1):
            latex[f"v{pair(i, h)}"] = f"v_{{{layer_index_latex(i, h)}}}"
    for h in range(1, q + 1):
        latex[f"gamma{h}"] = rf"\gamma_{{{h}}}"
        latex[f"alpha{h}"] = rf"\alpha_{{{h}}}"
        latex[f"b{h}"] = f"b_{{{h}}}"
        for j in range(1, l + 1):
            latex[f"w{pair(h, j)}"] = f"w_{{{layer_index_latex(h, j)}}}"
    for j in range(1, l + 1):
        latex[f"theta{j}"] = rf"\theta_{{{j}}}"
        latex[f"beta{j}"] = rf"\beta_{{{j}}}"
        latex[f"yhat{j}"] = rf"\hat{{y}}_{{{j}}}"
    network = free_form(
        equations,
        cost="E",
        inputs=[f"x{i}" for i in range(1, d + 1)],
        targets=[f"y{j}" for j in range(1, l + 1)],
        parameters=parameters,
        name=name or f"zhou-{d}-{q}-{l}",
        latex_names=latex,
        description=description,
        source=source,
    )
    network = dataclasses.replace(
        network,
        kind="threshold",
        facts={"kind": "threshold", "name": network.name, "sizes": sizes, "cost": "quadratic"},
    )
    if values is not None:
        network = with_values(network, values)
    return network
