"""Hand-written numpy and PyTorch eager references for the stack networks digits-batchnorm and lookup-attention.

Both take the parameters as one flat buffer in the kernel's block order (see BLOCKS) and
return (mean loss, flat gradient), like a kernel's value_and_grad:

    digits-batchnorm   x (B, 64), y one-hot (B, 10)
        z = x @ w1 + b1;  h = gamma2 * (z - mu) / sqrt(var + 1e-5) + beta2  (batch statistics,
        biased variance);  a = relu(h);  s = a @ w4 + b4;  loss = mean -Σ y log softmax(s)
    lookup-attention   x (B, 8·22) = B sequences of 8 positions × 22 features, position-major;
        y one-hot (B, 7)
        Q, K, V = X wq1 + bq1, X wk1 + bk1, X wv1 + bv1  (B, 8, 16);  P = softmax(Q Kᵀ / 4);
        O = P V;  r = O[:, -1];  s = r @ w3 + b3;  loss = mean -Σ y log softmax(s)

numpy: the backward passes written by hand the usual way (batch norm in the simplified form
dz = γ/√(var+ε)/N · (N dh − Σdh − x̂ Σ(dh x̂)); attention with dV = Pᵀ dO, dP = dO Vᵀ,
dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = dS K/√d, dK = dSᵀ Q/√d as batched np.matmul).
torch: the idiomatic eager forward (F.batch_norm in training mode, F.cross_entropy with
probability targets), autograd, and a manual SGD update (torch_step).

    python benchmarks/stack_reference.py   # self-test: numpy against torch float64, prints max errors
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-5
T, FEATURES, D = 8, 22, 16  # lookup-attention: positions, features per position, query/key/value width

BLOCKS = {
    "digits-batchnorm": [("w1", (64, 100)), ("b1", (100,)), ("gamma2", (100,)), ("beta2", (100,)),
                         ("w4", (100, 10)), ("b4", (10,))],
    "lookup-attention": [("wq1", (FEATURES, D)), ("bq1", (D,)), ("wk1", (FEATURES, D)), ("bk1", (D,)),
                         ("wv1", (FEATURES, D)), ("bv1", (D,)), ("w3", (D, 7)), ("b3", (7,))],
}
SHAPES = {"digits-batchnorm": (64, 10), "lookup-attention": (T * FEATURES, 7)}  # (inputs, classes)


def split(flat: np.ndarray, name: str) -> list[np.ndarray]:
    """Views of the flat buffer, one per block, in block order."""
    views, offset = [], 0
    for _, shape in BLOCKS[name]:
        size = math.prod(shape)
        views.append(flat[offset:offset + size].reshape(shape))
        offset += size
    return views


def size(name: str) -> int:
    return sum(math.prod(shape) for _, shape in BLOCKS[name])


def init(name: str, seed: int = 0, dtype="float64") -> np.ndarray:
    """Weights N(0, 1/fan_in), biases and betas N(0, 1)·0.1, gammas 1 + N(0, 0.1)."""
    rng = np.random.default_rng(seed)
    parts = []
    for block, shape in BLOCKS[name]:
        if len(shape) == 2:
            parts.append(rng.standard_normal(shape) / math.sqrt(shape[0]))
        elif block.startswith("gamma"):
            parts.append(1 + 0.1 * rng.standard_normal(shape))
        else:
            parts.append(0.1 * rng.standard_normal(shape))
    return np.concatenate([p.ravel() for p in parts]).astype(dtype)


def data(name: str, batch: int, dtype="float64", seed: int | None = None):
    rng = np.random.default_rng(batch if seed is None else seed)
    n_in, n_out = SHAPES[name]
    x = rng.random((batch, n_in)).astype(dtype)
    y = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, batch)]
    return x, y


def _softmax_loss(s, y, m):
    """Mean -Σ y log softmax(s) (log-sum-exp) and δ = (softmax(s) - y)/m for one-hot rows."""
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    total = e.sum(axis=1, keepdims=True)
    loss = -float(np.sum(y * (s - np.log(total)))) / m
    return loss, (e / total - y) / m


# -- numpy ---------------------------------------------------------------------------------


def numpy_batchnorm(flat, x, y):
    w1, b1, gamma, beta, w4, b4 = split(flat, "digits-batchnorm")
    m = len(x)
    z = x @ w1 + b1
    zc = z - z.mean(axis=0)
    var = np.mean(zc * zc, axis=0)
    inv = 1.0 / np.sqrt(var + EPS)
    xhat = zc * inv
    h = gamma * xhat + beta
    a = np.maximum(h, 0)
    loss, ds = _softmax_loss(a @ w4 + b4, y, m)

    grad = np.empty_like(flat)
    g_w1, g_b1, g_gamma, g_beta, g_w4, g_b4 = split(grad, "digits-batchnorm")
    np.matmul(a.T, ds, out=g_w4)
    g_b4[...] = ds.sum(axis=0)
    dh = (ds @ w4.T) * (h > 0)
    g_beta[...] = dh.sum(axis=0)
    g_gamma[...] = np.sum(dh * xhat, axis=0)
    dz = (gamma * inv / m) * (m * dh - g_beta - xhat * g_gamma)
    np.matmul(x.T, dz, out=g_w1)
    g_b1[...] = dz.sum(axis=0)
    return loss, grad


def numpy_attention(flat, x, y):
    wq, bq, wk, bk, wv, bv, w3, b3 = split(flat, "lookup-attention")
    m = len(x)
    rows = x.reshape(m * T, FEATURES)  # every position of every sequence
    scale = 1.0 / math.sqrt(D)
    Q = (rows @ wq + bq).reshape(m, T, D)
    K = (rows @ wk + bk).reshape(m, T, D)
    V = (rows @ wv + bv).reshape(m, T, D)
    S = np.matmul(Q, K.transpose(0, 2, 1)) * scale
    E = np.exp(S - S.max(axis=2, keepdims=True))
    P = E / E.sum(axis=2, keepdims=True)
    O = np.matmul(P, V)
    r = O[:, -1, :]
    loss, ds = _softmax_loss(r @ w3 + b3, y, m)

    grad = np.empty_like(flat)
    g_wq, g_bq, g_wk, g_bk, g_wv, g_bv, g_w3, g_b3 = split(grad, "lookup-attention")
    np.matmul(r.T, ds, out=g_w3)
    g_b3[...] = ds.sum(axis=0)
    dO = np.zeros_like(O)
    dO[:, -1, :] = ds @ w3.T
    dV = np.matmul(P.transpose(0, 2, 1), dO)
    dP = np.matmul(dO, V.transpose(0, 2, 1))
    dS = P * (dP - np.sum(dP * P, axis=2, keepdims=True))
    dQ = np.matmul(dS, K) * scale
    dK = np.matmul(dS.transpose(0, 2, 1), Q) * scale
    for d, g_w, g_b in ((dQ, g_wq, g_bq), (dK, g_wk, g_bk), (dV, g_wv, g_bv)):
        d = d.reshape(m * T, D)
        np.matmul(rows.T, d, out=g_w)
        g_b[...] = d.sum(axis=0)
    return loss, grad


NUMPY = {"digits-batchnorm": numpy_batchnorm, "lookup-attention": numpy_attention}


# -- PyTorch eager ----------------------------------------------------------------------------


def torch_batchnorm_loss(params, X, Y):
    w1, b1, gamma, beta, w4, b4 = params
    h = F.batch_norm(torch.addmm(b1, X, w1), None, None, gamma, beta, training=True, eps=EPS)
    return F.cross_entropy(torch.addmm(b4, torch.relu(h), w4), Y)  # probability targets: -Σ y log softmax / m


def torch_attention_loss(params, X, Y):
    wq, bq, wk, bk, wv, bv, w3, b3 = params
    seq = X.view(len(X), T, FEATURES)
    Q, K, V = seq @ wq + bq, seq @ wk + bk, seq @ wv + bv
    P = torch.softmax(Q @ K.transpose(1, 2) / math.sqrt(D), dim=-1)
    r = (P @ V)[:, -1, :]
    return F.cross_entropy(torch.addmm(b3, r, w3), Y)


TORCH = {"digits-batchnorm": torch_batchnorm_loss, "lookup-attention": torch_attention_loss}


def torch_params(flat: np.ndarray, name: str) -> list[torch.Tensor]:
    """The blocks as leaf tensors (copies), for autograd."""
    return [torch.tensor(v, requires_grad=True) for v in split(flat, name)]


def torch_step(params, X, Y, name: str, lr: float = 0.01):
    loss = TORCH[name](params, X, Y)
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(g, alpha=lr)
    return loss, grads


def torch_value_and_grad(flat: np.ndarray, x, y, name: str):
    """Loss and flat gradient from autograd, without the update (for checking)."""
    params = torch_params(flat, name)
    loss = TORCH[name](params, torch.from_numpy(x), torch.from_numpy(y))
    grads = torch.autograd.grad(loss, params)
    return loss.item(), np.concatenate([g.numpy().ravel() for g in grads])


# -- the matmul floor (digits-batchnorm only: two dense layers) --------------------------------


def floor_layers(name: str, batch: int) -> list[tuple[int, int, int, bool]] | None:
    """(rows, n_in, n_out, δ@W needed) per dense layer, for benchmarks/kernels.floor_step; None: no floor."""
    if name == "digits-batchnorm":
        return [(batch, 64, 100, False), (batch, 100, 10, True)]
    return None


# -- self-test ---------------------------------------------------------------------------------


def self_test(batches=(1, 2, 7, 64, 256)) -> dict[str, float]:
    """Max |numpy - torch| of loss and gradient, float64, several batches and seeds; asserts ≤ 1e-10."""
    worst = {}
    for name in BLOCKS:
        loss_err = grad_err = 0.0
        # batch norm of one row: var = 0 and every x̂ = 0 (it still agrees, but tests nothing)
        used = [b for b in batches if not (name == "digits-batchnorm" and b == 1)]
        for batch in used:
            for seed in range(3):
                flat = init(name, seed)
                x, y = data(name, batch, seed=seed)
                loss, grad = NUMPY[name](flat, x, y)
                loss2, grad2 = torch_value_and_grad(flat, x, y, name)
                loss_err = max(loss_err, abs(loss - loss2))
                grad_err = max(grad_err, float(np.abs(grad - grad2).max()))
        worst[name] = (loss_err, grad_err)
        print(f"{name:<18} batches {','.join(map(str, used))} x 3 seeds, float64: "
              f"max |loss error| {loss_err:.3g}, max |gradient error| {grad_err:.3g}")
        assert loss_err <= 1e-10 and grad_err <= 1e-10, name
    # and a central-difference spot check of numpy itself, independent of torch
    for name in BLOCKS:
        flat, (x, y) = init(name, 5), data(name, 16, seed=5)
        _, grad = NUMPY[name](flat, x, y)
        rng = np.random.default_rng(0)
        fd_err = 0.0
        for i in rng.choice(len(flat), 20, replace=False):
            e = np.zeros_like(flat)
            e[i] = 1e-6
            fd = (NUMPY[name](flat + e, x, y)[0] - NUMPY[name](flat - e, x, y)[0]) / 2e-6
            fd_err = max(fd_err, abs(fd - grad[i]))
        print(f"{name:<18} central differences (20 entries, h=1e-6): max error {fd_err:.3g}")
        assert fd_err < 1e-6, name
    return worst


if __name__ == "__main__":
    self_test()
