"""A module network: one layer of derive.layers.modules over N examples, and any downstream loss L.

    [network]
    name = "bn-homework"
    batch = 3            # N, the rows
    input = 2            # D, the values of each example
    [[layer]]
    type = "batchnorm"

The loss L is a generic function of the layer's outputs (`dout` = ∂L/∂out is
what flows back from upstream); a free-form network underneath, like Zhou's.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from derive.errors import InputError
from derive.graph import functions as fn
from derive.graph.free_form import free_form
from derive.graph.network import check_size, symbol, with_values
from derive.layers.modules import MODULES

MAX_ROWS, MAX_FEATURES = 32, 32


def module_network(rows: int, features: int, layers: Sequence[Mapping], *, name: str | None = None,
                   values: Mapping[str, object] | None = None, description: str = "", source: str | None = None):
    for value, key, limit in ((rows, "batch", MAX_ROWS), (features, "input", MAX_FEATURES)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise InputError(f"must be a whole number from 1 to {limit}", where=f"[network] {key}")
    if not isinstance(layers, (list, tuple)) or len(layers) != 1 or not isinstance(layers[0], Mapping):
        raise InputError("a module network has one [[layer]] table (its type: "
                         f"{', '.join(MODULES)})", where="[[layer]]")
    table = layers[0]
    kind = table.get("type")
    if kind not in MODULES:
        raise InputError(f"unknown type '{kind}' (known: {', '.join(MODULES)})", where="[[layer]] type")
    check_size(1, rows * features * 4, rows * features * rows, where="[network]")
    module = MODULES[kind](table, "[[layer]]")
    parts = module.build(rows, features)
    equations = dict(parts.equations)
    loss = getattr(parts, "loss", None)  # a module that ends the network (softmax cross-entropy) supplies its own
    equations["L"] = fn.cost(*[symbol(n) for n in parts.outputs]) if loss is None else loss
    network = free_form(equations, cost="L", inputs=parts.inputs, targets=getattr(parts, "targets", ()),
                        parameters=parts.parameters,
                        constants=parts.constants, name=name or f"{kind}-{rows}x{features}",
                        latex_names=parts.latex, description=description, source=source)
    network = dataclasses.replace(network, kind="module", facts={
        "kind": "module", "name": network.name, "layer": kind, "sizes": (rows, features), "N": rows,
        "integers": {"N": rows, "D": features},
        "matrices": parts.matrices, "loss": "L", "products": module.products, "constants": tuple(parts.constants) + tuple(n for n in parts.equations if n.isalpha() and n != "L"),
        "table": dict(table),
        **module.facts()})
    return network if values is None else with_values(network, values)
