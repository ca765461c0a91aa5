"""Terms that are 0 by a definition of the network, removed before a formula is shown to a reader."""

from __future__ import annotations

import sympy as sp

MAX_ZERO_CHECKS = 2_000  # sums tested for being zero by a definition, in one correct formula


def without_defined_zeros(expr: sp.Expr, network) -> sp.Expr:
    """The formula without the sums that are 0 by a linear definition of the network: 2μ − (2/3)(x1 + x2 + x3)
    is 0 when μ = (x1 + x2 + x3)/3, and a reader should not meet it (batch norm's mean)."""
    definitions = network.definitions
    named = [s for s in expr.free_symbols if s in definitions and definitions[s].is_Add]  # only what it names
    linear = {s: definitions[s] for s in named
              if all(term.is_polynomial() for term in definitions[s].args)
              and sp.Poly(definitions[s], *definitions[s].free_symbols).is_linear}
    if not linear:
        return expr
    checks = [0]

    def cleaned(node):
        if not node.args or checks[0] > MAX_ZERO_CHECKS:
            return node
        node = node.func(*[cleaned(arg) for arg in node.args])
        if node.is_Add and any(s in linear for s in node.free_symbols):
            checks[0] += 1
            if sp.expand(node.xreplace(linear)) == 0:
                return sp.S.Zero
        return node
    return cleaned(expr)
