"""One head of scaled dot-product attention, as course assignments state its backward pass.

For T positions (the spec's `batch`) of width d (its `input`), with Q, K, V (T×d each) inputs of the network:

    S = Q Kᵀ / sqrt(d),   P = softmax(S) row by row,   out = P V

and any downstream loss L of out (dout = ∂L/∂out comes from upstream). Names: `Q1_2` (position 1, column 2),
`K1_2`, `V1_2`, `S1_2` and `P1_2` (T×T), `out1_2`. The backward pass assignments ask for
(Vaswani et al. 2017, the products written as matrix products):

    dV = Pᵀ dout,  dP = dout Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ = dS K / sqrt(d),  dK = dSᵀ Q / sqrt(d)

Claims name the matrices whole (`dQ = \\frac{1}{\\sqrt{d}} dS K`); `d` (and `T`) are the sizes.
"""

from __future__ import annotations

import sympy as sp

from derive.graph import functions as fn
from derive.layers.modules.base import Module, Parts, names


class Attention(Module):
    keys = {"type"}
    products = "matrix"  # Q Kᵀ, P V: juxtaposition is the matrix product, * and ⊙ entrywise

    def build(self, rows: int, features: int) -> Parts:
        self.sizes = (rows, features)
        parts = Parts()
        for name in ("Q", "K", "V"):
            parts.matrix(name, rows, features, name + "{r}_{c}", name + "_{{{r} {c}}}", shape=("T", "d"))
            parts.inputs += [f"{name}{r}_{c}" for r in range(1, rows + 1) for c in range(1, features + 1)]
        parts.matrix("S", rows, rows, "S{r}_{c}", "S_{{{r} {c}}}", shape=("T", "T"))
        parts.matrix("P", rows, rows, "P{r}_{c}", "P_{{{r} {c}}}", shape=("T", "T"))
        parts.matrix("out", rows, features, "out{r}_{c}", r"\mathrm{{out}}_{{{r} {c}}}", shape=("T", "d"))
        q, k, v = (names(parts, name, rows, features) for name in ("Q", "K", "V"))
        scale = sp.sqrt(features)
        for r in range(rows):
            for c in range(rows):
                dot = sp.Add(*[q[r][i] * k[c][i] for i in range(features)])
                parts.equations[f"S{r + 1}_{c + 1}"] = dot / scale
        s = names(parts, "S", rows, rows)
        for r in range(rows):
            for c in range(rows):
                parts.equations[f"P{r + 1}_{c + 1}"] = fn.softmax(sp.Integer(c + 1), *s[r])
        p = names(parts, "P", rows, rows)
        for r in range(rows):
            for i in range(features):
                parts.equations[f"out{r + 1}_{i + 1}"] = sp.Add(*[p[r][c] * v[c][i] for c in range(rows)])
                parts.outputs.append(f"out{r + 1}_{i + 1}")
        return parts

    def facts(self) -> dict:
        rows, width = getattr(self, "sizes", (None, None))
        return {"integers": {"N": rows, "D": width, "T": rows, "d": width}} if rows else {}
