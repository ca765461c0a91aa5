"""Batch normalisation over the examples (the rows), as course assignments state it.

    mu_d = (1/N) Σ_n x_{nd},  var_d = (1/N) Σ_n (x_{nd} − mu_d)²,
    xhat_{nd} = (x_{nd} − mu_d) / sqrt(var_d + eps),  out_{nd} = gamma_d xhat_{nd} + beta_d

Names: `x1_2`, `mu2`, `var2`, `xhat1_2`, `gamma2`, `beta2`, `out1_2`, the constant `eps`.
The simplified backward pass assignments ask for is
dx = (1/N) γ (var + ε)^{-1/2} (N dout − Σ_n dout − xhat Σ_n (dout xhat)).
"""

from __future__ import annotations

import sympy as sp

from derive.graph.network import symbol
from derive.layers.modules.base import Module, Parts, input_matrix, scale_and_shift


class BatchNorm(Module):
    keys = {"type"}

    def build(self, rows: int, features: int) -> Parts:
        parts = Parts(constants=["eps"])
        x = input_matrix(parts, rows, features)
        for name, tex in (("mu", r"\mu_{{{c}}}"), ("var", r"\sigma^2_{{{c}}}")):
            parts.matrix(name, 1, features, name + "{c}", tex, shape=("1", "D"))
        for d in range(1, features + 1):
            column = [x[n][d - 1] for n in range(rows)]
            mu = symbol(f"mu{d}")
            parts.equations[f"mu{d}"] = sp.Add(*column) / rows
            parts.equations[f"var{d}"] = sp.Add(*[(v - mu) ** 2 for v in column]) / rows
        scale_and_shift(parts, x, rows, features, lambda n, d: d)
        return parts
