"""Training-step throughput of the generated kernels, against hand-written numpy, PyTorch and the matmul floor.

One training step is one `value_and_grad` call on a fixed batch plus the update
θ -= η g. For each case (network, dtype, batch) this measures, in one process:

    ours    compile_kernel(net, dtype): the kernel generated from the derivation
    numpy   the same network written by hand in numpy (BP1-BP4 in matrix form;
            im2col with sliding_window_view and max-pool by reshape/argmax for
            the conv nets), checked once to give the same loss and gradient
    torch   PyTorch eager on the CPU, same dtype, autograd + a manual SGD update,
            tensors made once; torch.set_num_threads(N) and numpy's BLAS limited
            to the same N (threadpoolctl), N = the number of cores unless --threads
    floor   only the matrix products the step needs (per dense layer a @ W.T,
            δ.T @ a and, above the first layer, δ @ W; a conv layer as im2col
            products), into preallocated outputs

The cases: the layered MLPs 784-100-10 (sigmoid/quadratic, softmax/log-likelihood) and
64-30-10, the free-form nets 2-2-2 and 12-3-2, the conv nets book-cnn 6x6 and conv28, and
two stack nets (built-in specs, kernels from compile_kernel(load(name), dtype)):
    bn-mlp      digits-batchnorm: 64 -> dense 100 -> batch norm -> relu -> dense 10,
                softmax/log-likelihood, batches 64 and 256
    attention   lookup-attention: 8 positions × 22 features -> one self-attention head
                (Q, K, V of width 16) -> the last position -> dense 7, softmax/log-
                likelihood, batches 64 and 256
Their numpy and torch references are in benchmarks/stack_reference.py (flat parameters
in the kernel's block order; `python benchmarks/stack_reference.py` checks numpy
against torch float64). bn-mlp's floor is its two dense layers' products; attention has
no floor (its batched (8×16)·(16×8) products do not fit the dense-layer floor): the
floor column and ratio show – there.

Each implementation is warmed up and calibrated to run ~--seconds per chunk;
then --rounds rounds time every implementation of the case once, in a rotating
order, so that noise on a shared machine hits all of them alike. The table
gives the median over rounds as training samples per second (and µs per step
at batch 1), the ratios ours/numpy, ours/torch, ours/floor (above 1: ours is
faster) and, per case, the targets below with ✓/✗.

Run:
    python benchmarks/kernels.py              # every case, 7 rounds (a few minutes)
    python benchmarks/kernels.py --quick      # 3 rounds, MLP batches 64 and 1024 only (stack nets 64, 256)
    python benchmarks/kernels.py --cases bn-mlp,attention --quick   # the stack nets only
    python benchmarks/kernels.py --json       # the results as JSON instead of the table
    python benchmarks/kernels.py --threads 1  # single-threaded BLAS and torch
    python benchmarks/kernels.py --cases free-form,conv28 --batches 1,64   # some cases only
The table (or JSON) goes to stdout, progress to stderr. When other processes
keep the cores busy, multi-threaded BLAS and torch slow down by 10x or more,
erratically (the header prints the load average): compare with --threads 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_info, threadpool_limits  # installed with scikit-learn

from derive.kernels import compile_kernel
from derive.graph.convolutional import convolutional
from derive.graph.layered import layered
from derive.graph.spec import load

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/ is not a package
import stack_reference  # noqa: E402  (the numpy and torch references of the stack nets)

LR = 0.01
CORES = os.cpu_count() or 1


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the cases ------------------------------------------------------------------------


@dataclass(frozen=True)
class Net:
    label: str
    build: Callable
    kind: str  # "mlp" (layered kernel), "free-form", "cnn" or "stack"
    acts: tuple[str, str]  # hidden (or conv) activation, output activation
    cost: str
    batches: tuple[int, ...]
    quick_batches: tuple[int, ...]
    backend: str | None = None
    spec: str | None = None  # "stack": the built-in spec, the key of its references in stack_reference


CONV28 = [{"type": "conv", "filters": 8, "kernel": 3, "activation": "relu"}, {"type": "maxpool", "size": 2},
          {"type": "dense", "units": 10, "activation": "softmax"}]
NETS = [
    Net("784-100-10 sigmoid/quadratic", lambda: layered([784, 100, 10], activation="sigmoid", cost="quadratic"),
        "mlp", ("sigmoid", "sigmoid"), "quadratic", (16, 64, 256, 1024), (64, 1024)),
    Net("784-100-10 softmax/log-lik", lambda: layered([784, 100, 10], activation=["sigmoid", "softmax"],
                                                      cost="log_likelihood"),
        "mlp", ("sigmoid", "softmax"), "log_likelihood", (16, 64, 256, 1024), (64, 1024)),
    Net("64-30-10 softmax/log-lik", lambda: load("digits-64-30-10"),
        "mlp", ("sigmoid", "softmax"), "log_likelihood", (16, 64), (64,)),
    Net("2-2-2 free-form", lambda: load("two-two-two"), "free-form", ("sigmoid", "sigmoid"), "quadratic", (1, 64), (1, 64)),
    Net("12-3-2 free-form", lambda: load("book-12-3-2"), "free-form", ("sigmoid", "sigmoid"), "quadratic",
        (1, 64), (1, 64), backend="free-form"),
    Net("book-cnn 6x6", lambda: load("book-cnn"), "cnn", ("sigmoid", "sigmoid"), "quadratic", (64,), (64,)),
    Net("conv28 relu/log-lik", lambda: convolutional([28, 28], CONV28, "log_likelihood", name="conv28"),
        "cnn", ("relu", "softmax"), "log_likelihood", (64,), (64,)),
    Net("bn-mlp 64-100-10 (digits-batchnorm)", lambda: load("digits-batchnorm"), "stack", ("relu", "softmax"),
        "log_likelihood", (64, 256), (64, 256), spec="digits-batchnorm"),
    Net("attention 8x22 (lookup-attention)", lambda: load("lookup-attention"), "stack", ("attention", "softmax"),
        "log_likelihood", (64, 256), (64, 256), spec="lookup-attention"),
]


GOALS = {  # target key -> (ratio, threshold, description)
    "≥ numpy": ("numpy", 1.0, "ours ≥ hand-written numpy, every case (free-form at batch 1: the factors below)"),
    "≥1.2× torch": ("torch", 1.2, "MLPs and stack nets, batch ≤ 256: ours ≥ 1.2× PyTorch eager"),
    "≥0.95× torch": ("torch", 0.95, "MLPs, batch 1024: ours ≥ 0.95× PyTorch eager"),
    "≥90% floor": ("floor", 0.9, "MLPs, batch 1024: ours ≥ 90 % of the matmul floor"),
    "≥5× numpy": ("numpy", 5.0, "2-2-2, batch 1: ours ≥ 5× hand-written numpy"),
    "≥1.5× numpy": ("numpy", 1.5, "12-3-2, batch 1: ours ≥ 1.5× hand-written numpy"),
    "≥0.9× torch": ("torch", 0.9, "conv nets: ours ≥ 0.9× PyTorch eager"),
}


def targets(net: Net, batch: int) -> list[str]:
    """The GOALS a case is held to (MLP = the layered kernels 784-100-10 and 64-30-10)."""
    if net.kind == "stack":
        return ["≥ numpy", "≥1.2× torch"] if batch <= 256 else ["≥ numpy"]
    if net.kind == "free-form" and batch == 1:
        return ["≥5× numpy" if net.label.startswith("2-2-2") else "≥1.5× numpy"]
    if net.kind == "mlp":
        return ["≥ numpy", "≥1.2× torch"] if batch <= 256 else ["≥ numpy", "≥0.95× torch", "≥90% floor"]
    return ["≥ numpy", "≥0.9× torch"] if net.kind == "cnn" else ["≥ numpy"]


# -- the kernel's flat buffer <-> the hand-written arrays [W, b, W, b] ------------------

MAZUR = {"w1": (0, (0, 0)), "w2": (0, (0, 1)), "w3": (0, (1, 0)), "w4": (0, (1, 1)), "b1": (1, ()),
         "w5": (2, (0, 0)), "w6": (2, (0, 1)), "w7": (2, (1, 0)), "w8": (2, (1, 1)), "b2": (3, ())}


def free_form_place(name: str) -> tuple[int, tuple[int, ...]]:
    """Where a scalar parameter goes: Mazur's names (shared biases) or Nielsen's w{l}_{j}_{k}, b{l}_{j}."""
    if name in MAZUR:
        return MAZUR[name]
    if match := re.fullmatch(r"w(\d+)_(\d+)_(\d+)", name):
        l, j, k = map(int, match.groups())
        return 2 * (l - 2), (j - 1, k - 1)
    if match := re.fullmatch(r"b(\d+)_(\d+)", name):
        l, j = map(int, match.groups())
        return 2 * (l - 2) + 1, (j - 1,)
    raise ValueError(f"no place for the parameter {name}")


class Layout:
    """Each flat index's place (array, index) among the hand-written arrays, and the arrays' shapes."""

    def __init__(self, kernel, params):
        if kernel.backend == "free-form":
            self.places = [free_form_place(b.name) for b in kernel.blocks]
            shapes = {}
            for a, pos in self.places:
                shapes[a] = tuple(max(n, p + 1) for n, p in zip(shapes.get(a, (0,) * len(pos)), pos))
            self.shapes = [shapes[a] for a in sorted(shapes)]
        else:  # the blocks lie in the buffer one after another, each in its array's layout
            self.places = None
            self.shapes = [v.shape for v in kernel.views(params).values()]

    def arrays(self, flat: np.ndarray) -> list[np.ndarray]:
        if self.places is None:
            ends = np.cumsum([int(np.prod(s)) for s in self.shapes])
            return [part.reshape(s).copy() for part, s in zip(np.split(flat, ends[:-1]), self.shapes)]
        out = [np.zeros(s, dtype=flat.dtype) for s in self.shapes]
        for value, (a, pos) in zip(flat, self.places):
            out[a][pos] = value
        return out

    def flat(self, arrays: list[np.ndarray]) -> np.ndarray:
        if self.places is None:
            return np.concatenate([np.ravel(g) for g in arrays])
        return np.array([arrays[a][pos] for a, pos in self.places])


# -- hand-written numpy ----------------------------------------------------------------


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def output_error(a, y, cost, m):
    """Loss and δ^L (already divided by the batch size) for sigmoid/quadratic or softmax/log-likelihood."""
    if cost == "quadratic":
        return 0.5 * np.sum((a - y) ** 2) / m, (a - y) * a * (1 - a) / m
    return -np.sum(y * np.log(a)) / m, (a - y) / m


def numpy_mlp(params, x, y, acts, cost):
    """BP1-BP4 for sigmoid hidden layers; a bias of shape () is shared by its layer's units."""
    m = len(x)
    activations = [x]
    for i in range(0, len(params), 2):
        z = activations[-1] @ params[i].T + params[i + 1]
        last = i + 2 == len(params)
        activations.append(softmax(z) if last and acts[1] == "softmax" else sigmoid(z))
    loss, delta = output_error(activations[-1], y, cost, m)
    grads = [None] * len(params)
    for i in range(len(params) - 2, -1, -2):
        a = activations[i // 2]
        grads[i] = delta.T @ a
        grads[i + 1] = delta.sum(axis=0) if params[i + 1].ndim else delta.sum()
        if i:
            delta = (delta @ params[i]) * a * (1 - a)
    return loss, grads


def numpy_cnn(params, x, y, acts, cost):
    """conv (im2col) -> activation -> 2x2 max-pool (reshape/argmax) -> dense -> output."""
    WF, bF, WO, bO = params
    m, (K, C, kr, kc) = len(x), WF.shape
    windows = sliding_window_view(x, (kr, kc), axis=(2, 3)).transpose(0, 2, 3, 1, 4, 5)  # (m, oh, ow, C, kr, kc)
    oh, ow = windows.shape[1:3]
    cols = windows.reshape(m * oh * ow, C * kr * kc)
    z1 = cols @ WF.reshape(K, -1).T + bF  # (m·oh·ow, K)
    a1 = np.maximum(z1, 0) if acts[0] == "relu" else sigmoid(z1)
    grid = a1.reshape(m, oh, ow, K).transpose(0, 3, 1, 2)  # (m, K, oh, ow)
    ph, pw = oh // 2, ow // 2
    pools = grid.reshape(m, K, ph, 2, pw, 2).transpose(0, 1, 2, 4, 3, 5).reshape(m, K, ph, pw, 4)
    winner = pools.argmax(axis=-1)[..., None]
    flat = np.take_along_axis(pools, winner, axis=-1).reshape(m, -1)
    z2 = flat @ WO.T + bO
    a2 = softmax(z2) if acts[1] == "softmax" else sigmoid(z2)
    loss, delta = output_error(a2, y, cost, m)
    g_WO, g_bO = delta.T @ flat, delta.sum(axis=0)
    routed = np.zeros_like(pools)
    np.put_along_axis(routed, winner, (delta @ WO).reshape(m, K, ph, pw, 1), axis=-1)
    upstream = routed.reshape(m, K, ph, pw, 2, 2).transpose(0, 2, 4, 3, 5, 1).reshape(m * oh * ow, K)
    d1 = upstream * ((z1 > 0) if acts[0] == "relu" else a1 * (1 - a1))
    return loss, [(d1.T @ cols).reshape(WF.shape), d1.sum(axis=0), g_WO, g_bO]


# -- PyTorch eager -----------------------------------------------------------------------


def torch_loss(params, X, Y, net: Net):
    if net.kind == "cnn":
        WF, bF, WO, bO = params
        z = F.conv2d(X, WF, bF)
        a = F.max_pool2d(torch.relu(z) if net.acts[0] == "relu" else torch.sigmoid(z), 2)
        z = F.linear(a.flatten(1), WO, bO)
    else:
        a = X
        for i in range(0, len(params), 2):
            if i:
                a = torch.sigmoid(z)
            W, b = params[i], params[i + 1]
            z = F.linear(a, W, b) if b.dim() else F.linear(a, W) + b  # a bias of shape () is shared
    if net.acts[1] == "softmax":
        return F.cross_entropy(z, Y)  # probability targets: -Σ y log softmax(z) / m
    return 0.5 * ((torch.sigmoid(z) - Y) ** 2).sum() / len(Y)


def torch_step(params, X, Y, net: Net):
    loss = torch_loss(params, X, Y, net)
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(g, alpha=LR)
    return loss, grads


# -- the matmul floor ------------------------------------------------------------------


def floor_step(layers: list[tuple[int, int, int, bool]], dtype) -> Callable[[], None]:
    """Every (rows, n_in, n_out, needs δ@W) product into preallocated outputs: a@W.T, δ.T@a, δ@W."""
    rng = np.random.default_rng(1)
    work = []
    for rows, n_in, n_out, below in layers:
        a, W, d = (rng.standard_normal(s).astype(dtype) for s in ((rows, n_in), (n_out, n_in), (rows, n_out)))
        work.append((a, W, d, np.empty((rows, n_out), dtype), np.empty((n_out, n_in), dtype),
                     np.empty((rows, n_in), dtype) if below else None))

    def step():
        for a, W, d, z, gW, da in work:
            np.matmul(a, W.T, out=z)
            np.matmul(d.T, a, out=gW)
            if da is not None:
                np.matmul(d, W, out=da)
    return step


def floor_layers(network, shapes: list[tuple], batch: int, kind: str) -> list[tuple[int, int, int, bool]]:
    """The products of one step: per dense layer (batch, n_in, n_out, δ@W needed); a conv layer as im2col."""
    if kind == "cnn":
        (K, C, kr, kc), _, (n_out, n_flat), _ = shapes
        _, out_h, out_w = network.facts["plan"][0]["out_shape"]
        return [(batch * out_h * out_w, C * kr * kc, K, False), (batch, n_flat, n_out, True)]
    return [(batch, W[1], W[0], i > 0) for i, W in enumerate(shapes[::2])]


# -- timing ----------------------------------------------------------------------------


def measure(steps: dict[str, Callable[[], object]], rounds: int, seconds: float) -> dict[str, float]:
    """Median seconds per step over interleaved rounds (each step warmed up and calibrated first)."""
    counts = {}
    for name, step in steps.items():
        for _ in range(3):
            step()
        n = 1
        while True:
            start = time.perf_counter()
            for _ in range(n):
                step()
            elapsed = time.perf_counter() - start
            if elapsed >= 0.02:
                break
            n *= 4
        counts[name] = max(1, round(n * seconds / elapsed))
    samples = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            step, n = steps[name], counts[name]
            start = time.perf_counter()
            for _ in range(n):
                step()
            samples[name].append((time.perf_counter() - start) / n)
    return {name: statistics.median(s) for name, s in samples.items()}


def check(label: str, ours, other, dtype: str) -> None:
    tol = 1e-7 if dtype == "float64" else 2e-4
    (loss, grad), (loss2, grad2) = ours, other
    scale = max(1.0, float(np.abs(grad2).max()))
    assert np.isclose(loss, loss2, rtol=tol, atol=tol), f"{label}: loss {loss} != {loss2}"
    assert np.allclose(grad, grad2, rtol=tol, atol=tol * scale), \
        f"{label}: gradients differ by up to {np.abs(grad - grad2).max():.3g}"


def data(net: Net, kernel, batch: int, dtype: str):
    rng = np.random.default_rng(batch)
    n_out = len(kernel.network.targets)
    shape = (batch, *kernel.input_shape) if net.kind == "cnn" else (batch, len(kernel.network.inputs))
    x = rng.random(shape).astype(dtype)
    y = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, batch)]
    return x, y


def run_stack_case(net: Net, kernel, batch: int, dtype: str, rounds: int, seconds: float) -> dict:
    """A stack net against stack_reference's numpy and torch (same flat block order as the kernel)."""
    name = net.spec
    expected = [(block, tuple(shape)) for block, shape in stack_reference.BLOCKS[name]]
    got = [(b.name, tuple(b.shape)) for b in kernel.blocks]
    assert got == expected, f"{net.label}: kernel blocks {got}, the references expect {expected}"
    x, y = stack_reference.data(name, batch, dtype)
    start = kernel.init(0)
    handwritten = stack_reference.NUMPY[name]

    # the same loss and gradient from all three, once, before timing
    ours = kernel.value_and_grad(start, x, y)
    check(f"{net.label} {dtype} b{batch} numpy", ours, handwritten(start, x, y), dtype)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    loss, grads = stack_reference.torch_step(stack_reference.torch_params(start, name), X, Y, name, LR)
    check(f"{net.label} {dtype} b{batch} torch", ours,
          (loss.item(), np.concatenate([g.numpy().ravel() for g in grads])), dtype)

    theta, theta_numpy = start.copy(), start.copy()  # each implementation trains its own copy
    tensors = stack_reference.torch_params(start, name)

    def step_ours():
        _, g = kernel.value_and_grad(theta, x, y)
        np.subtract(theta, LR * g, out=theta)

    def step_numpy():
        _, g = handwritten(theta_numpy, x, y)
        np.subtract(theta_numpy, LR * g, out=theta_numpy)

    steps = {"ours": step_ours, "numpy": step_numpy,
             "torch": lambda: stack_reference.torch_step(tensors, X, Y, name, LR)}
    layers = stack_reference.floor_layers(name, batch)
    if layers is not None:
        steps["floor"] = floor_step(layers, np.dtype(dtype))
    return timed(net, batch, dtype, steps, rounds, seconds)


def timed(net: Net, batch: int, dtype: str, steps: dict, rounds: int, seconds: float) -> dict:
    """Time the steps and make the result row; a case without "floor" has no floor ratio."""
    seconds_per_step = measure(steps, rounds, seconds)
    speed = {name: batch / t for name, t in seconds_per_step.items()}
    ratios = {name: speed["ours"] / speed[name] for name in ("numpy", "torch", "floor") if name in speed}
    return {"case": net.label, "dtype": dtype, "batch": batch, "samples_per_s": speed,
            "us_per_step": {name: t * 1e6 for name, t in seconds_per_step.items()}, "ours_over": ratios,
            "targets": {key: ratios[GOALS[key][0]] >= GOALS[key][1] for key in targets(net, batch)}}


def run_case(net: Net, network, kernel, batch: int, dtype: str, rounds: int, seconds: float) -> dict:
    if net.kind == "stack":
        return run_stack_case(net, kernel, batch, dtype, rounds, seconds)
    x, y = data(net, kernel, batch, dtype)
    start = kernel.init(0)
    layout = Layout(kernel, start)
    handwritten = numpy_cnn if net.kind == "cnn" else numpy_mlp

    # the same loss and gradient from all three, once, before timing
    ours = kernel.value_and_grad(start, x, y)
    loss, grads = handwritten(layout.arrays(start), x, y, net.acts, net.cost)
    check(f"{net.label} {dtype} b{batch} numpy", ours, (loss, layout.flat(grads)), dtype)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    loss, grads = torch_step([torch.tensor(a, requires_grad=True) for a in layout.arrays(start)], X, Y, net)
    check(f"{net.label} {dtype} b{batch} torch", ours, (loss.item(), layout.flat([g.numpy() for g in grads])), dtype)

    theta, arrays = start.copy(), layout.arrays(start)  # each implementation trains its own copy
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]

    def step_ours():
        _, g = kernel.value_and_grad(theta, x, y)
        np.subtract(theta, LR * g, out=theta)

    def step_numpy():
        _, grads = handwritten(arrays, x, y, net.acts, net.cost)
        for p, g in zip(arrays, grads):
            p -= LR * g

    steps = {"ours": step_ours, "numpy": step_numpy, "torch": lambda: torch_step(tensors, X, Y, net),
             "floor": floor_step(floor_layers(network, layout.shapes, batch, net.kind), np.dtype(dtype))}
    return timed(net, batch, dtype, steps, rounds, seconds)


# -- report -----------------------------------------------------------------------------


def fmt(value: float) -> str:
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"


def print_table(results: list[dict], meta: dict) -> None:
    print(f"Training-step throughput, samples/s (median of {meta['rounds']} interleaved rounds, "
          f"~{meta['seconds']} s per implementation per round); step = value_and_grad + θ -= η g")
    print(f"threads: torch.set_num_threads({meta['torch_threads']}), numpy BLAS {meta['numpy_blas']} "
          f"({meta['cores']} cores; load average {meta['load_average']:.2f} at the start); "
          f"torch {meta['torch']}, numpy {meta['numpy']}, {meta['cpu']}")
    header = ("case", "dtype", "batch", "ours", "numpy", "torch", "floor", "ours/np", "ours/pt", "ours/floor", "targets")
    rows = []
    for r in results:
        s, q = r["samples_per_s"], r["ours_over"]
        marks = "  ".join(f"{key} {'✓' if met else '✗'}" for key, met in r["targets"].items())
        rows.append((r["case"], r["dtype"], str(r["batch"]),
                     *(fmt(s[k]) if k in s else "–" for k in ("ours", "numpy", "torch", "floor")),
                     *(f"{q[k]:.2f}×" if k in q else "–" for k in ("numpy", "torch", "floor")), marks))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, None, *rows]:
        if row is None:
            print("  ".join("-" * w for w in widths))
            continue
        print("  ".join(c.ljust(w) if i in (0, 1, 10) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    single = [r for r in results if r["batch"] == 1]
    if single:
        print("\nbatch 1, µs per step:")
        for r in single:
            us = r["us_per_step"]
            print(f"  {r['case']:<20} {r['dtype']:<8} " + "  ".join(f"{k} {us[k]:8.1f}" for k in ("ours", "numpy", "torch", "floor") if k in us))
    print("\ntargets (✓ met, ✗ missed; MLP = the layered kernels 784-100-10 and 64-30-10; "
          "stack nets = bn-mlp, attention):")
    for key, (ratio, _, text) in GOALS.items():
        held = [r for r in results if key in r["targets"]]
        missed = [f"{r['case']} {r['dtype']} b{r['batch']} ({r['ours_over'][ratio]:.2f}×)" for r in held if not r["targets"][key]]
        mark = "–" if not held else "✗" if missed else "✓"
        print(f"  {mark} {text}: {len(held) - len(missed)}/{len(held)} met" + (f"; missed: {', '.join(missed)}" if missed else ""))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds; MLP batches 64 and 1024 only (stack nets: 64 and 256)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 7, --quick 3)")
    parser.add_argument("--seconds", type=float, help="time per implementation per round (default 0.2, --quick 0.1)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--threads", type=int, default=CORES, help="numpy BLAS and torch threads (default: the cores)")
    parser.add_argument("--cases", help="only the cases whose label contains one of these comma-separated words")
    parser.add_argument("--batches", help="only these comma-separated batch sizes")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    seconds = args.seconds or (0.1 if args.quick else 0.2)
    torch.set_num_threads(args.threads)
    blas_limit = threadpool_limits(args.threads, user_api="blas")  # kept for the run; default: unchanged
    blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info() if i["user_api"] == "blas")
    load_average = os.getloadavg()[0]
    if load_average > 0.5 and args.threads > 1:
        log(f"warning: load average {load_average:.2f} before the run: with other processes on the cores, "
            f"{args.threads}-thread BLAS and torch slow down erratically (try --threads 1 as well)")
    meta = {"rounds": rounds, "seconds": seconds, "cores": CORES, "torch_threads": torch.get_num_threads(),
            "numpy_blas": blas, "load_average": load_average, "torch": torch.__version__, "numpy": np.__version__,
            "cpu": platform.machine(), "lr": LR}
    cases = [(net, dtype, batch) for net in NETS for dtype in args.dtypes.split(",")
             for batch in (net.quick_batches if args.quick else net.batches)
             if (not args.cases or any(word in net.label for word in args.cases.split(",")))
             and (not args.batches or str(batch) in args.batches.split(","))]
    results, networks, kernels = [], {}, {}
    began = time.perf_counter()
    for index, (net, dtype, batch) in enumerate(cases, 1):
        if net.label not in networks:
            start = time.perf_counter()
            networks[net.label] = net.build()
            log(f"built {net.label} in {time.perf_counter() - start:.1f} s")
        if (net.label, dtype) not in kernels:
            start = time.perf_counter()
            kernels[net.label, dtype] = compile_kernel(networks[net.label], dtype=dtype, backend=net.backend)
            log(f"compiled {net.label} {dtype} in {time.perf_counter() - start:.1f} s")
        log(f"[{index}/{len(cases)}] {net.label} {dtype} batch {batch}")
        result = run_case(net, networks[net.label], kernels[net.label, dtype], batch, dtype, rounds, seconds)
        log("    " + "  ".join(f"{k} {fmt(v)}/s" for k, v in result["samples_per_s"].items()))
        results.append(result)
    meta["wall_s"] = round(time.perf_counter() - began, 1)
    log(f"done in {meta['wall_s']} s")
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2, ensure_ascii=False))
    else:
        print_table(results, meta)
    blas_limit.restore_original_limits()


if __name__ == "__main__":
    main()
