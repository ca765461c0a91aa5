"""Convolutional networks: convolution, pooling and dense layers, in 深度学习的数学's names.

Each kind of layer is a class of derive.layers; this module reads the
`[[layer]]` tables in order, builds each layer into a shared context, adds the
cost and gathers the facts later stages ask of a CNN.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import sympy as sp

from derive.errors import InputError
from derive.graph.network import Network, check_cost, check_size, cost_expression, symbol, with_values
from derive.layers import LAYERS, Context, check_keys, image_shape, input_image
from derive.limits import MAX_INPUT_VALUES

# every layer class derive.layers.LAYERS knows, and flatten (a no-op: a dense layer flattens what it reads)
LAYER_TYPES = (*LAYERS, "flatten")


def convolutional(
    input_shape: Sequence[int],
    layers: Sequence[Mapping[str, object]],
    cost: str = "quadratic",
    *,
    name: str = "cnn",
    values: Mapping[str, object] | None = None,
    description: str = "",
    source: str | None = None,
) -> Network:
    """Convolution, pooling and dense layers in sequence, with 深度学习的数学's names.

    Layers are tables: `{type = "conv", filters, kernel, stride = 1, padding = "valid" | "same" | n,
    activation}`, `{type = "maxpool" | "avgpool" | "l2pool", size, stride = size}`,
    `{type = "flatten"}`, `{type = "dense", units, activation}`. Convolution is the
    book's (and PyTorch's) cross-correlation:

        z^F_{k,ij} = Σ_{c,p,q} w^F_{k,c,pq} x_{c, s(i−1)+p−pad, s(j−1)+q−pad} + b^F_k

    with x zero outside the image. Names: the input `x_i_j` (with channels
    `x_c_i_j`), a convolution's `wF_k_p_q` (`wF_k_c_p_q` with several input
    channels), `bF_k`, `zF_k_i_j`, `aF_k_i_j`; a pooling layer's `aP_k_i_j` (its
    z is its a); the output layer's `wO_n_k_i_j` (from a pooling unit) or
    `wO_n_m`, `bO_n`, `zO_n`, `aO_n`; targets `t1…`; the cost `C`. Where every
    index is a digit the book's run-together forms are aliases: `wF_1_11` for
    w^F_{1,11}, `aP_1_12`, `x_23` and `x23`. A second convolution is labelled F2,
    a hidden dense layer H. Each kind of layer is a class of derive.layers.
    """
    shape = image_shape(input_shape)
    if not isinstance(layers, (list, tuple)) or not layers:
        raise InputError("at least one [[layer]] is required", where="[[layer]]")
    channels, height, width = shape
    if channels * height * width > MAX_INPUT_VALUES:
        raise InputError(f"the input has more than {MAX_INPUT_VALUES:,} values", where="[network] input")
    check_size(len(layers), 0, 0, where="[[layer]]")
    context = Context(dense_total=sum(1 for t in layers if isinstance(t, Mapping) and t.get("type") == "dense"))
    inputs = input_image(context, shape)
    built = _build_layers(context, layers)
    if not context.flat:
        raise InputError("the last layer must be dense (the outputs the cost compares with targets)", where="[[layer]]")
    last_activation = [layer.activation for layer in built if layer.activation is not None][-1]
    check_cost(cost, last_activation)
    targets, cost_symbol = _cnn_cost(context, cost)
    network = Network(
        name=name,
        kind="cnn",
        inputs=tuple(inputs),
        targets=tuple(targets),
        parameters=tuple(context.parameters),
        constants=(),
        order=tuple(context.order),
        definitions=context.definitions,
        cost=cost_symbol,
        latex_names=context.latex,
        families=context.families,
        aliases=context.aliases,
        facts=_cnn_facts(name, shape, cost, built, last_activation),
        description=description,
        source=source,
    )
    if values is not None:
        network = with_values(network, values)
    return network


def _build_layers(context: Context, layers: Sequence[Mapping[str, object]]) -> list:
    """Each `[[layer]]` table checked and built in turn (a layer's errors come before the next one's)."""
    built = []
    for number, table in enumerate(layers, start=1):
        where = f"[[layer]] #{number}"
        if not isinstance(table, Mapping):
            raise InputError("must be a table", where=where)
        kind = table.get("type")
        if kind not in LAYER_TYPES:
            raise InputError(f"type must be one of {', '.join(LAYER_TYPES)}", where=where)
        if kind == "flatten":
            check_keys(table, {"type"}, where)
            continue
        layer = LAYERS[kind](table, where, context)
        layer.build(context, number, where)
        built.append(layer)
    return built


def _cnn_cost(context: Context, cost: str) -> tuple[list[sp.Symbol], sp.Symbol]:
    """The targets `t1…` (also `y1…`) and the cost `C` of the flat outputs in `context`."""
    outputs = list(context.current.values())
    targets = []
    for n in range(1, len(outputs) + 1):
        t = context.make("t", (n,), f"t{n}", f"t_{{{n}}}")
        context.families.setdefault("y", {})[(n,)] = t
        context.alias(t, f"y{n}")
        targets.append(t)
    cost_symbol = symbol("C")
    context.define(cost_symbol, cost_expression(cost, targets, outputs))
    if cost == "generic":
        targets = []
        context.families.pop("t", None)
        context.families.pop("y", None)
    context.latex[cost_symbol] = "C"
    context.families["C"] = {(): cost_symbol}
    context.families["C0"] = {(): cost_symbol}
    return targets, cost_symbol


def _cnn_facts(name: str, shape: tuple[int, int, int], cost: str, built: list, last_activation: str) -> dict:
    integers: dict[str, int] = {}
    for layer in built:
        integers.update(layer.integers())
    pools = [layer.pool for layer in built if layer.pool is not None]
    return {
        "kind": "cnn",
        "name": name,
        "architecture": "-".join(layer.architecture for layer in built),
        "pool": pools[-1] if pools else None,
        "cost": cost,
        "output_activation": last_activation,
        "output": "coupled" if last_activation == "softmax" else "elementwise",
        "regularization": "none",
        "channels": shape[0],
        "integers": integers,
        "layers": tuple(built),  # the Layer objects, in order: later stages ask each for its part
        "input_shape": shape,
        "zero_outside": ("xpad",),
        # flat facts a formula set's `when` can test
        "conv_stride": integers.get("stride"),
        "padding": integers.get("padr") if integers.get("padr") == integers.get("padc") else None,
        "pool_size": integers.get("pr") if integers.get("pr") == integers.get("pc") else None,
        "pool_stride": integers.get("pstride"),
    }
