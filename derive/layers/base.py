"""What every layer shares: the context it builds into, its interface, its table checks.

A `Context` collects one network's symbols as its layers make them (families,
aliases, LaTeX names, definitions, evaluation order, parameters) and carries
what the next layer reads: the current feature map (or, after a dense layer,
the flat units), how many layers of each kind came before, the connections
counted so far. A `Layer` checks its `[[layer]]` table when it is made and
makes its symbols when it is built; then it answers the
integers it contributes to the network's facts, and for each later stage its
part: its numeric kernel stage, its column of the drawing, its report row.
"""

from __future__ import annotations

import abc
import re
from typing import ClassVar, Mapping

import sympy as sp

from derive.graph import registry
from derive.errors import InputError
from derive.graph.network import check_size, layer_index_latex, symbol

Units = dict[tuple[int, ...], sp.Symbol]


class Context:
    """One network's symbols as its layers make them, and the state between layers."""

    def __init__(self, dense_total: int) -> None:
        self.latex: dict[sp.Symbol, str] = {}
        self.families: dict[str, dict[tuple[int, ...], sp.Symbol]] = {}
        self.aliases: dict[str, sp.Symbol] = {}
        self.definitions: dict[sp.Symbol, sp.Expr] = {}
        self.order: list[sp.Symbol] = []
        self.parameters: list[sp.Symbol] = []
        self.current: Units = {}  # (c, i, j) ↦ unit of the feature map; (n,) ↦ unit once flat
        self.flat = False  # after a dense layer
        self.dense_total = dense_total  # dense layers in the network: the last is the output O
        self.counts = {"conv": 0, "pool": 0, "dense": 0}
        self.connections = 0  # counted layer by layer, before each layer is built

    def make(self, family: str, index: tuple[int, ...], text: str, tex: str, *also: tuple[int, ...]) -> sp.Symbol:
        """A new symbol named `text`, in `family` at `index` (and at each index of `also`)."""
        s = symbol(text)
        self.families.setdefault(family, {})[index] = s
        for other in also:
            self.families[family][other] = s
        self.latex[s] = tex
        return s

    def alias(self, s: sp.Symbol, *names: str) -> None:
        """Other names formulas may use for `s` (its own name is not an alias)."""
        for n in names:
            if n != s.name:
                self.aliases[n] = s

    def define(self, s: sp.Symbol, expr: sp.Expr) -> None:
        """`s = expr`, next in evaluation order."""
        self.definitions[s] = expr
        self.order.append(s)

    def count(self, counter: str) -> int:
        """Count one more layer of this kind; its number among them."""
        self.counts[counter] += 1
        return self.counts[counter]

    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the current feature map."""
        return (
            max(c for c, _, _ in self.current),
            max(i for _, i, _ in self.current),
            max(j for _, _, j in self.current),
        )

    def check_size(self, number: int, parameters: int, connections: int, where: str) -> None:
        """Count a layer's connections and new parameters against the limits, before it is built."""
        self.connections += connections
        check_size(number, len(self.parameters) + parameters, self.connections, where=where)


def image_shape(shape) -> tuple[int, int, int]:
    """(channels, height, width) of `[network] input`: [height, width] or [channels, height, width]."""
    if not isinstance(shape, (list, tuple)) or len(shape) not in (2, 3):
        raise InputError("must be [height, width] or [channels, height, width]", where="[network] input")
    values = [positive(v, "[network] input") for v in shape]
    return (1, *values) if len(values) == 2 else tuple(values)


def input_image(context: Context, shape: tuple[int, int, int]) -> list[sp.Symbol]:
    """The input `x_i_j` (with channels `x_c_i_j`), the first feature map."""
    channels, height, width = shape
    inputs = []
    for c in range(1, channels + 1):
        for i in range(1, height + 1):
            for j in range(1, width + 1):
                if channels == 1:
                    x = context.make("x", (i, j), f"x_{i}_{j}", f"x_{{{layer_index_latex(i, j)}}}", (1, i, j))
                    if i < 10 and j < 10:
                        context.alias(x, f"x_{i}{j}", f"x{i}{j}")
                else:
                    x = context.make("x", (c, i, j), f"x_{c}_{i}_{j}", f"x_{{{c},{layer_index_latex(i, j)}}}")
                context.families.setdefault("xpad", {})[(c, i, j)] = x
                if channels == 1:
                    context.families["xpad"][(i, j)] = x
                context.current[(c, i, j)] = x
                inputs.append(x)
    return inputs


class Layer(abc.ABC):
    """One `[[layer]]` table: checked when made, its symbols made by `build`."""

    keys: ClassVar[set[str]]  # the keys its table may have
    label: str
    architecture: str  # its name in the network's architecture fact
    activation: str | None = None  # the activation of its units (None: pooling)
    pool: str | None = None  # its pooling kind (None: not pooling)

    @abc.abstractmethod
    def build(self, context: Context, number: int, where: str) -> None:
        """Make its symbols and definitions in `context`; its output becomes `context.current`."""

    @abc.abstractmethod
    def kernel_stage(self, compiler):
        """Its stage of a convolutional kernel, after checking its units against what it declares.

        `compiler` (derive.kernels.cnn.StageCompiler) lends what is the kernel's to know: the
        network, the units feeding this layer, the parameters' place in the flat buffer, the
        lambdified formulas. The stage answers forward(kernel, index, params, a, buffered) ->
        (cached, output) and backward(kernel, index, params, grad, upstream, cached) -> ∂C/∂input."""

    @abc.abstractmethod
    def drawing_column(self) -> tuple[str, tuple[int, ...], str]:
        """Its column in the network drawing: the LaTeX name of its output, the output's shape
        ((channels, rows, cols) for a map, (units,) when flat), the LaTeX operation leading to it."""

    @abc.abstractmethod
    def report_row(self, index: int, t) -> dict:
        """Its row of the report's layer table, the `index`-th (the input is the first); `t` the
        report's Labels, which name its kind and word its details."""

    def integers(self) -> dict[str, int]:
        """The integers it contributes to the network's facts."""
        return {}


def positive(value, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError("must be a positive integer", where=where)
    return value


def pair(value, where: str) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 2:
        return positive(value[0], where), positive(value[1], where)
    n = positive(value, where)
    return n, n


def activation(name, where: str, allow_softmax: bool) -> str:
    if name == "softmax" and allow_softmax:
        return name
    if name not in registry.ACTIVATIONS:
        known = ", ".join([*registry.ACTIVATIONS, *(["softmax"] if allow_softmax else [])])
        raise InputError(f"unknown activation '{name}' (known: {known})", where=f"{where} activation")
    return name


def label(layer: Mapping, default: str, where: str) -> str:
    name = layer.get("label", default)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        raise InputError("must be a capital letter, optionally followed by letters or digits", where=f"{where} label")
    return name


def check_keys(layer: Mapping, allowed: set[str], where: str) -> None:
    for key in layer:
        if key not in allowed:
            raise InputError(f"unknown key '{key}' (known: {', '.join(sorted(allowed))})", where=where)
