"""What every module layer shares: one layer over a batch, as course assignments state its backward pass.

A module is one layer of a network whose rows are examples (x is N×D), with
any downstream loss L of its output: the assignment gives dout = ∂L/∂out and
asks for dx and the parameters' gradients. A `Module` checks its `[[layer]]`
table and writes its forward equations in the course's names; it declares its
matrices (x, out, xhat, gamma, …: their shapes and their entries' names), which
claims name whole (`dx = …`, with `dX` the loss's gradient for each matrix X).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar, Mapping

import sympy as sp

from derive.errors import InputError
from derive.graph.network import symbol


@dataclass
class Parts:
    """A module's forward pass: its equations in order, and what each name is."""

    equations: dict[str, sp.Expr] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    constants: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # what the loss L reads
    matrices: dict[str, dict] = field(default_factory=dict)  # name ↦ {rows, cols, entry, tex}
    latex: dict[str, str] = field(default_factory=dict)

    def matrix(self, name: str, rows: int, cols: int, entry: str, tex: str, shape: tuple[str, str] = ("N", "D")
               ) -> None:
        """A matrix claims may name: entry is the format of its (r, c) entry's name, such as `x{r}_{c}`; shape
        its rows and columns for every size ("N", "D", "1"), as a proof for every size reads it."""
        self.matrices[name] = {"rows": rows, "cols": cols, "entry": entry, "tex": tex, "shape": shape}
        for r in range(1, rows + 1):
            for c in range(1, cols + 1):
                text = entry.format(r=r, c=c)
                self.latex[text] = tex.format(r=r, c=c)


class Module(abc.ABC):
    """One kind of module layer: its table's keys, and its forward equations."""

    keys: ClassVar[set[str]] = {"type"}
    # how a claim's juxtaposition reads: "entrywise" in a layer without weight matrices (γ x̂ is γ ⊙ x̂, as
    # NumPy broadcasts it), "matrix" where the layer multiplies matrices (attention's Q Kᵀ)
    products: ClassVar[str] = "entrywise"

    def __init__(self, table: Mapping, where: str) -> None:
        unknown = set(table) - self.keys
        if unknown:
            raise InputError(f"unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(self.keys))})",
                             where=where)

    @abc.abstractmethod
    def build(self, rows: int, features: int) -> Parts:
        """The forward equations for N = rows examples of D = features values each."""

    def facts(self) -> dict:
        """What the module adds to the network's facts (its options)."""
        return {}


def names(parts: Parts, name: str, rows: int, cols: int) -> list[list[sp.Symbol]]:
    """The symbols of a declared matrix, row by row."""
    entry = parts.matrices[name]["entry"]
    return [[symbol(entry.format(r=r, c=c)) for c in range(1, cols + 1)] for r in range(1, rows + 1)]


def input_matrix(parts: Parts, rows: int, cols: int) -> list[list[sp.Symbol]]:
    """x, N×D: the module's input, an input of the network (its gradient dx is what the assignment asks)."""
    parts.matrix("x", rows, cols, "x{r}_{c}", "x_{{{r} {c}}}")
    parts.inputs += [f"x{r}_{c}" for r in range(1, rows + 1) for c in range(1, cols + 1)]
    return names(parts, "x", rows, cols)


def scale_and_shift(parts: Parts, x, rows: int, features: int, group) -> None:
    """A normalisation's second half, after its statistics mu and var: xhat = (x − mu)/sqrt(var + eps) and
    out = gamma·xhat + beta, with `group(n, d)` the suffix of the statistics entry (n, d) uses (its column d
    in batch norm, its row n in layer norm)."""
    eps = symbol("eps")
    parts.matrix("gamma", 1, features, "gamma{c}", r"\gamma_{{{c}}}", shape=("1", "D"))
    parts.matrix("beta", 1, features, "beta{c}", r"\beta_{{{c}}}", shape=("1", "D"))
    parts.matrix("xhat", rows, features, "xhat{r}_{c}", r"\hat{{x}}_{{{r} {c}}}")
    parts.matrix("out", rows, features, "out{r}_{c}", r"\mathrm{{out}}_{{{r} {c}}}")
    parts.parameters = [f"gamma{d}" for d in range(1, features + 1)] + [f"beta{d}" for d in range(1, features + 1)]
    for n in range(1, rows + 1):
        for d in range(1, features + 1):
            s = group(n, d)
            centred = x[n - 1][d - 1] - symbol(f"mu{s}")
            parts.equations[f"xhat{n}_{d}"] = centred / sp.sqrt(symbol(f"var{s}") + eps)
    for n in range(1, rows + 1):
        for d in range(1, features + 1):
            parts.equations[f"out{n}_{d}"] = symbol(f"gamma{d}") * symbol(f"xhat{n}_{d}") + symbol(f"beta{d}")
            parts.outputs.append(f"out{n}_{d}")
    parts.latex["eps"] = r"\epsilon"

