"""A vanilla recurrent layer unrolled over T steps, as course assignments state backpropagation through time.

T = the spec's `batch` (the steps), H = its `input` (the hidden size; each step's input x_t is H wide too):

    h_t = tanh(W_hh h_{t-1} + W_xh x_t + b)   (t = 1 … T, h_0 given: an input of the network)

Every hidden state is also an output: out_t = h_t, and L is any loss of out_1 … out_T, so dout = ∂L/∂out is
the direct gradient of each step (the upstream `dh` of CS231n's rnn_backward), and dh = ∂L/∂h the whole one,
through the later steps too. Names: `x2_1` (step 2, unit 1), `h2_1`, `h0_1`, `Whh1_2`, `Wxh1_2`, `b1`,
`out2_1`; `hprev2_1` is h_{t-1} as step t reads it (hprev_1 = h_0). Row t of a T×H matrix is step t, so in
claims a step reads hprev Whhᵀ + x Wxhᵀ + b, and BPTT's sums over t are matrix products:

    dWhh = (dh ⊙ (1 − h²))ᵀ hprev,  dWxh = (dh ⊙ (1 − h²))ᵀ x,  db = Σ_t dh ⊙ (1 − h²),
    dhprev = (dh ⊙ (1 − h²)) Whh,   dx = (dh ⊙ (1 − h²)) Wxh,
    dh_{t-1} = dout_{t-1} + dhprev_t  (dh_T = dout_T; dh_0 is row 1 of dhprev).
"""

from __future__ import annotations

import sympy as sp

from derive.graph.network import symbol
from derive.layers.modules.base import Module, Parts, names


class RNN(Module):
    keys = {"type"}
    products = "matrix"  # hprev Whhᵀ: juxtaposition is the matrix product, * and ⊙ entrywise

    def build(self, rows: int, features: int) -> Parts:
        self.sizes = (rows, features)
        steps, width = rows, features
        parts = Parts()
        _declare(parts, steps, width)
        parts.inputs += [f"h0_{i}" for i in range(1, width + 1)]
        parts.inputs += [f"x{t}_{i}" for t in range(1, steps + 1) for i in range(1, width + 1)]
        parts.parameters = [f"{w}{i}_{j}" for w in ("Whh", "Wxh") for i in range(1, width + 1)
                            for j in range(1, width + 1)] + [f"b{i}" for i in range(1, width + 1)]
        whh, wxh = names(parts, "Whh", width, width), names(parts, "Wxh", width, width)
        x, hprev = names(parts, "x", steps, width), names(parts, "hprev", steps, width)
        for t in range(1, steps + 1):
            for i in range(1, width + 1):
                parts.equations[f"hprev{t}_{i}"] = symbol(f"h{t - 1}_{i}")
            for i in range(1, width + 1):
                recurrent = sp.Add(*[whh[i - 1][j] * hprev[t - 1][j] for j in range(width)])
                given = sp.Add(*[wxh[i - 1][j] * x[t - 1][j] for j in range(width)])
                parts.equations[f"h{t}_{i}"] = sp.tanh(recurrent + given + symbol(f"b{i}"))
        for t in range(1, steps + 1):
            for i in range(1, width + 1):
                parts.equations[f"out{t}_{i}"] = symbol(f"h{t}_{i}")
                parts.outputs.append(f"out{t}_{i}")
        return parts

    def facts(self) -> dict:
        steps, width = getattr(self, "sizes", (None, None))
        return {"integers": {"N": steps, "D": width, "T": steps, "H": width}} if steps else {}


def _declare(parts: Parts, steps: int, width: int) -> None:
    """The matrices claims name: x, h, hprev, out (T×H, row t is step t), Whh, Wxh (H×H), b (1×H)."""
    parts.matrix("x", steps, width, "x{r}_{c}", "x_{{{r} {c}}}")
    parts.matrix("h", steps, width, "h{r}_{c}", "h_{{{r} {c}}}")
    parts.matrix("hprev", steps, width, "hprev{r}_{c}", r"h^{{\mathrm{{prev}}}}_{{{r} {c}}}")
    parts.matrix("out", steps, width, "out{r}_{c}", r"\mathrm{{out}}_{{{r} {c}}}")
    parts.matrix("Whh", width, width, "Whh{r}_{c}", "W^{{hh}}_{{{r} {c}}}")
    parts.matrix("Wxh", width, width, "Wxh{r}_{c}", "W^{{xh}}_{{{r} {c}}}")
    parts.matrix("b", 1, width, "b{c}", "b_{{{c}}}")
    for i in range(1, width + 1):
        parts.latex[f"h0_{i}"] = f"h_{{0 {i}}}"
