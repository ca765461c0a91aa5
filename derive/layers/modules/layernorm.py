"""Layer normalisation over the features of each example (each row), as course assignments state it.

    mu_n = (1/D) Σ_d x_{nd},  var_n = (1/D) Σ_d (x_{nd} − mu_n)²,
    xhat_{nd} = (x_{nd} − mu_n) / sqrt(var_n + eps),  out_{nd} = gamma_d xhat_{nd} + beta_d

Names: `x1_2`, `mu1`, `var1`, `xhat1_2`, `gamma2`, `beta2`, `out1_2`, the constant `eps`.
Batch normalisation transposed: the statistics are per row (mu and var are N×1), the scale and the
shift per feature (gamma and beta are 1×D). The simplified backward pass, with dxhat = dout·gamma:
dx = (1/D) (var + ε)^{-1/2} (D dxhat − Σ_d dxhat − xhat Σ_d (dxhat xhat)).
"""

from __future__ import annotations

import sympy as sp

from derive.graph.network import symbol
from derive.layers.modules.base import Module, Parts, input_matrix, scale_and_shift


class LayerNorm(Module):
    keys = {"type"}

    def build(self, rows: int, features: int) -> Parts:
        parts = Parts(constants=["eps"])
        x = input_matrix(parts, rows, features)
        parts.matrix("mu", rows, 1, "mu{r}", r"\mu_{{{r}}}", shape=("N", "1"))
        parts.matrix("var", rows, 1, "var{r}", r"\sigma^2_{{{r}}}", shape=("N", "1"))
        for n in range(1, rows + 1):
            row = x[n - 1]
            mu = symbol(f"mu{n}")
            parts.equations[f"mu{n}"] = sp.Add(*row) / features
            parts.equations[f"var{n}"] = sp.Add(*[(v - mu) ** 2 for v in row]) / features
        scale_and_shift(parts, x, rows, features, lambda n, d: n)
        return parts
