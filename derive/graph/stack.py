"""A stack network: layers over a mini-batch, each compiled from its formula set proven for every size.

    [network]
    name = "digits-batchnorm"
    input = 64                 # values per example; [T, F] for a sequence of T positions
    [[layer]]
    type = "affine"            # out = x w + b (a sequence: at every position)
    units = 100
    [[layer]]
    type = "batchnorm"         # over the batch's rows (eps = 1e-5)
    [[layer]]
    type = "activation"
    function = "relu"
    [[layer]]
    type = "affine"
    units = 10
    [[layer]]
    type = "softmax_cross_entropy"   # last: the batch's mean cross-entropy

Layers: affine, activation, batchnorm, layernorm, residual (out = x + g(x W + b), `function` = g),
dropout (`keep` = p: inverted dropout while training, the identity when predicting),
attention (one head of width `width`, with
its query, key and value projections), readout (a sequence's `last` position or the `mean`
over positions) and softmax_cross_entropy. Batch norm couples the examples of a batch, so a
stack is no per-example symbolic graph: its kernel (derive.kernels.stack) runs each layer's
forward definitions and backward formulas from the formula sets (affine, batchnorm, layernorm,
attention, softmax_cross_entropy), each proven for every size first; `derive prove NAME` shows
those proofs. The network's symbols are its inputs, targets and parameters (named after the
blocks: `w1_3_5` is w1[3, 5]), what saving and loading parameters need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from derive.errors import InputError
from derive.graph import registry
from derive.graph.network import Network, check_size, symbol

STACK_LAYERS = ("affine", "activation", "batchnorm", "layernorm", "residual", "dropout", "attention", "readout",
                "softmax_cross_entropy")
FORMULA_SETS = {"affine": "affine", "batchnorm": "batchnorm", "layernorm": "layernorm", "residual": "residual",
                "dropout": "dropout",
                "attention": "attention", "softmax_cross_entropy": "softmax_cross_entropy"}  # the sets a layer's kernel is compiled from
MAX_WIDTH = 4096
EPS = 1e-5


@dataclass(frozen=True)
class Block:
    """One parameter array of a layer: its name, shape and role (weight, bias, scale or shift)."""

    name: str
    shape: tuple[int, ...]
    role: str
    fan_in: int = 1


@dataclass(frozen=True)
class StackLayer:
    kind: str
    number: int  # its place in the [[layer]] list, from 1: the blocks' suffix
    options: Mapping[str, object]
    shape_in: tuple[int, ...]  # per example: (D,) or (T, F)
    shape_out: tuple[int, ...]
    blocks: tuple[Block, ...] = ()


def is_stack(layers) -> bool:
    """Whether `[[layer]]` tables describe a stack (a convolutional network's layer types are others)."""
    return isinstance(layers, list) and any(isinstance(t, Mapping) and t.get("type") in STACK_LAYERS for t in layers)


def stack_network(shape, tables: Sequence[Mapping], *, name: str, description: str = "", source: str | None = None,
                  values=None) -> Network:
    if values is not None:
        raise InputError("a stack network has no [values]: its parameters are trained", where="[values]")
    shape = _input_shape(shape)
    if not isinstance(tables, list) or not tables:
        raise InputError("a stack network needs [[layer]] tables", where="[[layer]]")
    layers = []
    current = shape
    for number, table in enumerate(tables, start=1):
        where = f"[[layer]] {number}"
        if not isinstance(table, Mapping):
            raise InputError("must be a table", where=where)
        kind = table.get("type")
        if kind not in STACK_LAYERS:
            raise InputError(f"unknown type '{kind}' (a stack's layers: {', '.join(STACK_LAYERS)})", where=where)
        if kind == "softmax_cross_entropy" and number != len(tables):
            raise InputError("softmax_cross_entropy ends a stack: it must be the last layer", where=where)
        layer = _LAYER_RULES[kind](table, number, current, where)
        layers.append(layer)
        current = layer.shape_out
    if layers[-1].kind != "softmax_cross_entropy":
        raise InputError("a stack ends with a softmax_cross_entropy layer (its loss)", where="[[layer]]")
    if len(current) != 1 or current[0] < 2:
        raise InputError("softmax_cross_entropy needs at least two classes per example, one value each "
                         f"(its input has shape {current})", where=f"[[layer]] {len(layers)}")
    parameters = sum(math.prod(b.shape) for layer in layers for b in layer.blocks)
    connections = sum(math.prod(b.shape) for layer in layers for b in layer.blocks if b.role == "weight")
    check_size(len(layers), parameters, connections, where="[network]")
    return _network(name, shape, layers, description, source)


def _network(name, shape, layers, description, source) -> Network:
    inputs = tuple(symbol(f"x{i}") for i in range(1, math.prod(shape) + 1))
    classes = layers[-1].shape_out[0]
    targets = tuple(symbol(f"y{c}") for c in range(1, classes + 1))
    parameters = []
    for layer in layers:
        for block in layer.blocks:
            parameters += [symbol(block.name + "_" + "_".join(str(i + 1) for i in index))
                           for index in _indices(block.shape)]
    facts = {"kind": "stack", "name": name, "input_shape": shape, "layers": tuple(layers), "classes": classes,
             "cost": "cross_entropy", "formula_sets": tuple(dict.fromkeys(
                 FORMULA_SETS[layer.kind] for layer in layers if layer.kind in FORMULA_SETS))}
    return Network(name=name, kind="stack", inputs=inputs, targets=targets, parameters=tuple(parameters),
                   constants=(), order=(), definitions={}, cost=symbol("L"), facts=facts,
                   description=description, source=source)


def _indices(shape: tuple[int, ...]):
    if len(shape) == 1:
        return [(i,) for i in range(shape[0])]
    return [(i, j) for i in range(shape[0]) for j in range(shape[1])]


def _input_shape(shape) -> tuple[int, ...]:
    where = "[network] input"
    values = shape if isinstance(shape, list) else [shape]
    if not 1 <= len(values) <= 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_WIDTH
                                            for v in values):
        raise InputError(f"must be the values per example (1 to {MAX_WIDTH}) or [positions, features]", where=where)
    return tuple(values)


def _keys(table: Mapping, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed - {"type"})
    if unknown:
        raise InputError(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(allowed | {'type'}))})", where=where)


def _width(table: Mapping, key: str, where: str) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WIDTH:
        raise InputError(f"needs {key} = a whole number from 1 to {MAX_WIDTH}", where=where)
    return value


def _affine(table, number, shape, where) -> StackLayer:
    _keys(table, {"units"}, where)
    units = _width(table, "units", where)
    features = shape[-1]
    blocks = (Block(f"w{number}", (features, units), "weight", features), Block(f"b{number}", (units,), "bias"))
    return StackLayer("affine", number, {"units": units}, shape, (*shape[:-1], units), blocks)


def _function(table, where) -> str:
    function = table.get("function")
    known = [n for n in registry.ACTIVATIONS if n not in ("sigma", "identity")]
    if function not in known:
        raise InputError(f"needs function = one of {', '.join(known)}", where=where)
    return function


def _activation(table, number, shape, where) -> StackLayer:
    _keys(table, {"function"}, where)
    return StackLayer("activation", number, {"function": _function(table, where)}, shape, shape)


def _residual(table, number, shape, where) -> StackLayer:
    _keys(table, {"function"}, where)
    features = shape[-1]
    blocks = (Block(f"W{number}", (features, features), "weight", features), Block(f"b{number}", (features,), "bias"))
    return StackLayer("residual", number, {"function": _function(table, where)}, shape, shape, blocks)


def _norm(table, number, shape, where) -> StackLayer:
    _keys(table, set(), where)
    features = shape[-1]
    blocks = (Block(f"gamma{number}", (features,), "scale"), Block(f"beta{number}", (features,), "shift"))
    return StackLayer(table["type"], number, {"eps": EPS}, shape, shape, blocks)


def _attention(table, number, shape, where) -> StackLayer:
    _keys(table, {"width", "heads"}, where)
    if table.get("heads", 1) != 1:
        raise InputError("heads = 1: one head of attention (several heads are not compiled yet)", where=where)
    if len(shape) != 2:
        raise InputError(f"attention needs a sequence, input = [positions, features] (it gets shape {shape})",
                         where=where)
    width = _width(table, "width", where)
    features = shape[-1]
    blocks = tuple(block for part in ("q", "k", "v") for block in (
        Block(f"w{part}{number}", (features, width), "weight", features), Block(f"b{part}{number}", (width,), "bias")))
    return StackLayer("attention", number, {"width": width}, shape, (shape[0], width), blocks)


def _dropout(table, number, shape, where) -> StackLayer:
    _keys(table, {"keep"}, where)
    keep = table.get("keep", 0.5)
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise InputError("keep = the probability of keeping a unit, above 0 and at most 1", where=where)
    return StackLayer("dropout", number, {"keep": float(keep)}, shape, shape)


def _readout(table, number, shape, where) -> StackLayer:
    _keys(table, {"position"}, where)
    position = table.get("position", "last")
    if position not in ("last", "mean"):
        raise InputError("position = \"last\" (the last position's row) or \"mean\" (the mean over positions)",
                         where=where)
    if len(shape) != 2:
        raise InputError(f"readout needs a sequence (it gets shape {shape})", where=where)
    return StackLayer("readout", number, {"position": position}, shape, shape[1:])


def _softmax_cross_entropy(table, number, shape, where) -> StackLayer:
    _keys(table, set(), where)
    return StackLayer("softmax_cross_entropy", number, {}, shape, shape)


_LAYER_RULES = {"affine": _affine, "activation": _activation, "batchnorm": _norm, "layernorm": _norm,
                "residual": _residual, "dropout": _dropout,
                "attention": _attention, "readout": _readout, "softmax_cross_entropy": _softmax_cross_entropy}
